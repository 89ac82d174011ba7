#!/usr/bin/env bash
# Installs what benches/serve/ (python -m benches.serve) needs and inferd's own venv must not
# have. Idempotent: a second run does nothing unless something is missing or its pinned versions
# changed.
#
#   benches/.bin/ghz         the load generator (Go; `go install`), git-ignored
#   benches/.venv-mlserver   MLServer 1.7.1 + onnxruntime (the main venv's version) + uvloop<0.22
#                            (MLServer's issue #2286) + matplotlib (draws serve.png), git-ignored
#   benches/.venv-pytriton   nvidia-pytriton 0.7.0 (bundles tritonserver) + onnxruntime (the main
#                            venv's version): benches/peers/pytriton_server.py, git-ignored
#   benches/.venv-ray        ray[serve] 2.60.0 + onnxruntime + grpcio-tools: benches/peers/ray_server.py,
#                            git-ignored; benches/peers/_oip/ the OIP's Python code (from
#                            proto/inference/, generated with that venv's grpcio-tools), git-ignored
#   benches/models/mlp.onnx  the "batching pays" model (benches/models.py), git-ignored
#
# Needs: .venv (make setup), Go for ghz (without it benches.serve falls back to an asyncio client).
set -euo pipefail
cd "$(dirname "$0")/.."

GHZ_VERSION=v0.121.0
MLSERVER_VENV=benches/.venv-mlserver
MAIN_PY=.venv/bin/python

if [[ ! -x "$MAIN_PY" ]]; then
  echo "serve_setup: $MAIN_PY not found: run 'make setup' first" >&2
  exit 1
fi

# 1. ghz
# (`go install` builds report their version as "dev": the stamp file says which one it is.)
if [[ -x benches/.bin/ghz && "$(cat benches/.bin/.ghz-version 2>/dev/null)" == "$GHZ_VERSION" ]]; then
  :
elif command -v go >/dev/null 2>&1; then
  echo "serve_setup: building ghz $GHZ_VERSION into benches/.bin"
  GOBIN="$PWD/benches/.bin" go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
  printf '%s' "$GHZ_VERSION" > benches/.bin/.ghz-version
else
  echo "serve_setup: no Go toolchain: ghz not built; benches.serve will use its asyncio client" >&2
fi

# 2. MLServer's venv, with the same onnxruntime version as inferd's venv (CPU build).
ORT_VERSION=$("$MAIN_PY" - <<'EOF'
from importlib.metadata import PackageNotFoundError, version
for name in ("onnxruntime", "onnxruntime-gpu"):
    try:
        print(version(name))
        break
    except PackageNotFoundError:
        pass
EOF
)
REQUIREMENTS=("mlserver==1.7.1" "uvloop<0.22" "onnxruntime${ORT_VERSION:+==$ORT_VERSION}" "numpy" "psutil" "matplotlib")
STAMP="$MLSERVER_VENV/.installed"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "${REQUIREMENTS[*]}" ]]; then
  echo "serve_setup: installing ${REQUIREMENTS[*]} into $MLSERVER_VENV"
  if [[ -x .venv/bin/uv ]]; then
    [[ -x "$MLSERVER_VENV/bin/python" ]] || .venv/bin/uv venv --quiet --python "$MAIN_PY" "$MLSERVER_VENV"
    .venv/bin/uv pip install --quiet --python "$MLSERVER_VENV/bin/python" "${REQUIREMENTS[@]}"
  else
    [[ -x "$MLSERVER_VENV/bin/python" ]] || "$MAIN_PY" -m venv "$MLSERVER_VENV"
    "$MLSERVER_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
  fi
  "$MLSERVER_VENV/bin/python" -c "import mlserver, onnxruntime, matplotlib; print('serve_setup: mlserver', mlserver.__version__, 'onnxruntime', onnxruntime.__version__)"
  printf '%s' "${REQUIREMENTS[*]}" > "$STAMP"
fi

# 3. The Open Inference Protocol peers, each in a venv of its own (same onnxruntime as inferd's).
peer_venv() {  # peer_venv VENV CHECK REQUIREMENT...: (re)installs when its stamp differs
  local venv=$1 check=$2
  shift 2
  local stamp="$venv/.installed"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$*" ]]; then
    echo "serve_setup: installing $* into $venv"
    if [[ -x .venv/bin/uv ]]; then
      [[ -x "$venv/bin/python" ]] || .venv/bin/uv venv --quiet --python "$MAIN_PY" "$venv"
      .venv/bin/uv pip install --quiet --python "$venv/bin/python" "$@"
    else
      [[ -x "$venv/bin/python" ]] || "$MAIN_PY" -m venv "$venv"
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    fi
    "$venv/bin/python" -c "$check"
    printf '%s' "$*" > "$stamp"
  fi
}
ORT_REQ="onnxruntime${ORT_VERSION:+==$ORT_VERSION}"
peer_venv benches/.venv-pytriton \
  "from importlib.metadata import version as v; print('serve_setup: nvidia-pytriton', v('nvidia-pytriton'), 'onnxruntime', v('onnxruntime'))" \
  "nvidia-pytriton==0.7.0" "$ORT_REQ" "numpy"
peer_venv benches/.venv-ray \
  "from importlib.metadata import version as v; print('serve_setup: ray', v('ray'), 'onnxruntime', v('onnxruntime'))" \
  "ray[serve]==2.60.0" "$ORT_REQ" "numpy" "grpcio-tools"
OIP_OUT=benches/peers/_oip
if [[ ! -f "$OIP_OUT/grpc_service_pb2_grpc.py" || proto/inference/grpc_service.proto -nt "$OIP_OUT/grpc_service_pb2_grpc.py" \
      || proto/inference/model_config.proto -nt "$OIP_OUT/grpc_service_pb2_grpc.py" ]]; then
  mkdir -p "$OIP_OUT"
  benches/.venv-ray/bin/python -m grpc_tools.protoc -I proto/inference --python_out="$OIP_OUT" \
    --grpc_python_out="$OIP_OUT" proto/inference/grpc_service.proto proto/inference/model_config.proto
fi

# 4. The "batching pays" model.
"$MAIN_PY" -c "import sys; sys.path.insert(0, 'benches'); import models; models.ensure_models()"

echo "serve_setup: ready (ghz: $([[ -x benches/.bin/ghz ]] && echo yes || echo no), MLServer venv: $MLSERVER_VENV, peers: benches/.venv-pytriton benches/.venv-ray)"
