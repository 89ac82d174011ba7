"""One slow model must not starve the others (part of `make bench-serve`, or
`python -m benches.capacity` from the repository root).

A server of the default service (`inferd serve`, a process of its own). A load process drives
`digits` (torch, batching on) at 8 requests in flight through the Python client, in paired
rounds: alone, then beside four long `smollm2` generations streaming at once (256 new tokens
each, started again as they end), alone again... Answers are checked against the first ones.
Goal: digits' p99 beside the generations <= 1.5x its p99 alone.

``--beside spin`` or ``--beside torch`` puts two processes at nice 19 beside digits instead of
the generations (a bare Python loop; torch matmuls on two threads), none of them inferd's: what
the machine gives digits when anything at all takes the rest of its CPUs; ``--beside
spin-idle`` the bare loops under SCHED_IDLE (``chrt --idle``), as ``nice = "idle"`` runs a model.

Results: benches/results/capacity.json and capacity.png (``--out`` for others).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benches" / "results"
sys.path.insert(0, str(ROOT / "python"))

from inferd.client import Client  # noqa: E402

_LOAD = """
import json, sys, threading, time
import numpy as np
from inferd.client import Client
address, seconds = sys.argv[1], float(sys.argv[2])
image = np.linspace(0, 16, 64, dtype=np.float32).reshape(1, 1, 8, 8)
latencies, labels, stop = [], set(), time.monotonic() + seconds
def worker():
    with Client(address, timeout=60) as client:
        while time.monotonic() < stop:
            started = time.perf_counter()
            labels.add(int(client.infer("digits", {"input": image}).output["label"][0]))
            latencies.append(time.perf_counter() - started)
threads = [threading.Thread(target=worker) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps({"latencies": latencies, "labels": sorted(labels)}))
"""


_SPIN = "while True: pass"
_TORCH = "import torch\ntorch.set_num_threads(2)\nw, x = torch.randn(4096, 4096), torch.randn(4096, 64)\nwhile True: w @ x"
#: What each ``--beside`` other than the generations runs, twice: how, and what.
BURNERS = {
    "spin": (["nice", "-n", "19"], _SPIN),
    "torch": (["nice", "-n", "19"], _TORCH),
    "spin-idle": (["chrt", "--idle", "0"], _SPIN),  # SCHED_IDLE, as nice = "idle" runs a model
}


class Burners:
    """Two processes at nice 19 that use every CPU they are given, until stopped."""

    def __init__(self, kind: str) -> None:
        self._how, self._code = BURNERS[kind]
        self._processes: list[subprocess.Popen[bytes]] = []
        self.tokens = 0

    def __enter__(self) -> Burners:
        self._processes = [subprocess.Popen([*self._how, sys.executable, "-c", self._code]) for _ in range(2)]
        return self

    def __exit__(self, *_: Any) -> None:
        for process in self._processes:
            process.kill()
            process.wait(30)


class Generations:
    """Four smollm2 streams at once, each started again when it ends, until stopped."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._stop = threading.Event()
        self.tokens = 0
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(4)]

    def _loop(self, seed: int) -> None:
        with Client(self._address, timeout=600) as client:
            while not self._stop.is_set():
                for _ in client.stream("smollm2", "Tell me a long story about the sea.",
                                       parameters={"max_new_tokens": 256, "seed": seed}):  # fmt: skip
                    self.tokens += 1
                    if self._stop.is_set():
                        break

    def __enter__(self) -> Generations:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benches.capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds of digits load an arm")
    parser.add_argument("--out", type=Path, default=RESULTS / "capacity.json")
    parser.add_argument("--config", type=Path, default=ROOT / "service" / "inferd.toml",
                        help="the service to serve (default: the default service)")
    parser.add_argument("--beside", choices=["generations", *BURNERS], default="generations",
                        help="what runs beside digits (default: four smollm2 generations)")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "inferd", "serve", "--config", str(args.config),
                               "--address", "127.0.0.1:50199"], env={**os.environ, "INFERD_METRICS_ENABLED": "false"})  # fmt: skip
    address = "127.0.0.1:50199"
    try:
        with Client(address, timeout=5) as client:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if client.health() == "SERVING":
                        break
                except Exception:  # noqa: BLE001 -- not up yet
                    pass
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.5)
        rounds, expected = [], None

        def arm() -> dict[str, Any]:
            done = subprocess.run([sys.executable, "-c", _LOAD, address, str(args.seconds)], capture_output=True, text=True, check=True)
            return dict(json.loads(done.stdout))

        for index in range(args.rounds):
            alone = arm()
            with Generations(address) if args.beside == "generations" else Burners(args.beside) as generations:
                time.sleep(1.0)  # the four generations under way
                beside = arm()
                tokens = generations.tokens
            expected = expected or alone["labels"]
            assert alone["labels"] == beside["labels"] == expected, "digits' answer changed"
            row = {"alone_p99_ms": p99(alone["latencies"]), "beside_p99_ms": p99(beside["latencies"]),
                   "alone_p50_ms": statistics.median(alone["latencies"]) * 1000,
                   "beside_p50_ms": statistics.median(beside["latencies"]) * 1000,
                   "alone_rps": len(alone["latencies"]) / args.seconds, "beside_rps": len(beside["latencies"]) / args.seconds,
                   "tokens_streamed": tokens}  # fmt: skip
            row["ratio"] = row["beside_p99_ms"] / row["alone_p99_ms"]
            rounds.append(row)
            print(f"round {index + 1}/{args.rounds}: digits p99 alone {row['alone_p99_ms']:.1f} ms, beside {args.beside} "
                  f"{row['beside_p99_ms']:.1f} ms ({row['ratio']:.2f}x)", flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait(60)
    ratio = statistics.median(r["ratio"] for r in rounds)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "goal": "digits p99 beside <= 1.5x alone", "config": str(args.config), "beside": args.beside, "median_ratio": ratio, "met": ratio <= 1.5, "rounds": rounds}  # fmt: skip
    args.out.write_text(json.dumps(report, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.2))
    x = np.arange(len(rounds))
    axes.bar(x - 0.2, [r["alone_p99_ms"] for r in rounds], 0.4, label="digits alone")
    label = "beside 4 smollm2 generations" if args.beside == "generations" else f"beside 2 {args.beside} processes"
    axes.bar(x + 0.2, [r["beside_p99_ms"] for r in rounds], 0.4, label=label)
    axes.set_xlabel("paired round")
    axes.set_ylabel("digits p99 (ms), 8 in flight")
    axes.legend()
    figure.tight_layout()
    figure.savefig(args.out.with_suffix(".png"), dpi=110)
    print(f"median ratio {ratio:.2f}x (goal <= 1.5x): {'met' if ratio <= 1.5 else 'not met'}; wrote {args.out}")


if __name__ == "__main__":
    main()
