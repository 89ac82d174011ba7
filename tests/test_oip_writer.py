"""The native writer of the Open Inference Protocol's ModelInferResponse
(``inferd._native.encode_infer_response``, through ``oip_tensors.write_response``: ModelInfer's
and ModelStreamInfer's answers): its bytes parse to exactly what the Python writer (the
generated message class) writes, for every datatype, shape, parameter and name; what it leaves
to that writer, that writer writes (its errors included); and through a real server the
answers are the ones the protocol's clients read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_native_gil import assert_runs_with_the_gil_released

from inferd import _native
from inferd.errors import TensorError
from inferd.oip import grpc_service_pb2 as pb
from inferd.server.oip import serialize_response
from inferd.server.oip_tensors import DTYPES, selected, write_arrays, write_parameters, write_response

NUMERIC = [name for name in DTYPES if name not in ("BYTES", "BF16")]  # BF16 is never an answer's
INT64 = st.integers(-(2**63), 2**63 - 1)


def python_written(
    model: str, version: str, id: str, arrays: dict[str, Any], parameters: dict[str, Any] | None, stream: bool = False
) -> bytes:
    """What the Python writer writes, deterministically (map entries in key order)."""
    response = pb.ModelInferResponse(model_name=model, model_version=version, id=id)
    write_arrays(response, arrays)
    if parameters:
        write_parameters(response.parameters, parameters)
    message: Any = pb.ModelStreamInferResponse(infer_response=response) if stream else response
    return bytes(message.SerializeToString(deterministic=True))


def read_back(data: bytes, stream: bool = False) -> bytes:
    """Bytes as the generated class parses them, serialized deterministically (so that the
    comparison is byte for byte: NaN payloads, -0.0, every raw entry)."""
    message: Any = (pb.ModelStreamInferResponse if stream else pb.ModelInferResponse).FromString(data)
    return bytes(message.SerializeToString(deterministic=True))


def _bytes_array(shape: tuple[int, ...], items: list[str | bytes]) -> np.ndarray:
    array = np.empty(shape, dtype=object)
    for index, item in zip(np.ndindex(*shape), items):
        array[index] = item
    return array


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    datatype = draw(st.sampled_from([*NUMERIC, "BYTES"]))
    if datatype == "BYTES":
        count = int(np.prod(shape))
        items = draw(st.lists(st.one_of(st.text(), st.binary()), min_size=count, max_size=count))
        return _bytes_array(shape, items)
    return draw(hnp.arrays(DTYPES[datatype], shape))


#: Parameters of every kind the writer writes, extremes included.
PARAMETER_VALUES = st.one_of(st.booleans(), INT64, st.floats(allow_nan=True), st.text())
NAMES = st.text(max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=NAMES, version=NAMES, id=NAMES,
    outputs=st.dictionaries(NAMES, arrays(), max_size=4),
    parameters=st.one_of(st.none(), st.dictionaries(NAMES, PARAMETER_VALUES, max_size=5)),
    stream=st.booleans(),
)  # fmt: skip
def test_native_bytes_parse_to_what_the_python_writer_writes(
    model: str, version: str, id: str, outputs: dict[str, np.ndarray], parameters: dict[str, Any] | None, stream: bool
) -> None:
    encoded = _native.encode_infer_response(model, version, id, outputs, parameters, stream)
    assert encoded is not None  # every C-contiguous little-endian array and plain parameter
    assert read_back(encoded, stream) == python_written(model, version, id, outputs, parameters, stream)
    assert write_response(model, version, id, outputs, parameters, stream=stream) == encoded


#: Arrays as the native writer does not take them: the Python writer's, with the same answer.
LEFT_TO_PYTHON = {
    "big-endian": lambda array: array.astype(array.dtype.newbyteorder(">")),
    "transposed": lambda array: array.T,
    "strided": lambda array: array[::2],
    "a list": lambda array: array.tolist(),
    "a numpy scalar": lambda array: array.reshape(-1)[0],
    "a str array": lambda array: array.astype(str),
    "a bytes array": lambda array: array.astype(bytes),
    "an ndarray subclass": lambda array: array.view(np.matrix),
}


@settings(max_examples=200, deadline=None)
@given(
    array=hnp.arrays(st.sampled_from([DTYPES[name] for name in NUMERIC]), (3, 2)),
    how=st.sampled_from(sorted(LEFT_TO_PYTHON)),
    stream=st.booleans(),
)
def test_what_the_native_writer_leaves_the_python_writer_writes(array: np.ndarray, how: str, stream: bool) -> None:
    changed = LEFT_TO_PYTHON[how](array)
    if not (array.dtype.itemsize == 1 and how == "big-endian"):  # (one byte has no byte order)
        assert _native.encode_infer_response("m", "1", "", {"out": changed}, None, stream) is None, how
    written = write_response("m", "1", "", {"out": changed}, {"k": 1}, stream=stream)
    assert read_back(serialize_response(written), stream) == python_written("m", "1", "", {"out": changed}, {"k": 1}, stream)


@pytest.mark.parametrize(
    "parameters",
    [
        {"numpy float": np.float64(0.5)},  # (a float subclass: its type is not exactly float)
        {"numpy int": np.int32(-3)},
        {"numpy bool": np.bool_(True)},
        {"none": None},
        {"list": [1, 2]},
    ],
)
def test_other_parameters_are_written_by_the_python_writer(parameters: dict[str, Any]) -> None:
    outputs = {"out": np.arange(3, dtype=np.float32)}
    assert _native.encode_infer_response("m", "1", "i", outputs, parameters) is None
    written = write_response("m", "1", "i", outputs, parameters)
    assert isinstance(written, pb.ModelInferResponse)
    assert read_back(written.SerializeToString()) == python_written("m", "1", "i", outputs, parameters)


def test_the_python_writer_keeps_its_own_errors() -> None:
    with pytest.raises(ValueError):
        write_response("m", "1", "", {}, {"big": 2**63})  # beyond int64
    with pytest.raises(TensorError, match="'when'"):
        write_response("m", "1", "", {"when": np.array(["2026-12-04"], dtype="datetime64[D]")}, None)
    with pytest.raises(UnicodeEncodeError):
        write_response("m", "1", "", {"text": _bytes_array((1,), ["\ud800"])}, None)  # a lone surrogate
    objects = {"objects": _bytes_array((2,), [3, bytearray(b"x")])}  # type: ignore[list-item]  # bytes(3): 3 zeros
    assert _native.encode_infer_response("m", "1", "", objects, None) is None
    assert read_back(serialize_response(write_response("m", "1", "", objects, None))) == python_written("m", "1", "", objects, None)


@settings(max_examples=100, deadline=None)
@given(outputs=st.dictionaries(NAMES, arrays(), min_size=1, max_size=4), data=st.data())
def test_requested_outputs_are_written_in_the_order_asked(outputs: dict[str, np.ndarray], data: st.DataObject) -> None:
    wanted = data.draw(st.lists(st.sampled_from(sorted(outputs)), unique=True))
    chosen = selected("tensors", outputs, wanted, outputs)
    assert list(chosen) == (wanted or list(outputs))
    encoded = write_response("m", "1", "", chosen, None)
    assert isinstance(encoded, bytes)
    assert [tensor.name for tensor in pb.ModelInferResponse.FromString(encoded).outputs] == list(chosen)
    assert read_back(encoded) == python_written("m", "1", "", chosen, None)
    with pytest.raises(TensorError, match="no such output"):
        selected("tensors", outputs, [*wanted, "\x00not one of them"], outputs)


def test_half_floats_and_answers_that_are_not_tensors_are_written_as_the_python_writer_does() -> None:
    half = np.frombuffer(bytes([0x01, 0x7E, 0x00, 0x80, 0x00, 0x7C, 0xFF, 0xFF]), dtype="<f2")  # NaN payload, -0, inf
    for kind, output in [("tensors", half), ("json", b'{"a": 1}'), ("text", "h\u00e9llo"), ("none", None)]:
        arrays = selected(kind, output, [], ["probabilities"])
        encoded = _native.encode_infer_response("m", "1", "", arrays, None)
        assert encoded is not None
        assert read_back(encoded) == python_written("m", "1", "", arrays, None)
    raw = pb.ModelInferResponse.FromString(_native.encode_infer_response("m", "", "", {"h": half}, None) or b"")
    assert raw.outputs[0].datatype == "FP16" and raw.raw_output_contents[0] == half.tobytes()


def test_field_numbers_are_the_generated_descriptors() -> None:
    messages = {
        "ModelInferResponse": pb.ModelInferResponse.DESCRIPTOR,
        "InferOutputTensor": pb.ModelInferResponse.InferOutputTensor.DESCRIPTOR,
        "InferParameter": pb.InferParameter.DESCRIPTOR,
        "ModelStreamInferResponse": pb.ModelStreamInferResponse.DESCRIPTOR,
    }
    for name, number in _native.OIP_RESPONSE_FIELDS.items():
        message, field = name.split(".")
        assert messages[message].fields_by_name[field].number == number, name


def test_large_contents_are_copied_with_the_gil_released() -> None:
    outputs = {"big": np.ones(4 << 20, dtype=np.float32)}  # 16 MiB

    def write(name: str) -> None:
        for _ in range(3):
            encoded = _native.encode_infer_response("m", "1", name, outputs, None)
            assert encoded is not None and len(encoded) > 16 << 20

    assert_runs_with_the_gil_released(write)


# -- through a real server -----------------------------------------------------------------


@pytest.fixture
def channel(server: Any) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def _wine(**parameters: bool) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="wine", id="w\u00e9")
    request.inputs.add(name="input", datatype="FP32", shape=[2, 13])
    request.raw_input_contents.append(np.ones((2, 13), np.float32).tobytes())
    for key, value in parameters.items():
        request.parameters[key].bool_param = value
    return request


def test_model_infer_and_a_stream_answer_with_the_native_bytes(channel: grpc.Channel) -> None:
    infer: Any = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=None,  # the bytes as they came
    )
    answer = infer(_wine(), timeout=30)
    response = pb.ModelInferResponse.FromString(answer)
    assert (response.model_name, response.model_version, response.id) == ("wine", "1", "w\u00e9")
    arrays = {tensor.name: (tensor.datatype, list(tensor.shape)) for tensor in response.outputs}
    assert len(response.raw_output_contents) == len(arrays) > 0
    stream = channel.stream_stream(
        "/inference.GRPCInferenceService/ModelStreamInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelStreamInferResponse.FromString,
    )
    streamed = list(stream(iter([_wine(), _wine(triton_enable_empty_final_response=True)]), timeout=30))
    assert len(streamed) == 2 and not any(item.error_message for item in streamed)
    finals = [item.infer_response.parameters.get("triton_final_response") for item in streamed]
    assert sorted(final is not None and final.bool_param for final in finals) == [False, True]
    for item in streamed:
        assert {tensor.name: (tensor.datatype, list(tensor.shape)) for tensor in item.infer_response.outputs} == arrays
        assert list(item.infer_response.raw_output_contents) == list(response.raw_output_contents)
