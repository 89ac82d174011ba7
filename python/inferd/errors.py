"""The one error taxonomy of inferd.

Every error that inferd raises on purpose is an :class:`InferdError`. Each class carries a
transport-neutral ``code`` (a name from the gRPC status vocabulary, which every RPC stack
shares); the server turns it into a gRPC status in exactly one place, and the client turns a
status back into the same class. Anything else a model raises is an internal error: the
caller sees a generic message and the traceback goes to the log.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "InferdError",
    "InvalidInput",
    "RecordError",
    "TensorError",
    "ModelNotFound",
    "ModelNotReady",
    "ModelFailed",
    "ResourceExhausted",
    "retry_hint",
    "MessageTooLarge",
    "DeadlineExceeded",
    "Cancelled",
    "Unauthenticated",
    "PermissionDenied",
    "Unavailable",
    "Unimplemented",
    "InternalError",
    "ConfigError",
    "error_for_code",
    "error_from_status",
]


class InferdError(Exception):
    """Base of every error inferd raises on purpose.

    ``code`` names the status (``"INVALID_ARGUMENT"``, ``"NOT_FOUND"``, ...); ``details`` holds
    structured, JSON-safe facts about the failure (record index, field path, ...).
    """

    code: ClassVar[str] = "UNKNOWN"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return self.message


class InvalidInput(InferdError, ValueError):
    """The request is malformed: bad JSON, a missing or ill-typed field, a bad parameter."""

    code = "INVALID_ARGUMENT"


class RecordError(InvalidInput):
    """A record does not fit the declared schema.

    Carries ``record`` (its index in the request), ``path`` (the field path), ``expected`` (what
    the schema wanted) and ``value`` (the offending value, truncated), where they are known.
    """

    #: The details a record error carries, each also an attribute.
    FIELDS: ClassVar[tuple[str, ...]] = ("record", "path", "expected", "value", "offset")

    def __init__(
        self,
        message: str,
        *,
        record: int | None = None,
        path: str | None = None,
        expected: str | None = None,
        value: str | None = None,
        offset: int | None = None,
    ) -> None:
        values = (record, path, expected, value, offset)
        details = {key: item for key, item in zip(self.FIELDS, values) if item is not None}
        super().__init__(message, **details)
        self.record = record
        self.path = path
        self.expected = expected
        self.value = value
        self.offset = offset


class TensorError(InvalidInput):
    """A request tensor has the wrong name, dtype or shape for the model."""

    def __init__(self, message: str, *, tensor: str, **details: Any) -> None:
        super().__init__(message, tensor=tensor, **details)
        self.tensor = tensor


class ModelNotFound(InferdError, LookupError):
    """No model of that name is declared by the server's configuration."""

    code = "NOT_FOUND"


class ModelNotReady(InferdError):
    """The model cannot serve yet: it is set up explicitly and nobody has called Setup, or it
    was unloaded and nobody has loaded it again."""

    code = "FAILED_PRECONDITION"


class ModelFailed(ModelNotReady):
    """The model's setup failed; ``details["reason"]`` says why. (A kind of
    :class:`ModelNotReady`: ``except ModelNotReady`` catches both.)"""


class ResourceExhausted(InferdError):
    """Too many requests in flight or queued; retry after ``retry_after_ms``."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after_ms: int = 100, **details: Any) -> None:
        super().__init__(message, retry_after_ms=retry_after_ms, **details)
        self.retry_after_ms = retry_after_ms


def retry_hint(wait_ms: float, *, jitter: bool = True) -> int:
    """A :class:`ResourceExhausted`'s ``retry_after_ms`` for an estimated wait: with ±20%
    jitter, so that the clients refused together do not all come back at once (``jitter=False``
    where the wait is exact, as a token bucket's), and at least 1 ms."""
    return max(1, int(wait_ms * random.uniform(0.8, 1.2) if jitter else wait_ms))


class MessageTooLarge(InferdError):
    """A request message is larger than its model's ``limits.max_message_bytes`` (or the
    server's). RESOURCE_EXHAUSTED, as gRPC itself answers a message over the server's limit;
    not a :class:`ResourceExhausted`, and without a retry hint: the same request never fits."""

    code = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(InferdError, TimeoutError):
    """The request's deadline passed before it was answered."""

    code = "DEADLINE_EXCEEDED"


class Cancelled(InferdError):
    """The client cancelled the request; its work was stopped."""

    code = "CANCELLED"


class Unauthenticated(InferdError):
    """The caller did not prove who it is (also: a remote API refused our credentials)."""

    code = "UNAUTHENTICATED"


class PermissionDenied(InferdError):
    """The caller is known but not allowed to do this."""

    code = "PERMISSION_DENIED"


class Unavailable(InferdError):
    """A service the model depends on cannot be reached right now; retrying may help."""

    code = "UNAVAILABLE"


class Unimplemented(InferdError):
    """The model does not offer this call (Infer on a model that only streams, and so on)."""

    code = "UNIMPLEMENTED"


class InternalError(InferdError):
    """A model or inferd itself failed; the message is generic on purpose."""

    code = "INTERNAL"


class ConfigError(InferdError, ValueError):
    """The service configuration is invalid; raised at start, never per request."""

    code = "INVALID_ARGUMENT"


_BY_CODE: dict[str, type[InferdError]] = {
    "INVALID_ARGUMENT": InvalidInput,
    "NOT_FOUND": ModelNotFound,
    "FAILED_PRECONDITION": ModelNotReady,
    "RESOURCE_EXHAUSTED": ResourceExhausted,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "CANCELLED": Cancelled,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "UNAVAILABLE": Unavailable,
    "UNIMPLEMENTED": Unimplemented,
    "INTERNAL": InternalError,
}


def error_for_code(code: str) -> type[InferdError]:
    """The error class a client raises for a status code name (``InferdError`` if unknown)."""
    return _BY_CODE.get(code, InferdError)


#: Every error class a server raises, by name (what a status's ErrorInfo.reason carries).
_BY_NAME: dict[str, type[InferdError]] = {
    cls.__name__: cls
    for cls in (
        InvalidInput, RecordError, TensorError, ModelNotFound, ModelNotReady, ModelFailed, ResourceExhausted,
        MessageTooLarge, DeadlineExceeded, Cancelled, Unauthenticated, PermissionDenied, Unavailable, Unimplemented, InternalError,
    )
}  # fmt: skip
_INTEGER_DETAILS = ("record", "offset", "retry_after_ms", "max_message_bytes", "max_json_depth", "max_json_bytes", "bytes")


def error_from_status(code: str, message: str, name: str = "", details: Mapping[str, str] | None = None) -> InferdError:
    """The error a client raises for a failed call: the class the server raised (``name``, the
    ErrorInfo's reason) where it is one of these with that status, else the status's class
    (:func:`error_for_code`). ``details`` are the ErrorInfo's metadata (strings): the numbers
    among them (record, offset, retry_after_ms) come back as ints, and the attributes of
    :class:`RecordError`, :class:`TensorError` and :class:`ResourceExhausted` are set."""
    cls = _BY_NAME.get(name)
    if cls is None or cls.code != code:
        cls = error_for_code(code)
    typed: dict[str, Any] = dict(details or {})
    for key in _INTEGER_DETAILS:
        value = typed.get(key)
        if isinstance(value, str):
            try:
                typed[key] = int(value)
            except ValueError:
                pass
    error = cls.__new__(cls)
    InferdError.__init__(error, message, **typed)
    if isinstance(error, RecordError):
        for key in RecordError.FIELDS:
            setattr(error, key, typed.get(key))
    if isinstance(error, TensorError):
        error.tensor = str(typed.get("tensor", ""))
    if isinstance(error, ResourceExhausted):
        retry = typed.get("retry_after_ms")
        error.retry_after_ms = retry if isinstance(retry, int) else 100
        error.details["retry_after_ms"] = error.retry_after_ms
    return error
