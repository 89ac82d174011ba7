"""The plot of benches/stream.py's results (benches/results/stream.png): server CPU a chunk,
the 1,000 streams' gaps (inferd and the bare server), smollm2's tokens/s and first token."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(results: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [p for p in ("chunk", "fanout", "textgen") if p in results]
    figure, axes = plt.subplots(1, len(parts), figsize=(5 * len(parts), 4), squeeze=False)
    for axis, part in zip(axes[0], parts):
        data = results[part]
        if part == "chunk":
            names = list(data["median_cpu_us_per_chunk"])
            axis.bar(names, [data["median_cpu_us_per_chunk"][n] for n in names], color=["grey", "tab:blue", "tab:cyan", "tab:orange"])
            for i, name in enumerate(names):
                axis.plot([i] * sum(r["target"] == name for r in data["rows"]),
                          [r["cpu_us_per_chunk"] for r in data["rows"] if r["target"] == name], "k.")  # fmt: skip
            axis.axhline(1.2 * data["median_cpu_us_per_chunk"]["bare"], color="red", linestyle="--", label="goal: 1.2x bare")
            axis.set_xticks(range(len(names)), [n.replace("inferd-", "inferd\n") for n in names], fontsize=8)
            axis.set_ylabel("server CPU µs a chunk (median, rounds as dots)")
            axis.set_title(f"CPU a chunk ({data['words']}-chunk streams)")
        elif part == "fanout":
            labels, p50, p99 = [], [], []
            for mode in ("at_once", "staggered"):
                for target in ("inferd", "bare"):
                    summary = data[mode][target]
                    labels.append(f"{target}\n{mode.replace('_', ' ')}\n{summary['max_peak_rss_mb']:.0f} MB")
                    p50.append(summary["median_p50_gap_ms"])
                    p99.append(summary["median_p99_gap_ms"])
            x = range(len(labels))
            axis.bar([i - 0.2 for i in x], p50, 0.4, label="p50 gap")
            axis.bar([i + 0.2 for i in x], p99, 0.4, label="p99 gap")
            axis.axhline(data["gap_ms"], color="grey", linestyle=":", label="model's gap")
            axis.axhline(2 * data["gap_ms"], color="red", linestyle="--", label="goal: 2x")
            axis.set_xticks(list(x), labels, fontsize=7)
            axis.set_ylabel("ms between a stream's chunks (median of runs)")
            axis.set_title(f"{data['streams']} concurrent echo streams (peak RSS)")
        else:
            names = ["transformers", "inferd"]
            axis.bar(names, [data["median"][n]["tokens_per_s"] for n in names], color=["grey", "tab:blue"])
            for i, name in enumerate(names):
                axis.text(i, data["median"][name]["tokens_per_s"] * 0.5, f"first token\n{data['first_token_median_ms'][name]:.1f} ms",
                          ha="center", color="white")  # fmt: skip
            axis.set_ylabel("tokens/s (median)")
            axis.set_title(f"smollm2, greedy, {data['tokens']} tokens")
        axis.legend(fontsize=8) if part != "textgen" else None
    figure.suptitle(f"benches/stream.py, {results['date']}")
    figure.tight_layout()
    figure.savefig(png, dpi=110)
