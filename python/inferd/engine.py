"""The engine: runs a request through a model's stages.

    payload -> input adapter -> preprocess -> run -> postprocess -> answer
    payload -> input adapter -> preprocess -> stream -> chunk, chunk, ..., final

Every stage is timed. Flow control (requests in flight), deadlines and cancellation are
applied here, so that the transport only converts messages. Nothing here knows gRPC.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .adapters import Payload
from .batching import Batcher
from .config import ServiceConfig
from .errors import DeadlineExceeded, InvalidInput, Unimplemented
from .repository import InlineStages, ModelEntry, ModelState, Repository

__all__ = ["Engine", "Result", "Chunk"]

logger = logging.getLogger("inferd.engine")

#: JSON payloads larger than this are adapted in a thread (the Rust core releases the GIL);
#: smaller ones inline, where a thread hop would cost more than the parsing.
INLINE_ADAPT_BYTES = 64 * 1024

Timings = tuple[tuple[str, float], ...]
T = TypeVar("T")


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 1 µs a request more
class Result:
    """A model's answer to one request."""

    output: Any
    #: (stage, milliseconds) in the order the stages ran, ending with "total".
    timings: Timings


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a streamed answer; the last one has ``final`` set and the timings."""

    output: Any
    final: bool = False
    timings: Timings = ()


class _Clock:
    def __init__(self) -> None:
        self.started = self.mark = time.perf_counter()
        self.timings: list[tuple[str, float]] = []

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings.append((stage, (now - self.mark) * 1000))
        self.mark = now

    def record(self, stage: str, ms: float) -> None:
        """A stage measured elsewhere (the batcher's queue and run)."""
        self.timings.append((stage, ms))
        self.mark = time.perf_counter()

    def finish(self, entry: ModelEntry) -> Timings:
        self.timings.append(("total", (time.perf_counter() - self.started) * 1000))
        entry.stats.record_all(self.timings)
        return tuple(self.timings)


def _call(stage: tuple[Callable[..., Any], bool], parameters: dict[str, Any], *args: Any) -> Any:
    """One of :class:`InlineStages`' stages: (function, takes parameters)."""
    function, takes_parameters = stage
    return function(*args, parameters=parameters) if takes_parameters else function(*args)


def _inline_plan(entry: ModelEntry, payload: Payload) -> InlineStages | None:
    """The model's stages when this request runs them all on the loop (a ready model whose
    stages all run there, and no JSON too large to parse inline); else None."""
    if entry.state is not ModelState.READY:
        return None
    stages = entry.inline_stages()
    if stages is None or (payload.kind == "json" and len(payload.value) > INLINE_ADAPT_BYTES):
        return None
    return stages


def _inline_prepare(
    entry: ModelEntry, stages: InlineStages, payload: Payload, parameters: dict[str, Any], deadline: float | None
) -> tuple[Any, Any, list[tuple[str, float]], float]:
    """The inline path's start: deadline and parameters checked, input adapted, preprocessed.
    Returns (inputs, features, timings so far, start time)."""
    if deadline is not None and deadline <= time.monotonic():
        raise DeadlineExceeded(f"model {entry.name!r}: deadline exceeded", model=entry.name)
    if parameters:
        _check_parameters(entry, parameters)
    clock = time.perf_counter
    started = clock()
    inputs = entry.adapter(payload)
    mark = clock()
    timings = [("adapt", (mark - started) * 1000)]
    features = inputs
    if stages.preprocess is not None:
        features = _call(stages.preprocess, parameters, inputs)
        timings.append(("preprocess", (clock() - mark) * 1000))
    return inputs, features, timings, started


def _inline_finish(
    entry: ModelEntry,
    stages: InlineStages,
    parameters: dict[str, Any],
    inputs: Any,
    outputs: Any,
    timings: list[tuple[str, float]],
    started: float,
) -> Result:
    """The inline path's end: postprocess, the total, the model's stage statistics."""
    if stages.postprocess is not None:
        mark = time.perf_counter()
        outputs = _call(stages.postprocess, parameters, inputs, outputs)
        timings.append(("postprocess", (time.perf_counter() - mark) * 1000))
    timings.append(("total", (time.perf_counter() - started) * 1000))
    entry.stats.record_all(timings)
    return Result(outputs, tuple(timings))


def _run_inline(entry: ModelEntry, batch: Any) -> Any:
    """A batch through a model whose stages all run on the loop (its workflow as it is now)."""
    stages = entry.inline_stages()
    assert stages is not None
    return _call(stages.run, {}, batch)


def _check_parameters(entry: ModelEntry, parameters: dict[str, Any]) -> None:
    """Refuses parameters sent to a model none of whose stages takes any."""
    assert entry.spec is not None
    if parameters and not any(stage.takes_parameters for stage in entry.spec.stages.values()):
        names = ", ".join(sorted(parameters))
        raise InvalidInput(f"model {entry.name!r} takes no parameters (got: {names})", model=entry.name)


async def _by(deadline: float | None, model: str, work: Coroutine[Any, Any, T]) -> T:
    """Awaits ``work``, cancelled when ``deadline`` (``time.monotonic()``) passes: then
    DeadlineExceeded."""
    if deadline is None:
        return await work
    try:
        async with asyncio.timeout(_remaining(deadline)):
            return await work
    except TimeoutError:
        raise DeadlineExceeded(f"model {model!r}: deadline exceeded", model=model) from None


def _remaining(deadline: float | None) -> float | None:
    """Seconds left before a ``time.monotonic()`` deadline (may be negative)."""
    return None if deadline is None else deadline - time.monotonic()


class Engine:
    """Serves the models of one configuration."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._executor = ThreadPoolExecutor(config.server.threads, thread_name_prefix="inferd-stage")
        self.repository = Repository(config, self._executor)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Sets up the eager models (failures are recorded on the model, not raised)."""
        eager = [entry.name for entry in self.repository if entry.config.setup == "eager"]
        await asyncio.gather(*(self.repository.setup(name) for name in eager), return_exceptions=True)

    def eager_ready(self) -> bool:
        """Every eager model is set up and ready."""
        return all(
            entry.state is ModelState.READY for entry in self.repository if entry.config.setup == "eager"
        )

    async def setup(self, model: str) -> ModelEntry:
        """The Setup RPC: prepares a declared model (idempotent, shared)."""
        return await self.repository.setup(model)

    def models(self) -> list[ModelEntry]:
        return list(self.repository)

    async def close(self) -> None:
        """Stops the batchers, tears the models down and stops the stage threads."""
        for entry in self.repository:
            if entry.batcher is not None:
                await entry.batcher.close()
                entry.batcher = None
        await self.repository.teardown()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- requests ------------------------------------------------------------------------

    def _deadline(self, entry: ModelEntry, deadline: float | None) -> float | None:
        timeout_ms = entry.config.limits.timeout_ms
        if timeout_ms is None:
            return deadline
        own = time.monotonic() + timeout_ms / 1000
        return own if deadline is None else min(own, deadline)

    async def _prepare(
        self, entry: ModelEntry, payload: Payload, parameters: dict[str, Any], clock: _Clock, *, streaming: bool
    ) -> tuple[Any, Any]:
        """Setup (if lazy), adapt and preprocess: the part Infer and Stream share."""
        if entry.state is not ModelState.READY:
            await self.repository.ready(entry)
            clock.lap("setup")  # a lazy model's first request waits for its setup
        assert entry.spec is not None
        if streaming and not entry.spec.streaming:
            raise Unimplemented(f"model {entry.name!r} does not stream: call Infer", model=entry.name)
        if not streaming and not entry.spec.unary:
            raise Unimplemented(f"model {entry.name!r} only streams: call Stream", model=entry.name)
        _check_parameters(entry, parameters)
        entry.preparing += 1
        try:
            if payload.kind == "json" and len(payload.value) > INLINE_ADAPT_BYTES:
                inputs = await entry.in_thread(lambda: entry.adapter(payload))
            else:
                inputs = entry.adapter(payload)
            clock.lap("adapt")
            features = inputs
            if entry.has_stage("preprocess"):
                features = await entry.call("preprocess", inputs, parameters=parameters)
                clock.lap("preprocess")
        finally:
            entry.preparing -= 1
        return inputs, features

    def infer_now(
        self,
        model: str,
        payload: Payload,
        parameters: dict[str, Any] | None = None,
        *,
        deadline: float | None = None,
    ) -> Result | None:
        """:meth:`infer` for a request that is served in one go, without suspending: a ready
        model whose stages all run on the loop, batching off. Returns None for any other
        request, which :meth:`infer` serves (the servicer tries this first: it saves a
        coroutine a request, which microsecond models feel)."""
        entry = self.repository.get(model)
        stages = _inline_plan(entry, payload) if entry.config.batching is None else None
        if stages is None:
            return None
        with entry.admit():
            return self._infer_inline(entry, stages, payload, parameters or {}, self._deadline(entry, deadline))

    async def infer(
        self,
        model: str,
        payload: Payload,
        parameters: dict[str, Any] | None = None,
        *,
        deadline: float | None = None,
    ) -> Result:
        """Runs one request. ``deadline`` is a ``time.monotonic()`` instant."""
        entry = self.repository.get(model)
        parameters = parameters or {}
        with entry.admit():
            deadline = self._deadline(entry, deadline)
            stages = _inline_plan(entry, payload)
            if stages is not None:
                if entry.config.batching is None:
                    return self._infer_inline(entry, stages, payload, parameters, deadline)
                return await self._infer_inline_batched(entry, stages, payload, parameters, deadline)
            return await _by(deadline, model, self._infer(entry, payload, parameters, deadline))

    async def _infer(
        self, entry: ModelEntry, payload: Payload, parameters: dict[str, Any], deadline: float | None
    ) -> Result:
        clock = _Clock()
        inputs, features = await self._prepare(entry, payload, parameters, clock, streaming=False)
        if entry.config.batching is not None:
            outputs, queue_ms, run_ms = await self._batcher(entry).submit(features, deadline)
            clock.record("queue", queue_ms)
            clock.record("run", run_ms)
        else:
            outputs = await entry.call("run", features)
            clock.lap("run")
        if entry.has_stage("postprocess"):
            outputs = await entry.call("postprocess", inputs, outputs, parameters=parameters)
            clock.lap("postprocess")
        return Result(outputs, clock.finish(entry))

    def _infer_inline(
        self,
        entry: ModelEntry,
        stages: InlineStages,
        payload: Payload,
        parameters: dict[str, Any],
        deadline: float | None,
    ) -> Result:
        """A request whose every stage runs on the event loop (:meth:`ModelEntry.inline_stages`):
        in one go, as nothing can suspend it. Its deadline is checked before it starts; once
        started it cannot be stopped, as a stage in a thread cannot."""
        inputs, features, timings, started = _inline_prepare(entry, stages, payload, parameters, deadline)
        mark = time.perf_counter()
        outputs = _call(stages.run, parameters, features)
        timings.append(("run", (time.perf_counter() - mark) * 1000))
        return _inline_finish(entry, stages, parameters, inputs, outputs, timings, started)

    async def _infer_inline_batched(
        self,
        entry: ModelEntry,
        stages: InlineStages,
        payload: Payload,
        parameters: dict[str, Any],
        deadline: float | None,
    ) -> Result:
        """:meth:`_infer_inline` for a model that batches: it suspends only to wait for its
        batch, which the batcher runs on the loop too (the deadline bounds that wait)."""
        inputs, features, timings, started = _inline_prepare(entry, stages, payload, parameters, deadline)
        outputs, queue_ms, run_ms = await _by(deadline, entry.name, self._batcher(entry).submit(features, deadline))
        timings.append(("queue", queue_ms))
        timings.append(("run", run_ms))
        return _inline_finish(entry, stages, parameters, inputs, outputs, timings, started)

    def _batcher(self, entry: ModelEntry) -> Batcher:
        if entry.batcher is None:
            assert entry.config.batching is not None
            limits = entry.config.limits
            entry.batcher = Batcher(
                entry.name,
                entry.config.batching,
                lambda batch: entry.call("run", batch, limited=False),
                max_queue=limits.max_queue,
                max_running=entry.config.batching.max_running,
                arriving=lambda: entry.preparing > 0,
                run_inline=functools.partial(_run_inline, entry) if entry.inline_stages() is not None else None,
                features_from_request=not entry.has_stage("preprocess"),
            )
        return entry.batcher

    async def stream(
        self,
        model: str,
        payload: Payload,
        parameters: dict[str, Any] | None = None,
        *,
        deadline: float | None = None,
    ) -> AsyncIterator[Chunk]:
        """Runs one streaming request, yielding chunks as the model makes them.

        Closing the iterator (the client cancelled) closes the model's generator at once, so
        generation stops within one chunk.
        """
        entry = self.repository.get(model)
        parameters = parameters or {}
        with entry.admit():
            deadline = self._deadline(entry, deadline)
            clock = _Clock()
            _, features = await _by(deadline, model, self._prepare(entry, payload, parameters, clock, streaming=True))
            chunks = _chunks(entry, features, parameters)
            try:
                while True:
                    try:
                        if deadline is None:
                            output = await anext(chunks)
                        else:
                            output = await asyncio.wait_for(anext(chunks), _remaining(deadline))
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        raise DeadlineExceeded(f"model {model!r}: deadline exceeded", model=model) from None
                    yield Chunk(output)
            finally:
                await chunks.aclose()
            clock.lap("stream")
            yield Chunk(None, final=True, timings=clock.finish(entry))


_DONE = object()


async def _chunks(entry: ModelEntry, features: Any, parameters: dict[str, Any]) -> AsyncGenerator[Any, None]:
    """The model's ``stream`` as one async iterator, whatever kind of generator it is."""
    assert entry.spec is not None and entry.workflow is not None
    stage = entry.spec.stages["stream"]
    arguments: dict[str, Any] = {"parameters": parameters} if stage.takes_parameters else {}
    generator = entry.workflow.stream(features, **arguments)  # type: ignore[attr-defined]
    if stage.kind == "async_generator":
        try:
            async for chunk in generator:
                yield chunk
        finally:
            await generator.aclose()
        return
    # A plain generator: each step runs in a stage thread.
    sync_generator: Iterator[Any] = generator
    step: concurrent.futures.Future[Any] | None = None
    try:
        while True:
            step = await entry.submit(lambda: next(sync_generator, _DONE))
            chunk = await asyncio.wrap_future(step)
            if chunk is _DONE:
                return
            yield chunk
    finally:
        close = getattr(sync_generator, "close", None)
        if close is not None:
            if step is not None and not step.done():
                # The step still runs in its thread (the caller stopped waiting): a generator
                # cannot be closed while it runs, so its own thread closes it when it returns.
                step.add_done_callback(lambda _: close())
            else:
                await entry.in_thread(close)
