"""Streams at scale (issue 23, point 2): what inferd's ``Stream`` costs a chunk, how 1,000
concurrent streams hold their pace, and the text model's tokens/s and first token.

1. **CPU a chunk.** The same streams (a text of ``--words`` words, one chunk a word, as echo
   sends them) to a bare grpc.aio server-streaming handler (benches/bare_stream_server.py) and to
   inferd: the default service's ``echo`` (an async generator), ``words`` (the same pieces from
   a bare async generator, benches/configs/stream_workflows.py) and ``echo-plain`` (echo's
   stream as a plain generator: each chunk a step in a stage thread). Server CPU (psutil, the
   process and its children) over the chunks sent. Goal: inferd <= 1.2x the bare server's.
2. **1,000 concurrent streams** of echo (``--chunks`` words, ``delay_ms`` = ``--gap-ms``
   before each), opened at once and, apart, each at a random point of the first gap; paired
   with the bare server doing the same (what the machine, the Python gRPC stack and this client
   allow). Goal: all complete, p99 gap between a stream's chunks (as the client receives them)
   <= 2x the model's gap, server RSS <= 1 GB.
3. **The text model**: smollm2 (service/models/smollm2) streamed by inferd against the same
   weights generating with transformers ``generate`` in this process (same chat prompt,
   greedy, same max_new_tokens; the texts must match). Goal: >= 95% of its tokens/s and a first
   token <= 5 ms later.

Rounds are paired (the contenders alternate, the order flipping each round); medians are
reported. Results: benches/results/stream.json and stream.png.

    .venv/bin/python -m benches.stream [--rounds 5] [--chunk-rounds 9] [--only chunk,fanout,textgen]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import grpc
import psutil
from google.protobuf import struct_pb2

from benches.serve.common import BENCHES, CONFIGS, MAIN_PYTHON, WORK
from benches.serve.probes import cpu_ticks, machine, steal_percent, versions
from benches.serve.processes import Process, free_port, start_inferd, start_process
from benches.stream_plot import plot
from inferd.v1 import inference_pb2 as pb
from inferd.v1 import inference_pb2_grpc as pb_grpc

RESULTS = BENCHES / "results" / "stream.json"
PLOT = BENCHES / "results" / "stream.png"
# inferd-echo runs as the default service does (metrics on); the -nometrics server the rest.
CHUNK_TARGETS = ["bare", "inferd-echo", "inferd-echo-nometrics", "inferd-words", "inferd-plain"]


def log(message: str) -> None:
    print(f"[stream {time.strftime('%H:%M:%S')}] {message}", flush=True)

def request(model: str, text: str, **parameters: Any) -> pb.InferRequest:
    struct = struct_pb2.Struct()
    struct.update(parameters)
    return pb.InferRequest(model=model, input=pb.Payload(text=text), parameters=struct if parameters else None)


def tree_rss_mb(process: Process) -> float:
    try:
        root = psutil.Process(process.popen.pid)
        return float(sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])) / 2**20
    except psutil.NoSuchProcess:
        return float("nan")


async def stream_pieces(stub: pb_grpc.InferenceStub, message: pb.InferRequest) -> tuple[list[str], list[float]]:
    """The text chunks of one stream and when each came (perf_counter); checks the final one."""
    pieces: list[str] = []
    times: list[float] = []
    final = False
    async for response in stub.Stream(message):  # type: ignore[attr-defined]
        if response.final:
            final = True
            if response.output.text:
                pieces.append(response.output.text)
                times.append(time.perf_counter())
            break
        pieces.append(response.output.text)
        times.append(time.perf_counter())
    if not final:
        raise RuntimeError(f"{message.model}: the stream ended without its final message")
    return pieces, times


async def wait_streaming(address: str, process: Process, model: str, text: str = "ready", timeout_s: float = 180) -> None:
    """Polls (with a deadline) until one stream of ``model`` succeeds."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.popen.poll() is not None:
            raise SystemExit(f"{process.name} exited:\n{process.log_tail()}")
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                await stream_pieces(pb_grpc.InferenceStub(channel), request(model, text))
                return
        except grpc.aio.AioRpcError as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"{process.name}: {model} not streaming after {timeout_s} s: {error.details()}") from None
            await asyncio.sleep(0.2)


# -- 1. CPU a chunk -----------------------------------------------------------------------


async def chunk_phase(address: str, model: str, text: str, streams: int, concurrency: int) -> tuple[int, float]:
    """Sends ``streams`` streams of ``text``, ``concurrency`` at a time; checks each one's text.
    Returns (chunks received, wall seconds)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.InferenceStub(channel)
        gate = asyncio.Semaphore(concurrency)
        chunks = 0

        async def one() -> None:
            nonlocal chunks
            async with gate:
                pieces, _ = await stream_pieces(stub, request(model, text))
            if "".join(pieces) != text:
                raise RuntimeError(f"{model}: the chunks do not join to the text sent")
            chunks += len(pieces)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(streams)))
        return chunks, time.perf_counter() - started


async def chunk_overhead(rounds: int, words: int, streams: int, concurrency: int) -> dict[str, Any]:
    text = " ".join(f"w{i}" for i in range(words))
    bare, bare_address = start_bare()
    inferd, inferd_address = start_inferd("stream-inferd", CONFIGS / "stream.toml")
    quiet, quiet_address = start_inferd("stream-inferd-nometrics", CONFIGS / "stream.toml", metrics=False)
    targets = {"bare": (bare, bare_address, "echo"), "inferd-echo": (inferd, inferd_address, "echo"),
               "inferd-echo-nometrics": (quiet, quiet_address, "echo"), "inferd-words": (quiet, quiet_address, "words"),
               "inferd-plain": (quiet, quiet_address, "echo-plain")}  # fmt: skip
    rows: list[dict[str, Any]] = []
    try:
        for name, (process, address, model) in targets.items():
            await wait_streaming(address, process, model)
            await chunk_phase(address, model, text, max(streams // 4, 1), concurrency)  # warm-up
        for round_index in range(rounds):
            order = CHUNK_TARGETS if round_index % 2 == 0 else CHUNK_TARGETS[::-1]
            for name in order:
                process, address, model = targets[name]
                ticks, cpu = cpu_ticks(), process.tree_cpu_s()
                chunks, wall = await chunk_phase(address, model, text, streams, concurrency)
                cpu_s = process.tree_cpu_s() - cpu
                rows.append({"round": round_index, "target": name, "chunks": chunks, "wall_s": round(wall, 3),
                             "chunks_per_s": round(chunks / wall), "cpu_us_per_chunk": round(cpu_s / chunks * 1e6, 2),
                             "steal_pct": steal_percent(ticks, cpu_ticks())})  # fmt: skip
                log(f"chunk round {round_index} {name}: {rows[-1]['cpu_us_per_chunk']} us CPU a chunk, {rows[-1]['chunks_per_s']} chunks/s")
    finally:
        for process in (bare, inferd, quiet):
            process.stop()
    medians = {
        name: statistics.median(r["cpu_us_per_chunk"] for r in rows if r["target"] == name) for name in CHUNK_TARGETS
    }
    ratios = {name: round(medians[name] / medians["bare"], 3) for name in CHUNK_TARGETS if name != "bare"}
    paired = {  # each round's own ratio, then their median: robust to a slow round
        name: round(statistics.median(
            next(r for r in rows if r["round"] == i and r["target"] == name)["cpu_us_per_chunk"]
            / next(r for r in rows if r["round"] == i and r["target"] == "bare")["cpu_us_per_chunk"]
            for i in range(rounds)), 3)
        for name in ratios
    }  # fmt: skip
    return {"words": words, "streams": streams, "concurrency": concurrency, "rows": rows,
            "median_cpu_us_per_chunk": medians, "ratio_to_bare": ratios, "paired_ratio_to_bare": paired,
            "goal": "<= 1.2x bare", "met": {name: paired[name] <= 1.2 for name in ("inferd-echo", "inferd-words")}}  # fmt: skip


# -- 2. 1,000 concurrent streams ----------------------------------------------------------


async def fanout_run(
    address: str, process: Process, streams: int, chunks: int, gap_ms: float, channels: int, stagger: bool
) -> dict[str, Any]:
    """Opens ``streams`` streams at once (or, ``stagger``, each at a random point of the model's
    first gap: as many open, their chunks not due all at the same instant)."""
    peak_rss = tree_rss_mb(process)
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max(peak_rss, tree_rss_mb(process))
            try:
                await asyncio.wait_for(done.wait(), 0.1)
            except TimeoutError:
                pass

    opened = [grpc.aio.insecure_channel(address) for _ in range(channels)]
    stubs = [pb_grpc.InferenceStub(channel) for channel in opened]
    gaps: list[float] = []
    failures: dict[str, int] = {}
    completed = 0
    text = " ".join(f"w{i}" for i in range(chunks))
    expected = [piece if i == 0 else " " + piece for i, piece in enumerate(text.split())]

    by_index: list[list[float]] = [[] for _ in range(chunks)]
    offsets = random.Random(23).sample(range(streams), streams) if stagger else [0] * streams

    async def one(index: int) -> None:
        nonlocal completed
        if stagger:
            await asyncio.sleep(offsets[index] / streams * gap_ms / 1000)
        try:
            pieces, times = await stream_pieces(stubs[index % channels], request("echo", text, delay_ms=gap_ms))
        except grpc.aio.AioRpcError as error:
            failures[error.code().name] = failures.get(error.code().name, 0) + 1
            return
        if pieces != expected:
            failures["WRONG_CHUNKS"] = failures.get("WRONG_CHUNKS", 0) + 1
            return
        completed += 1
        for position, (a, b) in enumerate(zip(times, times[1:]), 1):
            gaps.append((b - a) * 1000)
            by_index[position].append((b - a) * 1000)

    sampler = asyncio.create_task(sample())
    ticks, cpu, started, client = cpu_ticks(), process.tree_cpu_s(), time.perf_counter(), time.process_time()
    try:
        await asyncio.gather(*(one(i) for i in range(streams)))
    finally:
        wall = time.perf_counter() - started
        done.set()
        await sampler
        for channel in opened:
            await channel.close()
    gaps.sort()
    def quantile(q: float) -> float:
        return round(gaps[min(int(q * len(gaps)), len(gaps) - 1)], 1) if gaps else float("nan")
    p99_by_index = [round(sorted(g)[int(0.99 * len(g))], 1) if g else None for g in by_index[1:]]
    return {"streams": streams, "stagger": stagger, "p99_gap_ms_by_chunk": p99_by_index, "completed": completed, "failures": failures, "wall_s": round(wall, 2),
            "gap_ms": gap_ms, "p50_gap_ms": quantile(0.5), "p99_gap_ms": quantile(0.99),
            "max_gap_ms": round(gaps[-1], 1) if gaps else float("nan"), "peak_rss_mb": round(peak_rss, 1),
            "server_cpu_s": round(process.tree_cpu_s() - cpu, 2), "client_cpu_s": round(time.process_time() - client, 2), "steal_pct": steal_percent(ticks, cpu_ticks())}  # fmt: skip


def start_bare() -> tuple[Process, str]:
    address = f"127.0.0.1:{free_port()}"
    return start_process("stream-bare", [str(MAIN_PYTHON), str(BENCHES / "bare_stream_server.py"), "--address", address]), address


async def fanout(rounds: int, streams: int, chunks: int, gap_ms: float, channels: int) -> dict[str, Any]:
    """inferd's echo and the bare server's, paired: the bare server says what the machine and
    the Python gRPC stack (and this client) allow."""
    servers = {"inferd": start_inferd("stream-fanout", CONFIGS / "stream.toml", metrics=False), "bare": start_bare()}
    runs: list[dict[str, Any]] = []
    try:
        for process, address in servers.values():
            await wait_streaming(address, process, "echo")
        idle_rss = tree_rss_mb(servers["inferd"][0])
        for round_index in range(rounds):
            for stagger in (False, True):
                for target in ("inferd", "bare") if round_index % 2 == 0 else ("bare", "inferd"):
                    process, address = servers[target]
                    run = {"target": target, "round": round_index,
                           **await fanout_run(address, process, streams, chunks, gap_ms, channels, stagger)}  # fmt: skip
                    runs.append(run)
                    log(f"fanout round {round_index} {target} {'staggered' if stagger else 'at once'}: "
                        f"{run['completed']}/{streams} complete, p99 gap {run['p99_gap_ms']} ms (model {gap_ms} ms), "
                        f"peak RSS {run['peak_rss_mb']} MB, failures {run['failures']}")  # fmt: skip
    finally:
        for process, _ in servers.values():
            process.stop()
    summary: dict[str, Any] = {"runs": runs, "idle_rss_mb": round(idle_rss, 1), "gap_ms": gap_ms, "streams": streams,
                               "goal": "all complete, p99 gap <= 2x model gap, RSS <= 1 GB", "met": {}}  # fmt: skip
    for mode, stagger in (("at_once", False), ("staggered", True)):
        summary[mode] = {}
        for target in servers:
            mine = [r for r in runs if r["stagger"] == stagger and r["target"] == target]
            p99 = statistics.median(r["p99_gap_ms"] for r in mine)
            summary[mode][target] = {"median_p99_gap_ms": p99, "median_p50_gap_ms": statistics.median(r["p50_gap_ms"] for r in mine),
                                     "p99_over_gap": round(p99 / gap_ms, 3), "max_peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                                     "all_complete": all(r["completed"] == streams for r in mine)}  # fmt: skip
        ours = summary[mode]["inferd"]
        summary["met"][mode] = {"all_complete": ours["all_complete"], "p99_gap": ours["p99_over_gap"] <= 2,
                                "rss": ours["max_peak_rss_mb"] <= 1024}  # fmt: skip
    return summary


# -- the run -------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(), "versions": versions()}
    if "chunk" in only:
        results["chunk"] = await chunk_overhead(args.chunk_rounds, args.words, args.streams, args.concurrency)
    if "fanout" in only:
        results["fanout"] = await fanout(args.fanout_rounds, args.fanout_streams, args.chunks, args.gap_ms, args.channels)
    if "textgen" in only:
        from benches.stream_textgen import textgen

        results["textgen"] = await textgen(args.rounds, args.ttft_rounds, args.max_new_tokens)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds of textgen's tokens/s")
    parser.add_argument("--chunk-rounds", type=int, default=9, help="paired rounds of CPU a chunk")
    parser.add_argument("--only", default="chunk,fanout,textgen")
    parser.add_argument("--words", type=int, default=500, help="chunks a stream (CPU a chunk)")
    parser.add_argument("--streams", type=int, default=40, help="streams a round (CPU a chunk)")
    parser.add_argument("--concurrency", type=int, default=8, help="streams at once (CPU a chunk)")
    parser.add_argument("--fanout-streams", type=int, default=1000)
    parser.add_argument("--fanout-rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=10, help="chunks a stream (1,000 streams)")
    parser.add_argument("--gap-ms", type=float, default=100.0, help="the model's gap between chunks (1,000 streams)")
    parser.add_argument("--channels", type=int, default=8, help="client channels the 1,000 streams share")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--ttft-rounds", type=int, default=15, help="paired rounds of one token (first token)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    log(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    for part in ("chunk", "fanout", "textgen"):
        if part in results:
            log(f"{part}: goal {results[part]['goal']}: met {results[part]['met']}")


if __name__ == "__main__":
    main()
