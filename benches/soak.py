"""Soak: mixed load against a real ``inferd serve`` of the default service for minutes.

    python benches/soak.py [--seconds S] [--warm-up S] [--concurrency N] [--config PATH]

(``make soak``; ``SOAK_SECONDS`` sets ``--seconds``.) Served calls of every model of the default
service (wine, digits batched, echo, smollm2 and its graphs), every class of bad request of
tests/leak_load.py that the default service can be sent (it has no auth and no test models),
calls cancelled or out of time, and streams cancelled mid-way: ``--concurrency`` workers take
the light cases in turn, ``--heavy`` more the text model's.
Every SAMPLE_S it samples the server's resident memory (VmRSS); every PROGRESS_S it prints a
progress line. It fails (exit 1) when

- the server's RSS at the end is more than RSS_BUDGET (10%) above its RSS just after the
  warm-up (each the median of a window of samples),
- any call ends with a status outside its case's expected set,
- the server logs an error or a traceback, or does not exit cleanly on SIGTERM.

The figures go to benches/results/soak.json and soak.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from leak_load import AUTH, CASES, Case, _codes, _infer, _one, _tensor  # noqa: E402

from inferd.v1 import inference_pb2 as pb  # noqa: E402

RESULTS = ROOT / "benches" / "results"
RSS_BUDGET = 0.10
SAMPLE_S = 1.0
PROGRESS_S = 10.0
WINDOW_S = 30.0
F32 = pb.DATA_TYPE_FLOAT32
WINE = b'[{"alcohol": 13.2, "malic_acid": 1.78, "ash": 2.14, "alcalinity_of_ash": 11.2, "magnesium": 100, "total_phenols": 2.65, "flavanoids": 2.76, "nonflavanoid_phenols": 0.26, "proanthocyanins": 1.28, "color_intensity": 4.38, "hue": 1.05, "od280_od315": 3.4, "proline": 1050}]'


def _params(**values: object) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


OK = _codes("OK")
#: The leak test's bad classes that mean the same against the default service (no auth, no
#: test models): its token-less cases would be served here, and it has no "crashing" model.
BAD = [name for name, case in CASES.items() if case.metadata == AUTH and "OK" not in {c.name for c in case.codes}
       and not {"crashing", "sleeper", "ticker"} & {name.split("-")[1]} and name not in
       ("infer-model-raises", "infer-cancelled", "infer-deadline", "stream-unary-model", "stream-cancelled")]  # fmt: skip


def _smol(tokens: int = 4, model: str = "smollm2") -> bytes:
    return _infer(model, pb.Payload(text="Tell me a story about a cat."), parameters=_params(max_new_tokens=tokens))


@dataclass(frozen=True)
class Weighted:
    name: str
    case: Case
    weight: int
    #: Sent by the HEAVY workers of their own (the text model's calls take a second or more on
    #: CPU; among the others they would hold every worker).
    heavy: bool = False


def cases() -> list[Weighted]:
    """What is sent, and how often (weights: calls per round of all of them)."""
    served = [
        Weighted("wine-records", Case("Infer", _infer("wine", pb.Payload(json=WINE)), OK), 6),
        Weighted("wine-tensor", Case("Infer", _infer("wine", _tensor("input", F32, [1, 13], bytes(52))), OK), 6),
        Weighted("digits-batched", Case("Infer", _infer("digits", _tensor("input", F32, [1, 1, 8, 8], bytes(256))), OK), 8),
        Weighted("echo-infer", Case("Infer", _infer("echo", pb.Payload(text="a b c d")), OK), 4),
        Weighted("echo-stream", Case("Stream", _infer("echo", pb.Payload(text="one two three four")), OK, mode="stream"), 4),
        # Cancelled after its first chunk: the rest may have been sent already (OK).
        Weighted("echo-stream-cancelled", Case("Stream", _infer("echo", pb.Payload(text=" ".join(["w"] * 200))),
                                               _codes("CANCELLED", "OK"), mode="cancel"), 3),  # fmt: skip
        Weighted("list-models", Case("ListModels", b"", OK), 1),
        Weighted("smollm2-infer", Case("Infer", _smol(), OK), 1, heavy=True),
        Weighted("smollm2-stream-cancelled", Case("Stream", _smol(tokens=64), _codes("CANCELLED", "OK"), mode="cancel"), 1, heavy=True),
        Weighted("smollm2-cancelled", Case("Infer", _smol(tokens=64), _codes("CANCELLED", "OK"), mode="cancel"), 1, heavy=True),
        Weighted("smollm2-deadline", Case("Infer", _smol(tokens=64), _codes("DEADLINE_EXCEEDED", "OK"), mode="deadline"), 1, heavy=True),
        Weighted("sentences-stream-cancelled", Case("Stream", _smol(tokens=48, model="sentences"), _codes("CANCELLED", "OK"), mode="cancel"), 1, heavy=True),
        Weighted("stories-graph", Case("Infer", _smol(tokens=4, model="stories"), OK), 1, heavy=True),
        Weighted("wine-stream-unary-only", Case("Stream", _infer("wine", pb.Payload(json=WINE)), _codes("UNIMPLEMENTED"), mode="stream"), 1),
    ]
    bad = [Weighted(name, replace(CASES[name], metadata=None), 1) for name in BAD]
    return served + bad


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_serving(address: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.poll() is not None:
                raise SystemExit(f"soak: the server exited while starting:\n{log.read_text()[-4000:]}")
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"soak: the server did not start serving in {timeout:.0f} s")
            time.sleep(0.5)  # polling a server that is still loading its models


async def drive(address: str, pid: int, seconds: float, warm_up: float, concurrency: int, heavy: int) -> dict[str, object]:
    light_mix = [item for item in cases() if not item.heavy for _ in range(item.weight)]
    heavy_mix = [item for item in cases() if item.heavy for _ in range(item.weight)]
    seen: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    samples: list[tuple[float, int, int]] = []  # (seconds, rss bytes, calls so far)
    started = time.monotonic()
    end = started + seconds
    calls = 0
    async with grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:

        async def worker(mix: list[Weighted], offset: int, step: int) -> None:
            nonlocal calls
            turn = offset
            while time.monotonic() < end:
                item = mix[turn % len(mix)]
                turn += step
                code = await _one(channel, item.case)
                calls += 1
                seen[f"{item.name} {code.name}"] += 1
                if code not in item.case.codes:
                    unexpected[f"{item.name} {code.name}"] += 1

        async def sampler() -> None:
            last_print = 0.0
            while time.monotonic() < end:
                now = time.monotonic() - started
                samples.append((now, rss_bytes(pid), calls))
                if now - last_print >= PROGRESS_S:
                    last_print = now
                    base = next((rss for at, rss, _ in samples if at >= warm_up), None)
                    growth = "" if base is None else f", {100 * (samples[-1][1] / base - 1):+.1f}% since warm-up"
                    print(f"soak {now:5.0f}/{seconds:.0f} s: {calls} calls ({calls / max(now, 1e-9):.0f}/s), "
                          f"RSS {samples[-1][1] / 2**20:.0f} MiB{growth}, unexpected {sum(unexpected.values())}", flush=True)  # fmt: skip
                await asyncio.sleep(SAMPLE_S)

        light = [worker(light_mix, n, concurrency) for n in range(concurrency)]
        await asyncio.gather(sampler(), *light, *(worker(heavy_mix, n, heavy) for n in range(heavy)))
    samples.append((time.monotonic() - started, rss_bytes(pid), calls))
    return {"seen": dict(sorted(seen.items())), "unexpected": dict(unexpected), "samples": samples}


def rss_after_warm_up_and_at_end(samples: list[list[float]], warm_up: float) -> tuple[float, float]:
    """The server's RSS just after the warm-up and at the end: each the median of a window of
    samples (a quarter of the measured time, at most WINDOW_S), so that one sample taken while
    the text model's buffers are in use does not decide it (they move RSS by some 4%)."""
    end = samples[-1][0]
    window = min(WINDOW_S, (end - warm_up) / 4)
    first = [s[1] for s in samples if warm_up <= s[0] <= warm_up + window]
    last = [s[1] for s in samples if s[0] >= end - window]
    return statistics.median(first), statistics.median(last)


def plot(samples: list[list[float]], warm_up: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, rss_axis = plt.subplots(figsize=(8, 4))
    times = [s[0] for s in samples]
    rss_axis.plot(times, [s[1] / 2**20 for s in samples], label="server RSS (MiB)")
    rss_axis.axvline(warm_up, linestyle="--", color="grey", label="end of warm-up")
    rss_axis.set_xlabel("seconds")
    rss_axis.set_ylabel("RSS (MiB)")
    rate = rss_axis.twinx()
    step = 10  # calls/s over 10 samples: one sample's count moves with the text model's calls
    pairs = list(zip(samples, samples[step:]))
    rate.plot([b[0] for _, b in pairs], [(b[2] - a[2]) / max(b[0] - a[0], 1e-9) for a, b in pairs],
              color="tab:orange", alpha=0.6, label=f"calls/s (over {step} samples)")  # fmt: skip
    rate.set_ylim(bottom=0)
    rate.set_ylabel("calls/s")
    figure.legend(loc="lower center", ncols=3, fontsize="small")
    rss_axis.set_title("inferd soak: the default service under mixed load")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "300")))
    parser.add_argument("--warm-up", type=float, default=None, help="seconds of warm-up (default: a fifth, at least 20)")
    parser.add_argument("--concurrency", type=int, default=16, help="workers sending the light calls")
    parser.add_argument("--heavy", type=int, default=2, help="workers sending the text model's calls")
    parser.add_argument("--config", type=Path, default=ROOT / "service" / "inferd.toml")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args()
    warm_up = args.warm_up if args.warm_up is not None else max(20.0, args.seconds / 5)
    address = f"127.0.0.1:{free_port()}"
    log_path = args.out.with_suffix(".log")  # git-ignored
    args.out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "2", "INFERD_METRICS_ADDRESS": "127.0.0.1:0"}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "inferd", "serve", "--config", str(args.config), "--address", address],
            stdout=log, stderr=subprocess.STDOUT, cwd=args.config.parent, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        wait_serving(address, process, log_path)
        print(f"soak: serving {args.config} at {address} (pid {process.pid}); {args.seconds:.0f} s, warm-up {warm_up:.0f} s", flush=True)
        result = asyncio.run(drive(address, process.pid, args.seconds, warm_up, args.concurrency, args.heavy))
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    samples: list[list[float]] = [list(s) for s in result["samples"]]  # type: ignore[attr-defined]
    base, final = rss_after_warm_up_and_at_end(samples, warm_up)
    growth = final / base - 1
    calls = int(samples[-1][2])
    log_text = log_path.read_text()
    errors = [line for line in log_text.splitlines() if " ERROR " in line or " CRITICAL " in line or "Traceback" in line]
    failures = []
    if growth > RSS_BUDGET:
        failures.append(f"RSS grew {100 * growth:.1f}% after warm-up ({base / 2**20:.0f} -> {final / 2**20:.0f} MiB), over {100 * RSS_BUDGET:.0f}%")
    if result["unexpected"]:
        failures.append(f"statuses outside the expected set: {result['unexpected']}")
    if errors:
        failures.append(f"the server logged {len(errors)} errors, the first: {errors[0]}")
    if exit_code != 0:
        failures.append(f"the server exited {exit_code} on SIGTERM")
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "seconds": args.seconds, "warm_up_s": warm_up, "concurrency": args.concurrency, "heavy": args.heavy, "calls": calls,
        "calls_per_s": calls / samples[-1][0], "rss_start_mib": samples[0][1] / 2**20, "rss_after_warm_up_mib": base / 2**20,
        "rss_end_mib": final / 2**20, "rss_max_after_warm_up_mib": max(s[1] for s in samples if s[0] >= warm_up) / 2**20,
        "rss_growth_after_warm_up": growth, "unexpected": result["unexpected"], "log_errors": len(errors),
        "exit_code": exit_code, "seen": result["seen"], "failures": failures, "samples": samples,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    plot(samples, warm_up, args.out.with_suffix(".png"))
    print(f"soak: {calls} calls in {samples[-1][0]:.0f} s ({summary['calls_per_s']:.0f}/s); RSS {base / 2**20:.0f} MiB after warm-up, "
          f"{final / 2**20:.0f} MiB at the end ({100 * growth:+.1f}%); {sum(result['seen'].values())} statuses, "  # type: ignore[attr-defined]
          f"{len(result['unexpected'])} unexpected; {len(errors)} log errors; exit {exit_code}; {args.out}")  # fmt: skip
    for failure in failures:
        print(f"soak FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
