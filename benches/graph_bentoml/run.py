"""Serves the seed's graph on BentoML (service.py, in benches/.bentoml-venv) and calls it.

:class:`Served` starts ``bentoml serve`` and waits until it is ready; ``generate`` checks every
answer (three records of a text and a score in (0, 1]); :func:`latencies` times calls at a
concurrency. benches/graph.py runs BentoML's rounds and inferd's in turn, in the same run.
``python benches/graph_bentoml/run.py [REQUESTS CONCURRENCY TOKENS]`` measures it alone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV = ROOT / "benches" / ".bentoml-venv"
MODEL_DIR = ROOT / "service" / "models" / "smollm2"


def installed() -> bool:
    return any(VENV.glob(".installed-*"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict[str, Any], timeout: float = 600) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


def _check(answer: Any) -> None:
    assert isinstance(answer, list) and len(answer) == 3, answer
    for item in answer:
        assert isinstance(item["generated"], str) and 0 < item["score"] <= 1, item


class Served:
    """``bentoml serve`` of the seed's graph on a free port, until :meth:`stop`."""

    def __init__(self) -> None:
        port = _free_port()
        env = {**os.environ, "GRAPH_MODEL_DIR": str(MODEL_DIR), "BENTOML_DO_NOT_TRACK": "True", "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(
            [str(VENV / "bin" / "bentoml"), "serve", "service:InferenceGraph", "--host", "127.0.0.1", "--port", str(port)],
            cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            assert self.process.poll() is None, "bentoml serve exited"
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as ready:
                    if ready.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "bentoml serve was not ready after 300 s"
            time.sleep(0.5)
        self.version = subprocess.run([str(VENV / "bin" / "python"), "-c", "import bentoml; print(bentoml.__version__)"],
                                      capture_output=True, text=True).stdout.strip()  # fmt: skip

    def generate(self, prompt: str, max_new_tokens: int) -> list[dict[str, Any]]:
        answer = _post(f"{self.url}/generate", {"text": prompt, "max_new_tokens": max_new_tokens})
        _check(answer)
        return answer  # type: ignore[no-any-return]

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def latencies(call: Any, requests: int, concurrency: int) -> dict[str, Any]:
    """``requests`` calls of ``call()``, ``concurrency`` at a time: their latencies and rate."""

    def one(_: int) -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    with ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        times = sorted(pool.map(one, range(requests)))
        wall = time.perf_counter() - started
    return {
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))] * 1000, 1),
        "mean_ms": round(statistics.mean(times) * 1000, 1),
        "rps": round(requests / wall, 3),
    }


if __name__ == "__main__":
    requests, concurrency, tokens = (int(arg) for arg in (sys.argv[1:] or ["6", "1", "16"]))
    served = Served()
    try:
        served.generate("Write one sentence about the sea.", tokens)  # warm up
        figures = latencies(lambda: served.generate("Write one sentence about the sea.", tokens), requests, concurrency)
        print(json.dumps({"bentoml": served.version, **figures}, indent=2))
    finally:
        served.stop()
