"""Shutdown in the order that loses nothing: health NOT_SERVING -> the drain delay (requests
still served) -> no new calls, the ones in flight finish -> teardown."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT, RunningServer, service_config
from test_cli import free_port
from test_leaks import wait_serving
from workflows_for_tests import ShutdownProbe

from inferd import InferdError, Unavailable
from inferd.client import Client
from inferd.config import ModelConfig

DRAIN_DELAY_S = 2.0


@pytest.fixture
def probe() -> Iterator[type[ShutdownProbe]]:
    ShutdownProbe.opened.clear()
    ShutdownProbe.entered.clear()
    ShutdownProbe.events.clear()
    yield ShutdownProbe
    ShutdownProbe.opened.set()


def test_shutdown_drains_lets_calls_in_flight_finish_then_tears_down(probe: type[ShutdownProbe]) -> None:
    config = service_config()
    models = {"echo": config.models["echo"], "probe": ModelConfig.model_validate({"workflow": "workflows_for_tests:ShutdownProbe"})}
    config = config.with_server(drain_delay_s=DRAIN_DELAY_S, grace_s=30).model_copy(update={"models": models})
    running = RunningServer(config)
    stopping = threading.Thread(target=lambda: running.call(running.server.stop()))
    try:
        with running.client(timeout=60) as client, ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(client.infer, "probe", "in flight")
            assert probe.entered.wait(30)
            started = time.monotonic()
            stopping.start()
            while client.health() != "NOT_SERVING":  # at once: load balancers stop sending
                assert time.monotonic() - started < DRAIN_DELAY_S, "health did not turn NOT_SERVING"
                threading.Event().wait(0.01)
            # Within the drain delay: still served; nothing torn down yet.
            assert client.infer("echo", "while draining").output == "while draining"
            assert time.monotonic() - started < DRAIN_DELAY_S, "the machine was too slow to test the drain delay"
            assert probe.events == []
            probe.opened.set()
            assert in_flight.result(60).output == "in flight"  # the call in flight finished
            stopping.join(60)
            assert not stopping.is_alive()
            assert time.monotonic() - started >= DRAIN_DELAY_S
            assert probe.events == ["run in flight", "teardown"]  # teardown after the last call
            with pytest.raises(Unavailable):
                client.infer("echo", "after", timeout=5)
    finally:
        probe.opened.set()
        if stopping.is_alive():
            stopping.join(60)
        running.stop()


SIGTERM_CONFIG = """
[server]
grace_s = {grace_s}
drain_delay_s = {drain_delay_s}
access_log = true
log_format = "json"
[models.echo]
workflow = "echo"
[models.hang]
workflow = "workflows_for_tests:Crashy"
"""
LOADERS = 4
HELD = 3


def _load(address: str, name: str, stop: threading.Event) -> list[tuple[str, str]]:
    """Infer calls one after another until the server stops answering: (id, status) each."""
    outcomes: list[tuple[str, str]] = []
    with Client(address, timeout=60) as client:
        for n in itertools.count():
            call_id = f"{name}-{n}"
            try:
                assert client.infer("echo", call_id, id=call_id).output == call_id
                outcomes.append((call_id, "OK"))
            except InferdError as error:
                outcomes.append((call_id, error.code))
                if isinstance(error, Unavailable) and stop.is_set():
                    return outcomes


def test_sigterm_under_load_loses_no_accepted_request(tmp_path: Path) -> None:
    """``inferd serve`` gets SIGTERM while clients load it, calls are in a model's run and a
    stream is half sent: every call ends OK, or UNAVAILABLE without the server having started
    it, or CANCELLED by grpc's core before it reached the server (its access log says which it
    served); the process exits within ``grace_s``."""
    grace_s, drain_delay_s = 8.0, 0.5
    config = tmp_path / "inferd.toml"
    config.write_text(SIGTERM_CONFIG.format(grace_s=grace_s, drain_delay_s=drain_delay_s))
    address = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "inferd", "serve", "--config", str(config), "--address", address],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
    stop = threading.Event()
    try:
        wait_serving(address, process, log_path)
        with ThreadPoolExecutor(LOADERS + HELD + 1) as pool, Client(address, timeout=60) as client:
            loads = [pool.submit(_load, address, f"load{n}", stop) for n in range(LOADERS)]
            marks = [tmp_path / f"held{n}" for n in range(HELD)]
            held = [pool.submit(client.infer, "hang", {"hang": 1.0, "mark": str(mark)}) for mark in marks]
            stream_mark = tmp_path / "stream"
            chunks = client.stream("hang", {"chunks": 10, "gap": 0.1, "mark": str(stream_mark)})
            first = next(chunks)
            rest = pool.submit(lambda: [first, *chunks])
            deadline = time.monotonic() + 60
            while not all(mark.exists() for mark in marks):  # every held call is in run
                assert time.monotonic() < deadline, "the held calls never reached run"
                threading.Event().wait(0.01)
            stop.set()
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(grace_s + drain_delay_s + 30)
            exited = time.monotonic() - signalled
            for call in held:  # in run at the signal: finished, not lost
                assert call.result(30).output["echo"]["hang"] == 1.0
            streamed = rest.result(30)
            assert [chunk.output for chunk in streamed if not chunk.final] == [f"chunk {i}" for i in range(10)]
            assert stream_mark.read_text() == "10"
            outcomes = [outcome for load in loads for outcome in load.result(30)]
    finally:
        stop.set()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    served = {record["id"]: record["code"] for record in records if record["logger"] == "inferd.access" and record["model"] == "echo"}
    assert process.returncode == 0, log_path.read_text()
    assert exited <= grace_s + drain_delay_s, f"exited {exited:.1f} s after SIGTERM (grace_s {grace_s}, drain {drain_delay_s})"
    codes = {code for _, code in outcomes}
    # A call that reaches the server as it stops is refused UNAVAILABLE; one that grpc's core
    # held, not yet handed to the server, it cancels as it shuts down (CANCELLED). Neither was
    # started: the access log, which every started call reaches, must not have it served.
    assert codes <= {"OK", "UNAVAILABLE", "CANCELLED"}, outcomes
    assert "UNAVAILABLE" in codes, "no call came after the server stopped accepting"
    for call_id, code in outcomes:
        if code == "OK":
            assert served.get(call_id) == "OK", f"{call_id}: answered OK, not in the access log"
        else:  # refused before it started: the server never served it
            assert served.get(call_id) in (None, "UNAVAILABLE"), f"{call_id}: {code}, yet the server says {served[call_id]}"
    assert not [record for record in records if record["level"] in ("error", "critical")], log_path.read_text()
    print(f"SIGTERM under load: {len(outcomes)} calls, {dict(Counter(code for _, code in outcomes))}; exited in {exited:.2f} s")
