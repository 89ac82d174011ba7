"""How a model's stages run, and how long they take.

A workflow's stages are inspected once, at setup (:func:`inferd.workflow.inspect_workflow`),
and each gets a :class:`Runner` that knows where it runs:

- on the event loop: a plain stage marked :func:`inferd.workflow.inline`, or every plain
  request stage (preprocess, run, postprocess) of a model configured ``inline = true``;
- on the event loop, awaited: an ``async def`` stage;
- in the stage threads, under the model's ``max_concurrency`` (:class:`Threads`).

:class:`Stages` holds a set-up model's runners; the engine asks it for them and never looks at
the workflow itself. :class:`StageStats` keeps each stage's timing totals.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from .workflow import TensorSpec, Workflow, WorkflowSpec, cancellable

__all__ = ["Runner", "StageStat", "StageStats", "Stages", "Threads", "lower_priority"]


def lower_priority(nice: int | str, whole_process: bool) -> None:
    """Raises the calling thread's nice value by ``nice`` (a model's ``nice``): the kernel then
    gives its CPU to other work first. Threads started from it afterwards inherit the value.
    ``"idle"``: Linux's SCHED_IDLE policy (and nice 19), below any nice value: the thread runs
    only on a CPU nothing else wants, which the kernel counts as free when it places a waking
    thread, and gives way at once to whatever wakes there (nice 19 still takes its share, and
    a waking server thread can wait behind it: benches/README.md, "Capacity").

    Linux keeps a nice value and a policy for each thread; ``whole_process`` also lowers the
    process's threads already running (a worker process's, started before its spec was read).
    Elsewhere the process as a whole is lowered."""
    idle = nice == "idle"
    steps = 19 if idle else int(nice)
    if not sys.platform.startswith("linux"):
        os.nice(steps)
        return
    tids = [int(tid) for tid in os.listdir("/proc/self/task")] if whole_process else [threading.get_native_id()]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
            if idle:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except (ProcessLookupError, PermissionError):  # a thread that ended meanwhile
            continue


class Threads:
    """One model's stage threads, its own (no other model's work can take them): at most
    ``limit`` of its calls at once, and ``extra`` more for its batches (:meth:`run_unlimited`)."""

    def __init__(self, name: str, limit: int, extra: int = 0, nice: int | str = 0) -> None:
        initializer = functools.partial(lower_priority, nice, False) if nice else None
        self.executor: Executor = concurrent.futures.ThreadPoolExecutor(limit + extra, thread_name_prefix=f"inferd-stage:{name}",
                                                                        initializer=initializer)  # fmt: skip
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None  # made on the loop, at first use

    async def submit(self, function: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Starts ``function`` in a stage thread once one of the model's slots is free.

        The slot is held until the thread is done: a caller that stops waiting does not free
        it early, so the concurrency limit holds even under cancellation.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        slots = self._slots
        await slots.acquire()
        loop = asyncio.get_running_loop()
        try:
            future = self.executor.submit(function)
        except BaseException:
            slots.release()
            raise
        future.add_done_callback(functools.partial(_release_on, loop, slots))
        return future

    async def run(self, function: Callable[[], Any]) -> Any:
        """Runs ``function`` in a stage thread (see :meth:`submit`) and returns its result.

        If the caller is cancelled meanwhile (the client went, or the deadline passed), the
        thread cannot be stopped, but :func:`inferd.workflow.request_cancelled` turns true in
        it, so that a long stage can stop early and free its slot."""
        wrapped, cancelled = cancellable(function)
        try:
            return await asyncio.wrap_future(await self.submit(wrapped))
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def run_unlimited(self, function: Callable[[], Any]) -> Any:
        """Runs ``function`` in a stage thread outside the model's limit (the batcher bounds
        its batches itself)."""
        return await asyncio.wrap_future(self.executor.submit(function))


def _release_on(loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore, _: object) -> None:
    """Frees a model slot on its loop, from the thread that held it. A thread that outlives its
    loop (the server stopped while a setup ran on) has nothing left to free."""
    try:
        loop.call_soon_threadsafe(slots.release)
    except RuntimeError:
        pass  # the loop is closed


class Runner:
    """One stage of a set-up model, ready to call.

    ``start(parameters, *args)`` calls it: a stage that runs on the loop returns its result;
    one that ``suspends`` (async, or in a thread) returns an awaitable of it. The engine awaits
    only those, so a request whose stages all run on the loop never suspends between them.
    """

    __slots__ = ("name", "function", "takes_parameters", "suspends", "_threads", "_in_thread")

    def __init__(self, name: str, function: Callable[..., Any], takes_parameters: bool, where: str, threads: Threads):
        self.name = name
        self.function = function
        self.takes_parameters = takes_parameters
        self._in_thread = where == "thread"
        self.suspends = where != "loop"
        self._threads = threads

    def start(self, parameters: dict[str, Any], *args: Any) -> Any:
        function = self.function
        if self._in_thread:
            if self.takes_parameters:
                function = functools.partial(function, parameters=parameters)
            return self._threads.run(functools.partial(function, *args))
        return function(*args, parameters=parameters) if self.takes_parameters else function(*args)

    async def __call__(self, parameters: dict[str, Any], *args: Any) -> Any:
        """The stage's result, awaited where it suspends."""
        value = self.start(parameters, *args)
        return await value if self.suspends else value

    async def run_batch(self, batch: Any) -> Any:
        """``run`` for the batcher: in a thread outside the model's limit, or awaited."""
        if self._in_thread:
            return await self._threads.run_unlimited(functools.partial(self.function, batch))
        value = self.function(batch)
        return await value if self.suspends else value


#: The stages a model's ``inline = true`` puts on the loop (its setup and teardown stay in
#: threads: they are slow, and the loop must go on serving meanwhile).
_REQUEST_STAGES = frozenset(("preprocess", "run", "postprocess"))


class Stages:
    """A set-up model's stages: a :class:`Runner` for each one its workflow defines itself."""

    def __init__(self, workflow: Workflow, spec: WorkflowSpec, threads: Threads, *, inline: bool) -> None:
        self.workflow = workflow
        self.spec = spec
        self.threads = threads
        #: Requests using these stages now (see :meth:`leave`).
        self.users = 0
        self.idle: asyncio.Event | None = None
        self.unary = spec.unary
        self.streaming = spec.streaming
        #: Some stage declares ``parameters``: requests may carry them.
        self.takes_parameters = any(stage.takes_parameters for stage in spec.stages.values())
        runners: dict[str, Runner] = {}
        for name, stage in spec.stages.items():
            if not stage.overridden and name not in ("run", "stream"):
                continue  # the base class's default does nothing: skip it
            if stage.kind in ("async", "async_generator"):
                where = "async"
            elif stage.kind == "sync" and (stage.inline or (inline and name in _REQUEST_STAGES)):
                where = "loop"
            else:
                where = "thread"
            runners[name] = Runner(name, getattr(workflow, name), stage.takes_parameters, where, threads)
        self._runners = runners
        self.preprocess = runners.get("preprocess")
        self.run = runners.get("run")
        self.postprocess = runners.get("postprocess")
        #: Every unary stage runs on the loop: such a request never suspends between stages.
        self.on_loop = self.run is not None and not any(
            runner.suspends for runner in (self.preprocess, self.run, self.postprocess) if runner is not None
        )

    def leave(self) -> None:
        """One request that used these stages is done (the engine counts them in ``users``, so
        that a reload can wait for the old stages' last request before their teardown)."""
        self.users -= 1
        if not self.users and self.idle is not None:
            self.idle.set()

    async def drained(self) -> None:
        """Returns once no request uses these stages."""
        while self.users:
            self.idle = asyncio.Event()
            await self.idle.wait()
        self.idle = None

    def get(self, name: str) -> Runner | None:
        """The runner of a stage the workflow defines itself (setup, ready, teardown, ...)."""
        return self._runners.get(name)

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """The tensors the workflow declares its run takes and gives."""
        inputs, outputs = self.workflow.signature()
        return list(inputs), list(outputs)

    async def stream(self, features: Any, parameters: dict[str, Any]) -> AsyncGenerator[Any, None]:
        """The model's ``stream`` as one async iterator, whatever kind of generator it is.
        Closing it closes the model's generator."""
        stage = self.spec.stages["stream"]
        arguments: dict[str, Any] = {"parameters": parameters} if stage.takes_parameters else {}
        generator = self.workflow.stream(features, **arguments)  # type: ignore[attr-defined]
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
                step = await self.threads.submit(lambda: next(sync_generator, _DONE))
                chunk = await asyncio.wrap_future(step)
                if chunk is _DONE:
                    return
                yield chunk
        finally:
            close = getattr(sync_generator, "close", None)
            if close is not None:
                if step is not None and not step.done():
                    # The step still runs in its thread (the caller stopped waiting): a
                    # generator cannot be closed while it runs, so its thread closes it after.
                    step.add_done_callback(lambda _: close())
                else:
                    await self.threads.run(close)


_DONE = object()


@dataclass(slots=True)
class StageStat:
    count: int = 0
    total_ms: float = 0.0
    last_ms: float = 0.0
    max_ms: float = 0.0
    #: A moving average that follows the recent calls (each weighs a fifth): retry hints use it.
    recent_ms: float = 0.0

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0


class StageStats:
    """Per-stage timing totals of one model. Updated on the event loop thread only."""

    def __init__(self) -> None:
        self._stages: dict[str, StageStat] = {}

    def record(self, stage: str, ms: float) -> None:
        self.record_all(((stage, ms),))

    def record_all(self, timings: Iterable[tuple[str, float]]) -> None:
        """Records one request's (stage, ms) pairs."""
        stages = self._stages
        for stage, ms in timings:
            stat = stages.get(stage)
            if stat is None:
                stat = stages[stage] = StageStat()
            stat.count += 1
            stat.total_ms += ms
            stat.last_ms = ms
            stat.recent_ms = ms if stat.count == 1 else stat.recent_ms + 0.2 * (ms - stat.recent_ms)
            if ms > stat.max_ms:
                stat.max_ms = ms

    def snapshot(self) -> dict[str, StageStat]:
        return {name: StageStat(s.count, s.total_ms, s.last_ms, s.max_ms, s.recent_ms) for name, s in self._stages.items()}

    def recent_ms(self, stage: str) -> float | None:
        """The stage's recent milliseconds a call (None before its first)."""
        stat = self._stages.get(stage)
        return stat.recent_ms if stat is not None else None
