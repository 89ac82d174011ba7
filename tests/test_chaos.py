"""Clients that die in the middle of their calls: client processes (tests/chaos_client.py, the
Python client) SIGKILLed while their rows are in a batch the model is running, and while they
read a stream, with other clients loading the server all along. The other clients' calls all
succeed, every model's in-flight count returns to 0, and the server logs no error."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import ROOT, RunningServer, service_config
from workflows_for_tests import HeldDoubler

from inferd.config import ModelConfig

#: Rows in the held batch: KILLED of them from clients that die, the rest from clients that live.
BATCH = 5
KILLED = 3
STREAMS_KILLED = 4
LOADERS = 2


@pytest.fixture(scope="module")
def chaos_server() -> Iterator[RunningServer]:
    base = service_config()
    models = {name: base.models[name] for name in ("wine", "echo")}
    models["held"] = ModelConfig.model_validate({
        "workflow": "workflows_for_tests:HeldDoubler",
        # The batch forms only once all BATCH rows are in: the test knows whose rows it holds.
        "batching": {"max_batch_size": BATCH, "max_delay_ms": 60_000},
    })  # fmt: skip
    models["ticker"] = ModelConfig.model_validate({"workflow": "workflows_for_tests:Ticker"})
    running = RunningServer(base.model_copy(update={"models": models}))
    yield running
    running.stop()


def client(address: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "chaos_client.py"), address, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line, f"the client ended before its call: {process.communicate(timeout=30)}"
    return line


def until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling the server's state


def inflight(server: RunningServer, model: str) -> int:
    return server.server.engine.report(model).inflight


def finish_load(loaders: list[subprocess.Popen[str]]) -> None:
    for loader in loaders:
        out, err = loader.communicate(timeout=120)
        assert loader.returncode == 0, err
        result = json.loads(out.splitlines()[-1])
        assert result["failed"] == [] and result["ok"] > 0, result


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    caplog.set_level(logging.WARNING, logger="inferd")
    records: list[logging.LogRecord] = []
    yield records
    records.extend(record for record in caplog.records if record.levelno >= logging.ERROR)
    assert records == [], [record.getMessage() for record in records]


@pytest.mark.timeout(240)
def test_clients_killed_mid_batch(chaos_server: RunningServer, errors: list[logging.LogRecord]) -> None:
    HeldDoubler.held.clear()
    HeldDoubler.open(0)
    address = chaos_server.address
    loaders = [client(address, "load") for _ in range(LOADERS)]
    try:
        for loader in loaders:
            assert first_line(loader) == "sent"
        with chaos_server.client(timeout=120) as plug_client, ThreadPoolExecutor(1) as pool:
            # A first request holds the model's one run slot, so that every row after it queues
            # and they all form the next batch together.
            plug = pool.submit(plug_client.infer, "held", {"x": np.full((1, 4), 9, dtype=np.float32)})
            until(lambda: HeldDoubler.held == [1], "the first batch in run")
            doomed = [client(address, "held", "1") for _ in range(KILLED)]
            living = [client(address, "held", str(2 + n)) for n in range(BATCH - KILLED)]
            until(lambda: inflight(chaos_server, "held") == 1 + BATCH, f"{BATCH} more requests in the server")
            HeldDoubler.open(1)
            until(lambda: HeldDoubler.held == [1, BATCH], f"one batch of {BATCH} rows in run")
            assert plug.result(60).output["y"].tolist() == [[18.0] * 4]
            for process in doomed:
                process.send_signal(signal.SIGKILL)
                process.communicate(timeout=30)
            HeldDoubler.open(2)
            for n, process in enumerate(living):
                out, err = process.communicate(timeout=60)
                assert process.returncode == 0, err
                assert json.loads(out.splitlines()[-1]) == [[2.0 * (2 + n)] * 4]
        # The batch ran once, for all its rows: the dead clients' answers were dropped.
        assert HeldDoubler.held == [1, BATCH]
    finally:
        HeldDoubler.open(10**9)
        finish_load(loaders)
    until(lambda: inflight(chaos_server, "held") == 0, "held's in-flight count to return to 0")


@pytest.mark.timeout(240)
def test_clients_killed_mid_stream(chaos_server: RunningServer, errors: list[logging.LogRecord]) -> None:
    address = chaos_server.address
    loaders = [client(address, "load") for _ in range(LOADERS)]
    try:
        for loader in loaders:
            assert first_line(loader) == "sent"
        streams = [client(address, "ticker") for _ in range(STREAMS_KILLED)]
        for process in streams:
            assert first_line(process) == "streaming"
        until(lambda: inflight(chaos_server, "ticker") == STREAMS_KILLED, "every stream in flight")
        for process in streams:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        until(lambda: inflight(chaos_server, "ticker") == 0, "the killed streams to end in the server")
    finally:
        finish_load(loaders)
    for model in ("echo", "wine", "ticker"):
        until(lambda: inflight(chaos_server, model) == 0, f"{model}'s in-flight count to return to 0")
