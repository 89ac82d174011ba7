"""What the clients send and receive: Python values <-> inferd.v1's request and answer
messages, the result types, and the inferd error of a failed call. Shared by
:class:`~inferd.client.Client` and :class:`~inferd.client.AsyncClient`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import orjson
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from .._proto import Blob, dict_to_struct, dtype_name, numpy_to_tensor, struct_to_dict, tensor_to_numpy
from ..errors import InferdError, error_from_status
from ..v1 import inference_pb2 as pb

__all__ = ["JsonBytes", "InferResult", "StreamChunk", "ModelInfo", "encode_input", "decode_output"]


class JsonBytes(bytes):
    """UTF-8 JSON to send as it is (no parsing and re-encoding on the client)."""


@dataclass(frozen=True)
class InferResult:
    """The answer to one Infer call."""

    model: str
    id: str
    output: Any
    #: Metadata the model reported about its output (e.g. ``sample_rate``).
    parameters: dict[str, Any]
    #: Milliseconds per stage, in the order they ran, ending with "total".
    timings: dict[str, float]


@dataclass(frozen=True)
class StreamChunk:
    """One message of a Stream call; the last has ``final`` set and carries the timings."""

    index: int
    output: Any
    parameters: dict[str, Any]
    final: bool
    timings: dict[str, float] = field(default_factory=dict)
    #: The request's id, echoed.
    id: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """What the server reports about one model (see ``ListModels``)."""

    name: str
    workflow: str
    state: str
    reason: str
    input_format: str
    streaming: bool
    unary: bool
    setup_mode: str
    description: str
    #: stage -> {"count", "mean_ms", "last_ms", "max_ms"}
    stages: dict[str, dict[str, float]]
    #: the batcher's statistics (see BatchingStats in the proto); None when batching is off
    batching: dict[str, Any] | None = None
    #: the tensors the model's run takes and gives, where its workflow declares them (once set
    #: up): {"name", "dtype" ("float32", "string", ...; None: any), "shape" (a list with None
    #: for any size along an axis; None instead of a list: any shape)}
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    #: calls naming the model by final status code ("OK", "CANCELLED", ...); empty when the
    #: server's metrics are off
    requests: dict[str, int] = field(default_factory=dict)
    #: a graph's nodes: {"name", "kind" (model, function, switch, join), "target", "inputs",
    #: "map", "streams", "on_error", "cases"}; their timings are the stages "node:NAME"
    nodes: list[dict[str, Any]] = field(default_factory=list)


# -- conversions -------------------------------------------------------------------------


def encode_input(inputs: Any) -> pb.Payload:
    """A Python value as a request payload (see the module's docstring for the rules)."""
    if isinstance(inputs, JsonBytes):
        return pb.Payload(json=bytes(inputs))
    if isinstance(inputs, str):
        return pb.Payload(text=inputs)
    if isinstance(inputs, Blob):
        return pb.Payload(blob=pb.Blob(data=inputs.data, content_type=inputs.content_type))
    if isinstance(inputs, (bytes, bytearray, memoryview)):
        return pb.Payload(blob=pb.Blob(data=bytes(inputs)))
    if isinstance(inputs, np.ndarray):
        inputs = {"input": inputs}
    if isinstance(inputs, Mapping) and inputs and all(isinstance(v, np.ndarray) for v in inputs.values()):
        tensors = [numpy_to_tensor(str(name), array) for name, array in inputs.items()]
        return pb.Payload(tensors=pb.Tensors(tensors=tensors))
    return pb.Payload(json=orjson.dumps(inputs, option=orjson.OPT_SERIALIZE_NUMPY))


def decode_output(payload: pb.Payload) -> Any:
    kind = payload.WhichOneof("kind")
    if kind == "json":
        return orjson.loads(payload.json)
    if kind == "tensors":
        return {tensor.name: tensor_to_numpy(tensor) for tensor in payload.tensors.tensors}
    if kind == "text":
        return payload.text
    if kind == "blob":
        return Blob(payload.blob.data, payload.blob.content_type)
    return None


def _timings(timings: Sequence[pb.StageTiming]) -> dict[str, float]:
    return {timing.stage: timing.ms for timing in timings}


def request(model: str, inputs: Any, parameters: Mapping[str, Any] | None, request_id: str) -> pb.InferRequest:
    return pb.InferRequest(
        model=model, id=request_id, input=encode_input(inputs), parameters=dict_to_struct(parameters or {})
    )


def infer_result(response: pb.InferResponse) -> InferResult:
    return InferResult(
        model=response.model,
        id=response.id,
        output=decode_output(response.output),
        parameters=struct_to_dict(response.parameters),
        timings=_timings(response.timings),
    )


def chunk(response: pb.StreamResponse) -> StreamChunk:
    return StreamChunk(
        index=response.index,
        output=decode_output(response.output) if response.HasField("output") else None,
        parameters=struct_to_dict(response.parameters),
        final=response.final,
        timings=_timings(response.timings),
        id=response.id,
    )


_STATE_NAMES = {value: name.removeprefix("MODEL_STATE_").lower() for name, value in pb.ModelState.items()}


def model_info(info: pb.ModelInfo) -> ModelInfo:
    return ModelInfo(
        name=info.name,
        workflow=info.workflow,
        state=_STATE_NAMES.get(info.state, "unspecified"),
        reason=info.reason,
        input_format=info.input_format,
        streaming=info.streaming,
        unary=info.unary,
        setup_mode=info.setup_mode,
        description=info.description,
        stages={
            stage.stage: {"count": stage.count, "mean_ms": stage.mean_ms, "last_ms": stage.last_ms, "max_ms": stage.max_ms}
            for stage in info.stages
        },
        batching=json_format.MessageToDict(info.batching, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        if info.HasField("batching")
        else None,
        inputs=[_tensor_info(tensor) for tensor in info.inputs],
        outputs=[_tensor_info(tensor) for tensor in info.outputs],
        requests=dict(info.requests),
        nodes=[
            {"name": node.name, "kind": node.kind, "target": node.target, "inputs": list(node.inputs), "map": node.map,
             "streams": node.streams, "on_error": node.on_error, "cases": dict(node.cases)}
            for node in info.nodes
        ],
    )


def _tensor_info(tensor: pb.TensorInfo) -> dict[str, Any]:
    dtype = dtype_name(tensor.dtype)
    shape = None if tensor.any_shape else [None if size < 0 else size for size in tensor.shape]
    return {"name": tensor.name, "dtype": dtype, "shape": shape}


def error(error: grpc.RpcError) -> InferdError:
    """The inferd error for a failed call: the class the server raised, with the details it
    attached (see :func:`inferd.errors.error_from_status`)."""
    call: Any = error  # the RpcError of a call is also a grpc.Call
    code: grpc.StatusCode = call.code()
    message: str = call.details() or code.name
    trailers: dict[str, Any] = dict(call.trailing_metadata() or ())
    name = ""
    details: dict[str, str] = {}
    raw = trailers.get("grpc-status-details-bin")
    if isinstance(raw, bytes):
        status = status_pb2.Status.FromString(raw)
        for item in status.details:
            if item.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                item.Unpack(info)
                details.update(info.metadata)
                if info.domain == "inferd":
                    name = info.reason
                details.setdefault("reason", info.reason)
    trace = trailers.get("trace-id")  # the server's trace of the call, with tracing on
    if isinstance(trace, str):
        details["trace_id"] = trace
    retry = trailers.get("retry-after-ms")
    if isinstance(retry, str):
        details["retry_after_ms"] = retry
    result = error_from_status(code.name, message, name, details)
    result.details["status"] = code.name
    return result
