"""What the JSON depth limit costs a request: ``JsonLimits.check`` (inferd.adapters: the native
iterative scan, 8 bytes a step), which runs
before orjson decodes a passthrough or records payload, against that decoding, on payloads
from one small record to the records bench's 100,000 records, in paired rounds (each round
times the check and the decoders in turn, and the ratio is taken within the round; the median
of the rounds is reported). The tensor input has no pre-scan: its Rust scanner counts the depth
as it reads; the "pre-scan / parse_json" column says what a pre-scan would have cost it.

    python -m benches.json_limits        # from the repository's root; about a minute
    python -m benches.json_limits --baseline OLD/_native.abi3.so   # also: parse_json, paired

Writes benches/results/json_limits.json and .png. With ``--baseline``, ``parse_json`` of the
10,000-record payload is also timed with that build of the native module (before the skipped
values' depth count) and with this one, in alternating subprocesses, round by round.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benches.records import make_records, make_schema
from inferd.adapters import JsonLimits

RESULTS = Path(__file__).parent / "results"
ROUNDS = 7


def best_of(function: Callable[[], object], min_seconds: float = 0.2) -> float:
    """The fastest of as many calls as fit in ``min_seconds`` (at least 3), in seconds."""
    times: list[float] = []
    deadline = time.perf_counter() + min_seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


PARSE = """
import importlib.util, sys, time
sys.path[:0] = sys.argv[2:]
from benches.records import make_records, make_schema
import orjson
spec = importlib.util.spec_from_file_location("inferd._native", sys.argv[1])
native = importlib.util.module_from_spec(spec); sys.modules["inferd._native"] = native; spec.loader.exec_module(native)
schema = native.Schema([f.to_mapping() for f in make_schema().fields])
data = orjson.dumps(make_records(10_000))
rows = schema.parse_json(data)["input"].shape[0]
assert rows == 10_000, rows
best = 1e9
for _ in range(30):
    start = time.perf_counter(); schema.parse_json(data); best = min(best, time.perf_counter() - start)
print(best)
"""


def paired_builds(baseline: str) -> dict[str, Any]:
    """parse_json's best time with the baseline build and this one, alternating, in ms."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    current = str(root / "python" / "inferd" / "_native.abi3.so")
    times: dict[str, list[float]] = {"baseline": [], "this": []}
    for _ in range(ROUNDS):
        for name, module in (("baseline", baseline), ("this", current)):
            out = subprocess.run(
                [sys.executable, "-c", PARSE, module, str(root), str(root / "python")], check=True, capture_output=True, text=True
            )  # fmt: skip
            times[name].append(float(out.stdout) * 1e3)
    ratios = [this / base for this, base in zip(times["this"], times["baseline"])]
    result = {"ms": times, "median_ratio": statistics.median(ratios), "ratios": ratios}
    print(f"parse_json, 10,000 records: this build / baseline = {result['median_ratio']:.3f} (median of {ROUNDS} rounds)")
    return result


def main() -> int:
    baseline = sys.argv[sys.argv.index("--baseline") + 1] if "--baseline" in sys.argv else None
    schema = make_schema()
    limits = JsonLimits(depth=64, model="bench")
    records = make_records(100_000)
    payloads = {
        "1 record": orjson.dumps(records[:1]),
        "100 records": orjson.dumps(records[:100]),
        "10,000 records": orjson.dumps(records[:10_000]),
        "100,000 records": orjson.dumps(records),
    }
    # The check passes every payload (none is deep), and the decoders agree with each other.
    for data in payloads.values():
        limits.check(data)
        assert schema.parse_json(data)["input"].shape[0] == len(orjson.loads(data))
    rows: list[dict[str, Any]] = []
    for label, data in payloads.items():
        cases = {
            "check": lambda data=data: limits.check(data),
            "parse_json (tensor input)": lambda data=data: schema.parse_json(data),
            "orjson.loads (passthrough, records)": lambda data=data: orjson.loads(data),
        }
        rounds: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(ROUNDS):
            for name, function in cases.items():
                rounds[name].append(best_of(function, 0.05 if len(data) > 1_000_000 else 0.1))
        check = rounds["check"]
        row: dict[str, Any] = {"payload": label, "bytes": len(data), "check_us": statistics.median(check) * 1e6}
        for name in list(cases)[1:]:
            ratios = [c / d for c, d in zip(check, rounds[name])]
            row[name] = {"us": statistics.median(rounds[name]) * 1e6, "check_share": statistics.median(ratios)}
        rows.append(row)
        print(
            f"{label:>16} {len(data):>11,} B  check {row['check_us']:>10.1f} µs  "
            + "  ".join(f"{name.split(' ')[0]}: {row[name]['us']:>10.1f} µs (check {row[name]['check_share']:.1%})" for name in list(cases)[1:])
        )  # fmt: skip
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs".strip(),
        "python": sys.version.split()[0],
        "rounds": ROUNDS,
        "rows": rows,
        "parse_json_against_baseline": paired_builds(baseline) if baseline else None,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "json_limits.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows)
    return 0


def plot(rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    labels = [row["payload"] for row in rows]
    for name in ("parse_json (tensor input)", "orjson.loads (passthrough, records)"):
        what = "a pre-scan / parse_json (tensor input: not run, its scanner counts)" if name.startswith("parse") else f"check / {name}"
        axis.plot(labels, [row[name]["check_share"] * 100 for row in rows], marker="o", label=what)
    axis.set_ylabel("the depth check's time, % of the decoder's")
    axis.set_title("JSON depth limit (64): its cost against decoding (median of paired rounds)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(RESULTS / "json_limits.png", dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
