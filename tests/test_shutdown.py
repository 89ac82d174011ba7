"""Shutdown in the order that loses nothing: health NOT_SERVING -> the drain delay (requests
still served) -> no new calls, the ones in flight finish -> teardown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import RunningServer, service_config
from workflows_for_tests import ShutdownProbe

from inferd import Unavailable
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
