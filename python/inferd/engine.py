"""The engine: one pipeline per kind of call, and the models' reports.

    infer:  admit -> (setup) -> adapt -> preprocess -> [batch] -> run -> postprocess -> answer
    stream: admit -> (setup) -> adapt -> preprocess -> stream -> chunk, chunk, ..., final

Each stage is called through its :class:`~inferd.stages.Runner`, which knows where it runs
(on the loop, awaited, or in a thread); a request whose stages all run on the loop never
suspends between them. Every stage is timed. Flow control (requests in flight), deadlines and
cancellation are applied here, and the output adapter decides the answer's kind, so that the
transport only converts messages. Nothing here knows gRPC.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .adapters import OutputKind, Payload, adapt_output
from .config import ServiceConfig
from .errors import DeadlineExceeded, InvalidInput, Unimplemented
from .graph import GraphWorkflow, Models, Plan, build_plans, current_caller, graph_class
from .reports import BatchingReport, ModelReport, model_report
from .lane import Lane as _Lane
from .repository import ModelEntry, ModelState, Repository
from .stages import Stages
from .telemetry import Telemetry
from .tracing import Tracing, current_call
from .workflow import TensorSpec, Workflow, WorkflowSpec

__all__ = ["Engine", "Result", "Chunk", "ModelReport", "ModelState", "BatchingReport"]

logger = logging.getLogger("inferd.engine")

#: JSON payloads larger than this are adapted in a thread (the Rust core releases the GIL);
#: smaller ones inline, where a thread hop would cost more than the parsing.
INLINE_ADAPT_BYTES = 64 * 1024

Timings = tuple[tuple[str, float], ...]
T = TypeVar("T")


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 1 µs a request more
class Result:
    """A model's answer to one request, as the output adapter made it."""

    #: What ``output`` is (see :func:`inferd.adapters.adapt_output`).
    kind: OutputKind
    output: Any
    #: (stage, milliseconds) in the order the stages ran, ending with "total".
    timings: Timings
    #: Metadata about the output (``sample_rate`` of audio).
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a streamed answer; the last one has ``final`` set and the timings."""

    kind: OutputKind
    output: Any
    parameters: dict[str, Any] = field(default_factory=dict)
    final: bool = False
    timings: Timings = ()


class _Clock:
    """One request's stage timings; also what a graph's nodes (and any call to another model,
    :mod:`inferd.graph.handles`) know of the request: its deadline, and where their timings go."""

    __slots__ = ("started", "mark", "timings", "calls", "deadline", "stages")

    def __init__(self, deadline: float | None) -> None:
        self.started = self.mark = time.perf_counter()
        self.timings: list[tuple[str, float]] = []
        #: (node:NAME or call:MODEL, ms) of the other models this request called.
        self.calls: list[tuple[str, float]] = []
        self.deadline = deadline
        #: The stages the request uses, once it has them (it leaves them when it ends).
        self.stages: Stages | None = None

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings.append((stage, (now - self.mark) * 1000))
        self.mark = now

    def record(self, stage: str, ms: float) -> None:
        """A stage measured elsewhere (the batcher's queue and run)."""
        self.timings.append((stage, ms))
        self.mark = time.perf_counter()

    def finish(self, lane: _Lane, chunks: Sequence[float] = ()) -> Timings:
        self.timings.append(("total", (time.perf_counter() - self.started) * 1000))
        # A graph's nodes are timed apart from its stages (they ran inside its run).
        timings = (*self.timings[:-1], *self.calls, self.timings[-1]) if self.calls else tuple(self.timings)
        lane.entry.stats.record_all(timings)
        if lane.telemetry is not None:
            lane.telemetry.record_stages(lane.entry.name, timings)
        if lane.tracing is not None:
            span = current_call.get()
            if span is not None:
                stages = tuple(self.timings) if self.calls else timings
                lane.tracing.stages(span, lane.entry.name, self.started, stages, chunks)
        return timings


async def _by(deadline: float | None, model: str, work: Coroutine[Any, Any, T]) -> T:
    """Awaits ``work``, cancelled when ``deadline`` (``time.monotonic()``) passes: then
    DeadlineExceeded."""
    if deadline is None:
        return await work
    timeout = asyncio.timeout(deadline - time.monotonic())
    try:
        async with timeout:
            return await work
    except TimeoutError:
        if not timeout.expired():
            raise  # the work's own (a graph's node that timed out)
        raise _late(model) from None


def _late(model: str) -> DeadlineExceeded:
    return DeadlineExceeded(f"model {model!r}: deadline exceeded", model=model)


class Engine:
    """Serves the models of one configuration."""

    def __init__(self, config: ServiceConfig, tracing: Tracing | None = None) -> None:
        """``tracing``: where spans go (None: tracing off; the server makes it, as
        :func:`inferd.server.otlp.make_tracing`)."""
        self.config = config
        #: Each graph's plan, validated now: a graph that cannot run never starts.
        self.plans: dict[str, Plan] = build_plans(config)
        self.repository = Repository(
            config,
            classes={name: graph_class(plan) for name, plan in self.plans.items()},
            bind=self._bind,
        )
        #: What the server counts for Prometheus (None: metrics off).
        self.telemetry = Telemetry(config) if config.server.metrics.enabled else None
        self.tracing = tracing
        self._lanes = {entry.name: _Lane(entry, self.telemetry, self.tracing) for entry in self.repository}
        for name, plan in self.plans.items():
            self._lanes[name].keeps_deadline = plan.keeps_deadline
        self._interfaces: dict[str, tuple[Stages | None, tuple[str, list[str], bool]]] = {}

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Sets up the eager models (failures are recorded on the model, not raised)."""
        eager = [entry.name for entry in self.repository if entry.config.setup == "eager"]
        await asyncio.gather(*(self.repository.setup(name) for name in eager), return_exceptions=True)

    def _bind(self, entry: ModelEntry, workflow: Workflow) -> None:
        """Gives a new workflow its handles to the other models (``self.models``)."""
        workflow.models = Models(self, entry.name)
        if isinstance(workflow, GraphWorkflow):
            workflow.engine = self

    def model_names(self) -> list[str]:
        """Every name a request can give: each served model, and each versioned model's own."""
        return [entry.name for entry in self.repository] + list(self.repository.versions)

    def model_facts(self, model: str) -> tuple[WorkflowSpec, tuple[list[TensorSpec], list[TensorSpec]], bool]:
        """A set-up model's stages, signature and whether it takes parameters (graphs check
        their nodes against them)."""
        entry = self.repository.get(model)
        assert entry.spec is not None and entry.stages is not None
        return entry.spec, entry.stages.signature(), entry.stages.takes_parameters

    def eager_ready(self) -> bool:
        """Every eager model is set up and ready."""
        return all(
            entry.state is ModelState.READY for entry in self.repository if entry.config.setup == "eager"
        )

    def states(self) -> dict[str, ModelState]:
        """Each model's state, by name (a versioned model's: its latest version's)."""
        return self._by_name(lambda entry: entry.state)

    def serving(self) -> dict[str, bool]:
        """Whether each set-up model can serve now (an isolated one: some worker process runs)."""
        return self._by_name(lambda entry: entry.stages is None or bool(getattr(entry.stages.workflow, "serving", True)))

    def _by_name(self, value: Callable[[ModelEntry], T]) -> dict[str, T]:
        """``value`` of each model, and of each versioned one's latest version by its bare name."""
        repository = self.repository
        by_name = {entry.name: value(entry) for entry in repository}
        return by_name | {name: value(repository.latest(name)) for name in repository.versions}

    def on_state_change(self, listener: Callable[[str, ModelState], None]) -> None:
        """Calls ``listener(model, state)`` on the loop whenever a model's state changes."""
        self.repository.listeners.append(lambda entry: listener(entry.name, entry.state))

    async def setup(self, model: str) -> ModelReport:
        """The Setup RPC: prepares a declared model (idempotent, shared); every served
        version of a versioned one."""
        for name in self.repository.named(model):
            await self.repository.setup(name)
        return self.report(model)

    def describe(self) -> list[ModelReport]:
        """Every model's report, in the configuration's order."""
        return [self._report(lane) for lane in self._lanes.values()]

    def report(self, model: str) -> ModelReport:
        """One model's report; NOT_FOUND for a model the configuration does not declare."""
        return self._report(self._lane(model))

    def interface(self, model: str) -> tuple[str, list[str], bool]:
        """What a transport needs of a model on every request, cheaply: its input format, the
        names of the outputs it declares (once set up) and whether it streams."""
        entry = self._lane(model).entry
        stages = entry.stages
        cached = self._interfaces.get(model)
        if cached is None or cached[0] is not stages:
            names: list[str] = []
            if stages is not None:
                try:
                    names = [spec.name for spec in stages.signature()[1]]
                except Exception:  # a workflow's own signature() failing must not fail a request
                    logger.warning("model %s: signature() failed", model, exc_info=True)
            streaming = entry.spec.streaming if entry.spec is not None else False
            cached = self._interfaces[model] = (stages, (entry.config.input.format, names, streaming))
        return cached[1]

    async def ready(self, model: str) -> None:
        """Sets a lazy model up as its first request would (an explicit one not set up refuses)."""
        await self.repository.ready(self._lane(model).entry)

    async def load(self, model: str) -> ModelReport:
        """Loads a declared model (Load, RepositoryModelLoad, ``inferd load``): sets it up,
        also after an unload; a model that is ready is reloaded by an atomic swap. A
        versioned model's name loads each served version in turn."""
        for name in self.repository.named(model):
            await self.repository.load(name, functools.partial(self._retire, self._lanes[name]))
        return self.report(model)

    async def _retire(self, lane: _Lane, old: Stages) -> None:
        """After a reload: waits for the old stages' last request, then stops their batcher."""
        await old.drained()
        await lane.retire(old)

    async def unload(self, model: str) -> ModelReport:
        """Unloads a model: new requests are refused at once, those in flight finish, then its
        batcher stops and its teardown runs; what it held is freed. A versioned model's name
        unloads every served version."""
        for name in self.repository.named(model):
            await self.repository.unload(name, self._lanes[name].drain)
        return self.report(model)

    async def close(self) -> None:
        """Stops the batchers, tears the models down and stops the stage threads."""
        for lane in self._lanes.values():
            if lane.batcher is not None:
                await lane.batcher.close()
                lane.batcher = None
        await self.repository.teardown()
        for entry in self.repository:  # each model's own stage threads
            entry.threads.shutdown()
        if self.tracing is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.tracing.shutdown)  # exports what is left

    # -- requests ------------------------------------------------------------------------

    def _lane(self, model: str) -> _Lane:
        lane = self._lanes.get(model)
        if lane is None:  # a versioned model's own name: its latest version; else NOT_FOUND
            lane = self._lanes[self.repository.get(model).name]
        return lane

    async def infer(
        self,
        model: str,
        payload: Payload,
        parameters: dict[str, Any] | None = None,
        *,
        deadline: float | None = None,
    ) -> Result:
        """Runs one request. ``deadline`` is a ``time.monotonic()`` instant."""
        lane = self._lane(model)
        with lane:
            deadline = lane.deadline(deadline)
            stages = lane.entry.stages
            work = self._infer(lane, payload, parameters or {}, deadline)
            if deadline is None or (
                # Nothing can suspend it (its deadline is checked before it starts; once
                # started it cannot be stopped, as a stage in a thread cannot), or what can
                # (a graph's calls to models) keeps the deadline itself.
                stages is not None and (stages.on_loop or lane.keeps_deadline)
                and lane.entry.config.batching is None and not _adapts_in_thread(payload)
            ):  # fmt: skip
                return await work
            return await _by(deadline, model, work)

    async def _infer(self, lane: _Lane, payload: Payload, parameters: dict[str, Any], deadline: float | None) -> Result:
        clock = _Clock(deadline)
        caller = current_caller.set(clock)
        try:
            return await self._infer_timed(lane, payload, parameters, deadline, clock)
        finally:
            current_caller.reset(caller)
            if clock.stages is not None:
                clock.stages.leave()

    async def _infer_timed(
        self, lane: _Lane, payload: Payload, parameters: dict[str, Any], deadline: float | None, clock: _Clock
    ) -> Result:
        stages, inputs, features = await self._prepare(lane, payload, parameters, deadline, clock, streaming=False)
        if lane.entry.config.batching is not None:
            outputs, queue_ms, run_ms = await lane.batch_queue(stages).submit(features, deadline)
            clock.record("queue", queue_ms)
            clock.record("run", run_ms)
        else:
            run = stages.run
            assert run is not None
            outputs = run.start(parameters, features)
            if run.suspends:
                outputs = await outputs
            clock.lap("run")
        postprocess = stages.postprocess
        if postprocess is not None:
            outputs = postprocess.start(parameters, inputs, outputs)
            if postprocess.suspends:
                outputs = await outputs
            clock.lap("postprocess")
        kind, output, metadata = adapt_output(outputs, "object" if payload.raw else payload.kind)
        return Result(kind, output, clock.finish(lane), metadata)

    async def _prepare(
        self,
        lane: _Lane,
        payload: Payload,
        parameters: dict[str, Any],
        deadline: float | None,
        clock: _Clock,
        *,
        streaming: bool,
    ) -> tuple[Stages, Any, Any]:
        """Setup (if lazy), the checks, adapt and preprocess: what Infer and Stream share.
        Returns (stages, inputs, features)."""
        entry = lane.entry
        if deadline is not None and deadline <= time.monotonic():
            raise _late(entry.name)
        stages = entry.stages
        if stages is None or entry.state is not ModelState.READY:
            await self.repository.ready(entry)
            clock.lap("setup")  # a lazy model's first request waits for its setup
            stages = entry.stages
            assert stages is not None
        if streaming and not stages.streaming:
            raise Unimplemented(f"model {entry.name!r} does not stream: call Infer", model=entry.name)
        if not streaming and not stages.unary:
            raise Unimplemented(f"model {entry.name!r} only streams: call Stream", model=entry.name)
        if parameters and not stages.takes_parameters:
            names = ", ".join(sorted(parameters))
            raise InvalidInput(f"model {entry.name!r} takes no parameters (got: {names})", model=entry.name)
        clock.stages = stages
        stages.users += 1
        lane.preparing += 1
        try:
            if _adapts_in_thread(payload):
                inputs = await stages.threads.run(lambda: entry.adapter(payload))
            else:
                inputs = entry.adapter(payload)
            clock.lap("adapt")
            features = inputs
            preprocess = stages.preprocess
            if preprocess is not None:
                features = preprocess.start(parameters, inputs)
                if preprocess.suspends:
                    features = await features
                clock.lap("preprocess")
        finally:
            lane.preparing -= 1
        return stages, inputs, features

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
        lane = self._lane(model)
        parameters = parameters or {}
        with lane:
            deadline = lane.deadline(deadline)
            clock = _Clock(deadline)
            try:
                prepare = self._prepare(lane, payload, parameters, deadline, clock, streaming=True)
                stages, _, features = await _by(deadline, model, prepare)
                # Set and put back by value: a generator's steps may run in other contexts (wait_for).
                previous = current_caller.get()
                current_caller.set(clock)
                chunks = stages.stream(features, parameters)
                telemetry = lane.telemetry
                sent: list[float] | None = [] if lane.tracing is not None else None
                first = True
                try:
                    while True:
                        try:
                            if deadline is None:
                                output = await anext(chunks)
                            else:
                                output = await asyncio.wait_for(anext(chunks), deadline - time.monotonic())
                        except StopAsyncIteration:
                            break
                        except TimeoutError:
                            raise _late(model) from None
                        if telemetry is not None:
                            if first:
                                telemetry.record_first_chunk(model, time.perf_counter() - clock.started)
                                first = False
                            telemetry.record_chunk(model)
                        if sent is not None:
                            sent.append(time.perf_counter())
                        kind, value, metadata = adapt_output(output, "object" if payload.raw else payload.kind)
                        yield Chunk(kind, value, metadata)
                finally:
                    await chunks.aclose()
                    current_caller.set(previous)
                clock.lap("stream")
                yield Chunk("none", None, final=True, timings=clock.finish(lane, sent or ()))
            finally:
                if clock.stages is not None:
                    clock.stages.leave()

    # -- reports -------------------------------------------------------------------------

    def _report(self, lane: _Lane) -> ModelReport:
        return model_report(lane.entry, lane.batcher, lane.inflight, self.telemetry, self.plans.get(lane.entry.name))


def _adapts_in_thread(payload: Payload) -> bool:
    return payload.kind == "json" and len(payload.value) > INLINE_ADAPT_BYTES
