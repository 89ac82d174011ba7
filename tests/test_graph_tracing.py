"""A graph's trace: a span a node, children of the call's span, the parallel ones side by side,
each node's model stages inside its node (exported over OTLP/gRPC to a real receiver)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer

pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto (the otel extra) reads the spans")

from test_graph import GRAPHS  # noqa: E402
from test_tracing import Receiver, exported, receiver  # noqa: E402, F401  (receiver: the fixture)

from inferd.config import ModelConfig, ServiceConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def traced(receiver: tuple[Receiver, int]) -> Iterator[RunningServer]:
    models = {name: ModelConfig.model_validate(GRAPHS[name]) for name in ("barrier", "parallel", "refuses", "sleeper", "fails", "upper")}
    tracing = {"enabled": True, "exporter": "otlp-grpc", "endpoint": f"http://127.0.0.1:{receiver[1]}"}
    running = RunningServer(ServiceConfig(models=models).with_server(tracing=tracing, metrics={"address": "127.0.0.1:0"}))
    yield running
    running.stop()


def attributes(span: Any) -> dict[str, Any]:
    return {item.key: item.value.string_value or item.value.int_value for item in span.attributes}


def test_each_node_is_a_span_and_parallel_ones_overlap(traced: RunningServer, receiver: tuple[Receiver, int]) -> None:
    exported(traced, receiver[0])
    with traced.client(timeout=30) as client:
        assert client.infer("parallel", "x").output == ["met:x", "met:x"]
    spans = exported(traced, receiver[0], 1)
    (call,) = [span for span in spans if span.name == "inferd.v1.Inference/Infer"]
    nodes = {span.name: span for span in spans if span.parent_span_id == call.span_id and "inferd.graph.node" in attributes(span)}
    assert set(nodes) == {"left", "right", "both"}
    left, right = nodes["left"], nodes["right"]
    assert left.start_time_unix_nano < right.end_time_unix_nano and right.start_time_unix_nano < left.end_time_unix_nano
    assert attributes(left)["inferd.model"] == "barrier" and attributes(left)["inferd.graph"] == "parallel"
    for node in (left, right):  # the barrier model's own stages nest in its node's span
        stages = {span.name for span in spans if span.parent_span_id == node.span_id}
        assert "run" in stages
        inside = [span for span in spans if span.parent_span_id == node.span_id]
        assert all(node.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano <= node.end_time_unix_nano for span in inside)


def test_a_failed_node_span_is_an_error(traced: RunningServer, receiver: tuple[Receiver, int]) -> None:
    exported(traced, receiver[0])
    with traced.client(timeout=30) as client, pytest.raises(Exception, match="node 'bad'"):
        client.infer("fails", "x")
    spans = exported(traced, receiver[0], 1)
    bad = next(span for span in spans if span.name == "bad")
    assert bad.status.code == bad.status.STATUS_CODE_ERROR
