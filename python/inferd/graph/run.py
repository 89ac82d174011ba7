"""The graph executor, and the workflow that serves a plan as one model.

A request starts the output node; a node starts the nodes it reads and runs once they have
answered, so independent branches run at once and each node as soon as its inputs are ready.
A switch starts only the case it picks; a join of ``first`` or ``any`` stops the inputs it no
longer needs. A streaming node's chunks go downstream as they come (:class:`Chunks`). When a
node fails (and does not skip or default), the graph fails with an error that names it and
every node still running is cancelled; when the request goes (cancelled, deadline), so does
every node, at once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any, ClassVar

import numpy as np

from ..adapters import Payload, decode_json
from ..errors import DeadlineExceeded, InferdError, InternalError, InvalidInput
from ..tracing import current_call
from ..workflow import Workflow
from .handles import Chunks, _Call, _Engine, _payload, collect, current_caller, stream_object
from .plan import Node, Plan, Ref, check_signatures

__all__ = ["GraphWorkflow", "StreamingGraphWorkflow", "graph_class", "SKIPPED"]

logger = logging.getLogger("inferd.graph")


class _Skipped:
    def __repr__(self) -> str:
        return "SKIPPED"


#: A node that failed with ``on_error = "skip"``: its readers skip too, joins leave it out.
SKIPPED: Any = _Skipped()
_UNTRACED: dict[str, Any] = {}


def _wrapped(plan: Plan, node: Node, error: BaseException) -> InferdError:
    """The error of a failed node: its own kind and message, naming the graph and the node."""
    where = f"graph {plan.name!r}, node {node.name!r}"
    if not isinstance(error, InferdError):
        logger.error("%s failed", where, exc_info=error)
        return InternalError(f"{where} failed ({type(error).__name__})", graph=plan.name, node=node.name)
    cls = type(error)
    wrapped = cls.__new__(cls)
    wrapped.__dict__.update(error.__dict__)
    message = f"{where}: {error.message}"
    Exception.__init__(wrapped, message)
    wrapped.message = message
    wrapped.details = {**error.details, "graph": plan.name, "node": node.name}
    wrapped.__cause__ = error
    return wrapped


async def _all(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """Every result in order; the first failure cancels the rest and is raised."""
    items = list(awaitables)
    if len(items) <= 1:  # (no task to make: most nodes read one input)
        return [await item for item in items]
    tasks = [asyncio.ensure_future(item) for item in items]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _key(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pluck(value: Any, path: tuple[str, ...], ref: Ref) -> Any:
    """``value``'s part at ``path``: keys of a mapping, indexes of a list, and ``*`` for every
    element of a list (``"scores.*.score"``)."""
    for index, key in enumerate(path):
        if key == "*" and isinstance(value, (list, tuple)):
            return [_pluck(item, path[index + 1 :], ref) for item in value]
        try:
            if isinstance(value, (list, tuple)) and key.lstrip("-").isdigit():
                value = value[int(key)]
            else:
                value = value[key]
        except (KeyError, IndexError, TypeError):
            raise InvalidInput(f"input {str(ref)!r}: {type(value).__name__} has no {key!r}") from None
    return value


class _Run:
    """One request's way through a plan."""

    __slots__ = ("plan", "engine", "request", "parameters", "tasks", "streams", "failures", "span")

    def __init__(self, plan: Plan, engine: _Engine, request: Any, parameters: dict[str, Any]) -> None:
        self.plan = plan
        self.engine = engine
        self.request = request
        self.parameters = parameters
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.streams: list[Chunks] = []
        self.failures: set[int] = set()  # ids of the errors this run made (raised as they are)
        self.span = current_call.get()  # the graph's call: every node's span is its child

    async def answer(self) -> Any:
        # The output node runs in the request's own task (nothing else reads it).
        value = await self._node(self.plan.nodes[self.plan.output])
        return None if value is SKIPPED else value

    async def close(self) -> None:
        """Cancels every node still running and waits for them to stop."""
        for stream in self.streams:
            stream.cancel()
        if not self.tasks and not self.streams:
            return
        pending = [task for task in self.tasks.values() if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*self.tasks.values(), *(stream.wait() for stream in self.streams), return_exceptions=True)

    def need(self, name: str) -> asyncio.Task[Any]:
        task = self.tasks.get(name)
        if task is None:
            task = self.tasks[name] = asyncio.ensure_future(self._node(self.plan.nodes[name]))
        return task

    def _request(self) -> Any:
        """The graph's input, decoded (once) if it came as a request's payload."""
        request = self.request
        if isinstance(request, Payload):
            request = self.request = decode_json(request.value) if request.kind == "json" else request.value
        return request

    async def value(self, ref: Ref, *, whole: bool = False) -> Any:
        """What ``ref`` names; ``whole``: a model reads it as it is (the request's payload
        then goes on undecoded, and the model's own adapter reads it)."""
        if ref.node == "request":
            value = self.request if whole and not ref.path else self._request()
        elif ref.node == "parameters":
            value = self.parameters
        else:
            value = await self.need(ref.node)
        if ref.path and value is not SKIPPED:
            if isinstance(value, Chunks) and ref.path[0] == "*":  # each chunk's part, as it comes
                stream = value

                async def parts() -> AsyncIterator[Any]:
                    async for item in stream:
                        yield _pluck(item, ref.path[1:], ref)

                value = Chunks(parts)
                self.streams.append(value)
            else:
                value = _pluck(await collect(value), ref.path, ref)
        return value

    # -- one node -----------------------------------------------------------------------

    async def _node(self, node: Node) -> Any:
        config = node.config
        attributes: dict[str, Any] = _UNTRACED  # (no span: nothing reads them)
        if self.span is not None:
            attributes = {"inferd.graph": self.plan.name, "inferd.graph.node": node.name, "inferd.graph.kind": node.kind}
            if config.model is not None:
                attributes["inferd.model"] = config.model
        # The node's span is the call's child, whoever started the node; the node's model's
        # stages nest in the node's span.
        parent = current_call.get()
        if parent is not self.span:
            current_call.set(self.span)
        call = _Call(node.label, node.name, attributes)
        token = current_call.set(call.span) if call.span is not None else None
        error: BaseException | None = None
        timeout = asyncio.timeout(config.timeout_ms / 1000) if config.timeout_ms else None
        try:
            if timeout is None:
                value = await self._compute(node, call)
            else:
                async with timeout:
                    value = await self._compute(node, call)
            if isinstance(value, Chunks) and value.owns(call):
                call = None  # type: ignore[assignment]  # the stream ends the call when it ends
            return value
        except asyncio.CancelledError as cancelled:
            error = cancelled
            raise
        except Exception as failure:
            error = failure
            if id(failure) in self.failures:
                raise  # an input's failure: it names that input, not this node
            if isinstance(failure, TimeoutError) and timeout is not None and timeout.expired():
                error = DeadlineExceeded(f"timed out after {config.timeout_ms:g} ms", graph=self.plan.name, node=node.name)
        finally:
            if token is not None:
                current_call.reset(token)
            if parent is not self.span:
                current_call.set(parent)
            if call is not None:
                call.end(error)
        if config.has_default:
            return config.default
        if config.on_error == "skip":
            return SKIPPED
        wrapped = _wrapped(self.plan, node, error)
        self.failures.add(id(wrapped))
        raise wrapped

    async def _compute(self, node: Node, call: _Call) -> Any:
        config = node.config
        if node.reads_request:  # (a graph's first node: nothing to wait for)
            value = self.request if node.whole else self._request()
            call.begin()
            return await (self._map(node, value, call) if config.map else self._apply(node, [value], call))
        if node.kind == "switch":
            assert node.selector is not None
            key = _key(await collect(await self.value(node.selector)))
            case = config.cases.get(key, config.otherwise)
            if case is None:
                raise InvalidInput(
                    f"no case for {key!r} (cases: {', '.join(config.cases)})", graph=self.plan.name, node=node.name
                )
            return await self.need(case)
        if node.kind == "join":
            return await self._join(node)
        if len(node.inputs) == 1:  # (most nodes: no gather to make)
            inputs = [await self.value(node.inputs[0], whole=node.whole)]
        else:
            inputs = await _all(self.value(ref) for ref in node.inputs)
        for value in inputs:
            if value is SKIPPED:
                return SKIPPED
        call.begin()  # its span and time start when its inputs are ready
        if config.map:
            return await self._map(node, inputs[0], call)
        return await self._apply(node, inputs, call)

    def _parameters(self, node: Node) -> dict[str, Any] | None:
        forward = node.config.forward_parameters
        if not forward:  # (most nodes: their own parameters, if any)
            return {**node.config.parameters} if node.config.parameters else None
        given = self.parameters if forward == "*" else {key: self.parameters[key] for key in forward if key in self.parameters}
        return {**node.config.parameters, **given}

    async def _apply(self, node: Node, inputs: list[Any], call: _Call | None) -> Any:
        """The node's model or function on its inputs (or on one element, in a map)."""
        config = node.config
        if config.model is not None:
            values = [await value.collect() if isinstance(value, Chunks) else value for value in inputs]
            argument: Any = values[0] if len(values) == 1 and node.names is None else (
                dict(zip(node.names, values)) if node.names is not None else values
            )  # fmt: skip
            if config.stream:
                stream = stream_object(self.engine, config.model, argument, self._parameters(node), call=call)
                self.streams.append(stream)
                return stream
            # (infer_object's untimed call, in line: the node times itself)
            caller = current_caller.get()
            deadline = caller.deadline if caller is not None else None
            return (await self.engine.infer(config.model, _payload(argument), self._parameters(node), deadline=deadline)).output
        function = node.function
        assert function is not None
        if not node.yields:
            inputs = [await collect(value) for value in inputs]
        keywords: dict[str, Any] = dict(zip(node.names, inputs)) if node.names is not None else {}
        positional = [] if node.names is not None else inputs
        if node.takes_parameters:
            keywords["parameters"] = self._parameters(node) or {}
        result = function(*positional, **keywords)
        if node.yields:
            stream = Chunks(lambda: _aiter(result), call)
            self.streams.append(stream)
            return stream
        if not inspect.isawaitable(result):
            return result
        caller = current_caller.get()
        if not self.plan.keeps_deadline or caller is None or caller.deadline is None:
            return await result  # (under the engine's timer, if the request has a deadline)
        # A plain function that gave an awaitable, in a graph the engine sets no timer on.
        timeout = asyncio.timeout(caller.deadline - time.monotonic())
        try:
            async with timeout:
                return await result
        except TimeoutError:
            if not timeout.expired():
                raise
            raise DeadlineExceeded(f"model {self.plan.name!r}: deadline exceeded", model=self.plan.name) from None

    async def _element(self, node: Node, item: Any, index: int) -> Any:
        call = _Call(None, f"{node.name}[{index}]", {"inferd.graph.node": node.name, "inferd.graph.element": index})
        if call.span is not None:
            current_call.set(call.span)
        error: BaseException | None = None
        try:
            return await collect(await self._apply(node, [item], None))
        except BaseException as failure:
            error = failure
            raise
        finally:
            call.end(error)

    async def _map(self, node: Node, value: Any, call: _Call) -> Any:
        if isinstance(value, Chunks):
            async def mapped() -> AsyncIterator[Any]:
                # Each chunk's call starts as the chunk comes; results leave in order, each as
                # soon as it and those before it are done.
                pending: deque[asyncio.Task[Any]] = deque()
                source = aiter(value)
                upcoming: asyncio.Future[Any] | None = asyncio.ensure_future(anext(source))
                index = 0
                try:
                    while upcoming is not None or pending:
                        waits = [task for task in (upcoming, pending[0] if pending else None) if task is not None]
                        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                        while pending and pending[0].done():
                            yield pending.popleft().result()
                        if upcoming is not None and upcoming.done():
                            try:
                                item = upcoming.result()
                            except StopAsyncIteration:
                                upcoming = None
                                continue
                            pending.append(asyncio.ensure_future(self._element(node, item, index)))
                            index += 1
                            upcoming = asyncio.ensure_future(anext(source))
                finally:
                    for task in (*pending, *([upcoming] if upcoming is not None else [])):
                        task.cancel()
                    await asyncio.gather(*pending, *([upcoming] if upcoming is not None else []), return_exceptions=True)
                    await source.aclose()  # type: ignore[attr-defined]

            stream = Chunks(mapped, call)
            self.streams.append(stream)
            return stream
        if not isinstance(value, (list, tuple)):
            raise InvalidInput(f"map needs a list or a stream, got {type(value).__name__}", graph=self.plan.name, node=node.name)
        return await _all(self._element(node, item, index) for index, item in enumerate(value))

    async def _join(self, node: Node) -> Any:
        tasks = [asyncio.ensure_future(self.value(ref)) for ref in node.inputs]
        if node.config.join == "all":
            return [value for value in await _all(tasks) if value is not SKIPPED]
        wanted = node.config.k or 1
        answers: list[Any] = []
        errors: list[BaseException] = []
        try:
            for next_done in asyncio.as_completed(tasks):
                try:
                    value = await next_done
                except Exception as error:  # a failed input is one that did not answer
                    errors.append(error)
                    continue
                if value is not SKIPPED:
                    answers.append(value)
                    if len(answers) == wanted:
                        break
        finally:
            for ref, task in zip(node.inputs, tasks):
                task.cancel()
                if self.plan.readers.get(ref.node) == 1 and ref.node in self.tasks:
                    self.tasks[ref.node].cancel()  # only this join reads it: stop it
            await asyncio.gather(*tasks, return_exceptions=True)
        if len(answers) < wanted:
            if errors:
                raise errors[0]
            raise InternalError(f"{len(answers)} of its inputs answered, {wanted} needed", graph=self.plan.name, node=node.name)
        return answers[0] if node.config.join == "first" else answers


async def _aiter(result: Any) -> AsyncIterator[Any]:
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    else:
        for item in result:
            yield item


class GraphWorkflow(Workflow):
    """A graph served as one model (``workflow = "graph"``): its plan, run per request."""

    kind = "graph"
    plan: ClassVar[Plan]
    engine: _Engine

    async def setup(self) -> None:  # type: ignore[override]  # (async: stages may be)
        """Sets up the models the graph calls, then checks each node against its model."""
        await _all(self.engine.setup(model) for model in self.plan.models)  # type: ignore[attr-defined]
        facts = {model: self.engine.model_facts(model) for model in self.plan.models}  # type: ignore[attr-defined]
        check_signatures(
            self.plan,
            {model: fact[0] for model, fact in facts.items()},
            {model: fact[1] for model, fact in facts.items()},
            {model: fact[2] for model, fact in facts.items()},
        )

    async def run(self, features: Any, parameters: dict[str, Any]) -> Any:
        run = _Run(self.plan, self.engine, features, parameters)
        try:
            value = await run._node(self.plan.nodes[self.plan.output])  # (answer(), in line)
            if isinstance(value, Chunks):
                value = await value.collect()
            return None if value is SKIPPED else value
        finally:
            if run.tasks or run.streams:  # (a graph of one chain starts no task: nothing to stop)
                await run.close()


class StreamingGraphWorkflow(GraphWorkflow):
    """A graph whose output node streams: it answers Stream too, chunk by chunk."""

    async def stream(self, features: Any, parameters: dict[str, Any]) -> AsyncIterator[Any]:
        run = _Run(self.plan, self.engine, features, parameters)
        try:
            value = await run.answer()
            if isinstance(value, Chunks):
                async for chunk in value:
                    yield chunk
            elif value is not None:
                yield value
        finally:
            await run.close()


def graph_class(plan: Plan) -> type[GraphWorkflow]:
    """The workflow class that serves ``plan``."""
    base = StreamingGraphWorkflow if plan.streams else GraphWorkflow
    return type(f"Graph_{plan.name}", (base,), {"plan": plan, "__module__": __name__})
