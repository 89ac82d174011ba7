"""Loading and unloading models at run time through inferd.v1 (the Python client and the
`inferd load` / `inferd unload` commands), and what an unload frees: 100 load and unload
cycles of an ONNX model in a process of their own."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from conftest import ROOT

from inferd.errors import ModelNotFound, ModelNotReady

INFERD = [sys.executable, "-m", "inferd"]


def state(client: Any, model: str) -> str:
    return next(info.state for info in client.models() if info.name == model)


def test_load_and_unload_through_the_client(client: Any) -> None:
    client.load("unloadable")
    assert state(client, "unloadable") == "ready"
    assert client.infer("unloadable", {"a": 1}).output == {"a": 1}
    client.unload("unloadable")
    assert state(client, "unloadable") == "declared"
    with pytest.raises(ModelNotReady, match="'unloadable' is unloaded: load it first"):
        client.infer("unloadable", {"a": 1})
    with pytest.raises(ModelNotReady, match="unloaded"):
        client.setup("unloadable")  # Setup does not bring an unloaded model back; Load does
    assert client.load("unloadable") >= 0
    assert state(client, "unloadable") == "ready"
    with pytest.raises(ModelNotFound, match="'nope'"):
        client.load("nope")
    with pytest.raises(ModelNotFound, match="'nope'"):
        client.unload("nope")


def test_the_load_and_unload_commands(server: Any) -> None:
    address = ["--address", server.address]
    done = subprocess.run([*INFERD, "unload", "unloadable", *address], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "unloadable: unloaded", done.stderr
    done = subprocess.run([*INFERD, "load", "unloadable", *address], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith("unloadable: loaded (setup "), done.stderr
    done = subprocess.run([*INFERD, "load", "nope", *address], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode != 0 and "NOT_FOUND" in done.stderr and "'nope'" in done.stderr


_CYCLES = """
import asyncio, gc, json, sys
from inferd.adapters import Payload
from inferd.config import ServiceConfig
from inferd.engine import Engine

def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

async def main(model_path: str, cycles: int) -> None:
    config = ServiceConfig.model_validate({
        "server": {"metrics": {"enabled": False}},
        "models": {"wine": {"workflow": "onnx", "path": model_path, "setup": "explicit"}},
    })
    engine = Engine(config)
    payload = Payload("tensors", {"input": __import__("numpy").ones((1, 13), "float32")})
    sizes = []
    for cycle in range(cycles):
        await engine.load("wine")
        await engine.infer("wine", payload)
        await engine.unload("wine")
        if cycle in (9, cycles - 1):
            gc.collect()
            sizes.append(rss())
    await engine.close()
    print(json.dumps(sizes))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_unloading_frees_what_an_onnx_model_held() -> None:
    """RSS after 100 cycles against after the first 10 (once the allocator and ONNX Runtime's
    own caches have settled): under 5% more."""
    done = subprocess.run(
        [sys.executable, "-c", _CYCLES, str(ROOT / "service" / "models" / "wine.onnx"), "100"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    settled, last = json.loads(done.stdout)
    print(f"RSS after 10 cycles {settled / 2**20:.1f} MiB, after 100 {last / 2**20:.1f} MiB")
    assert last < settled * 1.05, f"RSS grew from {settled / 2**20:.1f} MiB to {last / 2**20:.1f} MiB"


def test_a_reload_swaps_atomically_and_a_failed_one_leaves_the_old_serving(client: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from workflows_for_tests import Reloadable

    from inferd.errors import ModelFailed

    client.load("reloadable")
    first = client.infer("reloadable", {}).output["generation"]
    Reloadable.release.clear()
    Reloadable.entered.clear()
    with ThreadPoolExecutor(2) as pool:
        old_request = pool.submit(client.infer, "reloadable", {"wait": True})
        assert Reloadable.entered.wait(30)
        reloading = pool.submit(client.load, "reloadable")
        # New requests go to the new instance as soon as it is set up ...
        for _ in range(3000):
            if client.infer("reloadable", {}).output["generation"] == first + 1:
                break
        else:
            pytest.fail("no request reached the reloaded instance")
        # ... while the old one, still serving a request, is not torn down.
        assert first not in Reloadable.torn_down and not reloading.done()
        Reloadable.release.set()
        assert old_request.result(30).output == {"generation": first}
        reloading.result(30)
    assert first in Reloadable.torn_down and first + 1 not in Reloadable.torn_down
    Reloadable.fail_next = True
    with pytest.raises(ModelFailed, match="failed to reload .*the new weights do not load.*the loaded one serves on"):
        client.load("reloadable")
    assert client.infer("reloadable", {}).output == {"generation": first + 1}
    assert state(client, "reloadable") == "ready"


def test_reloading_a_batched_model_under_load_loses_no_request(client: Any, server: Any) -> None:
    """A copy of digits (torch, batching on) reloaded while four callers keep it busy: every request is
    answered, the same answer before, during and after, and the old batcher stops."""
    import threading

    import numpy as np

    from inferd.client import Client

    images = np.random.default_rng(7).random((3, 1, 8, 8), dtype=np.float32)
    expected = client.infer("digits-reloaded", {"input": images}).output
    stop = threading.Event()
    answers: list[Any] = []
    failures: list[BaseException] = []

    def caller() -> None:
        with Client(server.address, timeout=60) as own:
            while not stop.is_set():
                try:
                    answers.append(own.infer("digits-reloaded", {"input": images}).output)
                except BaseException as error:  # noqa: BLE001  (every failure is the test's)
                    failures.append(error)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        while len(answers) < 20 and not failures:
            threading.Event().wait(0.01)
        client.load("digits-reloaded")  # a reload: it is ready
        seen = len(answers)
        while len(answers) < seen + 20 and not failures:
            threading.Event().wait(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert failures == []
    for answer in answers:
        for name in expected:
            np.testing.assert_allclose(answer[name], expected[name], rtol=1e-5)
    lane = server.server.engine._lanes["digits-reloaded"]
    assert lane.retired == [] and lane.batched is server.server.engine.repository.get("digits-reloaded").stages
