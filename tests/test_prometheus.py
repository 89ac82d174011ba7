"""A real Prometheus (Debian's `prometheus`, installed by `make tools` where apt allows)
scrapes a real inferd and is queried through its HTTP API for the counts."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer, service_config
from test_cli import free_port

from inferd import InvalidInput

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="no prometheus on PATH: `make tools` installs Debian's package where apt-get can"
)


def query(port: int, expression: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=10) as answer:
        reply = json.load(answer)
    assert reply["status"] == "success", reply
    result: list[dict[str, Any]] = reply["data"]["result"]
    return result


def test_prometheus_scrapes_the_counts(tmp_path: Path) -> None:
    config = service_config()
    running = RunningServer(config.model_copy(update={"models": {"echo": config.models["echo"]}}))
    assert running.server.metrics is not None
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: inferd\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{running.server.metrics.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    assert PROMETHEUS is not None
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with running.client(timeout=60) as client:
            for i in range(17):
                client.infer("echo", f"x{i}")
            for _ in range(3):
                with pytest.raises(InvalidInput):
                    client.infer("echo", "x", parameters={"nope": 1})
        wanted = {"OK": 17.0, "INVALID_ARGUMENT": 3.0}
        expression = 'inferd_requests_total{job="inferd",model="echo",rpc="Infer"}'
        seen: dict[str, float] = {}
        started = time.monotonic()
        while seen != wanted:  # Prometheus scrapes every second: poll its API, bounded
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() - started < 90, f"Prometheus saw {seen}, not {wanted}"
            try:
                seen = {item["metric"]["code"]: float(item["value"][1]) for item in query(port, expression)}
            except (urllib.error.URLError, ConnectionError):
                pass  # still starting
            threading.Event().wait(0.5)
        count = query(port, 'inferd_request_duration_seconds_count{model="echo",rpc="Infer"}')
        assert float(count[0]["value"][1]) == 20
        up = query(port, 'up{job="inferd"}')
        assert float(up[0]["value"][1]) == 1
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        running.stop()
