"""Between the Open Inference Protocol's tensors and the engine's values.

In: a ``ModelInferRequest``'s inputs become one :class:`~inferd.adapters.Payload`. Tensors come
as ``raw_input_contents`` (one little-endian, row-major buffer per input, in order; read by the
Rust core into numpy) or as typed ``contents``, never both in one request. One BYTES input that
holds JSON (records for a tensor or records model) or text is handed on as JSON or text, so
that the model's own adapter reads it (docs/oip.md: the convention). Out: tensors go back
raw, one ``raw_output_contents`` entry per output; an answer that is not tensors (JSON, text,
a blob) is one BYTES element named ``output``. The response's bytes are written by the Rust
core where it can (:func:`write_response`), else by the generated message class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _native
from ..adapters import Payload
from ..errors import InvalidInput, TensorError
from ..oip import grpc_service_pb2 as oip
from ..workflow import Blob

__all__ = [
    "Request", "read_request", "selected", "write_outputs", "write_arrays", "write_response", "datatype", "datatype_of",
    "dtype_of", "write_parameters",
]  # fmt: skip

#: The protocol's datatypes and numpy's. BF16 has no numpy type: a BF16 input reaches the
#: model as float32 (exactly: bfloat16 is float32's upper half).
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),  # read as its bits, then widened
    "BYTES": np.dtype(object),
}  # fmt: skip
_NAMES = {dtype.str if dtype != np.dtype(object) else "O": name for name, dtype in DTYPES.items() if name != "BF16"}
_NAMES["|b1"] = "BOOL"
_NAMES["|u1"] = "UINT8"
_NAMES["|i1"] = "INT8"
#: Which typed ``contents`` field holds each datatype (FP16 and BF16 have none: raw only).
_CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip
#: Request parameters that belong to the protocol, not the model.
PROTOCOL_PARAMETERS = frozenset(
    {"triton_enable_empty_final_response", "sequence_id", "sequence_start", "sequence_end", "priority", "timeout",
     "binary_data_output", "headers"}
)  # fmt: skip
_JSON_TYPES = frozenset({"application/json", "json"})
_TEXT_TYPES = frozenset({"str", "text/plain", "text"})


@dataclass(slots=True)
class Request:
    """A ``ModelInferRequest`` read for the engine."""

    model: str
    version: str
    id: str
    payload: Payload
    parameters: dict[str, Any]
    #: The outputs asked for, by name (empty: all).
    outputs: list[str] = field(default_factory=list)
    #: ``triton_enable_empty_final_response``: a stream ends with an empty final response.
    empty_final: bool = False


#: The datatype of each little-endian (or native) numpy dtype: a dict lookup on the hot path.
_BY_DTYPE: dict[np.dtype[Any], str] = {np.dtype(code): name for code, name in _NAMES.items() if code != "O"}


def datatype(array: np.ndarray) -> str:
    """The protocol's datatype of an array: BYTES for strings, bytes and objects."""
    return _BY_DTYPE.get(array.dtype) or datatype_of(array.dtype)


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The protocol's datatype of a numpy dtype (:func:`datatype`)."""
    name = _BY_DTYPE.get(dtype)
    if name is not None:
        return name
    if dtype.kind in "OSU":
        return "BYTES"
    name = _NAMES.get(dtype.newbyteorder("<").str if dtype.byteorder == ">" else dtype.str)
    if name is None:
        raise TypeError(f"no Open Inference Protocol datatype for {dtype}")
    return name


def dtype_of(name: str) -> np.dtype[Any] | None:
    return DTYPES.get(name)


def parameter_value(parameter: oip.InferParameter) -> Any:
    which = parameter.WhichOneof("parameter_choice")
    return None if which is None else getattr(parameter, which)


def write_parameters(into: Any, values: Mapping[str, Any]) -> None:
    """Writes ``values`` into a protocol parameters map, in place: bools, integers (negative
    ones as int64), floats and strings; anything else as its string."""
    for key, value in values.items():
        parameter = into[key]
        if isinstance(value, (bool, np.bool_)):
            parameter.bool_param = bool(value)
        elif isinstance(value, (int, np.integer)):
            parameter.int64_param = int(value)
        elif isinstance(value, (float, np.floating)):
            parameter.double_param = float(value)
        else:
            parameter.string_param = str(value)


def _bytes_elements(data: bytes, name: str) -> list[bytes]:
    """A raw BYTES tensor's elements: each a 4-byte little-endian length, then its bytes."""
    elements, at = [], 0
    while at < len(data):
        if at + 4 > len(data):
            raise TensorError(f"tensor {name!r}: BYTES data ends inside an element's length", tensor=name)
        size = int.from_bytes(data[at : at + 4], "little")
        at += 4
        if at + size > len(data):
            raise TensorError(f"tensor {name!r}: a BYTES element of {size} bytes runs past the data", tensor=name)
        elements.append(data[at : at + size])
        at += size
    return elements


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _tensor(tensor: oip.ModelInferRequest.InferInputTensor, raw: bytes | None) -> np.ndarray:
    name = tensor.name
    dtype = DTYPES.get(tensor.datatype)
    if dtype is None:
        raise TensorError(
            f"tensor {name!r}: unknown datatype {tensor.datatype!r} (one of {', '.join(DTYPES)})", tensor=name
        )
    shape = tuple(tensor.shape)
    if min(shape, default=0) < 0:
        raise TensorError(f"tensor {name!r}: shape {list(shape)} has a negative size", tensor=name)
    count = _elements(shape)
    if raw is not None:
        if tensor.datatype == "BYTES":
            values: Any = _bytes_elements(raw, name)
            array = np.empty(len(values), dtype=object)
            array[:] = values
        else:
            if len(raw) != count * dtype.itemsize:
                raise TensorError(
                    f"tensor {name!r}: shape {list(shape)} of {tensor.datatype} needs {count * dtype.itemsize} bytes, "
                    f"raw_input_contents has {len(raw)}",
                    tensor=name,
                )
            if tensor.datatype == "BOOL":
                bits = np.frombuffer(raw, dtype=np.uint8)
                if bits.size and bits.max() > 1:
                    raise TensorError(f"tensor {name!r}: BOOL bytes must be 0 or 1", tensor=name)
            return _widen(np.frombuffer(raw, dtype=dtype).reshape(shape).copy(), tensor.datatype)
    else:
        where = _CONTENTS.get(tensor.datatype)
        if where is None:
            raise TensorError(f"tensor {name!r}: {tensor.datatype} travels only in raw_input_contents", tensor=name)
        values = getattr(tensor.contents, where)
        array = np.array(values, dtype=object if tensor.datatype == "BYTES" else dtype)
    if array.size != count:
        raise TensorError(
            f"tensor {name!r}: shape {list(shape)} needs {count} elements, got {array.size}", tensor=name
        )
    return array.reshape(shape)


def _widen(array: np.ndarray, name: str) -> np.ndarray:
    if name == "BF16":
        return (array.astype("<u4") << 16).view("<f4")
    return array


def _single_bytes(name: str, content_type: Any, array: np.ndarray, input_format: str) -> Payload | None:
    """One BYTES input as JSON or text for the model's own adapter, or None to send it as a
    tensor (docs/oip.md): ``content_type`` says which ("application/json" or "str"); without
    it (``content_type`` None), JSON for a tensor or records model, and for any other, JSON when it reads as a JSON
    object or array, else text."""
    elements = [bytes(item) if not isinstance(item, str) else item.encode() for item in array.reshape(-1)]
    if content_type is None:
        if input_format in ("tensor", "records"):
            content_type = "json"
        elif input_format == "passthrough" and elements and elements[0].lstrip()[:1] in (b"{", b"["):
            content_type = "json"
        elif input_format == "passthrough":
            content_type = "str"
    if content_type in _JSON_TYPES:
        if len(elements) == 1:
            return Payload("json", elements[0])
        return Payload("json", b"[" + b",".join(elements) + b"]")  # one record an element
    if content_type in _TEXT_TYPES:
        if len(elements) != 1:
            raise TensorError(f"tensor {name!r}: text takes one BYTES element, got {len(elements)}", tensor=name)
        try:
            return Payload("text", elements[0].decode())
        except UnicodeDecodeError as error:
            raise TensorError(f"tensor {name!r}: not UTF-8 text ({error.reason} at byte {error.start})", tensor=name) from None
    return None


def read_request(request: oip.ModelInferRequest | _native.OipRequest, input_format: str) -> Request:
    """A ``ModelInferRequest`` as the engine takes it; ``input_format``: the model's input
    adapter (tensor, records, passthrough). ``request`` is what the server's deserializer gave
    (``inferd.server.oip.read_infer_request``): the native core's reading, or, for what the core
    leaves to Python (typed contents, any fault), the message. Raises InvalidInput or
    TensorError, naming the tensor at fault."""
    if type(request) is _native.OipRequest:
        return _read_native(request, input_format)
    assert isinstance(request, oip.ModelInferRequest)
    inputs = request.inputs
    raw = request.raw_input_contents
    if not inputs:
        raise InvalidInput("the request has no inputs")
    if raw:
        typed = [tensor.name for tensor in inputs if tensor.HasField("contents") and tensor.contents.ByteSize()]
        if typed:
            raise TensorError(
                f"tensor {typed[0]!r}: typed contents in a request that uses raw_input_contents (one or the other)",
                tensor=typed[0],
            )
        if len(raw) != len(inputs):
            raise InvalidInput(f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs")
    tensors: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(inputs):
        if tensor.name in tensors:
            raise TensorError(f"tensor {tensor.name!r}: given twice", tensor=tensor.name)
        tensors[tensor.name] = _tensor(tensor, raw[index] if raw else None)
    payload: Payload | None = None
    if len(inputs) == 1 and inputs[0].datatype == "BYTES":
        first = inputs[0]
        content_type = parameter_value(first.parameters["content_type"]) if "content_type" in first.parameters else None
        payload = _single_bytes(first.name, content_type, tensors[first.name], input_format)
    parameters = {key: parameter_value(value) for key, value in request.parameters.items()}
    return _request(request, payload or Payload("tensors", tensors), parameters, [output.name for output in request.outputs])


def _read_native(request: _native.OipRequest, input_format: str) -> Request:
    """The native core's reading: its tensors are checked and built already (raw
    ``raw_input_contents``, every datatype; BF16 widened to float32), as :func:`_tensor` does."""
    tensors = request.tensors
    inputs = request.inputs
    payload: Payload | None = None
    if len(inputs) == 1 and inputs[0][1] == "BYTES":
        name, _, tensor_parameters = inputs[0]
        payload = _single_bytes(name, tensor_parameters.get("content_type"), tensors[name], input_format)
    return _request(request, payload or Payload("tensors", tensors), request.parameters, request.outputs)


def _request(
    request: oip.ModelInferRequest | _native.OipRequest, payload: Payload, parameters: dict[str, Any], outputs: list[str]
) -> Request:
    empty_final = bool(parameters.get("triton_enable_empty_final_response", False))
    model_parameters = {key: value for key, value in parameters.items() if key not in PROTOCOL_PARAMETERS}
    return Request(
        model=request.model_name,
        version=request.model_version,
        id=request.id,
        payload=payload,
        parameters=model_parameters,
        outputs=outputs,
        empty_final=empty_final,
    )


def _bytes_raw(array: np.ndarray) -> bytes:
    parts = []
    for item in array.reshape(-1):
        data = item.encode() if isinstance(item, str) else bytes(item)
        parts.append(len(data).to_bytes(4, "little"))
        parts.append(data)
    return b"".join(parts)


def _named(kind: str, output: Any, names: Iterable[str]) -> dict[str, np.ndarray]:
    """An answer as named arrays: tensors by their names (a lone array by the model's one
    declared output, else ``output``), anything else one BYTES element named ``output``."""
    if kind == "tensors":
        if isinstance(output, np.ndarray):
            declared = list(names)
            return {declared[0] if len(declared) == 1 else "output": output}
        return dict(output)
    if kind == "json" or kind == "text":
        data = output if isinstance(output, bytes) else str(output).encode()
    elif isinstance(output, Blob):
        data = output.data
    else:
        data = b""
    array = np.empty(1, dtype=object)
    array[0] = data
    return {"output": array}


def selected(kind: str, output: Any, wanted: list[str], declared: Iterable[str]) -> dict[str, Any]:
    """An adapted answer's tensors by name (:func:`_named`), only those asked for, in the order
    asked (``wanted``; empty: all). An output asked for that the answer lacks is
    INVALID_ARGUMENT."""
    arrays = _named(kind, output, declared)
    if wanted:
        missing = [name for name in wanted if name not in arrays]
        if missing:
            raise TensorError(
                f"output {missing[0]!r}: the model has no such output (it has {', '.join(arrays)})", tensor=missing[0]
            )
        arrays = {name: arrays[name] for name in wanted}
    return arrays


def write_outputs(response: oip.ModelInferResponse, kind: str, output: Any, wanted: list[str], declared: Iterable[str]) -> None:
    """Writes an adapted answer's tensors into ``response``, raw (:func:`selected` says which)."""
    write_arrays(response, selected(kind, output, wanted, declared))


def write_arrays(response: oip.ModelInferResponse, arrays: Mapping[str, Any]) -> None:
    """Writes named arrays into ``response``: one output and one ``raw_output_contents`` entry
    each (row-major, little-endian; BYTES elements each a 4-byte little-endian length first)."""
    for name, array in arrays.items():
        array = np.asarray(array)
        try:
            type_name = datatype(array)
        except TypeError as error:
            raise TensorError(f"output {name!r}: {error}", tensor=name) from None
        tensor = response.outputs.add()
        tensor.name = name
        tensor.datatype = type_name
        tensor.shape.extend(array.shape)
        if type_name == "BYTES":
            response.raw_output_contents.append(_bytes_raw(array))
        elif array.dtype.byteorder == ">":
            response.raw_output_contents.append(array.astype(array.dtype.newbyteorder("<")).tobytes())
        else:
            response.raw_output_contents.append(array.tobytes())  # (row-major, whatever its strides)


def write_response(
    model: str, version: str, id: str, arrays: dict[str, Any], parameters: Mapping[str, Any] | None, *, stream: bool = False
) -> bytes | oip.ModelInferResponse | oip.ModelStreamInferResponse:
    """A ``ModelInferResponse`` of named arrays and parameters (with ``stream``, the
    ``ModelStreamInferResponse`` that holds it): its bytes, written by the native core
    (``inferd._native.encode_infer_response``), or, for what the core leaves to Python (an
    array that is not a C-contiguous little-endian ndarray, BYTES elements that are not
    exactly str or bytes, a parameter of another type), the message :func:`write_arrays` and
    :func:`write_parameters` write, which parses to the same."""
    encoded = _native.encode_infer_response(model, version, id, arrays, parameters or None, stream)
    if encoded is not None:
        return encoded
    response = oip.ModelInferResponse(model_name=model, model_version=version, id=id)
    write_arrays(response, arrays)
    if parameters:
        write_parameters(response.parameters, parameters)
    return oip.ModelStreamInferResponse(infer_response=response) if stream else response
