"""The command line: ``.venv/bin/python -m benches.serve --help`` (from the repository's root)."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from . import __doc__ as USAGE
from . import loadgen
from .common import ALL_TARGETS, BENCHES, CONFIGS, DEFAULT_TARGETS, GHZ, MLSERVER_BATCHING, MLSERVER_VENV, PEER_VENVS, WINE_ONNX, WORK, log
from .measure import PAIRED_TARGETS, measure, measure_paired
from .probes import cold_cache_probe, machine, versions
from .report import plot, ratios, render_plot, table, update_readme
from .targets import build_targets


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benches.serve", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    loadgen.CONNECTIONS = max(1, args.connections)
    if args.loadgen == "ghz" and not GHZ.exists():
        raise SystemExit(f"{GHZ} not found: run benches/serve_setup.sh, or --loadgen python")
    if not WINE_ONNX.exists():
        raise SystemExit(f"{WINE_ONNX} not found: run `make models`")
    if any(n.startswith("mlserver") for n in names) and not (MLSERVER_VENV / "bin" / "mlserver").exists():
        log(f"{MLSERVER_VENV} not found (run benches/serve_setup.sh): MLServer targets skipped")
        names = [n for n in names if not n.startswith("mlserver")]
    for name in [n for n in names if n in PEER_VENVS and not (PEER_VENVS[n] / "bin" / "python").exists()]:
        log(f"{PEER_VENVS[name]} not found (run benches/serve_setup.sh): {name} skipped")
        names.remove(name)
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
            "connections": loadgen.CONNECTIONS if args.loadgen == "ghz" else 1,
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
