"""What the server counts and times, for Prometheus: one small facade, free when off.

The engine and the gRPC front call :class:`Telemetry`'s ``record_*`` methods, which only add to
plain counters and fixed-bucket histograms (a bisect and two additions: far cheaper than a
metrics library's locked objects on every request). Nothing is formatted until a scrape:
:class:`MetricsCollector` then turns those counts, and the engine's own state (batch queues,
requests in flight, model states), into Prometheus families. With metrics off the engine holds
no Telemetry and pays one ``is None`` a request.

Labels are bounded: model (only declared models; any other name is counted as ""), RPC, stage,
status code, batch release reason, model state. Never a request id.
"""

from __future__ import annotations

import platform
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .config import ServiceConfig

__all__ = ["Histogram", "Telemetry", "MetricsCollector", "VERSION", "triton_text"]

VERSION = "0.1.0"


class Histogram:
    """Counts of observations per bucket (``le`` bounds, then +Inf) and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: ("le", cumulative count), ending with "+Inf"."""
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(_le, self.bounds), "+Inf"), self.counts):
            running += count
            buckets.append((bound, running))
        return buckets


def _le(bound: float) -> str:
    return repr(float(bound))


class Telemetry:
    """The counters of one server process. Updated on the event loop's thread only."""

    def __init__(self, config: ServiceConfig) -> None:
        self.triton = config.server.metrics.compat == "triton"
        default = config.server.metrics.buckets
        self._buckets = {name: model.metrics_buckets or default for name, model in config.models.items()}
        self._default_buckets = default
        #: (model, rpc, status code) -> calls that ended so
        self.requests: dict[tuple[str, str, str], int] = {}
        #: (model, rpc) -> seconds from the call's start to its end
        self.durations: dict[tuple[str, str], Histogram] = {}
        #: (model, stage) -> seconds
        self.stages: dict[tuple[str, str], Histogram] = {}
        #: model -> seconds from a stream's start to its first chunk; chunks sent
        self.first_chunk: dict[str, Histogram] = {}
        self.chunks: dict[str, int] = {}

    def model_label(self, model: str | None) -> str:
        """``model`` if the configuration declares it, else "" (bounded labels)."""
        return model if model and model in self._buckets else ""

    def _histogram(self, table: dict[Any, Histogram], key: Any, model: str) -> Histogram:
        histogram = table.get(key)
        if histogram is None:
            histogram = table[key] = Histogram(self._buckets.get(model, self._default_buckets))
        return histogram

    def record_request(self, rpc: str, model: str | None, code: str, seconds: float) -> None:
        """One call that ended with ``code`` after ``seconds``."""
        label = self.model_label(model)
        key = (label, rpc, code)
        self.requests[key] = self.requests.get(key, 0) + 1
        self._histogram(self.durations, (label, rpc), label).observe(seconds)

    def record_stages(self, model: str, timings: Iterable[tuple[str, float]]) -> None:
        """One request's (stage, milliseconds), "total" left out (the call's duration counts it)."""
        table = self.stages
        for stage, ms in timings:
            if stage != "total":
                histogram = table.get((model, stage)) or self._histogram(table, (model, stage), model)
                histogram.observe(ms / 1000)

    def record_first_chunk(self, model: str, seconds: float) -> None:
        self._histogram(self.first_chunk, model, model).observe(seconds)

    def record_chunk(self, model: str) -> None:
        self.chunks[model] = self.chunks.get(model, 0) + 1

    def requests_by_code(self, model: str) -> dict[str, int]:
        """A model's calls by final status code, all RPCs together (ListModels reports them)."""
        counts: dict[str, int] = {}
        for (label, _, code), count in list(self.requests.items()):
            if label == model:
                counts[code] = counts.get(code, 0) + count
        return counts


class MetricsCollector:
    """A prometheus_client collector: ``telemetry``'s counts and the engine's state, read at
    each scrape. ``reports`` gives the engine's model reports (:meth:`Engine.describe`)."""

    def __init__(self, telemetry: Telemetry, reports: Callable[[], list[Any]], build: dict[str, str]) -> None:
        self._telemetry = telemetry
        self._reports = reports
        #: inferd_build_info's labels (the transport's versions come from the server).
        self._build = {"version": VERSION, "python": platform.python_version(), **build}

    def describe(self) -> list[Any]:
        return []  # families are only known at collection; no describe (registry auto_describe off)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        telemetry = self._telemetry
        requests = CounterMetricFamily(
            "inferd_requests", "Calls by model, RPC and final gRPC status code.", labels=["model", "rpc", "code"]
        )
        for (model, rpc, code), count in sorted(telemetry.requests.items()):
            requests.add_metric([model, rpc, code], count)
        yield requests
        yield _histograms(
            "inferd_request_duration_seconds", "Seconds from a call's start to its end.", ["model", "rpc"],
            telemetry.durations,
        )  # fmt: skip
        yield _histograms(
            "inferd_stage_duration_seconds",
            "Seconds each stage took (setup, adapt, preprocess, queue, run, postprocess, stream).",
            ["model", "stage"], telemetry.stages,
        )  # fmt: skip
        yield _histograms(
            "inferd_stream_first_chunk_seconds", "Seconds from a stream's start to its first chunk.", ["model"],
            {(model,): histogram for model, histogram in telemetry.first_chunk.items()},
        )  # fmt: skip
        chunks = CounterMetricFamily("inferd_stream_chunks", "Chunks sent by streams.", labels=["model"])
        for model, count in sorted(telemetry.chunks.items()):
            chunks.add_metric([model], count)
        yield chunks

        reports = self._reports()
        inflight = GaugeMetricFamily("inferd_requests_in_flight", "Requests inside the model now.", labels=["model"])
        state = GaugeMetricFamily("inferd_model_state", "1 for the model's current state.", labels=["model", "state"])
        setup = GaugeMetricFamily("inferd_model_setup_seconds", "Seconds the model's last setup took.", labels=["model"])
        sizes = HistogramMetricFamily("inferd_batch_size_rows", "Rows in each batch run.", labels=["model"])
        releases = CounterMetricFamily("inferd_batches", "Batches run, by why they were released.", labels=["model", "reason"])
        waiting = GaugeMetricFamily("inferd_batch_queue_rows", "Rows waiting in the batch queue.", labels=["model"])
        running = GaugeMetricFamily("inferd_batches_running", "Batches running now.", labels=["model"])
        for report in reports:
            name = report.name
            inflight.add_metric([name], report.inflight)
            for candidate in ("declared", "loading", "ready", "failed"):
                state.add_metric([name, candidate], 1.0 if report.state.value == candidate else 0.0)
            setup.add_metric([name], report.setup_ms / 1000)
            if report.batching is not None:
                stats = report.batching.stats
                histogram = _rows_histogram(dict(stats.sizes), report.batching.max_batch_size)
                sizes.add_metric([name], histogram.cumulative(), sum_value=histogram.total)
                for reason in ("full", "preferred", "idle", "delay", "deadline"):
                    releases.add_metric([name, reason], stats.reasons.get(reason, 0))
                waiting.add_metric([name], stats.waiting)
                running.add_metric([name], stats.running)
        yield from (inflight, state, setup, sizes, releases, waiting, running)
        build = GaugeMetricFamily("inferd_build_info", "inferd's version and what it runs on.", labels=list(self._build))
        build.add_metric(list(self._build.values()), 1)
        yield build


#: Triton's failure reasons for inferd's status codes (anything else is OTHER).
_TRITON_REASONS = {"RESOURCE_EXHAUSTED": "REJECTED", "CANCELLED": "CANCELED", "INTERNAL": "BACKEND"}


def triton_text(telemetry: Telemetry, reports: list[Any]) -> bytes:
    """Triton's names (``compat = "triton"``) in the text format, for Infer calls, ``version``
    "1": counters of requests and of cumulative microseconds, named exactly as Triton names them
    (its counters carry no ``_total``, which prometheus_client would add, so these are written
    here)."""
    families: dict[str, tuple[str, list[tuple[dict[str, str], float]]]] = {
        "nv_inference_request_success": ("Successful inference requests (Infer).", []),
        "nv_inference_request_failure": ("Failed inference requests (Infer), by reason.", []),
        "nv_inference_count": ("Inferences performed (batch rows where the model batches, else requests).", []),
        "nv_inference_exec_count": ("Model executions (batches where the model batches, else requests).", []),
        "nv_inference_request_duration_us": ("Cumulative inference request duration in microseconds.", []),
        "nv_inference_queue_duration_us": ("Cumulative time requests waited for a batch, in microseconds.", []),
        "nv_inference_compute_input_duration_us": ("Cumulative adapt and preprocess time, in microseconds.", []),
        "nv_inference_compute_infer_duration_us": ("Cumulative run time, in microseconds.", []),
        "nv_inference_compute_output_duration_us": ("Cumulative postprocess time, in microseconds.", []),
    }

    def add(name: str, labels: dict[str, str], value: float) -> None:
        families[name][1].append((labels, value))

    def stage_us(model: str, *stages: str) -> float:
        return sum(telemetry.stages[(model, stage)].total for stage in stages if (model, stage) in telemetry.stages) * 1e6

    for report in reports:
        name = report.name
        labels = {"model": name, "version": "1"}
        ok = telemetry.requests.get((name, "Infer", "OK"), 0)
        add("nv_inference_request_success", labels, ok)
        failed: dict[str, int] = {}
        for (model, rpc, code), calls in list(telemetry.requests.items()):
            if model == name and rpc == "Infer" and code != "OK":
                reason = _TRITON_REASONS.get(code, "OTHER")
                failed[reason] = failed.get(reason, 0) + calls
        for reason in ("REJECTED", "CANCELED", "BACKEND", "OTHER"):
            add("nv_inference_request_failure", {**labels, "reason": reason}, failed.get(reason, 0))
        stats = report.batching.stats if report.batching is not None else None
        add("nv_inference_count", labels, stats.rows if stats is not None else ok)
        add("nv_inference_exec_count", labels, stats.batches if stats is not None else ok)
        duration = telemetry.durations.get((name, "Infer"))
        add("nv_inference_request_duration_us", labels, duration.total * 1e6 if duration is not None else 0.0)
        add("nv_inference_queue_duration_us", labels, stage_us(name, "queue"))
        add("nv_inference_compute_input_duration_us", labels, stage_us(name, "adapt", "preprocess"))
        add("nv_inference_compute_infer_duration_us", labels, stage_us(name, "run"))
        add("nv_inference_compute_output_duration_us", labels, stage_us(name, "postprocess"))
    lines: list[str] = []
    for name, (documentation, samples) in families.items():
        lines.append(f"# HELP {name} {documentation}")
        lines.append(f"# TYPE {name} counter")
        for labels, value in samples:
            text = ",".join(f'{key}="{_escape(str(label))}"' for key, label in labels.items())
            lines.append(f"{name}{{{text}}} {float(value)!r}")
    return ("\n".join(lines) + "\n").encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _histograms(name: str, documentation: str, labels: list[str], table: dict[Any, Histogram]) -> Any:
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, documentation, labels=labels)
    for key, histogram in sorted(table.items()):
        family.add_metric(list(key), histogram.cumulative(), sum_value=histogram.total)
    return family


def _rows_histogram(sizes: dict[int, int], max_batch_size: int) -> Histogram:
    """Batch sizes (rows -> batches) as a histogram over powers of two up to the largest batch."""
    bounds: list[float] = []
    bound = 1
    while bound < max_batch_size:
        bounds.append(bound)
        bound *= 2
    bounds.append(max_batch_size)
    histogram = Histogram(bounds)
    for rows, count in sizes.items():
        histogram.counts[bisect_left(histogram.bounds, rows)] += count
        histogram.total += rows * count
    return histogram
