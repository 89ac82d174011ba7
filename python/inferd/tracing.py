"""OpenTelemetry traces, off unless configured (``[server.tracing]``, or the standard
``OTEL_TRACES_EXPORTER=otlp``); the ``otel`` extra installs what they need, and without it a
server that does not ask for traces never imports it.

- One server span per call, continuing the caller's trace when its metadata carries a W3C
  ``traceparent`` (and ``tracestate``).
- Its children, one per stage (setup, adapt, preprocess, queue, run, postprocess, stream),
  made when the request ends from the times the engine measured anyway (so a request pays no
  span bookkeeping while it runs); a stream's span has an event per chunk.
- A batch's run is a span of its own, in a trace of its own, with a link to the span of every
  request it served: never the child of one of them.
- Spans go out through OTLP over gRPC or HTTP, batched; sampling is the standard sampler
  settings' (``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``).
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .config import TracingConfig
from .errors import ConfigError

__all__ = ["Tracing", "current_call", "tracing_enabled"]

#: The server span of the call the current task serves (set by the gRPC front).
current_call: contextvars.ContextVar[Any] = contextvars.ContextVar("inferd_call_span", default=None)


def tracing_enabled(config: TracingConfig, environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return config.enabled or env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "otlp"


class Tracing:
    """One server's tracer provider, exporter and propagator (its own, not the global ones, so
    that servers in one process do not share them)."""

    def __init__(self, config: TracingConfig) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError as error:
            raise ConfigError(f"[server.tracing] needs OpenTelemetry: pip install 'inferd[otel]' ({error})") from None
        protocol = config.exporter or _protocol_from_env()
        if protocol == "otlp-http":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

            exporter: Any = HttpExporter(endpoint=config.endpoint) if config.endpoint else HttpExporter()
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            endpoint = config.endpoint
            if endpoint:
                exporter = GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
            else:
                exporter = GrpcExporter()
        self._trace = trace
        self.provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("inferd")
        self._propagator = TraceContextTextMapPropagator()
        #: perf_counter seconds -> epoch nanoseconds (the engine measures with perf_counter).
        self._epoch_offset_ns = time.time_ns() - time.perf_counter_ns()

    def _ns(self, perf_seconds: float) -> int:
        return int(perf_seconds * 1e9) + self._epoch_offset_ns

    def start_call(self, rpc: str, metadata: Iterable[tuple[str, Any]] | None) -> Any:
        """The server span of a call; the caller's ``traceparent`` continues its trace."""
        carrier = {key: value for key, value in metadata or () if key in ("traceparent", "tracestate") and isinstance(value, str)}
        parent = self._propagator.extract(carrier) if carrier else None
        return self.tracer.start_span(
            f"inferd.v1.Inference/{rpc}",
            context=parent,
            kind=self._trace.SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": "inferd.v1.Inference", "rpc.method": rpc},
        )

    @staticmethod
    def trace_id(span: Any) -> str:
        context = span.get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else ""

    def stages(
        self, span: Any, model: str, started: float, timings: Sequence[tuple[str, float]], chunks: Sequence[float] = ()
    ) -> None:
        """A finished request's stages as children of its call's ``span``: each starts where
        the one before ended (``started``: the request's perf_counter start); ``chunks``: the
        perf_counter times at which a stream sent its chunks."""
        span.set_attribute("inferd.model", model)
        parent = self._trace.set_span_in_context(span)
        mark = started
        for stage, ms in timings:
            if stage == "total":
                continue
            end = mark + ms / 1000
            child = self.tracer.start_span(stage, context=parent, start_time=self._ns(mark), attributes={"inferd.model": model})
            if stage == "stream":
                for index, at in enumerate(chunks):
                    child.add_event("chunk", {"index": index}, timestamp=self._ns(at))
            child.end(end_time=self._ns(end))
            mark = end

    def batch(self, model: str, requests: Sequence[Any], started: float, ended: float, rows: int) -> None:
        """A batch's run: a span of its own trace, linked to every request span it served."""
        links = [self._trace.Link(span.get_span_context()) for span in requests if span is not None]
        span = self.tracer.start_span(
            "run batch",
            context=self._trace.set_span_in_context(self._trace.INVALID_SPAN),  # a root: no parent
            links=links,
            start_time=self._ns(started),
            attributes={"inferd.model": model, "inferd.batch.rows": rows, "inferd.batch.requests": len(links)},
        )
        span.end(end_time=self._ns(ended))

    def flush(self, timeout_s: float = 30) -> bool:
        return bool(self.provider.force_flush(int(timeout_s * 1000)))

    def shutdown(self) -> None:
        self.provider.shutdown()


def _protocol_from_env() -> str:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    return "otlp-http" if protocol.strip().lower().startswith("http") else "otlp-grpc"
