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
from ..batching import BatchStats
from ..engine import Engine
from ..repository import ModelEntry, ModelState
from ..v1 import inference_pb2 as pb
from ..v1 import inference_pb2_grpc as pb_grpc
from .convert import dict_to_struct, encode_output, json_answer, read_parameters, read_payload, tensor_info
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
    response: pb.InferResponse | pb.StreamResponse, output: Any, kind: str, timings: Sequence[tuple[str, float]]
) -> None:
    """Writes an output, its parameters and the stage timings into a response, in place."""
    parameters = encode_output(output, kind, response.output)
    if parameters:
        response.parameters.CopyFrom(dict_to_struct(parameters))
    for stage, ms in timings:
        timing = response.timings.add()  # add() then set: cheaper than add(stage=..., ms=...)
        timing.stage = stage
        timing.ms = ms


def batching_stats(entry: ModelEntry) -> pb.BatchingStats | None:
    config = entry.config.batching
    if config is None:
        return None
    stats = entry.batcher.stats if entry.batcher is not None else BatchStats()
    taken = stats.queued_requests - stats.dropped
    return pb.BatchingStats(
        max_batch_size=config.max_batch_size,
        max_delay_ms=config.max_delay_ms,
        batches=stats.batches,
        rows=stats.rows,
        sizes=dict(stats.sizes),
        releases=dict(stats.reasons),
        dropped=stats.dropped,
        refused=stats.refused,
        mean_queue_ms=stats.queue_ms_total / taken if taken > 0 else 0.0,
        max_queue_ms=stats.queue_ms_max,
        waiting=stats.waiting,
        running=stats.running,
    )


def _signature(entry: ModelEntry) -> tuple[list[pb.TensorInfo], list[pb.TensorInfo]]:
    """The tensors a set-up model's workflow declares (none before setup)."""
    if entry.workflow is None or entry.state is not ModelState.READY:
        return [], []
    try:
        inputs, outputs = entry.workflow.signature()
        return [tensor_info(spec) for spec in inputs], [tensor_info(spec) for spec in outputs]
    except Exception:  # a workflow's own signature() failing must not fail ListModels
        logger.warning("model %s: signature() failed", entry.name, exc_info=True)
        return [], []


def model_info(entry: ModelEntry) -> pb.ModelInfo:
    spec = entry.spec
    inputs, outputs = _signature(entry)
    return pb.ModelInfo(
        batching=batching_stats(entry),
        name=entry.name,
        workflow=entry.workflow_name,
        state=_STATES[entry.state],
        reason=entry.reason,
        input_format=entry.config.input.format,
        streaming=spec.streaming if spec else False,
        unary=spec.unary if spec else False,
        setup_mode=entry.config.setup,
        description=entry.config.description,
        stages=[
            pb.StageStats(stage=name, count=stat.count, mean_ms=stat.mean_ms, last_ms=stat.last_ms, max_ms=stat.max_ms)
            for name, stat in entry.stats.snapshot().items()
        ],
        inputs=inputs,
        outputs=outputs,
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
        entry = await self._engine.setup(request.model)
        return pb.SetupResponse(model=entry.name, state=_STATES[entry.state], setup_ms=entry.setup_ms)

    async def Infer(  # type: ignore[override]  # takes the native Request, may answer bytes
        self, request: _native.Request, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.InferResponse | bytes:
        payload = read_payload(request)
        parameters = read_parameters(request)
        deadline = _deadline(context)
        result = self._engine.infer_now(request.model, payload, parameters, deadline=deadline)
        if result is None:
            result = await self._engine.infer(request.model, payload, parameters, deadline=deadline)
        if payload.kind == "json":
            answer = json_answer(result.output)
            if answer is not None:
                return _native.encode_json_response(request.model, request.id, answer, result.timings)
        else:
            encoded = _native.encode_response(request.model, request.id, result.output, result.timings)
            if encoded is not None:
                return encoded
        response = pb.InferResponse(model=request.model, id=request.id)
        _fill(response, result.output, payload.kind, result.timings)
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
            _fill(response, chunk.output, payload.kind, chunk.timings)
            yield response
            index += 1

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[model_info(entry) for entry in self._engine.models()])
