"""OpenTelemetry traces, off unless configured (``[server.tracing]``, ``INFERD_TRACING``, or the
standard ``OTEL_TRACES_EXPORTER=otlp``). They need no extra: the native core writes OTLP.

- One server span per call, continuing the caller's trace when its metadata carries a W3C
  ``traceparent`` (and ``tracestate``).
- Its children, one per stage (setup, adapt, preprocess, queue, run, postprocess, stream),
  made in the export thread from the times the engine measured anyway; a stream's span has an
  event per chunk.
- A batch's run is a span of its own, the root of a trace of its own, with a link to the span of
  every request it served: never the child of one of them.
- Sampling follows the standard settings (``OTEL_TRACES_SAMPLER``: ``parentbased_always_on`` by
  default, ``always_on``, ``always_off``, ``traceidratio``, ``parentbased_traceidratio``, ...,
  with ``OTEL_TRACES_SAMPLER_ARG``).
- A server span's status is ERROR for the codes that are the server's fault (UNKNOWN,
  DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS), as OpenTelemetry's
  gRPC conventions say; every other failure is only its ``error.type``.
- Spans leave in batches from a thread of their own, through the sender the server gives
  (OTLP over gRPC or HTTP/protobuf: :mod:`inferd.server.otlp`).

Spans are not the OpenTelemetry SDK's objects: a call leaves ONE plain tuple on the event
loop, its server span holding its requests' stage timings as the engine measured them
(perf_counter seconds and milliseconds, untouched); the export thread has the native core turn
those into the stage spans (their ids, their times) and write everything as one OTLP message
with the GIL released (:func:`inferd._native.encode_spans`), a small part of what the SDK's
span objects and encoder cost a call (benches/README.md, "What metrics and traces cost").
"""

from __future__ import annotations

import collections
import contextvars
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from . import _native
from .config_server import TracingConfig
from .errors import ConfigError

__all__ = ["Span", "Tracing", "current_call", "tracing_enabled"]

logger = logging.getLogger("inferd.tracing")

#: The server span of the call the current task serves (set by the gRPC front).
current_call: contextvars.ContextVar[Span | None] = contextvars.ContextVar("inferd_call_span", default=None)

_SERVER, _INTERNAL = 2, 1  # OTLP's SpanKind values
_UNSET: tuple[int, str] = (0, "")
#: The gRPC codes that make a server span's status ERROR (OpenTelemetry's gRPC conventions).
SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})
_MAX_QUEUE = 20_000  # records (a call's span with its stages) waiting for export; more are dropped (and counted)
#: Records an export carries (a call's is some six spans). Each export costs the loop about
#: the same whatever its size, and 512 spans an export (the SDK's default) cost a tenth of the
#: server's throughput at 100% sampling.
_BATCH = 2048
#: ... and at most this many spans and events together, stage spans counted (a stream's span
#: has an event a chunk), so that an export stays far below a collector's 4 MiB message limit.
_BATCH_ITEMS = 16_384
_INTERVAL_S = 1.0
_ALWAYS = 1 << 64  # a sampler bound every trace id is under
_getrandbits = random.getrandbits


def tracing_enabled(config: TracingConfig, environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return config.enabled or env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "otlp"


class Span:
    """A call's server span while the call runs."""

    __slots__ = (
        "_tracing", "trace_id", "span_id", "parent_id", "trace_state", "sampled", "name", "start_ns", "attributes", "kind",
        "stages", "ended",
    )  # fmt: skip

    def __init__(
        self, tracing: Tracing, trace_id: bytes, span_id: bytes, parent_id: bytes, trace_state: str, sampled: bool,
        name: str, kind: int, attributes: dict[str, Any],
    ) -> None:  # fmt: skip
        self._tracing = tracing
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.trace_state = trace_state
        self.sampled = sampled
        self.name = name
        # On the clock the stages are measured with, so that children never stray outside.
        self.start_ns = int(time.perf_counter() * 1e9) + tracing._epoch_offset_ns
        self.attributes = attributes
        self.kind = kind  # SERVER for a call; INTERNAL for a graph's node
        #: The stages of the requests served inside it, as :meth:`Tracing.stages` keeps them.
        self.stages: list[tuple[str, float, Sequence[tuple[str, float]], Sequence[float]]] | None = None
        self.ended = False

    def child(self, name: str, attributes: dict[str, Any]) -> Span:
        """A span inside this one (a graph's node), started now; end it with :meth:`end`."""
        return Span(self._tracing, self.trace_id, _random_id(8), self.span_id, self.trace_state, self.sampled, name, _INTERNAL, attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def end(self, code: str = "OK") -> None:
        """Ends the span of a call that ended with gRPC status ``code``: one record, its
        requests' stages in it."""
        self.ended = True
        if self.sampled:
            # A node's span (INTERNAL) is an error whenever the node failed.
            failed = code != "OK" and (code in SERVER_ERRORS or self.kind != _SERVER)
            tracing = self._tracing
            tracing._record(
                (self.trace_id, self.span_id, self.parent_id, self.trace_state, self.name, self.kind, self.start_ns,
                 int(time.perf_counter() * 1e9) + tracing._epoch_offset_ns, self.attributes, (), (),
                 (2, code) if failed else _UNSET, tuple(self.stages) if self.stages else ())
            )  # fmt: skip


def _random_id(size: int) -> bytes:
    while True:
        value = random.getrandbits(size * 8)
        if value:
            return value.to_bytes(size, "big")


class _Sampler:
    """OTEL_TRACES_SAMPLER, as the SDK reads it."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        name = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
        self.parent_based = name.startswith("parentbased_")
        root = name.removeprefix("parentbased_")
        if root not in ("always_on", "always_off", "traceidratio"):
            raise ConfigError(f"OTEL_TRACES_SAMPLER={name!r}: use always_on, always_off, traceidratio or parentbased_*")
        ratio = 1.0
        if root == "traceidratio":
            try:
                ratio = float(environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
            except ValueError:
                raise ConfigError("OTEL_TRACES_SAMPLER_ARG: a number from 0 to 1") from None
        self.bound = 0 if root == "always_off" else round(max(0.0, min(ratio, 1.0)) * (1 << 64))

    def sampled(self, trace_id: bytes, parent_sampled: bool | None) -> bool:
        if self.parent_based and parent_sampled is not None:
            return parent_sampled
        return self.bound >= _ALWAYS or int.from_bytes(trace_id[8:], "big") < self.bound


def _parse_traceparent(value: str) -> tuple[bytes, bytes, bool] | None:
    """(trace id, parent span id, sampled) of a W3C traceparent; None if it is not valid."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff" or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, parent_id, flags = bytes.fromhex(parts[1]), bytes.fromhex(parts[2]), int(parts[3][:2], 16)
    except ValueError:
        return None
    if not any(trace_id) or not any(parent_id):
        return None
    return trace_id, parent_id, bool(flags & 1)


class Tracing:
    """One server's traces: the sampler, the queue of finished spans and the export thread."""

    def __init__(
        self, config: TracingConfig, send: Callable[[bytes], None], environ: Mapping[str, str] | None = None
    ) -> None:
        """``send`` delivers one serialised ``ExportTraceServiceRequest`` (the transport is the
        server's: :func:`inferd.server.otlp.otlp_sender`); its ``close()``, if it has one, is
        called at :meth:`shutdown`."""
        env = os.environ if environ is None else environ
        self._sampler = _Sampler(env)
        self._service = config.service_name
        from . import __version__  # (the package is whole by the time a server makes this)

        self._version = __version__
        self._send = send
        #: perf_counter seconds -> epoch nanoseconds (the engine measures with perf_counter).
        self._epoch_offset_ns = time.time_ns() - time.perf_counter_ns()
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self.dropped = 0
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._exporting = False
        self._drain = threading.Event()  # set by flush(): the next wake exports everything
        self._stopped = False
        #: Per RPC: the server span's name and constant attributes.
        self._rpcs: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self._thread = threading.Thread(target=self._run, name="inferd-tracing", daemon=True)
        self._thread.start()

    # -- spans (on the event loop) ------------------------------------------------------

    def start_call(self, rpc: str, metadata: Iterable[tuple[str, Any]] | None, service: str = "inferd.v1.Inference") -> Span:
        """The server span of a call of ``service``'s ``rpc`` (named ``service/rpc``, as
        OpenTelemetry's gRPC conventions name it); the caller's ``traceparent`` continues its trace."""
        parent: tuple[bytes, bytes, bool] | None = None
        state = ""
        for key, value in metadata or ():
            if key == "traceparent" and isinstance(value, str):
                parent = _parse_traceparent(value)
            elif key == "tracestate" and isinstance(value, str):
                state = value
        # One draw for both ids (either zero, which is not an id: draw each again).
        bits = _getrandbits(192)
        span_bits = bits & 0xFFFF_FFFF_FFFF_FFFF
        span_id = span_bits.to_bytes(8, "big") if span_bits else _random_id(8)
        if parent is None:
            trace_id = (bits >> 64).to_bytes(16, "big") if bits >> 64 else _random_id(16)
            parent_id, parent_sampled, state = b"", None, ""
        else:
            trace_id, parent_id, parent_sampled = parent
        known = self._rpcs.get((service, rpc))
        if known is None:
            known = self._rpcs[service, rpc] = (
                f"{service}/{rpc}", {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}
            )  # fmt: skip
        name, attributes = known
        sampled = self._sampler.sampled(trace_id, parent_sampled)
        return Span(self, trace_id, span_id, parent_id, state, sampled, name, _SERVER, attributes.copy())

    @staticmethod
    def trace_id(span: Span) -> str:
        return span.trace_id.hex()

    def _ns(self, perf_seconds: float) -> int:
        return int(perf_seconds * 1e9) + self._epoch_offset_ns

    def stages(self, span: Span, model: str, started: float, timings: Sequence[tuple[str, float]], chunks: Sequence[float] = ()) -> None:
        """A finished request's stages as children of its call's ``span``: each starts where
        the one before ended (``started``: the request's perf_counter start; ``timings``:
        (stage, ms), "total" making no span; neither changes after); ``chunks``: the
        perf_counter times at which a stream sent its chunks. Kept as they are, in the span's
        record: the export thread makes them spans (:func:`inferd._native.encode_spans`)."""
        span.attributes["inferd.model"] = model
        if not span.sampled:
            return
        # Tuples of numbers and strings: the collector stops tracking a waiting record at its
        # first pass (a list would keep every record in the older generations' passes).
        request = (model, started, timings if type(timings) is tuple else tuple(timings), chunks if type(chunks) is tuple else tuple(chunks))
        if span.ended:  # (a request that outlived its span: its stages leave by themselves)
            self._record((span.trace_id, span.span_id, span.trace_state, (request,)))
        elif span.stages is None:
            span.stages = [request]
        else:
            span.stages.append(request)

    def batch(self, model: str, requests: Sequence[Span | None], started: float, ended: float, rows: int) -> None:
        """A batch's run: the root of a trace of its own, linked to every request span it served."""
        links = tuple((span.trace_id, span.span_id) for span in requests if span is not None and span.sampled)
        if not links:
            return
        attributes = {"inferd.model": model, "inferd.batch.rows": rows, "inferd.batch.requests": len(links)}
        self._record((_random_id(16), _random_id(8), b"", "", "run batch", _INTERNAL,
                      self._ns(started), self._ns(ended), attributes, (), links, _UNSET))  # fmt: skip

    def _record(self, span: tuple[Any, ...]) -> None:
        if len(self._queue) >= _MAX_QUEUE:
            self.dropped += 1
            return
        self._queue.append(span)
        if len(self._queue) >= _BATCH:
            self._wake.set()

    # -- export (a thread of its own) ---------------------------------------------------

    def _run(self) -> None:
        while not self._stopped:
            # Woken by a full batch: only full batches leave, so that a slow collector does
            # not turn into many small exports (each costs the loop a call). Every interval,
            # and when asked to flush, everything leaves.
            full = self._wake.wait(_INTERVAL_S) and not self._drain.is_set()
            self._wake.clear()
            self._drain.clear()
            self._export(full_only=full)

    def _export(self, *, full_only: bool) -> None:
        with self._idle:
            self._exporting = True
        try:
            queue = self._queue
            while len(queue) >= (_BATCH if full_only else 1):
                batch = [queue.popleft() for _ in range(min(len(queue), _BATCH))]
                taken = len(batch)
                try:
                    body, taken = _native.encode_spans(
                        batch, self._service, "inferd", self._version, clock_ns=self._epoch_offset_ns, max_items=_BATCH_ITEMS
                    )  # fmt: skip
                    if taken < len(batch):  # the rest wait for the next export, in their order
                        queue.extendleft(reversed(batch[taken:]))
                    self._send(body)
                except Exception as error:  # a collector away must not stop the server
                    logger.warning("tracing: %d records not exported: %s", taken, error)
        finally:
            with self._idle:
                self._exporting = False
                self._idle.notify_all()

    def flush(self, timeout_s: float = 30) -> bool:
        """Exports every span finished so far; False if that took longer than ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._drain.set()
            self._wake.set()
            with self._idle:
                self._idle.wait(0.05)
                if not self._queue and not self._exporting:
                    return True
        return False

    def shutdown(self) -> None:
        self.flush()
        self._stopped = True
        self._wake.set()
        self._thread.join(10)
        close = getattr(self._send, "close", None)
        if close is not None:
            try:
                close()
            except Exception as error:  # a collector away must not stop the shutdown
                logger.warning("tracing: closing the exporter: %s", error)
