"""Models isolated in worker processes (``isolation = "process"``).

The model's workflow runs in ``workers`` processes the server starts, owns and watches
(:mod:`.process`); tensors cross in shared memory (:mod:`.wire`). The engine sees an ordinary
set-up model whose stages are async calls to a worker (:class:`Isolated`), so limits,
batching, deadlines, cancellation and streaming work as for any model. A worker that dies
fails only the calls in flight on it (UNAVAILABLE, naming the model and the signal), and is
started again with backoff; while none runs, the model's health is NOT_SERVING and its
requests are UNAVAILABLE. A worker grown past ``max_rss_mb`` takes no new calls, is replaced,
and ends once its calls are done. Other models never notice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..errors import Unavailable
from ..graph import current_caller
from ..stages import Stages, Threads
from ..workflow import Stage, Workflow, WorkflowSpec
from .process import WorkerProcess

__all__ = ["Isolated", "isolated_stages"]

logger = logging.getLogger("inferd.isolation")
#: Restarts wait this long after a death, doubling up to _BACKOFF_MAX while deaths follow.
_BACKOFF, _BACKOFF_MAX = 0.1, 10.0
_WATCH_S = 0.5


class Isolated(Workflow):
    """The engine's side of an isolated model: each stage a call to one of its workers."""

    def __init__(self, model: str, spec: dict[str, Any], workers: int, max_rss_mb: int | None, notify: Callable[[], None]) -> None:
        super().__init__()
        self.model = model
        self._spec = spec
        self._count = workers
        self._max_rss = max_rss_mb * (1 << 20) if max_rss_mb else None
        self._notify = notify
        self._slots = max(8, 2 * int(spec["threads"]))
        self.workers: list[WorkerProcess] = []
        self.deaths = 0
        self.restarts = 0
        self.cause = ""
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._backoff = _BACKOFF
        #: No batching: preprocess, run and postprocess cross as one call (the engine sees run).
        self.whole = False

    @property
    def serving(self) -> bool:
        return any(worker.alive and not worker.draining for worker in self.workers)

    async def start(self) -> WorkerProcess:
        workers = [self._new() for _ in range(self._count)]
        started = await asyncio.gather(*(worker.start() for worker in workers), return_exceptions=True)
        failures = [error for error in started if isinstance(error, BaseException)]
        if failures:
            for worker in workers:
                await worker.stop(1)
            raise failures[0]
        self.workers = workers
        self._spawn(self._watch())
        return workers[0]

    def _new(self) -> WorkerProcess:
        return WorkerProcess(self.model, self._spec, self._slots, self._exited)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _exited(self, worker: WorkerProcess) -> None:
        if self._closing or worker.draining:
            return
        self.deaths += 1
        self.cause = worker.cause
        logger.error("model %s: worker process %d died (%s); starting another", self.model, worker.pid, worker.cause)
        self._notify()
        self._spawn(self._replace(worker))

    async def _replace(self, old: WorkerProcess) -> None:
        while not self._closing:
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
            worker = self._new()
            try:
                await worker.start()
            except Exception as error:  # noqa: BLE001 -- tried again, later
                self.cause = f"a new worker failed its setup: {error}"
                logger.error("model %s: %s", self.model, self.cause)
                continue
            if self._closing:
                await worker.stop(1)
                return
            self.workers = [w for w in self.workers if w is not old] + [worker]
            self.restarts += 1
            logger.info("model %s: worker process %d serves in place of %d", self.model, worker.pid, old.pid)
            self._notify()
            return

    async def _watch(self) -> None:
        """Resets the backoff once workers live a while; replaces one grown past max_rss_mb."""
        while not self._closing:
            await asyncio.sleep(_WATCH_S)
            if self.serving:
                self._backoff = max(_BACKOFF, self._backoff / 2)
            if self._max_rss is None:
                continue
            for worker in list(self.workers):
                if worker.alive and not worker.draining and worker.rss_bytes() > self._max_rss:
                    await self._recycle(worker)

    async def _recycle(self, old: WorkerProcess) -> None:
        logger.warning("model %s: worker process %d grew past max_rss_mb (%d MiB): replacing it",
                       self.model, old.pid, old.rss_bytes() >> 20)  # fmt: skip
        worker = self._new()
        try:
            await worker.start()
        except Exception as error:  # noqa: BLE001 -- the old one serves on; tried again later
            logger.error("model %s: its replacement failed its setup (%s); the old one serves on", self.model, error)
            return
        old.draining = True
        self.workers = [w for w in self.workers if w is not old] + [worker]
        self.restarts += 1
        while old.inflight:
            await asyncio.sleep(0.01)
        await old.stop()

    def _pick(self) -> WorkerProcess:
        best: WorkerProcess | None = None
        for worker in self.workers:
            if worker.alive and not worker.draining and (best is None or worker.inflight < best.inflight):
                best = worker
        if best is None:
            why = self.cause or "not started"
            raise Unavailable(f"model {self.model!r}: no worker process is running ({why}); one is being started", model=self.model)
        return best

    async def call(self, stage: str, args: tuple[Any, ...], parameters: dict[str, Any] | None) -> Any:
        return await self._pick().call(stage, parameters or {}, args)

    async def preprocess(self, inputs: Any, parameters: dict[str, Any] | None = None) -> Any:
        return await self.call("preprocess", (inputs,), parameters)

    async def run(self, features: Any, parameters: dict[str, Any] | None = None) -> Any:
        if not self.whole:
            return await self.call("run", (features,), parameters)
        # preprocess, run and postprocess in one crossing; the worker's own timings join the
        # request's (as a graph's node calls do), "run" being the whole crossing.
        outputs, timings = await self.call("infer", (features,), parameters)
        caller = current_caller.get()
        if caller is not None:
            caller.calls.extend(timings)
        return outputs

    async def postprocess(self, inputs: Any, outputs: Any, parameters: dict[str, Any] | None = None) -> Any:
        return await self.call("postprocess", (inputs, outputs), parameters)

    async def stream(self, features: Any, parameters: dict[str, Any] | None = None) -> AsyncIterator[Any]:
        chunks = self._pick().stream(parameters or {}, features, self.whole)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    def signature(self) -> tuple[list[Any], list[Any]]:
        worker = next((w for w in self.workers if w.alive), None) or (self.workers[0] if self.workers else None)
        return worker.signature if worker is not None else ([], [])

    async def teardown(self) -> None:  # type: ignore[override]  # the engine awaits an async stage
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(worker.stop() for worker in self.workers), return_exceptions=True)


async def isolated_stages(name: str, config: Any, options: dict[str, Any], base_dir: Path, threads: Threads,
                          notify: Callable[[], None]) -> Stages:  # fmt: skip
    """An isolated model's workers, started and set up, and the stages the engine calls."""
    spec = {"workflow": config.workflow, "base_dir": base_dir, "options": options, "threads": config.limits.max_concurrency,
            "nice": config.nice}  # fmt: skip
    isolated = Isolated(name, spec, config.workers, config.max_rss_mb, notify)
    isolated.whole = config.batching is None
    first = await isolated.start()
    stages: dict[str, Stage] = {}
    takes = any(facts[1] for stage, facts in first.facts.items() if stage in ("preprocess", "run", "postprocess", "stream"))
    for stage, (kind, takes_parameters, overridden) in first.facts.items():
        if stage in ("setup", "ready") or (isolated.whole and stage in ("preprocess", "postprocess")):
            continue  # the worker runs them
        if isolated.whole and stage != "teardown":
            takes_parameters = takes  # the worker's whole pass takes the request's parameters
        generator = kind in ("generator", "async_generator")
        stages[stage] = Stage(stage, "async_generator" if generator else "async", takes_parameters,
                              overridden or stage == "teardown")  # fmt: skip
    stages.setdefault("teardown", Stage("teardown", "async", False, True))
    return Stages(isolated, WorkflowSpec(cls=Isolated, stages=stages), threads, inline=False)
