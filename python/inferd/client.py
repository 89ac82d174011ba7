"""Python clients for an inferd server: :class:`Client` (blocking) and :class:`AsyncClient`.

Inputs are sent by their Python type: a list or dict as JSON, ``JsonBytes`` as JSON exactly as
given, a ``str`` as text, ``bytes`` or a :class:`~inferd.Blob` as a blob, a numpy array or a
dict of them as tensors. Outputs come back the same way. Failures raise the inferd error for
the status code (``InvalidInput``, ``ModelNotFound``, ...), with the server's message and
details.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
import numpy as np
import orjson
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ._proto import Blob, dict_to_struct, dtype_name, numpy_to_tensor, struct_to_dict, tensor_to_numpy
from .errors import InferdError, error_from_status
from .v1 import inference_pb2 as pb
from .v1 import inference_pb2_grpc as pb_grpc

__all__ = ["Client", "AsyncClient", "TLS", "JsonBytes", "InferResult", "StreamChunk", "ModelInfo", "DEFAULT_ADDRESS"]

#: Where clients connect unless told otherwise: $INFERD_ADDRESS, else the default port.
DEFAULT_ADDRESS = "127.0.0.1:50051"


def _default_address() -> str:
    return os.environ.get("INFERD_ADDRESS", DEFAULT_ADDRESS)


PEM = str | os.PathLike[str] | bytes


@dataclass(frozen=True)
class TLS:
    """How a client connects over TLS.

    ``ca``: the CA certificate(s) that signed the server's certificate (PEM, a path or bytes;
    None trusts the system's roots). ``cert`` and ``key``: the client's own certificate and
    key, for a server that requires mutual TLS. ``server_name``: the name to check the
    server's certificate against when it is not the address's host (a certificate for
    ``inferd.internal`` reached at ``10.0.0.5:50051``).
    """

    ca: PEM | None = None
    cert: PEM | None = None
    key: PEM | None = None
    server_name: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TLS | None:
        """TLS as ``INFERD_TLS_CA``, ``INFERD_TLS_CLIENT_CERT``, ``INFERD_TLS_CLIENT_KEY`` and
        ``INFERD_TLS_SERVER_NAME`` say (any of them turns TLS on; ``INFERD_TLS=1`` alone: TLS
        with the system's roots), or None: plaintext."""
        env = os.environ if environ is None else environ
        values = {
            key: env.get(f"INFERD_TLS_{variable}") or None
            for key, variable in (("ca", "CA"), ("cert", "CLIENT_CERT"), ("key", "CLIENT_KEY"), ("server_name", "SERVER_NAME"))
        }  # fmt: skip
        if not any(values.values()) and env.get("INFERD_TLS", "").lower() not in ("1", "true", "yes"):
            return None
        return cls(**values)

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert is None) != (self.key is None):
            raise ValueError("TLS: give both cert and key (mutual TLS), or neither")
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca), private_key=_pem(self.key), certificate_chain=_pem(self.cert)
        )


def _pem(value: PEM | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as file:
        return file.read()


def _open_channel(
    address: str, tls: TLS | bool | None, max_message_bytes: int, make: Any, make_secure: Any
) -> Any:
    """A channel to ``address``: plaintext, or TLS (``tls`` None: as the environment says)."""
    options: list[tuple[str, Any]] = list(_channel_options(max_message_bytes))
    if tls is None:
        settings = TLS.from_environment()
    else:
        settings = TLS() if tls is True else tls or None
    if settings is None:
        return make(address, options=options)
    if settings.server_name:
        options.append(("grpc.ssl_target_name_override", settings.server_name))
    return make_secure(address, settings.credentials(), options=options)


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


def _request(model: str, inputs: Any, parameters: Mapping[str, Any] | None, request_id: str) -> pb.InferRequest:
    return pb.InferRequest(
        model=model, id=request_id, input=encode_input(inputs), parameters=dict_to_struct(parameters or {})
    )


def _infer_result(response: pb.InferResponse) -> InferResult:
    return InferResult(
        model=response.model,
        id=response.id,
        output=decode_output(response.output),
        parameters=struct_to_dict(response.parameters),
        timings=_timings(response.timings),
    )


def _chunk(response: pb.StreamResponse) -> StreamChunk:
    return StreamChunk(
        index=response.index,
        output=decode_output(response.output) if response.HasField("output") else None,
        parameters=struct_to_dict(response.parameters),
        final=response.final,
        timings=_timings(response.timings),
    )


_STATE_NAMES = {value: name.removeprefix("MODEL_STATE_").lower() for name, value in pb.ModelState.items()}


def _model_info(info: pb.ModelInfo) -> ModelInfo:
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
    )


def _tensor_info(tensor: pb.TensorInfo) -> dict[str, Any]:
    dtype = dtype_name(tensor.dtype)
    shape = None if tensor.any_shape else [None if size < 0 else size for size in tensor.shape]
    return {"name": tensor.name, "dtype": dtype, "shape": shape}


def _error(error: grpc.RpcError) -> InferdError:
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
    retry = trailers.get("retry-after-ms")
    if isinstance(retry, str):
        details["retry_after_ms"] = retry
    result = error_from_status(code.name, message, name, details)
    result.details["status"] = code.name
    return result


def _metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("authorization", f"Bearer {token}"),) if token else None


def _channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


# -- clients -----------------------------------------------------------------------------


class Client:
    """A blocking client. Use it as a context manager, or call :meth:`close`.

    ``token`` is sent as ``authorization: Bearer <token>`` when the server requires it.
    ``timeout`` (seconds) is the default deadline of every call. ``tls``: a :class:`TLS`,
    True (TLS with the system's roots), False (plaintext), or None: as ``INFERD_TLS_*`` say
    (plaintext when none is set).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
        tls: TLS | bool | None = None,
    ) -> None:
        self.address = address or _default_address()
        self._channel: grpc.Channel = _open_channel(
            self.address, tls, max_message_bytes, grpc.insecure_channel, grpc.secure_channel
        )
        self._stub = pb_grpc.InferenceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata = _metadata(token)
        self._timeout = timeout

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _deadline(self, timeout: float | None) -> float | None:
        return self._timeout if timeout is None else timeout

    def infer(
        self,
        model: str,
        inputs: Any,
        *,
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
        timeout: float | None = None,
    ) -> InferResult:
        """Runs one request through ``model`` and returns its answer."""
        request = _request(model, inputs, parameters, id)
        try:
            response = self._stub.Infer(request, timeout=self._deadline(timeout), metadata=self._metadata)
        except grpc.RpcError as error:
            raise _error(error) from None
        return _infer_result(response)

    def stream(
        self,
        model: str,
        inputs: Any,
        *,
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
        timeout: float | None = None,
    ) -> Iterator[StreamChunk]:
        """Streams ``model``'s answer; closing the iterator early cancels the call."""
        request = _request(model, inputs, parameters, id)
        call = self._stub.Stream(request, timeout=self._deadline(timeout), metadata=self._metadata)
        try:
            for response in call:
                yield _chunk(response)
        except grpc.RpcError as error:
            raise _error(error) from None
        finally:
            call.cancel()

    def setup(self, model: str, *, timeout: float | None = None) -> float:
        """Sets ``model`` up (idempotent); returns its setup time in milliseconds."""
        try:
            response = self._stub.Setup(
                pb.SetupRequest(model=model), timeout=self._deadline(timeout), metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise _error(error) from None
        return float(response.setup_ms)

    def models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """The server's models, with their states and stage timings."""
        try:
            response = self._stub.ListModels(
                pb.ListModelsRequest(), timeout=self._deadline(timeout), metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise _error(error) from None
        return [_model_info(info) for info in response.models]

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The gRPC health status ("SERVING", "NOT_SERVING", ...) of the server or a model."""
        try:
            response = self._health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=self._deadline(timeout)
            )
        except grpc.RpcError as error:
            raise _error(error) from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


class AsyncClient:
    """The asyncio client: the same calls as :class:`Client`, awaited."""

    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
        tls: TLS | bool | None = None,
    ) -> None:
        self.address = address or _default_address()
        self._channel: grpc.aio.Channel = _open_channel(
            self.address, tls, max_message_bytes, grpc.aio.insecure_channel, grpc.aio.secure_channel
        )
        self._stub = pb_grpc.InferenceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata = _metadata(token)
        self._timeout = timeout

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    def _deadline(self, timeout: float | None) -> float | None:
        return self._timeout if timeout is None else timeout

    async def infer(
        self,
        model: str,
        inputs: Any,
        *,
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
        timeout: float | None = None,
    ) -> InferResult:
        request = _request(model, inputs, parameters, id)
        try:
            response = await self._stub.Infer(request, timeout=self._deadline(timeout), metadata=self._metadata)
        except grpc.RpcError as error:
            raise _error(error) from None
        return _infer_result(response)

    async def stream(
        self,
        model: str,
        inputs: Any,
        *,
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
        timeout: float | None = None,
    ) -> AsyncIterator[StreamChunk]:
        request = _request(model, inputs, parameters, id)
        call = self._stub.Stream(request, timeout=self._deadline(timeout), metadata=self._metadata)
        try:
            async for response in call:
                yield _chunk(response)
        except grpc.RpcError as error:
            raise _error(error) from None
        finally:
            call.cancel()

    async def setup(self, model: str, *, timeout: float | None = None) -> float:
        try:
            response = await self._stub.Setup(
                pb.SetupRequest(model=model), timeout=self._deadline(timeout), metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise _error(error) from None
        return float(response.setup_ms)

    async def models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        try:
            response = await self._stub.ListModels(
                pb.ListModelsRequest(), timeout=self._deadline(timeout), metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise _error(error) from None
        return [_model_info(info) for info in response.models]

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        try:
            response = await self._health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=self._deadline(timeout)
            )
        except grpc.RpcError as error:
            raise _error(error) from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

