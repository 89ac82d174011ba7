"""Limits against abuse that the server applies before a request reaches the engine.

- :class:`TokenBucket`: a token's request rate (``[[server.auth.tokens]] rate``, ``burst``).
- :func:`message_limits` and :func:`sized`: each model's largest request message
  (``limits.max_message_bytes``), checked on the request's bytes as they are read.

JSON payloads' depth and size are the input adapters' (:class:`inferd.adapters.JsonLimits`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..config import AuthToken, ServiceConfig
from ..errors import InferdError, MessageTooLarge, ResourceExhausted, retry_hint

__all__ = ["TokenBucket", "bucket_for", "message_limits", "receive_limit", "sized"]


class TokenBucket:
    """``rate`` requests a second on average, ``burst`` at once: the bucket holds at most
    ``burst`` tokens, gains ``rate`` a second, and each request takes one. Runs on the event
    loop (no lock); the clock is monotonic."""

    __slots__ = ("rate", "burst", "_tokens", "_stamp", "_name")

    def __init__(self, name: str, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._name = name
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self) -> None:
        """Takes a token, or raises ResourceExhausted with the wait until one is there."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return
        wait_ms = retry_hint(math.ceil((1 - self._tokens) / self.rate * 1000), jitter=False)  # the wait is exact
        raise ResourceExhausted(
            f"token {self._name!r} is over its rate of {self.rate:g} requests a second (burst {self.burst}): "
            f"retry in {wait_ms} ms", retry_after_ms=wait_ms, token=self._name, rate=f"{self.rate:g}", burst=self.burst,
        )  # fmt: skip


def bucket_for(token: AuthToken) -> TokenBucket | None:
    """The token's bucket, or None without a ``rate``. The burst defaults to one second's
    worth of requests (``rate`` rounded up, at least 1)."""
    if token.rate is None:
        return None
    return TokenBucket(token.name, token.rate, token.burst or max(1, math.ceil(token.rate)))


def message_limits(config: ServiceConfig) -> dict[str, int]:
    """The request limit of each model that sets ``limits.max_message_bytes`` (empty where
    none does: gRPC's own limit is then the only one). A versioned model's bare name
    (``wine``) gets the largest of its versions' limits (``wine/1``, ``wine/2``)."""
    server = config.server.max_message_bytes
    limits = {name: model.limits.max_message_bytes for name, model in config.models.items()}
    for name, versions in config.versions.items():
        limits[name] = max((limits[version] or server) for version in versions)
    return {name: limit for name, limit in limits.items() if limit is not None and limit != server}


def receive_limit(config: ServiceConfig) -> int:
    """gRPC's own receive limit: the server's, or a model's where that is larger (the others
    then keep the server's, by :func:`sized`)."""
    models = (model.limits.max_message_bytes or 0 for model in config.models.values())
    return max(config.server.max_message_bytes, *models)


Reader = Callable[[bytes], Any]


def sized(
    deserialize: Reader,
    limits: Mapping[str, int],
    default: int,
    model_of: Callable[[Any], str | None],
    unreadable: Callable[[InferdError], Any],
) -> Reader:
    """``deserialize``, answering a request over its model's limit (``limits``; ``default``
    for one that names no model of them) with ``unreadable(MessageTooLarge(...))``, which the
    handler's wrapper raises (RESOURCE_EXHAUSTED naming the model and the limit)."""

    def read(data: bytes) -> Any:
        request = deserialize(data)
        model = model_of(request)
        limit = limits.get(model or "", default)
        if len(data) > limit:
            owner = "its limit" if model in limits else "the server's limit"
            where = f"model {model!r}: " if model else ""
            key = "limits.max_message_bytes" if model in limits else "max_message_bytes"
            return unreadable(MessageTooLarge(
                f"{where}the request is {len(data)} bytes, over {owner} of {limit} ({key})",
                model=model or "", max_message_bytes=limit, bytes=len(data),
            ))  # fmt: skip
        return request

    return read
