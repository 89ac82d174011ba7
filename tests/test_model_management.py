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
