"""The Open Inference Protocol (``inference.GRPCInferenceService``, KServe v2 and Triton's gRPC
API) over the same engine as inferd.v1: messages to engine calls and back.

``ModelInfer`` and ``ModelStreamInfer`` receive their requests read by the native core
(:data:`OIP_CODECS`: :func:`read_infer_request`, ``inferd._native.decode_infer_request``,
tensors straight into numpy), as inferd.v1's Infer does; a request the core leaves to Python
(typed ``contents``, or any fault) is read with the generated message class instead, so that
its answer is the same either way. Their responses are written by the core too
(``oip_tensors.write_response``: bytes, which :func:`serialize_response` passes on as they
are), or, for what it leaves to Python, by the message class.

A model without versions is served as version "1"; a versioned one (inferd.versions) as each
version its policy serves, and a request that names no version gets its latest ready one (the
model-management RPCs load and unload declared models). Errors are the engine's, mapped to status codes by the interceptor; in
ModelStreamInfer an error is answered in the stream (``error_message``) and the stream goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from .. import __version__, _native
from ..engine import Engine, ModelReport, ModelState
from ..errors import InferdError, ModelNotFound, Unimplemented
from ..oip import grpc_service_pb2 as oip
from ..oip import grpc_service_pb2_grpc as oip_grpc
from ..oip import model_config_pb2 as mc
from .interceptors import Codecs, Refused, tolerant
from ..versions import SOLE_VERSION, split
from .oip_tensors import DTYPES, datatype_of, read_request, selected, write_response

__all__ = ["OipServicer", "SERVICE_NAME", "EXTENSIONS", "OIP_CODECS", "read_infer_request", "serialize_response"]

SERVICE_NAME = oip.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
#: The protocol extensions inferd implements (ServerMetadata lists them).
EXTENSIONS = ["model_repository", "model_configuration", "statistics", "parameters", "schedule_policy"]
VERSION = SOLE_VERSION
_INFERENCE_RPCS = frozenset({"Infer", "Stream", "ModelInfer", "ModelStreamInfer"})
_PLATFORMS = {"onnx": "onnxruntime_onnx", "torch": "pytorch_libtorch"}
_CONFIG_TYPES = {name: getattr(mc, f"TYPE_{'STRING' if name == 'BYTES' else name}") for name in DTYPES}
_REPOSITORY_STATES = {
    ModelState.DECLARED: "UNAVAILABLE", ModelState.LOADING: "LOADING",
    ModelState.READY: "READY", ModelState.FAILED: "UNAVAILABLE",
}  # fmt: skip


#: What ModelInfer and ModelStreamInfer receive: the native core's reading, or the message.
InferRequest = _native.OipRequest | oip.ModelInferRequest
#: What they answer: the native core's bytes, or the message (ModelStreamInfer's: the stream's).
Response = bytes | oip.ModelInferResponse | oip.ModelStreamInferResponse

_read_message = tolerant(oip.ModelInferRequest.FromString)


def read_infer_request(data: bytes) -> Any:
    """ModelInfer's and ModelStreamInfer's request deserializer: the native core's reading of
    the bytes, or, when the core leaves the request to Python, the generated message (or what
    the server answers INVALID_ARGUMENT for bytes it cannot read, as for every method)."""
    request = _native.decode_infer_request(data)
    if request.complete:
        return request
    return _read_message(data)


def serialize_response(response: Response) -> bytes:
    """ModelInfer's and ModelStreamInfer's response serializer: bytes the native core wrote
    pass as they are; a message (the Python writer's, a stream's error) is serialized."""
    if isinstance(response, bytes):
        return response
    serialized: bytes = response.SerializeToString()
    return serialized


#: Per method, the (request deserializer, response serializer) that replace the generated
#: message classes' (None: keep the generated one); registered by ``server/app.py``.
OIP_CODECS: Codecs = {
    "ModelInfer": (read_infer_request, serialize_response),
    "ModelStreamInfer": (read_infer_request, serialize_response),
}


def _deadline(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def platform(report: ModelReport) -> str:
    return _PLATFORMS.get(report.workflow, f"inferd_{report.workflow}")


def _tensors(specs: list[Any], default: str) -> list[tuple[str, str, list[int]]]:
    """(name, datatype, shape) of declared tensors; a model that declares none takes (or
    gives) one BYTES element, JSON or text (docs/oip.md)."""
    if not specs:
        return [(default, "BYTES", [-1])]
    out = []
    for spec in specs:
        name = "BYTES" if spec.dtype is None else datatype_of(spec.dtype)
        shape = [-1] if spec.shape is None else [-1 if size is None else size for size in spec.shape]
        out.append((spec.name, name, shape))
    return out


class OipServicer(oip_grpc.GRPCInferenceServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._versions = engine.repository.versions

    def _served(self, name: str, version: str) -> tuple[str, str]:
        """The served model a (name, version) names, and its version: a versioned model's
        latest ready one where the version is left out; version "1" of any other (NOT_FOUND:
        the repository's)."""
        served = self._engine.repository.get(name, version).name
        return served, split(served, self._versions)[1] or VERSION

    def _report(self, name: str, version: str = "") -> ModelReport:
        return self._engine.report(self._served(name, version)[0])

    def _named(self, report: ModelReport) -> tuple[str, str]:
        """(model, version) of a served model, as the protocol names them."""
        name, version = split(report.name, self._versions)
        return name, version or VERSION

    # -- health and metadata ------------------------------------------------------------

    async def ServerLive(self, request: oip.ServerLiveRequest, context: Any) -> oip.ServerLiveResponse:
        return oip.ServerLiveResponse(live=True)

    async def ServerReady(self, request: oip.ServerReadyRequest, context: Any) -> oip.ServerReadyResponse:
        return oip.ServerReadyResponse(ready=self._engine.eager_ready())

    async def ModelReady(self, request: oip.ModelReadyRequest, context: Any) -> oip.ModelReadyResponse:
        try:
            report = self._report(request.name, request.version)
        except ModelNotFound:
            return oip.ModelReadyResponse(ready=False)
        return oip.ModelReadyResponse(ready=report.state is ModelState.READY)

    async def ServerMetadata(self, request: oip.ServerMetadataRequest, context: Any) -> oip.ServerMetadataResponse:
        return oip.ServerMetadataResponse(name="inferd", version=__version__, extensions=EXTENSIONS)

    async def ModelMetadata(self, request: oip.ModelMetadataRequest, context: Any) -> oip.ModelMetadataResponse:
        report = self._report(request.name, request.version)
        tensor = oip.ModelMetadataResponse.TensorMetadata
        name = self._named(report)[0]
        versions = [split(served, self._versions)[1] for served in self._versions.get(name, ())] or [VERSION]
        return oip.ModelMetadataResponse(
            name=name,
            versions=versions,
            platform=platform(report),
            inputs=[tensor(name=n, datatype=d, shape=s) for n, d, s in _tensors(report.inputs, "input")],
            outputs=[tensor(name=n, datatype=d, shape=s) for n, d, s in _tensors(report.outputs, "output")],
        )

    async def ModelConfig(self, request: oip.ModelConfigRequest, context: Any) -> oip.ModelConfigResponse:
        report = self._report(request.name, request.version)
        batching = report.batching
        max_batch = batching.max_batch_size if batching is not None else 0

        def dims(shape: list[int]) -> list[int]:
            return shape[1:] if max_batch and shape else shape  # Triton's dims leave out the batch

        config = mc.ModelConfig(
            name=self._named(report)[0],
            platform=platform(report),
            backend="inferd",
            max_batch_size=max_batch,
            input=[mc.ModelInput(name=n, data_type=_CONFIG_TYPES[d], dims=dims(s)) for n, d, s in _tensors(report.inputs, "input")],
            output=[mc.ModelOutput(name=n, data_type=_CONFIG_TYPES[d], dims=dims(s)) for n, d, s in _tensors(report.outputs, "output")],
            model_transaction_policy=mc.ModelTransactionPolicy(decoupled=report.streaming),
        )  # fmt: skip
        if batching is not None:
            config.dynamic_batching.max_queue_delay_microseconds = int(batching.max_delay_ms * 1000)
        if report.description:
            config.parameters["description"].string_value = report.description
        return oip.ModelConfigResponse(config=config)

    async def ModelStatistics(self, request: oip.ModelStatisticsRequest, context: Any) -> oip.ModelStatisticsResponse:
        if request.name and (request.version or request.name not in self._versions):
            reports = [self._report(request.name, request.version)]
        elif request.name:  # every served version of a versioned model
            reports = [self._engine.report(name) for name in self._versions[request.name]]
        else:
            reports = self._engine.describe()
        failures = self._failures()
        return oip.ModelStatisticsResponse(
            model_stats=[_statistics(report, *self._named(report), failures.get(report.name, 0)) for report in reports]
        )

    def _failures(self) -> dict[str, int]:
        """Inference calls that failed, by model (Infer, Stream, ModelInfer: with metrics on)."""
        telemetry = self._engine.telemetry
        failures: dict[str, int] = {}
        for (model, rpc, code), count in list(telemetry.requests.items() if telemetry is not None else ()):
            if code != "OK" and rpc in _INFERENCE_RPCS:
                failures[model] = failures.get(model, 0) + count
        return failures

    # -- inference ----------------------------------------------------------------------

    def _interface(self, name: str, version: str) -> tuple[str, str, tuple[str, list[str], bool]]:
        """The served model, its version, and its interface (NOT_FOUND for an unknown model)."""
        served, version = self._served(name, version)
        return served, version, self._engine.interface(served)

    async def _infer(self, message: InferRequest, deadline: float | None, *, stream: bool = False) -> Response:
        """One answer (``stream``: as a ModelStreamInferResponse, ending the stream's answers
        to it with ``triton_final_response`` where the request asks for the empty final one)."""
        served, version, (input_format, outputs, _) = self._interface(message.model_name, message.model_version)
        request = read_request(message, input_format)
        result = await self._engine.infer(served, request.payload, request.parameters, deadline=deadline)
        arrays = selected(result.kind, result.output, request.outputs, outputs)
        parameters = result.parameters
        if stream and _empty_final(message):
            parameters = {**(parameters or {}), "triton_final_response": True}
        return write_response(request.model, version, request.id, arrays, parameters, stream=stream)

    async def ModelInfer(  # type: ignore[override]  # answers the native bytes too
        self, request: InferRequest, context: Any
    ) -> Response:
        return await self._infer(request, _deadline(context))

    async def ModelStreamInfer(  # type: ignore[override]  # answers the native bytes too
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Response]:
        """Each request is served as it comes, concurrently with the others; its responses
        (a streaming model's chunks, else one answer) go out as they are made."""
        out: asyncio.Queue[Response | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()
        deadline = _deadline(context)

        async def read() -> None:
            async for request in requests:
                task = asyncio.ensure_future(self._serve_streamed(request, deadline, out))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await out.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while (response := await out.get()) is not None:
                yield response
            await reader  # raises what reading the stream raised
        finally:
            for task in (reader, *tasks):
                task.cancel()
            await asyncio.gather(reader, *tasks, return_exceptions=True)

    async def _serve_streamed(self, request: Any, deadline: float | None, out: asyncio.Queue[Any]) -> None:
        message: InferRequest | None = request.request if isinstance(request, Refused) else request
        try:
            if isinstance(request, Refused):
                raise request.error
            assert message is not None
            served, _, interface = self._interface(message.model_name, message.model_version)
            if not interface[2] and self._engine.repository.get(served).state is not ModelState.READY:
                # Whether it streams is known once its class is loaded: a lazy model's first
                # request sets it up, as through ModelInfer.
                await self._engine.ready(served)
                served, _, interface = self._interface(message.model_name, message.model_version)
            if not interface[2]:  # a model that does not stream: one answer
                await out.put(await self._infer(message, deadline, stream=True))
                return
            await self._stream(message, deadline, out)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await out.put(_stream_error(error, message))

    async def _stream(self, message: InferRequest, deadline: float | None, out: asyncio.Queue[Any]) -> None:
        served, version, (input_format, declared, _) = self._interface(message.model_name, message.model_version)
        request = read_request(message, input_format)
        async for chunk in self._engine.stream(served, request.payload, request.parameters, deadline=deadline):
            if chunk.kind == "none" and not chunk.parameters:
                continue  # the final marker: the empty final response says it, if asked for
            arrays = {} if chunk.kind == "none" else selected(chunk.kind, chunk.output, request.outputs, declared)
            parameters = chunk.parameters
            if request.empty_final:
                parameters = {**(parameters or {}), "triton_final_response": False}
            await out.put(write_response(request.model, version, request.id, arrays, parameters, stream=True))
        if request.empty_final:
            final = {"triton_final_response": True}
            await out.put(write_response(request.model, version, request.id, {}, final, stream=True))

    # -- the repository -----------------------------------------------------------------

    async def RepositoryIndex(self, request: oip.RepositoryIndexRequest, context: Any) -> oip.RepositoryIndexResponse:
        index = oip.RepositoryIndexResponse.ModelIndex
        models = [
            index(name=name, version=version, state=_REPOSITORY_STATES[report.state], reason=report.reason)
            for report in self._engine.describe()
            for name, version in [self._named(report)]
            if not request.ready or report.state is ModelState.READY
        ]
        return oip.RepositoryIndexResponse(models=models)

    async def RepositoryModelLoad(
        self, request: oip.RepositoryModelLoadRequest, context: Any
    ) -> oip.RepositoryModelLoadResponse:
        if request.parameters:
            raise Unimplemented("load parameters (a config or files) are not taken: only declared models load")
        await self._engine.load(request.model_name)
        return oip.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: oip.RepositoryModelUnloadRequest, context: Any
    ) -> oip.RepositoryModelUnloadResponse:
        await self._engine.unload(request.model_name)
        return oip.RepositoryModelUnloadResponse()

    # -- extensions inferd does not implement (ServerMetadata does not list them) ----------

    async def SystemSharedMemoryStatus(self, request: Any, context: Any) -> Any:
        raise _unimplemented("SystemSharedMemoryStatus")

    async def SystemSharedMemoryRegister(self, request: Any, context: Any) -> Any:
        raise _unimplemented("SystemSharedMemoryRegister")

    async def SystemSharedMemoryUnregister(self, request: Any, context: Any) -> Any:
        raise _unimplemented("SystemSharedMemoryUnregister")

    async def CudaSharedMemoryStatus(self, request: Any, context: Any) -> Any:
        raise _unimplemented("CudaSharedMemoryStatus")

    async def CudaSharedMemoryRegister(self, request: Any, context: Any) -> Any:
        raise _unimplemented("CudaSharedMemoryRegister")

    async def CudaSharedMemoryUnregister(self, request: Any, context: Any) -> Any:
        raise _unimplemented("CudaSharedMemoryUnregister")

    async def TraceSetting(self, request: Any, context: Any) -> Any:
        raise _unimplemented("TraceSetting")

    async def LogSettings(self, request: Any, context: Any) -> Any:
        raise _unimplemented("LogSettings")


def _unimplemented(rpc: str) -> Unimplemented:
    return Unimplemented(f"{rpc}: inferd does not implement this extension (ServerMetadata lists those it does)")


def _empty_final(message: InferRequest) -> bool:
    if type(message) is _native.OipRequest:
        return message.parameters.get("triton_enable_empty_final_response") is True  # bool_param, set and true
    assert isinstance(message, oip.ModelInferRequest)
    parameter = message.parameters.get("triton_enable_empty_final_response")
    return parameter is not None and parameter.bool_param


def _stream_error(error: BaseException, message: InferRequest | None) -> oip.ModelStreamInferResponse:
    """An error answered in the stream, as Triton does: the message, and the request's id."""
    if isinstance(error, InferdError):
        text = f"{error.code}: {error.message}"
    else:
        import logging

        logging.getLogger("inferd.server").error("ModelStreamInfer failed", exc_info=error)
        text = "INTERNAL: internal error while serving the request; see the server log"
    response = oip.ModelStreamInferResponse(error_message=text)
    if message is not None:
        response.infer_response.model_name = message.model_name
        response.infer_response.id = message.id
    return response


def _statistics(report: ModelReport, name: str, version: str, failed: int) -> oip.ModelStatistics:
    """Triton's statistics of a model from the engine's counters: requests served (the
    "total" stage: every answer, from any API or another model of the server), ``failed``
    calls, and the stages' counts and cumulative times."""

    def duration(count: int, ms: float) -> oip.StatisticDuration:
        return oip.StatisticDuration(count=count, ns=int(ms * 1e6))

    def stage(*names: str) -> oip.StatisticDuration:
        stats = [report.stages[name] for name in names if name in report.stages]
        return duration(max((s.count for s in stats), default=0), sum(s.total_ms for s in stats))

    run = report.stages.get("run") or report.stages.get("stream")
    executions = report.batching.stats.batches if report.batching is not None else (run.count if run else 0)
    total = report.stages.get("total")
    ok = total.count if total else 0
    return oip.ModelStatistics(
        name=name,
        version=version,
        inference_count=ok,
        execution_count=executions,
        inference_stats=oip.InferStatistics(
            success=duration(ok, total.total_ms if total else 0.0),
            fail=duration(failed, 0.0),
            queue=stage("queue"),
            compute_input=stage("adapt", "preprocess"),
            compute_infer=stage("run", "stream"),
            compute_output=stage("postprocess"),
        ),
    )

