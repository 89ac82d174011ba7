"""Conversions between proto messages and inferd's own values (numpy, text, JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError

from .. import _native
from ..adapters import Payload
from ..errors import InternalError, InvalidInput, TensorError
from ..v1 import inference_pb2 as pb
from ..workflow import Audio, Blob, TensorSpec

__all__ = [
    "read_payload",
    "read_parameters",
    "encode_output",
    "json_answer",
    "fill_tensor",
    "tensor_to_numpy",
    "numpy_to_tensor",
    "struct_to_dict",
    "dict_to_struct",
]

#: proto DataType <-> numpy dtype (always little-endian, as the wire format says).
DTYPES: dict[pb.DataType.ValueType, np.dtype[Any]] = {
    pb.DATA_TYPE_BOOL: np.dtype("?"),
    pb.DATA_TYPE_INT8: np.dtype("<i1"),
    pb.DATA_TYPE_INT16: np.dtype("<i2"),
    pb.DATA_TYPE_INT32: np.dtype("<i4"),
    pb.DATA_TYPE_INT64: np.dtype("<i8"),
    pb.DATA_TYPE_UINT8: np.dtype("<u1"),
    pb.DATA_TYPE_UINT16: np.dtype("<u2"),
    pb.DATA_TYPE_UINT32: np.dtype("<u4"),
    pb.DATA_TYPE_UINT64: np.dtype("<u8"),
    pb.DATA_TYPE_FLOAT16: np.dtype("<f2"),
    pb.DATA_TYPE_FLOAT32: np.dtype("<f4"),
    pb.DATA_TYPE_FLOAT64: np.dtype("<f8"),
}
_BY_KIND: dict[tuple[str, int], pb.DataType.ValueType] = {(dtype.kind, dtype.itemsize): code for code, dtype in DTYPES.items()}


def _decode_strings(name: str, data: bytes, count: int) -> list[str]:
    strings: list[str] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(data):
            raise TensorError(f"tensor {name!r}: string data ends after {len(strings)} of {count} elements", tensor=name)
        length = int.from_bytes(data[offset : offset + 4], "little")
        offset += 4
        if offset + length > len(data):
            raise TensorError(f"tensor {name!r}: string element {len(strings)} runs past the data", tensor=name)
        try:
            strings.append(data[offset : offset + length].decode())
        except UnicodeDecodeError:
            raise TensorError(f"tensor {name!r}: string element {len(strings)} is not UTF-8", tensor=name) from None
        offset += length
    if offset != len(data):
        raise TensorError(f"tensor {name!r}: {len(data) - offset} bytes left after {count} strings", tensor=name)
    return strings


def _encode_strings(items: list[Any]) -> bytes:
    parts = []
    for item in items:
        encoded = str(item).encode()
        parts.append(len(encoded).to_bytes(4, "little"))
        parts.append(encoded)
    return b"".join(parts)

#: numpy's limit on an array's dimensions (NPY_MAXDIMS, numpy 2).
MAX_DIMS = 64


def tensor_to_numpy(tensor: pb.Tensor) -> np.ndarray:
    """A request tensor as a read-only numpy array over the message's bytes, checked against
    its shape."""
    name = tensor.name
    shape = tuple(tensor.shape)
    if len(shape) > MAX_DIMS:
        raise TensorError(
            f"tensor {name!r}: shape has {len(shape)} dimensions, at most {MAX_DIMS} are allowed", tensor=name
        )
    count = 1
    for size in shape:
        if size < 0:
            raise TensorError(f"tensor {name!r}: negative size in shape {list(shape)}", tensor=name)
        count *= size
    data = tensor.data  # each read of a bytes field makes a new object: read it once
    dtype = DTYPES.get(tensor.dtype)
    if dtype is None:
        if tensor.dtype == pb.DATA_TYPE_STRING:
            return np.array(_decode_strings(name, data, count), dtype=object).reshape(shape)
        raise TensorError(f"tensor {name!r}: dtype is unset or unknown ({tensor.dtype})", tensor=name)
    if len(data) != count * dtype.itemsize:
        raise TensorError(
            f"tensor {name!r}: shape {list(shape)} of {dtype.name} needs {count * dtype.itemsize} bytes, "
            f"got {len(data)}",
            tensor=name,
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def tensor_info(spec: TensorSpec) -> pb.TensorInfo:
    """A workflow's declared tensor as ``ListModels`` reports it."""
    info = pb.TensorInfo(name=spec.name)
    if spec.dtype is not None:
        kind = spec.dtype.kind
        info.dtype = pb.DATA_TYPE_STRING if kind in "OUS" else _BY_KIND.get((kind, spec.dtype.itemsize), pb.DATA_TYPE_UNSPECIFIED)
    if spec.shape is None:
        info.any_shape = True
    else:
        info.shape.extend(-1 if size is None else size for size in spec.shape)
    return info


def fill_tensor(tensor: pb.Tensor, name: str, array: np.ndarray) -> None:
    """Writes a numpy array into a proto tensor in place (little-endian, C order)."""
    kind = array.dtype.kind
    if kind in "OUS":
        items = array.reshape(-1).tolist()
        if kind == "O" and not all(isinstance(item, str) for item in items):
            raise InternalError(f"output {name!r} holds objects that are not strings; ask for JSON")
        data = _encode_strings(items)
        code: pb.DataType.ValueType = pb.DATA_TYPE_STRING
    else:
        found = _BY_KIND.get((kind, array.dtype.itemsize))
        if found is None:
            raise InternalError(
                f"output {name!r} has dtype {array.dtype}, which has no tensor encoding; ask for JSON"
            )
        code = found
        wanted = DTYPES[code]
        if array.dtype != wanted or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array, dtype=wanted)
        data = array.tobytes()
    tensor.name = name
    tensor.dtype = code
    tensor.shape.extend(array.shape)
    tensor.data = data


def numpy_to_tensor(name: str, array: np.ndarray) -> pb.Tensor:
    """A numpy array as a proto tensor (little-endian, C order)."""
    tensor = pb.Tensor()
    fill_tensor(tensor, name, array)
    return tensor


def read_payload(request: _native.Request) -> Payload:
    """A request's payload as the engine takes it, from the native reader of ``InferRequest``
    (:func:`inferd._native.decode_request`, the server's request deserializer). Raises what made
    the request unservable: InvalidInput for a malformed one or one without input, TensorError
    for a tensor whose dtype, shape and data disagree."""
    kind, value = request.payload()
    return Payload(kind, Blob(*value) if kind == "blob" else value)  # type: ignore[arg-type]


def read_parameters(request: _native.Request) -> dict[str, Any]:
    """A natively read request's parameters as a plain dict."""
    raw = request.parameters
    if raw is None:
        return {}
    try:
        struct = struct_pb2.Struct.FromString(raw)
    except DecodeError as error:
        raise InvalidInput(f"malformed request: its parameters are not a google.protobuf.Struct ({error})") from None
    return struct_to_dict(struct)


def _is_tensors(output: Any) -> bool:
    return isinstance(output, np.ndarray) or (
        isinstance(output, Mapping)
        and bool(output)
        and all(isinstance(value, np.ndarray) for value in output.values())
    )


def _records(tensors: Mapping[str, np.ndarray]) -> list[dict[str, Any]] | dict[str, Any]:
    """Tensors with one leading (batch) size as one JSON record a row, else by name."""
    sizes = {value.shape[0] if value.ndim else None for value in tensors.values()}
    columns = {name: value.tolist() for name, value in tensors.items()}
    if len(sizes) != 1 or None in sizes:
        return columns
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def _json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as error:
        raise InternalError(f"the model's output cannot be encoded as JSON: {error}") from error


def json_answer(output: Any) -> bytes | None:
    """The JSON that answers a JSON request with ``output``: tensors as JSON records (one per
    row), anything else as JSON; None for an output that keeps a kind of its own (text, bytes,
    blobs, audio) and for None."""
    if output is None or isinstance(output, (str, bytes, bytearray, memoryview, Blob, Audio)):
        return None
    if isinstance(output, np.ndarray):
        return _json(output)
    if _is_tensors(output):
        return _json(_records(output))
    return _json(output)


def encode_output(output: Any, request_kind: str, into: pb.Payload) -> dict[str, Any]:
    """Writes a model's output into ``into`` (a response's payload, in place: no message is
    built and copied) and returns metadata for the response's parameters. ``None`` writes
    nothing.

    Tensors answer a JSON request as JSON records (one per row, :func:`json_answer`) and any
    other request as tensors; text, bytes, blobs and audio keep their kind; anything else
    becomes JSON.
    """
    if request_kind == "json":
        answer = json_answer(output)
        if answer is not None:
            into.json = answer
            return {}
    if output is None:
        return {}
    if isinstance(output, np.ndarray):
        fill_tensor(into.tensors.tensors.add(), "output", output)
        return {}
    if _is_tensors(output):
        tensors = into.tensors.tensors
        for name, array in output.items():
            fill_tensor(tensors.add(), name, array)
        return {}
    if isinstance(output, Audio):
        into.blob.data = output.data
        into.blob.content_type = output.content_type
        return {"sample_rate": output.sample_rate}
    if isinstance(output, Blob):
        into.blob.data = output.data
        into.blob.content_type = output.content_type
        return {}
    if isinstance(output, (bytes, bytearray, memoryview)):
        into.blob.data = bytes(output)
        into.blob.content_type = "application/octet-stream"
        return {}
    if isinstance(output, str):
        into.text = output
        return {}
    into.json = _json(output)
    return {}


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Request parameters as a plain dict (whole numbers become ints; infinities stay floats,
    which ``json_format`` refuses)."""
    return {key: _from_value(value) for key, value in struct.fields.items()}


def _from_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        # Struct carries every number as a double; 3.0 meant 3.
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_from_value(item) for item in value.list_value.values]
    return None  # null_value, or unset


def dict_to_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if values:
        struct.update(dict(values))
    return struct
