"""Dynamic batching through the real server: sizes count rows, bad requests fail alone,
cancelled and expired requests never run, the queue is bounded, and the batcher reports why
each batch was released. Each test counts what ran; none relies on timing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from conftest import RunningServer, service_config
from workflows_for_tests import Doubler

from inferd import DeadlineExceeded, InternalError, InvalidInput, ResourceExhausted, TensorError
from inferd.adapters import Payload
from inferd.config import ModelConfig


@pytest.fixture(scope="module")
def batching_server() -> Iterator[RunningServer]:
    table = {
        "workflow": "workflows_for_tests:Doubler",
        "batching": {"max_batch_size": 8, "max_delay_ms": 20},
        "limits": {"max_queue": 64},
    }
    models = {
        "double": ModelConfig.model_validate(table),
        "double-small-queue": ModelConfig.model_validate({**table, "limits": {"max_queue": 2}}),
        "double-raw": ModelConfig.model_validate({**table, "workflow": "workflows_for_tests:RawDoubler"}),
        "double-slices": ModelConfig.model_validate(
            {**table, "batching": {"max_batch_size": 2, "max_delay_ms": 20}, "limits": {"max_queue": 4}}
        ),
        "double-inline": ModelConfig.model_validate({**table, "workflow": "workflows_for_tests:InlineDoubler"}),
        "double-preferred": ModelConfig.model_validate(
            {**table, "workflow": "workflows_for_tests:InlineDoubler", "batching": {"max_batch_size": 8, "max_delay_ms": 10_000, "preferred_sizes": [3, 5]}}
        ),
    }
    running = RunningServer(service_config().model_copy(update={"models": models}))
    yield running
    running.stop()


@pytest.fixture
def doubler() -> Iterator[type[Doubler]]:
    Doubler.gate.set()
    Doubler.batches.clear()
    yield Doubler
    Doubler.gate.set()


def rows(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.array([[value, 0, 0, 0] for value in values], dtype=np.float32)}


def in_threads(count: int, call: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            results[index] = call(index)
        except BaseException as error:  # collected for the test to check
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.01)
    pytest.fail("the condition never held")


def batching(server: RunningServer, model: str) -> dict[str, Any]:
    with server.client() as client:
        info = next(m for m in client.models() if m.name == model)
    assert info.batching is not None
    return info.batching


def queued(server: RunningServer, model: str) -> int:
    """Requests waiting in the model's batch queue now, as ListModels reports it."""
    return int(batching(server, model)["waiting"])


def hold_first_batch(server: RunningServer, doubler: type[Doubler], model: str = "double") -> threading.Thread:
    """Closes the gate and sends one request that runs and blocks there, so later ones queue."""
    doubler.gate.clear()
    thread = threading.Thread(target=lambda: server.client(timeout=60).infer(model, rows(100)))
    thread.start()
    wait_until(lambda: int(batching(server, model)["running"]) == 1)
    return thread


def test_concurrent_requests_share_batches_of_at_most_max_rows(batching_server: RunningServer, doubler: type[Doubler]) -> None:
    batches_before = int(batching(batching_server, "double")["batches"])  # other tests' batches
    first = hold_first_batch(batching_server, doubler)
    with batching_server.client(timeout=60) as client:
        senders = threading.Thread(target=lambda: in_threads(19, lambda i: client.infer("double", rows(i))))
        senders.start()
        wait_until(lambda: queued(batching_server, "double") == 19)
        doubler.gate.set()
        senders.join(60)
        first.join(60)
        results, errors = in_threads(19, lambda i: client.infer("double", rows(i)).output["y"][0, 0])
    assert not errors
    assert results == [2.0 * i for i in range(19)]  # each request gets its own row back
    sizes = [len(batch) for batch in doubler.batches]
    assert sizes[:4] == [1, 8, 8, 3]  # the held one, then the 19 queued ones: full, full, idle
    assert all(size <= 8 for size in sizes)
    assert sum(sizes) == 1 + 19 + 19
    info = next(m for m in batching_server.client().models() if m.name == "double")
    assert info.batching is not None
    assert info.batching["max_batch_size"] == 8 and int(info.batching["batches"]) - batches_before == len(sizes)
    assert int(info.batching["releases"]["full"]) >= 2
    assert int(info.batching["sizes"]["8"]) >= 2
    assert "queue" in info.stages


def test_a_request_larger_than_a_batch_is_split_and_joined(batching_server: RunningServer, doubler: type[Doubler]) -> None:
    with batching_server.client(timeout=60) as client:
        output = client.infer("double", rows(*range(20)))
    assert output.output["y"][:, 0].tolist() == [2.0 * i for i in range(20)]
    assert [len(batch) for batch in doubler.batches] == [8, 8, 4]


def test_a_bad_request_fails_alone(batching_server: RunningServer, doubler: type[Doubler]) -> None:
    first = hold_first_batch(batching_server, doubler)
    with batching_server.client(timeout=60) as client:
        def call(index: int) -> Any:
            if index == 2:
                return client.infer("double", {"x": np.zeros((1, 5), np.float32)})
            return client.infer("double", rows(index)).output["y"][0, 0]

        box: list[Any] = []
        sender = threading.Thread(target=lambda: box.append(in_threads(4, call)))
        sender.start()
        wait_until(lambda: queued(batching_server, "double") == 3)  # the bad one never queued
        doubler.gate.set()
        sender.join(60)
        first.join(60)
    results, errors = box[0]
    assert [type(error) for error in errors] == [TensorError] and "'x'" in str(errors[0])
    assert [results[i] for i in (0, 1, 3)] == [0.0, 2.0, 6.0]


def test_a_model_exception_fails_its_batch_only(batching_server: RunningServer, doubler: type[Doubler]) -> None:
    with batching_server.client(timeout=60) as client:
        with pytest.raises(InternalError):
            client.infer("double", rows(-1))
        with pytest.raises(InternalError) as error:
            client.infer("double", rows(-2, 5))
        assert "returned 1 rows of output 'y' for a batch of 2 input rows" in str(error.value)
        assert client.infer("double", rows(7)).output["y"][0, 0] == 14.0


def test_an_expired_request_leaves_the_queue_and_never_runs(batching_server: RunningServer, doubler: type[Doubler]) -> None:
    first = hold_first_batch(batching_server, doubler)
    with batching_server.client() as client:
        with pytest.raises(DeadlineExceeded):
            client.infer("double", rows(55), timeout=0.3)
        assert queued(batching_server, "double") == 0  # its place is already free
        doubler.gate.set()
        first.join(60)
        assert client.infer("double", rows(1)).output["y"][0, 0] == 2.0
    ran = [value for batch in doubler.batches for value in batch]
    assert 55.0 not in ran and ran == [100.0, 1.0]


def test_a_cancelled_request_never_runs(batching_server: RunningServer, doubler: type[Doubler]) -> None:
    import grpc

    from inferd.client._codec import encode_input
    from inferd.v1 import inference_pb2 as pb
    from inferd.v1 import inference_pb2_grpc as pb_grpc

    first = hold_first_batch(batching_server, doubler)
    with grpc.insecure_channel(batching_server.address) as channel:
        call = pb_grpc.InferenceStub(channel).Infer.future(
            pb.InferRequest(model="double", input=encode_input(rows(66))), timeout=30
        )
        wait_until(lambda: queued(batching_server, "double") == 1)
        call.cancel()
        wait_until(lambda: queued(batching_server, "double") == 0)
    doubler.gate.set()
    first.join(60)
    assert [value for batch in doubler.batches for value in batch] == [100.0]


def test_a_full_queue_is_resource_exhausted(batching_server: RunningServer, doubler: type[Doubler]) -> None:
    first = hold_first_batch(batching_server, doubler, "double-small-queue")
    with batching_server.client(timeout=60) as client:
        waiting = threading.Thread(target=lambda: client.infer("double-small-queue", rows(1, 2)))
        waiting.start()
        wait_until(lambda: queued(batching_server, "double-small-queue") == 1)
        with pytest.raises(ResourceExhausted) as error:
            client.infer("double-small-queue", rows(3))
        assert "queue is full" in str(error.value) and error.value.retry_after_ms in range(1, 60_001)
        doubler.gate.set()
        waiting.join(60)
        first.join(60)
    info = next(m for m in batching_server.client().models() if m.name == "double-small-queue")
    assert info.batching is not None and int(info.batching["refused"]) == 1


def test_a_request_larger_than_the_queue_is_invalid_and_never_runs(
    batching_server: RunningServer, doubler: type[Doubler]
) -> None:
    """No retry could ever serve it: INVALID_ARGUMENT, not RESOURCE_EXHAUSTED with a hint."""
    with batching_server.client(timeout=60) as client, pytest.raises(InvalidInput) as error:
        client.infer("double-small-queue", rows(1, 2, 3))
    assert str(error.value) == (
        "model 'double-small-queue': a request of 3 rows is more than its batch queue holds "
        "(2 rows, limits.max_queue); send at most 2 rows a request"
    )
    assert doubler.batches == []


def test_a_split_request_joins_the_queue_whole_or_not_at_all(
    batching_server: RunningServer, doubler: type[Doubler]
) -> None:
    """A request of more rows than a batch runs in slices; when the queue cannot take all of
    them, none is queued, so the model never runs work that nobody receives."""
    first = hold_first_batch(batching_server, doubler, "double-slices")
    with batching_server.client(timeout=60) as client:
        waiting = threading.Thread(target=lambda: client.infer("double-slices", rows(1, 2)))
        waiting.start()
        wait_until(lambda: queued(batching_server, "double-slices") == 1)
        with pytest.raises(ResourceExhausted):
            client.infer("double-slices", rows(3, 4, 5))  # 2 + 3 rows > max_queue 4
        assert queued(batching_server, "double-slices") == 1
        doubler.gate.set()
        waiting.join(60)
        first.join(60)
        assert client.infer("double-slices", rows(6, 7, 8)).output["y"][:, 0].tolist() == [12.0, 14.0, 16.0]
    assert doubler.batches == [[100.0], [1.0, 2.0], [6.0, 7.0], [8.0]]


def test_a_batched_model_without_preprocess_refuses_what_is_not_tensors(batching_server: RunningServer) -> None:
    """Its features are the request's payload: text or JSON is the caller's mistake."""
    with batching_server.client(timeout=60) as client:
        assert client.infer("double-raw", rows(3)).output["y"][0, 0] == 6.0
        for payload, kind in (("some text", "str"), ([{"x": 1}], "list")):
            with pytest.raises(InvalidInput) as error:
                client.infer("double-raw", payload)
            assert str(error.value) == f"model 'double-raw' batches tensors: send a tensor or named tensors, not {kind}"


def test_a_lone_request_does_not_wait_for_company(batching_server: RunningServer, doubler: type[Doubler]) -> None:
    before = batching(batching_server, "double")["releases"].get("idle", "0")
    with batching_server.client(timeout=60) as client:
        assert client.infer("double", rows(4)).output["y"][0, 0] == 8.0
    after = batching(batching_server, "double")["releases"]["idle"]
    assert int(after) == int(before) + 1  # released at once: nothing else was on its way


def test_an_inline_model_batches_on_the_loop(batching_server: RunningServer, doubler: type[Doubler]) -> None:
    """A model whose stages all run on the event loop: requests that reach the queue in one turn
    of the loop share batches (a burst of engine calls on the server's loop makes that exact),
    the batcher runs each batch itself, and failures stay within their batch."""
    engine = batching_server.server.engine

    async def burst(*values: float) -> list[Any]:
        calls = (engine.infer("double-inline", Payload("tensors", rows(value))) for value in values)
        return await asyncio.gather(*calls, return_exceptions=True)

    results = batching_server.call(burst(*range(19)))
    assert [result.output["y"][0, 0] for result in results] == [2.0 * i for i in range(19)]
    assert [len(batch) for batch in doubler.batches] == [8, 8, 3]  # full, full, idle
    assert [stage for stage, _ in results[0].timings] == ["adapt", "preprocess", "queue", "run", "total"]
    # A model exception fails its batch and no other (the server answers INTERNAL, below); the
    # batcher carries on.
    results = batching_server.call(burst(1, -1, *range(2, 10)))
    assert all(isinstance(result, RuntimeError) and "failed on this batch" in str(result) for result in results[:8])
    assert [result.output["y"][0, 0] for result in results[8:]] == [16.0, 18.0]
    # Outputs that do not match the batch's rows: a clear INTERNAL error for that batch alone.
    results = batching_server.call(burst(-2, 3))
    assert all(isinstance(result, InternalError) and "1 rows of output 'y' for a batch of 2" in str(result) for result in results)
    assert batching_server.call(burst(5))[0].output["y"][0, 0] == 10.0
    # Through gRPC: the answer, and the batcher's report.
    with batching_server.client(timeout=60) as client:
        with pytest.raises(InternalError):
            client.infer("double-inline", rows(-1))
        assert client.infer("double-inline", rows(7)).output["y"][0, 0] == 14.0
    report = batching(batching_server, "double-inline")
    assert int(report["batches"]) == 3 + 2 + 1 + 1 + 2 and int(report["rows"]) == 19 + 10 + 2 + 1 + 2
    assert int(report["running"]) == 0 and int(report["waiting"]) == 0


def test_a_batch_of_a_preferred_size_goes_at_once(batching_server: RunningServer, doubler: type[Doubler]) -> None:
    """With nothing more queued, a batch whose rows are a preferred size is released as
    "preferred"; one of another size, with no request on its way, as "idle"; neither waits
    for the (10 s) delay."""
    engine = batching_server.server.engine

    async def burst(*values: float) -> list[Any]:
        return await asyncio.gather(*(engine.infer("double-preferred", Payload("tensors", rows(value))) for value in values))

    for count, reason in [(3, "preferred"), (2, "idle"), (5, "preferred"), (4, "idle")]:
        before = dict(batching(batching_server, "double-preferred")["releases"])
        results = batching_server.call(burst(*range(count)))
        assert [result.output["y"][0, 0] for result in results] == [2.0 * i for i in range(count)]
        releases = batching(batching_server, "double-preferred")["releases"]
        assert int(releases.get(reason, 0)) == int(before.get(reason, 0)) + 1, (count, releases)
    assert [len(batch) for batch in doubler.batches[-4:]] == [3, 2, 5, 4]
