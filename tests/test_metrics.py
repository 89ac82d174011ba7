"""Prometheus metrics: the /metrics endpoint of a real server, read with prometheus_client's
own parser, after calls whose outcomes the test knows (OK, INVALID_ARGUMENT, NOT_FOUND,
INTERNAL, CANCELLED, DEADLINE_EXCEEDED). Every check is on deltas, so that the order of the
tests does not matter."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import RunningServer, service_config
from prometheus_client.parser import text_string_to_metric_families
from workflows_for_tests import Gate

from inferd import InternalError, InvalidInput, ModelNotFound
from inferd.adapters import Payload
from inferd.config import ModelConfig
from inferd.v1 import inference_pb2 as pb
from inferd.v1 import inference_pb2_grpc as pb_grpc

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def metered() -> Iterator[RunningServer]:
    config = service_config()
    batching = {"max_batch_size": 8, "max_delay_ms": 10_000}
    tables = {
        "crashing": {"workflow": "workflows_for_tests:Crashing"},
        "gate": {"workflow": "workflows_for_tests:Gate"},
        "double": {"workflow": "workflows_for_tests:InlineDoubler", "batching": batching, "metrics_buckets": [0.001, 1.0]},
    }
    models = {"echo": config.models["echo"], **{name: ModelConfig.model_validate(table) for name, table in tables.items()}}
    running = RunningServer(config.model_copy(update={"models": models}))
    yield running
    running.stop()


def scrape(server: RunningServer, path: str = "/metrics") -> Samples:
    assert server.server.metrics is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{server.server.metrics.port}{path}", timeout=30) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_calls_are_counted_exactly_by_model_rpc_and_status(metered: RunningServer) -> None:
    before = scrape(metered)
    with metered.client(timeout=60) as client:
        for i in range(13):
            assert client.infer("echo", f"hi {i}").output == f"hi {i}"
        for _ in range(4):
            with pytest.raises(InternalError):
                client.infer("crashing", "x")
        for _ in range(3):
            with pytest.raises(InvalidInput):
                client.infer("echo", "x", parameters={"nope": 1})
        for i in range(5):
            with pytest.raises(ModelNotFound):
                client.infer(f"no-such-model-{i}", "x")  # counted under model "": labels stay bounded
        chunks = list(client.stream("echo", "one two three"))
        client.models()
    after = scrape(metered)
    requests = "inferd_requests_total"
    assert delta(before, after, requests, model="echo", rpc="Infer", code="OK") == 13
    assert delta(before, after, requests, model="echo", rpc="Infer", code="INVALID_ARGUMENT") == 3
    assert delta(before, after, requests, model="crashing", rpc="Infer", code="INTERNAL") == 4
    assert delta(before, after, requests, model="", rpc="Infer", code="NOT_FOUND") == 5
    assert delta(before, after, requests, model="echo", rpc="Stream", code="OK") == 1
    assert delta(before, after, requests, model="", rpc="ListModels", code="OK") == 1
    durations = "inferd_request_duration_seconds_count"
    assert delta(before, after, durations, model="echo", rpc="Infer") == 16
    assert delta(before, after, "inferd_stage_duration_seconds_count", model="echo", stage="run") == 13
    assert delta(before, after, "inferd_stage_duration_seconds_count", model="echo", stage="stream") == 1
    words = len([chunk for chunk in chunks if not chunk.final])
    assert words >= 3 and delta(before, after, "inferd_stream_chunks_total", model="echo") == words
    assert delta(before, after, "inferd_stream_first_chunk_seconds_count", model="echo") == 1
    # ListModels reports the same counts by status code.
    with metered.client() as client:
        info = next(model for model in client.models() if model.name == "crashing")
    assert info.requests.get("INTERNAL", 0) == value(after, requests, model="crashing", rpc="Infer", code="INTERNAL")


def _gated_call(metered: RunningServer, *, cancel: bool) -> grpc.StatusCode:
    """A call held inside the model (its run waits for the gate) until the client cancels it
    or its deadline (0.5 s) passes."""
    Gate.opened.clear()
    Gate.entered.clear()
    try:
        with grpc.insecure_channel(metered.address) as channel:
            stub = pb_grpc.InferenceStub(channel)
            request = pb.InferRequest(model="gate", input=pb.Payload(text="x"))
            future = stub.Infer.future(request, timeout=None if cancel else 0.5)
            assert Gate.entered.wait(30)
            if cancel:
                future.cancel()
            try:
                future.result()
            except grpc.FutureCancelledError:
                return grpc.StatusCode.CANCELLED
            except grpc.RpcError as error:
                return error.code()  # type: ignore[attr-defined,no-any-return]
            raise AssertionError("the call was answered")
    finally:
        Gate.opened.set()


@pytest.mark.parametrize("cancel, code", [(True, "CANCELLED"), (False, "DEADLINE_EXCEEDED")])
def test_cancelled_and_timed_out_calls_are_counted_as_such(metered: RunningServer, cancel: bool, code: str) -> None:
    before = scrape(metered)
    assert _gated_call(metered, cancel=cancel).name == code
    labels = {"model": "gate", "rpc": "Infer", "code": code}

    def counted() -> bool:
        return delta(before, scrape(metered), "inferd_requests_total", **labels) == 1

    # The server learns of the cancellation a moment after the client: poll, bounded.
    for _ in range(500):
        if counted():
            break
        Gate.opened.wait(0.01)
    assert counted()


def test_request_ids_do_not_make_series(metered: RunningServer) -> None:
    with metered.client(timeout=60) as client:
        client.infer("echo", "warm", id="warm")
        before = scrape(metered)
        for i in range(1000):
            client.infer("echo", "x", id=f"request-{i}")
    after = scrape(metered)
    assert set(after) == set(before)
    assert delta(before, after, "inferd_requests_total", model="echo", rpc="Infer", code="OK") == 1000


def test_batches_queue_and_model_state(metered: RunningServer) -> None:
    engine = metered.server.engine

    async def burst(count: int) -> list[Any]:
        rows = [{"x": np.full((1, 4), float(i), dtype=np.float32)} for i in range(count)]
        return await asyncio.gather(*(engine.infer("double", Payload("tensors", row)) for row in rows))

    before = scrape(metered)
    metered.call(burst(4))
    after = scrape(metered)
    assert delta(before, after, "inferd_batch_size_rows_count", model="double") == 1
    assert delta(before, after, "inferd_batch_size_rows_sum", model="double") == 4
    assert delta(before, after, "inferd_batch_size_rows_bucket", model="double", le="2.0") == 0
    assert delta(before, after, "inferd_batch_size_rows_bucket", model="double", le="4.0") == 1
    assert delta(before, after, "inferd_batches_total", model="double", reason="idle") == 1
    assert value(after, "inferd_batch_queue_rows", model="double") == 0
    assert value(after, "inferd_requests_in_flight", model="double") == 0
    # The model's own buckets (metrics_buckets = [0.001, 1.0]).
    buckets = {dict(labels)["le"] for name, labels in after if name == "inferd_stage_duration_seconds_bucket" and ("model", "double") in labels}
    assert buckets == {"0.001", "1.0", "+Inf"}
    assert value(after, "inferd_model_state", model="echo", state="ready") == 1
    assert value(after, "inferd_model_state", model="echo", state="failed") == 0
    assert value(after, "inferd_model_setup_seconds", model="echo") > 0
    assert [labels for name, labels in after if name == "inferd_build_info"][0][2][0] == "version"


def test_the_endpoint_answers_only_metrics(metered: RunningServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as error:
        scrape(metered, "/nope")
    error.value.close()
    assert error.value.code == 404


def test_metrics_off_means_no_endpoint_and_no_counts() -> None:
    config = service_config()
    config = config.with_server(metrics={"enabled": False}).model_copy(update={"models": {"echo": config.models["echo"]}})
    running = RunningServer(config)
    try:
        assert running.server.metrics is None and running.server.engine.telemetry is None
        with running.client(timeout=60) as client:
            assert client.infer("echo", "x").output == "x"
            assert client.models()[0].requests == {}
    finally:
        running.stop()


def test_triton_compatible_names() -> None:
    config = service_config()
    models = {
        "echo": config.models["echo"],
        "crashing": ModelConfig.model_validate({"workflow": "workflows_for_tests:Crashing"}),
    }
    config = config.with_server(metrics={"address": "127.0.0.1:0", "compat": "triton"}).model_copy(update={"models": models})
    running = RunningServer(config)
    try:
        with running.client(timeout=60) as client:
            for _ in range(6):
                client.infer("echo", "x")
            for _ in range(2):
                with pytest.raises(InternalError):
                    client.infer("crashing", "x")
        samples = scrape(running)
        assert running.server.metrics is not None
        url = f"http://127.0.0.1:{running.server.metrics.port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as answer:
            text = answer.read().decode()
    finally:
        running.stop()
    # Triton's exact names, as its dashboards query them: its counters have no _total (the
    # parser below adds one to every counter's samples, so the text is checked as it is).
    assert "# TYPE nv_inference_request_success counter" in text
    assert 'nv_inference_request_success{model="echo",version="1"} 6.0' in text
    assert value(samples, "nv_inference_request_success_total", model="echo", version="1") == 6
    assert value(samples, "nv_inference_count_total", model="echo", version="1") == 6
    assert value(samples, "nv_inference_exec_count_total", model="echo", version="1") == 6
    assert value(samples, "nv_inference_request_failure_total", model="crashing", version="1", reason="BACKEND") == 2
    assert value(samples, "nv_inference_request_failure_total", model="echo", version="1", reason="BACKEND") == 0
    request_us = value(samples, "nv_inference_request_duration_us_total", model="echo", version="1")
    run_us = value(samples, "nv_inference_compute_infer_duration_us_total", model="echo", version="1")
    assert 0 < run_us < request_us  # the run is part of the request
    seconds = value(samples, "inferd_request_duration_seconds_sum", model="echo", rpc="Infer")
    assert request_us == pytest.approx(seconds * 1e6)
