"""Builds the serving benchmark's extra model into benches/models/ (git-ignored).

- mlp.onnx: a plain MLP, float32 ``input`` [n, 256] -> 2 hidden layers of 4096 (Gemm + Relu)
  -> ``logits`` [n, 16]; 17.9 M parameters (72 MB). Its weights are seeded random numbers (the
  answers mean nothing; the arithmetic is what counts). At batch 1 a request streams all the
  weights, far more than the CPU's cache, through matrix-vector products: ONNX Runtime alone
  takes ~10 ms a row on the 2-core bench machine. A batch reuses them for every row in one
  matrix-matrix product: ~1 ms a row at 16-64 rows. So on a CPU batching pays: this is the
  "batching pays" model of benches/serve/. (3 layers of 1024 were tried first: their 9.5 MB
  of weights stay in cache, batch 1 costs only ~0.5 ms and batching gained < 2x once served.)

Deterministic: the same file every build (checked by its sha256 in build.json).

    .venv/bin/python benches/models.py [--out benches/models]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MLP_INPUT = 256
MLP_HIDDEN = (4096, 4096)
MLP_OUTPUT = 16


def build_mlp(out: Path, seed: int = 0) -> dict[str, object]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes = []
    initializers = []
    width = MLP_INPUT
    current = "input"
    layers = [*MLP_HIDDEN, MLP_OUTPUT]
    for index, size in enumerate(layers):
        weight = (rng.standard_normal((width, size)) / np.sqrt(width)).astype(np.float32)
        bias = (rng.standard_normal(size) * 0.01).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, f"w{index}"), numpy_helper.from_array(bias, f"b{index}")]
        last = index == len(layers) - 1
        gemm_out = "logits" if last else f"h{index}"
        nodes.append(helper.make_node("Gemm", [current, f"w{index}", f"b{index}"], [gemm_out], name=f"gemm{index}"))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"r{index}"], name=f"relu{index}"))
            current = f"r{index}"
        width = size
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", MLP_INPUT])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", MLP_OUTPUT])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="inferd-benches")
    model.ir_version = 8
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    out.write_bytes(data)
    return {
        "input": ["n", MLP_INPUT],
        "hidden": list(MLP_HIDDEN),
        "output": ["n", MLP_OUTPUT],
        "parameters": int(sum(np.prod(t.dims) for t in initializers)),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def ensure_models(out: Path = HERE / "models") -> Path:
    """Builds benches/models/ unless it is there and current; returns mlp.onnx's path."""
    mlp = out / "mlp.onnx"
    try:
        built = json.loads((out / "build.json").read_text())["mlp.onnx"]
        current = mlp.exists() and built["hidden"] == list(MLP_HIDDEN)
    except (OSError, KeyError, ValueError):
        current = False
    if not current:
        main(["--out", str(out)])
    return mlp


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "models")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not (args.out / ".gitignore").exists():
        (args.out / ".gitignore").write_text("*\n!.gitignore\n")
    report = {"mlp.onnx": build_mlp(args.out / "mlp.onnx")}
    (args.out / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"built {args.out / 'mlp.onnx'}: {report['mlp.onnx']['parameters']:,} parameters")


if __name__ == "__main__":
    main()
