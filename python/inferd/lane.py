"""What the engine keeps of one model while it serves (:class:`Lane`)."""

from __future__ import annotations

import asyncio
import collections
import time

from .batching import Batcher
from .errors import ResourceExhausted, retry_hint
from .repository import ModelEntry
from .stages import Stages
from .telemetry import Telemetry
from .tracing import Tracing

__all__ = ["Lane"]


class Lane:
    """What the engine keeps of one model while it serves: requests in flight (admission, as a
    context manager that holds no state per request, so one serves them all), requests on
    their way to the batch queue, and the batcher."""

    __slots__ = ("entry", "inflight", "preparing", "batcher", "batched", "retired", "telemetry", "tracing", "idle", "backlog", "keeps_deadline")

    def __init__(self, entry: ModelEntry, telemetry: Telemetry | None, tracing: Tracing | None) -> None:
        self.entry = entry
        self.telemetry = telemetry
        self.tracing = tracing
        self.inflight = 0
        #: Requests in their input adapter or preprocess now: the ones that may join a batch.
        self.preparing = 0
        self.batcher: Batcher | None = None
        #: The stages the batcher runs (a reload makes a new batcher for the new ones).
        self.batched: Stages | None = None
        #: Batchers of stages a reload replaced, until their last request is done.
        self.retired: list[tuple[Stages, Batcher]] = []
        #: Set when the last request in flight ends, while an unload waits for it.
        self.idle: asyncio.Event | None = None
        #: When the refused requests were told to come back, those still to come: the queue of
        #: clients waiting outside (bounded).
        self.backlog: collections.deque[float] = collections.deque(maxlen=10_000)
        #: Its workflow keeps the request's deadline itself (a graph whose every wait is a
        #: model's call): the engine sets no timer on its run.
        self.keeps_deadline = False

    def __enter__(self) -> None:
        limit = self.entry.config.limits.max_inflight
        if self.inflight >= limit:
            raise ResourceExhausted(
                f"model {self.entry.name!r} has {self.inflight} requests in flight (limit {limit}); retry later",
                retry_after_ms=self.retry_after_ms(), model=self.entry.name,
            )  # fmt: skip
        self.inflight += 1

    def retry_after_ms(self) -> int:
        """When a refused request's turn will come: the requests in flight end at about
        ``inflight / recent time a request`` a second (Little's law), and the clients refused
        before it, whose time has not come yet, go first; with ±20% jitter, so that they do not
        all come back at once. Before any request has ended: 100 ms a client ahead."""
        now = time.monotonic()
        backlog = self.backlog
        while backlog and backlog[0] <= now:
            backlog.popleft()
        recent = self.entry.stats.recent_ms("total")
        if recent is None:
            hint = 100 * (len(backlog) + 1)
        else:
            hint = retry_hint(recent * (len(backlog) + 1) / max(1, self.inflight))
        backlog.append(now + hint / 1000)
        return hint

    def __exit__(self, *exc_info: object) -> None:
        self.inflight -= 1
        if self.idle is not None and not self.inflight:
            self.idle.set()

    async def drain(self) -> None:
        """Waits for the requests in flight to finish (the model refuses new ones), then stops
        the batcher."""
        while self.inflight:
            self.idle = asyncio.Event()
            await self.idle.wait()
        self.idle = None
        if self.batcher is not None:
            await self.batcher.close()
            self.batcher = None

    def deadline(self, deadline: float | None) -> float | None:
        """The caller's deadline, or the model's ``timeout_ms`` if that comes first."""
        timeout_ms = self.entry.config.limits.timeout_ms
        if timeout_ms is None:
            return deadline
        own = time.monotonic() + timeout_ms / 1000
        return own if deadline is None else min(own, deadline)

    async def retire(self, old: Stages) -> None:
        """Stops the batcher of stages a reload replaced (their last request is done)."""
        if self.batcher is not None and self.batched is old:
            self.retired.append((old, self.batcher))
            self.batcher = self.batched = None
        for stages, batcher in [pair for pair in self.retired if pair[0] is old]:
            self.retired.remove((stages, batcher))
            await batcher.close()

    def batch_queue(self, stages: Stages) -> Batcher:
        if self.batcher is not None and self.batched is not stages:
            # A reload swapped the stages: the old batcher runs its last batches on the old
            # ones (their requests hold them) until retire() stops it.
            assert self.batched is not None
            self.retired.append((self.batched, self.batcher))
            self.batcher = None
        if self.batcher is None:
            self.batched = stages
            entry = self.entry
            config = entry.config.batching
            assert config is not None and stages.run is not None
            run = stages.run
            self.batcher = Batcher(
                entry.name,
                config,
                run.run_batch,
                max_queue=entry.config.limits.max_queue,
                max_running=config.max_running,
                arriving=lambda: self.preparing > 0,
                run_inline=run.function if stages.on_loop else None,
                features_from_request=stages.preprocess is None,
                tracing=self.tracing,
            )
        return self.batcher
