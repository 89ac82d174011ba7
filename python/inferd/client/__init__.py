"""Python clients for an inferd server: :class:`Client` (blocking) and :class:`AsyncClient`.

Inputs are sent by their Python type: a list or dict as JSON, ``JsonBytes`` as JSON exactly as
given, a ``str`` as text, ``bytes`` or a :class:`~inferd.Blob` as a blob, a numpy array or a
dict of them as tensors. Outputs come back the same way. Failures raise the inferd error for
the status code (``InvalidInput``, ``ModelNotFound``, ...), with the server's message and
details.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ._codec import InferResult, JsonBytes, ModelInfo, StreamChunk, chunk, error, infer_result, model_info, request
from ..v1 import inference_pb2 as pb
from ..v1 import inference_pb2_grpc as pb_grpc

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


def _metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("authorization", f"Bearer {token}"),) if token else None


def _channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


# -- clients -----------------------------------------------------------------------------


def _trace_context() -> tuple[tuple[str, str], ...]:
    """``traceparent`` (and ``tracestate``) of the caller's current span, if it has one."""
    if _propagate is None:
        return ()
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return tuple((key, value) for key, value in carrier.items() if key in ("traceparent", "tracestate"))


_propagate: Any
try:  # the caller's traces reach through inferd when it uses OpenTelemetry
    from opentelemetry import propagate as _propagate
except ImportError:  # pragma: no cover - the otel extra is not installed
    _propagate = None


class _RpcErrors:
    """``with _rpc_errors:`` a failed call's ``grpc.RpcError`` leaves as the inferd error that
    the server raised (:func:`._codec.error`); both clients wrap every call in it."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, failure: BaseException | None, _: TracebackType | None) -> None:
        if isinstance(failure, grpc.RpcError):
            raise error(failure) from None


_rpc_errors = _RpcErrors()


class _Channel:
    """What both clients share: the channel, its stubs, the token and the default deadline."""

    def __init__(
        self,
        address: str | None,
        token: str | None,
        timeout: float | None,
        max_message_bytes: int,
        tls: TLS | bool | None,
        make: Any,
        make_secure: Any,
    ) -> None:
        self.address = address or _default_address()
        self._channel = _open_channel(self.address, tls, max_message_bytes, make, make_secure)
        self._stub = pb_grpc.InferenceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata = _metadata(token)
        self._timeout = timeout

    def _options(self, timeout: float | None, *, authenticated: bool = True) -> dict[str, Any]:
        """A call's deadline and metadata: the token, and the caller's trace context (W3C
        ``traceparent``) when OpenTelemetry is installed and the caller has a current span."""
        options: dict[str, Any] = {"timeout": self._timeout if timeout is None else timeout}
        metadata = (self._metadata or ()) if authenticated else ()
        trace = _trace_context()
        if trace:
            metadata = (*metadata, *trace)
        if metadata:
            options["metadata"] = metadata
        return options


class Client(_Channel):
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
        super().__init__(address, token, timeout, max_message_bytes, tls, grpc.insecure_channel, grpc.secure_channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

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
        with _rpc_errors:
            return infer_result(self._stub.Infer(request(model, inputs, parameters, id), **self._options(timeout)))

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
        call = self._stub.Stream(request(model, inputs, parameters, id), **self._options(timeout))
        try:
            with _rpc_errors:
                for response in call:
                    yield chunk(response)
        finally:
            call.cancel()

    def setup(self, model: str, *, timeout: float | None = None) -> float:
        """Sets ``model`` up (idempotent); returns its setup time in milliseconds."""
        with _rpc_errors:
            return float(self._stub.Setup(pb.SetupRequest(model=model), **self._options(timeout)).setup_ms)

    def load(self, model: str, *, timeout: float | None = None) -> float:
        """Loads a declared model (also after :meth:`unload`); returns its setup time in ms."""
        with _rpc_errors:
            return float(self._stub.Load(pb.LoadRequest(model=model), **self._options(timeout)).setup_ms)

    def unload(self, model: str, *, timeout: float | None = None) -> None:
        """Unloads a model once its requests in flight have finished; it refuses new ones."""
        with _rpc_errors:
            self._stub.Unload(pb.UnloadRequest(model=model), **self._options(timeout))

    def models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """The server's models, with their states and stage timings."""
        with _rpc_errors:
            response = self._stub.ListModels(pb.ListModelsRequest(), **self._options(timeout))
        return [model_info(info) for info in response.models]

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The gRPC health status ("SERVING", "NOT_SERVING", ...) of the server or a model."""
        request = health_pb2.HealthCheckRequest(service=service)
        with _rpc_errors:
            return _status_name(self._health.Check(request, **self._options(timeout, authenticated=False)))


class AsyncClient(_Channel):
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
        super().__init__(
            address, token, timeout, max_message_bytes, tls, grpc.aio.insecure_channel, grpc.aio.secure_channel
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def infer(
        self,
        model: str,
        inputs: Any,
        *,
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
        timeout: float | None = None,
    ) -> InferResult:
        message = request(model, inputs, parameters, id)
        with _rpc_errors:
            return infer_result(await self._stub.Infer(message, **self._options(timeout)))

    async def stream(
        self,
        model: str,
        inputs: Any,
        *,
        parameters: Mapping[str, Any] | None = None,
        id: str = "",
        timeout: float | None = None,
    ) -> AsyncIterator[StreamChunk]:
        call = self._stub.Stream(request(model, inputs, parameters, id), **self._options(timeout))
        try:
            with _rpc_errors:
                async for response in call:
                    yield chunk(response)
        finally:
            call.cancel()

    async def setup(self, model: str, *, timeout: float | None = None) -> float:
        with _rpc_errors:
            return float((await self._stub.Setup(pb.SetupRequest(model=model), **self._options(timeout))).setup_ms)

    async def load(self, model: str, *, timeout: float | None = None) -> float:
        with _rpc_errors:
            return float((await self._stub.Load(pb.LoadRequest(model=model), **self._options(timeout))).setup_ms)

    async def unload(self, model: str, *, timeout: float | None = None) -> None:
        with _rpc_errors:
            await self._stub.Unload(pb.UnloadRequest(model=model), **self._options(timeout))

    async def models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        with _rpc_errors:
            response = await self._stub.ListModels(pb.ListModelsRequest(), **self._options(timeout))
        return [model_info(info) for info in response.models]

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        request = health_pb2.HealthCheckRequest(service=service)
        with _rpc_errors:
            return _status_name(await self._health.Check(request, **self._options(timeout, authenticated=False)))


def _status_name(response: health_pb2.HealthCheckResponse) -> str:
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
