"""The native wire codec of Infer and Stream agrees with the generated message classes.

The server reads every request with ``inferd._native.decode_request`` and writes tensor answers
with ``encode_response`` (python/inferd/server/servicer.py). Here random requests, serialized by
the generated classes, must read the same through both paths: the same payload and parameters,
or the same error class and message. Random outputs written natively must parse, with the
generated classes, into the message the classes' own path builds.
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferd import _native
from inferd._proto import DTYPES, Blob, struct_to_dict, tensor_to_numpy
from inferd.adapters import Payload, adapt_output
from inferd.engine import Result
from inferd.errors import InferdError, InvalidInput, TensorError
from inferd.server.convert import read_parameters, read_payload
from inferd.server.servicer import _fill
from inferd.v1 import inference_pb2 as pb
from inferd.v1 import inference_pb2_grpc as pb_grpc
from inferd.workflow import Audio

from conftest import RunningServer


def decode_payload(payload: pb.Payload) -> Payload:
    """The reference: a payload read through the generated classes (as the client reads answers)."""
    kind = payload.WhichOneof("kind")
    if kind == "tensors":
        tensors: dict[str, np.ndarray] = {}
        for tensor in payload.tensors.tensors:
            array = tensor_to_numpy(tensor)
            if tensor.name in tensors:
                raise TensorError(f"tensor {tensor.name!r}: given twice", tensor=tensor.name)
            tensors[tensor.name] = array
        return Payload("tensors", tensors)
    if kind == "json":
        return Payload("json", payload.json)
    if kind == "text":
        return Payload("text", payload.text)
    if kind == "blob":
        return Payload("blob", Blob(payload.blob.data, payload.blob.content_type))
    raise InvalidInput("the request has no input: set one of json, tensors, text, blob")


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
dtype_codes = st.sampled_from([*DTYPES, pb.DATA_TYPE_STRING, pb.DATA_TYPE_UNSPECIFIED, 99])


def _string_data(items: list[str]) -> bytes:
    return b"".join(len(item.encode()).to_bytes(4, "little") + item.encode() for item in items)


@st.composite
def tensors(draw: st.DrawFn) -> pb.Tensor:
    """Mostly consistent tensors; some with a bad shape, dtype or data length."""
    code = draw(dtype_codes)
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    if draw(st.integers(0, 9)) == 0:
        shape = [*shape, draw(st.integers(-3, -1))]
    elif draw(st.integers(0, 19)) == 0:
        shape = [1] * draw(st.integers(63, 66))  # numpy's limit is 64 dimensions
    count = int(np.prod(shape)) if shape and min(shape) >= 0 else 1
    if code == pb.DATA_TYPE_STRING:
        data = _string_data(draw(st.lists(texts, min_size=count, max_size=count)))
    else:
        itemsize = DTYPES[code].itemsize if code in DTYPES else 4
        data = draw(st.binary(min_size=count * itemsize, max_size=count * itemsize))
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))] + draw(st.binary(max_size=3))
    return pb.Tensor(name=draw(st.sampled_from(["input", "x", "ü", ""])), dtype=code, shape=shape, data=data)


@st.composite
def requests(draw: st.DrawFn) -> pb.InferRequest:
    request = pb.InferRequest(model=draw(texts), id=draw(texts))
    kind = draw(st.sampled_from(["tensors", "json", "text", "blob", None]))
    if kind == "tensors":
        request.input.tensors.tensors.extend(draw(st.lists(tensors(), max_size=3)))
    elif kind == "json":
        request.input.json = draw(st.binary(max_size=20))
    elif kind == "text":
        request.input.text = draw(texts)
    elif kind == "blob":
        request.input.blob.data = draw(st.binary(max_size=20))
        request.input.blob.content_type = draw(texts)
    values = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), texts)
    parameters = draw(st.dictionaries(texts, values, max_size=3))
    if parameters:
        request.parameters.update(parameters)
    return request


def _outcome(read: Any) -> Any:
    try:
        payload = read()
    except InferdError as error:
        return (type(error), str(error), error.details)
    value = payload.value
    if payload.kind == "tensors":
        value = {name: (array.dtype, array.shape, array.tobytes() if array.dtype != object else array.tolist())
                 for name, array in value.items()}  # fmt: skip
    return (payload.kind, value)


@settings(max_examples=400, deadline=None)
@given(requests())
def test_requests_read_natively_as_the_message_classes_read_them(request: pb.InferRequest) -> None:
    data = request.SerializeToString()
    native = _native.decode_request(data)
    assert (native.model, native.id) == (request.model, request.id)
    assert read_parameters(native) == struct_to_dict(request.parameters)
    assert _outcome(lambda: read_payload(native)) == _outcome(lambda: decode_payload(request.input))


@given(st.binary(max_size=64))
def test_any_bytes_read_as_a_request_or_a_clear_error(data: bytes) -> None:
    """Never a crash: whatever the bytes, payload() gives a payload or InvalidInput."""
    request = _native.decode_request(data)
    try:
        read_payload(request)
        read_parameters(request)
    except InvalidInput:
        pass


def test_repeated_and_unknown_fields_follow_protobuf() -> None:
    first = pb.InferRequest(model="a", input=pb.Payload(text="hi"))
    second = pb.InferRequest(model="b", input=pb.Payload(tensors=pb.Tensors(tensors=[pb.Tensor(name="x", dtype=pb.DATA_TYPE_INT8, shape=[1], data=b"\1")])))
    unknown = b"\xf8\x01\x05" + b"\xfa\x01\x02hi"  # fields 31 (varint) and 31 (bytes)
    data = first.SerializeToString() + unknown + second.SerializeToString() + second.SerializeToString()
    merged = pb.InferRequest.FromString(data)
    native = _native.decode_request(data)
    assert native.model == merged.model == "b"
    assert _outcome(lambda: read_payload(native)) == (TensorError, "tensor 'x': given twice", {"tensor": "x"})
    assert _outcome(lambda: decode_payload(merged.input)) == _outcome(lambda: read_payload(native))


def test_field_numbers_match_the_proto() -> None:
    for name, number in _native.WIRE_FIELDS.items():
        message, field = name.split(".")
        assert pb.DESCRIPTOR.message_types_by_name[message].fields_by_name[field].number == number, name


arrays = st.one_of(
    st.sampled_from([np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                     np.float16, np.float32, np.float64]).flatmap(  # fmt: skip
        lambda dtype: st.lists(st.integers(0, 3), max_size=3).map(
            lambda shape: (np.arange(int(np.prod(shape))) * 7 % 5).astype(dtype).reshape(shape)
        )
    ),
    st.lists(texts, max_size=4).map(lambda items: np.array(items, dtype=object)),
)


def message_response(output: Any, request: Any, request_id: str, timings: list[tuple[str, float]]) -> pb.InferResponse:
    """The reference: the answer to ``output`` written through the generated classes."""
    kind, value, parameters = adapt_output(output, request)
    response = pb.InferResponse(model="wine", id=request_id)
    _fill(response, Result(kind, value, tuple(timings), parameters))
    return response


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(arrays, st.dictionaries(st.sampled_from(["label", "probabilities", "ü", ""]), arrays, min_size=1, max_size=3)),
    texts,
    st.lists(st.tuples(st.sampled_from(["adapt", "run", "total"]), st.floats(allow_nan=False)), max_size=4),
)
def test_responses_written_natively_parse_as_the_message_classes_write_them(
    output: Any, request_id: str, timings: list[tuple[str, float]]
) -> None:
    encoded = _native.encode_response("wine", request_id, output, timings)
    assert encoded is not None
    assert pb.InferResponse.FromString(encoded) == message_response(output, "tensors", request_id, timings)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
numeric_arrays = st.sampled_from([np.int64, np.float32, np.float64, np.bool_]).flatmap(
    lambda dtype: st.lists(st.integers(0, 3), min_size=1, max_size=2).map(
        lambda shape: (np.arange(int(np.prod(shape))) * 7 % 5).astype(dtype).reshape(shape)
    )
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(numeric_arrays, st.dictionaries(st.sampled_from(["label", "scores", "ü"]), numeric_arrays, min_size=1, max_size=3), json_values),
    texts,
    st.lists(st.tuples(st.sampled_from(["adapt", "run", "total"]), st.floats(allow_nan=False)), max_size=4),
)
def test_json_answers_written_natively_parse_as_the_message_classes_write_them(
    output: Any, request_id: str, timings: list[tuple[str, float]]
) -> None:
    kind, answer, _ = adapt_output(output, "json")
    expected = message_response(output, "json", request_id, timings)
    if output is None or isinstance(output, str):
        assert kind != "json"  # no output, or text: written by the messages
        return
    assert kind == "json"
    assert pb.InferResponse.FromString(_native.encode_json_response("wine", request_id, answer, timings)) == expected


@pytest.mark.parametrize("output", [None, "text", b"bytes", Blob(b"x", "image/png"), Audio(b"x", 16000)])
def test_outputs_of_their_own_kind_answer_a_json_request_in_that_kind(output: Any) -> None:
    assert adapt_output(output, "json")[0] == adapt_output(output, "text")[0] != "json"


@pytest.mark.parametrize(
    "output",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3).T,  # not C-contiguous
        np.arange(3, dtype=">f4"),  # big-endian
        np.array(["a", "b"]),  # numpy unicode, not objects
        np.array(["a", 1], dtype=object),  # an object that is not a string
        {"a": np.zeros(1), "b": [1, 2]},  # not all arrays
        {},
        [1, 2],
        "text",
    ],
)
def test_outputs_the_codec_does_not_write_are_left_to_the_messages(output: Any) -> None:
    assert _native.encode_response("m", "", output, []) is None


def _raw_infer(server: RunningServer, data: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(server.address) as channel:
        call = channel.unary_unary("/inferd.v1.Inference/Infer")  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as error:
            call(data, timeout=30)
    return error.value


def test_a_malformed_request_is_invalid_argument_naming_the_byte(server: RunningServer) -> None:
    error = _raw_infer(server, b"\x0a\x05ab")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert error.details() == "malformed request: field runs past the end of its message (at byte 2)"  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["Infer", "Stream"])
@pytest.mark.parametrize("dtype, data", [(pb.DATA_TYPE_FLOAT32, b"\0\0\0\0"), (pb.DATA_TYPE_STRING, b"\1\0\0\0a")])
def test_a_tensor_of_too_many_dimensions_is_invalid_argument_at_once(
    server: RunningServer, method: str, dtype: int, data: bytes
) -> None:
    """More dimensions than numpy allows: refused naming the tensor, not left unanswered (a
    panic in the request reader once left the call open until the client's deadline)."""
    tensor = pb.Tensor(name="x", dtype=dtype, shape=[1] * 65, data=data)
    request = pb.InferRequest(model="echo", input=pb.Payload(tensors=pb.Tensors(tensors=[tensor])))
    with grpc.insecure_channel(server.address) as channel:
        call = getattr(pb_grpc.InferenceStub(channel), method)
        with pytest.raises(grpc.RpcError) as caught:
            answer = call(request, timeout=30)
            if method == "Stream":
                list(answer)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert caught.value.details() == "tensor 'x': shape has 65 dimensions, at most 64 are allowed"  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["Setup", "ListModels"])
def test_the_other_methods_answer_malformed_bytes_with_invalid_argument(server: RunningServer, method: str) -> None:
    """The methods the message classes read map a DecodeError as Infer maps its own."""
    with grpc.insecure_channel(server.address) as channel:
        call = channel.unary_unary(f"/inferd.v1.Inference/{method}")
        with pytest.raises(grpc.RpcError) as error:
            call(b"\x0a\x05ab", timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert error.value.details().startswith("malformed request: Error parsing message")  # type: ignore[attr-defined]


def test_malformed_parameters_are_invalid_argument(server: RunningServer) -> None:
    request = pb.InferRequest(model="echo", input=pb.Payload(text="hi")).SerializeToString()
    error = _raw_infer(server, request + b"\x22\x02\x0a\x09")  # parameters: a truncated map entry
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "parameters" in error.details()  # type: ignore[attr-defined]


def test_wine_answers_the_same_bytes_as_the_message_classes_would(server: RunningServer) -> None:
    features = np.array([[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050]], np.float32)
    tensor = pb.Tensor(name="input", dtype=pb.DATA_TYPE_FLOAT32, shape=[1, 13], data=features.tobytes())
    request = pb.InferRequest(model="wine", id="r-1", input=pb.Payload(tensors=pb.Tensors(tensors=[tensor])))
    with grpc.insecure_channel(server.address) as channel:
        raw = channel.unary_unary("/inferd.v1.Inference/Infer")(request.SerializeToString(), timeout=30)
        response = pb_grpc.InferenceStub(channel).Infer(request, timeout=30)
    parsed = pb.InferResponse.FromString(raw)
    assert (parsed.model, parsed.id) == ("wine", "r-1")
    assert [t.name for t in parsed.output.tensors.tensors] == [t.name for t in response.output.tensors.tensors]
    assert [t.data for t in parsed.output.tensors.tensors] == [t.data for t in response.output.tensors.tensors]
    assert [t.stage for t in parsed.timings] == ["adapt", "preprocess", "run", "total"]
