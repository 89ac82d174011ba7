"""What tracing costs a call, apart from the server (benches/README.md, "What metrics and
traces cost"): the event loop's side (the interceptor's and the engine's calls into
:mod:`inferd.tracing` for one call: the server span, its trace id, the current-span context,
the stages, the span's end), and the export thread's ``encode_spans`` a call.

    python benches/tracing_calls.py [ROUNDS]

With ``--against FILE`` (a tracing.py of another commit, e.g. ``git show REV:python/inferd/
tracing.py > /tmp/old_tracing.py``) the two are timed in alternating rounds, each round's
ratio kept: the figure that survives a busy machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from inferd import _native
from inferd import tracing as current
from inferd.config_server import TracingConfig

METADATA = (("user-agent", "grpc-go/1.0"), ("content-type", "application/grpc"))
#: A wine call's stages with batching off (inline: adapt, preprocess, run, postprocess).
TIMINGS = [("adapt", 0.01), ("preprocess", 0.002), ("run", 0.05), ("postprocess", 0.003), ("total", 0.08)]
CALLS = 5000


def load(path: Path) -> ModuleType:
    """Another tracing.py, as a module of the package (it imports relatively)."""
    spec = importlib.util.spec_from_file_location("inferd._tracing_against", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def call(tracing: Any, current_call: Any) -> None:
    span = tracing.start_call("Infer", METADATA)
    tracing.trace_id(span)
    token = current_call.set(span)
    tracing.stages(span, "wine", time.perf_counter(), list(TIMINGS), ())
    span.set_attribute("rpc.grpc.status_code", "OK")
    span.set_attribute("inferd.model", "wine")
    span.end("OK")
    current_call.reset(token)


def loop_us(module: ModuleType, tracing: Any) -> float:
    started = time.perf_counter()
    for _ in range(CALLS):
        call(tracing, module.current_call)
    elapsed = time.perf_counter() - started
    tracing._queue.clear()
    return elapsed / CALLS * 1e6


def encode_us(module: ModuleType, tracing: Any, calls: int = 2048) -> tuple[float, int, int]:
    for _ in range(calls):
        call(tracing, module.current_call)
    records = list(tracing._queue)
    tracing._queue.clear()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        body, _ = _native.encode_spans(records, "svc", "inferd", "1", clock_ns=tracing._epoch_offset_ns)
        times.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(times), len(records), len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rounds", type=int, nargs="?", default=21)
    parser.add_argument("--against", type=Path, help="a tracing.py to time in alternating rounds")
    args = parser.parse_args()
    modules = {"this": current}
    if args.against is not None:
        modules["against"] = load(args.against)
    tracings = {}
    for name, module in modules.items():
        tracing = module.Tracing(TracingConfig(enabled=True), lambda body: None, {})
        tracing.shutdown()  # no export thread: the loop's side alone
        tracings[name] = tracing
    times: dict[str, list[float]] = {name: [] for name in modules}
    for round_ in range(args.rounds):
        for name in list(modules) if round_ % 2 == 0 else reversed(list(modules)):
            times[name].append(loop_us(modules[name], tracings[name]))
    for name, values in times.items():
        print(f"{name}: the loop's tracing a call {statistics.median(values):.2f} µs median ({min(values):.2f}-{max(values):.2f})")
    if "against" in times:
        ratios = [a / b for a, b in zip(times["against"], times["this"], strict=True)]
        print(f"against / this, round by round: {statistics.median(ratios):.2f}x median ({min(ratios):.2f}-{max(ratios):.2f})")
    for name in modules:
        us, records, size = encode_us(modules[name], tracings[name])
        print(f"{name}: encode_spans {us:.2f} µs a call ({records} records for 2048 calls, {size} bytes)")


if __name__ == "__main__":
    main()
