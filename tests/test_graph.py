"""Inference graphs through a real server: parallel and sequential nodes, map, switch, join,
functions, streaming, failures, cancellation, load-time errors, and the two forms agreeing."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inferd.config import ModelConfig, ServiceConfig
from inferd.engine import Engine
from inferd.errors import ConfigError, DeadlineExceeded, InternalError, InvalidInput

sys.path.insert(0, str(Path(__file__).parent))

import graph_parts as parts  # noqa: E402
from conftest import ROOT, RunningServer  # noqa: E402

P = "graph_parts"


def node(**table: Any) -> dict[str, Any]:
    return table


GRAPHS: dict[str, dict[str, Any]] = {
    "upper": {"workflow": f"{P}:Upper"},
    "length": {"workflow": f"{P}:Length"},
    "barrier": {"workflow": f"{P}:Barrier"},
    "recorder": {"workflow": f"{P}:Recorder"},
    "refuses": {"workflow": f"{P}:Refuses"},
    "crashes": {"workflow": f"{P}:Crashes"},
    "sleeper": {"workflow": f"{P}:Sleeper"},
    "ticker": {"workflow": f"{P}:Ticker"},
    "words": {"workflow": f"{P}:Words"},
    "label": {"workflow": f"{P}:Label"},
    "python-pair": {"workflow": f"{P}:PythonPair"},
    "python-stream": {"workflow": f"{P}:PythonStream"},
    "pair-graph": {"workflow": "graph", "output": "out", "nodes": {
        "loud": node(model="upper", input="request", parameters={"suffix": "!"}),
        "plain": node(model="upper", input="request"),
        "out": node(function=f"{P}:pair", inputs=["loud", "plain"]),
    }},
    "parallel": {"workflow": "graph", "output": "both", "nodes": {
        "left": node(model="barrier", input="request"),
        "right": node(model="barrier", input="request"),
        "both": node(join="all", inputs=["left", "right"]),
    }},
    "sequence": {"workflow": "graph", "output": "third", "nodes": {
        "first": node(model="recorder", input="request", parameters={"tag": "1"}),
        "second": node(model="recorder", input="first", parameters={"tag": "2"}),
        "third": node(model="recorder", input="second", parameters={"tag": "3"}),
    }},
    "fails": {"workflow": "graph", "output": "out", "nodes": {
        "bad": node(model="refuses", input="request"),
        "slow": node(model="sleeper", input="request"),
        "out": node(function=f"{P}:pair", inputs=["bad", "slow"]),
    }},
    "crash": {"workflow": "graph", "output": "out", "nodes": {
        "boom": node(model="crashes", input="request"),
        "out": node(function=f"{P}:later", input="boom"),
    }},
    "tolerant": {"workflow": "graph", "output": "all", "nodes": {
        "bad": node(model="refuses", input="request", on_error="skip"),
        "after-bad": node(model="upper", input="bad"),
        "fallback": node(model="crashes", input="request", default="(none)"),
        "good": node(model="upper", input="request"),
        "all": node(join="all", inputs=["after-bad", "fallback", "good"]),
    }},
    "sleepy": {"workflow": "graph", "output": "both", "nodes": {
        "one": node(model="sleeper", input="request"),
        "two": node(model="sleeper", input="request"),
        "both": node(join="all", inputs=["one", "two"]),
    }},
    # The graph's own deadline (limits.timeout_ms), kept by its nodes (no engine timer) or by
    # the engine (a node that defaults, a plain function that gives an awaitable).
    "sleepy-limited": {"workflow": "graph", "output": "both", "limits": {"timeout_ms": 200}, "nodes": {
        "one": node(model="sleeper", input="request"),
        "two": node(model="sleeper", input="request"),
        "both": node(join="all", inputs=["one", "two"]),
    }},
    "sleepy-default": {"workflow": "graph", "output": "out", "limits": {"timeout_ms": 200}, "nodes": {
        "nap": node(model="sleeper", input="request", default="woke"),
        "out": node(model="upper", input="nap"),
    }},
    "sleepy-function": {"workflow": "graph", "output": "out", "limits": {"timeout_ms": 200}, "nodes": {
        "nap": node(function=f"{P}:naps", input="request"),
        "out": node(model="upper", input="nap"),
    }},
    "timed": {"workflow": "graph", "output": "out", "nodes": {
        "nap": node(model="sleeper", input="request", timeout_ms=50, default="woke"),
        "late": node(model="sleeper", input="request", timeout_ms=50),
        "out": node(function=f"{P}:pair", inputs=["nap", "late"]),
    }},
    "words-upper": {"workflow": "graph", "output": "up", "nodes": {
        "words": node(model="words", input="request", stream=True),
        "up": node(model="upper", input="words", map=True),
    }},
    "ticks": {"workflow": "graph", "output": "sentences", "nodes": {
        "tick": node(model="ticker", input="request", stream=True, forward_parameters=["count"]),
        "sentences": node(function="inferd.graph.functions:sentences", input="tick"),
    }},
    "ticks-measured": {"workflow": "graph", "output": "out", "nodes": {
        "tick": node(model="ticker", input="request", stream=True, forward_parameters=["count"]),
        "sentences": node(function="inferd.graph.functions:sentences", input="tick"),
        "labels": node(model="label", input="sentences", map=True),
        "out": node(function="inferd.graph.functions:zip_stream", inputs={"sentence": "sentences", "kind": "labels.*.label"}),
    }},
    "route": {"workflow": "graph", "output": "pick", "nodes": {
        "pick": node(switch="parameters.how", cases={"loud": "loud", "len": "len"}),
        "loud": node(function=f"{P}:shout", input="request", parameters={"mark": "!!"}),
        "len": node(model="length", input="request"),
    }},
    "by-label": {"workflow": "graph", "output": "answer", "nodes": {
        "kind": node(model="label", input="request"),
        "answer": node(switch="kind.label", cases={"question": "ask"}, otherwise="say"),
        "ask": node(function=f"{P}:shout", input="request", parameters={"mark": " (asked)"}),
        "say": node(model="upper", input="request"),
    }},
    "first": {"workflow": "graph", "output": "win", "nodes": {
        "slow": node(model="sleeper", input="request"),
        "fast": node(model="upper", input="request"),
        "win": node(join="first", inputs=["slow", "fast"]),
    }},
    "any2": {"workflow": "graph", "output": "two", "nodes": {
        "a": node(model="upper", input="request"),
        "b": node(model="refuses", input="request"),
        "c": node(model="length", input="request"),
        "two": node(join="any", k=2, inputs=["a", "b", "c"]),
    }},
    "each": {"workflow": "graph", "output": "out", "nodes": {
        "parts": node(function=f"{P}:split", input="request"),
        "lengths": node(model="length", input="parts", map=True),
        "out": node(function="inferd.graph.functions:zip_records", inputs={"word": "parts", "length": "lengths"}),
    }},
    "digits": {"workflow": "torch", "path": "models/digits.pt2", "batching": {"max_batch_size": 64, "max_delay_ms": 50},
               "options": {"inputs": [{"name": "input", "dtype": "float32", "shape": [-1, 1, 8, 8]}], "outputs": ["logits", "label"]}},
    "digit-each": {"workflow": "graph", "output": "labels", "nodes": {
        "images": node(function=f"{P}:images", input="request"),
        "digits": node(model="digits", input="images", map=True),
        "labels": node(function=f"{P}:labels", input="digits"),
    }},
    "nested": {"workflow": "graph", "output": "outer", "nodes": {
        "inner": node(model="pair-graph", input="request"),
        "outer": node(model="upper", input="inner.b"),
    }},
}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    models = {name: ModelConfig.model_validate(table) for name, table in GRAPHS.items()}
    config = ServiceConfig(models=models, base_dir=ROOT / "service").with_server(metrics={"address": "127.0.0.1:0"})
    running = RunningServer(config)
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[Any]:
    with server.client(timeout=30) as client:
        yield client


def wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_parallel_nodes_run_at_once(client: Any) -> None:
    # Each barrier node waits for the other inside its run: they can only both answer if the
    # graph ran them at the same time.
    result = client.infer("parallel", "x")
    assert result.output == ["met:x", "met:x"]
    assert {"node:left", "node:right", "node:both"} <= set(result.timings)


def test_sequential_nodes_run_in_order(client: Any) -> None:
    parts.Recorder.events.clear()
    assert client.infer("sequence", "x").output == "x>1>2>3"
    events = [(tag, what) for tag, what, _ in sorted(parts.Recorder.events, key=lambda event: event[2])]
    assert events == [("1", "start"), ("1", "end"), ("2", "start"), ("2", "end"), ("3", "start"), ("3", "end")]


def test_a_function_joins_two_model_calls(client: Any) -> None:
    assert client.infer("pair-graph", "hi").output == {"a": "HI!", "b": "HI"}


def test_python_and_toml_forms_give_the_same_answers(client: Any) -> None:
    for text in ("hi", "Grüße", "a b c", ""):
        assert client.infer("python-pair", text).output == client.infer("pair-graph", text).output
    streamed = ["".join(chunk.output for chunk in client.stream(name, "one two three") if not chunk.final)
                for name in ("words-upper", "python-stream")]  # fmt: skip
    assert streamed[0] == streamed[1] == "ONE TWO THREE "


def test_a_failing_node_names_itself_and_cancels_its_siblings(client: Any) -> None:
    started, cancelled = parts.Sleeper.started, parts.Sleeper.cancelled
    with pytest.raises(InvalidInput) as caught:
        client.infer("fails", "x")
    assert "graph 'fails', node 'bad'" in str(caught.value) and "cannot take 'x'" in str(caught.value)
    assert caught.value.details["node"] == "bad" and caught.value.details["graph"] == "fails"
    # The sibling that was sleeping is cancelled, not left running.
    wait_until(lambda: parts.Sleeper.cancelled - cancelled == parts.Sleeper.started - started == 1)


def test_a_crashing_node_is_internal_naming_it(client: Any) -> None:
    with pytest.raises(InternalError) as caught:
        client.infer("crash", "x")
    message = str(caught.value)
    assert "graph 'crash', node 'boom'" in message and "secret" not in message
    assert caught.value.details["node"] == "boom"


def test_skip_and_default(client: Any) -> None:
    # bad skips (and so does the node that reads it); fallback answers its default.
    assert client.infer("tolerant", "x").output == ["(none)", "X"]


def test_a_deadline_cancels_every_node(client: Any) -> None:
    started, cancelled = parts.Sleeper.started, parts.Sleeper.cancelled
    # Long enough for both nodes to start on a loaded machine: a node whose deadline has
    # already passed is not started at all (the model call refuses it first).
    with pytest.raises(DeadlineExceeded):
        client.infer("sleepy", "x", timeout=2)
    wait_until(lambda: parts.Sleeper.started - started == 2)
    wait_until(lambda: parts.Sleeper.cancelled - cancelled == 2)


@pytest.mark.parametrize("graph", ["sleepy-limited", "sleepy-default", "sleepy-function"])
def test_the_graphs_own_deadline_stops_it(client: Any, graph: str) -> None:
    # The server answers (the client would wait 30 s): DEADLINE_EXCEEDED, never a default
    # answered after the deadline, and every wait cancelled.
    cancelled = parts.Sleeper.cancelled
    with pytest.raises(DeadlineExceeded):
        client.infer(graph, "x")
    wait_until(lambda: parts.Sleeper.cancelled - cancelled == (2 if graph == "sleepy-limited" else 1))


def test_a_node_timeout(client: Any) -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        client.infer("timed", "x")
    assert "graph 'timed', node 'late'" in str(caught.value)


def test_a_streaming_graph_sends_chunks_in_order_then_final(client: Any) -> None:
    chunks = list(client.stream("words-upper", "the quick brown fox"))
    assert [chunk.output for chunk in chunks[:-1]] == ["THE ", "QUICK ", "BROWN ", "FOX "]
    assert chunks[-1].final and "node:up" in chunks[-1].timings
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    # Infer on a streaming graph: the whole answer.
    assert client.infer("words-upper", "a b").output == "A B "


def test_a_stream_regrouped_by_a_function(client: Any) -> None:
    chunks = [chunk.output for chunk in client.stream("ticks", "t", parameters={"count": 3}) if not chunk.final]
    assert chunks == ["t0.", "t1.", "t2."]


def test_a_stream_mapped_chunk_by_chunk_and_zipped(client: Any) -> None:
    chunks = [chunk.output for chunk in client.stream("ticks-measured", "t", parameters={"count": 2}) if not chunk.final]
    assert chunks == [{"sentence": "t0.", "kind": "statement"}, {"sentence": "t1.", "kind": "statement"}]


def test_cancelling_a_streaming_graph_stops_the_stream(client: Any) -> None:
    made = parts.Ticker.made
    stream = client.stream("ticks", "t", parameters={"count": 10_000})
    next(stream)
    stream.close()  # the client cancels the call
    wait_until(lambda: parts.Ticker.open == 0)
    stopped = parts.Ticker.made
    assert stopped - made < 10_000
    time.sleep(0.1)  # (only to see that nothing more is made; the stop itself was waited for)
    assert parts.Ticker.made == stopped


def test_switch_on_a_parameter_and_on_an_output(client: Any) -> None:
    assert client.infer("route", "hey", parameters={"how": "loud"}).output == "hey!!"
    assert client.infer("route", "hey", parameters={"how": "len"}).output == 3
    with pytest.raises(InvalidInput) as caught:
        client.infer("route", "hey", parameters={"how": "sideways"})
    assert "node 'pick'" in str(caught.value) and "no case for 'sideways'" in str(caught.value)
    assert client.infer("by-label", "why?").output == "why? (asked)"
    assert client.infer("by-label", "so.").output == "SO."


def test_join_first_and_any(client: Any) -> None:
    cancelled = parts.Sleeper.cancelled
    assert client.infer("first", "x").output == "X"
    wait_until(lambda: parts.Sleeper.cancelled == cancelled + 1)  # the loser is stopped
    assert sorted(map(str, client.infer("any2", "abc").output)) == ["3", "ABC"]


def test_map_over_a_list_and_paths(client: Any) -> None:
    assert client.infer("each", "a bb ccc").output == [
        {"word": "a", "length": 1}, {"word": "bb", "length": 2}, {"word": "ccc", "length": 3},
    ]  # fmt: skip
    assert client.infer("nested", "q").output == "Q"


def test_concurrent_node_calls_meet_at_the_models_batcher(client: Any) -> None:
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images[:8].tolist()
    before = next(model for model in client.models() if model.name == "digits").batching
    answer = client.infer("digit-each", images).output
    after = next(model for model in client.models() if model.name == "digits").batching
    assert before is not None and after is not None
    assert int(after["rows"]) - int(before["rows"]) == 8
    assert int(after["batches"]) - int(before["batches"]) < 8  # some calls ran in one batch
    alone = [int(client.infer("digits", {"input": np.asarray(image, np.float32).reshape(1, 1, 8, 8)}).output["label"][0]) for image in images]
    assert answer == alone and sum(a == b for a, b in zip(answer, digits.target[:8])) >= 6


def test_a_tensor_mismatch_between_nodes_fails_the_graphs_setup(server: RunningServer) -> None:
    config = ServiceConfig(base_dir=ROOT / "service", models={
        "wine": ModelConfig.model_validate({"workflow": "onnx", "path": "models/wine.onnx"}),
        "digits": ModelConfig.model_validate(GRAPHS["digits"]),
        "mismatch": ModelConfig.model_validate({"workflow": "graph", "output": "digits", "nodes": {
            "wine": node(model="wine", input="request"), "digits": node(model="digits", input="wine"),
        }}),
    })  # fmt: skip
    engine = Engine(config)
    server.call(engine.start())
    try:
        assert engine.states()["mismatch"].value == "failed"
        (report,) = [report for report in engine.describe() if report.name == "mismatch"]
        assert "graph 'mismatch', node 'digits' (model 'digits'): needs tensor 'input'" in report.reason
        assert "node 'wine' gives (" in report.reason
    finally:
        server.call(engine.close())


def test_list_models_shows_nodes_and_their_stats(client: Any) -> None:
    client.infer("pair-graph", "x")
    info = next(model for model in client.models() if model.name == "pair-graph")
    assert info.workflow == "graph" and info.unary and not info.streaming
    assert [(n["name"], n["kind"], n["target"], n["inputs"]) for n in info.nodes] == [
        ("loud", "model", "upper", ["request"]),
        ("plain", "model", "upper", ["request"]),
        ("out", "function", f"{P}:pair", ["loud", "plain"]),
    ]
    assert info.stages["node:out"]["count"] >= 1
    words = next(model for model in client.models() if model.name == "words-upper")
    assert words.streaming and words.unary and words.nodes[0]["streams"]


# -- checked at load ----------------------------------------------------------------------


def _engine(nodes: dict[str, Any], output: str = "out", **extra: Any) -> Engine:
    models = {name: ModelConfig.model_validate(GRAPHS[name]) for name in ("upper", "words")}
    models["g"] = ModelConfig.model_validate({"workflow": "graph", "output": output, "nodes": nodes})
    for name, table in extra.items():
        models[name] = ModelConfig.model_validate(table)
    return Engine(ServiceConfig(models=models))


LOAD_ERRORS = [
    ({"out": node(model="nope", input="request")}, "graph 'g', node 'out': unknown model 'nope'"),
    ({"out": node(model="upper", input="ghost")}, "node 'out': input 'ghost': nothing produces 'ghost'"),
    ({"a": node(model="upper", input="out"), "out": node(model="upper", input="a")}, "a cycle: "),
    ({"out": node(model="upper", input="request"), "extra": node(model="upper", input="request")}, "nothing uses node 'extra'"),
    ({"request": node(model="upper", input="request"), "out": node(model="upper", input="request")}, "'request' is reserved"),
    ({"out": node(function="graph_parts:missing", input="request")}, "has no function 'missing'"),
    ({"out": node(function="no_such_module:f", input="request")}, "cannot import 'no_such_module'"),
    ({"out": node(join="any", k=3, inputs=["request", "request"])}, "k = 3, but it has only 2 inputs"),
    ({"out": node(switch="parameters.x", cases={"a": "ghost"})}, "case 'ghost' is not a node"),
    ({"out": node(model="g", input="request")}, "a graph cannot call itself"),
    ({"out": node(model="upper", inputs=["request", "request"], map=True)}, "map runs over one input"),
]


@pytest.mark.parametrize(("nodes", "message"), LOAD_ERRORS)
def test_load_time_errors_name_the_node(nodes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _engine(nodes)
    assert message in str(caught.value)


def test_an_output_that_is_not_a_node() -> None:
    with pytest.raises(ConfigError, match="output 'missing' is not a node"):
        _engine({"out": node(model="upper", input="request")}, output="missing")


def test_a_cycle_through_graphs() -> None:
    other = {"workflow": "graph", "output": "back", "nodes": {"back": node(model="g", input="request")}}
    with pytest.raises(ConfigError, match="a cycle through graphs"):
        _engine({"out": node(model="h", input="request")}, h=other)


def test_node_syntax_errors_are_refused_by_the_configuration() -> None:
    for table, message in [
        (node(model="a", function="m:f"), "exactly one of model, function, switch, join"),
        (node(join="all", inputs=["a"], map=True), "map applies to a model or function node"),
        (node(function="m:f", stream=True), "stream applies to a model node"),
        (node(join="any", inputs=["a"]), 'k goes with join = "any"'),
    ]:
        with pytest.raises(ValueError, match=message):
            ModelConfig.model_validate({"workflow": "graph", "output": "x", "nodes": {"x": table}})
