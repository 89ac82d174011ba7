"""The declared models: their workflows, their state, and their setup.

A model is *declared* by the configuration, *loading* while its setup runs, then *ready* or
*failed*. Setup is idempotent and shared: concurrent callers await one run. Only declared
models exist here, so a client can never make the server load code or files that the
configuration does not name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import functools
import importlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .adapters import Adapter, make_adapter
from .batching import Batcher
from .config import ModelConfig, ServiceConfig
from .errors import (
    ConfigError,
    ModelFailed,
    ModelNotFound,
    ModelNotReady,
    ResourceExhausted,
)
from .workflow import Workflow, WorkflowSpec, cancellable, inspect_workflow

__all__ = ["InlineStages", "ModelState", "ModelEntry", "Repository", "StageStats", "WORKFLOWS", "load_workflow_class"]

logger = logging.getLogger("inferd.repository")

#: Registered workflow kinds: name -> ("module:Class", what to install when the import fails).
WORKFLOWS: dict[str, tuple[str, str | None]] = {
    "onnx": ("inferd.workflows.onnx:OnnxWorkflow", "onnxruntime-gpu (pip install 'inferd[onnx]')"),
    "torch": ("inferd.workflows.torch:TorchWorkflow", "torch (pip install 'inferd[torch]')"),
    "echo": ("inferd.workflows.echo:EchoWorkflow", None),
    "textgen": ("inferd.workflows.textgen:TextGenWorkflow", "transformers (pip install 'inferd[textgen]')"),
    "bark": ("inferd.workflows.tts:BarkWorkflow", "transformers (pip install 'inferd[textgen]')"),
    "openai": ("inferd.workflows.remote_openai:OpenAIWorkflow", "openai (pip install 'inferd[remote]')"),
    "hf-inference": ("inferd.workflows.remote_hf:HFInferenceWorkflow", "huggingface_hub (pip install 'inferd[remote]')"),
    "tgi": ("inferd.workflows.remote_tgi:TGIWorkflow", "huggingface_hub (pip install 'inferd[remote]')"),
}


def load_workflow_class(reference: str, base_dir: Path | None = None) -> type[Workflow]:
    """Imports a workflow class from a registered kind or a ``"module:Class"`` reference.

    A module that is not importable from ``sys.path`` is looked for beside the configuration
    file (``base_dir``), as packflow's LocalLoader does. Failures raise
    :class:`~inferd.errors.ConfigError` with what exists or what to install.
    """
    hint: str | None = None
    if ":" not in reference:
        if reference not in WORKFLOWS:
            kinds = ", ".join(sorted(WORKFLOWS))
            raise ConfigError(
                f"unknown workflow {reference!r}: use a registered kind ({kinds}) or 'module:Class'"
            )
        reference, hint = WORKFLOWS[reference]
    module_name, _, class_name = reference.partition(":")
    if not module_name or not class_name:
        raise ConfigError(f"workflow {reference!r}: expected 'module:Class'")
    if base_dir is not None and (base_dir / (module_name.split(".")[0] + ".py")).exists():
        if str(base_dir) not in sys.path:
            sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if hint is not None and error.name != module_name:
            raise ConfigError(f"workflow {reference!r} needs {hint}: {error}") from error
        raise ConfigError(f"workflow {reference!r}: cannot import {module_name!r}: {error}") from error
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise ConfigError(f"workflow {reference!r}: module {module_name!r} has no {class_name!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, Workflow)):
        raise ConfigError(f"workflow {reference!r} is not a subclass of inferd.Workflow")
    return cls


class ModelState(enum.Enum):
    DECLARED = "declared"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(slots=True)
class StageStat:
    count: int = 0
    total_ms: float = 0.0
    last_ms: float = 0.0
    max_ms: float = 0.0

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
            if ms > stat.max_ms:
                stat.max_ms = ms

    def snapshot(self) -> dict[str, StageStat]:
        return {name: StageStat(s.count, s.total_ms, s.last_ms, s.max_ms) for name, s in self._stages.items()}


class InlineStages(NamedTuple):
    """A model's preprocess, run and postprocess, each (bound method, takes parameters) or None
    where the model has no such stage."""

    preprocess: tuple[Callable[..., Any], bool] | None
    run: tuple[Callable[..., Any], bool]
    postprocess: tuple[Callable[..., Any], bool] | None


@dataclass(eq=False)
class ModelEntry:
    """One declared model and everything the engine keeps about it."""

    name: str
    config: ModelConfig
    adapter: Adapter
    executor: Executor
    base_dir: Path
    state: ModelState = ModelState.DECLARED
    reason: str = ""
    setup_ms: float = 0.0
    spec: WorkflowSpec | None = None
    workflow: Workflow | None = None
    stats: StageStats = field(default_factory=StageStats)
    inflight: int = 0
    #: Requests in their input adapter or preprocess now: the ones that may join a batch.
    preparing: int = 0
    #: The model's batcher, when its configuration turns batching on (made by the engine).
    batcher: Batcher | None = None
    _setup_task: asyncio.Future[None] | None = None
    _slots: asyncio.Semaphore | None = None
    #: (workflow, its inline stages) as :meth:`inline_stages` last worked them out.
    _inline: tuple[Workflow | None, InlineStages | None] | None = None
    _admission: _Admission = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._admission = _Admission(self)

    # -- calling stages ------------------------------------------------------------------

    def has_stage(self, name: str) -> bool:
        """The workflow defines this stage itself (defaults that do nothing are skipped)."""
        assert self.spec is not None
        stage = self.spec.stages.get(name)
        return stage is not None and stage.overridden

    async def call(
        self, name: str, *args: Any, parameters: dict[str, Any] | None = None, limited: bool = True
    ) -> Any:
        """Runs one stage: async ones on the loop, plain ones in a thread under the model's
        concurrency limit (``limited=False``: the caller bounds concurrency itself, as the
        batcher does for batches)."""
        assert self.spec is not None and self.workflow is not None
        stage = self.spec.stages[name]
        function = getattr(self.workflow, name)
        if stage.takes_parameters:
            function = functools.partial(function, parameters=parameters or {})
        if stage.kind == "async":
            return await function(*args)
        if stage.inline or self.config.inline:
            return function(*args)
        if not limited:
            return await asyncio.wrap_future(self.executor.submit(function, *args))
        return await self.in_thread(functools.partial(function, *args))

    def inline_stages(self) -> InlineStages | None:
        """The model's unary stages as plain calls on the event loop, when every one it has
        runs there (inline, not async); else None.

        Without batching, such a request cannot suspend between its stages, so the engine runs
        it in one go, without the machinery a request that waits needs (timeouts, stage
        threads); with batching, it suspends only to wait for its batch, and the batcher runs
        the batch on the loop too.
        """
        workflow = self.workflow
        cached = self._inline
        if cached is not None and cached[0] is workflow:
            return cached[1]
        plan: InlineStages | None = None
        if workflow is not None and self.spec is not None and self.spec.unary:
            calls: list[tuple[Callable[..., Any], bool] | None] = []
            for name in ("preprocess", "run", "postprocess"):
                stage = self.spec.stages.get(name)
                if stage is None or (name != "run" and not stage.overridden):
                    calls.append(None)
                    continue
                if stage.kind != "sync" or not (stage.inline or self.config.inline):
                    calls = []
                    break
                calls.append((getattr(workflow, name), stage.takes_parameters))
            if calls:
                preprocess, run, postprocess = calls
                assert run is not None
                plan = InlineStages(preprocess, run, postprocess)
        self._inline = (workflow, plan)
        return plan

    async def submit(self, function: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Starts ``function`` in the stage threads once one of this model's slots is free.

        The slot is held until the thread is done: a caller that stops waiting does not free
        it early, so the concurrency limit holds even under cancellation.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.limits.max_concurrency)
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

    async def in_thread(self, function: Callable[[], Any]) -> Any:
        """Runs ``function`` in the stage threads (see :meth:`submit`) and returns its result.

        If the caller is cancelled meanwhile (the client went, or the deadline passed), the
        thread cannot be stopped, but :func:`inferd.workflow.request_cancelled` turns true in
        it, so that a long stage can stop early and free its slot."""
        wrapped, cancelled = cancellable(function)
        try:
            return await asyncio.wrap_future(await self.submit(wrapped))
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def admit(self) -> _Admission:
        """``with entry.admit():`` counts a request in flight, refusing it over the model's limit."""
        return self._admission

    @property
    def workflow_name(self) -> str:
        return self.config.workflow


class _Admission:
    """What :meth:`ModelEntry.admit` returns: a context manager that holds no state of its own,
    so one serves every request (a class: ``@contextmanager`` costs 2 µs a request more)."""

    __slots__ = ("_entry",)

    def __init__(self, entry: ModelEntry) -> None:
        self._entry = entry

    def __enter__(self) -> None:
        entry = self._entry
        limit = entry.config.limits.max_inflight
        if entry.inflight >= limit:
            raise ResourceExhausted(
                f"model {entry.name!r} has {entry.inflight} requests in flight (limit {limit}); retry later",
                retry_after_ms=_retry_hint_ms(entry),
                model=entry.name,
            )
        entry.inflight += 1

    def __exit__(self, *exc_info: object) -> None:
        self._entry.inflight -= 1


def _release_on(loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore, _: object) -> None:
    """Frees a model slot on its loop, from the thread that held it. A thread that outlives its
    loop (the server stopped while a setup ran on) has nothing left to free."""
    try:
        loop.call_soon_threadsafe(slots.release)
    except RuntimeError:
        pass  # the loop is closed


def _retry_hint_ms(entry: ModelEntry) -> int:
    """About one request's time: the mean total so far, at least 10 ms."""
    total = entry.stats.snapshot().get("total")
    return max(10, int(total.mean_ms)) if total else 100


class Repository:
    """The models that a configuration declares."""

    def __init__(self, config: ServiceConfig, executor: Executor) -> None:
        self.config = config
        #: Called (on the loop) whenever a model's state changes: health follows it.
        self.listeners: list[Callable[[ModelEntry], None]] = []
        self._entries: dict[str, ModelEntry] = {}
        for name, model in config.models.items():
            try:
                adapter = make_adapter(model.input)
            except ConfigError as error:
                raise ConfigError(f"model {name!r}: {error}") from None
            self._entries[name] = ModelEntry(
                name=name, config=model, adapter=adapter, executor=executor, base_dir=config.base_dir
            )

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def get(self, name: str) -> ModelEntry:
        """The declared model of that name; NOT_FOUND lists the ones that exist."""
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(self._entries) or "none"
            raise ModelNotFound(f"unknown model {name!r} (models: {known})", model=name)
        return entry

    async def setup(self, name: str) -> ModelEntry:
        """Sets a model up, or joins the setup in progress; a failed model is tried again."""
        entry = self.get(name)
        if entry.state is ModelState.READY:
            return entry
        if entry._setup_task is None or entry._setup_task.done():
            entry._setup_task = asyncio.ensure_future(self._run_setup(entry))
        # Shielded: a caller that gives up must not cancel the setup that others share.
        await asyncio.shield(entry._setup_task)
        state: ModelState = entry.state  # changed by the setup task
        if state is not ModelState.READY:
            raise ModelFailed(f"model {name!r} failed its setup: {entry.reason}", model=name, reason=entry.reason)
        return entry

    async def ready(self, entry: ModelEntry) -> ModelEntry:
        """The model, set up for a request: lazy models are set up now, explicit ones refuse."""
        if entry.state is ModelState.READY:
            return entry
        if entry.state is ModelState.FAILED:
            raise ModelFailed(
                f"model {entry.name!r} failed its setup: {entry.reason}", model=entry.name, reason=entry.reason
            )
        if entry.config.setup == "explicit" and entry._setup_task is None:
            raise ModelNotReady(
                f"model {entry.name!r} is set up explicitly and is not set up yet: call Setup first",
                model=entry.name,
            )
        return await self.setup(entry.name)

    def _set_state(self, entry: ModelEntry, state: ModelState) -> None:
        entry.state = state
        for listener in self.listeners:
            listener(entry)

    async def _run_setup(self, entry: ModelEntry) -> None:
        self._set_state(entry, ModelState.LOADING)
        entry.reason = ""
        started = time.perf_counter()
        logger.info("model %s: setting up (%s)", entry.name, entry.config.workflow)
        try:
            # In a thread: importing a framework (torch) takes seconds the loop must not lose.
            cls = await entry.in_thread(
                functools.partial(load_workflow_class, entry.config.workflow, entry.base_dir)
            )
            spec = inspect_workflow(cls)
            options = dict(entry.config.options)
            if entry.config.path is not None:
                options["path"] = self.config.resolve(entry.config.path)
            entry.spec = spec
            entry.workflow = await entry.in_thread(functools.partial(cls, **options))
            if entry.has_stage("setup"):
                await entry.call("setup")
            if entry.has_stage("ready") and not await entry.call("ready"):
                raise RuntimeError("ready() returned False after setup")
        except Exception as error:  # any failure marks the model failed; the server stays up
            entry.reason = f"{type(error).__name__}: {error}"
            entry.workflow = None
            self._set_state(entry, ModelState.FAILED)
            logger.error("model %s: setup failed: %s", entry.name, entry.reason, exc_info=True)
            return
        entry.setup_ms = (time.perf_counter() - started) * 1000
        entry.stats.record("setup", entry.setup_ms)
        self._set_state(entry, ModelState.READY)
        logger.info("model %s: ready in %.0f ms", entry.name, entry.setup_ms)

    async def teardown(self) -> None:
        """Calls every ready model's teardown, logging (not raising) failures."""
        for entry in self._entries.values():
            if entry.state is not ModelState.READY or entry.workflow is None:
                continue
            try:
                if entry.has_stage("teardown"):
                    await entry.call("teardown")
            except Exception:
                logger.exception("model %s: teardown failed", entry.name)
            entry.workflow = None
            self._set_state(entry, ModelState.DECLARED)
            entry._setup_task = None
