"""Load generators: ghz (a Go gRPC load generator, benches/.bin/ghz) and a bounded asyncio
client (``--loadgen python``). Each runs one point and returns its counts and latencies."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from typing import Any

from .common import GHZ, WORK
from .targets import Target


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
    # A .proto (the OIP's) is given as itself; the rest are protosets written here.
    schema = ["--proto", str(target.protoset), "--import-paths", str(target.protoset.parent)] if target.protoset.suffix == ".proto" else ["--protoset", str(target.protoset)]
    if target.metadata:
        schema += ["--metadata", json.dumps(target.metadata)]
    argv = [
        str(GHZ), "--insecure", *schema, "--call", method,
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
                        await call(target.request, timeout=10, metadata=tuple((target.metadata or {}).items()))
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

