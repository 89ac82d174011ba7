"""Dynamic batching: joins concurrent requests of one model between ``preprocess`` and ``run``.

A request's features (named numpy tensors whose first axis is rows) wait in the model's queue.
A batch is released when it is *full* (``max_batch_size`` rows), when it reaches a *preferred*
size and nothing else is waiting, when the oldest request has waited ``max_delay_ms``
(*delay*), early so that a request's *deadline* can still be met, or at once when no other
request is on its way to the queue (*idle*). While every run slot is busy, batches grow.

What users of other servers trip over, and how it is avoided here:
- sizes count rows, so a batch never exceeds ``max_batch_size``; a larger request is split
  into several batches and its outputs joined again;
- a request that cannot join (other tensor names, dtypes or trailing shapes) waits for the
  next batch instead of failing the one forming;
- a request cancelled or past its deadline leaves the queue before its batch forms, unrun;
- the queue is bounded (``max_queue`` rows): over it, RESOURCE_EXHAUSTED with a retry hint;
- a model exception, or the wrong number of rows back, fails only that batch's requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import BatchingConfig
from .errors import InternalError, InvalidInput, ResourceExhausted, Unavailable, retry_hint
from .schema import concat_tensors, split_tensors
from .tracing import Span, Tracing, current_call

__all__ = ["Batcher", "BatchStats", "Tensors"]

logger = logging.getLogger("inferd.batching")

Tensors = dict[str, np.ndarray]
RunBatch = Callable[[Tensors], Awaitable[Any]]
RunBatchInline = Callable[[Tensors], Any]


@dataclass
class BatchStats:
    """What the batcher did since the server started (reported by ListModels)."""

    batches: int = 0
    rows: int = 0
    #: batch size (rows) -> how many batches had it
    sizes: Counter[int] = field(default_factory=Counter)
    #: why batches were released: full, preferred, delay, deadline, idle
    reasons: Counter[str] = field(default_factory=Counter)
    #: queue entries that left the queue unrun: cancelled, timed out, or the rest of a split
    #: request one of whose slices failed. (A request larger than max_batch_size enters the
    #: queue as one entry a slice; waiting, dropped and queue times count entries.)
    dropped: int = 0
    #: requests refused because the queue was full
    refused: int = 0
    queue_ms_total: float = 0.0
    queue_ms_max: float = 0.0
    queued_requests: int = 0
    #: requests waiting now, and batches running now
    waiting: int = 0
    running: int = 0


@dataclass(eq=False)
class _Item:
    features: Tensors
    rows: int
    signature: Signature
    future: asyncio.Future[Tensors]
    enqueued: float
    deadline: float | None
    taken: bool = False
    queue_ms: float = 0.0
    run_ms: float = 0.0
    #: The server span of the call it serves (with tracing on), for the batch span's links.
    span: Span | None = None


def as_tensors(features: Any, model: str, from_request: bool = False) -> Tensors:
    """A request's features as named tensors that share their first axis (rows).
    ``from_request``: the features are the request's payload as it came (the model has no
    preprocess), so other features are the caller's mistake, not the model's."""
    if isinstance(features, np.ndarray):
        features = {"input": features}
    if type(features) is dict and len(features) == 1:  # the common case, checked cheaply
        (value,) = features.values()
        if isinstance(value, np.ndarray) and value.ndim:
            return features
    if not isinstance(features, Mapping) or not features or not all(
        isinstance(value, np.ndarray) for value in features.values()
    ):
        if from_request:
            raise InvalidInput(
                f"model {model!r} batches tensors: send a tensor or named tensors, not {type(features).__name__}",
                model=model,
            )
        raise InternalError(
            f"model {model!r} batches, but its preprocess returned {type(features).__name__}: "
            "batching needs a numpy array or a dict of numpy arrays"
        )
    rows = {value.shape[0] if value.ndim else None for value in features.values()}
    if len(rows) != 1 or None in rows:
        raise InvalidInput(
            f"model {model!r} batches along the first axis, and the request's tensors do not agree on it",
            model=model,
        )
    return dict(features)


Signature = tuple[tuple[str, np.dtype[Any], tuple[int, ...]], ...]


def _signature(features: Tensors) -> Signature:
    """What requests must share to join one batch: tensor names, dtypes and shapes after the
    first axis (dtype objects compare as their names do, and far cheaper than their strings)."""
    if len(features) == 1:
        ((name, value),) = features.items()
        return ((name, value.dtype, value.shape[1:]),)
    return tuple(sorted(((name, value.dtype, value.shape[1:]) for name, value in features.items()), key=_first))


def _first(entry: tuple[str, Any, Any]) -> str:
    return entry[0]


class Batcher:
    """The batching queue of one model. ``run`` runs one batch (the model's ``run`` stage);
    ``run_inline``, where given, is the same stage as a plain call that runs on the loop."""

    def __init__(
        self,
        model: str,
        config: BatchingConfig,
        run: RunBatch,
        *,
        max_queue: int,
        max_running: int,
        arriving: Callable[[], bool] = lambda: True,
        run_inline: RunBatchInline | None = None,
        features_from_request: bool = False,
        tracing: Tracing | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.max_queue = max_queue
        self.stats = BatchStats()
        #: The model has no preprocess: what is submitted is the request's payload.
        self._from_request = features_from_request
        self._run = run
        #: The model's run as a plain call on the event loop (an inline model): the collector
        #: runs each batch itself, as soon as it forms, instead of in a task of its own.
        self._run_inline = run_inline
        #: Where each batch's run span goes (None: tracing off).
        self._tracing = tracing
        #: Whether another request of the model is on its way to the queue (adapt, preprocess).
        self._arriving = arriving
        self._items: deque[_Item] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._running = asyncio.Semaphore(max_running)
        self._held: _Item | None = None  # did not fit the last batch: first in the next
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._preferred = frozenset(config.preferred_sizes)
        #: mean seconds a batch takes to run, to release early enough for deadlines
        self._run_estimate = 0.0
        self._batch_tasks: set[asyncio.Task[None]] = set()

    # -- submitting ----------------------------------------------------------------------

    async def submit(self, features: Any, deadline: float | None) -> tuple[Tensors, float, float]:
        """Runs one request's features in a batch; returns (outputs, queue ms, run ms).

        ``deadline`` is a ``time.monotonic()`` instant. Cancelling the caller takes the
        request out of the queue if its batch has not formed yet.
        """
        tensors = as_tensors(features, self.model, self._from_request)
        rows = next(iter(tensors.values())).shape[0]
        self._admit(rows)
        limit = self.config.max_batch_size
        if rows <= limit:
            item = self._enqueue(tensors, rows, deadline)
            outputs = await item.future
            return outputs, item.queue_ms, item.run_ms
        # Larger than a batch: run it in slices (views, no copy) and join the outputs. The
        # whole request was admitted: every slice joins the queue, or none.
        items = [
            self._enqueue({name: value[start : start + limit] for name, value in tensors.items()}, min(limit, rows - start), deadline)
            for start in range(0, rows, limit)
        ]
        try:
            parts = await asyncio.gather(*(item.future for item in items))
        except BaseException:
            for item in items:
                item.future.cancel()
            raise
        joined = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        return joined, max(i.queue_ms for i in items), sum(i.run_ms for i in items)

    def _admit(self, rows: int) -> None:
        """Refuses a request that the queue cannot take now (RESOURCE_EXHAUSTED, with a retry
        hint), or ever (INVALID_ARGUMENT: more rows than the whole queue holds)."""
        if self._closed:
            raise Unavailable(f"model {self.model!r} is shutting down", model=self.model)
        if rows > self.max_queue:
            raise InvalidInput(
                f"model {self.model!r}: a request of {rows} rows is more than its batch queue holds "
                f"({self.max_queue} rows, limits.max_queue); send at most {self.max_queue} rows a request",
                model=self.model,
            )
        if self._queued_rows + rows > self.max_queue:
            self.stats.refused += 1
            runs = 1 + self._queued_rows / self.config.max_batch_size
            raise ResourceExhausted(
                f"model {self.model!r}: the batch queue is full ({self._queued_rows} rows waiting, "
                f"limit {self.max_queue}); retry later",
                # The rows ahead drain a batch a run: that many runs and a delay.
                retry_after_ms=retry_hint(self.config.max_delay_ms + self._run_estimate * 1000 * runs),
                model=self.model,
            )

    def _enqueue(self, features: Tensors, rows: int, deadline: float | None) -> _Item:
        loop = asyncio.get_running_loop()
        item = _Item(features, rows, _signature(features), loop.create_future(), time.perf_counter(), deadline)
        if self._tracing is not None:
            item.span = current_call.get()
        item.future.add_done_callback(lambda _: self._leave_queue(item))
        self._items.append(item)
        self._queued_rows += rows
        self.stats.waiting += 1
        self.stats.queued_requests += 1
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._collect())
        return item

    def _leave_queue(self, item: _Item) -> None:
        """A request that finished while still queued (cancelled, timed out) frees its place now."""
        if not item.taken:
            item.taken = True
            self._queued_rows -= item.rows
            self.stats.waiting -= 1
            self.stats.dropped += 1

    def _take(self, item: _Item) -> None:
        item.taken = True
        self._queued_rows -= item.rows
        self.stats.waiting -= 1
        item.queue_ms = (time.perf_counter() - item.enqueued) * 1000

    # -- forming batches -----------------------------------------------------------------

    def _next_live(self) -> _Item | None:
        if self._held is not None:
            item, self._held = self._held, None
            if not item.future.done():
                return item
        while self._items:
            item = self._items.popleft()
            if not item.future.done():
                return item
        return None

    async def _collect(self) -> None:
        while not self._closed:
            first = self._next_live()
            if first is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Wait for a run slot; requests keep queueing meanwhile and join this batch.
            await self._running.acquire()
            if first.future.done():
                self._running.release()
                continue
            batch, reason = await self._fill(first)
            if self._run_inline is not None:
                await self._run_batch(batch, reason)  # never suspends: runs here, at once
                continue
            task = asyncio.ensure_future(self._run_batch(batch, reason))
            self._batch_tasks.add(task)
            task.add_done_callback(self._batch_tasks.discard)

    async def _fill(self, first: _Item) -> tuple[list[_Item], str]:
        limit = self.config.max_batch_size
        batch = [first]
        rows = first.rows
        delay_at = first.enqueued + self.config.max_delay_ms / 1000
        earliest = first.deadline  # the batch's earliest deadline (None: none has one)
        reason = "delay"
        while True:
            if rows >= limit:
                reason = "full"
                break
            item = self._next_live()
            if item is None:
                if rows in self._preferred:
                    reason = "preferred"
                    break
                if not self._arriving():
                    reason = "idle"
                    break
                release_at, deadline_bound = (delay_at, False) if earliest is None else self._release_time(earliest, delay_at)
                remaining = release_at - time.perf_counter()
                if remaining <= 0:
                    reason = "deadline" if deadline_bound else "delay"
                    break
                self._wakeup.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._wakeup.wait()
                except TimeoutError:
                    reason = "deadline" if deadline_bound else "delay"
                    break
                continue
            if item.signature != first.signature or rows + item.rows > limit:
                self._held = item
                reason = "full"
                break
            batch.append(item)
            rows += item.rows
            if item.deadline is not None and (earliest is None or item.deadline < earliest):
                earliest = item.deadline
        live = [item for item in batch if not item.future.done()]
        for item in live:
            self._take(item)
        return live, reason

    def _release_time(self, earliest: float, delay_at: float) -> tuple[float, bool]:
        """When the batch must go: at ``delay_at`` (the delay), or earlier if the ``earliest``
        deadline among its requests needs it; and whether the deadline set it."""
        # Deadlines are monotonic-clock instants; the delay is on the perf counter.
        latest_start = earliest - time.monotonic() + time.perf_counter() - self._run_estimate
        return (latest_start, True) if latest_start < delay_at else (delay_at, False)

    # -- running batches -----------------------------------------------------------------

    async def _run_batch(self, batch: list[_Item], reason: str) -> None:
        """Runs one batch and settles its requests; with ``run_inline``, without suspending."""
        try:
            if not batch:
                return
            begun = self._begin(batch, reason)
            if begun is None:
                return
            started, offsets, inputs = begun
            try:
                outputs = self._run_inline(inputs) if self._run_inline is not None else await self._run(inputs)
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit) as error:
                self._fail(batch, error)
                raise
            except BaseException as error:
                # Anything else, even a BaseException that is no Exception (a native panic),
                # fails this batch alone: the collector that runs inline batches goes on.
                if not isinstance(error, Exception):
                    logger.error("model %s: a batch raised %r", self.model, error, exc_info=error)
                    error = InternalError(f"model {self.model!r} failed on this batch")
                self._fail(batch, error)
                return
            self._deliver(batch, outputs, offsets, started)
        finally:
            if batch:
                self.stats.running -= 1
            self._running.release()

    def _begin(self, batch: list[_Item], reason: str) -> tuple[float, list[int], Tensors] | None:
        """Records a batch and joins its requests' tensors: (start time, offsets, inputs), or
        None when they cannot be joined (the batch's requests have failed)."""
        self._record(batch, sum(item.rows for item in batch), reason)
        self.stats.running += 1
        started = time.perf_counter()
        try:
            inputs, offsets = concat_tensors([item.features for item in batch])
        except Exception as error:  # the signature check makes this a bug: fail the batch
            self._fail(batch, error)
            return None
        return started, offsets, inputs

    def _deliver(self, batch: list[_Item], outputs: Any, offsets: list[int], started: float) -> None:
        """Splits a batch's outputs back to its requests (or fails them with a clear error)."""
        try:
            parts = split_tensors(as_outputs(outputs, offsets[-1], self.model), offsets)
        except Exception as error:
            self._fail(batch, error)
            return
        ended = time.perf_counter()
        elapsed = ended - started
        if self._tracing is not None:
            self._tracing.batch(self.model, [item.span for item in batch], started, ended, offsets[-1])
        self._run_estimate = elapsed if not self._run_estimate else 0.8 * self._run_estimate + 0.2 * elapsed
        run_ms = elapsed * 1000
        for item, part in zip(batch, parts):
            item.run_ms = run_ms
            if not item.future.done():
                item.future.set_result(part)

    @staticmethod
    def _fail(batch: list[_Item], error: BaseException) -> None:
        for item in batch:
            if not item.future.done():
                item.future.set_exception(error if isinstance(error, Exception) else Unavailable("cancelled"))

    def _record(self, batch: list[_Item], rows: int, reason: str) -> None:
        stats = self.stats
        stats.batches += 1
        stats.rows += rows
        stats.sizes[rows] += 1
        stats.reasons[reason] += 1
        for item in batch:
            stats.queue_ms_total += item.queue_ms
            stats.queue_ms_max = max(stats.queue_ms_max, item.queue_ms)

    async def close(self) -> None:
        """Fails what still waits (the server is stopping) and stops collecting."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        for item in [*self._items, *([self._held] if self._held else [])]:
            if not item.future.done():
                item.future.set_exception(Unavailable(f"model {self.model!r} is shutting down"))
        self._items.clear()
        if self._batch_tasks:
            await asyncio.gather(*self._batch_tasks, return_exceptions=True)


def as_outputs(outputs: Any, rows: int, model: str) -> Tensors:
    """A batch's outputs as named tensors with one row per input row, or a clear error."""
    if isinstance(outputs, np.ndarray):
        outputs = {"output": outputs}
    if not isinstance(outputs, Mapping) or not all(isinstance(v, np.ndarray) for v in outputs.values()):
        raise InternalError(
            f"model {model!r} returned {type(outputs).__name__} for a batch; batching needs numpy outputs"
        )
    for name, value in outputs.items():
        got = value.shape[0] if value.ndim else 0
        if got != rows:
            raise InternalError(
                f"model {model!r} returned {got} rows of output {name!r} for a batch of {rows} input rows"
            )
    return dict(outputs)

