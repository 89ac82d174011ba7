"""Servers as subprocesses: free ports, process groups with their logs and CPU time, the inferd,
bare and MLServer launchers, and a context that stops every server started in it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import BENCHES, CONFIGS, MAIN_PYTHON, MLSERVER_BATCHING, MLSERVER_VENV, PEERS, PYTRITON_VENV, RAY_VENV, ROOT, WINE_ONNX, WORK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A server subprocess in its own process group, logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    #: Processes that serve this one (a traced server's OTLP sink), stopped with it.
    companions: list[Process] = field(default_factory=list)

    def tree_cpu_s(self) -> float:
        """User + system CPU seconds of the process and its live children."""
        import psutil

        try:
            root = psutil.Process(self.popen.pid)
            total = 0.0
            for process in [root, *root.children(recursive=True)]:
                try:
                    times = process.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            return total
        except psutil.NoSuchProcess:
            return float("nan")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        for companion in self.companions:
            companion.stop()
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


def start_process(name: str, argv: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Process:
    log_path = WORK / f"{name}.log"
    handle = log_path.open("wb")
    popen = subprocess.Popen(
        argv, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
    )
    handle.close()
    return Process(name, popen, log_path)


def start_inferd(
    name: str, config: Path, loop: str = "auto", *, metrics: bool = True, traces_to: str | None = None
) -> tuple[Process, str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    argv = [str(MAIN_PYTHON), "-m", "inferd", "serve", "--config", str(config), "--address", address, "--loop", loop]
    # Metrics on a free port of their own (the default port would be taken by the first server).
    env = {"INFERD_METRICS_ADDRESS": "127.0.0.1:0", "INFERD_METRICS_ENABLED": "true" if metrics else "false"}
    if traces_to is not None:  # every call traced (the default sampler), spans to an OTLP sink
        env.update({"INFERD_TRACING": "true", "INFERD_TRACING_ENDPOINT": traces_to})
    return start_process(name, argv, env=env), address


def start_traced(name: str) -> tuple[Process, str]:
    """inferd-off with tracing at 100% sampling, exporting to an OTLP sink of its own: a process
    beside it, as a collector would be, stopped with the server."""
    sink_port = free_port()
    sink = start_process(f"{name}-sink", [str(MAIN_PYTHON), "-m", "benches.serve.otlp_sink", str(sink_port)])
    process, address = start_inferd(name, CONFIGS / "batching-off.toml", traces_to=f"http://127.0.0.1:{sink_port}")
    process.companions.append(sink)
    return process, address


def start_bare(name: str, response: Path | None, loop: str = "auto", model: Path | None = None) -> tuple[Process, str]:
    address = f"127.0.0.1:{free_port()}"
    argv = [str(MAIN_PYTHON), str(BENCHES / "bare_server.py"), "--address", address, "--loop", loop]
    if response is not None:
        argv += ["--response", str(response)]
    if model is not None:
        argv += ["--model", str(model)]
    return start_process(name, argv), address


def start_mlserver(variant: str) -> tuple[Process, str]:
    """MLServer in a model repository of its own under benches/.work/ (settings + wine)."""
    repository = WORK / f"repo-{variant}"
    shutil.rmtree(repository, ignore_errors=True)
    (repository / "wine").mkdir(parents=True)
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    settings: dict[str, Any] = {"host": "127.0.0.1", "grpc_port": grpc_port, "http_port": http_port, "metrics_port": metrics_port}
    if variant != "mlserver-default":
        settings.update(json.loads((BENCHES / "mlserver" / "settings.json").read_text()))
    if variant == "mlserver-pw2":
        settings["parallel_workers"] = 2
    model = json.loads((BENCHES / "mlserver" / "wine" / "model-settings.json").read_text())
    model["parameters"]["uri"] = str(WINE_ONNX)
    if variant == "mlserver-batching":
        model.update(MLSERVER_BATCHING)
    (repository / "settings.json").write_text(json.dumps(settings, indent=2))
    (repository / "wine" / "model-settings.json").write_text(json.dumps(model, indent=2))
    env = {"PYTHONPATH": str(BENCHES / "mlserver")}
    argv = [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(repository)]
    return start_process(variant, argv, cwd=repository, env=env), f"127.0.0.1:{grpc_port}"


def start_triton(variant: str) -> tuple[Process, str]:
    """Triton through PyTriton (benches/peers/pytriton_server.py), batching off or dynamic."""
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    argv = [
        str(PYTRITON_VENV / "bin" / "python"), str(PEERS / "pytriton_server.py"), "--model", str(WINE_ONNX),
        "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--metrics-port", str(metrics_port),
        "--batching", "on" if variant == "triton-batching" else "off",
    ]  # fmt: skip
    return start_process(variant, argv), f"127.0.0.1:{grpc_port}"


def start_ray(name: str) -> tuple[Process, str]:
    """Ray Serve's gRPC proxy (benches/peers/ray_server.py); Ray's own processes run in the
    server's process group, stopped with it."""
    grpc_port, http_port = free_port(), free_port()
    argv = [str(RAY_VENV / "bin" / "python"), str(PEERS / "ray_server.py"), "--model", str(WINE_ONNX), "--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    return start_process(name, argv, env={"RAY_USAGE_STATS_ENABLED": "0"}), f"127.0.0.1:{grpc_port}"


def start_server(server: str, bare_response: Path | None) -> tuple[Process, str]:
    if server == "inferd-off":
        return start_inferd(server, CONFIGS / "batching-off.toml")
    if server == "inferd-on":
        return start_inferd(server, CONFIGS / "batching-on.toml")
    if server == "inferd-traced":
        return start_traced(server)
    if server == "inferd-nometrics":
        return start_inferd(server, CONFIGS / "batching-off.toml", metrics=False)
    if server == "inferd-asyncio":
        return start_inferd(server, CONFIGS / "batching-off.toml", loop="asyncio")
    if server in ("bare", "bare-asyncio"):
        return start_bare(server, bare_response, loop="asyncio" if server == "bare-asyncio" else "auto")
    if server == "bare-model":
        return start_bare(server, bare_response, model=WINE_ONNX)
    if server.startswith("triton"):
        return start_triton(server)
    if server == "ray":
        return start_ray(server)
    return start_mlserver(server)



@contextmanager
def servers() -> Iterator[dict[str, tuple[Process, str]]]:
    """Started servers by name; every one is stopped on the way out, whatever happened."""
    running: dict[str, tuple[Process, str]] = {}
    try:
        yield running
    finally:
        for process, _ in running.values():
            process.stop()
