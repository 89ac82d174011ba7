"""How a model calls the other models of its server: handles, in process, through the engine.

``self.models["name"]`` in a workflow is a :class:`ModelHandle`: ``await handle.infer(x)``
runs that model's whole pipeline (its adapter, stages, limits, batcher and timing) on the
object ``x``, passed without serialisation, and returns its output as an object;
``handle.stream(x)`` yields its chunks as they come. A graph's nodes call models the same way,
so both forms of a graph run through one engine. Each call is a span (a child of the calling
request's span, so a trace shows parallel calls side by side) and a timing of the caller's.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Protocol

from ..adapters import Payload
from ..errors import DeadlineExceeded, InferdError
from ..tracing import Span, current_call

__all__ = ["Caller", "Chunks", "ModelHandle", "Models", "current_caller", "collect"]


class Caller(Protocol):
    """What the engine keeps of the request a model serves (its clock)."""

    #: (label, ms) of the calls the request made to other models, for its timings.
    calls: list[tuple[str, float]]
    #: The request's deadline (``time.monotonic()``), if it has one.
    deadline: float | None


#: The request that the running stage serves (set by the engine).
current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("inferd_caller", default=None)


class _Engine(Protocol):
    def infer(self, model: str, payload: Payload, parameters: dict[str, Any] | None = None, *, deadline: float | None = None) -> Any: ...
    def stream(self, model: str, payload: Payload, parameters: dict[str, Any] | None = None, *, deadline: float | None = None) -> AsyncIterator[Any]: ...
    def model_names(self) -> list[str]: ...


def _code(error: BaseException | None) -> str:
    if error is None:
        return "OK"
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return error.code if isinstance(error, InferdError) else "UNKNOWN"


class _Call:
    """One call's span and timing, begun in the caller's context."""

    __slots__ = ("caller", "label", "started", "span")

    def __init__(self, label: str | None, span_name: str | None, attributes: dict[str, Any]) -> None:
        self.caller = current_caller.get()
        self.label = label
        self.started = time.perf_counter()
        parent = current_call.get()
        self.span: Span | None = parent.child(span_name, attributes) if parent is not None and span_name else None

    def begin(self) -> None:
        """Starts the timing and the span again, now (a node, once its inputs are ready)."""
        self.started = time.perf_counter()
        if self.span is not None:
            self.span.start_ns = self.span._tracing._ns(self.started)

    @property
    def deadline(self) -> float | None:
        return self.caller.deadline if self.caller is not None else None

    def end(self, error: BaseException | None) -> None:
        if self.span is not None:
            self.span.end(_code(error))
        if self.caller is not None and self.label is not None:
            self.caller.calls.append((self.label, (time.perf_counter() - self.started) * 1000))


def _payload(inputs: Any) -> Payload:
    """An object as a request, or a request that came in (a graph's, handed on as it came,
    undecoded), answered with the output object."""
    if isinstance(inputs, Payload):
        return inputs if inputs.raw else Payload(inputs.kind, inputs.value, True)
    return Payload("object", inputs, True)


async def infer_object(
    engine: _Engine, model: str, inputs: Any, parameters: dict[str, Any] | None, *,
    timeout_s: float | None = None, label: str | None = None, span: str | None = None,
) -> Any:  # fmt: skip
    """``model``'s output for the object ``inputs``, as a timed span of the calling request
    (``label``: its timing's name; ``span``: its span's; neither: a graph's node, which times
    itself)."""
    if label is None and span is None and timeout_s is None:
        caller = current_caller.get()
        deadline = caller.deadline if caller is not None else None
        return (await engine.infer(model, _payload(inputs), parameters, deadline=deadline)).output
    call = _Call(label, span, {"inferd.model": model})
    token = current_call.set(call.span) if call.span is not None else None
    error: BaseException | None = None
    try:
        async with asyncio.timeout(timeout_s):
            result = await engine.infer(model, _payload(inputs), parameters, deadline=call.deadline)
        return result.output
    except TimeoutError:
        error = DeadlineExceeded(f"model {model!r}: the call's timeout ({timeout_s * 1000:.0f} ms) passed", model=model)  # type: ignore[operator]
        raise error from None
    except BaseException as failure:
        error = failure
        raise
    finally:
        if token is not None:
            current_call.reset(token)
        call.end(error)


class Chunks:
    """A stream's chunks as they come, for any number of readers, each from the first chunk.

    A task of its own pulls them (in a context where the call's span is the current one), so
    that the stream runs as soon as it starts, whoever reads it; :meth:`cancel` stops it.
    """

    def __init__(self, source: Callable[[], AsyncIterator[Any]], call: _Call | None = None) -> None:
        self._items: list[Any] = []
        self._call = call
        self._done = False
        self._error: BaseException | None = None
        self._more = asyncio.Event()
        context = contextvars.copy_context()
        if call is not None and call.span is not None:
            context.run(current_call.set, call.span)
        self._task = asyncio.get_running_loop().create_task(self._pull(source, call), context=context)

    async def _pull(self, source: Callable[[], AsyncIterator[Any]], call: _Call | None) -> None:
        error: BaseException | None = None
        iterator = source()
        try:
            async for item in iterator:
                self._items.append(item)
                self._wake()
        except BaseException as failure:  # kept for the readers (and re-raised if cancelled)
            error = failure
            if isinstance(failure, asyncio.CancelledError):
                raise
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            self._error = error
            self._done = True
            self._wake()
            if call is not None:
                call.end(error)

    def _wake(self) -> None:
        self._more.set()
        self._more = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[Any]:
        index = 0
        while True:
            if index < len(self._items):
                index += 1
                yield self._items[index - 1]
                continue
            if self._done:
                if self._error is not None:
                    if isinstance(self._error, asyncio.CancelledError):
                        raise asyncio.CancelledError()
                    raise self._error
                return
            await self._more.wait()

    async def collect(self) -> Any:
        """Every chunk once the stream ends: text pieces joined, anything else as a list."""
        items = [item async for item in self]
        return "".join(items) if items and all(isinstance(item, str) for item in items) else items

    def owns(self, call: _Call) -> bool:
        """Whether this stream ends ``call`` (when the stream ends)."""
        return self._call is call

    def cancel(self) -> None:
        self._task.cancel()

    async def wait(self) -> None:
        await asyncio.gather(self._task, return_exceptions=True)


def stream_object(
    engine: _Engine, model: str, inputs: Any, parameters: dict[str, Any] | None, *,
    label: str | None = None, span: str | None = None, call: _Call | None = None,
) -> Chunks:  # fmt: skip
    """``model``'s chunks for the object ``inputs``, pulled as they come (see :class:`Chunks`);
    ``call``: the span and timing it ends when it ends (else one of its own)."""
    if call is None:
        call = _Call(label, span, {"inferd.model": model})

    async def chunks() -> AsyncIterator[Any]:
        stream = engine.stream(model, _payload(inputs), parameters, deadline=call.deadline)
        try:
            async for chunk in stream:
                if not chunk.final:
                    yield chunk.output
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    return Chunks(chunks, call)


async def collect(value: Any) -> Any:
    """A value, with a stream read to its end (:meth:`Chunks.collect`)."""
    return await value.collect() if isinstance(value, Chunks) else value


class ModelHandle:
    """One model of the server, as another model calls it."""

    __slots__ = ("_engine", "name")

    def __init__(self, engine: _Engine, name: str) -> None:
        self._engine = engine
        self.name = name

    async def infer(self, inputs: Any, parameters: dict[str, Any] | None = None, *, timeout_ms: float | None = None) -> Any:
        """The model's output for ``inputs`` (any object its input adapter takes: text, a dict,
        records, numpy tensors). Errors are the model's own (:mod:`inferd.errors`)."""
        timeout_s = timeout_ms / 1000 if timeout_ms is not None else None
        return await infer_object(self._engine, self.name, inputs, parameters, timeout_s=timeout_s,
                                  label=f"call:{self.name}", span=f"call {self.name}")  # fmt: skip

    async def stream(self, inputs: Any, parameters: dict[str, Any] | None = None) -> AsyncIterator[Any]:
        """The model's chunks for ``inputs`` as they come; closing the iterator (or the calling
        request going) stops the model."""
        chunks = stream_object(self._engine, self.name, inputs, parameters, label=f"call:{self.name}", span=f"call {self.name}")
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            chunks.cancel()
            await chunks.wait()


class Models(Mapping[str, ModelHandle]):
    """``self.models`` of a workflow: a handle for every other model the server declares."""

    def __init__(self, engine: _Engine, caller: str) -> None:
        self._engine = engine
        self._names = [name for name in engine.model_names() if name != caller]
        self._caller = caller

    def __getitem__(self, name: str) -> ModelHandle:
        if name not in self._names:
            known = ", ".join(self._names) or "none"
            raise KeyError(f"model {self._caller!r} cannot call {name!r} (models: {known})")
        return ModelHandle(self._engine, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
