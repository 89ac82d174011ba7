"""Records -> tensor: inferd's native core against the obvious baselines, in one run.

Every case turns the same records into the same float32 [n, 32] tensor; the outputs are checked
equal before anything is timed. Cases:

* native-json       Schema.parse_json(bytes)                       (GIL released, Rust)
* native-dicts      Schema.parse_records(list of dicts)
* parse-only        _native.parse_only(bytes): the same Rust JSON parser, building nothing (a
                    hook built only with the cargo feature bench-hooks: run ``make bench-records``)
* json+listcomp     json.loads + list comprehension + np.asarray
* orjson+listcomp   orjson.loads + list comprehension + np.asarray
* listcomp          list comprehension + np.asarray over dicts already loaded
* packflow-numpy    json.loads + packflow 0.4.1 numpy preprocessor (feature_names); packflow
                    cannot index lists, so the 8 list values are stacked by hand as its users do
* packflow-records  json.loads + packflow 0.4.1 records preprocessor (flatten_nested_inputs,
                    flatten_lists, feature_names) + rows -> np.asarray

packflow is optional (``pip install packflow==0.4.1``); without it those cases are skipped.

Each case is first timed on its own (best of its runs). Then a **paired phase** measures the
goals' ratios again, robust to a machine whose speed drifts from minute to minute: in each of
``--paired-rounds`` rounds every case of a goal runs in turn (the fast ones best of 3), and the
ratios are taken within the round; the report gives their median and range.

    python benches/records.py [--records 100000] [--quick] [--paired-rounds 5] [--out benches/results/records.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from inferd import _native
from inferd.schema import Schema

TOP_LEVEL = [f"f{index}" for index in range(16)]
NESTED = [f"n{index}" for index in range(8)]
LIST_LENGTH = 8
COLUMNS = len(TOP_LEVEL) + len(NESTED) + LIST_LENGTH


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def make_records(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Deterministic records: 16 top-level numbers (4 integers), 8 nested, a list of 8 floats."""
    rng = random.Random(seed)

    def number() -> float:
        return round(rng.uniform(-1000.0, 1000.0), 6)

    records = []
    for _ in range(count):
        record: dict[str, Any] = {}
        for index, key in enumerate(TOP_LEVEL):
            record[key] = rng.randint(-100_000, 100_000) if index < 4 else number()
        record["nested"] = {key: number() for key in NESTED}
        record["scores"] = [rng.random() for _ in range(LIST_LENGTH)]
        records.append(record)
    return records


def make_schema() -> Schema:
    paths: list[Any] = [*TOP_LEVEL, *(f"nested.{key}" for key in NESTED)]
    paths.append({"path": "scores", "shape": [LIST_LENGTH]})
    return Schema(paths)


def row(record: dict[str, Any]) -> list[Any]:
    nested = record["nested"]
    return [*(record[key] for key in TOP_LEVEL), *(nested[key] for key in NESTED), *record["scores"]]


def listcomp(records: list[dict[str, Any]]) -> np.ndarray:
    return np.asarray([row(record) for record in records], dtype=np.float32)


def packflow_cases(records_count: int) -> dict[str, Callable[[bytes], np.ndarray]]:
    try:
        from loguru import logger
        from packflow.backend.configuration import BackendConfig
        from packflow.backend.preprocessors import NumpyPreprocessor, RecordsPreprocessor
    except ImportError:
        print("packflow not installed: pip install packflow==0.4.1 (skipping packflow cases)")
        return {}
    logger.remove()  # packflow logs every configuration at INFO
    scalar_features = [*TOP_LEVEL, *(f"nested.{key}" for key in NESTED)]
    numpy_mode = NumpyPreprocessor(BackendConfig(input_format="numpy", feature_names=scalar_features))
    flat_features = [*scalar_features, *(f"scores.{index}" for index in range(LIST_LENGTH))]
    records_mode = RecordsPreprocessor(
        BackendConfig(
            input_format="records",
            feature_names=flat_features,
            flatten_nested_inputs=True,
            flatten_lists=True,
        )
    )

    def packflow_numpy(data: bytes) -> np.ndarray:
        records = json.loads(data)
        scalars = numpy_mode(records).astype(np.float32)
        scores = np.asarray([record["scores"] for record in records], dtype=np.float32)
        return np.hstack([scalars, scores])

    def packflow_records(data: bytes) -> np.ndarray:
        flat = records_mode(json.loads(data))
        return np.asarray([[record[name] for name in flat_features] for record in flat], dtype=np.float32)

    return {"packflow-numpy": packflow_numpy, "packflow-records": packflow_records}


def measure(function: Callable[[], object], min_seconds: float, max_runs: int) -> list[float]:
    """Runs at least 3 times (or once for slow cases) and until min_seconds have passed."""
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < max_runs:
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds and (len(times) >= 3 or elapsed > 4 * min_seconds):
            break
    return times


def once(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def per_call(function: Callable[[], object], calls: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


Ratio = tuple[str, str, str, float | None]

#: The ratios reported: (label, slower case, faster case, target). The targets are the
#: native-core issue's goals: a minimum, or a maximum where the label says "<=".
RATIOS: list[Ratio] = [
    ("native-json vs orjson+listcomp (>= 20x)", "orjson+listcomp", "native-json", 20.0),
    ("native-json vs packflow-records (>= 100x)", "packflow-records", "native-json", 100.0),
    ("native-json vs packflow-numpy", "packflow-numpy", "native-json", None),
    ("native-json vs json+listcomp", "json+listcomp", "native-json", None),
    ("native-json / parse-only (<= 2x)", "native-json", "parse-only", 2.0),
    ("native-dicts vs listcomp (>= 5x)", "listcomp", "native-dicts", 5.0),
]
GOALS = [ratio for ratio in RATIOS if ratio[3] is not None]


def meets(label: str, value: float, target: float) -> bool:
    return value <= target if "<=" in label else value >= target


def measure_paired(timed: dict[str, Callable[[], object]], goals: list[Ratio], rounds: int) -> dict[str, Any]:
    """The goals' ratios taken within rounds: each round times every case the goals name, in
    turn (cases under 0.5 s best of 3), so that a drift of the machine's speed hits both sides
    of a ratio alike. Returns per goal the ratios of every round, their median and range."""
    names = [name for name in dict.fromkeys(case for goal in goals for case in goal[1:3]) if name in timed]
    per_round: dict[str, list[float]] = {goal[0]: [] for goal in goals if goal[1] in timed and goal[2] in timed}
    print(f"paired: {rounds} rounds of {', '.join(names)}")
    for round_ in range(rounds):
        seconds: dict[str, float] = {}
        for name in names:
            times = [once(timed[name])]
            while times[0] < 0.5 and len(times) < 3:
                times.append(once(timed[name]))
            seconds[name] = min(times)
        for label, slow, fast, _ in goals:
            if label in per_round:
                per_round[label].append(seconds[slow] / seconds[fast])
        print(f"  round {round_ + 1}: " + ", ".join(f"{label.split(' (')[0]} {values[-1]:.1f}x" for label, values in per_round.items()))
    out: dict[str, Any] = {"rounds": rounds, "goals": {}}
    for label, slow, fast, target in goals:
        values = per_round.get(label)
        if not values:
            continue
        median = statistics.median(values)
        assert target is not None
        met = meets(label, median, target)
        out["goals"][label] = {"per_round": values, "median": median, "min": min(values), "max": max(values), "target": target, "met": met}
        print(f"  {label}: median {median:.1f}x ({min(values):.1f}-{max(values):.1f}x)  {'met' if met else 'MISSED'}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="records per batch (default 100000)")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (2000 records, short timing)")
    parser.add_argument("--out", type=Path, default=Path("benches/results/records.json"), help="where to write results")
    parser.add_argument("--paired-rounds", type=int, default=None, help="rounds of the paired phase (default 5; --quick 1; 0: none)")
    args = parser.parse_args()
    rounds = args.paired_rounds if args.paired_rounds is not None else (1 if args.quick else 5)
    count = 2_000 if args.quick else args.records
    min_seconds = 0.05 if args.quick else 1.0

    if not hasattr(_native, "parse_only"):
        raise SystemExit("inferd._native has no parse_only: build it with the cargo feature bench-hooks (make bench-records)")
    records = make_records(count)
    data = json.dumps(records).encode()
    schema = make_schema()
    expected = listcomp(records)
    assert expected.shape == (count, COLUMNS)

    cases: dict[str, Callable[[], np.ndarray]] = {
        "native-json": lambda: schema.parse_json(data)["input"],
        "native-dicts": lambda: schema.parse_records(records)["input"],
        "json+listcomp": lambda: listcomp(json.loads(data)),
        "orjson+listcomp": lambda: listcomp(orjson.loads(data)),
        "listcomp": lambda: listcomp(records),
    }
    for name, case in packflow_cases(count).items():
        cases[name] = lambda case=case: case(data)

    # Correctness first: every case gives the same tensor, and parse-only sees every value.
    for name, case in cases.items():
        result = case()
        if result.dtype != np.float32 or not np.array_equal(result, expected):
            raise SystemExit(f"{name}: output differs from the reference")
    assert _native.parse_only(data) == count * COLUMNS

    print(f"{count} records, {len(data) / 1e6:.1f} MB of JSON, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    results: dict[str, dict[str, float]] = {}
    timed: dict[str, Callable[[], object]] = {**cases, "parse-only": lambda: _native.parse_only(data)}
    for name, case in timed.items():
        times = measure(case, min_seconds, max_runs=50)
        best = min(times)
        results[name] = {
            "seconds_best": best,
            "seconds_median": statistics.median(times),
            "runs": len(times),
            "records_per_second": count / best,
            "megabytes_per_second": len(data) / 1e6 / best,
        }
        print(f"  {name:18} {best * 1e3:10.2f} ms  {count / best:14,.0f} records/s  ({len(times)} runs)")

    def ratio(slow: str, fast: str) -> float | None:
        if slow not in results or fast not in results:
            return None
        return results[slow]["seconds_best"] / results[fast]["seconds_best"]

    print("ratios:")
    ratios: dict[str, dict[str, Any]] = {}
    for label, slow, fast, target in RATIOS:
        value = ratio(slow, fast)
        if value is None:
            print(f"  {label}: skipped")
            continue
        met = None if target is None else meets(label, value, target)
        ratios[label] = {"ratio": value, "target": target, "met": met}
        verdict = "" if met is None else ("  met" if met else "  MISSED")
        print(f"  {label}: {value:.1f}x{verdict}")

    paired = measure_paired(timed, GOALS, rounds) if rounds > 0 else None

    one_record = records[0]
    one_bytes = json.dumps(one_record).encode()
    overhead = {
        "native-json": per_call(lambda: schema.parse_json(one_bytes), 20_000),
        "native-dicts": per_call(lambda: schema.parse_records(one_record), 20_000),
        "orjson+listcomp": per_call(lambda: listcomp([orjson.loads(one_bytes)]), 20_000),
    }
    print("one record, per call:")
    for name, seconds in overhead.items():
        print(f"  {name:18} {seconds * 1e6:8.2f} us")

    report = {
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "records": count,
        "json_bytes": len(data),
        "columns": COLUMNS,
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
        },
        "cases": results,
        "ratios": ratios,
        "paired": paired,
        "one_record_seconds_per_call": overhead,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
