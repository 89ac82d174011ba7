"""Serves the seed's graph on BentoML (service.py, in benches/.bentoml-venv) and measures it.

``measure(prompt, requests, concurrency, max_new_tokens)`` starts ``bentoml serve``, waits until
it is ready, checks every answer (three records of a text and a score in (0, 1]), and returns
the latencies and throughput; benches/graph.py compares them with inferd's in the same run.
``python benches/graph_bentoml/run.py`` measures it alone.
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


def measure(prompt: str, requests: int, concurrency: int, max_new_tokens: int) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, "GRAPH_MODEL_DIR": str(MODEL_DIR), "BENTOML_DO_NOT_TRACK": "True", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [str(VENV / "bin" / "bentoml"), "serve", "service:InferenceGraph", "--host", "127.0.0.1", "--port", str(port)],
        cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, f"bentoml serve exited:\n{process.stdout.read() if process.stdout else ''}"
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as ready:
                    if ready.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "bentoml serve was not ready after 300 s"
            time.sleep(0.5)
        body = {"text": prompt, "max_new_tokens": max_new_tokens}
        _check(_post(f"{url}/generate", body))  # warm up, and check

        def one(_: int) -> float:
            started = time.perf_counter()
            _check(_post(f"{url}/generate", body))
            return time.perf_counter() - started

        with ThreadPoolExecutor(concurrency) as pool:
            started = time.perf_counter()
            latencies = list(pool.map(one, range(requests)))
            wall = time.perf_counter() - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    version = subprocess.run([str(VENV / "bin" / "python"), "-c", "import bentoml; print(bentoml.__version__)"],
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
    ordered = sorted(latencies)
    return {
        "bentoml": version,
        "concurrency": concurrency,
        "requests": requests,
        "max_new_tokens": max_new_tokens,
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1),
            "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000, 1),
            "mean": round(statistics.mean(latencies) * 1000, 1),
        },
        "rps": round(requests / wall, 3),
    }


if __name__ == "__main__":
    requests, concurrency, tokens = (int(arg) for arg in (sys.argv[1:] or ["6", "1", "16"]))
    print(json.dumps(measure("Write one sentence about the sea.", requests, concurrency, tokens), indent=2))
