"""``inferd trace``: one real request's spans, drawn as a waterfall.

It serves a configuration in this process with tracing on, pointed at an OTLP/gRPC receiver of
its own on 127.0.0.1, sends the request through the Python client, collects the spans of that
request's trace (and the batch spans linked to it), and draws them: a bar a span on a time
axis, nested under its parent, a row each, so that
parallel branches show side by side.
Needs the ``otel`` extra (traces) and matplotlib (the ``plot`` extra) for the picture.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SpanBar", "trace_request", "layout", "draw"]


@dataclass
class SpanBar:
    name: str
    span_id: bytes
    parent_id: bytes
    start_ns: int
    end_ns: int
    #: linked (a batch's run that served this request), not a child
    linked: bool = False
    children: list[SpanBar] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _receiver() -> tuple[Any, int, list[Any], threading.Lock]:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    spans: list[Any] = []
    lock = threading.Lock()

    class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
            with lock:
                spans.extend(span for resource in request.resource_spans for scope in resource.scope_spans for span in scope.spans)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port, spans, lock


def trace_request(
    config_path: str, model: str, inputs: Any, parameters: dict[str, Any] | None = None, *, stream: bool = False
) -> list[SpanBar]:
    """Serves ``config_path`` here, sends one request, returns its trace's spans as a tree
    (roots first; batch runs linked to the request as extra roots, marked ``linked``)."""
    from ..client import Client
    from ..config import load_config
    from .app import create_server

    receiver, port, spans, lock = _receiver()
    config = load_config(config_path)
    tracing = {"enabled": True, "exporter": "otlp-grpc", "endpoint": f"http://127.0.0.1:{port}"}
    config = config.with_server(address="127.0.0.1:0", tracing=tracing, metrics={"enabled": False})
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(create_server(config), loop).result()
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=600) as client:
            client.setup(model)
            with lock:
                spans.clear()  # only the request's spans, not the setup call's
            if stream:
                list(client.stream(model, inputs, parameters=parameters))
            else:
                client.infer(model, inputs, parameters=parameters)
        assert server.engine.tracing is not None
        server.engine.tracing.flush()
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(grace=5), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        receiver.stop(None)
    with lock:
        collected = list(spans)
    return _tree(collected)


def _tree(spans: list[Any]) -> list[SpanBar]:
    calls = [span for span in spans if span.name.startswith("inferd.v1.Inference/") and span.name != "inferd.v1.Inference/Setup"]
    if not calls:
        raise RuntimeError("no server span came back")
    root = calls[-1]
    bars = {
        span.span_id: SpanBar(span.name, span.span_id, span.parent_span_id, span.start_time_unix_nano, span.end_time_unix_nano)
        for span in spans
        if span.trace_id == root.trace_id
    }
    top: list[SpanBar] = []
    for bar in bars.values():
        parent = bars.get(bar.parent_id)
        (parent.children if parent is not None else top).append(bar)
    for span in spans:  # batch runs that link to the request
        if any(link.span_id == root.span_id for link in span.links):
            top.append(SpanBar(span.name, span.span_id, b"", span.start_time_unix_nano, span.end_time_unix_nano, linked=True))
    for bar in bars.values():
        bar.children.sort(key=lambda child: child.start_ns)
    top.sort(key=lambda bar: (bar.linked, bar.start_ns))
    return top


def layout(roots: list[SpanBar], max_depth: int | None = None) -> list[tuple[SpanBar, int, int]]:
    """(bar, row, depth) for every span (down to ``max_depth`` levels), a row each, depth-first:
    a child below its parent, siblings in the order they started, so parallel branches show as
    bars that overlap in time on rows side by side."""
    placed: list[tuple[SpanBar, int, int]] = []

    def place(bar: SpanBar, depth: int) -> None:
        placed.append((bar, len(placed), depth))
        if max_depth is None or depth < max_depth:
            for child in bar.children:
                place(child, depth + 1)

    for root in roots:
        place(root, 0)
    return placed


def draw(roots: list[SpanBar], out: Path, title: str, max_depth: int | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    placed = layout(roots, max_depth)
    origin = min(bar.start_ns for bar, _, _ in placed)
    rows = max(row for _, row, _ in placed) + 1
    figure, axes = plt.subplots(figsize=(10, 0.4 * rows + 1.2))
    colours = ["#4C72B0", "#55A868", "#C44E52", "#8172B2", "#CCB974", "#64B5CD"]
    for bar, row, depth in placed:
        start = (bar.start_ns - origin) / 1e6
        colour = "#999999" if bar.linked else colours[depth % len(colours)]
        axes.barh(row, max(bar.ms, 1e-3), left=start, height=0.6, color=colour, hatch="//" if bar.linked else None)
        label = f"{'  ' * depth}{bar.name} ({bar.ms:.3f} ms)" + (" [linked]" if bar.linked else "")
        axes.text(-0.01, row, label, fontsize=8, va="center", ha="right", transform=axes.get_yaxis_transform())
    axes.set_ylim(rows - 0.4, -0.6)
    axes.set_yticks([])
    axes.set_xlabel("ms since the call's start in the server")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
