"""What process isolation costs a request (`make bench-isolation`, or
`python -m benches.isolation` from the repository root).

The default service's `wine` (ONNX, 1x13 float32) and `digits` (torch, 1x1x8x8 float32), each
served twice by one engine: in the server's process and with ``isolation = "process"`` (one
worker process, tensors through shared memory). The same request goes to each, one at a time
and then 8 in flight, in paired rounds (the two alternate round by round: this machine is
noisy); answers are checked equal. The overhead is the difference of the median microseconds
a request. Goal: <= 30 µs a request for these small tensors, one at a time.

Results: benches/results/isolation.json and isolation.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benches" / "results"

from inferd.adapters import Payload  # noqa: E402
from inferd.config import ServiceConfig  # noqa: E402
from inferd.engine import Engine  # noqa: E402

MODELS = {
    "wine": ({"workflow": "onnx", "path": "models/wine.onnx", "options": {"intra_op_threads": 1}}, {"input": np.ones((1, 13), np.float32)}),
    "digits": (
        {"workflow": "torch", "path": "models/digits.pt2", "options": {
            "inputs": [{"name": "input", "dtype": "float32", "shape": [-1, 1, 8, 8]}], "outputs": ["logits", "label"]}},
        {"input": np.linspace(0, 16, 64, dtype=np.float32).reshape(1, 1, 8, 8)},
    ),
}  # fmt: skip


async def timed(engine: Engine, model: str, tensors: dict[str, np.ndarray], requests: int, concurrency: int) -> float:
    """Microseconds a request, ``requests`` requests with ``concurrency`` in flight."""
    payload = Payload("tensors", tensors)

    async def worker(count: int) -> None:
        for _ in range(count):
            await engine.infer(model, payload)

    started = time.perf_counter()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    return (time.perf_counter() - started) / (requests // concurrency * concurrency) * 1e6


async def main(rounds: int, requests: int) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    for name, (table, _) in MODELS.items():
        tables[name] = {**table, "inline": True} if name == "wine" else table
        tables[f"{name}-isolated"] = {**table, "isolation": "process"}
    config = ServiceConfig.model_validate({"base_dir": str(ROOT / "service"), "models": tables,
                                           "server": {"metrics": {"enabled": False}}})  # fmt: skip
    engine = Engine(config)
    await engine.start()
    results: dict[str, Any] = {}
    try:
        for name, (_, tensors) in MODELS.items():
            plain = await engine.infer(name, Payload("tensors", tensors))
            isolated = await engine.infer(f"{name}-isolated", Payload("tensors", tensors))
            for key in plain.output:  # the same answer either way
                assert np.array_equal(np.asarray(plain.output[key]), np.asarray(isolated.output[key])), key
            for concurrency in (1, 8):
                pairs = []
                for _ in range(rounds):
                    pairs.append((await timed(engine, name, tensors, requests, concurrency),
                                  await timed(engine, f"{name}-isolated", tensors, requests, concurrency)))  # fmt: skip
                inside = statistics.median(p[0] for p in pairs)
                apart = statistics.median(p[1] for p in pairs)
                overhead = statistics.median(p[1] - p[0] for p in pairs)
                results[f"{name}@{concurrency}"] = {"in_process_us": inside, "isolated_us": apart,
                                                    "overhead_us": overhead, "rounds": pairs}  # fmt: skip
                print(f"{name:7s} concurrency {concurrency}: in process {inside:7.1f} µs, isolated {apart:7.1f} µs, "
                      f"overhead {overhead:6.1f} µs a request (median of {rounds} paired rounds)", flush=True)  # fmt: skip
    finally:
        await engine.close()
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    figure, axes = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(names))
    axes.bar(x - 0.2, [results[n]["in_process_us"] for n in names], 0.4, label="in process")
    axes.bar(x + 0.2, [results[n]["isolated_us"] for n in names], 0.4, label='isolation = "process"')
    axes.set_xticks(x, [n.replace("@", "\nconcurrency ") for n in names])
    axes.set_ylabel("µs a request (median)")
    axes.set_title("Process isolation: the cost a request (engine only)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benches.isolation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=800, help="requests a target in each round")
    parser.add_argument("--out", type=Path, default=RESULTS / "isolation.json")
    args = parser.parse_args()
    figures = asyncio.run(main(args.rounds, args.requests))
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "python": sys.version.split()[0], "goal_us": 30, "results": figures}  # fmt: skip
    args.out.write_text(json.dumps(report, indent=1))
    plot(figures, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
