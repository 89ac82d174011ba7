"""Every row of the error table (ARCHITECTURE.md), provoked through the real server: the
status code, and a message that names the record, field or tensor at fault."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from conftest import RunningServer
from google.rpc import error_details_pb2, status_pb2
from workflows_for_tests import AsyncEndless, Endless, Gate, SlowGate

from inferd import (
    DeadlineExceeded,
    InternalError,
    InvalidInput,
    ModelFailed,
    ModelNotFound,
    ModelNotReady,
    RecordError,
    ResourceExhausted,
    TensorError,
)
from inferd.client import Client, JsonBytes
from inferd.v1 import inference_pb2 as pb
from inferd.v1 import inference_pb2_grpc as pb_grpc

from test_service import wine_records


def status_of(error: pytest.ExceptionInfo[BaseException]) -> str:
    return str(error.value.details["status"])  # type: ignore[attr-defined]


def test_unknown_model_is_not_found(client: Client) -> None:
    with pytest.raises(ModelNotFound) as error:
        client.infer("no-such-model", [{}])
    assert status_of(error) == "NOT_FOUND"
    assert "no-such-model" in str(error.value) and "wine" in str(error.value)


def test_malformed_json_names_the_byte_offset(client: Client) -> None:
    with pytest.raises(InvalidInput) as error:
        client.infer("wine", JsonBytes(b'[{"alcohol": 13.2,, }]'))
    assert status_of(error) == "INVALID_ARGUMENT"
    # The second comma, at byte 18, is where the JSON goes wrong.
    assert "at byte 18" in str(error.value), str(error.value)
    assert error.value.details["offset"] == 18


def test_missing_field_names_record_and_field(client: Client) -> None:
    records, _ = wine_records(3)
    del records[2]["proline"]
    with pytest.raises(RecordError) as error:  # the class the server raised, not only its status's
        client.infer("wine", records)
    message = str(error.value)
    assert status_of(error) == "INVALID_ARGUMENT"
    assert "proline" in message and "2" in message
    assert (error.value.record, error.value.path) == (2, "proline")
    assert error.value.details["record"] == 2 and error.value.details["path"] == "proline"


def test_ill_typed_field_names_record_field_and_value(client: Client) -> None:
    records, _ = wine_records(2)
    records[1]["hue"] = "blue"  # type: ignore[assignment]
    with pytest.raises(InvalidInput) as error:
        client.infer("wine", records)
    message = str(error.value)
    assert "hue" in message and "1" in message and "blue" in message


def test_records_not_objects(client: Client) -> None:
    with pytest.raises(InvalidInput) as error:
        client.infer("records", [{"user": {"name": "a", "age": 3}}, 7])
    assert "record 1" in str(error.value)


@pytest.mark.parametrize(
    ("tensors", "words"),
    [
        ({"input": np.zeros((2, 1, 8, 8), np.float64)}, ["input", "float32", "float64"]),
        ({"input": np.zeros((2, 8, 8), np.float32)}, ["input", "shape", "[2, 8, 8]"]),
        ({"pixels": np.zeros((2, 1, 8, 8), np.float32)}, ["pixels", "no such input"]),
    ],
)
def test_wrong_tensor_names_the_tensor(client: Client, tensors: dict[str, np.ndarray], words: list[str]) -> None:
    with pytest.raises(TensorError) as error:
        client.infer("digits", tensors)
    assert status_of(error) == "INVALID_ARGUMENT"
    assert error.value.tensor == words[0]
    for word in words:
        assert word in str(error.value)


def test_tensor_bytes_that_do_not_fit_the_shape(server: RunningServer) -> None:
    tensor = pb.Tensor(name="input", dtype=pb.DATA_TYPE_FLOAT32, shape=[2, 1, 8, 8], data=b"\0" * 100)
    request = pb.InferRequest(model="digits", input=pb.Payload(tensors=pb.Tensors(tensors=[tensor])))
    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as error:
            pb_grpc.InferenceStub(channel).Infer(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "'input'" in error.value.details() and "512 bytes" in error.value.details()  # type: ignore[attr-defined]


def test_empty_request_is_invalid(server: RunningServer) -> None:
    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as error:
            pb_grpc.InferenceStub(channel).Infer(pb.InferRequest(model="echo"), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_bad_parameter_names_the_parameter(client: Client) -> None:
    with pytest.raises(InvalidInput) as error:
        client.infer("echo", "hi", parameters={"delay_ms": "soon"})
    assert "delay_ms" in str(error.value)
    with pytest.raises(InvalidInput) as error:
        client.infer("echo", "hi", parameters={"temperature": 0.5})
    assert "temperature" in str(error.value)
    with pytest.raises(InvalidInput) as error:
        client.infer("digits", {"input": np.zeros((1, 1, 8, 8), np.float32)}, parameters={"x": 1})
    assert "takes no parameters" in str(error.value)


def test_explicit_model_before_setup_is_failed_precondition(client: Client) -> None:
    with pytest.raises(ModelNotReady) as error:
        client.infer("explicit-never-set-up", "x")
    assert status_of(error) == "FAILED_PRECONDITION"
    assert "Setup" in str(error.value)


def test_failed_setup_is_failed_precondition_with_reason(client: Client) -> None:
    with pytest.raises(ModelFailed) as error:
        client.infer("broken", "x")
    assert status_of(error) == "FAILED_PRECONDITION"
    assert "weights not found: /models/missing.bin" in str(error.value)
    assert "missing.bin" in error.value.details["reason"]  # the setup's failure, as the server said
    with pytest.raises(ModelFailed) as error:
        client.setup("broken")  # Setup tries again, and says why it failed again
    assert "FileNotFoundError" in str(error.value)
    broken = next(model for model in client.models() if model.name == "broken")
    assert broken.state == "failed" and "missing.bin" in broken.reason
    # The server stays up and serves the others.
    assert client.infer("echo", "still here").output == "still here"


def test_missing_workflow_module_fails_setup_with_reason(client: Client) -> None:
    with pytest.raises(ModelNotReady) as error:
        client.infer("missing-module", "x")
    assert "no_such_module" in str(error.value)


def test_model_exception_is_internal_with_a_generic_message(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="inferd.server"):
        with pytest.raises(InternalError) as error:
            client.infer("crashing", "x")
    assert status_of(error) == "INTERNAL"
    assert "secret internal detail" not in str(error.value)
    assert "server log" in str(error.value)
    logged = [record for record in caplog.records if record.exc_info]
    assert any("ZeroDivisionError" in repr(record.exc_info[1]) for record in logged if record.exc_info)
    assert client.infer("echo", "alive").output == "alive"


@pytest.fixture
def gate() -> Iterator[type[Gate]]:
    Gate.opened.clear()
    Gate.entered.clear()
    Gate.runs = 0
    yield Gate
    Gate.opened.set()


def test_too_many_in_flight_is_resource_exhausted_with_retry_hint(server: RunningServer, gate: type[Gate]) -> None:
    results: list[object] = []
    with server.client(timeout=30) as first:
        worker = threading.Thread(target=lambda: results.append(first.infer("gate", "a").output))
        worker.start()
        assert gate.entered.wait(10)
        request = pb.InferRequest(model="gate", input=pb.Payload(text="b"))
        with grpc.insecure_channel(server.address) as channel:
            with pytest.raises(grpc.RpcError) as error:
                pb_grpc.InferenceStub(channel).Infer(request, timeout=30)
        rpc_error = error.value
        assert rpc_error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert "limit 1" in rpc_error.details()  # type: ignore[attr-defined]
        trailers = dict(rpc_error.trailing_metadata())  # type: ignore[attr-defined]
        assert int(trailers["retry-after-ms"]) > 0
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        assert any(detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in status.details)
        with server.client() as other, pytest.raises(ResourceExhausted) as client_error:
            other.infer("gate", "c")
        assert client_error.value.retry_after_ms in range(1, 60_001)  # a hint is given
        gate.opened.set()
        worker.join(10)
    assert results == [{"echo": "a"}]
    assert gate.runs == 1  # the refused requests never ran


def test_client_deadline_is_deadline_exceeded(client: Client, gate: type[Gate]) -> None:
    with pytest.raises(DeadlineExceeded) as error:
        client.infer("gate", "late", timeout=0.3)
    assert status_of(error) == "DEADLINE_EXCEEDED"


def test_server_side_timeout_is_deadline_exceeded(client: Client) -> None:
    SlowGate.opened.clear()
    try:
        with pytest.raises(DeadlineExceeded) as error:
            client.infer("slow", "late")
        assert "deadline" in str(error.value)
    finally:
        SlowGate.opened.set()


@pytest.mark.parametrize("workflow", [Endless, AsyncEndless], ids=["thread-generator", "async-generator"])
def test_cancelled_stream_stops_its_generator_within_one_chunk(
    client: Client, workflow: type[Endless] | type[AsyncEndless]
) -> None:
    workflow.produced = 0
    workflow.closed.clear()
    model = "endless" if workflow is Endless else "async-endless"
    for _ in range(3):
        workflow.permits.release()
    chunks = client.stream(model, "go")
    received = [next(chunks).output for _ in range(3)]
    chunks.close()  # cancels the call while the model waits to make chunk 4
    # A generator step already running in a thread cannot be interrupted: let it finish.
    workflow.permits.release()
    assert workflow.closed.wait(10), "the model's generator was not closed"
    assert received == [1, 2, 3]
    assert workflow.produced <= 4  # at most the one chunk that was under way


def test_cancelled_call_frees_its_slot(server: RunningServer, gate: type[Gate]) -> None:
    """The gate model admits one request at a time: a cancelled one must give its place back."""
    with grpc.insecure_channel(server.address) as channel:
        call = pb_grpc.InferenceStub(channel).Infer.future(
            pb.InferRequest(model="gate", input=pb.Payload(text="x")), timeout=30
        )
        assert gate.entered.wait(10)
        call.cancel()
        assert call.cancelled()
    gate.opened.set()
    with server.client(timeout=30) as client:
        for attempt in range(100):  # the server learns of the cancel asynchronously
            try:
                assert client.infer("gate", "next").output == {"echo": "next"}
                break
            except ResourceExhausted:
                time.sleep(0.05)
        else:
            pytest.fail("the cancelled request still holds its slot")


def test_the_wrong_call_for_a_model_is_unimplemented(client: Client) -> None:
    from inferd import Unimplemented

    with pytest.raises(Unimplemented) as error:
        list(client.stream("digits", {"input": np.zeros((1, 1, 8, 8), np.float32)}))
    assert status_of(error) == "UNIMPLEMENTED" and "call Infer" in str(error.value)
    with pytest.raises(Unimplemented) as error:
        client.infer("endless", "x")
    assert "call Stream" in str(error.value)


def test_a_client_raises_the_servers_class_only_where_it_fits_the_status() -> None:
    from inferd.errors import error_from_status

    error = error_from_status("INVALID_ARGUMENT", "m", "RecordError", {"record": "3", "path": "a.b", "offset": "x"})
    assert type(error) is RecordError and (error.record, error.path, error.offset) == (3, "a.b", "x")
    assert type(error_from_status("INVALID_ARGUMENT", "m", "ModelFailed")) is InvalidInput  # not that status's class
    assert type(error_from_status("FAILED_PRECONDITION", "m", "NoSuchError")) is ModelNotReady
    exhausted = error_from_status("RESOURCE_EXHAUSTED", "m", "ResourceExhausted", {"retry_after_ms": "250"})
    assert isinstance(exhausted, ResourceExhausted) and exhausted.retry_after_ms == 250
