"""A graph's declared nodes made into one validated plan, at load.

:func:`build_plan` reads a ``workflow = "graph"`` model's ``nodes`` and refuses, naming the
node, what can never run: an unknown model, node or function, a reference that nothing
produces, a cycle (also through graphs that call each other), a node nothing uses, a join or
map without inputs. :func:`check_signatures` runs when the graph is set up, once its models
are: a model that cannot be called the way its node calls it (Stream on a model that only
answers, parameters to one that takes none) and tensors whose dtype or shape cannot fit where
both sides declare them are configuration errors too.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import ModelConfig, NodeConfig, ServiceConfig
from ..errors import ConfigError
from ..workflow import TensorSpec, WorkflowSpec

__all__ = ["Ref", "Node", "NodeReport", "Plan", "build_plan", "build_plans", "check_signatures", "RESERVED"]

#: Reference roots that are not nodes: the graph's request input, and its parameters.
RESERVED = ("request", "parameters")


@dataclass(frozen=True, slots=True)
class Ref:
    """``node.path.to.field``: a node's (or the request's) output, or a part of it."""

    node: str
    path: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Ref:
        parts = text.split(".")
        if not all(parts):
            raise ValueError(f"reference {text!r}: use node or node.field")
        return cls(parts[0], tuple(parts[1:]))

    def __str__(self) -> str:
        return ".".join((self.node, *self.path))


@dataclass(frozen=True)
class Node:
    """One node of a plan: what it is, what it reads, how it fails."""

    name: str
    config: NodeConfig
    kind: str  # model | function | switch | join
    #: Its inputs, in order; ``names`` holds their argument names when given as a table.
    inputs: tuple[Ref, ...]
    names: tuple[str, ...] | None
    #: A switch's selector, and its cases (value -> node).
    selector: Ref | None = None
    #: A function node's function and whether it yields (a stream) and takes ``parameters``.
    function: Callable[..., Any] | None = None
    yields: bool = False
    takes_parameters: bool = False
    #: Its output is a stream (an async iterator of chunks), not one value.
    streams: bool = False
    #: Nodes it waits for before it starts (a switch's cases are not among them).
    after: tuple[str, ...] = ()
    #: A model node given its one input as it is (the request's payload goes on undecoded).
    whole: bool = False
    #: A model or function node whose one input is the whole request (it waits for nothing).
    reads_request: bool = False
    #: Its timing's name in the graph's answer.
    label: str = ""

    @property
    def target(self) -> str:
        config = self.config
        return config.model or config.function or config.switch or config.join or ""


@dataclass
class Plan:
    """A graph, validated: its nodes in a topological order, and its output node."""

    name: str
    nodes: dict[str, Node]
    output: str
    #: For each node, how many nodes read it (a join may cancel an input only it reads).
    readers: dict[str, int] = field(default_factory=dict)
    #: The models the graph calls.
    models: tuple[str, ...] = ()
    #: Every wait in it is a model's call, which keeps the request's deadline itself, and no
    #: node turns a failure into an answer: the engine sets no timer of its own on its run.
    keeps_deadline: bool = False

    @property
    def streams(self) -> bool:
        return self.nodes[self.output].streams

    def report(self) -> list[NodeReport]:
        """The nodes as ListModels shows them."""
        reports = []
        for node in self.nodes.values():
            config = node.config
            cases = dict(config.cases)
            if config.otherwise is not None:
                cases["*"] = config.otherwise
            on_error = "default" if config.has_default else config.on_error
            inputs = [str(ref) for ref in node.inputs]
            reports.append(NodeReport(node.name, node.kind, node.target, inputs, config.map, node.streams, on_error, cases))
        return reports


@dataclass(frozen=True)
class NodeReport:
    """One node of a graph, for ListModels."""

    name: str
    kind: str
    target: str
    inputs: list[str]
    map: bool
    streams: bool
    on_error: str
    cases: dict[str, str]


def _function(reference: str, base_dir: Path) -> Callable[..., Any]:
    module_name, _, name = reference.partition(":")
    if not module_name or not name:
        raise ConfigError(f"function {reference!r}: expected 'module:function'")
    if (base_dir / (module_name.split(".")[0] + ".py")).exists() and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"function {reference!r}: cannot import {module_name!r}: {error}") from error
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"function {reference!r}: module {module_name!r} has no function {name!r}")
    return function  # type: ignore[no-any-return]


def _refs(config: NodeConfig) -> tuple[tuple[Ref, ...], tuple[str, ...] | None]:
    if config.input is not None:
        return (Ref.parse(config.input),), None
    if isinstance(config.inputs, dict):
        return tuple(Ref.parse(text) for text in config.inputs.values()), tuple(config.inputs)
    return tuple(Ref.parse(text) for text in config.inputs or ()), None


def _node(graph: str, name: str, config: NodeConfig, service: ServiceConfig) -> Node:
    where = f"graph {graph!r}, node {name!r}"
    if name in RESERVED:
        raise ConfigError(f"{where}: {name!r} is reserved (it names the graph's {name})")
    try:
        inputs, names = _refs(config)
        selector = Ref.parse(config.switch) if config.switch is not None else None
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    kind = config.kind
    function, yields, takes_parameters = None, False, False
    if kind == "model":
        if config.model not in service.models and config.model not in service.versions:
            known = ", ".join([*service.models, *service.versions])
            raise ConfigError(f"{where}: unknown model {config.model!r} (models: {known})")
        if config.model == graph:
            raise ConfigError(f"{where}: a graph cannot call itself")
        if not inputs:
            raise ConfigError(f"{where}: no input (set input = \"request\" or a node)")
    elif kind == "function":
        assert config.function is not None
        try:
            function = _function(config.function, service.base_dir)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        yields = inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function)
        try:
            takes_parameters = "parameters" in inspect.signature(function).parameters
        except (TypeError, ValueError):
            takes_parameters = False
    elif kind == "join":
        if names is not None or not inputs:
            raise ConfigError(f"{where}: a join takes a list of inputs")
        if config.k is not None and config.k > len(inputs):
            raise ConfigError(f"{where}: k = {config.k}, but it has only {len(inputs)} inputs")
    if config.map and len(inputs) != 1:
        raise ConfigError(f"{where}: map runs over one input (it has {len(inputs)})")
    if kind != "switch" and config.otherwise is not None:
        raise ConfigError(f"{where}: otherwise goes with a switch")
    waits = {ref.node for ref in inputs} | ({selector.node} if selector else set())
    return Node(
        name, config, kind, inputs, names, selector, function, yields, takes_parameters,
        after=tuple(sorted(waits - set(RESERVED))),
        whole=kind == "model" and not config.map and names is None,
        reads_request=kind in ("model", "function") and len(inputs) == 1 and inputs[0] == Ref("request"),
        label=f"node:{name}",
    )  # fmt: skip


def _edges(node: Node) -> list[str]:
    """Every node this one may read: its inputs, and a switch's cases."""
    cases = list(node.config.cases.values()) + ([node.config.otherwise] if node.config.otherwise else [])
    return list(node.after) + cases


def _order(graph: str, nodes: Mapping[str, Node]) -> list[str]:
    """The nodes in an order where each comes after what it reads; a cycle is an error."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for start in nodes:
        if state.get(start) == 2:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            name, index = stack[-1]
            edges = _edges(nodes[name])
            if index < len(edges):
                stack[-1] = (name, index + 1)
                child = edges[index]
                if state.get(child) == 1:
                    path = [entry for entry, _ in stack]
                    cycle = path[path.index(child):] + [child]
                    raise ConfigError(f"graph {graph!r}: a cycle: {' -> '.join(reversed(cycle))}")
                if state.get(child) is None:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                stack.pop()
                state[name] = 2
                order.append(name)
    return order


def build_plan(graph: str, model: ModelConfig, service: ServiceConfig) -> Plan:
    """The plan of one graph model; raises :class:`~inferd.errors.ConfigError` naming the node."""
    nodes = {name: _node(graph, name, config, service) for name, config in model.nodes.items()}
    assert model.output is not None
    if model.output not in nodes:
        raise ConfigError(f"graph {graph!r}: output {model.output!r} is not a node (nodes: {', '.join(nodes)})")
    for node in nodes.values():
        where = f"graph {graph!r}, node {node.name!r}"
        for ref in (*node.inputs, *([node.selector] if node.selector else [])):
            if ref.node not in nodes and ref.node not in RESERVED:
                raise ConfigError(f"{where}: input {str(ref)!r}: nothing produces {ref.node!r} (nodes: {', '.join(nodes)})")
        for case in _edges(node)[len(node.after):]:
            if case not in nodes:
                raise ConfigError(f"{where}: case {case!r} is not a node")
    order = _order(graph, nodes)
    # Which nodes stream: a model called with stream = true, a function that yields, and a
    # map over a stream; a switch streams if its cases do (all or none).
    for name in order:
        node = nodes[name]
        streams = False
        if node.kind == "model":
            streams = node.config.stream or (node.config.map and nodes_stream(nodes, node.inputs[0]))
        elif node.kind == "function":
            streams = node.yields or (node.config.map and nodes_stream(nodes, node.inputs[0]))
        elif node.kind == "switch":
            kinds = {nodes[case].streams for case in _edges(node)[len(node.after):]}
            if len(kinds) > 1:
                raise ConfigError(f"graph {graph!r}, node {name!r}: some cases stream and some do not")
            streams = kinds.pop()
        nodes[name] = replace(node, streams=streams)
    readers = {name: 0 for name in nodes}
    for node in nodes.values():
        for edge in set(_edges(node)):
            readers[edge] += 1
    reached, todo = set(), [model.output]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(_edges(nodes[name]))
    unused = [name for name in nodes if name not in reached]
    if unused:
        raise ConfigError(f"graph {graph!r}: nothing uses node {unused[0]!r} (the output is {model.output!r})")
    models = tuple(sorted({node.config.model for node in nodes.values() if node.config.model is not None}))
    keeps_deadline = all(
        node.config.on_error == "fail" and not node.config.has_default
        and not (node.yields or inspect.iscoroutinefunction(node.function))
        for node in nodes.values()
    )  # fmt: skip
    return Plan(graph, {name: nodes[name] for name in order}, model.output, readers, models, keeps_deadline)


def nodes_stream(nodes: Mapping[str, Node], ref: Ref) -> bool:
    return ref.node in nodes and not ref.path and nodes[ref.node].streams


def build_plans(service: ServiceConfig) -> dict[str, Plan]:
    """Every graph's plan; a graph that calls graphs must not come back to itself."""
    plans = {name: build_plan(name, model, service) for name, model in service.models.items() if model.workflow == "graph"}
    for name in plans:
        path, todo = [name], [(name, iter(plans[name].models))]
        while todo:
            current, calls = todo[-1]
            callee = next(calls, None)
            if callee is None:
                todo.pop()
                path.pop()
            elif callee == name:
                raise ConfigError(f"graph {name!r}: a cycle through graphs: {' -> '.join([*path, callee])}")
            elif callee in plans and callee not in path:
                path.append(callee)
                todo.append((callee, iter(plans[callee].models)))
    return plans


# -- at setup: what the node models declare ------------------------------------------------


def _shape_fits(a: Sequence[int | None] | None, b: Sequence[int | None] | None) -> bool:
    if a is None or b is None:
        return True
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _fit(where: str, given: TensorSpec, wanted: TensorSpec) -> None:
    if given.dtype is not None and wanted.dtype is not None and given.dtype != wanted.dtype:
        raise ConfigError(f"{where}: tensor {wanted.name!r} must be {wanted.dtype}, but its input gives {given.dtype}")
    if not _shape_fits(given.shape, wanted.shape):
        raise ConfigError(f"{where}: tensor {wanted.name!r} must be {wanted.describe()}, but its input gives {given.describe()}")


def check_signatures(
    plan: Plan,
    specs: Mapping[str, WorkflowSpec],
    signatures: Mapping[str, tuple[Sequence[TensorSpec], Sequence[TensorSpec]]],
    takes_parameters: Mapping[str, bool],
) -> None:
    """Checks each model node against its model, once the models are set up."""
    for node in plan.nodes.values():
        model = node.config.model
        if model is None:
            continue
        where = f"graph {plan.name!r}, node {node.name!r} (model {model!r})"
        spec = specs[model]
        if node.config.stream and not spec.streaming:
            raise ConfigError(f"{where}: stream = true, but the model does not stream")
        if not node.config.stream and not spec.unary:
            raise ConfigError(f"{where}: the model only streams: set stream = true")
        if node.config.parameters and not takes_parameters[model]:
            raise ConfigError(f"{where}: the model takes no parameters (the node gives {', '.join(node.config.parameters)})")
        wanted = list(signatures[model][0])
        source = node.inputs[0] if len(node.inputs) == 1 and not node.config.map else None
        producer = plan.nodes.get(source.node) if source is not None else None
        if not wanted or producer is None or producer.config.model is None or len(source.path) > 1:  # type: ignore[union-attr]
            continue
        given = list(signatures[producer.config.model][1])
        if not given:
            continue
        if source.path:  # type: ignore[union-attr]
            given = [spec for spec in given if spec.name == source.path[0]]  # type: ignore[union-attr]
            if not given:
                continue
        if len(given) == 1 and len(wanted) == 1:
            _fit(where, given[0], wanted[0])
            continue
        by_name = {spec.name: spec for spec in given}
        for tensor in wanted:
            if tensor.name not in by_name:
                names = ", ".join(by_name)
                raise ConfigError(f"{where}: needs tensor {tensor.name!r}, but node {producer.name!r} gives ({names})")
            _fit(where, by_name[tensor.name], tensor)
