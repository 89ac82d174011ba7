"""A peer for benches/serve: Triton Inference Server (the tritonserver that PyTriton bundles)
serving wine.onnx over the Open Inference Protocol, the model run by a Python function with
onnxruntime (CPU, default session options, like inferd's onnx workflow and the MLServer runtime
in benches/mlserver/).

    benches/.venv-pytriton/bin/python benches/peers/pytriton_server.py --model service/models/wine.onnx \
        --grpc-port 8001 --http-port 8000 --metrics-port 8002 [--batching off|on]

Model ``wine``: input ``input`` FP32 [-1, 13] (max_batch_size 32, so [13] a row), outputs
``label`` BYTES [-1, 1] and ``probabilities`` FP32 [-1, 3]. ``--batching off``: no
dynamic_batching section (each request runs alone); ``on``: Triton's dynamic batcher, waiting
at most ``--max-queue-delay-us`` (default 2000, MLServer's 2 ms in benches.serve) for more rows.
Runs in its own venv (benches/.venv-pytriton, benches/serve_setup.sh), never in inferd's.
"""

from __future__ import annotations

import argparse
import logging
import os
import sysconfig
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

MAX_BATCH_SIZE = 32


def make_infer(model: Path):  # type: ignore[no-untyped-def]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = [node.name for node in session.get_outputs()]

    @batch
    def infer(input: np.ndarray) -> dict[str, np.ndarray]:  # noqa: A002 (the model's input name)
        label, probabilities = session.run(names, {input_name: input.astype(np.float32, copy=False)})
        # Every output keeps the batch dimension first, so that the batcher can split a batch.
        return {"label": np.char.encode(label.astype(str), "utf-8").reshape(-1, 1), "probabilities": probabilities}

    return infer


def own_libpython_first() -> None:
    """Puts this interpreter's libpython ahead of the system's on LD_LIBRARY_PATH (inherited by
    tritonserver and its Python backend stub). The stub links ``libpython3.11.so.1.0`` and finds
    the system's one (Debian's 3.11.2) before the venv's interpreter's (pyenv's 3.11.7), then runs
    that interpreter's stdlib: the model's load fails in multiprocessing's resource_tracker
    (``'_thread.RLock' object has no attribute '_recursion_count'``, a 3.11.7 stdlib on a 3.11.2
    core). A no-op for an interpreter without a shared libpython (then the system's is its own)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir and Path(libdir, sysconfig.get_config_var("LDLIBRARY") or "").exists():
        paths = [libdir, *(p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p and p != libdir)]
        os.environ["LD_LIBRARY_PATH"] = ":".join(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="wine.onnx")
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1", help="the gRPC and HTTP servers' address")
    parser.add_argument("--batching", choices=["off", "on"], default="off")
    parser.add_argument("--max-queue-delay-us", type=int, default=2000)
    parser.add_argument("--log-verbose", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    own_libpython_first()

    batcher = DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us) if args.batching == "on" else None
    config = TritonConfig(
        grpc_address=args.address,
        grpc_port=args.grpc_port,
        http_address=args.address,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        allow_gpu_metrics=False,
        log_verbose=args.log_verbose,
        exit_on_error=True,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="wine",
            infer_func=make_infer(args.model),
            inputs=[Tensor(name="input", dtype=np.float32, shape=(13,))],
            outputs=[Tensor(name="label", dtype=bytes, shape=(1,)), Tensor(name="probabilities", dtype=np.float32, shape=(3,))],
            config=ModelConfig(batching=True, max_batch_size=MAX_BATCH_SIZE, batcher=batcher),  # type: ignore[arg-type]
            strict=True,
        )
        triton.serve()


if __name__ == "__main__":
    main()
