"""The Inference service: proto messages to engine calls and back; no logic of its own.

``Infer`` and ``Stream`` receive their requests already read by the native core
(:data:`WIRE_CODECS`: ``inferd._native.decode_request`` as the request deserializer), and
``Infer`` answers with bytes that the core wrote when the answer is tensors or JSON
(``encode_response``, ``encode_json_response``): one native call each way instead of a dozen
reads and writes through the generated message classes. Everything else (text, blobs, audio
and its parameters, stream chunks) uses the messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from .. import _native
from .._proto import dict_to_struct
from ..engine import Chunk, Engine, ModelReport, ModelState, Result
from ..v1 import inference_pb2 as pb
from ..v1 import inference_pb2_grpc as pb_grpc
from .convert import read_parameters, read_payload, tensor_info, write_output
from .interceptors import Codecs

__all__ = ["InferenceServicer", "WIRE_CODECS"]

logger = logging.getLogger("inferd.server")

_STATES = {
    ModelState.DECLARED: pb.MODEL_STATE_DECLARED,
    ModelState.LOADING: pb.MODEL_STATE_LOADING,
    ModelState.READY: pb.MODEL_STATE_READY,
    ModelState.FAILED: pb.MODEL_STATE_FAILED,
}


def _deadline(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _fill(
    response: pb.InferResponse | pb.StreamResponse,
    result: Result | Chunk,
) -> None:
    """Writes an answer, its parameters and the stage timings into a response, in place."""
    write_output(result.kind, result.output, response.output)
    if result.parameters:
        response.parameters.CopyFrom(dict_to_struct(result.parameters))
    for stage, ms in result.timings:
        timing = response.timings.add()  # add() then set: cheaper than add(stage=..., ms=...)
        timing.stage = stage
        timing.ms = ms


def model_info(report: ModelReport) -> pb.ModelInfo:
    batching = report.batching
    stats = batching.stats if batching is not None else None
    return pb.ModelInfo(
        batching=None
        if batching is None or stats is None
        else pb.BatchingStats(
            max_batch_size=batching.max_batch_size,
            max_delay_ms=batching.max_delay_ms,
            batches=stats.batches,
            rows=stats.rows,
            sizes=dict(stats.sizes),
            releases=dict(stats.reasons),
            dropped=stats.dropped,
            refused=stats.refused,
            mean_queue_ms=batching.mean_queue_ms,
            max_queue_ms=stats.queue_ms_max,
            waiting=stats.waiting,
            running=stats.running,
        ),
        name=report.name,
        workflow=report.workflow,
        state=_STATES[report.state],
        reason=report.reason,
        input_format=report.input_format,
        streaming=report.streaming,
        unary=report.unary,
        setup_mode=report.setup_mode,
        description=report.description,
        stages=[
            pb.StageStats(stage=name, count=stat.count, mean_ms=stat.mean_ms, last_ms=stat.last_ms, max_ms=stat.max_ms)
            for name, stat in report.stages.items()
        ],
        inputs=[tensor_info(spec) for spec in report.inputs],
        outputs=[tensor_info(spec) for spec in report.outputs],
        requests=report.requests,
        nodes=[
            pb.GraphNode(name=node.name, kind=node.kind, target=node.target, inputs=node.inputs, map=node.map,
                         streams=node.streams, on_error=node.on_error, cases=node.cases)
            for node in report.nodes
        ],
    )


def _serialize(response: bytes | pb.InferResponse) -> bytes:
    """Infer's response serializer: bytes the native core wrote pass as they are."""
    if isinstance(response, bytes):
        return response
    serialized: bytes = response.SerializeToString()
    return serialized


#: Per method, the (request deserializer, response serializer) that replace the generated
#: message classes' (None: keep the generated one).
WIRE_CODECS: Codecs = {
    "Infer": (_native.decode_request, _serialize),
    "Stream": (_native.decode_request, None),
}


class InferenceServicer(pb_grpc.InferenceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def Setup(self, request: pb.SetupRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.SetupResponse:
        report = await self._engine.setup(request.model)
        return pb.SetupResponse(model=report.name, state=_STATES[report.state], setup_ms=report.setup_ms)

    async def Infer(  # type: ignore[override]  # takes the native Request, may answer bytes
        self, request: _native.Request, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.InferResponse | bytes:
        payload = read_payload(request)
        parameters = read_parameters(request)
        result = await self._engine.infer(request.model, payload, parameters, deadline=_deadline(context))
        if result.kind == "json":
            return _native.encode_json_response(request.model, request.id, result.output, result.timings)
        if result.kind == "tensors":
            encoded = _native.encode_response(request.model, request.id, result.output, result.timings)
            if encoded is not None:
                return encoded
        response = pb.InferResponse(model=request.model, id=request.id)
        _fill(response, result)
        return response

    async def Stream(  # type: ignore[override]  # takes the native Request
        self, request: _native.Request, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamResponse]:
        payload = read_payload(request)
        chunks = self._engine.stream(
            request.model, payload, read_parameters(request), deadline=_deadline(context)
        )
        index = 0
        async for chunk in chunks:
            response = pb.StreamResponse(model=request.model, id=request.id, index=index, final=chunk.final)
            _fill(response, chunk)
            yield response
            index += 1

    async def Load(self, request: pb.LoadRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.SetupResponse:
        report = await self._engine.load(request.model)
        return pb.SetupResponse(model=report.name, state=_STATES[report.state], setup_ms=report.setup_ms)

    async def Unload(self, request: pb.UnloadRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.UnloadResponse:
        report = await self._engine.unload(request.model)
        return pb.UnloadResponse(model=report.name, state=_STATES[report.state])

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[model_info(report) for report in self._engine.describe()])
