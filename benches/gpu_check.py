"""GPU check: serve the default ONNX and torch models on CUDA and report what ran where.

    .venv/bin/python benches/gpu_check.py [--seconds 5] [--batch 64] [--out benches/results/gpu_check.json]

Starts a real inferd server on 127.0.0.1 (port 0) with the default service's wine (ONNX
Runtime, CUDA provider first) and digits (torch, device "cuda") models, checks their answers
against the same models run directly on the CPU, then measures requests per second for a few
seconds per model through the real gRPC client. It reports, per model: the ONNX Runtime
providers of the session or the torch device actually used, the throughput, and whether the
outputs matched the CPU's. Without a CUDA device it says so and measures on the CPU (exit 0),
so that the script itself is tested where there is no GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "service" / "models"


def _config() -> Any:
    from inferd.config import ModelConfig, ServiceConfig

    digits_inputs = [{"name": "input", "dtype": "float32", "shape": [-1, 1, 8, 8]}]
    return ServiceConfig(
        models={
            "wine": ModelConfig.model_validate({
                "workflow": "onnx",
                "path": str(MODELS / "wine.onnx"),
                "options": {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
            }),
            "digits": ModelConfig.model_validate({
                "workflow": "torch",
                "path": str(MODELS / "digits.pt2"),
                "options": {"device": "auto", "inputs": digits_inputs, "outputs": ["logits", "label"]},
            }),
        }
    ).with_server(address="127.0.0.1:0")  # fmt: skip


def _inputs(batch: int) -> dict[str, dict[str, np.ndarray]]:
    from sklearn.datasets import load_digits, load_wine

    wine = load_wine().data.astype(np.float32)
    digits = load_digits().images.astype(np.float32)[:, None]
    return {
        "wine": {"input": np.resize(wine, (batch, wine.shape[1]))},
        "digits": {"input": np.resize(digits, (batch, 1, 8, 8))},
    }


def _reference(model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if model == "wine":
        import onnxruntime as ort

        session = ort.InferenceSession(str(MODELS / "wine.onnx"), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        return dict(zip(names, session.run(names, inputs)))
    import torch

    module = torch.export.load(str(MODELS / "digits.pt2")).module()
    with torch.inference_mode():
        logits, label = module(torch.from_numpy(inputs["input"]))
    return {"logits": logits.numpy(), "label": label.numpy()}


async def _measure(address: str, model: str, inputs: dict[str, np.ndarray], seconds: float) -> dict[str, Any]:
    from inferd.client import AsyncClient

    async with AsyncClient(address, timeout=60) as client:
        output = (await client.infer(model, inputs)).output
        expected = _reference(model, inputs)
        matches = all(
            np.allclose(np.asarray(output[name], dtype=np.float64), np.asarray(value, dtype=np.float64), atol=1e-4)
            if np.asarray(value).dtype.kind in "fiu"
            else list(output[name]) == list(value)
            for name, value in expected.items()
        )
        count = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            await asyncio.gather(*(client.infer(model, inputs) for _ in range(8)))
            count += 8
        elapsed = time.perf_counter() - started
    rows = next(iter(inputs.values())).shape[0]
    return {"matches_cpu": matches, "requests_per_s": count / elapsed, "rows_per_s": count * rows / elapsed}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per model")
    parser.add_argument("--batch", type=int, default=64, help="rows per request")
    parser.add_argument("--out", type=Path, default=ROOT / "benches" / "results" / "gpu_check.json")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from inferd.server.app import create_server
    from inferd.workflows._cuda import cuda_device_count

    gpus = cuda_device_count()
    print(f"CUDA devices: {gpus}" + ("" if gpus else " (no GPU here: this run measures the CPU fallback)"))
    if gpus and torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    server = await create_server(_config())
    report: dict[str, Any] = {
        "machine": platform.platform(),
        "python": sys.version.split()[0],
        "onnxruntime": ort.__version__,
        "onnxruntime_available_providers": ort.get_available_providers(),
        "torch": torch.__version__,
        "cuda_devices": gpus,
        "gpu": torch.cuda.get_device_name(0) if gpus and torch.cuda.is_available() else None,
        "batch": args.batch,
        "models": {},
    }
    try:
        address = f"127.0.0.1:{server.port}"
        inputs = _inputs(args.batch)
        for entry in server.engine.repository:
            workflow = entry.stages.workflow if entry.stages is not None else None
            if workflow is None:
                print(f"{entry.name}: setup failed: {entry.reason}")
                report["models"][entry.name] = {"error": entry.reason}
                continue
            where = (
                {"providers": list(getattr(workflow, "providers", []))}
                if entry.name == "wine"
                else {"device": str(getattr(workflow, "device", "?"))}
            )
            result = {**where, **await _measure(address, entry.name, inputs[entry.name], args.seconds)}
            report["models"][entry.name] = result
            print(
                f"{entry.name}: {where} -> {result['requests_per_s']:.0f} req/s, "
                f"{result['rows_per_s']:.0f} rows/s, outputs match the CPU: {result['matches_cpu']}"
            )
    finally:
        await server.stop(grace=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(model.get("matches_cpu") for model in report["models"].values()) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
