"""The one place where errors become gRPC status codes, and where callers are authenticated.

Every method's handler is wrapped once, when the service is registered (a grpc.aio
interceptor would run coroutines of its own on every call, which microsecond models feel).

Every ``InferdError`` becomes its class's status (:mod:`.status`, which says how); anything
else is a bug or a model failure: the caller gets INTERNAL with a generic message, the log gets
the traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc

from ..config import AuthConfig
from ..errors import InferdError, InvalidInput, PermissionDenied, Unauthenticated
from ..telemetry import Telemetry
from ..tracing import Tracing, current_call
from ..v1 import inference_pb2 as pb
from ..v1 import inference_pb2_grpc as pb_grpc
from .limits import SharedRates, TokenBucket, bucket_for, sized
from .status import abort as _abort
from .status import status_of as _status

__all__ = ["Authenticator", "SERVICE_NAME", "add_inference_service", "add_service", "Refused", "tolerant"]

logger = logging.getLogger("inferd.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inference"].full_name
SERVICE_PREFIX = f"/{SERVICE_NAME}/"


class Authenticator:
    """Checks ``authorization: Bearer <token>`` against the configured tokens.

    :meth:`identify` runs on the metadata alone, before the request's body is read; it
    compares the presented token with every configured one, by their SHA-256 digests (so that
    neither the time taken nor the tokens' lengths say which, if any, matched), and takes one
    from the token's bucket where it has a ``rate`` (:meth:`meter`). :meth:`permit` then
    checks the model the request names against what that token may use. With ``rates``
    (``--workers``), the buckets are that table's slots, one a token in order."""

    def __init__(self, config: AuthConfig, rates: SharedRates | None = None) -> None:
        self._tokens = [
            (_digest(token.secret().encode()), token.name, frozenset(token.models),
             bucket_for(token, None if rates is None else (rates, index)))
            for index, token in enumerate(config.tokens)
        ]  # fmt: skip

    def identify(self, metadata: Any) -> Identity:
        """The (name, models, bucket) of the token the call presents, its request counted;
        Unauthenticated if none is valid, ResourceExhausted if it is over its rate."""
        header = next((value for key, value in metadata or () if key == "authorization"), None)
        # The scheme's name is case-insensitive (RFC 9110, 11.1): "bearer" is "Bearer".
        if not isinstance(header, str) or header[:7].lower() != "bearer ":
            raise Unauthenticated("missing credentials: send 'authorization: Bearer <token>'")
        presented = _digest(header[7:].strip().encode())
        found: Identity | None = None
        for secret, name, models, bucket in self._tokens:
            if hmac.compare_digest(presented, secret) and found is None:
                found = (name, models, bucket)
        if found is None:
            raise Unauthenticated("invalid credentials")
        self.meter(found)
        return found

    @staticmethod
    def meter(identity: Identity) -> None:
        """Counts one request of the token (each request of a bidirectional stream counts)."""
        if identity[2] is not None:
            identity[2].take()

    @staticmethod
    def permit(identity: Identity, model: str | None) -> None:
        name, models, _ = identity
        # A token for a versioned model covers its versions (``wine/2``: ``wine``'s).
        if model and "*" not in models and model not in models and model.rpartition("/")[0] not in models:
            raise PermissionDenied(f"token {name!r} may not use model {model!r}", model=model)


#: Who a call is: its token's name, the models it may use, its rate's bucket (or None).
Identity = tuple[str, frozenset[str], TokenBucket | None]


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _model_of(request: Any) -> str | None:
    """The model a request names: inferd.v1's ``model``, the Open Inference Protocol's
    ``model_name`` or ``name`` (ModelReady, ModelMetadata, load and unload)."""
    for field in ("model", "model_name", "name"):
        model = getattr(request, field, None)
        if isinstance(model, str):
            return model
    return None


class _Unreadable:
    """What a method's request deserializer gives for bytes it cannot read: the handler's
    wrapper raises ``error``, so that the caller gets INVALID_ARGUMENT (grpc answers a
    deserializer's own exception with UNKNOWN, and a ``BaseException`` not at all)."""

    __slots__ = ("error",)

    def __init__(self, error: InferdError) -> None:
        self.error = error


def tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``deserialize``, giving an ``_Unreadable`` (INVALID_ARGUMENT, "malformed request: ...")
    for what it cannot read: every generated deserializer is wrapped so."""

    def read(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:  # the message classes raise DecodeError, and others
            return _Unreadable(InvalidInput(f"malformed request: {error}"))

    return read


class _Handlers:
    """Stands in for a server to take the method handlers that the generated code registers."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers come by name below

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers.update(handlers)


Codecs = Mapping[str, tuple[Callable[[bytes], Any] | None, Callable[[Any], bytes] | None]]


def add_inference_service(
    server: grpc.aio.Server,
    servicer: pb_grpc.InferenceServicer,
    authenticator: Authenticator | None = None,
    codecs: Codecs | None = None,
    telemetry: Telemetry | None = None,
    *,
    access_log: bool = False,
    tracing: Tracing | None = None,
    message_limits: tuple[Mapping[str, int], int] | None = None,
) -> None:
    """Registers the Inference service (inferd.v1) on ``server``: :func:`add_service`."""
    add_service(
        server, SERVICE_NAME, servicer, pb_grpc.add_InferenceServicer_to_server, authenticator, codecs, telemetry,
        access_log=access_log, tracing=tracing, message_limits=message_limits,
    )  # fmt: skip


def add_service(
    server: grpc.aio.Server,
    service: str,
    servicer: Any,
    add_to_server: Callable[[Any, Any], None],
    authenticator: Authenticator | None = None,
    codecs: Codecs | None = None,
    telemetry: Telemetry | None = None,
    *,
    access_log: bool = False,
    tracing: Tracing | None = None,
    message_limits: tuple[Mapping[str, int], int] | None = None,
) -> None:
    """Registers the service ``service`` (full name) on ``server``, every method wrapped by
    :func:`_wrap_handler` once, here, rather than by an interceptor on every call.
    ``add_to_server`` is the generated ``add_XServicer_to_server``; ``codecs`` replaces the
    generated (request deserializer, response serializer) of the methods it names.
    ``message_limits``: (model -> its largest request, the server's), checked by
    :func:`inferd.server.limits.sized` as each request is read."""
    generated = _Handlers()
    add_to_server(servicer, generated)
    if not generated.handlers:
        raise RuntimeError(f"{service}'s generated code registered no handlers: regenerate it (make proto)")
    wrapped = {}
    for name, handler in generated.handlers.items():
        deserializer, serializer = (codecs or {}).get(name, (None, None))
        if deserializer is None and handler.request_deserializer is not None:
            deserializer = tolerant(handler.request_deserializer)
        if deserializer is not None and message_limits and message_limits[0]:
            deserializer = sized(deserializer, *message_limits, _model_of, _Unreadable)
        if serializer is not None:
            handler = handler._replace(response_serializer=serializer)  # type: ignore[attr-defined]
        read: Callable[[bytes], Any] | None = None
        if authenticator is not None:
            # grpc hands the handler the raw bytes, which it reads once the token is checked.
            handler = handler._replace(request_deserializer=None)  # type: ignore[attr-defined]
            read = deserializer
        elif deserializer is not None:
            handler = handler._replace(request_deserializer=deserializer)  # type: ignore[attr-defined]
        observe = _observer(name, telemetry, access_log)
        wrapped[name] = _wrap_handler(f"/{service}/{name}", handler, authenticator, read, observe, tracing)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
    server.add_registered_method_handlers(service, wrapped)


#: What sees a call's end: (request, status code, seconds, trace id).
Observer = Callable[[Any, str, float, str], None]


def _observer(rpc: str, telemetry: Telemetry | None, access_log: bool) -> Observer | None:
    """What sees each call's end (request, status code, seconds): the metrics, the access log."""
    if telemetry is None and not access_log:
        return None

    def observe(request: Any, code: str, seconds: float, trace_id: str) -> None:
        model = _model_of(request)
        if telemetry is not None:
            telemetry.record_request(rpc, model, code, seconds)
        if access_log:
            request_id = getattr(request, "id", "")
            fields = {
                "model": model or "",
                "rpc": rpc,
                "id": request_id if isinstance(request_id, str) else "",
                "code": code,
                "ms": round(seconds * 1000, 3),
                "trace_id": trace_id,
            }
            access.info(
                "%s model=%s id=%s %s %.3f ms%s", rpc, fields["model"], fields["id"], code, fields["ms"],
                f" trace={trace_id}" if trace_id else "", extra=fields,
            )  # fmt: skip

    return observe


access = logging.getLogger("inferd.access")


def _wrap_handler(
    method: str,
    handler: grpc.RpcMethodHandler[Any, Any],
    authenticator: Authenticator | None,
    read: Callable[[bytes], Any] | None,
    observe: Observer | None,
    tracing: Tracing | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """One method's handler, wrapped: authenticate, read the request, call, map errors to
    status codes, report the call's end (``observe``: metrics, access log). With an ``authenticator`` the handler
    receives the request's bytes and ``read`` turns them into the request once the token has
    been checked, so that a caller without a valid token costs no decoding. A request the
    deserializer could not read comes as an ``_Unreadable``. With ``tracing``, the call has a
    server span (the current one, :data:`inferd.tracing.current_call`, while it runs) and its
    trace id goes back in the ``trace-id`` trailer."""
    service, _, rpc = method.lstrip("/").rpartition("/")

    def begin(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Any, Any, str]:
        if tracing is None:
            return None, None, ""
        span = tracing.start_call(rpc, context.invocation_metadata(), service)
        trace_id = tracing.trace_id(span)
        if trace_id:
            context.set_trailing_metadata((("trace-id", trace_id),))
        return span, current_call.set(span), trace_id

    def end(request: Any, code: str, started: float, span: Any, token: Any, trace_id: str) -> None:
        if observe is not None:
            observe(request, code, time.perf_counter() - started, trace_id)
        if span is not None:
            span.set_attribute("rpc.grpc.status_code", code)
            model = _model_of(request)
            if model:
                span.set_attribute("inferd.model", model)
            if code not in ("OK",):
                span.set_attribute("error.type", code)
            span.end(code)
            try:
                current_call.reset(token)
            except ValueError:
                pass  # a stream closed from another context (its task is gone): nothing to restore

    def accept(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if authenticator is None:
            if type(request) is _Unreadable:
                raise request.error
            return request
        identity = authenticator.identify(context.invocation_metadata())
        if read is not None:
            request = read(request)
            if type(request) is _Unreadable:
                raise request.error
        authenticator.permit(identity, _model_of(request))
        return request

    if handler.unary_unary is not None:
        inner_unary: Any = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = "OK"
            span, token, trace_id = begin(context)
            try:
                request = accept(request, context)
                return await inner_unary(request, context)
            except (asyncio.CancelledError, grpc.aio.AbortError) as error:
                code = _status(error, context)
                raise
            except Exception as error:
                code = _status(error, context)
                await _abort(context, error, method, trace_id)
            finally:
                end(request, code, started, span, token, trace_id)

        return handler._replace(unary_unary=unary)  # type: ignore[attr-defined,no-any-return]
    if handler.unary_stream is not None:
        inner_stream: Any = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started = time.perf_counter()
            code = "OK"
            span, token, trace_id = begin(context)
            try:
                request = accept(request, context)
                async for response in inner_stream(request, context):
                    yield response
            except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit) as error:
                code = "CANCELLED" if isinstance(error, GeneratorExit) else _status(error, context)
                raise
            except Exception as error:
                code = _status(error, context)
                await _abort(context, error, method, trace_id)
            finally:
                end(request, code, started, span, token, trace_id)

        return handler._replace(unary_stream=stream)  # type: ignore[attr-defined,no-any-return]
    if handler.stream_stream is not None:
        inner_bidi: Any = handler.stream_stream

        async def bidi(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            # The caller is identified once, when the stream opens; each request is read and
            # permitted as it comes (the servicer answers a refused one in the stream).
            started = time.perf_counter()
            code = "OK"
            span, token, trace_id = begin(context)
            try:
                identity = authenticator.identify(context.invocation_metadata()) if authenticator is not None else None

                async def accepted() -> AsyncIterator[Any]:
                    async for request in requests:
                        if read is not None:
                            request = read(request)
                        if type(request) is _Unreadable:
                            yield Refused(request.error)
                        elif identity is not None:
                            try:
                                authenticator.meter(identity)  # type: ignore[union-attr]
                                authenticator.permit(identity, _model_of(request))  # type: ignore[union-attr]
                            except InferdError as error:
                                yield Refused(error, request)
                                continue
                            yield request
                        else:
                            yield request

                async for response in inner_bidi(accepted(), context):
                    yield response
            except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit) as error:
                code = "CANCELLED" if isinstance(error, GeneratorExit) else _status(error, context)
                raise
            except Exception as error:
                code = _status(error, context)
                await _abort(context, error, method, trace_id)
            finally:
                end(None, code, started, span, token, trace_id)

        return handler._replace(stream_stream=bidi)  # type: ignore[attr-defined,no-any-return]
    return handler


class Refused:
    """A request of a bidirectional stream that cannot be served (unreadable, or not permitted):
    the servicer answers it in the stream with ``error``, and the stream goes on."""

    __slots__ = ("error", "request")

    def __init__(self, error: InferdError, request: Any = None) -> None:
        self.error = error
        self.request = request
