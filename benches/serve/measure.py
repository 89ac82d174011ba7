"""The run: every target's server up in turn, its answer checked, then loaded at each
concurrency (:func:`measure`); and the paired phase, every goal's server up at once and the
targets in turn, round by round (:func:`measure_paired`)."""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import INFERD_INFER, LABELS, WORK, log
from .loadgen import run_ghz, run_python_load
from .probes import cpu_ticks, steal_percent
from .processes import Process, servers, start_server
from .targets import Target, same_answer, wine_response


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



def call_once(address: str, method: str, request: bytes, timeout: float = 10, metadata: dict[str, str] | None = None) -> bytes:
    import grpc

    with grpc.insecure_channel(address) as channel:
        call: Any = channel.unary_unary(method)
        answer: bytes = call(request, timeout=timeout, metadata=tuple((metadata or {}).items()))
        return answer


def wait_ready(
    process: Process, address: str, method: str, request: bytes, timeout: float = 180, metadata: dict[str, str] | None = None
) -> bytes:
    """Calls until the first success (the model is loaded); returns that answer."""
    import grpc

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited ({process.popen.returncode}):\n{process.log_tail()}")
        try:
            return call_once(address, method, request, timeout=5, metadata=metadata)
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
                        answer = wait_ready(process, address, target.method, target.request, metadata=target.metadata)
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
PAIRED_TARGETS = [
    "inferd-off", "inferd-on", "mlserver-best", "mlserver-batching", "bare", "bare-model", "inferd-asyncio", "bare-asyncio",
    "inferd-nometrics", "inferd-traced", "inferd-oip", "triton", "triton-batching", "ray",
]  # fmt: skip


def measure_paired(args: argparse.Namespace, targets: list[Target], rounds: int, seconds: float) -> dict[str, Any]:
    """The goals again, at one concurrency, robust to a drifting machine: every server of
    PAIRED_TARGETS up at once, then ``rounds`` rounds in which each target gets a burst of
    ``seconds`` in turn (every other round in reverse order). Drift (neighbours, steal) hits
    every target of a round alike, so the per-round ratios and their median are steadier than
    one point each from the sweep."""
    load = run_ghz if args.loadgen == "ghz" else run_python_load
    at = 32
    chosen = [t for name in PAIRED_TARGETS for t in targets if t.name == name]
    rps: dict[str, list[float]] = {t.name: [] for t in chosen}
    p99: dict[str, list[float]] = {t.name: [] for t in chosen}
    #: The server's own CPU (its process tree, not a traced server's sink) a request, per round:
    #: steadier than req/s where neighbours take the cores in bursts.
    cpu_ms: dict[str, list[float]] = {t.name: [] for t in chosen}
    processes: dict[str, Any] = {}
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
            processes[target.name] = process
            if args.warmup > 0:
                load(target, address, at, args.warmup, args.cap)
        for round_ in range(rounds):
            ticks = cpu_ticks()
            # Every other round in reverse order, so that no target always runs first (or
            # right after the same neighbour).
            for target in chosen if round_ % 2 == 0 else reversed(chosen):
                cpu_before = processes[target.name].tree_cpu_s()
                result = load(target, addresses[target.name], at, seconds, args.cap)
                cpu_ms[target.name].append((processes[target.name].tree_cpu_s() - cpu_before) * 1000 / result["ok"] if result["ok"] else float("nan"))
                rps[target.name].append(result["rps"])
                p99[target.name].append(result["p99_ms"])
            steal.append(steal_percent(ticks, cpu_ticks()))
            log(f"[paired] round {round_ + 1}/{rounds}: " + ", ".join(f"{n} {rps[n][-1]:.0f}" for n in rps) + f" req/s; steal {steal[-1]:.0f}%")

    def best(names: list[str], index: int) -> float:
        return max(rps[name][index] for name in names if name in rps)

    inferd: list[str] = [n for n in ("inferd-off", "inferd-on") if n in rps]
    mlserver: list[str] = [n for n in ("mlserver-best", "mlserver-batching") if n in rps]
    out: dict[str, Any] = {
        "concurrency": at,
        "rounds": rounds,
        "seconds": seconds,
        "rps": rps,
        "p99_ms": p99,
        "steal_pct": steal,
        "median_rps": {name: statistics.median(values) for name, values in rps.items()},
        "median_p99_ms": {name: statistics.median(values) for name, values in p99.items()},
        "server_cpu_ms_per_request": {name: [round(value, 4) for value in values] for name, values in cpu_ms.items()},
        "median_server_cpu_ms_per_request": {name: round(statistics.median(values), 4) for name, values in cpu_ms.items()},
    }
    for key, other in (
        ("inferd_vs_mlserver", mlserver),
        ("inferd_vs_bare", ["bare"] if "bare" in rps else []),
        ("inferd_vs_bare_model", ["bare-model"] if "bare-model" in rps else []),
    ):
        if inferd and other:
            out[key] = spread([best(inferd, i) / best(other, i) for i in range(rounds)])
    # The Open Inference Protocol against inferd.v1, the same server and model, request for request.
    if "inferd-oip" in rps and "inferd-off" in rps:
        out["oip_vs_v1"] = spread([rps["inferd-oip"][i] / rps["inferd-off"][i] for i in range(rounds)])
    # inferd against the best peer of the round (MLServer, Triton, Ray), with both p99s.
    peers = [n for n in ("mlserver-best", "mlserver-batching", "triton", "triton-batching", "ray") if n in rps]
    ours = [n for n in ("inferd-off", "inferd-on", "inferd-oip") if n in rps]
    if ours and peers:
        out["inferd_vs_best_peer"] = spread([best(ours, i) / best(peers, i) for i in range(rounds)])
        best_peer = max(peers, key=lambda n: statistics.median(rps[n]))
        out["inferd_vs_best_peer"].update(
            best_peer=best_peer,
            p99_ms={n: round(statistics.median(p99[n]), 2) for n in (*ours, best_peer)},
        )
    # What the model's run alone costs the bare server: bare-model over bare, round by round.
    if "bare-model" in rps and "bare" in rps:
        out["bare_model_vs_bare"] = spread([rps["bare-model"][i] / rps["bare"][i] for i in range(rounds)])
    # What the metrics cost: inferd-off (metrics on, the default) over the same with them off.
    if "inferd-off" in rps and "inferd-nometrics" in rps:
        out["metrics_on_vs_off"] = spread([rps["inferd-off"][i] / rps["inferd-nometrics"][i] for i in range(rounds)])
    # What tracing every call costs: inferd-traced over inferd-off (tracing off, the default).
    if "inferd-off" in rps and "inferd-traced" in rps:
        out["traced_vs_untraced"] = spread([rps["inferd-traced"][i] / rps["inferd-off"][i] for i in range(rounds)])
        # ... and in the server's CPU a request (untraced over traced: 1 is free, as above).
        out["traced_vs_untraced_cpu"] = spread([cpu_ms["inferd-off"][i] / cpu_ms["inferd-traced"][i] for i in range(rounds)])
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

