"""Paths, the bench's fixed inputs and its target names: shared by every module of the package."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHES = ROOT / "benches"
WORK = BENCHES / ".work"
GHZ = BENCHES / ".bin" / "ghz"
MLSERVER_VENV = BENCHES / ".venv-mlserver"
PYTRITON_VENV = BENCHES / ".venv-pytriton"
RAY_VENV = BENCHES / ".venv-ray"
PEERS = BENCHES / "peers"
#: The Open Inference Protocol (KServe v2 / Triton), what ghz loads for the OIP targets.
OIP_PROTO = ROOT / "proto" / "inference" / "grpc_service.proto"
MAIN_PYTHON = Path(sys.executable)
WINE_ONNX = ROOT / "service" / "models" / "wine.onnx"
CONFIGS = BENCHES / "configs"
README = BENCHES / "README.md"

#: One wine (the README's example), in the model's feature order.
WINE_FEATURES = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
    "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
    "od280_od315", "proline",
]  # fmt: skip
WINE = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]

INFERD_INFER = "/inferd.v1.Inference/Infer"
KSERVE_INFER = "/inference.GRPCInferenceService/ModelInfer"
ALL_TARGETS = [
    "inferd-off", "inferd-on", "inferd-json", "inferd-on-json", "inferd-nometrics", "inferd-traced", "bare", "bare-model", "inferd-asyncio", "bare-asyncio",
    "mlserver-default", "mlserver-best", "mlserver-batching", "mlserver-pw2", "mlp-off", "mlp-on",
    "inferd-oip", "triton", "triton-batching", "ray",
]  # fmt: skip
DEFAULT_TARGETS = [t for t in ALL_TARGETS if t not in ("inferd-on-json", "mlserver-pw2", "inferd-asyncio", "bare-asyncio")]
LABELS = {
    "inferd-off": "inferd, batching off (tensor)",
    "inferd-on": "inferd, batching on (tensor)",
    "inferd-json": "inferd, batching off (JSON record)",
    "inferd-on-json": "inferd, batching on (JSON record)",
    "bare": "bare grpc.aio (fixed answer)",
    "bare-model": "bare grpc.aio + the model's run (fixed answer)",
    "inferd-asyncio": "inferd, batching off (tensor), asyncio loop",
    "inferd-nometrics": "inferd, batching off (tensor), metrics off",
    "inferd-traced": "inferd, batching off (tensor), every call traced to an OTLP sink",
    "bare-asyncio": "bare grpc.aio (fixed answer), asyncio loop",
    "mlserver-default": "MLServer 1.7.1, default settings",
    "mlserver-best": "MLServer 1.7.1, best (no log, no metrics, in-process)",
    "mlserver-batching": "MLServer 1.7.1, best + adaptive batching",
    "mlserver-pw2": "MLServer 1.7.1, no log, no metrics, 2 workers",
    "mlp-off": "MLP 2x4096, inferd batching off",
    "mlp-on": "MLP 2x4096, inferd batching on",
    "inferd-oip": "inferd, batching off, Open Inference Protocol",
    "triton": "Triton (PyTriton), onnxruntime in Python, no batching",
    "triton-batching": "Triton (PyTriton), dynamic batching (32, 2 ms)",
    "ray": "Ray Serve gRPC proxy, 1 replica",
}
#: Peers in venvs of their own (benches/serve_setup.sh): left out, with a reason, when it is missing.
PEER_VENVS = {"triton": PYTRITON_VENV, "triton-batching": PYTRITON_VENV, "ray": RAY_VENV}
#: MLServer's adaptive batching for "mlserver-batching" (max_batch_time is in seconds).
MLSERVER_BATCHING = {"max_batch_size": 32, "max_batch_time": 0.002}
#: Steal above this (percent of the machine's CPU time) marks a point unreliable in the report.
STEAL_WARN_PCT = 10


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

