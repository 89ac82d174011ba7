"""The report: the goals' ratios, the Markdown table (also written into benches/README.md) and
the plot. Works from the results' JSON alone: it imports nothing else of the bench but
:mod:`common` (MLServer's venv runs :func:`plot`, as matplotlib is no dependency of inferd)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .common import MLSERVER_VENV, README, ROOT, STEAL_WARN_PCT


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
        if "median_server_cpu_ms_per_request" in paired:
            lines.append(
                "  - server CPU a request (medians): "
                + ", ".join(f"{name} {value:.3f} ms" for name, value in paired["median_server_cpu_ms_per_request"].items())
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
            ("metrics_on_vs_off", "inferd with metrics on (the default) vs off", "goal >= 97%"),
            ("traced_vs_untraced", "inferd tracing every call (to a local OTLP sink) vs tracing off", "goal >= 85%"),
            ("traced_vs_untraced_cpu", "the same in the server's CPU a request (untraced over traced)", "no goal"),
            ("oip_vs_v1", "inferd over the Open Inference Protocol vs over inferd.v1 (ModelInfer vs Infer)", "goal >= 90%"),
        ):
            if key in paired:
                x = paired[key]
                lines.append(
                    f"  - {what}, round by round: **{x['median']:.0%}** median ({x['min']:.0%}-{x['max']:.0%}); {goal}"
                )
        if "inferd_vs_best_peer" in paired:
            x = paired["inferd_vs_best_peer"]
            lines.append(
                f"  - inferd (best of off/on/oip) vs the best peer of each round (MLServer, Triton, Ray; best overall "
                f"{x['best_peer']}): **{x['median']:.2f}x** median ({x['min']:.2f}-{x['max']:.2f}); goal >= 2x with a "
                f"lower p99; p99 medians: " + ", ".join(f"{n} {v} ms" for n, v in x["p99_ms"].items())
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
        # The package imports nothing at its top but the standard library: MLServer's venv runs it.
        argv = [str(python), "-m", "benches.serve", "--plot-only", str(out.resolve())]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
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
