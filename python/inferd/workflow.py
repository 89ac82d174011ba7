"""The lifecycle contract that every model implements.

A workflow is a class with these stages; only ``run`` (or ``stream``) is required::

    setup()                      once, before any request: load weights, warm up
    ready() -> bool              may it take requests now? (default: setup has finished)
    preprocess(inputs)           per request: adapted input -> model features
    run(features)                the model itself
    postprocess(inputs, outputs) model outputs -> the answer
    stream(features)             instead of run: yields chunks (tokens, audio)
    teardown()                   once, at shutdown

Each stage may be a plain function or ``async def`` (``stream`` may be a generator or an async
generator). The engine inspects the class once, when the model is registered: plain stages
run in threads under the model's concurrency limit, async ones on the event loop. A stage that
declares a ``parameters`` argument receives the request's parameters (a dict). A plain stage
that runs long (token by token generation, say) can poll :func:`request_cancelled` and stop
early once its caller has gone (cancelled, or past its deadline).

This one contract covers both lifecycles that users know: packflow's
initialize/ready/transform_inputs/execute/transform_outputs and infernet-ml's
setup/preprocessing/run_model/postprocessing/stream.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np

from ._proto import Blob
from .errors import ConfigError, TensorError

__all__ = [
    "Audio",
    "Blob",
    "Workflow",
    "StageKind",
    "WorkflowSpec",
    "TensorSpec",
    "check_tensors",
    "inline",
    "cancellable",
    "inspect_workflow",
    "request_cancelled",
]

T = TypeVar("T")

# Set by the engine around a plain stage that runs in a thread for one request.
_cancelled: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("inferd_cancelled", default=None)


def request_cancelled() -> bool:
    """Whether the request that the calling stage serves has gone: its client cancelled or its
    deadline passed. Meant for plain (threaded) stages that run long; it is always False on
    the event loop (async stages are cancelled at their next ``await`` instead) and outside a
    request."""
    event = _cancelled.get()
    return event is not None and event.is_set()


def cancellable(function: Callable[[], T]) -> tuple[Callable[[], T], threading.Event]:
    """``function`` wrapped to run (in another thread) where :func:`request_cancelled` reads the
    returned event, which the caller sets when the request goes."""
    event = threading.Event()
    context = contextvars.copy_context()
    context.run(_cancelled.set, event)
    return (lambda: context.run(function)), event

F = TypeVar("F", bound=Callable[..., Any])


def inline(stage: F) -> F:
    """Marks a plain stage as cheap enough to run on the event loop, without a thread hop.

    For stages that take microseconds and never block (checking a tensor's shape, picking a
    field): a hop to a thread costs more than they do. Never use it on a stage that computes
    for long or waits on I/O: it would stall every request of the server.
    """
    stage.__inferd_inline__ = True  # type: ignore[attr-defined]
    return stage


@dataclass(frozen=True, slots=True)
class Audio:
    """Audio output: PCM samples or an encoded file, with the sample rate clients need."""

    data: bytes
    sample_rate: int
    content_type: str = "audio/wav"


class Workflow:
    """Base class of every model. Subclass it and define ``run`` or ``stream``.

    The constructor receives ``path`` (the configuration's ``path``, resolved) when the
    configuration gives one, and the ``options`` table as keyword arguments.
    """

    #: A short name for `ListModels` and the log; registered kinds set it.
    kind: ClassVar[str] = ""

    def __init__(self, path: Path | None = None, **options: Any) -> None:
        self.path = path
        self.options = options

    @property
    def models(self) -> Mapping[str, Any]:
        """The server's other models, to call in process: ``await self.models["name"].infer(x)``
        or ``async for chunk in self.models["name"].stream(x)`` (:mod:`inferd.graph.handles`).
        Set by the server before ``setup``; not in ``__init__``."""
        models = self.__dict__.get("_inferd_models")
        if models is None:
            raise RuntimeError("self.models is given by the server before setup(), not in __init__")
        return models  # type: ignore[no-any-return]

    @models.setter
    def models(self, value: Mapping[str, Any]) -> None:
        self.__dict__["_inferd_models"] = value

    def signature(self) -> tuple[Sequence[TensorSpec], Sequence[TensorSpec]]:
        """The tensors ``run`` takes and gives, for ``ListModels`` (asked after setup; not a
        stage). Default: none declared."""
        return (), ()

    def setup(self) -> None:
        """Loads weights and warms up; runs once before any request."""

    def ready(self) -> bool:
        """Whether the model can take requests; the engine asks after ``setup``."""
        return True

    def preprocess(self, inputs: Any) -> Any:
        """Turns one request's adapted input into model features (default: unchanged)."""
        return inputs

    def postprocess(self, inputs: Any, outputs: Any) -> Any:
        """Turns the model's outputs into the answer (default: unchanged)."""
        return outputs

    def teardown(self) -> None:
        """Frees what ``setup`` took; runs once at shutdown."""

    # `run` and `stream` are looked up by name; defining them here would make every workflow
    # look as if it had both.


StageKind = Literal["sync", "async", "generator", "async_generator"]

STAGES = ("setup", "ready", "preprocess", "run", "postprocess", "stream", "teardown")


@dataclass(frozen=True, slots=True)
class Stage:
    """How the engine calls one stage, decided once when the model is registered."""

    name: str
    kind: StageKind
    #: The stage declares a ``parameters`` argument.
    takes_parameters: bool
    #: The workflow's class defines it (not only the base class's default).
    overridden: bool
    #: Marked with :func:`inline`: a plain stage run on the event loop.
    inline: bool = False


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """What a workflow class offers, read once from the class."""

    cls: type[Workflow]
    stages: Mapping[str, Stage]

    @property
    def unary(self) -> bool:
        return "run" in self.stages

    @property
    def streaming(self) -> bool:
        return "stream" in self.stages


def _stage_kind(function: Callable[..., Any]) -> StageKind:
    if inspect.isasyncgenfunction(function):
        return "async_generator"
    if inspect.iscoroutinefunction(function):
        return "async"
    if inspect.isgeneratorfunction(function):
        return "generator"
    return "sync"


def inspect_workflow(cls: type[Any]) -> WorkflowSpec:
    """Reads a workflow class's stages, refusing a class that cannot serve.

    Raises :class:`~inferd.errors.ConfigError` when the class is not a ``Workflow``, defines
    neither ``run`` nor ``stream``, or defines a stage of the wrong kind (an async generator
    ``run``, a plain-function ``stream``).
    """
    if not (isinstance(cls, type) and issubclass(cls, Workflow)):
        raise ConfigError(f"{cls!r} is not a subclass of inferd.Workflow")
    stages: dict[str, Stage] = {}
    for name in STAGES:
        function = getattr(cls, name, None)
        if function is None:
            continue
        if not callable(function):
            raise ConfigError(f"{cls.__qualname__}.{name} is not callable")
        kind = _stage_kind(function)
        parameters = inspect.signature(function).parameters
        stages[name] = Stage(
            name=name,
            kind=kind,
            takes_parameters="parameters" in parameters,
            overridden=getattr(Workflow, name, None) is not function,
            inline=bool(getattr(function, "__inferd_inline__", False)) and kind == "sync",
        )
    if "run" not in stages and "stream" not in stages:
        raise ConfigError(f"{cls.__qualname__} defines neither run() nor stream()")
    for name, stage in stages.items():
        if name == "stream":
            if stage.kind not in ("generator", "async_generator"):
                raise ConfigError(f"{cls.__qualname__}.stream must be a generator (use yield)")
        elif stage.kind in ("generator", "async_generator"):
            raise ConfigError(f"{cls.__qualname__}.{name} must return, not yield")
    return WorkflowSpec(cls=cls, stages=stages)


# -- tensor checks shared by the tensor workflows ------------------------------------------


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """What a model expects of one input tensor. ``None`` in ``shape`` is any size."""

    name: str
    dtype: np.dtype[Any] | None
    shape: tuple[int | None, ...] | None

    def zeros(self) -> np.ndarray:
        """A tensor of zeros that fits (any-size dimensions set to 1), for warming a model up."""
        if self.dtype is None:
            raise ValueError(f"tensor {self.name!r}: no dtype to warm up with")
        return np.zeros(tuple(1 if size is None else size for size in self.shape or (1,)), dtype=self.dtype)

    def describe(self) -> str:
        dtype = "any dtype" if self.dtype is None else str(self.dtype)
        shape = "any shape" if self.shape is None else _shape_text(self.shape)
        return f"{dtype} {shape}"


def _shape_text(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if size is None else str(size) for size in shape) + "]"


def _fits(wanted: Sequence[int | None], shape: tuple[int, ...]) -> bool:
    if len(wanted) != len(shape):
        return False
    for want, got in zip(wanted, shape):
        if want is not None and want != got:
            return False
    return True


def check_tensors(inputs: Any, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Checks request tensors against a model's inputs and returns them by name.

    ``inputs`` is a dict of numpy arrays (a single array is accepted for a model with one
    input). Raises :class:`~inferd.errors.TensorError` naming the tensor at fault.
    """
    if type(inputs) is dict and len(inputs) == 1 and len(specs) == 1:
        # One tensor for a model with one input (most requests), checked in a few comparisons.
        spec = specs[0]
        array = inputs.get(spec.name)
        if (
            type(array) is np.ndarray
            and (spec.dtype is None or array.dtype == spec.dtype)
            and (spec.shape is None or _fits(spec.shape, array.shape))
        ):
            return {spec.name: array}
        # Something is wrong with it: the checks below say what.
    if isinstance(inputs, np.ndarray) and len(specs) == 1:
        inputs = {specs[0].name: inputs}
    if not isinstance(inputs, Mapping):
        expected = ", ".join(spec.name for spec in specs)
        raise TensorError(
            f"expected tensors ({expected}), got {type(inputs).__name__}", tensor=expected
        )
    known = {spec.name for spec in specs}
    for name in inputs:
        if name not in known:
            raise TensorError(
                f"tensor {name!r}: the model has no such input (inputs: {', '.join(sorted(known))})",
                tensor=str(name),
            )
    checked: dict[str, np.ndarray] = {}
    for spec in specs:
        if spec.name not in inputs:
            raise TensorError(
                f"tensor {spec.name!r}: missing (expected {spec.describe()})", tensor=spec.name
            )
        array = inputs[spec.name]
        if not isinstance(array, np.ndarray):
            raise TensorError(f"tensor {spec.name!r}: not a tensor", tensor=spec.name)
        if spec.dtype is not None and array.dtype != spec.dtype:
            raise TensorError(
                f"tensor {spec.name!r}: expected dtype {spec.dtype}, got {array.dtype}",
                tensor=spec.name,
                expected=str(spec.dtype),
                got=str(array.dtype),
            )
        if spec.shape is not None and not _fits(spec.shape, array.shape):
            raise TensorError(
                f"tensor {spec.name!r}: expected shape {_shape_text(spec.shape)}, "
                f"got {_shape_text(array.shape)}",
                tensor=spec.name,
                expected=_shape_text(spec.shape),
                got=_shape_text(array.shape),
            )
        checked[spec.name] = array
    return checked

