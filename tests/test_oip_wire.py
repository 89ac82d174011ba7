"""The native reader of the Open Inference Protocol's ModelInferRequest
(``inferd._native.decode_infer_request``, ModelInfer's and ModelStreamInfer's deserializer):
generated requests read as the protobuf-parsed Python reader reads them (what it serves, it
serves identically; what it leaves, it leaves to that reader), and malformed bytes through a
real server answered INVALID_ARGUMENT, never INTERNAL, with the stream going on."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferd import _native
from inferd.errors import InferdError
from inferd.oip import grpc_service_pb2 as pb
from inferd.server.interceptors import tolerant
from inferd.server.oip import read_infer_request
from inferd.server.oip_tensors import DTYPES, read_request

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
MODEL_STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"
FORMATS = ("tensor", "records", "passthrough")
NUMERIC = [name for name in DTYPES if name != "BYTES"]


# -- writing requests by hand (what the generated code never writes) -----------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _unpacked_shape(shape: list[int]) -> bytes:
    """``shape`` as one varint field per size (the generated code writes it packed)."""
    return b"".join(_varint(3 << 3) + _varint(size) for size in shape)


_UNKNOWN = [
    _varint(99 << 3) + _varint(300),  # varint
    _varint(98 << 3 | 1) + bytes(8),  # fixed64
    _varint(97 << 3 | 5) + bytes(4),  # fixed32
    _field(96, b"whatever"),  # length-delimited
    _varint(1 << 3) + _varint(5),  # a known number (model_name) with another wire type
]


# -- generated requests --------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
parameter_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1).map(lambda value: ("int64", value)),
    st.integers(0, 2**64 - 1).map(lambda value: ("uint64", value)),
    st.floats(allow_nan=False).map(lambda value: ("double", value)),
    names.map(lambda value: ("string", value)),
    st.none(),
)
parameter_maps = st.lists(st.tuples(st.sampled_from(["content_type", "a", "b", "é", "", "priority",
                                                     "triton_enable_empty_final_response"]) | names, parameter_values),
                          max_size=4)  # fmt: skip


def _set_parameters(into: Any, entries: list[tuple[str, Any]]) -> None:
    for key, value in entries:
        parameter = into[key]  # (None: an entry whose value sets no member)
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, tuple):
            setattr(parameter, f"{value[0]}_param", value[1])


def _raw(datatype: str, count: int, draw: Any) -> bytes:
    if datatype == "BYTES":
        elements = draw(st.lists(st.binary(max_size=5) | st.sampled_from([b'{"a": 1}', b"[1, 2]", b"text"]),
                                 min_size=count, max_size=count))  # fmt: skip
        return b"".join(struct.pack("<I", len(element)) + element for element in elements)
    size = DTYPES[datatype].itemsize
    if datatype == "BOOL":
        return bytes(draw(st.lists(st.integers(0, 1), min_size=count, max_size=count)))
    data: bytes = draw(st.binary(min_size=count * size, max_size=count * size))
    return data


@st.composite
def raw_requests(draw: Any) -> bytes:
    """A serializable request with raw tensors (most of them well formed), sometimes with
    unknown fields, parts merged from several messages (a later scalar wins,
    a later map entry replaces, lists append), and now and then a fault."""
    request = pb.ModelInferRequest(
        model_name=draw(st.sampled_from(["wine", "tensor-echo", ""]) | names),
        model_version=draw(st.sampled_from(["", "1"])),
        id=draw(names),
    )
    _set_parameters(request.parameters, draw(parameter_maps))
    count = draw(st.integers(1, 4))
    used: set[str] = set()
    for _ in range(count):
        name = draw(names.filter(lambda name: name not in used))
        used.add(name)
        datatype = draw(st.sampled_from(list(DTYPES)))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        elements = int(np.prod(shape)) if shape else 1
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        _set_parameters(tensor.parameters, draw(parameter_maps))
        request.raw_input_contents.append(_raw(datatype, elements, draw))
    for _ in range(draw(st.integers(0, 2))):
        output = request.outputs.add(name=draw(names))
        _set_parameters(output.parameters, draw(parameter_maps))
    fault = draw(st.sampled_from([None] * 6 + ["size", "bool", "datatype", "negative", "twice", "raw", "contents"]))
    if fault == "size":
        request.raw_input_contents[0] += b"\x00"
    elif fault == "bool":
        request.inputs[0].datatype = "BOOL"
        request.inputs[0].ClearField("shape")
        request.raw_input_contents[0] = b"\x02"
    elif fault == "datatype":
        request.inputs[0].datatype = draw(st.sampled_from(["fp32", "FP8", "STRING", ""]))
    elif fault == "negative":
        request.inputs[0].shape.append(-1)
    elif fault == "twice" and count > 1:
        request.inputs[1].name = request.inputs[0].name
    elif fault == "raw":
        request.raw_input_contents.append(b"")
    elif fault == "contents":
        request.inputs[0].contents.SetInParent()  # set, but empty: the raw path still serves
    data = bytearray(request.SerializeToString())
    if draw(st.booleans()):
        data += b"".join(draw(st.lists(st.sampled_from(_UNKNOWN), max_size=3)))
    if draw(st.booleans()):
        later = pb.ModelInferRequest(id=draw(names))
        _set_parameters(later.parameters, draw(parameter_maps))
        data += later.SerializeToString()
    return bytes(data)


@st.composite
def unpacked_requests(draw: Any) -> bytes:
    """Inputs written by hand: shape unpacked, fields in any order, unknown fields inside."""
    pieces = [_field(1, b"tensor-echo")]
    count = draw(st.integers(1, 3))
    raws = []
    for index in range(count):
        datatype = draw(st.sampled_from(list(DTYPES)))
        shape = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))  # (a BF16 scalar is Python's)
        fields = [_field(1, f"t{index}".encode()), _field(2, datatype.encode()), _unpacked_shape(shape)]
        fields += draw(st.lists(st.sampled_from(_UNKNOWN[:4]), max_size=2))
        fields = draw(st.permutations(fields))
        pieces.append(_field(5, b"".join(fields)))
        raws.append(_field(7, _raw(datatype, int(np.prod(shape)) if shape else 1, draw)))
    # Inputs and raw entries interleaved at random, each list in its order.
    out = []
    while pieces or raws:
        take = pieces if pieces and (not raws or draw(st.booleans())) else raws
        out.append(take.pop(0))
    return b"".join(out)


@st.composite
def typed_requests(draw: Any) -> bytes:
    """Typed contents: left to the Python reader, which must answer as before."""
    request = pb.ModelInferRequest(model_name="tensor-echo")
    tensor = request.inputs.add(name="x", datatype=draw(st.sampled_from(["INT32", "FP32", "BYTES", "BOOL", "FP16"])))
    tensor.shape.append(2)
    if tensor.datatype == "INT32":
        tensor.contents.int_contents.extend(draw(st.lists(st.integers(-5, 5), max_size=3)))
    elif tensor.datatype == "FP32":
        tensor.contents.fp32_contents.extend(draw(st.lists(st.floats(width=32), max_size=3)))
    elif tensor.datatype == "BYTES":
        tensor.contents.bytes_contents.extend(draw(st.lists(st.binary(max_size=3), max_size=3)))
    elif tensor.datatype == "BOOL":
        tensor.contents.bool_contents.extend(draw(st.lists(st.booleans(), max_size=3)))
    return request.SerializeToString()


# -- comparing -----------------------------------------------------------------------------


def _outcome(read: Any, input_format: str) -> Any:
    """What the server would serve: the Request's fields (arrays by dtype, shape and bytes),
    or the fault (class, message)."""
    if type(read).__name__ == "_Unreadable":
        return ("unreadable", type(read.error).__name__, read.error.message)
    try:
        request = read_request(read, input_format)
    except InferdError as error:
        return ("fault", type(error).__name__, error.message)
    value = request.payload.value
    if request.payload.kind == "tensors":
        value = [(name, type(array), array.dtype.str, array.shape, _content(array)) for name, array in value.items()]
    return (request.model, request.version, request.id, request.payload.kind, value, request.parameters,
            request.outputs, request.empty_final)  # fmt: skip


def _content(array: np.ndarray) -> Any:
    if isinstance(array, np.ndarray):
        assert array.flags.c_contiguous and array.flags.writeable
    return array.tolist() if array.dtype == object else array.tobytes()


_reference = tolerant(pb.ModelInferRequest.FromString)  # what the server read before


def _same_as_python(data: bytes) -> _native.OipRequest:
    native = _native.decode_infer_request(data)
    served = read_infer_request(data)
    assert (type(served) is _native.OipRequest) == native.complete
    for input_format in FORMATS:
        assert _outcome(served, input_format) == _outcome(_reference(data), input_format)
    return native


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_requests())
def test_raw_requests_read_as_the_python_reader_reads_them(data: bytes) -> None:
    native = _same_as_python(data)
    reference = pb.ModelInferRequest.FromString(data)
    served_by_python = _outcome(reference, "tensor")
    typed = any(tensor.HasField("contents") for tensor in reference.inputs)
    # (A BF16 scalar is the Python reader's: its widening gives a numpy scalar, not an array.)
    bf16_scalar = any(tensor.datatype == "BF16" and not tensor.shape for tensor in reference.inputs)
    if served_by_python[0] != "fault" and not typed and not bf16_scalar:
        assert native.complete, "a well-formed raw request is the native path's"
        assert native.model_name == reference.model_name and native.id == reference.id
        assert native.outputs == [output.name for output in reference.outputs]


@settings(max_examples=150, deadline=None)
@given(unpacked_requests())
def test_unpacked_shapes_and_any_field_order(data: bytes) -> None:
    assert _same_as_python(data).complete


@settings(max_examples=100, deadline=None)
@given(typed_requests())
def test_typed_contents_are_left_to_the_python_reader(data: bytes) -> None:
    assert not _same_as_python(data).complete


@settings(max_examples=300, deadline=None)
@given(raw_requests(), st.data())
def test_mutated_bytes_never_raise_and_read_as_python_reads_them(data: bytes, extra: Any) -> None:
    mutated = bytearray(data)
    for _ in range(extra.draw(st.integers(1, 3))):
        at = extra.draw(st.integers(0, len(mutated)))
        action = extra.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and at < len(mutated):
            mutated[at] ^= 1 << extra.draw(st.integers(0, 7))
        elif action == "cut":
            del mutated[at:]
        else:
            mutated[at:at] = bytes([extra.draw(st.sampled_from([0x00, 0x80, 0xFF, 0x0A, 0x12, 0x3A]))])
    _same_as_python(bytes(mutated))


def test_every_datatype_as_numpy() -> None:
    wide = np.array([1.5, -2.0, np.inf], np.float32)
    arrays = {
        "b": ("BOOL", np.array([True, False])), "u1": ("UINT8", np.arange(3, dtype="<u1")),
        "u8": ("UINT64", np.array([2**64 - 1], "<u8")), "i2": ("INT16", np.array([-3], "<i2")),
        "h": ("FP16", np.array([0.5], "<f2")), "d": ("FP64", np.array([[1e300]], "<f8")),
        "bf": ("BF16", (wide.view(np.uint32) >> 16).astype("<u2")),
    }  # fmt: skip
    request = pb.ModelInferRequest(model_name="m")
    for name, (datatype, array) in arrays.items():
        request.inputs.add(name=name, datatype=datatype, shape=array.shape)
        request.raw_input_contents.append(array.tobytes())
    request.inputs.add(name="s", datatype="BYTES", shape=[2, 1])
    request.raw_input_contents.append(b"\x01\x00\x00\x00a\x00\x00\x00\x00")
    native = _native.decode_infer_request(request.SerializeToString())
    assert native.complete
    tensors = native.tensors
    for name, (datatype, array) in arrays.items():
        if datatype == "BF16":
            assert tensors[name].dtype == np.float32 and tensors[name].tolist() == wide.tolist()
        else:
            assert tensors[name].dtype == array.dtype and tensors[name].tolist() == array.tolist()
    assert tensors["s"].dtype == object and tensors["s"].tolist() == [[b"a"], [b""]]
    assert native.inputs[0] == ("b", "BOOL", {})


def test_the_field_numbers_are_the_generated_ones() -> None:
    messages = {
        "ModelInferRequest": pb.ModelInferRequest.DESCRIPTOR,
        "InferInputTensor": pb.ModelInferRequest.InferInputTensor.DESCRIPTOR,
        "InferRequestedOutputTensor": pb.ModelInferRequest.InferRequestedOutputTensor.DESCRIPTOR,
        "InferParameter": pb.InferParameter.DESCRIPTOR,
    }
    for name, number in _native.OIP_FIELDS.items():
        message, field = name.split(".")
        assert messages[message].fields_by_name[field].number == number, name


# -- through a real server -----------------------------------------------------------------


@pytest.fixture
def channel(server: Any) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def _wine(rows: int) -> bytes:
    request = pb.ModelInferRequest(model_name="wine", id="w")
    request.inputs.add(name="input", datatype="FP32", shape=[rows, 13])
    request.raw_input_contents.append(np.ones((rows, 13), np.float32).tobytes())
    return request.SerializeToString()


def _call(channel: grpc.Channel, data: bytes) -> tuple[grpc.StatusCode, str, Any]:
    infer = channel.unary_unary(MODEL_INFER, request_serializer=None, response_deserializer=pb.ModelInferResponse.FromString)
    try:
        return grpc.StatusCode.OK, "", infer(data, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details(), None


def test_the_native_path_serves_wine(channel: grpc.Channel, monkeypatch: pytest.MonkeyPatch) -> None:
    from inferd.server import oip_tensors

    served = []
    native = oip_tensors._read_native

    def counted(request: Any, input_format: str) -> Any:
        served.append(request.model_name)
        return native(request, input_format)

    monkeypatch.setattr(oip_tensors, "_read_native", counted)  # (the server runs in this process)
    code, _, response = _call(channel, _wine(2))
    assert code is grpc.StatusCode.OK
    assert served == ["wine"], "served by the native path"
    assert response.outputs and len(response.raw_output_contents) == len(response.outputs)
    assert (response.model_name, response.id) == ("wine", "w")


def _malformed() -> list[bytes]:
    wine = _wine(1)
    return [
        wine[:-1],  # truncated inside the tensor's bytes
        wine[: len(wine) // 2],
        b"\x0a\x05wine",  # a length past the end
        b"\x0a\x02\xff\xfe",  # model_name not UTF-8
        b"\x2a\x03\x1a\x01\x80",  # a packed shape cut inside a varint
        b"\x08" + b"\xff" * 11,  # a varint of 11 bytes
        b"\x07",  # wire type 7
        b"\x22\x03\x0a\x01\xff" + wine,  # a parameter's name not UTF-8
    ]


@pytest.mark.parametrize("data", _malformed())
def test_malformed_bytes_are_invalid_argument(channel: grpc.Channel, data: bytes) -> None:
    assert not _native.decode_infer_request(data).complete
    code, details, _ = _call(channel, data)
    assert code is grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith("malformed request:"), details


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 200), st.binary(max_size=8))
def test_cut_and_spliced_requests_are_never_internal(channel: grpc.Channel, cut: int, junk: bytes) -> None:
    wine = _wine(1)
    data = wine[: cut % len(wine)] + junk
    code, details, _ = _call(channel, data)
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), details
    try:
        pb.ModelInferRequest.FromString(data)
    except Exception:
        assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("malformed request:"), details


def test_a_stream_answers_malformed_bytes_in_the_stream_and_goes_on(channel: grpc.Channel) -> None:
    stream = channel.stream_stream(MODEL_STREAM_INFER, request_serializer=None,
                                   response_deserializer=pb.ModelStreamInferResponse.FromString)  # fmt: skip
    responses = list(stream(iter([_malformed()[0], _wine(1), b"\x0a\x02\xff\xfe", _wine(3)]), timeout=60))
    errors = [response.error_message for response in responses if response.error_message]
    served = [response.infer_response for response in responses if not response.error_message]
    assert len(errors) == 2 and all(error.startswith("INVALID_ARGUMENT: malformed request:") for error in errors), errors
    assert sorted(len(response.raw_output_contents) > 0 for response in served) == [True, True]
