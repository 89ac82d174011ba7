"""Serving benchmark: inferd against MLServer and a bare grpc.aio server, one load generator.

    bash benches/serve_setup.sh                  # once: ghz, MLServer's venv (idempotent)
    .venv/bin/python benches/serve.py [--duration S] [--concurrency 1,8,32,64] [--quick]
                                      [--targets a,b,...] [--out benches/results/serve.json]

Every target is started here as a subprocess on a free 127.0.0.1 port, waited for with a first
successful call, checked for the right answer (the probabilities ONNX Runtime gives when run
directly), then loaded with ghz (a Go gRPC load generator; ``--loadgen python`` uses an asyncio
client instead) at each concurrency: batch-1 requests, a warm-up, then a fixed duration, capped
in time and count. Per point: throughput (req/s), p50/p90/p99 latency (ms) and the server's
CPU seconds per request (its process tree, from psutil). Servers are always stopped at the end.

Targets (``--targets``; default all but the ``*`` ones):
  inferd-off        inferd, batching off, wine model, tensor payload ``input`` float32 [1, 13]
  inferd-on         inferd, batching on (benches/configs/batching-on.toml), same request
  inferd-json       inferd, batching off, one JSON record (inferd's own path: the Rust adapter)
  inferd-on-json *  inferd, batching on, one JSON record
  bare              benches/bare_server.py: a fixed answer, no model
  bare-model        the bare server that also runs wine.onnx on each request (ONNX Runtime,
                    inline), then gives the same fixed answer: the stack plus the model's run
  inferd-asyncio *  inferd-off on asyncio's event loop (server.loop = "asyncio"; default: uvloop)
  bare-asyncio *    the bare server on asyncio's event loop
  mlserver-default  MLServer 1.7.1 as shipped (debug access log, metrics, 1 parallel worker)
  mlserver-best     MLServer, no access log, no metrics, parallel_workers 0 (in-process)
  mlserver-batching MLServer best + adaptive batching (max_batch_size 32, max_batch_time 2 ms)
  mlserver-pw2 *    MLServer, no access log, no metrics, parallel_workers 2
  mlp-off, mlp-on   "batching pays": benches/models.py's MLP (float32 [1, 256]), inferd
                    batching off / on, at the highest concurrency only (--mlp-concurrency)

Results: benches/results/serve.json (machine facts, versions, every point, the goals' ratios)
and serve.png (throughput and p99 against concurrency; drawn with matplotlib from MLServer's
venv, benches/.venv-mlserver, as matplotlib is no dependency of inferd).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ROOT / "benches"
WORK = BENCHES / ".work"
GHZ = BENCHES / ".bin" / "ghz"
MLSERVER_VENV = BENCHES / ".venv-mlserver"
MAIN_PYTHON = Path(sys.executable)
WINE_ONNX = ROOT / "service" / "models" / "wine.onnx"
CONFIGS = BENCHES / "configs"
README = BENCHES / "README.md"

#: One wine (the README's example), in the model's feature order.
WINE_FEATURES = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
    "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
    "od280_od315", "proline",
]  # fmt: skip
WINE = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]

INFERD_INFER = "/inferd.v1.Inference/Infer"
KSERVE_INFER = "/inference.GRPCInferenceService/ModelInfer"
ALL_TARGETS = [
    "inferd-off", "inferd-on", "inferd-json", "inferd-on-json", "bare", "bare-model", "inferd-asyncio", "bare-asyncio",
    "mlserver-default", "mlserver-best", "mlserver-batching", "mlserver-pw2", "mlp-off", "mlp-on",
]  # fmt: skip
DEFAULT_TARGETS = [t for t in ALL_TARGETS if t not in ("inferd-on-json", "mlserver-pw2", "inferd-asyncio", "bare-asyncio")]
LABELS = {
    "inferd-off": "inferd, batching off (tensor)",
    "inferd-on": "inferd, batching on (tensor)",
    "inferd-json": "inferd, batching off (JSON record)",
    "inferd-on-json": "inferd, batching on (JSON record)",
    "bare": "bare grpc.aio (fixed answer)",
    "bare-model": "bare grpc.aio + the model's run (fixed answer)",
    "inferd-asyncio": "inferd, batching off (tensor), asyncio loop",
    "bare-asyncio": "bare grpc.aio (fixed answer), asyncio loop",
    "mlserver-default": "MLServer 1.7.1, default settings",
    "mlserver-best": "MLServer 1.7.1, best (no log, no metrics, in-process)",
    "mlserver-batching": "MLServer 1.7.1, best + adaptive batching",
    "mlserver-pw2": "MLServer 1.7.1, no log, no metrics, 2 workers",
    "mlp-off": "MLP 2x4096, inferd batching off",
    "mlp-on": "MLP 2x4096, inferd batching on",
}
#: MLServer's adaptive batching for "mlserver-batching" (max_batch_time is in seconds).
MLSERVER_BATCHING = {"max_batch_size": 32, "max_batch_time": 0.002}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- ports, processes --------------------------------------------------------------------------


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


# -- requests and answers ----------------------------------------------------------------------


def write_protoset(path: Path, files: list[Any]) -> None:
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet()
    for file in files:
        file.CopyToProto(fds.file.add())
    path.write_bytes(fds.SerializeToString())


def kserve_messages() -> dict[str, Any]:
    """KServe v2 message classes, from MLServer's own compiled dataplane.proto (as a protoset
    written by MLServer's venv: MLServer ships no .proto file)."""
    from google.protobuf import descriptor_pb2, message_factory

    protoset = WORK / "kserve.protoset"
    if not protoset.exists():
        code = (
            "import sys; from google.protobuf import descriptor_pb2; from mlserver.grpc import dataplane_pb2 as d;"
            "s = descriptor_pb2.FileDescriptorSet(); d.DESCRIPTOR.CopyToProto(s.file.add());"
            "open(sys.argv[1], 'wb').write(s.SerializeToString())"
        )
        subprocess.run([str(MLSERVER_VENV / "bin" / "python"), "-c", code, str(protoset)], check=True)
    fds = descriptor_pb2.FileDescriptorSet.FromString(protoset.read_bytes())
    return dict(message_factory.GetMessages(list(fds.file)))


def inferd_protoset() -> Path:
    from google.protobuf import struct_pb2

    from inferd.v1 import inference_pb2

    path = WORK / "inferd.protoset"
    write_protoset(path, [struct_pb2.DESCRIPTOR, inference_pb2.DESCRIPTOR])
    return path


def tensor_request(model: str, array: Any) -> bytes:
    from inferd.v1 import inference_pb2 as pb

    tensor = pb.Tensor(name="input", dtype=pb.DATA_TYPE_FLOAT32, shape=list(array.shape), data=array.astype("<f4").tobytes())
    return pb.InferRequest(model=model, input=pb.Payload(tensors=pb.Tensors(tensors=[tensor]))).SerializeToString()


def json_request(model: str, record: dict[str, float]) -> bytes:
    from inferd.v1 import inference_pb2 as pb

    return pb.InferRequest(model=model, input=pb.Payload(json=json.dumps([record]).encode())).SerializeToString()


def inferd_outputs(answer: bytes) -> dict[str, Any]:
    """An InferResponse's outputs as numpy arrays / lists, whatever payload kind it is."""
    import numpy as np

    from inferd.v1 import inference_pb2 as pb

    response = pb.InferResponse.FromString(answer)
    kind = response.output.WhichOneof("kind")
    if kind == "json":
        records = json.loads(response.output.json)
        return {key: np.array([record[key] for record in records]) for key in records[0]}
    outputs: dict[str, Any] = {}
    for tensor in response.output.tensors.tensors:
        if tensor.dtype == pb.DATA_TYPE_STRING:
            data, strings, offset = tensor.data, [], 0
            while offset < len(data):
                length = int.from_bytes(data[offset : offset + 4], "little")
                strings.append(data[offset + 4 : offset + 4 + length].decode())
                offset += 4 + length
            outputs[tensor.name] = np.array(strings).reshape(tuple(tensor.shape))
        else:
            outputs[tensor.name] = np.frombuffer(tensor.data, dtype="<f4").reshape(tuple(tensor.shape))
    return outputs


def kserve_outputs(messages: dict[str, Any], answer: bytes) -> dict[str, Any]:
    import numpy as np

    response = messages["inference.ModelInferResponse"].FromString(answer)
    outputs: dict[str, Any] = {}
    for index, output in enumerate(response.outputs):
        shape = tuple(output.shape)
        if response.raw_output_contents:
            raw = response.raw_output_contents[index]
            if output.datatype == "BYTES":
                strings, offset = [], 0
                while offset < len(raw):
                    length = int.from_bytes(raw[offset : offset + 4], "little")
                    strings.append(raw[offset + 4 : offset + 4 + length].decode())
                    offset += 4 + length
                outputs[output.name] = np.array(strings).reshape(shape)
            else:
                outputs[output.name] = np.frombuffer(raw, dtype="<f4").reshape(shape)
        elif output.datatype == "BYTES":
            outputs[output.name] = np.array([b.decode() for b in output.contents.bytes_contents]).reshape(shape)
        else:
            outputs[output.name] = np.array(output.contents.fp32_contents, dtype=np.float32).reshape(shape)
    return outputs


def reference(model: Path, array: Any) -> dict[str, Any]:
    """What ONNX Runtime answers when run directly."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_outputs()]
    return {name: np.asarray(value) for name, value in zip(names, session.run(names, {"input": array}))}


def cold_cache_probe(model: Path = WINE_ONNX, calls: int = 200) -> dict[str, float]:
    """ONNX Runtime's run of ``model`` (one row, CPU, in this process): its median time when
    called back to back, and after this thread has spun on the clock, touching no memory, for
    1 ms and 3 ms. On a core of its own the three are close. Where they are far apart, something
    outside the process evicts the caches between calls, and a loaded server's model calls pay
    the slow price: a fact of the machine, recorded with each run."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_outputs()]
    feed = {session.get_inputs()[0].name: np.array([WINE], dtype=np.float32)}
    out: dict[str, float] = {}
    for label, gap in (("back_to_back", 0.0), ("after_1ms_spin", 1e-3), ("after_3ms_spin", 3e-3)):
        times = []
        for _ in range(calls):
            until = time.perf_counter() + gap
            while time.perf_counter() < until:
                pass
            started = time.perf_counter()
            session.run(names, feed)
            times.append(time.perf_counter() - started)
        out[f"{label}_us"] = round(statistics.median(times) * 1e6, 1)
    return out


def same_answer(got: dict[str, Any], want: dict[str, Any]) -> str | None:
    """None when ``got`` has ``want``'s outputs with the same values; else what differs."""
    import numpy as np

    for name, expected in want.items():
        if name not in got:
            return f"output {name!r} missing (got {sorted(got)})"
        value = np.asarray(got[name])
        if expected.dtype.kind in "OUS":
            if [str(v) for v in value.reshape(-1)] != [str(v) for v in expected.reshape(-1)]:
                return f"{name}: {value.tolist()} != {expected.tolist()}"
        elif value.size != expected.size or not np.allclose(value.reshape(-1), expected.reshape(-1), rtol=1e-4, atol=1e-5):
            return f"{name}: {value.reshape(-1)[:4].tolist()}... != {expected.reshape(-1)[:4].tolist()}..."
    return None


# -- targets -----------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    server: str  # which server process serves it (several targets share one inferd)
    method: str
    request: bytes
    protoset: Path
    decode: Callable[[bytes], dict[str, Any]]
    want: dict[str, Any]
    concurrency: list[int]
    model: str = "wine"


@dataclass
class Point:
    target: str
    label: str
    concurrency: int
    duration_s: float
    requests: int
    ok: int
    errors: dict[str, int]
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    server_cpu_s: float
    server_cpu_ms_per_request: float
    loadgen: str
    loadgen_cpu_s: float = float("nan")
    cut_at_end: int = 0
    error_messages: dict[str, int] = field(default_factory=dict)
    #: inferd with batching on: what its batcher did during the timed part (from ListModels).
    batching: dict[str, Any] | None = None
    #: CPU time the hypervisor gave to other guests during the timed part, as a percentage of
    #: the machine's CPU time (/proc/stat "steal"): high steal makes a point unreliable.
    steal_pct: float = float("nan")


#: Steal above this (percent of the machine's CPU time) marks a point unreliable in the report.
STEAL_WARN_PCT = 10


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) jiffies of the whole machine so far, from /proc/stat (Linux only)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float:
    if before is None or after is None or after[1] <= before[1]:
        return float("nan")
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def call_once(address: str, method: str, request: bytes, timeout: float = 10) -> bytes:
    import grpc

    with grpc.insecure_channel(address) as channel:
        call: Any = channel.unary_unary(method)
        answer: bytes = call(request, timeout=timeout)
        return answer


def wait_ready(process: Process, address: str, method: str, request: bytes, timeout: float = 180) -> bytes:
    """Calls until the first success (the model is loaded); returns that answer."""
    import grpc

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited ({process.popen.returncode}):\n{process.log_tail()}")
        try:
            return call_once(address, method, request, timeout=5)
        except grpc.RpcError as error:
            last = error
            time.sleep(0.25)
    raise RuntimeError(f"{process.name} not answering after {timeout:.0f} s: {last}\n{process.log_tail()}")


def batching_snapshot(address: str, model: str) -> dict[str, Any] | None:
    """The model's batcher counters from inferd's ListModels; None without batching."""
    import grpc

    from inferd.v1 import inference_pb2 as pb

    try:
        answer = call_once(address, "/inferd.v1.Inference/ListModels", pb.ListModelsRequest().SerializeToString())
        for info in pb.ListModelsResponse.FromString(answer).models:
            if info.name == model and info.HasField("batching"):
                stats = info.batching
                return {"batches": stats.batches, "rows": stats.rows, "releases": dict(stats.releases)}
    except (grpc.RpcError, ValueError, AttributeError):
        pass
    return None


def batching_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any] | None:
    if before is None or after is None:
        return None
    batches = after["batches"] - before["batches"]
    rows = after["rows"] - before["rows"]
    releases = {k: v - before["releases"].get(k, 0) for k, v in after["releases"].items()}
    return {
        "batches": batches,
        "rows": rows,
        "mean_rows": round(rows / batches, 2) if batches else 0.0,
        "releases": {k: v for k, v in releases.items() if v},
    }


def start_inferd(name: str, config: Path, loop: str = "auto") -> tuple[Process, str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    argv = [str(MAIN_PYTHON), "-m", "inferd", "serve", "--config", str(config), "--address", address, "--loop", loop]
    return start_process(name, argv), address


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


# -- load generators ---------------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


CONNECTIONS = 1  # HTTP/2 connections the load generator spreads its workers over (--connections)


def run_ghz(target: Target, address: str, concurrency: int, duration: float, cap: int) -> dict[str, Any]:
    """One ghz run; returns count, ok, errors, rps and latency percentiles (ms)."""
    request_file = WORK / f"{target.name}.bin"
    # Written count-delimited (a varint length, then the message): ghz tries that form first,
    # and a plain message can happen to parse as it (then ghz sends garbage).
    request_file.write_bytes(varint(len(target.request)) + target.request)
    method = target.method.lstrip("/").replace("/", ".")
    report = WORK / "ghz.json"
    argv = [
        str(GHZ), "--insecure", "--protoset", str(target.protoset), "--call", method,
        "--binary-file", str(request_file), "-c", str(concurrency), "--connections", str(min(CONNECTIONS, concurrency)),
        "-n", str(cap), "-x", f"{duration}s", "--timeout", "10s", "-O", "json", "-o", str(report),
        "--skipFirst", "0", address,
    ]  # fmt: skip
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, stderr = process.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise RuntimeError(f"ghz ran past {duration + 60:.0f} s") from None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    if process.returncode != 0 and not report.exists():
        raise RuntimeError(f"ghz failed ({process.returncode}): {stderr.decode(errors='replace')[-2000:]}")
    data = json.loads(report.read_text())
    report.unlink()
    statuses = {code: int(count) for code, count in (data.get("statusCodeDistribution") or {}).items()}
    ok = statuses.pop("OK", 0)
    # -x stops ghz at the deadline and drops the calls then in flight (at most one a worker);
    # those are no server errors: counted apart, and ghz leaves them out of the percentiles.
    cut = min(concurrency, statuses.get("Unavailable", 0) + statuses.get("Canceled", 0))
    remaining = cut
    for code in ("Canceled", "Unavailable"):
        take = min(remaining, statuses.get(code, 0))
        if take:
            statuses[code] -= take
            remaining -= take
            if not statuses[code]:
                del statuses[code]
    messages = {k[:100]: v for k, v in (data.get("errorDistribution") or {}).items()}
    total_s = data["total"] / 1e9 if data.get("total") else time.perf_counter() - started
    percentiles = {int(item["percentage"]): item["latency"] / 1e6 for item in data.get("latencyDistribution") or []}
    return {
        "requests": int(data["count"]),
        "ok": ok,
        "errors": statuses,
        "cut_at_end": cut,
        "error_messages": messages if statuses else {},
        "duration_s": total_s,
        "rps": ok / total_s if total_s else 0.0,
        "mean_ms": data.get("average", 0) / 1e6,
        "p50_ms": percentiles.get(50, float("nan")),
        "p90_ms": percentiles.get(90, float("nan")),
        "p99_ms": percentiles.get(99, float("nan")),
        "loadgen_cpu_s": cpu,
    }


def run_python_load(target: Target, address: str, concurrency: int, duration: float, cap: int) -> dict[str, Any]:
    """A bounded asyncio gRPC client: ``concurrency`` workers on one channel, raw bytes."""
    import grpc
    import numpy as np

    async def load() -> dict[str, Any]:
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        sent = 0
        async with grpc.aio.insecure_channel(address) as channel:
            call: Any = channel.unary_unary(target.method)
            stop_at = time.perf_counter() + duration

            async def worker() -> None:
                nonlocal sent
                while sent < cap and time.perf_counter() < stop_at:
                    sent += 1
                    began = time.perf_counter()
                    try:
                        await call(target.request, timeout=10)
                    except grpc.aio.AioRpcError as error:
                        errors[error.code().name] += 1
                        continue
                    latencies.append(time.perf_counter() - began)

            started = time.perf_counter()
            cpu_before = time.process_time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_before
        ms = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
        return {
            "requests": sent,
            "ok": len(latencies),
            "errors": dict(errors),
            "cut_at_end": 0,
            "error_messages": {},
            "duration_s": elapsed,
            "rps": len(latencies) / elapsed,
            "mean_ms": float(ms.mean()),
            "p50_ms": float(np.percentile(ms, 50)),
            "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)),
            "loadgen_cpu_s": cpu,
        }

    return asyncio.run(load())


# -- the run -----------------------------------------------------------------------------------


@contextmanager
def servers() -> Iterator[dict[str, tuple[Process, str]]]:
    """Started servers by name; every one is stopped on the way out, whatever happened."""
    running: dict[str, tuple[Process, str]] = {}
    try:
        yield running
    finally:
        for process, _ in running.values():
            process.stop()


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {"python": platform.python_version()}
    for package in ("inferd", "grpcio", "protobuf", "onnxruntime", "onnxruntime-gpu", "numpy", "uvloop"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    if (MLSERVER_VENV / "bin" / "python").exists():
        code = (
            "from importlib.metadata import version as v; import json;"
            "print(json.dumps({p: v(p) for p in ('mlserver', 'grpcio', 'protobuf', 'onnxruntime', 'uvloop')}))"
        )
        out = subprocess.run([str(MLSERVER_VENV / "bin" / "python"), "-c", code], capture_output=True, text=True)
        if out.returncode == 0:
            found.update({f"mlserver-venv {k}" if k != "mlserver" else k: v for k, v in json.loads(out.stdout).items()})
    if GHZ.exists():
        stamp = GHZ.parent / ".ghz-version"
        found["ghz"] = stamp.read_text().strip() if stamp.exists() else "unknown"
    return found


def machine() -> dict[str, Any]:
    import psutil

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
    }


def build_targets(names: list[str], concurrency: list[int], mlp_concurrency: list[int]) -> list[Target]:
    import numpy as np

    sys.path.insert(0, str(BENCHES))
    from models import ensure_models

    wine = np.array([WINE], dtype=np.float32)
    wine_want = reference(WINE_ONNX, wine)
    record = dict(zip(WINE_FEATURES, WINE))
    inferd_set = inferd_protoset()
    targets: list[Target] = []
    for name in names:
        if name in ("inferd-off", "inferd-on"):
            server = "inferd-" + name.split("-")[1]
            targets.append(Target(name, server, INFERD_INFER, tensor_request("wine", wine), inferd_set, inferd_outputs, wine_want, concurrency))
        elif name in ("inferd-json", "inferd-on-json"):
            server = "inferd-on" if name == "inferd-on-json" else "inferd-off"
            targets.append(Target(name, server, INFERD_INFER, json_request("wine", record), inferd_set, inferd_outputs, wine_want, concurrency))
        elif name in ("bare", "bare-model", "bare-asyncio", "inferd-asyncio"):
            targets.append(Target(name, name, INFERD_INFER, tensor_request("wine", wine), inferd_set, inferd_outputs, wine_want, concurrency))
        elif name.startswith("mlserver"):
            messages = kserve_messages()
            request = messages["inference.ModelInferRequest"](
                model_name="wine",
                inputs=[{"name": "input", "datatype": "FP32", "shape": [1, 13], "contents": {"fp32_contents": WINE}}],
            ).SerializeToString()
            decode = (lambda m: lambda answer: kserve_outputs(m, answer))(messages)
            targets.append(Target(name, name, KSERVE_INFER, request, WORK / "kserve.protoset", decode, wine_want, concurrency))
        elif name in ("mlp-off", "mlp-on"):
            mlp = ensure_models()
            row = np.random.default_rng(1).standard_normal((1, 256)).astype(np.float32)
            server = "inferd-" + name.split("-")[1]
            targets.append(Target(name, server, INFERD_INFER, tensor_request("mlp", row), inferd_set, inferd_outputs, reference(mlp, row), mlp_concurrency, "mlp"))
        else:
            raise SystemExit(f"unknown target {name!r}; known: {', '.join(ALL_TARGETS)}")
    return targets


def wine_response(want: dict[str, Any]) -> Path:
    """An InferResponse carrying ONNX Runtime's own wine answer, for the bare server when no
    inferd answer is at hand (``--targets bare`` alone)."""
    from inferd.v1 import inference_pb2 as pb

    tensors = []
    for name, value in want.items():
        if value.dtype.kind in "OUS":
            data = b"".join(len(b).to_bytes(4, "little") + b for b in (str(v).encode() for v in value.reshape(-1)))
            tensors.append(pb.Tensor(name=name, dtype=pb.DATA_TYPE_STRING, shape=list(value.shape), data=data))
        else:
            tensors.append(pb.Tensor(name=name, dtype=pb.DATA_TYPE_FLOAT32, shape=list(value.shape), data=value.astype("<f4").tobytes()))
    path = WORK / "bare-response.bin"
    path.write_bytes(pb.InferResponse(model="wine", output=pb.Payload(tensors=pb.Tensors(tensors=tensors))).SerializeToString())
    return path


def start_server(server: str, bare_response: Path | None) -> tuple[Process, str]:
    if server == "inferd-off":
        return start_inferd(server, CONFIGS / "batching-off.toml")
    if server == "inferd-on":
        return start_inferd(server, CONFIGS / "batching-on.toml")
    if server == "inferd-asyncio":
        return start_inferd(server, CONFIGS / "batching-off.toml", loop="asyncio")
    if server in ("bare", "bare-asyncio"):
        return start_bare(server, bare_response, loop="asyncio" if server == "bare-asyncio" else "auto")
    if server == "bare-model":
        return start_bare(server, bare_response, model=WINE_ONNX)
    return start_mlserver(server)


def measure(args: argparse.Namespace, targets: list[Target]) -> tuple[list[Point], dict[str, str]]:
    load = run_ghz if args.loadgen == "ghz" else run_python_load
    points: list[Point] = []
    checks: dict[str, str] = {}
    bare_response: Path | None = None
    with servers() as running:
        # Group by server (in the order targets were given), one server up at a time.
        order: list[str] = []
        for target in targets:
            if target.server not in order:
                order.append(target.server)
        # The bare server answers with inferd's own bytes: inferd first when both run.
        order.sort(key=lambda server: server.startswith("bare"))
        for server in order:
            if server.startswith("bare") and bare_response is None:
                bare_response = wine_response(next(t.want for t in targets if t.server == server))
            process, address = start_server(server, bare_response)
            running[server] = (process, address)
            try:
                for target in (t for t in targets if t.server == server):
                    try:
                        answer = wait_ready(process, address, target.method, target.request)
                    except RuntimeError as error:
                        checks[target.name] = f"failed: {error}"
                        log(f"[{target.name}] {checks[target.name]}")
                        break
                    problem = same_answer(target.decode(answer), target.want)
                    checks[target.name] = problem or "ok: same outputs as onnxruntime run directly"
                    log(f"[{target.name}] check: {checks[target.name]}")
                    if problem:
                        log(f"[{target.name}] wrong answer: skipped")
                        continue
                    if target.name == "inferd-off" or (target.name == "inferd-on" and bare_response is None):
                        bare_response = WORK / "bare-response.bin"
                        bare_response.write_bytes(answer)
                    for concurrency in target.concurrency:
                        if args.warmup > 0:
                            load(target, address, concurrency, args.warmup, args.cap)
                        inferd = target.method == INFERD_INFER and not server.startswith("bare")
                        batches_before = batching_snapshot(address, target.model) if inferd else None
                        cpu_before, ticks_before = process.tree_cpu_s(), cpu_ticks()
                        result = load(target, address, concurrency, args.duration, args.cap)
                        cpu, ticks_after = process.tree_cpu_s() - cpu_before, cpu_ticks()
                        batches = batching_delta(batches_before, batching_snapshot(address, target.model) if inferd else None)
                        point = Point(
                            target=target.name,
                            label=LABELS[target.name],
                            concurrency=concurrency,
                            server_cpu_s=round(cpu, 3),
                            server_cpu_ms_per_request=round(cpu * 1000 / result["ok"], 4) if result["ok"] else float("nan"),
                            loadgen=args.loadgen,
                            batching=batches,
                            steal_pct=steal_percent(ticks_before, ticks_after),
                            **result,
                        )
                        points.append(point)
                        log(
                            f"[{target.name}] c={concurrency:<3} {point.rps:8.0f} req/s  p50 {point.p50_ms:7.2f}"
                            f"  p90 {point.p90_ms:7.2f}  p99 {point.p99_ms:7.2f} ms  cpu {point.server_cpu_ms_per_request:.3f} ms/req"
                            + f"  steal {point.steal_pct:.0f}%"
                            + (f"  batch {batches['mean_rows']} rows" if batches else "")
                            + (f"  errors {point.errors}" if point.errors else "")
                        )
            finally:
                process.stop()
                del running[server]
    return points, checks


#: The goals' targets, measured again in the paired phase (see :func:`measure_paired`).
PAIRED_TARGETS = ["inferd-off", "inferd-on", "mlserver-best", "mlserver-batching", "bare", "bare-model", "inferd-asyncio", "bare-asyncio"]


def measure_paired(args: argparse.Namespace, targets: list[Target], rounds: int, seconds: float) -> dict[str, Any]:
    """The goals again, at one concurrency, robust to a drifting machine: every server of
    PAIRED_TARGETS up at once, then ``rounds`` rounds in which each target gets a burst of
    ``seconds`` in turn. Drift (neighbours, steal) hits every target of a round alike, so the
    per-round ratios and their median are steadier than one point each from the sweep."""
    load = run_ghz if args.loadgen == "ghz" else run_python_load
    at = 32
    chosen = [t for name in PAIRED_TARGETS for t in targets if t.name == name]
    rps: dict[str, list[float]] = {t.name: [] for t in chosen}
    p99: dict[str, list[float]] = {t.name: [] for t in chosen}
    steal: list[float] = []
    with servers() as running:
        addresses: dict[str, str] = {}
        bare_response = WORK / "bare-response.bin" if (WORK / "bare-response.bin").exists() else None
        for target in chosen:
            if target.server.startswith("bare") and bare_response is None:
                bare_response = wine_response(target.want)
            if target.server not in running:
                running[target.server] = start_server(target.server, bare_response)
            process, address = running[target.server]
            wait_ready(process, address, target.method, target.request)
            addresses[target.name] = address
            if args.warmup > 0:
                load(target, address, at, args.warmup, args.cap)
        for round_ in range(rounds):
            ticks = cpu_ticks()
            for target in chosen:
                result = load(target, addresses[target.name], at, seconds, args.cap)
                rps[target.name].append(result["rps"])
                p99[target.name].append(result["p99_ms"])
            steal.append(steal_percent(ticks, cpu_ticks()))
            log(f"[paired] round {round_ + 1}/{rounds}: " + ", ".join(f"{n} {rps[n][-1]:.0f}" for n in rps) + f" req/s; steal {steal[-1]:.0f}%")

    def best(names: list[str], index: int) -> float:
        return max(rps[name][index] for name in names if name in rps)

    inferd = [n for n in ("inferd-off", "inferd-on") if n in rps]
    mlserver = [n for n in ("mlserver-best", "mlserver-batching") if n in rps]
    out: dict[str, Any] = {
        "concurrency": at,
        "rounds": rounds,
        "seconds": seconds,
        "rps": rps,
        "p99_ms": p99,
        "steal_pct": steal,
        "median_rps": {name: statistics.median(values) for name, values in rps.items()},
        "median_p99_ms": {name: statistics.median(values) for name, values in p99.items()},
    }
    for key, other in (
        ("inferd_vs_mlserver", mlserver),
        ("inferd_vs_bare", ["bare"] if "bare" in rps else []),
        ("inferd_vs_bare_model", ["bare-model"] if "bare-model" in rps else []),
    ):
        if inferd and other:
            out[key] = spread([best(inferd, i) / best(other, i) for i in range(rounds)])
    # What the model's run alone costs the bare server: bare-model over bare, round by round.
    if "bare-model" in rps and "bare" in rps:
        out["bare_model_vs_bare"] = spread([rps["bare-model"][i] / rps["bare"][i] for i in range(rounds)])
    # What uvloop is worth (with the *-asyncio targets): each server on uvloop over asyncio's loop.
    for uv, plain in (("inferd-off", "inferd-asyncio"), ("bare", "bare-asyncio")):
        if uv in rps and plain in rps:
            out.setdefault("uvloop_vs_asyncio", {})[uv] = spread([rps[uv][i] / rps[plain][i] for i in range(rounds)])
    return out


def spread(per_round: list[float]) -> dict[str, float]:
    """Round-by-round ratios as their median and range."""
    return {
        "median": round(statistics.median(per_round), 3),
        "min": round(min(per_round), 3),
        "max": round(max(per_round), 3),
    }


# -- report ------------------------------------------------------------------------------------


def best_at(points: list[dict[str, Any]], names: list[str], concurrency: int) -> dict[str, Any] | None:
    found = [p for p in points if p["target"] in names and p["concurrency"] == concurrency and p["ok"]]
    return max(found, key=lambda p: p["rps"]) if found else None


def ratios(points: list[dict[str, Any]], concurrency: list[int], mlp_concurrency: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    at = 32 if 32 in concurrency else max(concurrency)
    inferd = best_at(points, ["inferd-off", "inferd-on"], at)
    mlserver = best_at(points, ["mlserver-default", "mlserver-best", "mlserver-batching", "mlserver-pw2"], at)
    bare = best_at(points, ["bare"], at)
    bare_model = best_at(points, ["bare-model"], at)
    if inferd and mlserver:
        out["inferd_vs_mlserver"] = {
            "concurrency": at,
            "inferd": inferd["target"],
            "mlserver": mlserver["target"],
            "throughput_ratio": round(inferd["rps"] / mlserver["rps"], 2),
            "inferd_p99_ms": round(inferd["p99_ms"], 2),
            "mlserver_p99_ms": round(mlserver["p99_ms"], 2),
            # Server CPU per request, MLServer's over inferd's: the throughput ratio two CPU-bound
            # servers would reach on a quiet machine (robust when the machine is shared).
            "cpu_ratio": round(mlserver["server_cpu_ms_per_request"] / inferd["server_cpu_ms_per_request"], 2),
            "goal": ">= 2x and a lower p99",
            "met": inferd["rps"] >= 2 * mlserver["rps"] and inferd["p99_ms"] < mlserver["p99_ms"],
        }
    if inferd and bare:
        out["inferd_vs_bare"] = {
            "concurrency": at,
            "inferd": inferd["target"],
            "fraction": round(inferd["rps"] / bare["rps"], 3),
            "cpu_fraction": round(bare["server_cpu_ms_per_request"] / inferd["server_cpu_ms_per_request"], 3),
            "goal": ">= 0.70",
            "met": inferd["rps"] >= 0.7 * bare["rps"],
            "by_concurrency": {
                str(c): round(i["rps"] / b["rps"], 3)
                for c in concurrency
                if (i := best_at(points, ["inferd-off", "inferd-on"], c)) and (b := best_at(points, ["bare"], c))
            },
        }
    if inferd and bare_model:
        # No goal: what inferd costs over a server that runs the same model and nothing else.
        out["inferd_vs_bare_model"] = {
            "concurrency": at,
            "inferd": inferd["target"],
            "fraction": round(inferd["rps"] / bare_model["rps"], 3),
            "cpu_fraction": round(bare_model["server_cpu_ms_per_request"] / inferd["server_cpu_ms_per_request"], 3),
        }
    if bare and bare_model:
        out["model_run_cost"] = {
            "concurrency": at,
            "bare_model_vs_bare": round(bare_model["rps"] / bare["rps"], 3),
            "server_cpu_ms_per_request_added": round(bare_model["server_cpu_ms_per_request"] - bare["server_cpu_ms_per_request"], 4),
        }
    top = max(mlp_concurrency)
    off, on = best_at(points, ["mlp-off"], top), best_at(points, ["mlp-on"], top)
    if off and on:
        out["batching_pays"] = {
            "model": "benches/models.py mlp.onnx: float32 [n, 256] -> 2 x (Gemm 4096 + Relu) -> Gemm 16 -> [n, 16]",
            "concurrency": top,
            "off_rps": round(off["rps"], 1),
            "on_rps": round(on["rps"], 1),
            "ratio": round(on["rps"] / off["rps"], 2),
            "cpu_ratio": round(off["server_cpu_ms_per_request"] / on["server_cpu_ms_per_request"], 2),
            "on_mean_batch_rows": (on.get("batching") or {}).get("mean_rows"),
            "off_p99_ms": round(off["p99_ms"], 2),
            "on_p99_ms": round(on["p99_ms"], 2),
            "goal": ">= 3x",
            "met": on["rps"] >= 3 * off["rps"],
        }
    return out


def table(results: dict[str, Any]) -> str:
    rows = [
        "| target | concurrency | req/s | p50 ms | p90 ms | p99 ms | server CPU ms/req | load gen. CPU ms/req | mean batch | errors | steal % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in results["points"]:
        errors = sum(p["errors"].values()) if p["errors"] else 0
        loadgen_cpu = p["loadgen_cpu_s"] * 1000 / p["ok"] if p["ok"] else float("nan")
        batch = f"{p['batching']['mean_rows']:.1f}" if p.get("batching") else ""
        rows.append(
            f"| {p['target']} | {p['concurrency']} | {p['rps']:,.0f} | {p['p50_ms']:.2f} | {p['p90_ms']:.2f} | "
            f"{p['p99_ms']:.2f} | {p['server_cpu_ms_per_request']:.3f} | {loadgen_cpu:.3f} | {batch} | {errors} | "
            f"{p.get('steal_pct', float('nan')):.0f} |"
        )
    lines = ["\n".join(rows), ""]
    r = results["ratios"]
    if "inferd_vs_mlserver" in r:
        x = r["inferd_vs_mlserver"]
        lines.append(
            f"- inferd ({x['inferd']}) vs MLServer's best ({x['mlserver']}) at concurrency {x['concurrency']}: "
            f"**{x['throughput_ratio']}x** throughput, p99 {x['inferd_p99_ms']} vs {x['mlserver_p99_ms']} ms "
            f"(goal {x['goal']}: {'met' if x['met'] else 'NOT met'}); by server CPU a request: {x['cpu_ratio']}x"
        )
    if "inferd_vs_bare" in r:
        x = r["inferd_vs_bare"]
        lines.append(
            f"- inferd ({x['inferd']}) vs the bare grpc.aio server at concurrency {x['concurrency']}: "
            f"**{x['fraction']:.0%}** (goal {x['goal']}: {'met' if x['met'] else 'NOT met'}); by concurrency: "
            + ", ".join(f"{c}: {f:.0%}" for c, f in x["by_concurrency"].items())
            + f"; by server CPU a request: {x['cpu_fraction']:.0%}"
        )
    if "model_run_cost" in r:
        x = r["model_run_cost"]
        lines.append(
            f"- the model's run alone (bare-model vs bare) at concurrency {x['concurrency']}: "
            f"**{x['bare_model_vs_bare']:.0%}** of the bare server's throughput; "
            f"+{x['server_cpu_ms_per_request_added']:.3f} ms of server CPU a request"
        )
    if "inferd_vs_bare_model" in r:
        x = r["inferd_vs_bare_model"]
        lines.append(
            f"- inferd ({x['inferd']}) vs the bare server running the same model at concurrency {x['concurrency']}: "
            f"**{x['fraction']:.0%}** (no goal); by server CPU a request: {x['cpu_fraction']:.0%}"
        )
    if "batching_pays" in r:
        x = r["batching_pays"]
        lines.append(
            f"- batching pays (MLP 2x4096) at concurrency {x['concurrency']}: on {x['on_rps']:,.0f} vs off "
            f"{x['off_rps']:,.0f} req/s = **{x['ratio']}x** (goal {x['goal']}: {'met' if x['met'] else 'NOT met'}); "
            f"p99 {x['on_p99_ms']} vs {x['off_p99_ms']} ms; by server CPU a request: {x['cpu_ratio']}x; "
            f"mean batch {x['on_mean_batch_rows']} rows"
        )
    paired = results.get("paired")
    if paired:
        lines.append(
            f"- paired ({paired['rounds']} rounds of {paired['seconds']:g} s a target at concurrency "
            f"{paired['concurrency']}, every server up at once, the targets in turn in each round; medians): "
            + ", ".join(f"{name} {value:,.0f} req/s" for name, value in paired["median_rps"].items())
        )
        if "inferd_vs_mlserver" in paired:
            x = paired["inferd_vs_mlserver"]
            lines.append(
                f"  - inferd (better of off/on) vs MLServer (better of best/batching), round by round: "
                f"**{x['median']:.2f}x** median ({x['min']:.2f}-{x['max']:.2f}); goal >= 2x"
            )
        for key, what, goal in (
            ("inferd_vs_bare", "inferd vs the bare server", "goal >= 70%"),
            ("bare_model_vs_bare", "the model's run alone (bare-model vs bare)", "no goal"),
            ("inferd_vs_bare_model", "inferd vs the bare server running the same model", "no goal"),
        ):
            if key in paired:
                x = paired[key]
                lines.append(
                    f"  - {what}, round by round: **{x['median']:.0%}** median ({x['min']:.0%}-{x['max']:.0%}); {goal}"
                )
        for name, x in paired.get("uvloop_vs_asyncio", {}).items():
            lines.append(
                f"  - {name} on uvloop vs on asyncio's loop, round by round: **{x['median']:.2f}x** median "
                f"({x['min']:.2f}-{x['max']:.2f})"
            )
    probe = results["machine"].get("wine_run_us")
    if probe:
        lines.append(
            f"- ONNX Runtime's wine run in the bench's own process, median: {probe['back_to_back_us']} µs back to back, "
            f"{probe['after_1ms_spin_us']} µs after 1 ms and {probe['after_3ms_spin_us']} µs after 3 ms of spinning "
            "that touches no memory (what the machine's caches do between a server's calls)"
        )
    stolen = [p for p in results["points"] if p.get("steal_pct", 0) > STEAL_WARN_PCT]
    if stolen:
        names = ", ".join(f"{p['target']} c={p['concurrency']}" for p in stolen)
        lines.append(
            f"- **{len(stolen)} of {len(results['points'])} points ran with more than {STEAL_WARN_PCT}% of the "
            f"machine's CPU stolen by the hypervisor** ({names}): "
            "their numbers say as much about the neighbours as about the servers"
        )
    return "\n".join(lines)


def plot(results_path: Path, png: Path) -> None:
    """Throughput and p99 against concurrency, one line per target (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads(results_path.read_text())
    by_target: dict[str, list[dict[str, Any]]] = {}
    for point in results["points"]:
        by_target.setdefault(point["target"], []).append(point)
    figure, (left, right, bars) = plt.subplots(1, 3, figsize=(17, 5.4), gridspec_kw={"width_ratios": [5, 5, 2]})
    ticks: set[int] = set()
    mlp: dict[str, dict[str, Any]] = {}
    for name, points in by_target.items():
        points.sort(key=lambda p: p["concurrency"])
        if name.startswith("mlp"):
            mlp[name] = points[-1]
            continue
        xs = [p["concurrency"] for p in points]
        ticks.update(xs)
        style = ":" if name.startswith("bare") else "--" if name.startswith("mlserver") else "-"
        left.plot(xs, [p["rps"] for p in points], style, marker="o", label=points[0]["label"])
        right.plot(xs, [p["p99_ms"] for p in points], style, marker="o", label=points[0]["label"])
    for axis, title, unit in ((left, "throughput (wine, batch-1 requests)", "requests/s"), (right, "p99 latency", "ms")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(sorted(ticks), [str(t) for t in sorted(ticks)])
        axis.set_xlabel("concurrency (requests in flight)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    right.set_yscale("log")
    left.set_ylim(bottom=0)
    left.legend(fontsize=7, loc="best")
    if mlp:
        names = sorted(mlp)
        heights = [mlp[n]["rps"] for n in names]
        bars.bar(["batching off" if n == "mlp-off" else "batching on" for n in names], heights, color=["#999999", "#1f77b4"][: len(names)])
        for index, (name, height) in enumerate(zip(names, heights)):
            bars.text(index, height, f"{height:,.0f}\np99 {mlp[name]['p99_ms']:.0f} ms", ha="center", va="bottom", fontsize=8)
        bars.set_title(f"batching pays\nMLP 2x4096, concurrency {mlp[names[0]]['concurrency']}", fontsize=10)
        bars.set_ylabel("requests/s")
        bars.margins(y=0.2)
    else:
        bars.axis("off")
    m = results["machine"]
    figure.suptitle(
        f"inferd serving benchmark: batch-1 gRPC requests, {m['cores']} cores, {results['settings']['loadgen']}, "
        f"{results['settings']['duration_s']} s a point ({results['date'][:10]})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(png, dpi=110)


def render_plot(out: Path) -> str:
    png = out.with_suffix(".png")
    python = MLSERVER_VENV / "bin" / "python"
    try:
        import matplotlib  # noqa: F401

        plot(out, png)
        return f"wrote {png}"
    except ImportError:
        pass
    if python.exists():
        done = subprocess.run([str(python), __file__, "--plot-only", str(out)], capture_output=True, text=True)
        if done.returncode == 0:
            return f"wrote {png}"
        return f"no plot: {done.stderr.strip()[-400:]}"
    return "no plot: matplotlib not found (run benches/serve_setup.sh)"


def update_readme(text: str) -> None:
    start, end = "<!-- serve-table:start -->", "<!-- serve-table:end -->"
    if not README.exists():
        return
    content = README.read_text()
    if start in content and end in content:
        before, rest = content.split(start, 1)
        _, after = rest.split(end, 1)
        README.write_text(f"{before}{start}\n{text}\n{end}{after}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, help="seconds a point (default 10; --quick 2)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before each point (default 2; --quick 0.5)")
    parser.add_argument("--concurrency", default="1,8,32,64", help="requests in flight, comma-separated")
    parser.add_argument("--mlp-concurrency", default=None, help="for mlp-off/mlp-on (default: the highest of --concurrency)")
    parser.add_argument("--quick", action="store_true", help="2 s points, 0.5 s warm-up: a smoke run")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help=f"comma-separated, of: {', '.join(ALL_TARGETS)}")
    parser.add_argument("--loadgen", choices=["ghz", "python"], default=None, help="default ghz when built, else python")
    parser.add_argument("--connections", type=int, default=1, help="HTTP/2 connections for ghz's workers (default 1)")
    parser.add_argument("--cap", type=int, default=2_000_000, help="most requests a point sends")
    parser.add_argument("--out", type=Path, default=BENCHES / "results" / "serve.json")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the table in benches/README.md")
    parser.add_argument("--paired-rounds", type=int, default=None, help="rounds of the paired phase (default 7; --quick 2; 0: none)")
    parser.add_argument("--paired-seconds", type=float, default=3.0, help="seconds a target in each paired round (default 3)")
    parser.add_argument("--plot-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plot_only:
        plot(args.plot_only, args.plot_only.with_suffix(".png"))
        return
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0)
    concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    mlp_concurrency = [int(c) for c in args.mlp_concurrency.split(",")] if args.mlp_concurrency else [max(concurrency)]
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    args.loadgen = args.loadgen or ("ghz" if GHZ.exists() else "python")
    global CONNECTIONS
    CONNECTIONS = max(1, args.connections)
    if args.loadgen == "ghz" and not GHZ.exists():
        raise SystemExit(f"{GHZ} not found: run benches/serve_setup.sh, or --loadgen python")
    if not WINE_ONNX.exists():
        raise SystemExit(f"{WINE_ONNX} not found: run `make models`")
    if any(n.startswith("mlserver") for n in names) and not (MLSERVER_VENV / "bin" / "mlserver").exists():
        log(f"{MLSERVER_VENV} not found (run benches/serve_setup.sh): MLServer targets skipped")
        names = [n for n in names if not n.startswith("mlserver")]
    WORK.mkdir(parents=True, exist_ok=True)
    # SIGTERM unwinds like Ctrl-C, so that the servers started here are always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = _dt.datetime.now(_dt.timezone.utc)
    facts = machine()
    facts["wine_run_us"] = cold_cache_probe()
    log(f"ONNX Runtime's wine run, median: {facts['wine_run_us']}")
    targets = build_targets(names, concurrency, mlp_concurrency)
    log(f"{len(targets)} targets, concurrency {concurrency}, {args.duration} s a point after {args.warmup} s warm-up, load: {args.loadgen}")
    points, checks = measure(args, targets)
    results: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "wall_s": round((_dt.datetime.now(_dt.timezone.utc) - started).total_seconds(), 1),
        "machine": {**facts, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": versions(),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": concurrency,
            "mlp_concurrency": mlp_concurrency,
            "loadgen": args.loadgen,
            "connections": CONNECTIONS if args.loadgen == "ghz" else 1,
            "request": "batch 1: wine float32 [1, 13] (tensor / KServe FP32 contents) or one JSON record; mlp float32 [1, 256]",
            "mlserver_batching": MLSERVER_BATCHING,
            "inferd_configs": {p.name: p.read_text() for p in sorted(CONFIGS.glob("*.toml"))},
        },
        "checks": checks,
        "points": [vars(p) for p in points],
    }
    results["ratios"] = ratios(results["points"], concurrency, mlp_concurrency)
    rounds = args.paired_rounds if args.paired_rounds is not None else (2 if args.quick else 7)
    if rounds > 0 and sum(name in names for name in PAIRED_TARGETS) >= 2:
        results["paired"] = measure_paired(args, build_targets(names, [32], [32]), rounds, args.paired_seconds)
        results["wall_s"] = round((_dt.datetime.now(_dt.timezone.utc) - started).total_seconds(), 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = table(results)
    print(text)
    log(f"wrote {args.out}; {render_plot(args.out)}")
    if not args.no_readme and args.out.resolve() == (BENCHES / "results" / "serve.json").resolve():
        update_readme(
            f"Measured {results['date']} on {facts['cores']} cores ({facts['cpu']}), {args.loadgen}, "
            f"{args.duration} s a point after {args.warmup} s warm-up; load average at start "
            f"{facts['load_average_at_start']}.\n\n{text}"
        )


if __name__ == "__main__":
    main()
