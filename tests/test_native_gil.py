"""The records core releases the GIL while it parses: two threads' parse windows overlap.

The switch interval is raised for the test, so that a thread holding the GIL keeps it until it
lets go on its own: if parse_json held the GIL, the second thread could not even note its start
time before the first one's call had returned, and the windows could not overlap. No timing
thresholds are involved.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from inferd.schema import Schema


def _windows(call: Callable[[str], None]) -> dict[str, tuple[float, float]]:
    """``call(name)`` in two threads at once, the switch interval raised: each one's window."""
    windows: dict[str, tuple[float, float]] = {}
    barrier = threading.Barrier(2)

    def timed(name: str) -> None:
        barrier.wait()
        start = time.perf_counter()
        call(name)
        windows[name] = (start, time.perf_counter())

    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        threads = [threading.Thread(target=timed, args=(name,)) for name in ("first", "second")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(previous_interval)
    return windows


def assert_runs_with_the_gil_released(call: Callable[[str], None], attempts: int = 5) -> None:
    """Checks that two threads' windows of ``call`` overlap: had ``call`` held the GIL, the second
    thread could not have noted its start before the first one's call returned. A released GIL
    lets them overlap only if the waiting thread is also given a CPU in time, which a loaded
    machine can deny once (a CI run saw it): so up to ``attempts`` tries, any one overlap proving
    the point; a call that holds the GIL can overlap in none."""
    seen = []
    for _ in range(attempts):
        windows = _windows(call)
        (start_a, end_a), (start_b, end_b) = windows["first"], windows["second"]
        if start_a < end_b and start_b < end_a:
            return
        seen.append(windows)
    raise AssertionError(f"windows do not overlap in {attempts} tries: {seen}")


def test_parse_json_runs_with_the_gil_released() -> None:
    schema = Schema(["a", "b.c", {"path": "v", "shape": [4]}])
    records = [{"a": index, "b": {"c": index / 3}, "v": [index, 1.5, -2.0, 0.0]} for index in range(60_000)]
    payload = json.dumps(records).encode()

    def parse(_: str) -> None:
        assert schema.parse_json(payload)["input"].shape == (60_000, 6)

    assert_runs_with_the_gil_released(parse)
    expected_row = np.asarray([1, 1 / 3, 1, 1.5, -2, 0], dtype=np.float32)
    np.testing.assert_array_equal(schema.parse_json(payload)["input"][1], expected_row)
