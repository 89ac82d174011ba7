"""The `inferd` command, run as a subprocess, and a real server's graceful shutdown."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import socket
import threading
import urllib.request
from pathlib import Path

import grpc
import pytest
from conftest import ROOT, RunningServer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from inferd.client import Client
from inferd.errors import InferdError

from test_service import wine_records

INFERD = [sys.executable, "-m", "inferd"]


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INFERD, *args], capture_output=True, text=True, timeout=60, input=input, cwd=ROOT)


def free_port() -> int:
    """A port nothing listens on now (bound and released), for servers that need a fixed one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_serve(tmp_path: Path, config: str, *options: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """`inferd serve` as a subprocess (its own session, so that it can be killed whole)."""
    path = tmp_path / "inferd.toml"
    path.write_text(config)
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [*INFERD, "serve", "--config", str(path), "--address", address, *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, start_new_session=True,
    )  # fmt: skip
    return process, address


def stop_serve(process: subprocess.Popen[str]) -> str:
    """Kills what is left of a serve subprocess and returns everything it printed."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    output, _ = process.communicate(timeout=30)
    return output


@pytest.mark.parametrize("command", [[], ["serve"], ["models"], ["setup"], ["infer"], ["stream"]])
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: inferd" in result.stdout and "--help" in result.stdout


def test_models_setup_infer_stream(server: RunningServer, tmp_path: Path) -> None:
    address = ["--address", server.address]
    models = run("models", *address)
    assert models.returncode == 0, models.stderr
    assert "wine" in models.stdout and "onnx" in models.stdout and "ready" in models.stdout

    setup = run("setup", "echo", *address)
    assert setup.returncode == 0 and "echo: ready" in setup.stdout

    records, _ = wine_records(2)
    inline = run("infer", "wine", "--json", json.dumps(records), *address)
    assert inline.returncode == 0, inline.stderr
    answer = json.loads(inline.stdout)
    assert [row["label"] for row in answer] == [row["label"] for row in Client(server.address).infer("wine", records).output]

    file = tmp_path / "records.json"
    file.write_text(json.dumps(records))
    from_file = run("infer", "wine", "--json", f"@{file}", *address)
    assert json.loads(from_file.stdout) == answer
    from_stdin = run("infer", "wine", "--json", "@-", *address, input=json.dumps(records))
    assert json.loads(from_stdin.stdout) == answer

    stream = run("stream", "echo", "--text", "one two three", "-p", "uppercase=true", *address)
    assert stream.returncode == 0, stream.stderr
    assert stream.stdout.splitlines() == ["ONE", " TWO", " THREE"]


def test_errors_exit_nonzero_with_the_status(server: RunningServer) -> None:
    result = run("infer", "nope", "--text", "x", "--address", server.address)
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr and "nope" in result.stderr


def test_sigterm_drains_the_request_in_flight(tmp_path: Path) -> None:
    process, address = start_serve(tmp_path, '[server]\ngrace_s = 20\n[models.echo]\nworkflow = "echo"\n')
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(600):
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                threading.Event().wait(0.05)
            watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=60)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

            with Client(address, timeout=60) as client:
                chunks = client.stream("echo", "slow words in flight", parameters={"delay_ms": 250})
                first = next(chunks)
                process.send_signal(signal.SIGTERM)
                # Health turns NOT_SERVING at once, while the request in flight carries on.
                assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
                rest = list(chunks)
        assert [first.output, *(c.output for c in rest if not c.final)] == ["slow", " words", " in", " flight"]
        assert rest[-1].final
        assert process.wait(30) == 0
    finally:
        output = stop_serve(process)
    assert "shutting down" in output and "stopped" in output
    assert "uvloop event loop" in output  # server.loop = "auto" picks uvloop, a dependency


def wait_for_echo(client: Client) -> None:
    """Until the server's echo model answers (the server may still be starting)."""
    for _ in range(600):
        try:
            if client.infer("echo", "up").output == "up":
                return
        except InferdError:
            pass  # not listening yet, or echo not ready
        threading.Event().wait(0.05)
    raise AssertionError("echo never answered")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_serve_on_the_event_loop_chosen(tmp_path: Path, loop: str) -> None:
    process, address = start_serve(tmp_path, '[models.echo]\nworkflow = "echo"\n', "--loop", loop)
    try:
        with Client(address, timeout=60) as client:
            wait_for_echo(client)
            assert client.infer("echo", "on which loop").output == "on which loop"
            assert [chunk.output for chunk in client.stream("echo", "a b") if not chunk.final] == ["a", " b"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        output = stop_serve(process)
    assert f"{loop} event loop" in output


def test_serve_freezes_the_heap_it_set_up_before_serving(tmp_path: Path) -> None:
    """`inferd serve` moves what exists once its eager models are set up out of the garbage
    collector's passes; an in-process server (create_server, as in these tests) does not."""
    config = '[models.heap]\nworkflow = "workflows_for_tests:HeapFrozen"\n'
    process, address = start_serve(tmp_path, config, env={"PYTHONPATH": str(ROOT / "tests")})
    try:
        with Client(address, timeout=60) as client:
            answer = None
            for _ in range(600):
                try:
                    answer = client.infer("heap", {"x": 1}).output
                    break
                except InferdError:
                    threading.Event().wait(0.05)  # not listening yet, or the model not ready
            assert answer is not None, "the model never answered"
        assert answer["frozen"] > 10_000, answer  # the modules, the engine, the model
        assert answer["mine"], "the eager model was set up after the heap was frozen"
    finally:
        stop_serve(process)
    assert gc.get_freeze_count() == 0  # this process serves in-process servers: never frozen


def test_serve_refuses_an_unknown_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "inferd.toml"
    path.write_text('[server]\nloop = "tokio"\n[models.echo]\nworkflow = "echo"\n')
    result = run("serve", "--config", str(path))
    assert result.returncode == 1
    assert "server.loop" in result.stderr and "uvloop" in result.stderr


def test_healthcheck_module(server: RunningServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "inferd.healthcheck", server.address], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.strip() == "SERVING"
    down = subprocess.run(
        [sys.executable, "-m", "inferd.healthcheck", f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60
    )
    assert down.returncode == 1 and "unhealthy" in down.stderr


def _workers(pid: int) -> list[int]:
    """The worker processes of an `inferd serve --workers` (not multiprocessing's helpers)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return [child for child in children if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_workers_share_one_port_and_drain_on_sigterm(tmp_path: Path) -> None:
    config = '[server]\ngrace_s = 20\n[models.echo]\nworkflow = "echo"\n'
    process, address = start_serve(tmp_path, config, "--workers", "2")
    try:
        for _ in range(600):
            workers = _workers(process.pid)
            if len(workers) == 2:
                break
            threading.Event().wait(0.05)
        assert len(workers) == 2
        # Each connection lands on one worker; both must answer on the one port.
        answered: set[str] = set()
        for attempt in range(200):
            with Client(address, timeout=30) as client:
                try:
                    assert client.infer("echo", "hi").output == "hi"
                except Exception:
                    threading.Event().wait(0.05)  # a worker still starting
                    continue
                answered.add(client.health())
            if attempt > 20:
                break
        assert answered == {"SERVING"}
        with Client(address, timeout=60) as client:
            chunks = client.stream("echo", "draining all workers", parameters={"delay_ms": 200})
            first = next(chunks)
            process.send_signal(signal.SIGTERM)
            rest = [chunk.output for chunk in chunks if not chunk.final]
        assert [first.output, *rest] == ["draining", " all", " workers"]
        assert process.wait(30) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        output = stop_serve(process)
    assert "started 2 workers" in output


def test_event_loop_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where uvloop is not installed (Windows), auto falls back to asyncio's loop and asking
    for uvloop is a configuration error that says what to do."""
    import asyncio

    from inferd.errors import ConfigError
    from inferd.server.app import event_loop_factory

    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now raises ImportError
    assert event_loop_factory("auto") is asyncio.new_event_loop
    assert event_loop_factory("asyncio") is asyncio.new_event_loop
    with pytest.raises(ConfigError, match="pip install uvloop"):
        event_loop_factory("uvloop")


SLOW_SETUP = '''
import time

from inferd.workflow import Workflow


class SlowSetup(Workflow):
    def setup(self) -> None:
        time.sleep(4)

    def run(self, features):
        return features
'''


def test_sigterm_while_a_model_still_sets_up_stops_cleanly(tmp_path: Path) -> None:
    """The setup thread outlives the server's event loop: when it ends, it must not try to
    reach the closed loop (that printed a traceback at every early Ctrl-C)."""
    (tmp_path / "slow_setup.py").write_text(SLOW_SETUP)
    config = '[models.echo]\nworkflow = "echo"\n[models.slow]\nworkflow = "slow_setup:SlowSetup"\n'
    process, address = start_serve(tmp_path, config)
    try:
        with Client(address, timeout=60) as client:
            wait_for_echo(client)
        process.send_signal(signal.SIGTERM)  # "slow" is still in its setup
        assert process.wait(30) == 0  # the process waits for the setup thread, which ends after the loop
    finally:
        output = stop_serve(process)
    assert "model slow: setting up" in output and "stopped" in output
    assert "Traceback" not in output, output


def _free_pair() -> int:
    """A port P with P + 1 free too (the second worker's metrics)."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row")


def test_each_worker_serves_its_metrics_on_port_plus_its_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    base = _free_pair()
    monkeypatch.setenv("INFERD_METRICS_ADDRESS", f"127.0.0.1:{base}")
    process, address = start_serve(tmp_path, '[models.echo]\nworkflow = "echo"\n', "--workers", "2")

    def served(port: int) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
        except OSError:
            return None  # that worker is still starting
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "inferd_requests_total" and sample.labels == {"model": "echo", "rpc": "Infer", "code": "OK"}
        )

    try:
        for _ in range(600):
            if served(base) is not None and served(base + 1) is not None:
                break
            threading.Event().wait(0.05)
        before = [served(base), served(base + 1)]
        assert None not in before, "a worker's metrics never answered"
        sent = 0
        while sent < 40:
            with Client(address, timeout=30) as client:  # a connection each: the kernel spreads them
                try:
                    client.infer("echo", "hi")
                except InferdError:
                    threading.Event().wait(0.05)  # a worker's echo still starting
                    continue
                sent += 1
        after = [served(base), served(base + 1)]
        counted = [a - b for a, b in zip(after, before)]  # type: ignore[operator]
        assert sum(counted) == sent  # every call counted once, by the worker that served it
    finally:
        stop_serve(process)
