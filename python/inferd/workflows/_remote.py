"""What the remote workflows share: API keys, retries with backoff, and error mapping.

- API keys come from the configuration (``api_key``) or, preferably, from an environment
  variable (``api_key_env``). A key is never logged and never appears in an error message:
  every remote message passes through :meth:`Remote.redact` first, and remote exceptions are
  never chained to the errors that clients see.
- Requests that fail with 429, 5xx or a refused connection are retried at most
  ``max_retries`` times, waiting ``backoff_s * 2**attempt`` (with jitter, at most
  ``max_backoff_s``, or the server's ``Retry-After``) between tries. A stream is retried only
  before its first chunk.
- Failures become inferd errors (and so gRPC statuses): timeouts -> DeadlineExceeded,
  connection failures and 5xx -> Unavailable, 429 -> ResourceExhausted, 401 ->
  Unauthenticated, 403 -> PermissionDenied, 400/422 -> InvalidInput, 404 -> Unavailable.

The classification is duck-typed (status codes, exception class names) so that it covers
``openai``, ``huggingface_hub``/``requests`` and ``httpx`` without importing them here.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ..errors import (
    ConfigError,
    DeadlineExceeded,
    InferdError,
    InvalidInput,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from ..workflow import Workflow

__all__ = ["RemoteWorkflow", "RetryPolicy", "Remote", "api_key_from"]

T = TypeVar("T")

logger = logging.getLogger("inferd.workflows.remote")

_MESSAGE_CHARS = 300


def api_key_from(api_key: str | None, api_key_env: str | None, *, required: bool, what: str) -> str | None:
    """The API key: ``api_key`` from the configuration, else the variable ``api_key_env``.

    Raises :class:`ConfigError` (naming the variable, never a value) when a key is required
    and there is none.
    """
    if api_key:
        return api_key
    if api_key_env:
        value = os.environ.get(api_key_env)
        if value:
            return value
        if required:
            raise ConfigError(f"{what}: environment variable {api_key_env} is not set (it holds the API key)")
    elif required:
        raise ConfigError(f"{what}: no API key: set api_key_env (preferred) or api_key")
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def check(self, what: str) -> None:
        if not self.timeout_s > 0:
            raise ConfigError(f"{what}: timeout_s must be > 0")
        if not 0 <= self.max_retries <= 10:
            raise ConfigError(f"{what}: max_retries must be from 0 to 10")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError(f"{what}: backoff_s and max_backoff_s must be >= 0")


#: The options every remote workflow takes, with their defaults (a workflow's ``defaults``
#: change some): the API key (``api_key_env`` preferred, or ``api_key``), the retry policy,
#: the longest text, and ``max_new_tokens``' default and limit.
SHARED_OPTIONS: dict[str, Any] = {
    "api_key_env": None,
    "api_key": None,
    "timeout_s": 60.0,
    "max_retries": 3,
    "backoff_s": 0.5,
    "max_backoff_s": 8.0,
    "max_chars": 100_000,
    "default_max_new_tokens": 256,
    "max_new_tokens_limit": 32_768,
}


class RemoteWorkflow(Workflow):
    """The base of the remote workflows: the options they share (key, retry policy, limits on
    the text and on ``max_new_tokens``), checked once, and the key taken at setup.

    Options are not kept as given: they may hold a key, which :meth:`take_key` hands over once
    and forgets."""

    #: The workflow's kind, as configurations name it (errors and logs say it).
    kind = "remote"
    #: This workflow's own defaults for the shared options (over :data:`SHARED_OPTIONS`).
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, path: Path | None = None, **options: Any) -> None:
        """``options``: the shared options (:data:`SHARED_OPTIONS`); any other is refused."""
        super().__init__(path)
        unknown = sorted(set(options) - set(SHARED_OPTIONS))
        if unknown:
            raise ConfigError(f"{self.kind}: unknown option {', '.join(map(repr, unknown))}")
        given = {**SHARED_OPTIONS, **self.defaults, **options}
        self._api_key: str | None = given["api_key"]
        self.api_key_env: str | None = given["api_key_env"]
        self.policy = RetryPolicy(given["timeout_s"], given["max_retries"], given["backoff_s"], given["max_backoff_s"])
        self.policy.check(self.kind)
        self.max_chars: int = given["max_chars"]
        self.default_max_new_tokens: int = given["default_max_new_tokens"]
        self.max_new_tokens_limit: int = given["max_new_tokens_limit"]

    def take_key(self, *, required: bool) -> str | None:
        """The API key (see :func:`api_key_from`), forgotten here once taken."""
        key = api_key_from(self._api_key, self.api_key_env, required=required, what=self.kind)
        self._api_key = None
        return key


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _class_names(error: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


def _status(error: BaseException) -> tuple[int | None, Any]:
    """The HTTP status of a remote failure and the response (with its headers), if any."""
    for item in _chain(error):
        status = getattr(item, "status_code", None)
        response = getattr(item, "response", None)
        if isinstance(status, int):
            return status, response
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status, response
    return None, None


_CONNECTION_NAMES = {"ConnectionError", "APIConnectionError", "ConnectError", "ClientConnectorError"}


def _transport_failure(error: BaseException) -> str | None:
    """``"timeout"`` or ``"connection"`` for a failure to get an answer, judged by the
    outermost exception in the chain that says which (urllib3's refused connection is also a
    ``ConnectTimeoutError``; the ``requests.ConnectionError`` around it tells the truth)."""
    for item in _chain(error):
        names = _class_names(item)
        if isinstance(item, TimeoutError) or any("Timeout" in name for name in names):
            return "timeout"
        if isinstance(item, ConnectionError) or names & _CONNECTION_NAMES:
            return "connection"
    return None


def _retry_after_s(response: Any) -> float | None:
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        milliseconds = headers.get("retry-after-ms")
        if milliseconds is not None:
            return float(milliseconds) / 1000
        seconds = headers.get("retry-after")
        return float(seconds) if seconds is not None else None
    except (TypeError, ValueError):
        return None


class Remote:
    """Calls one remote service for one model: retries, redaction, error mapping."""

    def __init__(self, model: str, service: str, policy: RetryPolicy, secrets: list[str | None]) -> None:
        self.model = model
        self.service = service
        self.policy = policy
        self._secrets = [secret for secret in secrets if secret]

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _remote_message(self, error: BaseException) -> str:
        message = getattr(error, "message", None)
        text = message if isinstance(message, str) and message else str(error)
        text = " ".join(self.redact(text).split())
        return text[:_MESSAGE_CHARS] + ("..." if len(text) > _MESSAGE_CHARS else "")

    def retryable(self, error: BaseException) -> bool:
        if isinstance(error, InferdError):
            return False
        status, _ = _status(error)
        if status is not None:
            return status == 429 or status >= 500
        return _transport_failure(error) == "connection"


    def error(self, error: BaseException) -> InferdError:
        """The inferd error that a remote failure means to a client."""
        if isinstance(error, InferdError):
            return error
        where = f"{self.service} ({self.model})"
        status, response = _status(error)
        remote = self._remote_message(error)
        if status is None:
            failure = _transport_failure(error)
            if failure == "timeout":
                return DeadlineExceeded(f"{where} did not answer within {self.policy.timeout_s:g} s")
            if failure == "connection":
                return Unavailable(f"{where} cannot be reached: {remote}")
            return Unavailable(f"{where} failed: {remote}")
        said = f"{where} answered {status}: {remote}"
        if status == 401:
            return Unauthenticated(f"{where} refused the API key (401): check api_key_env", status=status)
        if status == 403:
            return PermissionDenied(f"{where} does not allow this (403): {remote}", status=status)
        if status == 429:
            retry = _retry_after_s(response)
            return ResourceExhausted(
                f"{where} is rate-limiting requests (429): {remote}",
                retry_after_ms=int((retry or self.policy.backoff_s or 1.0) * 1000),
            )
        if status in (400, 422):
            return InvalidInput(said, status=status)
        if status == 408:
            return DeadlineExceeded(said, status=status)
        return Unavailable(said, status=status)

    def _wait(self, attempt: int, error: BaseException) -> float:
        _, response = _status(error)
        retry_after = _retry_after_s(response)
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.policy.max_backoff_s)
        delay = min(self.policy.backoff_s * 2.0**attempt, self.policy.max_backoff_s)
        return delay * random.uniform(0.5, 1.0)

    def _describe(self, error: BaseException) -> str:
        status, _ = _status(error)
        return f"status {status}" if status is not None else type(error).__name__

    def call(self, function: Callable[[], T]) -> T:
        """``function()``, retried on 429/5xx/refused connections, failures mapped."""
        attempt = 0
        while True:
            try:
                return function()
            except Exception as error:
                if attempt >= self.policy.max_retries or not self.retryable(error):
                    mapped = self.error(error)
                    logger.info("%s: %s call failed: %s", self.model, self.service, self.redact(mapped.message))
                    raise mapped from None
                delay = self._wait(attempt, error)
                attempt += 1
                logger.warning(
                    "%s: %s answered %s; retry %d of %d in %.2f s",
                    self.model, self.service, self._describe(error), attempt, self.policy.max_retries, delay,
                )
            time.sleep(delay)

    def iterate(self, items: Iterator[T]) -> Iterator[T]:
        """``items`` with failures mid-stream mapped (no retries: chunks were already sent).
        Closing this iterator closes ``items`` (and so the HTTP response)."""
        try:
            while True:
                try:
                    item = next(items)
                except StopIteration:
                    return
                except Exception as error:
                    raise self.error(error) from None
                yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
