"""The default service's graphs with real models: `stories` (three smollm2 generations in
parallel, each scored by smollm2-score), its Python form `stories-python`, and the streaming
`sentences`; a client that goes stops every generation."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from conftest import RunningServer

from inferd.errors import DeadlineExceeded, InvalidInput

PROMPT = "Tell me about the sea."


def smollm2(server: RunningServer) -> Any:
    return server.server.engine.repository.get("smollm2").stages.workflow  # type: ignore[union-attr]


def wait_idle(server: RunningServer) -> None:
    """Until no generation of smollm2 runs (counted by the model, not slept on)."""
    deadline = time.monotonic() + 60
    while smollm2(server).streams_open:
        assert time.monotonic() < deadline, "smollm2's generation loop never returned"
        time.sleep(0.01)


def test_the_graph_and_its_python_form_answer_the_same(client: Any) -> None:
    parameters = {"max_new_tokens": 8}
    graph = client.infer("stories", PROMPT, parameters=parameters)
    python = client.infer("stories-python", PROMPT, parameters=parameters)
    assert graph.output == python.output or all(
        a["generated"] == b["generated"] and math.isclose(a["score"], b["score"], abs_tol=1e-4)
        for a, b in zip(graph.output, python.output)
    )
    assert [sorted(item) for item in graph.output] == [["generated", "score"]] * 3
    assert all(isinstance(item["generated"], str) and 0 < item["score"] <= 1 for item in graph.output)
    assert len({item["generated"] for item in graph.output}) > 1  # three seeds, three texts
    # Each generation is what the model gives alone with its node's parameters.
    alone = client.infer("smollm2", PROMPT, parameters={"seed": 2, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 8})
    assert graph.output[1]["generated"] == alone.output
    assert {"node:gen1", "node:gen2", "node:gen3", "node:scores", "node:scored"} <= set(graph.timings)
    assert set(python.timings) >= {"call:smollm2", "call:smollm2-score"}


def test_a_deadline_in_the_middle_stops_every_generation(server: RunningServer, client: Any) -> None:
    wait_idle(server)
    workflow = smollm2(server)
    before = workflow.tokens_generated
    with pytest.raises(DeadlineExceeded):
        client.infer("stories", PROMPT, parameters={"max_new_tokens": 2000}, timeout=3)
    at_deadline = workflow.tokens_generated
    wait_idle(server)  # all three generation loops have returned
    stopped = workflow.tokens_generated
    assert at_deadline > before  # it was generating
    # Each of the three loops sees the cancellation before its next token: at most one more
    # each (and one for the time between the client's deadline and the server's).
    assert stopped - at_deadline <= 6, (before, at_deadline, stopped)


def test_the_streaming_graph_sends_scored_sentences_in_order(client: Any) -> None:
    chunks = list(client.stream("sentences", PROMPT, parameters={"max_new_tokens": 40, "seed": 3, "temperature": 0.8}))
    *sentences, final = chunks
    assert final.final and "node:tokens" in final.timings and "node:scored" in final.timings
    assert sentences and all(set(chunk.output) == {"sentence", "score"} and 0 < chunk.output["score"] <= 1 for chunk in sentences)
    # The sentences, in order, are the model's whole answer.
    whole = client.infer("smollm2", PROMPT, parameters={"max_new_tokens": 40, "seed": 3, "temperature": 0.8}).output
    assert " ".join(chunk.output["sentence"] for chunk in sentences) == " ".join(whole.split())


def test_closing_the_streaming_graph_closes_the_generation(server: RunningServer, client: Any) -> None:
    wait_idle(server)
    workflow = smollm2(server)
    after_close = workflow.tokens_after_close
    stream = client.stream("sentences", PROMPT, parameters={"max_new_tokens": 2000})
    next(stream)
    stream.close()  # the client cancels the call
    wait_idle(server)
    assert workflow.tokens_after_close - after_close <= 1


def test_a_bad_parameter_names_the_node(client: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        client.infer("stories", PROMPT, parameters={"max_new_tokens": -1})
    assert "graph 'stories', node 'gen" in str(caught.value) and "max_new_tokens" in str(caught.value)


def test_the_cli_calls_and_lists_a_graph_like_any_model(server: RunningServer) -> None:
    import json
    import subprocess
    import sys

    run = [sys.executable, "-m", "inferd"]
    answer = subprocess.run([*run, "infer", "stories", "--address", server.address, "--text", PROMPT, "--param", "max_new_tokens=4"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    records = json.loads(answer.stdout)
    assert len(records) == 3 and all(set(record) == {"generated", "score"} for record in records)
    listed = subprocess.run([*run, "models", "--address", server.address], capture_output=True, text=True, timeout=60)
    assert "stories nodes: gen1=smollm2 gen2=smollm2 gen3=smollm2 generated=all scores=map:smollm2-score scored=zip_records" in listed.stdout
