"""Inference graphs: what a hop costs, what parallel branches save, and the seed's graph
against BentoML (`make bench-graph`, or `python -m benches.graph` from the repository root).

1. **Hop**: a graph of one node against calling that node's model directly, over gRPC
   (the Python client, one call at a time, in a process on CPUs apart from the server's) and in
   process (``Engine.infer``), in paired rounds; the hop's cost is the difference of the
   medians. Goal: <= 50 µs at the median.
2. **Seed**: the default service's ``stories`` graph (three smollm2 generations in parallel,
   each scored) against the same models called one after another by the client, the same
   prompts and seeds (the answers are checked equal), in paired rounds.
3. **BentoML**: the seed's own example ported to BentoML 1.4 with the same models
   (benches/graph_bentoml/), in its own venv, at the same concurrency, when it is installed
   (``benches/graph_bentoml/setup.sh``). Goal: inferd's latency at most half BentoML's.

Results: benches/results/graph.json and graph.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))

from inferd.adapters import Payload  # noqa: E402
from inferd.client import Client  # noqa: E402
from inferd.config import ModelConfig, load_config  # noqa: E402
from inferd.server.app import create_server, event_loop_factory  # noqa: E402

T = TypeVar("T")
RESULTS = ROOT / "benches" / "results"
PROMPTS = ["Write one sentence about the sea.", "Tell me about a cat.", "What is a good breakfast?", "Describe a city at night."]


class Served:
    """A server of the default service plus the bench's models, on a loop in a thread."""

    def __init__(self) -> None:
        config = load_config(ROOT / "service" / "inferd.toml")
        extra = {
            "identity": {"workflow": "graph_parts:Identity", "inline": True},
            "identity-hop": {"workflow": "graph", "output": "hop", "nodes": {"hop": {"model": "identity", "input": "request"}}},
            "wine-hop": {"workflow": "graph", "output": "hop", "nodes": {"hop": {"model": "wine", "input": "request"}}},
        }
        models = {**config.models, **{name: ModelConfig.model_validate(table) for name, table in extra.items()}}
        self.config = config.model_copy(update={"models": models}).with_server(address="127.0.0.1:0")
        self.loop = event_loop_factory("auto")()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        # As ``inferd serve`` runs: the eager models set up, then the heap frozen (app.serve).
        self.server = self.call(create_server(self.config, start_models=False))
        self.call(self.server.start_models(freeze_heap=True))
        self.address = f"127.0.0.1:{self.server.port}"

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 600) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.server.stop(grace=1))


_CLIENT = """
import json, statistics, sys, time
from inferd.client import Client
address, model, graph, inputs, rounds, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def timed(name, count, into):
    for _ in range(count):
        started = time.perf_counter()
        client.infer(name, inputs)
        into.append(time.perf_counter() - started)
with Client(address, timeout=30) as client:
    assert client.infer(model, inputs).output == client.infer(graph, inputs).output
    out = []
    for _ in range(rounds):
        # The arms alternate in blocks of 50 calls, so that the machine's drift falls on both.
        direct, hop = [], []
        for _ in range(calls // 50):
            timed(model, 50, direct)
            timed(graph, 50, hop)
        m, g = statistics.median(direct) * 1e6, statistics.median(hop) * 1e6
        out.append({"model_us": m, "graph_us": g, "hop_us": g - m})
print(json.dumps(out))
"""


@contextlib.contextmanager
def _apart() -> Iterator[list[int]]:
    """The server's process on half the CPUs and the client (given the other half) apart from
    it, so that neither preempts the other and a round measures the server's work, not the
    scheduler's (on 2 vCPUs the two otherwise share both, and a call takes 60% longer)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        yield []
        return
    half = len(cpus) // 2
    _pin(cpus[:half])
    try:
        yield cpus[half:]
    finally:
        _pin(cpus)


def _pin(cpus: list[int]) -> None:
    """Every thread of this process (the server's loop, gRPC's) on ``cpus``."""
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task), cpus)


def hop(served: Served, rounds: int, calls: int) -> dict[str, Any]:
    """A graph hop's cost: the graph's median minus its model's, paired round by round; over
    gRPC from a client process of its own, and in process through ``Engine.infer``."""
    wine = [{"alcohol": 13.2, "malic_acid": 1.78, "ash": 2.14, "alcalinity_of_ash": 11.2, "magnesium": 100.0,
             "total_phenols": 2.65, "flavanoids": 2.76, "nonflavanoid_phenols": 0.26, "proanthocyanins": 1.28,
             "color_intensity": 4.38, "hue": 1.05, "od280_od315": 3.4, "proline": 1050.0}]  # fmt: skip
    cases = {"identity": ({"text": "hello"}, "identity", "identity-hop"), "wine": (wine, "wine", "wine-hop")}
    engine = served.server.engine
    out: dict[str, Any] = {}
    for case, (inputs, model, graph) in cases.items():
        payload = Payload("json", json.dumps(inputs).encode())

        async def direct(name: str) -> float:
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                await engine.infer(name, payload, deadline=time.monotonic() + 30)  # as a client's call has
                times.append(time.perf_counter() - started)
            return statistics.median(times) * 1e6

        command = [sys.executable, "-c", _CLIENT, served.address, model, graph, json.dumps(inputs), str(rounds), str(calls)]
        with _apart() as client_cpus:
            if client_cpus:
                command = ["taskset", "-c", ",".join(map(str, client_cpus)), *command]
            grpc_rounds = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, timeout=900).stdout)
        process_rounds = []
        for _ in range(rounds):
            model_us, graph_us = served.call(direct(model)), served.call(direct(graph))
            process_rounds.append({"model_us": model_us, "graph_us": graph_us, "hop_us": graph_us - model_us})
        out[case] = {"grpc": _summary(grpc_rounds), "in_process": _summary(process_rounds)}
    worst = max(out[case]["grpc"]["hop_us"] for case in out)
    apart = len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset") is not None
    out["goal"] = {"hop_us_median": round(worst, 1), "goal": "<= 50 us", "met": worst <= 50, "client_apart": apart}
    return out


def _summary(rounds: list[dict[str, float]]) -> dict[str, Any]:
    hops = [r["hop_us"] for r in rounds]
    return {
        "model_us": round(statistics.median(r["model_us"] for r in rounds), 1),
        "graph_us": round(statistics.median(r["graph_us"] for r in rounds), 1),
        "hop_us": round(statistics.median(hops), 1),
        "hop_us_range": [round(min(hops), 1), round(max(hops), 1)],
        "rounds": rounds,
    }


def seed(served: Served, rounds: int, max_new_tokens: int) -> dict[str, Any]:
    """The stories graph against its models called one after another, the same answers."""
    stories = served.config.models["stories"]
    generators = [stories.nodes[name] for name in ("gen1", "gen2", "gen3")]
    per_round = []
    with Client(served.address, timeout=600) as client:
        for index in range(rounds):
            prompt = PROMPTS[index % len(PROMPTS)]
            started = time.perf_counter()
            graph = client.infer("stories", prompt, parameters={"max_new_tokens": max_new_tokens}).output
            graph_s = time.perf_counter() - started
            started = time.perf_counter()
            texts = [client.infer("smollm2", prompt, parameters={**node.parameters, "max_new_tokens": max_new_tokens}).output
                     for node in generators]  # fmt: skip
            scores = [client.infer("smollm2-score", text).output["score"] for text in texts]
            sequential_s = time.perf_counter() - started
            expected = [{"generated": text, "score": score} for text, score in zip(texts, scores)]
            assert [item["generated"] for item in graph] == texts, "the graph and the sequential calls differ"
            assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(graph, expected))
            per_round.append({"prompt": prompt, "graph_s": graph_s, "sequential_s": sequential_s, "saved": 1 - graph_s / sequential_s})
    return {
        "max_new_tokens": max_new_tokens,
        "graph_s": round(statistics.median(r["graph_s"] for r in per_round), 3),
        "sequential_s": round(statistics.median(r["sequential_s"] for r in per_round), 3),
        "saved_median": round(statistics.median(r["saved"] for r in per_round), 3),
        "rounds": per_round,
    }


def bentoml(served: Served, rounds: int, requests: int, concurrency: int, max_new_tokens: int) -> dict[str, Any]:
    """The seed on BentoML and on inferd, the same prompt, the same concurrency, in paired rounds."""
    from benches.graph_bentoml import run as bento

    if not bento.installed():
        return {"skipped": "BentoML is not installed: run benches/graph_bentoml/setup.sh"}
    prompt = PROMPTS[0]
    theirs = bento.Served()
    per_round = []
    try:
        with Client(served.address, timeout=600) as client:

            def ours() -> None:
                answer = client.infer("stories", prompt, parameters={"max_new_tokens": max_new_tokens}).output
                assert len(answer) == 3 and all(isinstance(item["generated"], str) and 0 < item["score"] <= 1 for item in answer)

            ours()
            theirs.generate(prompt, max_new_tokens)  # both warm
            for _ in range(rounds):
                inferd = bento.latencies(ours, requests, concurrency)
                other = bento.latencies(lambda: theirs.generate(prompt, max_new_tokens), requests, concurrency)
                per_round.append({"inferd": inferd, "bentoml": other, "ratio": inferd["p50_ms"] / other["p50_ms"]})
    finally:
        theirs.stop()
    ratio = statistics.median(r["ratio"] for r in per_round)
    return {
        "bentoml_version": theirs.version, "concurrency": concurrency, "requests_per_round": requests,
        "max_new_tokens": max_new_tokens, "inferd_p50_ms": statistics.median(r["inferd"]["p50_ms"] for r in per_round),
        "bentoml_p50_ms": statistics.median(r["bentoml"]["p50_ms"] for r in per_round),
        "latency_ratio": round(ratio, 3), "goal": "inferd's p50 <= 0.5x BentoML's", "met": ratio <= 0.5, "rounds": per_round,
    }  # fmt: skip


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    cases = [case for case in ("identity", "wine") if case in results["hop"]]
    for offset, (where, color) in enumerate((("grpc", "tab:blue"), ("in_process", "tab:orange"))):
        left.bar([i + offset * 0.4 for i in range(len(cases))], [results["hop"][c][where]["hop_us"] for c in cases], 0.4, label=where, color=color)
    left.axhline(50, color="red", linestyle="--", label="goal 50 µs")
    left.set_xticks([i + 0.2 for i in range(len(cases))], cases)
    left.set_ylabel("graph hop, µs (median)")
    left.legend()
    bars = {"graph (parallel)": results["seed"]["graph_s"], "one after another": results["seed"]["sequential_s"]}
    bento = results.get("bentoml", {})
    if "bentoml_p50_ms" in bento:
        bars[f"BentoML {bento['bentoml_version']} (p50)"] = bento["bentoml_p50_ms"] / 1000
        bars["inferd, same rounds (p50)"] = bento["inferd_p50_ms"] / 1000
    right.bar(list(bars), list(bars.values()), color=["tab:green", "tab:gray", "tab:purple", "tab:olive"][: len(bars)])
    right.tick_params(axis="x", labelrotation=15)
    right.set_ylabel(f"seconds per request ({results['seed']['max_new_tokens']} new tokens)")
    right.set_title("the seed's graph")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="calls per arm and round (hop)")
    parser.add_argument("--seed-rounds", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--bentoml-rounds", type=int, default=3)
    parser.add_argument("--bentoml-requests", type=int, default=4, help="requests per arm and round")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], choices=["hop", "seed", "bentoml"])
    parser.add_argument("--out", type=Path, default=RESULTS / "graph.json")
    args = parser.parse_args()
    served = Served()
    # A part that is skipped keeps its results from the last run.
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.skip and args.out.exists() else {}
    results.update({"date": time.strftime("%Y-%m-%d"), "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}})
    try:
        if "hop" not in args.skip:
            results["hop"] = hop(served, args.rounds, args.calls)
            print("hop:", json.dumps({k: v["grpc"]["hop_us"] if "grpc" in v else v for k, v in results["hop"].items()}))
        if "seed" not in args.skip:
            results["seed"] = seed(served, args.seed_rounds, args.max_new_tokens)
            print("seed:", {k: v for k, v in results["seed"].items() if k != "rounds"})
        if "bentoml" not in args.skip:
            results["bentoml"] = bentoml(served, args.bentoml_rounds, args.bentoml_requests, args.concurrency, args.max_new_tokens)
            print("bentoml:", {k: v for k, v in results["bentoml"].items() if k != "rounds"})
    finally:
        served.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if "hop" in results and "seed" in results:
        plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
