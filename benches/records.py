"""Records -> tensors on every record shape: inferd's native core against the obvious baselines
and against the fastest Rust JSON parser, in one run of paired rounds.

Shapes (benches/records_shapes.py): keys in one order, keys shuffled in every record, 8/32/128
flat fields, pretty-printed JSON, unused long strings + nested objects + arrays, 17-digit floats
and integers, paths 5-6 levels deep, categorical vocabularies, ragged lists, NDJSON, and
one-record requests. For each shape the contenders are:

* native-json       Schema.parse_json(bytes)                         (GIL released, Rust)
* native-1t         the same on this one thread (hook: _native.parse_json_one_thread)
* sonic-dom         sonic-rs parsing the same bytes into its DOM, one thread (hook:
                    _native.sonic_dom_parse): the real limit of a JSON reader
* orjson+listcomp   orjson.loads + a list comprehension per tensor + np.asarray
* native-dicts      Schema.parse_records(the records as Python dicts)
* listcomp          the list comprehension over those dicts
* packflow-records  json.loads + packflow 0.4.1 records mode (flatten_nested_inputs,
                    flatten_lists, feature_names) + rows -> np.asarray, where packflow can
                    express the shape (not vocabularies, ragged lists, or lists of objects)

The hooks need the cargo feature bench-hooks (``make bench-records`` builds it). Every
contender's output is first checked equal to the same fields extracted from ``json.loads``.
Then, in each of ``--rounds`` rounds, the contenders of a shape run in turn (each best of a
few runs, the starting one rotating), and every goal's ratio is taken within the round: the
machine's drift hits both sides alike. The report gives each ratio's median and range, writes
JSON (benches/results/records.json) and a plot (benches/results/records.png).

    python benches/records.py [--records 100000] [--rounds 5] [--quick] [--shapes a,b]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records_shapes import SHAPE_NAMES, Shape, Tensors, make_shapes  # noqa: E402

from inferd import _native  # noqa: E402

#: The goals: (label, slower case, faster case, minimum ratio slower/faster).
GOALS: list[tuple[str, str, str, float]] = [
    ("native-json vs orjson+listcomp", "orjson+listcomp", "native-json", 20.0),
    ("native-json vs packflow-records", "packflow-records", "native-json", 100.0),
    ("native-1t vs sonic-rs DOM (1 thread)", "sonic-dom", "native-1t", 1.0),
    ("native-dicts vs listcomp", "listcomp", "native-dicts", 5.0),
]
#: Calls per timing of the one-record shape (each case is that many single-record requests).
ONE_RECORD_CALLS = 2000


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def loaded(shape: Shape, loads: Callable[[bytes], Any]) -> list[Any]:
    """The shape's records as a Python JSON reader gives them."""
    if shape.ndjson:
        return [loads(line) for line in shape.data.splitlines() if line.strip()]
    if shape.one_record:
        return [loads(shape.data)]
    value = loads(shape.data)
    return value if isinstance(value, list) else [value]


def packflow_case(shape: Shape) -> Callable[[], Tensors] | None:
    if shape.flat is None:
        return None
    try:
        from loguru import logger
        from packflow.backend.configuration import BackendConfig
        from packflow.backend.preprocessors import RecordsPreprocessor
    except ImportError:
        return None
    logger.remove()  # packflow logs every configuration at INFO
    names = [name for _, columns in shape.flat.values() for name in columns]
    mode = RecordsPreprocessor(BackendConfig(input_format="records", feature_names=names, flatten_nested_inputs=True, flatten_lists=True))
    flat = shape.flat

    def run() -> Tensors:
        rows = mode(loaded(shape, json.loads))
        return {tensor: np.asarray([[row[name] for name in columns] for row in rows], dtype=dtype) for tensor, (dtype, columns) in flat.items()}

    return run


def cases_of(shape: Shape) -> dict[str, Callable[[], Any]]:
    schema, data, records, extract = shape.schema, shape.data, shape.records, shape.extract
    dicts_input: Any = records[0] if shape.one_record else records
    cases: dict[str, Callable[[], Any]] = {
        "native-json": lambda: schema.parse_json(data),
        "native-1t": lambda: _native.parse_json_one_thread(schema._native, data),
        "sonic-dom": lambda: _native.sonic_dom_parse(data),
        "orjson+listcomp": lambda: extract(loaded(shape, orjson.loads)),
        "native-dicts": lambda: schema.parse_records(dicts_input),
        "listcomp": lambda: extract(records),
    }
    packflow = packflow_case(shape)
    if packflow is not None:
        cases["packflow-records"] = packflow
    return cases


def check(shape: Shape, cases: dict[str, Callable[[], Any]]) -> None:
    """Every contender that builds tensors gives those of json.loads + extraction, exactly."""
    expected = shape.extract(loaded(shape, json.loads))
    for name, case in cases.items():
        if name == "sonic-dom":
            assert case() == (1 if shape.one_record else len(shape.records)), name
            continue
        got = case()
        if set(got) != set(expected):
            raise SystemExit(f"{shape.name}/{name}: tensors {sorted(got)} != {sorted(expected)}")
        for tensor, want in expected.items():
            if got[tensor].dtype != want.dtype or not np.array_equal(got[tensor], want):
                raise SystemExit(f"{shape.name}/{name}: tensor {tensor!r} differs from json.loads + extraction")


def repeated(function: Callable[[], Any], calls: int) -> Callable[[], Any]:
    def run() -> None:
        for _ in range(calls):
            function()

    return run


def best_time(function: Callable[[], Any], budget: float) -> float:
    """Best of at least 3 runs within `budget` seconds (one run if it alone takes longer), from
    a collected heap: one contender's garbage (packflow's) is not another's collection."""
    gc.collect()
    times: list[float] = []
    started = time.perf_counter()
    while True:
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
        if time.perf_counter() - started >= budget and len(times) >= 3 or times[0] >= budget:
            return min(times)
        if len(times) >= 50:
            return min(times)


def run_shape(shape: Shape, rounds: int, budget: float) -> dict[str, Any]:
    cases = cases_of(shape)
    check(shape, cases)
    timed = {name: repeated(case, ONE_RECORD_CALLS) if shape.one_record else case for name, case in cases.items()}
    per_call = ONE_RECORD_CALLS if shape.one_record else 1
    names = list(timed)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    goals = [goal for goal in GOALS if goal[1] in timed and goal[2] in timed]
    ratios: dict[str, list[float]] = {goal[0]: [] for goal in goals}
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        this: dict[str, float] = {}
        for name in order:
            this[name] = best_time(timed[name], budget) / per_call
            seconds[name].append(this[name])
        for label, slow, fast, _ in goals:
            ratios[label].append(this[slow] / this[fast])
    out: dict[str, Any] = {
        "description": shape.description,
        "records": len(shape.records),
        "json_bytes": len(shape.data),
        "packflow": "packflow-records" in timed,
        "seconds_median": {name: statistics.median(values) for name, values in seconds.items()},
        "seconds_per_round": seconds,
        "goals": {},
    }
    for label, _, _, target in GOALS:
        values = ratios.get(label)
        if not values:
            out["goals"][label] = None
            continue
        median = statistics.median(values)
        out["goals"][label] = {"median": median, "min": min(values), "max": max(values), "per_round": values, "target": target, "met": median >= target}
    return out


def table(results: dict[str, Any]) -> str:
    """The goals shape by shape, as a Markdown table (benches/README.md and README.md show it)."""
    lines = [
        "| shape | records | MB | native-json | vs orjson + listcomp (≥ 20×) | vs packflow records (≥ 100×) | sonic-rs DOM ÷ native, 1 thread (≥ 1×) | dicts vs listcomp (≥ 5×) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, shape in results.items():
        cells = []
        for label, _, _, _ in GOALS:
            goal = shape["goals"][label]
            cells.append("n/a" if goal is None else f"{'' if goal['met'] else '**'}{goal['median']:.1f}×{'' if goal['met'] else '**'} ({goal['min']:.1f}–{goal['max']:.1f})")
        seconds = shape["seconds_median"]["native-json"]
        native = f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.1f} ms"
        lines.append(f"| {name} | {shape['records']:,} | {shape['json_bytes'] / 1e6:.1f} | {native} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = list(results)
    fig, axes = plt.subplots(1, len(GOALS), figsize=(4.2 * len(GOALS), 0.42 * len(shapes) + 1.8), sharey=True)
    for axis, (label, _, _, target) in zip(axes, GOALS, strict=True):
        values = [results[name]["goals"][label] for name in shapes]
        medians = [0.0 if goal is None else goal["median"] for goal in values]
        low = [0.0 if goal is None else goal["median"] - goal["min"] for goal in values]
        high = [0.0 if goal is None else goal["max"] - goal["median"] for goal in values]
        colors = ["#bbbbbb" if goal is None else ("#2a9d8f" if goal["met"] else "#e76f51") for goal in values]
        axis.barh(shapes, medians, xerr=[low, high], color=colors, capsize=2)
        axis.axvline(target, color="black", linestyle="--", linewidth=1)
        axis.set_xscale("log")
        axis.set_title(f"{label}\n(goal >= {target:g}x)", fontsize=9)
        for index, goal in enumerate(values):
            if goal is None:
                axis.text(1, index, " n/a", va="center", fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="records per shape (fields-128: a quarter; default 100000)")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds (default 5)")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per contender per round (default 0.3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1000 records, 1 round")
    parser.add_argument("--shapes", default=None, help=f"comma-separated subset of {','.join(SHAPE_NAMES)}")
    parser.add_argument("--out", type=Path, default=Path("benches/results/records.json"))
    args = parser.parse_args()
    if not hasattr(_native, "sonic_dom_parse"):
        raise SystemExit("inferd._native lacks the bench hooks: build it with the cargo feature bench-hooks (make bench-records)")
    count, rounds, budget = (1000, 1, 0.05) if args.quick else (args.records, args.rounds, args.budget)
    only = args.shapes.split(",") if args.shapes else None
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for shape in make_shapes(count, only=only):
        results[shape.name] = run_shape(shape, rounds, budget)
        goals = results[shape.name]["goals"]
        print(f"{shape.name}: " + ", ".join(f"{label} {goal['median']:.1f}x" for label, goal in goals.items() if goal), flush=True)
    print()
    print(table(results))
    print("(paired medians, the rounds' range in brackets; bold: goal missed)")
    missed = [(name, label) for name, shape in results.items() for label, goal in shape["goals"].items() if goal and not goal["met"]]
    print(f"goals met: {sum(1 for shape in results.values() for goal in shape['goals'].values() if goal and goal['met'])}, missed: {len(missed)}")
    report = {
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - started,
        "rounds": rounds,
        "budget_seconds": budget,
        "one_record_calls": ONE_RECORD_CALLS,
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()},
        "goals": [{"label": label, "slower": slow, "faster": fast, "target": target} for label, slow, fast, target in GOALS],
        "shapes": results,
        "missed": missed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table(results) + "\n")
    title = f"records -> tensors, {count} records/shape, {rounds} paired rounds, {os.cpu_count()} CPUs ({cpu_model()})"
    plot(results, args.out.with_suffix(".png"), title)
    print(f"wrote {args.out}, its table {args.out.with_suffix('.md')} and plot {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
