"""The Open Inference Protocol through its generated stubs (inferd.oip), on the shared server:
each RPC, tensors of every kind, the errors and their codes, streams that outlive an error,
statistics that count, and an unload that lets requests in flight finish."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import pytest
from workflows_for_tests import Held

from inferd.oip import grpc_service_pb2 as pb
from inferd.oip import grpc_service_pb2_grpc as pb_grpc

WINE_FIELDS = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
               "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280_od315", "proline"]  # fmt: skip


@pytest.fixture
def stub(server: Any) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def raw_request(model: str, **tensors: tuple[str, np.ndarray]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    for name, (datatype, array) in tensors.items():
        tensor = request.inputs.add(name=name, datatype=datatype, shape=array.shape)
        if datatype == "BYTES":
            request.raw_input_contents.append(b"".join(len(item).to_bytes(4, "little") + item for item in array.reshape(-1)))
        else:
            request.raw_input_contents.append(array.tobytes())
        del tensor
    return request


def refused(call: Any, *arguments: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*arguments, timeout=30)
    return caught.value


def test_health_and_metadata(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="wine")).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="wine", version="1")).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="wine", version="2")).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="nope")).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="explicit-never-set-up")).ready
    metadata = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert metadata.name == "inferd" and "model_repository" in metadata.extensions
    wine = stub.ModelMetadata(pb.ModelMetadataRequest(name="wine"))
    assert (wine.versions, wine.platform) == (["1"], "onnxruntime_onnx")
    assert {o.name: (o.datatype, list(o.shape)) for o in wine.outputs} == {"label": ("BYTES", [-1]), "probabilities": ("FP32", [-1, 3])}
    echo = stub.ModelConfig(pb.ModelConfigRequest(name="echo")).config
    assert echo.model_transaction_policy.decoupled and echo.max_batch_size == 0
    digits = stub.ModelConfig(pb.ModelConfigRequest(name="digits")).config
    assert digits.max_batch_size == 64 and digits.dynamic_batching.max_queue_delay_microseconds == 2000
    assert [list(i.dims) for i in digits.input] == [[1, 8, 8]]


@pytest.mark.parametrize(
    "call, request_",
    [
        ("ModelMetadata", pb.ModelMetadataRequest(name="nope")),
        ("ModelConfig", pb.ModelConfigRequest(name="nope")),
        ("ModelStatistics", pb.ModelStatisticsRequest(name="nope")),
        ("ModelMetadata", pb.ModelMetadataRequest(name="wine", version="7")),
        ("RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name="nope")),
        ("ModelInfer", raw_request("nope", x=("FP32", np.zeros(1, np.float32)))),
    ],
)
def test_unknown_models_and_versions_are_not_found(stub: Any, call: str, request_: Any) -> None:
    error = refused(getattr(stub, call), request_)
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "'nope'" in error.details() or "no served version '7' (versions: 1)" in error.details()


def bad(model: str, mutate: Any) -> pb.ModelInferRequest:
    request = raw_request(model, x=("FP32", np.arange(4, dtype=np.float32).reshape(2, 2)))
    mutate(request)
    return request


@pytest.mark.parametrize(
    "request_, says",
    [
        (bad("tensor-echo", lambda r: r.inputs[0].shape.extend([3])), "tensor 'x': shape [2, 2, 3] of FP32 needs 48 bytes"),
        (bad("tensor-echo", lambda r: setattr(r.inputs[0], "datatype", "FP8")), "tensor 'x': unknown datatype 'FP8'"),
        (bad("tensor-echo", lambda r: r.inputs[0].contents.fp32_contents.append(1.0)), "tensor 'x': typed contents in a request that uses raw"),
        (bad("tensor-echo", lambda r: r.raw_input_contents.append(b"")), "raw_input_contents has 2 entries for 1 inputs"),
        (pb.ModelInferRequest(model_name="tensor-echo"), "the request has no inputs"),
        (raw_request("tensor-echo", b=("BOOL", np.array([0, 2], np.uint8))), "tensor 'b': BOOL bytes must be 0 or 1"),
        (pb.ModelInferRequest(model_name="tensor-echo", inputs=[pb.ModelInferRequest.InferInputTensor(name="h", datatype="FP16", shape=[1])]),
         "tensor 'h': FP16 travels only in raw_input_contents"),  # fmt: skip
        # The model's own checks, naming the tensor:
        (bad("wine", lambda r: None), "tensor 'x': the model has no such input (inputs: input)"),
        (raw_request("wine", input=("FP32", np.zeros((1, 12), np.float32))), "tensor 'input': expected shape [?, 13], got [1, 12]"),
        (raw_request("wine", input=("INT64", np.zeros((1, 13), np.int64))), "tensor 'input': expected dtype float32, got int64"),
    ],
)
def test_bad_tensors_are_invalid_argument_naming_the_tensor(stub: Any, request_: pb.ModelInferRequest, says: str) -> None:
    error = refused(stub.ModelInfer, request_)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert says in error.details()


def test_truncated_bytes_and_a_missing_output(stub: Any) -> None:
    request = raw_request("tensor-echo", s=("BYTES", np.array([b"abc"], dtype=object)))
    request.raw_input_contents[0] = request.raw_input_contents[0][:-1]
    assert "runs past the data" in refused(stub.ModelInfer, request).details()
    request = raw_request("tensor-echo", x=("INT32", np.arange(3, dtype=np.int32)))
    request.outputs.add(name="y")
    error = refused(stub.ModelInfer, request)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "output 'y'" in error.details()


def test_fp16_and_bf16_raw_and_typed_contents(stub: Any) -> None:
    half = np.array([0.5, -2.25, 65504.0], dtype=np.float16)
    wide = np.array([1.5, -3.0, 1e30], dtype=np.float32)
    request = raw_request("tensor-echo", h=("FP16", half), b=("BF16", (wide.view(np.uint32) >> 16).astype(np.uint16)))
    request.id = "halves"
    response = stub.ModelInfer(request)
    outputs = {o.name: (o, raw) for o, raw in zip(response.outputs, response.raw_output_contents)}
    assert response.id == "halves" and response.model_version == "1"
    assert outputs["h"][0].datatype == "FP16" and np.array_equal(np.frombuffer(outputs["h"][1], np.float16), half)
    assert outputs["b"][0].datatype == "FP32"  # BF16 reaches the model widened to float32, exactly
    np.testing.assert_array_equal(np.frombuffer(outputs["b"][1], np.float32), (wide.view(np.uint32) & 0xFFFF0000).view(np.float32))
    typed = pb.ModelInferRequest(model_name="tensor-echo")
    tensor = typed.inputs.add(name="u", datatype="UINT16", shape=[2, 1])
    tensor.contents.uint_contents.extend([7, 65535])
    response = stub.ModelInfer(typed)
    assert response.outputs[0].datatype == "UINT16" and list(response.outputs[0].shape) == [2, 1]
    assert np.frombuffer(response.raw_output_contents[0], "<u2").tolist() == [7, 65535]


@pytest.mark.parametrize("seed", range(3))
def test_json_records_in_bytes_match_inferd_v1(stub: Any, client: Any, seed: int) -> None:
    """Records in any key order, one a BYTES element or all in one: the wine model's tensor
    adapter reads them, and the answer is the one inferd.v1's JSON path gives."""
    rng = random.Random(seed)
    records = []
    for _ in range(rng.randint(1, 5)):
        fields = WINE_FIELDS[:]
        rng.shuffle(fields)
        records.append({field: round(rng.uniform(0.1, 100), 3) for field in fields})
    expected = client.infer("wine", records).output
    each = np.array([json.dumps(record).encode() for record in records], dtype=object)
    for array in (each, np.array([json.dumps(records).encode()], dtype=object)):
        response = stub.ModelInfer(raw_request("wine", records=("BYTES", array)))
        assert response.outputs[0].name == "output" and response.outputs[0].datatype == "BYTES"
        assert json.loads(response.raw_output_contents[0][4:]) == expected


def test_parameters_pass_through_and_protocol_ones_do_not(stub: Any) -> None:
    request = raw_request("passthrough", text=("BYTES", np.array([b"hi"], dtype=object)))
    request.parameters["temperature"].double_param = 0.5
    request.parameters["n"].int64_param = -3
    request.parameters["flag"].bool_param = True
    request.parameters["priority"].uint64_param = 1  # the protocol's: not the model's
    answer = json.loads(stub.ModelInfer(request).raw_output_contents[0][4:])
    assert answer == {"inputs": "hi", "parameters": {"temperature": 0.5, "n": -3, "flag": True}}


def test_a_stream_goes_on_after_an_error(stub: Any) -> None:
    def requests() -> Iterator[pb.ModelInferRequest]:
        text = lambda id_, model: raw_request(model, text=("BYTES", np.array([b"a b"], dtype=object)))  # noqa: E731
        for index, model in enumerate(["echo", "nope", "tensor-echo", "echo"]):
            request = text(index, model)
            request.id = str(index)
            if model == "tensor-echo":
                request.inputs[0].datatype = "FP32"  # 7 bytes of FP32: refused, in the stream
            request.parameters["triton_enable_empty_final_response"].bool_param = True
            yield request

    responses = list(stub.ModelStreamInfer(requests(), timeout=60))
    errors = {r.infer_response.id: r.error_message for r in responses if r.error_message}
    assert errors.keys() == {"1", "2"}
    assert errors["1"].startswith("NOT_FOUND") and errors["2"].startswith("INVALID_ARGUMENT: tensor 'text'")
    for id_ in ("0", "3"):
        mine = [r.infer_response for r in responses if r.infer_response.id == id_ and not r.error_message]
        finals = [r.parameters["triton_final_response"].bool_param for r in mine]
        assert finals == [False, False, True]  # two words, then the empty final response
        assert [r.raw_output_contents[0][4:] for r in mine[:2]] == [b"a", b" b"] and not mine[2].outputs


def test_statistics_count(stub: Any) -> None:
    def stats() -> pb.ModelStatistics:
        return stub.ModelStatistics(pb.ModelStatisticsRequest(name="tensor-echo")).model_stats[0]

    before = stats()
    for _ in range(3):
        stub.ModelInfer(raw_request("tensor-echo", x=("INT8", np.arange(2, dtype=np.int8))))
    refused(stub.ModelInfer, bad("tensor-echo", lambda r: r.raw_input_contents.append(b"")))
    after = stats()
    assert after.inference_count - before.inference_count == 3
    assert after.inference_stats.success.count - before.inference_stats.success.count == 3
    assert after.inference_stats.success.ns > before.inference_stats.success.ns
    assert after.inference_stats.fail.count - before.inference_stats.fail.count == 1
    assert len(stub.ModelStatistics(pb.ModelStatisticsRequest()).model_stats) > 10  # every model


def test_repository_index_load_and_an_unload_that_drains(stub: Any) -> None:
    states = {m.name: m.state for m in stub.RepositoryIndex(pb.RepositoryIndexRequest()).models}
    assert states["wine"] == "READY" and states["missing-module"] == "UNAVAILABLE"
    ready = {m.name for m in stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True)).models}
    assert "wine" in ready and "missing-module" not in ready
    Held.release.clear()
    Held.entered.clear()
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="held"))
    teardowns = Held.teardowns
    request = raw_request("held", x=("INT64", np.array([5], np.int64)))
    with ThreadPoolExecutor(2) as pool:
        inflight = pool.submit(stub.ModelInfer, request, timeout=60)
        assert Held.entered.wait(30)
        unloading = pool.submit(stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name="held"), timeout=60)
        # New requests are refused at once; the one in flight holds the teardown back.
        while stub.ModelReady(pb.ModelReadyRequest(name="held")).ready:
            threading.Event().wait(0.01)
        error = refused(stub.ModelInfer, request)
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and "unloaded" in error.details()
        assert Held.teardowns == teardowns and not inflight.done()
        Held.release.set()
        assert np.frombuffer(inflight.result().raw_output_contents[0], np.int64).tolist() == [5]
        unloading.result()
    assert Held.teardowns == teardowns + 1
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="held"))  # and back
    assert stub.ModelReady(pb.ModelReadyRequest(name="held")).ready
    error = refused(stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="held", parameters={"config": pb.ModelRepositoryParameter(string_param="{}")}))
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED


def test_tokens_guard_the_protocol_and_its_streams() -> None:
    from conftest import RunningServer, service_config

    config = service_config()
    auth = {"tokens": [{"name": "echo-only", "token": "t-echo", "models": ["echo"]}]}
    models = {name: config.models[name] for name in ("echo", "tensor-echo")}
    running = RunningServer(config.with_server(auth=auth, metrics={"address": "127.0.0.1:0"}).model_copy(update={"models": models}))
    try:
        with grpc.insecure_channel(running.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            text = raw_request("echo", text=("BYTES", np.array([b"hi"], dtype=object)))
            error = refused(stub.ModelInfer, text)
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            token = (("authorization", "Bearer t-echo"),)
            assert stub.ModelInfer(text, metadata=token, timeout=30).raw_output_contents[0][4:] == b"hi"
            other = raw_request("tensor-echo", x=("INT8", np.zeros(1, np.int8)))
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(other, metadata=token, timeout=30)
            assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
            text.id, other.id = "mine", "not-mine"
            responses = list(stub.ModelStreamInfer(iter([other, text]), metadata=token, timeout=30))
            assert {r.infer_response.id: r.error_message.split(":")[0] for r in responses} == {"not-mine": "PERMISSION_DENIED", "mine": ""}
            with pytest.raises(grpc.RpcError) as caught:
                list(stub.ModelStreamInfer(iter([text]), timeout=30))
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    finally:
        running.stop()


def test_a_lazy_streaming_models_first_stream_streams(stub: Any) -> None:
    """Whether a model streams is known once its class loads: the first ModelStreamInfer to a
    lazy one sets it up and streams, not answers once."""
    request = raw_request("lazy-echo", text=("BYTES", np.array([b"x y z"], dtype=object)))
    chunks = [r.infer_response.raw_output_contents[0][4:] for r in stub.ModelStreamInfer(iter([request]), timeout=60)]
    assert chunks == [b"x", b" y", b" z"]
    explicit = raw_request("explicit-never-set-up", text=("BYTES", np.array([b"x"], dtype=object)))
    [refused_] = list(stub.ModelStreamInfer(iter([explicit]), timeout=60))
    assert refused_.error_message.startswith("FAILED_PRECONDITION")
