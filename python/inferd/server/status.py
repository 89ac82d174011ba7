"""How a failed call ends: its status code, message and rich details.

Every ``InferdError`` becomes its class's status with its message, an ``ErrorInfo`` in the
rich status details (``grpc-status-details-bin``) carrying its structured details, and, for
RESOURCE_EXHAUSTED, a ``RetryInfo`` plus a ``retry-after-ms`` trailer. Anything else is a bug
or a model failure: the caller gets INTERNAL with a generic message, the log gets the traceback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from ..errors import InferdError, ResourceExhausted

__all__ = ["abort", "status_details", "status_of"]

logger = logging.getLogger("inferd.server")


def status_details(error: InferdError, code: grpc.StatusCode) -> bytes:
    """The serialised ``google.rpc.Status`` of ``error``: its ErrorInfo, and RetryInfo for
    RESOURCE_EXHAUSTED."""
    info = error_details_pb2.ErrorInfo(
        reason=type(error).__name__,
        domain="inferd",
        metadata={key: str(value) for key, value in error.details.items()},
    )
    details = [info]
    if isinstance(error, ResourceExhausted):
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(error.retry_after_ms)
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    status = status_pb2.Status(code=code.value[0], message=error.message, details=packed)
    serialized: bytes = status.SerializeToString()
    return serialized


async def abort(
    context: grpc.aio.ServicerContext[Any, Any], error: BaseException, method: str, trace_id: str = ""
) -> None:
    """Ends the call of ``method`` that raised ``error`` with its status (logging the
    traceback of anything that is not an ``InferdError``); ``trace_id`` goes back as a trailer."""
    extra: tuple[tuple[str, str], ...] = (("trace-id", trace_id),) if trace_id else ()
    if isinstance(error, InferdError):
        code = grpc.StatusCode[error.code]
        trailers: list[tuple[str, str | bytes]] = [("grpc-status-details-bin", status_details(error, code)), *extra]
        if isinstance(error, ResourceExhausted):
            trailers.append(("retry-after-ms", str(error.retry_after_ms)))
        await _end_with(context, code, error.message, tuple(trailers))
    logger.error("%s failed%s", method, f" (trace {trace_id})" if trace_id else "", exc_info=error)
    await _end_with(context, grpc.StatusCode.INTERNAL, "internal error while serving the request; see the server log", extra)


async def _end_with(
    context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str, trailers: Any
) -> None:
    """Ends the call with ``code``: raises grpc's AbortError, as ``context.abort`` does, or
    CancelledError when the call was over before its status could go. That is a race, not a
    fault: the caller's deadline passes as the engine finds it passed (grpc's core has ended the
    call; its handler has not heard yet), and grpc would log the status it could not send as an
    error with its traceback (tests/test_leaks.py)."""
    try:
        await context.abort(code, message, trailing_metadata=trailers)
    except grpc.aio.AbortError:
        raise
    except Exception:
        remaining = context.time_remaining()
        if context.cancelled() or (remaining is not None and remaining <= 0):
            raise asyncio.CancelledError from None
        raise


def status_of(error: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The status code a call that raised ``error`` ends with (for the metrics)."""
    if isinstance(error, InferdError):
        return error.code
    if isinstance(error, asyncio.CancelledError):
        # grpc cancels the handler when the caller goes, or when the caller's deadline passes.
        remaining = context.time_remaining()
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
    if isinstance(error, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    return "INTERNAL"
