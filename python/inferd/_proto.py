"""inferd's values on the wire, for the client and the server alike: the one dtype table,
numpy arrays <-> ``Tensor`` messages, ``Struct`` <-> dict, and :class:`Blob`.

Nothing here knows the engine, the configuration or the server; the client imports this and
the generated code only. (The server reads request tensors natively, in ``inferd._native``;
this is the message path: the client's, and the server's answers that the native writer
does not cover.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import struct_pb2

from .errors import InternalError, TensorError
from .v1 import inference_pb2 as pb

__all__ = [
    "Blob",
    "DTYPES",
    "MAX_DIMS",
    "dtype_code",
    "dtype_name",
    "dict_to_struct",
    "fill_tensor",
    "numpy_to_tensor",
    "struct_to_dict",
    "tensor_to_numpy",
]


@dataclass(frozen=True, slots=True)
class Blob:
    """Binary data (an image, a document) with its media type."""

    data: bytes
    content_type: str = ""


#: proto DataType <-> numpy dtype (always little-endian, as the wire format says); strings
#: (``DATA_TYPE_STRING``) are numpy object arrays of ``str``.
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

#: numpy's limit on an array's dimensions (NPY_MAXDIMS, numpy 2).
MAX_DIMS = 64


def dtype_code(dtype: np.dtype[Any]) -> pb.DataType.ValueType:
    """The wire's code for a numpy dtype (any byte order); UNSPECIFIED where it has none."""
    if dtype.kind in "OUS":
        return pb.DATA_TYPE_STRING
    return _BY_KIND.get((dtype.kind, dtype.itemsize), pb.DATA_TYPE_UNSPECIFIED)


def dtype_name(code: pb.DataType.ValueType) -> str | None:
    """A wire dtype's name as numpy spells it ("float32"; "string"); None for unset ones."""
    if code == pb.DATA_TYPE_STRING:
        return "string"
    dtype = DTYPES.get(code)
    return None if dtype is None else dtype.name


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


def tensor_to_numpy(tensor: pb.Tensor) -> np.ndarray:
    """A tensor message as a read-only numpy array over its bytes, checked against its shape."""
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
    if dtype.kind == "b":  # any nonzero byte is true; numpy's bool must hold 0 or 1 only
        flags: np.ndarray = np.frombuffer(data, dtype=np.uint8) != 0
        return flags.reshape(shape)
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def fill_tensor(tensor: pb.Tensor, name: str, array: np.ndarray) -> None:
    """Writes a numpy array into a tensor message in place (little-endian, C order)."""
    code = dtype_code(array.dtype)
    if code == pb.DATA_TYPE_STRING:
        items = array.reshape(-1).tolist()
        if array.dtype.kind == "O" and not all(isinstance(item, str) for item in items):
            raise InternalError(f"output {name!r} holds objects that are not strings; ask for JSON")
        data = _encode_strings(items)
    elif code == pb.DATA_TYPE_UNSPECIFIED:
        raise InternalError(f"output {name!r} has dtype {array.dtype}, which has no tensor encoding; ask for JSON")
    else:
        wanted = DTYPES[code]
        if array.dtype != wanted or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array, dtype=wanted)
        data = array.tobytes()
    tensor.name = name
    tensor.dtype = code
    tensor.shape.extend(array.shape)
    tensor.data = data


def numpy_to_tensor(name: str, array: np.ndarray) -> pb.Tensor:
    """A numpy array as a tensor message (little-endian, C order)."""
    tensor = pb.Tensor()
    fill_tensor(tensor, name, array)
    return tensor


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A ``Struct`` as a plain dict (whole numbers become ints; infinities stay floats, which
    ``json_format`` refuses)."""
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
