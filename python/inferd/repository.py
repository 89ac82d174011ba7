"""The declared models: their workflows, their state, and their setup.

A model is *declared* by the configuration, *loading* while its setup runs, then *ready* or
*failed*. Setup is idempotent and shared: concurrent callers await one run. Only declared
models exist here, so a client can never make the server load code or files that the
configuration does not name.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import gc
import importlib
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .adapters import Adapter, JsonLimits, Payload, make_adapter
from .config import ModelConfig, PassthroughInput, ServiceConfig
from .errors import ConfigError, ModelFailed, ModelNotFound, ModelNotReady
from .isolation import isolated_stages
from .stages import Stages, StageStats, Threads
from .versions import SOLE_VERSION
from .workflow import Workflow, WorkflowSpec, inspect_workflow

__all__ = ["ModelState", "ModelEntry", "Repository", "WORKFLOWS", "load_workflow_class"]

logger = logging.getLogger("inferd.repository")

_IMPORTS = threading.RLock()

#: Registered workflow kinds: name -> ("module:Class", what to install when the import fails).
WORKFLOWS: dict[str, tuple[str, str | None]] = {
    "onnx": ("inferd.workflows.onnx:OnnxWorkflow", "onnxruntime-gpu (pip install 'inferd[onnx]')"),
    "torch": ("inferd.workflows.torch:TorchWorkflow", "torch (pip install 'inferd[torch]')"),
    "echo": ("inferd.workflows.echo:EchoWorkflow", None),
    "textgen": ("inferd.workflows.textgen:TextGenWorkflow", "transformers (pip install 'inferd[textgen]')"),
    "lm-score": ("inferd.workflows.lmscore:LMScoreWorkflow", "transformers (pip install 'inferd[textgen]')"),
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
        # One import at a time: workflows set up at once import their frameworks from several
        # threads, and transformers' lazy module has failed such concurrent imports.
        with _IMPORTS:
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


@dataclass(eq=False)
class ModelEntry:
    """One declared model: its configuration, input adapter, state and, once set up, stages."""

    name: str
    config: ModelConfig
    adapter: Adapter
    #: The stage threads as this model sees them (its ``max_concurrency``).
    threads: Threads
    base_dir: Path
    state: ModelState = ModelState.DECLARED
    reason: str = ""
    setup_ms: float = 0.0
    #: The workflow class's stages as inspected (known once its class is loaded).
    spec: WorkflowSpec | None = None
    #: The workflow's stages, ready to call (None until set up, and after teardown).
    stages: Stages | None = None
    stats: StageStats = field(default_factory=StageStats)
    #: Unloaded at run time: refused until loaded again (a lazy model is not set up again).
    unloaded: bool = False
    _setup_task: asyncio.Future[None] | None = None

    @property
    def workflow_name(self) -> str:
        return self.config.workflow


class Repository:
    """The models that a configuration declares."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        classes: Mapping[str, type[Workflow]] | None = None,
        bind: Callable[[ModelEntry, Workflow], None] | None = None,
    ) -> None:
        """``classes``: the workflow class of some models, made by the engine (graphs);
        ``bind``: called with each new workflow before its setup (it gives it ``models``)."""
        self.config = config
        self._classes = dict(classes or {})
        self._bind = bind
        #: Called (on the loop) whenever a model's state changes: health follows it.
        self.listeners: list[Callable[[ModelEntry], None]] = []
        self._entries: dict[str, ModelEntry] = {}
        #: A versioned model's served versions (inferd.versions): ``wine`` -> wine/1, wine/2.
        self.versions = config.versions
        for name, model in config.models.items():
            try:
                adapter = make_adapter(model.input, json_limits(config, name))
            except ConfigError as error:
                raise ConfigError(f"model {name!r}: {error}") from None
            threads = Threads(name, model.limits.max_concurrency, model.batching.max_running if model.batching else 0,
                              0 if model.isolation == "process" else model.nice)  # fmt: skip
            if name in self._classes and isinstance(model.input, PassthroughInput):
                # A graph's request goes to its nodes as it came: decoded only where a node
                # reads into it, and a node model's own adapter reads it (JSON records into
                # tensors in the native core, say).
                adapter = _as_it_came
            self._entries[name] = ModelEntry(
                name=name, config=model, adapter=adapter, threads=threads, base_dir=config.base_dir
            )

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def get(self, name: str, version: str | None = None) -> ModelEntry:
        """The declared model of that name (a versioned model's name: its latest version, as
        :meth:`latest`; ``wine/2``: that version), or, with ``version``, that version of it
        ("": the latest; a model without versions has one, :data:`SOLE_VERSION`). NOT_FOUND
        lists the models, or the served versions, that exist."""
        if version is None:
            entry = self._entries.get(name)
            if entry is not None:
                return entry
            base, _, number = name.rpartition("/")
            if base in self.versions:
                return self.get(base, number)
            version = ""
        if name in self.versions:
            if not version:
                return self.latest(name)
            entry = self._entries.get(f"{name}/{version}")
            if entry is not None:
                return entry
            served = ", ".join(n.rpartition("/")[2] for n in self.versions[name])
        else:
            entry = self._entries.get(name)
            if entry is None:
                known = ", ".join([*self._entries, *self.versions]) or "none"
                raise ModelNotFound(f"unknown model {name!r} (models: {known})", model=name)
            if version in ("", SOLE_VERSION):
                return entry
            served = SOLE_VERSION
        raise ModelNotFound(f"model {name!r} has no served version {version!r} (versions: {served})", model=f"{name}/{version}")

    def latest(self, name: str) -> ModelEntry:
        """A versioned model's highest served version that is ready, else the highest that is
        not unloaded (a lazy one sets up for the request), else the highest."""
        entries = [self._entries[version] for version in reversed(self.versions[name])]
        for entry in entries:
            if entry.state is ModelState.READY:
                return entry
        return next((entry for entry in entries if not entry.unloaded), entries[0])

    def named(self, name: str) -> list[str]:
        """The models a name stands for when loading, unloading or setting up: every served
        version of a versioned model, else the model itself (NOT_FOUND when unknown)."""
        if name in self.versions:
            return list(self.versions[name])
        return [self.get(name).name]

    async def setup(self, name: str) -> ModelEntry:
        """Sets a model up, or joins the setup in progress; a failed model is tried again."""
        entry = self.get(name)
        if entry.state is ModelState.READY:
            return entry
        if entry.unloaded:
            raise _unloaded(entry)
        if entry._setup_task is None or entry._setup_task.done():
            entry._setup_task = asyncio.ensure_future(self._run_setup(entry))
        # Shielded: a caller that gives up must not cancel the setup that others share.
        await asyncio.shield(entry._setup_task)
        state: ModelState = entry.state  # changed by the setup task
        if state is not ModelState.READY:
            raise ModelFailed(f"model {name!r} failed its setup: {entry.reason}", model=name, reason=entry.reason)
        return entry

    async def load(self, name: str, retire: Callable[[Stages], Awaitable[None]]) -> ModelEntry:
        """Sets a declared model up (also after an unload). A ready one is reloaded by an
        atomic swap: a new workflow sets up beside the old one, then takes the new requests;
        ``retire`` waits for the old one's last request, and the old one is torn down. A
        failed reload leaves the old one serving and raises why."""
        entry = self.get(name)
        entry.unloaded = False
        if entry.state is not ModelState.READY or entry.stages is None:
            return await self.setup(name)
        started = time.perf_counter()
        logger.info("model %s: reloading", entry.name)
        try:
            stages = await self._build(entry)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            logger.error("model %s: reload failed, the loaded one serves on: %s", entry.name, reason, exc_info=True)
            raise ModelFailed(f"model {name!r} failed to reload ({reason}); the loaded one serves on", model=name, reason=reason) from None
        old, entry.stages = entry.stages, stages
        entry.setup_ms = (time.perf_counter() - started) * 1000
        entry.stats.record("setup", entry.setup_ms)
        self._set_state(entry, ModelState.READY)
        await retire(old)
        await self._teardown(entry, old)
        del old
        gc.collect()
        logger.info("model %s: reloaded in %.0f ms", entry.name, entry.setup_ms)
        return entry

    async def unload(self, name: str, drain: Callable[[], Awaitable[None]]) -> ModelEntry:
        """Refuses the model's new requests, lets ``drain`` wait for those in flight, then tears
        it down and drops every reference to its workflow, so that what it held is freed."""
        entry = self.get(name)
        entry.unloaded = True
        if entry._setup_task is not None and not entry._setup_task.done():
            await asyncio.gather(asyncio.shield(entry._setup_task), return_exceptions=True)
        stages = entry.stages
        was_ready = entry.state is ModelState.READY
        entry.reason = "unloaded"
        self._set_state(entry, ModelState.DECLARED)
        await drain()
        entry.stages = None
        entry._setup_task = None
        if was_ready and stages is not None:
            await self._teardown(entry, stages)
        del stages
        gc.collect()  # a workflow's cycles (torch modules, sessions) go now, not some time later
        logger.info("model %s: unloaded", entry.name)
        return entry

    async def ready(self, entry: ModelEntry) -> ModelEntry:
        """The model, set up for a request: lazy models are set up now, explicit ones refuse."""
        if entry.state is ModelState.READY:
            return entry
        if entry.unloaded:
            raise _unloaded(entry)
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
            entry.stages = await self._build(entry)
        except Exception as error:  # any failure marks the model failed; the server stays up
            entry.reason = f"{type(error).__name__}: {error}"
            entry.stages = None
            self._set_state(entry, ModelState.FAILED)
            logger.error("model %s: setup failed: %s", entry.name, entry.reason, exc_info=True)
            return
        entry.setup_ms = (time.perf_counter() - started) * 1000
        entry.stats.record("setup", entry.setup_ms)
        self._set_state(entry, ModelState.READY)
        logger.info("model %s: ready in %.0f ms", entry.name, entry.setup_ms)

    async def _build(self, entry: ModelEntry) -> Stages:
        """A new workflow of the model, set up and ready, and its stages."""
        # In a thread: importing a framework (torch) takes seconds the loop must not lose.
        options = dict(entry.config.options)
        if entry.config.path is not None:
            options["path"] = self.config.resolve(entry.config.path)
        if entry.config.isolation == "process":  # its workflow runs in worker processes
            def notify() -> None:  # a worker died or came back: health follows
                self._set_state(entry, entry.state)

            stages = await isolated_stages(entry.name, entry.config, options, entry.base_dir, entry.threads, notify)
            entry.spec = stages.spec
            return stages
        cls = self._classes.get(entry.name)
        if cls is None:
            cls = await entry.threads.run(functools.partial(load_workflow_class, entry.config.workflow, entry.base_dir))
        spec = entry.spec = inspect_workflow(cls)
        workflow = await entry.threads.run(functools.partial(cls, **options))
        if self._bind is not None:
            self._bind(entry, workflow)
        stages = Stages(workflow, spec, entry.threads, inline=entry.config.inline)
        setup, ready = stages.get("setup"), stages.get("ready")
        if setup is not None:
            await setup({})
        if ready is not None and not await ready({}):
            raise RuntimeError("ready() returned False after setup")
        return stages

    async def teardown(self) -> None:
        """Calls every ready model's teardown, logging (not raising) failures."""
        for entry in self._entries.values():
            stages = entry.stages
            if entry.state is not ModelState.READY or stages is None:
                continue
            await self._teardown(entry, stages)
            entry.stages = None
            self._set_state(entry, ModelState.DECLARED)
            entry._setup_task = None

    async def _teardown(self, entry: ModelEntry, stages: Stages) -> None:
        teardown = stages.get("teardown")
        try:
            if teardown is not None:
                await teardown({})
        except Exception:
            logger.exception("model %s: teardown failed", entry.name)


def _unloaded(entry: ModelEntry) -> ModelNotReady:
    return ModelNotReady(f"model {entry.name!r} is unloaded: load it first (Load, inferd load)", model=entry.name)


def _as_it_came(payload: Payload) -> Payload:
    return payload


def json_limits(config: ServiceConfig, name: str) -> JsonLimits:
    """Model ``name``'s JSON limits: its ``limits`` table's, else ``[server]``'s."""
    limits, server = config.models[name].limits, config.server
    depth = limits.max_json_depth if limits.max_json_depth is not None else server.max_json_depth
    size = limits.max_json_bytes if limits.max_json_bytes is not None else server.max_json_bytes
    return JsonLimits(depth=depth, size=size, model=name)
