"""Facts of the machine recorded with each run: CPU steal from /proc/stat, the CPU and memory,
the versions of what runs, and how the machine's caches treat a model's run."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from .common import GHZ, MLSERVER_VENV, WINE, WINE_ONNX


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) jiffies of the whole machine so far, from /proc/stat (Linux only)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float:
    if before is None or after is None or after[1] <= before[1]:
        return float("nan")
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {"python": platform.python_version()}
    for package in ("inferd", "grpcio", "protobuf", "onnxruntime", "onnxruntime-gpu", "numpy", "uvloop"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    if (MLSERVER_VENV / "bin" / "python").exists():
        code = (
            "from importlib.metadata import version as v; import json;"
            "print(json.dumps({p: v(p) for p in ('mlserver', 'grpcio', 'protobuf', 'onnxruntime', 'uvloop')}))"
        )
        out = subprocess.run([str(MLSERVER_VENV / "bin" / "python"), "-c", code], capture_output=True, text=True)
        if out.returncode == 0:
            found.update({f"mlserver-venv {k}" if k != "mlserver" else k: v for k, v in json.loads(out.stdout).items()})
    if GHZ.exists():
        stamp = GHZ.parent / ".ghz-version"
        found["ghz"] = stamp.read_text().strip() if stamp.exists() else "unknown"
    return found


def machine() -> dict[str, Any]:
    import psutil

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
    }


def cold_cache_probe(model: Path = WINE_ONNX, calls: int = 200) -> dict[str, float]:
    """ONNX Runtime's run of ``model`` (one row, CPU, in this process): its median time when
    called back to back, and after this thread has spun on the clock, touching no memory, for
    1 ms and 3 ms. On a core of its own the three are close. Where they are far apart, something
    outside the process evicts the caches between calls, and a loaded server's model calls pay
    the slow price: a fact of the machine, recorded with each run."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_outputs()]
    feed = {session.get_inputs()[0].name: np.array([WINE], dtype=np.float32)}
    out: dict[str, float] = {}
    for label, gap in (("back_to_back", 0.0), ("after_1ms_spin", 1e-3), ("after_3ms_spin", 3e-3)):
        times = []
        for _ in range(calls):
            until = time.perf_counter() + gap
            while time.perf_counter() < until:
                pass
            started = time.perf_counter()
            session.run(names, feed)
            times.append(time.perf_counter() - started)
        out[f"{label}_us"] = round(statistics.median(times) * 1e6, 1)
    return out

