"""Traces exported over OTLP/gRPC to a receiver on 127.0.0.1 (built here on opentelemetry-proto's
TraceService), from a real server called through real stubs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import RunningServer, service_config

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc  # noqa: E402

from inferd import InternalError, ModelNotFound  # noqa: E402
from inferd.adapters import Payload  # noqa: E402
from inferd.config import ModelConfig  # noqa: E402
from inferd.v1 import inference_pb2 as pb  # noqa: E402
from inferd.v1 import inference_pb2_grpc as pb_grpc  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
        with self.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def take(self) -> list[Any]:
        with self.lock:
            spans, self.spans = self.spans, []
        return spans


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    servicer = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(None)


@pytest.fixture(scope="module")
def traced(receiver: tuple[Receiver, int]) -> Iterator[RunningServer]:
    config = service_config()
    models = {
        "echo": config.models["echo"],
        "crashing": ModelConfig.model_validate({"workflow": "workflows_for_tests:Crashing"}),
        "double": ModelConfig.model_validate(
            {"workflow": "workflows_for_tests:InlineDoubler", "batching": {"max_batch_size": 8, "max_delay_ms": 10_000}}
        ),
    }
    tracing = {"enabled": True, "exporter": "otlp-grpc", "endpoint": f"http://127.0.0.1:{receiver[1]}"}
    running = RunningServer(config.with_server(tracing=tracing).model_copy(update={"models": models}))
    yield running
    running.stop()


def exported(server: RunningServer, receiver: Receiver, calls: int = 0) -> list[Any]:
    """Every span exported so far, once at least ``calls`` server spans are among them (a
    call's server span ends just after its answer leaves: the client may see it first)."""
    tracing = server.server.engine.tracing
    assert tracing is not None
    spans: list[Any] = []
    for _ in range(500):
        assert tracing.flush()
        spans += receiver.take()
        if sum(span.kind == span.SPAN_KIND_SERVER for span in spans) >= calls:
            return spans
        threading.Event().wait(0.01)
    raise AssertionError(f"fewer than {calls} server spans came: {[span.name for span in spans]}")


def hex_id(raw: bytes) -> str:
    return raw.hex()


def test_a_given_traceparent_puts_every_span_under_the_given_parent(traced: RunningServer, receiver: tuple[Receiver, int]) -> None:
    exported(traced, receiver[0])
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    with grpc.insecure_channel(traced.address) as channel:
        call = pb_grpc.InferenceStub(channel).Infer.with_call(
            pb.InferRequest(model="echo", input=pb.Payload(text="hello")), metadata=(("traceparent", traceparent),), timeout=30
        )
        response, answer = call
        trailers = dict(answer.trailing_metadata())
    spans = exported(traced, receiver[0], 1)
    assert {hex_id(span.trace_id) for span in spans} == {TRACE_ID}
    (server_span,) = [span for span in spans if span.name == "inferd.v1.Inference/Infer"]
    assert hex_id(server_span.parent_span_id) == PARENT_ID
    assert server_span.kind == server_span.SPAN_KIND_SERVER
    stages = {span.name: span for span in spans if span is not server_span}
    assert set(stages) == {timing.stage for timing in response.timings} - {"total"}  # a span a stage
    assert all(span.parent_span_id == server_span.span_id for span in stages.values())
    assert all(server_span.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano <= server_span.end_time_unix_nano for span in stages.values())
    assert trailers["trace-id"] == TRACE_ID  # the trace id comes back


def test_an_open_inference_protocol_call_is_named_by_its_own_service(traced: RunningServer, receiver: tuple[Receiver, int]) -> None:
    from inferd.oip import grpc_service_pb2 as oip
    from inferd.oip import grpc_service_pb2_grpc as oip_grpc

    exported(traced, receiver[0])
    with grpc.insecure_channel(traced.address) as channel:
        assert oip_grpc.GRPCInferenceServiceStub(channel).ServerLive(oip.ServerLiveRequest(), timeout=30).live
    (server_span,) = [span for span in exported(traced, receiver[0], 1) if span.kind == span.SPAN_KIND_SERVER]
    assert server_span.name == "inference.GRPCInferenceService/ServerLive"
    attributes = {attribute.key: attribute.value.string_value for attribute in server_span.attributes}
    assert attributes["rpc.service"] == "inference.GRPCInferenceService" and attributes["rpc.method"] == "ServerLive"


def test_a_failed_call_has_its_trace_id_in_the_trailers(traced: RunningServer, receiver: tuple[Receiver, int]) -> None:
    exported(traced, receiver[0])
    with traced.client(timeout=30) as client, pytest.raises(InternalError) as error:
        client.infer("crashing", "x")
    spans = exported(traced, receiver[0], 1)
    (server_span,) = [span for span in spans if span.name == "inferd.v1.Inference/Infer"]
    codes = {attribute.key: attribute.value.string_value for attribute in server_span.attributes}
    assert codes["rpc.grpc.status_code"] == "INTERNAL"
    assert server_span.status.code == server_span.status.STATUS_CODE_ERROR  # the server's fault
    assert server_span.status.message == "INTERNAL"
    assert error.value.details["trace_id"] == hex_id(server_span.trace_id)  # the client has it
    with traced.client(timeout=30) as client, pytest.raises(ModelNotFound):
        client.infer("no-such-model", "x")  # the caller's fault: an error.type, no ERROR status
    spans = exported(traced, receiver[0], 1)
    (server_span,) = [span for span in spans if span.name == "inferd.v1.Inference/Infer"]
    assert {attribute.key: attribute.value.string_value for attribute in server_span.attributes}["error.type"] == "NOT_FOUND"
    assert server_span.status.code == server_span.status.STATUS_CODE_UNSET


def test_a_batch_is_one_run_span_linked_to_each_request(traced: RunningServer, receiver: tuple[Receiver, int]) -> None:
    exported(traced, receiver[0])
    with grpc.insecure_channel(traced.address) as channel:
        stub = pb_grpc.InferenceStub(channel)

        async def burst() -> list[Any]:
            # Four requests reach the queue in one turn of the loop: one batch. Their server
            # spans come from gRPC calls, so the four are sent as such, concurrently.
            loop = asyncio.get_running_loop()
            requests = []
            for i in range(4):
                tensor = pb.Tensor(name="x", dtype=pb.DATA_TYPE_FLOAT32, shape=[1, 4], data=np.full(4, float(i), np.float32).tobytes())
                request = pb.InferRequest(model="double", input=pb.Payload(tensors=pb.Tensors(tensors=[tensor])))
                requests.append(loop.run_in_executor(None, lambda r=request: stub.Infer(r, timeout=30)))
            return await asyncio.gather(*requests)

        answers = asyncio.run(burst())
    assert len(answers) == 4
    spans = exported(traced, receiver[0], 4)
    calls = [span for span in spans if span.name == "inferd.v1.Inference/Infer"]
    batches = [span for span in spans if span.name == "run batch"]
    assert len(calls) == 4
    linked = {(hex_id(link.trace_id), hex_id(link.span_id)) for batch in batches for link in batch.links}
    assert linked == {(hex_id(span.trace_id), hex_id(span.span_id)) for span in calls}  # every request, once
    for batch in batches:
        assert batch.parent_span_id == b""  # a root of its own trace, never a request's child
        assert hex_id(batch.trace_id) not in {hex_id(span.trace_id) for span in calls}
    # No span crosses traces: each stage span is in its call's trace, under it.
    by_id = {span.span_id: span for span in calls}
    for span in spans:
        if span.name in ("adapt", "queue", "run", "preprocess", "postprocess"):
            assert span.parent_span_id in by_id and span.trace_id == by_id[span.parent_span_id].trace_id


def test_a_stream_has_one_server_span_that_ends_after_its_last_message(traced: RunningServer, receiver: tuple[Receiver, int]) -> None:
    exported(traced, receiver[0])
    with traced.client(timeout=30) as client:
        chunks = list(client.stream("echo", "one two three"))
    spans = exported(traced, receiver[0], 1)
    (server_span,) = [span for span in spans if span.name == "inferd.v1.Inference/Stream"]
    (stream,) = [span for span in spans if span.name == "stream"]
    assert stream.parent_span_id == server_span.span_id
    assert len(stream.events) == len([chunk for chunk in chunks if not chunk.final])
    assert stream.end_time_unix_nano <= server_span.end_time_unix_nano


def test_the_client_sends_the_callers_trace_context(traced: RunningServer, receiver: tuple[Receiver, int]) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    exported(traced, receiver[0])
    tracer = TracerProvider().get_tracer("the-application")
    with tracer.start_as_current_span("application work") as span:
        with traced.client(timeout=30) as client:
            client.infer("echo", "x")
        context = span.get_span_context()
    spans = exported(traced, receiver[0], 1)
    (server_span,) = [s for s in spans if s.name == "inferd.v1.Inference/Infer"]
    assert hex_id(server_span.trace_id) == format(context.trace_id, "032x")
    assert hex_id(server_span.parent_span_id) == format(context.span_id, "016x")


def test_with_tracing_off_no_span_is_made(receiver: tuple[Receiver, int]) -> None:
    config = service_config()
    running = RunningServer(config.model_copy(update={"models": {"echo": config.models["echo"]}}))
    try:
        assert running.server.engine.tracing is None
        with running.client(timeout=30) as client:
            client.infer("echo", "x")
    finally:
        running.stop()
    assert receiver[0].take() == []


def test_spans_go_over_otlp_http_too() -> None:
    """An OTLP/HTTP receiver (POST /v1/traces, protobuf), a plain HTTP server here."""
    import http.server

    received: list[Any] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            received.extend(span for resource in request.resource_spans for scope in resource.scope_spans for span in scope.spans)
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    config = service_config()
    endpoint = f"http://127.0.0.1:{http_server.server_address[1]}/v1/traces"
    tracing = {"enabled": True, "exporter": "otlp-http", "endpoint": endpoint}
    running = RunningServer(config.with_server(tracing=tracing).model_copy(update={"models": {"echo": config.models["echo"]}}))
    try:
        with running.client(timeout=30) as client:
            client.infer("echo", "x")
        tracing_ = running.server.engine.tracing
        assert tracing_ is not None
        for _ in range(500):
            assert tracing_.flush()
            if any(span.name == "inferd.v1.Inference/Infer" for span in received):
                break
            threading.Event().wait(0.01)
        assert any(span.name == "inferd.v1.Inference/Infer" for span in received)
        assert any(span.name == "run" for span in received)
    finally:
        running.stop()
        http_server.shutdown()
        http_server.server_close()


def test_inferd_trace_draws_one_requests_waterfall(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "inferd.toml").write_text('[models.echo]\nworkflow = "echo"\n')
    out = tmp_path / "waterfall.png"
    done = subprocess.run(
        [sys.executable, "-m", "inferd", "trace", "--config", str(tmp_path / "inferd.toml"), "echo", "--text", "hi", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("inferd.v1.Inference/Infer ")
    assert {line.split()[0] for line in lines[1:]} == {"preprocess", "run", "adapt"}
    assert all(line.startswith("  ") for line in lines[1:])  # the stages nest under the call
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unsampled_callers_trace_is_not_recorded(traced: RunningServer, receiver: tuple[Receiver, int]) -> None:
    """parentbased_always_on (the default): a caller that did not sample its trace (flags 00)
    gets no spans here either, but its trace id still comes back."""
    exported(traced, receiver[0])
    with grpc.insecure_channel(traced.address) as channel:
        _, call = pb_grpc.InferenceStub(channel).Infer.with_call(
            pb.InferRequest(model="echo", input=pb.Payload(text="x")),
            metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-00"),), timeout=30,
        )  # fmt: skip
    assert dict(call.trailing_metadata())["trace-id"] == TRACE_ID
    with traced.client(timeout=30) as client:
        client.infer("echo", "sampled")  # a call of its own trace, sampled: it is exported
    spans = exported(traced, receiver[0], 1)
    assert TRACE_ID not in {hex_id(span.trace_id) for span in spans}


@pytest.mark.parametrize(
    "environ, parent, share",
    [
        ({}, None, 1.0),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, None, 0.0),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, None, 0.25),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, True, 1.0),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, False, 0.0),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, False, 1.0),
    ],
)
def test_the_standard_sampler_settings(environ: dict[str, str], parent: bool | None, share: float) -> None:
    import os

    from inferd.tracing import _Sampler

    sampler = _Sampler(environ)
    ids = [os.urandom(16) for _ in range(4000)]
    sampled = sum(sampler.sampled(trace_id, parent) for trace_id in ids) / len(ids)
    assert sampled == pytest.approx(share, abs=0.05)
