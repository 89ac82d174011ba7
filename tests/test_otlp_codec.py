"""The native OTLP writer (``inferd._native.encode_spans``) against opentelemetry-proto's own
message classes: its field numbers, and what it writes for generated spans of every kind."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto", reason="the otel extra is not installed")

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402
from opentelemetry.proto.common.v1 import common_pb2  # noqa: E402
from opentelemetry.proto.resource.v1 import resource_pb2  # noqa: E402
from opentelemetry.proto.trace.v1 import trace_pb2  # noqa: E402

from inferd import _native  # noqa: E402

MESSAGES: dict[str, Any] = {
    "ExportTraceServiceRequest": trace_service_pb2.ExportTraceServiceRequest,
    "ResourceSpans": trace_pb2.ResourceSpans,
    "Resource": resource_pb2.Resource,
    "ScopeSpans": trace_pb2.ScopeSpans,
    "InstrumentationScope": common_pb2.InstrumentationScope,
    "Span": trace_pb2.Span,
    "Event": trace_pb2.Span.Event,
    "Link": trace_pb2.Span.Link,
    "Status": trace_pb2.Status,
    "KeyValue": common_pb2.KeyValue,
    "AnyValue": common_pb2.AnyValue,
}


def test_field_numbers_are_opentelemetry_protos() -> None:
    for name, number in _native.OTLP_FIELDS.items():
        message, field = name.split(".")
        assert MESSAGES[message].DESCRIPTOR.fields_by_name[field].number == number, name


def _text(rng: random.Random) -> str:
    alphabet = "abcXYZ.-_ é漢🙂\n\"\\"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))


def _value(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return _text(rng)
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, -1, 2**63 - 1, -(2**63), rng.randrange(-(10**12), 10**12)])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.5, -2.25e-300, math.inf, rng.uniform(-1e9, 1e9)])
    if kind == 4:
        return 2**70  # past int64: written as its text
    return ["a", 1]  # no scalar: written as its str()


def _attributes(rng: random.Random) -> dict[str, Any]:
    return {f"k{index}.{_text(rng)}": _value(rng) for index in range(rng.randrange(0, 5))}


def _span(rng: random.Random) -> tuple[Any, ...]:
    events = tuple((_text(rng), rng.randrange(0, 2**64), _attributes(rng)) for _ in range(rng.randrange(0, 3)))
    links = tuple((rng.randbytes(16), rng.randbytes(8)) for _ in range(rng.randrange(0, 3)))
    status = rng.choice([(0, ""), (2, "INTERNAL"), (1, ""), (2, _text(rng))])
    return (
        rng.randbytes(16), rng.randbytes(8), rng.choice([b"", rng.randbytes(8)]), rng.choice(["", "k=v,a=b"]),
        _text(rng), rng.randrange(0, 6), rng.randrange(0, 2**64), rng.randrange(0, 2**64),
        _attributes(rng), events, links, status,
    )  # fmt: skip


def _set(target: Any, key: str, value: Any) -> None:
    """What the writer should make of one attribute, through the message classes."""
    item = target.add(key=key)
    if isinstance(value, bool):
        item.value.bool_value = value
    elif isinstance(value, int) and -(2**63) <= value < 2**63:
        item.value.int_value = value
    elif isinstance(value, float):
        item.value.double_value = value
    else:
        item.value.string_value = str(value)


def _expected(spans: list[tuple[Any, ...]], service: str) -> Any:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    _set(resource.resource.attributes, "service.name", service)
    scope = resource.scope_spans.add()
    scope.scope.name, scope.scope.version = "inferd", "9.9"
    for trace_id, span_id, parent, state, name, kind, start, end, attributes, events, links, status in spans:
        out = scope.spans.add(
            trace_id=trace_id, span_id=span_id, parent_span_id=parent, trace_state=state, name=name, kind=kind,
            start_time_unix_nano=start, end_time_unix_nano=end,
        )  # fmt: skip
        for key, value in attributes.items():
            _set(out.attributes, key, value)
        for event_name, at, event_attributes in events:
            event = out.events.add(name=event_name, time_unix_nano=at)
            for key, value in event_attributes.items():
                _set(event.attributes, key, value)
        for link_trace, link_span in links:
            out.links.add(trace_id=link_trace, span_id=link_span)
        out.status.code, out.status.message = status
        if status == (0, ""):
            out.ClearField("status")
    return request


@pytest.mark.parametrize("seed", range(40))
def test_generated_spans_read_back_as_written(seed: int) -> None:
    rng = random.Random(seed)
    spans = [_span(rng) for _ in range(rng.randrange(0, 30))]
    service = _text(rng) or "svc"
    body, taken = _native.encode_spans(spans, service, "inferd", "9.9")
    assert taken == len(spans)
    parsed = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    assert parsed == _expected(spans, service)
    # Nothing the message classes would write differently (proto3 leaves defaults out alike).
    assert body == _expected(spans, service).SerializeToString(deterministic=True)


@pytest.mark.parametrize(
    "spans",
    [
        [(b"x",)],  # too short
        [("not bytes", b"", b"", "", "n", 1, 0, 0, {}, (), (), (0, ""))],
        [(b"", b"", b"", "", "n", 1, -1, 0, {}, (), (), (0, ""))],  # a negative time
        [(b"", b"", b"", "", "n", 1, 0, 0, [], (), (), (0, ""))],  # attributes not a dict
        [None],
    ],
)
def test_malformed_span_tuples_raise_type_or_value_errors(spans: list[Any]) -> None:
    with pytest.raises((TypeError, ValueError, OverflowError, IndexError)):
        _native.encode_spans(spans, "svc", "inferd", "1")


def test_exports_are_cut_by_spans_and_by_events() -> None:
    """A batch holds at most 2048 spans, and at most 16,384 spans and events together (a long
    stream's span has an event a chunk); none is lost or reordered."""
    from inferd.config import TracingConfig
    from inferd.tracing import Tracing

    sent: list[bytes] = []
    tracing = Tracing(TracingConfig(enabled=True), sent.append, {})
    rng = random.Random(7)
    spans = [_span(rng) for _ in range(3000)]
    for index in range(0, 3000, 300):  # ten streams of 5,000 chunks among them
        spans[index] = spans[index][:9] + (tuple(("chunk", at, {"index": at}) for at in range(5000)),) + spans[index][10:]
    for span in spans:
        tracing._record(span)
    assert tracing.flush()
    tracing.shutdown()
    names: list[bytes] = []
    for body in sent:
        (resource,) = trace_service_pb2.ExportTraceServiceRequest.FromString(body).resource_spans
        batch = resource.scope_spans[0].spans
        assert len(batch) <= 2048
        assert len(batch) + sum(len(span.events) for span in batch) <= 16_384 or len(batch) == 1
        names += [span.span_id for span in batch]
    assert names == [span[1] for span in spans]


def _request(rng: random.Random) -> tuple[Any, ...]:
    """One request's stages as the engine hands them over: (model, started, timings, chunks)."""
    names = ["setup", "adapt", "preprocess", "queue", "run", "postprocess", "stream"]
    timings = [(rng.choice(names), rng.uniform(0, 50)) for _ in range(rng.randrange(0, 6))] + [("total", rng.uniform(0, 300))]
    started = rng.uniform(0, 1e6)
    chunks = tuple(started + rng.uniform(0, 1) for _ in range(rng.randrange(0, 4)))
    return (_text(rng), started, tuple(timings), chunks)


def _stage_spans(trace_id: bytes, parent: bytes, state: str, requests: Any, clock_ns: int) -> list[tuple[Any, ...]]:
    """The stage spans of ``requests`` as the event loop made them before the export thread
    did (span ids left None: they are drawn in the native core)."""
    out: list[tuple[Any, ...]] = []
    for model, started, timings, chunks in requests:
        mark = started
        for stage, ms in timings:
            if stage == "total":
                continue
            end = mark + ms / 1000
            events = tuple(("chunk", int(at * 1e9) + clock_ns, {"index": i}) for i, at in enumerate(chunks)) if stage == "stream" else ()
            out.append((trace_id, None, parent, state, stage, 1, int(mark * 1e9) + clock_ns, int(end * 1e9) + clock_ns,
                        {"inferd.model": model}, events, (), (0, "")))  # fmt: skip
            mark = end
    return out


@pytest.mark.parametrize("seed", range(20))
def test_stages_become_the_spans_the_loop_once_made(seed: int) -> None:
    """A span's stages (a 13th item) and stages alone (a 4-tuple) are written as child spans,
    the same nanoseconds as the loop's arithmetic, each with a fresh 8-byte id."""
    rng = random.Random(seed)
    clock_ns = rng.randrange(0, 2**60)
    records: list[tuple[Any, ...]] = []
    expected: list[tuple[Any, ...]] = []
    for _ in range(rng.randrange(1, 10)):
        span = _span(rng)
        requests = tuple(_request(rng) for _ in range(rng.randrange(0, 3)))
        if rng.random() < 0.25:
            records.append((span[0], span[1], span[3], requests))  # a span recorded before its stages
        else:
            records.append((*span, requests))
            expected.append(span)
        expected += _stage_spans(span[0], span[1], span[3], requests, clock_ns)
    body, taken = _native.encode_spans(records, "svc", "inferd", "9.9", clock_ns=clock_ns)
    assert taken == len(records)
    (resource,) = trace_service_pb2.ExportTraceServiceRequest.FromString(body).resource_spans
    got = list(resource.scope_spans[0].spans)
    assert len(got) == len(expected)
    drawn = [span.span_id for span, want in zip(got, expected, strict=True) if want[1] is None]
    assert all(len(span_id) == 8 and any(span_id) for span_id in drawn)
    assert len(set(drawn)) == len(drawn)
    filled = [(want[0], span.span_id, *want[2:]) if want[1] is None else want for span, want in zip(got, expected, strict=True)]
    assert body == _expected(filled, "svc").SerializeToString(deterministic=True)


def test_stage_spans_and_their_events_count_against_an_export() -> None:
    """A call's record makes its stage spans and a stream's chunk events too: an export still
    holds at most 16,384 spans and events, and every one arrives."""
    from inferd.config import TracingConfig
    from inferd.tracing import Tracing

    sent: list[bytes] = []
    tracing = Tracing(TracingConfig(enabled=True), sent.append, {})
    rng = random.Random(3)
    stream = ("m", 1.0, (("adapt", 1.0), ("stream", 2.0), ("total", 3.0)), tuple(1.0 + i / 1e4 for i in range(1000)))
    for _ in range(100):
        tracing._record((*_span(rng)[:9], (), (), (0, ""), (stream,)))
    assert tracing.flush()
    tracing.shutdown()
    spans = [span for body in sent for span in trace_service_pb2.ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans]
    for body in sent:
        batch = trace_service_pb2.ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans
        assert len(batch) + sum(len(span.events) for span in batch) <= 16_384
    assert len(sent) > 1
    assert sum(span.name == "stream" and len(span.events) == 1000 for span in spans) == 100
    assert sum(span.name == "adapt" for span in spans) == 100


def test_stages_that_come_after_their_span_ended_still_arrive_under_it() -> None:
    from inferd.config import TracingConfig
    from inferd.tracing import Tracing

    sent: list[bytes] = []
    tracing = Tracing(TracingConfig(enabled=True), sent.append, {})
    span = tracing.start_call("Infer", (("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),))
    tracing.stages(span, "early", 1.0, (("run", 1.0), ("total", 1.0)))
    span.end("OK")
    tracing.stages(span, "late", 2.0, (("adapt", 1.0), ("run", 2.0), ("total", 3.0)))
    assert tracing.flush()
    tracing.shutdown()
    spans = [span for body in sent for span in trace_service_pb2.ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans]
    (call,) = [s for s in spans if s.name == "inferd.v1.Inference/Infer"]
    stages = sorted((s.attributes[0].value.string_value, s.name) for s in spans if s is not call)
    assert stages == [("early", "run"), ("late", "adapt"), ("late", "run")]
    assert all(s.parent_span_id == call.span_id and s.trace_id == call.trace_id for s in spans if s is not call)
    assert call.parent_span_id.hex() == "00f067aa0ba902b7"
