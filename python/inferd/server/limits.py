"""Limits against abuse that the server applies before a request reaches the engine.

- :class:`TokenBucket`: a token's request rate (``[[server.auth.tokens]] rate``, ``burst``);
  under ``--workers N`` the buckets live in a :class:`SharedRates` table that every worker
  of the server takes from, so that the rate is the server's, not each process's.
- :func:`message_limits` and :func:`sized`: each model's largest request message
  (``limits.max_message_bytes``), checked on the request's bytes as they are read.

JSON payloads' depth and size are the input adapters' (:class:`inferd.adapters.JsonLimits`).
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

if sys.platform != "win32":
    import fcntl

from ..config import AuthToken, ServiceConfig
from ..errors import ConfigError, InferdError, MessageTooLarge, ResourceExhausted, retry_hint
from ..isolation.wire import FOLDER

__all__ = ["SharedRates", "TokenBucket", "bucket_for", "message_limits", "receive_limit", "sized"]


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
        raise self._refusal(self._tokens)

    def _refusal(self, tokens: float) -> ResourceExhausted:
        wait_ms = retry_hint(math.ceil((1 - tokens) / self.rate * 1000), jitter=False)  # the wait is exact
        return ResourceExhausted(
            f"token {self._name!r} is over its rate of {self.rate:g} requests a second (burst {self.burst}): "
            f"retry in {wait_ms} ms", retry_after_ms=wait_ms, token=self._name, rate=f"{self.rate:g}", burst=self.burst,
        )  # fmt: skip


class SharedTokenBucket(TokenBucket):
    """A :class:`TokenBucket` whose tokens and time are a slot of a :class:`SharedRates`
    table, taken under the slot's lock: every worker process of the server draws on it."""

    __slots__ = ("_table", "_slot")

    def __init__(self, name: str, rate: float, burst: int, table: SharedRates, slot: int) -> None:
        super().__init__(name, rate, burst)
        self._table = table
        self._slot = slot

    def take(self) -> None:
        tokens = self._table.take(self._slot, self.rate, self.burst)
        if tokens is not None:
            raise self._refusal(tokens)


_SLOT = struct.Struct("=dd")  # a token's bucket: its tokens, the monotonic time they were counted


_PREFIX = "inferd-rates-"


def _remove_orphans(folder: str) -> None:
    """Removes the tables of servers that are gone (``inferd-rates-PID-...``, PID not running)."""
    for name in os.listdir(folder):
        pid = name[len(_PREFIX) :].partition("-")[0]
        if not name.startswith(_PREFIX) or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
        except PermissionError:
            pass  # running, as another user


class SharedRates:
    """The token buckets of one server, shared by its worker processes (``--workers N``).

    A small file (in ``/dev/shm`` where there is one: memory, not disk) that each process maps:
    one slot a configured token, its tokens and the time they were counted. A slot is read
    and written under an ``fcntl`` record lock on its bytes, which the kernel drops if a
    worker dies holding it (a process-shared semaphore would stay taken and stop them all).
    The clock is ``time.monotonic()``, the same in every process of the machine. The lock is
    a process's, not a thread's: each worker takes from its table on its event loop only.

    The server's parent process :meth:`create` s it before it starts the workers; it reaches
    them pickled, as its path (each one maps the file as it unpickles it), and the parent
    :meth:`unlink` s it when they have stopped. Its name holds the parent's pid: a parent
    killed by SIGKILL leaves its file behind, and the next server to make one on the machine
    removes those of parents that are gone."""

    def __init__(self, path: str, slots: int) -> None:
        self.path = path
        self.slots = slots
        self._file = open(path, "r+b")  # closed by close()
        self._map = mmap.mmap(self._file.fileno(), _SLOT.size * slots)

    @classmethod
    def create(cls, tokens: Sequence[AuthToken]) -> SharedRates:
        """A table with a slot for each of ``tokens`` (in order), each bucket full."""
        if sys.platform == "win32":
            raise ConfigError("--workers with a token's rate needs fcntl record locks, which Windows lacks")
        _remove_orphans(FOLDER)
        descriptor, path = tempfile.mkstemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=FOLDER)
        now = time.monotonic()
        with os.fdopen(descriptor, "wb") as file:
            for token in tokens:
                bucket = bucket_for(token)
                file.write(_SLOT.pack(float(bucket.burst if bucket is not None else 0), now))
        return cls(path, len(tokens))

    def __reduce__(self) -> tuple[Any, ...]:
        return (SharedRates, (self.path, self.slots))

    def take(self, slot: int, rate: float, burst: int) -> float | None:
        """Takes a token from bucket ``slot`` (None), or says how many it holds (under one)."""
        offset = slot * _SLOT.size
        descriptor = self._file.fileno()
        fcntl.lockf(descriptor, fcntl.LOCK_EX, _SLOT.size, offset)
        try:
            tokens, stamp = _SLOT.unpack_from(self._map, offset)
            now = time.monotonic()  # under the lock: each process counts from the last one's time
            tokens = min(burst, tokens + max(0.0, now - stamp) * rate)
            taken = tokens >= 1
            _SLOT.pack_into(self._map, offset, tokens - 1 if taken else tokens, now)
        finally:
            fcntl.lockf(descriptor, fcntl.LOCK_UN, _SLOT.size, offset)
        return None if taken else tokens

    def close(self) -> None:
        self._map.close()
        self._file.close()

    def unlink(self) -> None:
        """Closes the table and removes its file (the parent's, once its workers are gone)."""
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def bucket_for(token: AuthToken, shared: tuple[SharedRates, int] | None = None) -> TokenBucket | None:
    """The token's bucket, or None without a ``rate``. The burst defaults to one second's
    worth of requests (``rate`` rounded up, at least 1). With ``shared`` (a table and the
    token's slot in it), the bucket is that slot, which the server's workers share."""
    if token.rate is None:
        return None
    burst = token.burst or max(1, math.ceil(token.rate))
    if shared is not None:
        return SharedTokenBucket(token.name, token.rate, burst, *shared)
    return TokenBucket(token.name, token.rate, burst)


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
