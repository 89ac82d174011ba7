"""Between inferd.v1's messages and the engine's values: the request's payload and parameters
in, the answer (already adapted by the engine: :func:`inferd.adapters.adapt_output`) out."""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError

from .. import _native
from .._proto import Blob, dtype_code, fill_tensor, struct_to_dict
from ..adapters import OutputKind, Payload
from ..errors import InvalidInput
from ..v1 import inference_pb2 as pb
from ..workflow import TensorSpec

__all__ = ["read_payload", "read_parameters", "write_output", "tensor_info"]


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


def write_output(kind: OutputKind, value: Any, into: pb.Payload) -> None:
    """Writes an adapted output into a response's payload, in place (no message is built and
    copied). ``none`` writes nothing."""
    if kind == "json":
        into.json = value
    elif kind == "tensors":
        tensors = into.tensors.tensors
        for name, array in ({"output": value} if isinstance(value, np.ndarray) else value).items():
            fill_tensor(tensors.add(), name, array)
    elif kind == "text":
        into.text = value
    elif kind == "blob":
        into.blob.data = value.data
        into.blob.content_type = value.content_type


def tensor_info(spec: TensorSpec) -> pb.TensorInfo:
    """A workflow's declared tensor as ``ListModels`` reports it."""
    info = pb.TensorInfo(name=spec.name)
    if spec.dtype is not None:
        info.dtype = dtype_code(spec.dtype)
    if spec.shape is None:
        info.any_shape = True
    else:
        info.shape.extend(-1 if size is None else size for size in spec.shape)
    return info
