"""Shared fixtures: real inferd servers on 127.0.0.1, port 0, in a thread of their own."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from inferd.client import Client
from inferd.config import ModelConfig, ServiceConfig, load_config
from inferd.server.app import Server, create_server, event_loop_factory

ROOT = Path(__file__).resolve().parents[1]
# Every server a test starts, in this process or as `inferd serve`, puts its metrics on a free
# port (the default, 8002, would be taken by the first).
os.environ.setdefault("INFERD_METRICS_ADDRESS", "127.0.0.1:0")
SERVICE_CONFIG = ROOT / "service" / "inferd.toml"

T = TypeVar("T")


_server_loop: asyncio.AbstractEventLoop | None = None


def server_loop() -> asyncio.AbstractEventLoop:
    """The one event loop, in one background thread, that every test server runs on.

    grpc.aio objects must be created and destroyed on their loop's thread: a garbage collection
    on another thread that finalizes them has crashed the process (SIGSEGV). So automatic
    collection is off in the test process, and this loop's thread collects, every half second.

    It is the loop that ``inferd serve`` runs on by default (``server.loop = "auto"``: uvloop).
    """
    global _server_loop
    if _server_loop is None:
        loop = event_loop_factory("auto")()

        def collect() -> None:
            gc.collect()
            loop.call_later(0.5, collect)

        gc.disable()
        loop.call_soon(collect)
        threading.Thread(target=loop.run_forever, name="inferd-test-server", daemon=True).start()
        _server_loop = loop
    return _server_loop


class RunningServer:
    """An inferd server running on the shared test server loop (a background thread), so that
    tests can talk to it with the blocking client."""

    def __init__(self, config: ServiceConfig) -> None:
        self.loop = server_loop()
        self.server: Server = self.call(create_server(config.with_server(address="127.0.0.1:0")))
        self.address = f"127.0.0.1:{self.server.port}"

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def client(self, **options: Any) -> Client:
        return Client(self.address, **options)

    def stop(self) -> None:
        # The shared loop runs on: stopping a loop while grpc.aio's poller thread still delivers
        # its last events has crashed the process too.
        self.call(self.server.stop(grace=1))


def _test_models() -> dict[str, ModelConfig]:
    """Models that exist to provoke each behaviour (see tests/workflows_for_tests.py)."""
    module = "workflows_for_tests"
    tables: dict[str, dict[str, Any]] = {
        "gate": {"workflow": f"{module}:Gate", "limits": {"max_inflight": 1}},
        "broken": {"workflow": f"{module}:BrokenSetup", "setup": "lazy"},
        "crashing": {"workflow": f"{module}:Crashing"},
        "explicit": {"workflow": f"{module}:CountedSetup", "setup": "explicit"},
        # Never set up by any test (test_lifecycle sets up "explicit" on the shared server).
        "explicit-never-set-up": {"workflow": f"{module}:CountedSetup", "setup": "explicit"},
        "lazy": {"workflow": f"{module}:CountedSetup", "setup": "lazy"},
        "endless": {"workflow": f"{module}:Endless"},
        "async-endless": {"workflow": f"{module}:AsyncEndless"},
        "slow": {"workflow": f"{module}:SlowGate", "limits": {"timeout_ms": 200}},
        "records": {
            "workflow": f"{module}:Inputs",
            "input": {"format": "records", "flatten": True, "rename": {"user.name": "name"}, "select": ["name", "user.age"]},
            # JSON as deep as orjson reads (the default limit is 64): test_lifecycle's deep records.
            "limits": {"max_json_depth": 1024},
        },
        "passthrough": {"workflow": f"{module}:Inputs"},
        "tensor-echo": {"workflow": f"{module}:TensorEcho", "inline": True},
        # Loaded and unloaded through the Open Inference Protocol (tests/test_oip_clients.py).
        "unloadable": {"workflow": f"{module}:TensorEcho", "setup": "explicit"},
        "held": {"workflow": f"{module}:Held", "setup": "explicit"},
        "reloadable": {"workflow": f"{module}:Reloadable", "setup": "explicit"},
        # Streamed through ModelStreamInfer before anything set it up (tests/test_oip.py).
        "lazy-echo": {"workflow": "echo", "setup": "lazy"},
        "threads": {"workflow": f"{module}:Threads"},
        "threads-inline": {"workflow": f"{module}:Threads", "inline": True},
        "counted-inline": {"workflow": f"{module}:CountedInline"},
        "missing-module": {"workflow": "no_such_module:Model", "setup": "lazy"},
    }
    return {name: ModelConfig.model_validate(table) for name, table in tables.items()}


def service_config() -> ServiceConfig:
    """The default service plus the test models."""
    config = load_config(SERVICE_CONFIG)
    # A copy of digits (torch, batching on) for the reload under load, so the default
    # service's own digits is set up once (tests/test_service.py counts it).
    reloaded = {"digits-reloaded": config.models["digits"].model_copy(deep=True)}
    # smollm2 runs in the server's process here (the default service isolates it): the graph
    # tests count its generations in its workflow object, and one torch less to start keeps the
    # session's server quick. tests/test_isolation.py serves the isolated textgen workflow.
    smollm2 = config.models["smollm2"].model_copy(update={"isolation": "none"})
    return config.model_copy(update={"models": {**config.models, "smollm2": smollm2, **_test_models(), **reloaded}})


@pytest.fixture(scope="session")
def server() -> Iterator[RunningServer]:
    """One server for the session: the default service's models and the test models."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    running = RunningServer(service_config())
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with server.client(timeout=60) as client:
        yield client
