"""The remote workflows (OpenAI-compatible, Hugging Face Inference API, TGI), each served by a
real inferd gRPC server and talking real HTTP to a fake of its API on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import RunningServer
from fakes import FakeHFInference, FakeOpenAI, FakeServer, FakeTGI

from inferd.client import Client
from inferd.config import ModelConfig, ServiceConfig
from inferd.errors import (
    DeadlineExceeded,
    InferdError,
    InvalidInput,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

#: A recognisable key: it must appear in no log record and no error message.
KEY = "sk-inferdtest-SECRET-0123456789abcdef"
KEY_ENV = "INFERD_TEST_REMOTE_KEY"

OPENAI = "inferd.workflows.remote_openai:OpenAIWorkflow"
HF = "inferd.workflows.remote_hf:HFInferenceWorkflow"
TGI = "inferd.workflows.remote_tgi:TGIWorkflow"

#: Fast retries for tests: 2 retries, 10 ms backoff.
RETRY = {"max_retries": 2, "backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 10}


class Fakes:
    def __init__(self) -> None:
        self.openai = FakeOpenAI()
        self.slow = FakeOpenAI()
        self.slow.reply_delay_s = 2.0
        self.tgi = FakeTGI()
        self.hf = {task: FakeHFInference(task) for task in
                   ("text-generation", "text-classification", "summarization", "token-classification")}

    def all(self) -> list[FakeServer]:
        return [self.openai, self.slow, self.tgi, *self.hf.values()]


def _refused_url() -> str:
    """A URL where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    made = Fakes()
    yield made
    for fake in made.all():
        fake.close()


@pytest.fixture(scope="module")
def server(fakes: Fakes) -> Iterator[RunningServer]:
    import huggingface_hub.constants

    saved = (os.environ.get(KEY_ENV), huggingface_hub.constants.HF_HUB_OFFLINE)
    os.environ[KEY_ENV] = KEY
    # The fakes are on 127.0.0.1: let huggingface_hub's client reach them even when the test
    # run forbids the Hub (HF_HUB_OFFLINE=1).
    huggingface_hub.constants.HF_HUB_OFFLINE = False
    dead = _refused_url()
    key = {"api_key_env": KEY_ENV}
    oa = {"base_url": fakes.openai.url + "/v1", **key, **RETRY}
    tables: dict[str, dict[str, Any]] = {
        "chat": {"workflow": OPENAI, "options": {"model": "gpt-fake", **oa}},
        "completion": {"workflow": OPENAI, "options": {"model": "gpt-fake", "endpoint": "completion", **oa}},
        "embeddings": {"workflow": OPENAI, "options": {"model": "embed-fake", "endpoint": "embeddings", **oa}},
        "chat-refused": {"workflow": OPENAI, "options": {"model": "m", **oa, "base_url": dead + "/v1"}},
        "chat-slow": {"workflow": OPENAI, "options": {"model": "m", **oa, "base_url": fakes.slow.url + "/v1",
                                                      "timeout_s": 0.2, "max_retries": 0}},
        "tgi": {"workflow": TGI, "options": {"url": fakes.tgi.url, **key, **RETRY}},
        "tgi-refused": {"workflow": TGI, "options": {"url": dead, **key, **RETRY}},
        "hf-refused": {"workflow": HF, "options": {"model": dead, **key, **RETRY}},
    }
    for task, fake in fakes.hf.items():
        tables[f"hf-{task}"] = {"workflow": HF, "options": {"model": fake.url, "task": task, **key, **RETRY}}
    config = ServiceConfig(models={name: ModelConfig.model_validate(table) for name, table in tables.items()})
    running = RunningServer(config)
    yield running
    running.stop()
    huggingface_hub.constants.HF_HUB_OFFLINE = saved[1]
    if saved[0] is None:
        os.environ.pop(KEY_ENV, None)
    else:
        os.environ[KEY_ENV] = saved[0]


@pytest.fixture
def client(server: RunningServer, fakes: Fakes) -> Iterator[Client]:
    for fake in fakes.all():
        fake.reset()
    fakes.slow.reply_delay_s = 2.0
    with server.client(timeout=60) as client:
        yield client


def _streamed(client: Client, model: str, inputs: Any, **parameters: Any) -> list[Any]:
    chunks = list(client.stream(model, inputs, parameters=parameters))
    assert chunks[-1].final
    return [chunk.output for chunk in chunks[:-1]]


# -- OpenAI-compatible ----------------------------------------------------------------------


def test_openai_chat_infer_and_stream(client: Client, fakes: Fakes) -> None:
    result = client.infer("chat", "hello there", parameters={"max_new_tokens": 7, "temperature": 0.5, "stop": ["\n"]})
    assert result.output == "You said: hello there"
    sent = fakes.openai.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["messages"] == [{"role": "user", "content": "hello there"}]
    assert sent.body["max_tokens"] == 7 and sent.body["temperature"] == 0.5 and sent.body["stop"] == ["\n"]
    pieces = _streamed(client, "chat", "hello there")
    assert pieces == ["You", " said:", " hello", " there"]
    assert fakes.openai.requests[-1].body["stream"] is True


def test_openai_chat_takes_messages(client: Client, fakes: Fakes) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert client.infer("chat", {"messages": messages}).output == "You said: hi"
    assert fakes.openai.requests[-1].body["messages"] == messages
    with pytest.raises(InvalidInput, match=r"messages\[0\]"):
        client.infer("chat", {"messages": [{"role": "user"}]})


def test_openai_completion_and_embeddings(client: Client) -> None:
    assert client.infer("completion", "abc").output == "You said: abc"
    assert "".join(_streamed(client, "completion", "abc def")) == "You said: abc def"
    vectors = client.infer("embeddings", {"input": ["a b", "cdef"]}).output
    assert vectors == [[3.0, 2.0, 1.0], [4.0, 1.0, 1.0]]
    tensor = client.infer("embeddings", "hello").output["output"]
    assert tensor.dtype == np.float32 and tensor.tolist() == [[5.0, 1.0, 1.0]]


@pytest.mark.parametrize(
    ("parameters", "name"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"seed": -1}, "seed"),
        ({"stop": [1]}, "stop"),
        ({"stops": ["x"]}, "stops"),
    ],
)
def test_bad_parameters_are_refused_before_any_remote_call(
    client: Client, fakes: Fakes, parameters: dict[str, Any], name: str
) -> None:
    for model in ("chat", "tgi", "hf-text-generation"):
        with pytest.raises(InvalidInput, match=name):
            client.infer(model, "x", parameters=parameters)
    assert fakes.openai.count() == fakes.tgi.count() == fakes.hf["text-generation"].count() == 0


# -- retries and error mapping (the same helper serves all three) ---------------------------


def _fake_for(fakes: Fakes, model: str) -> FakeServer:
    return {"chat": fakes.openai, "tgi": fakes.tgi}.get(model) or fakes.hf["text-generation"]


@pytest.mark.parametrize("model", ["chat", "tgi", "hf-text-generation"])
def test_retries_on_5xx_and_429_then_succeeds(client: Client, fakes: Fakes, model: str) -> None:
    fake = _fake_for(fakes, model)
    fake.fail(503)
    fake.fail(429)
    assert client.infer(model, "hi").output == "You said: hi"
    assert fake.count() == 3


@pytest.mark.parametrize("model", ["chat", "tgi", "hf-text-generation"])
@pytest.mark.parametrize(("status", "error"), [(429, ResourceExhausted), (500, Unavailable), (502, Unavailable)])
def test_retries_are_bounded(client: Client, fakes: Fakes, model: str, status: int, error: type[InferdError]) -> None:
    fake = _fake_for(fakes, model)
    fake.fail(status, times=10)
    with pytest.raises(error):
        client.infer(model, "hi")
    assert fake.count() == 1 + RETRY["max_retries"]


@pytest.mark.parametrize("model", ["chat", "tgi", "hf-text-generation"])
@pytest.mark.parametrize(
    ("status", "error"),
    [(401, Unauthenticated), (403, PermissionDenied), (400, InvalidInput), (422, InvalidInput)],
)
def test_client_errors_map_to_statuses_without_retry(
    client: Client, fakes: Fakes, model: str, status: int, error: type[InferdError]
) -> None:
    fake = _fake_for(fakes, model)
    fake.fail(status)
    with pytest.raises(error) as caught:
        client.infer(model, "hi")
    assert str(status) in str(caught.value)
    assert fake.count() == 1
    fake.fail(status)
    with pytest.raises(error):
        _streamed(client, model, "hi")  # a stream fails the same way before its first chunk


@pytest.mark.parametrize("model", ["chat-refused", "tgi-refused", "hf-refused"])
def test_connection_refused_is_unavailable(client: Client, model: str) -> None:
    with pytest.raises(Unavailable, match="cannot be reached"):
        client.infer(model, "hi")


def test_remote_timeout_is_deadline_exceeded(client: Client, fakes: Fakes) -> None:
    with pytest.raises(DeadlineExceeded):
        client.infer("chat-slow", "hi")
    assert fakes.slow.count() == 1


def test_api_key_is_never_logged_nor_echoed(client: Client, fakes: Fakes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    for model in ("chat", "completion", "embeddings", "tgi", "hf-text-generation", "hf-summarization"):
        fake = fakes.openai if model in ("chat", "completion", "embeddings") else _fake_for(fakes, model)
        if model == "hf-summarization":
            fake = fakes.hf["summarization"]
        for status in (401, 403, 400, 429, 500):
            fake.fail(status, times=5)
            try:
                client.infer(model, "hi")
            except InferdError as error:
                messages.append(f"{error} {error.details}")
            fake.reset()
        assert client.infer(model, "hi").output  # and a success, with its debug logs
        fake.fail(401)
        try:
            _streamed(client, model, "hi")
        except InferdError as error:
            messages.append(f"{error} {error.details}")
    for model in ("chat-refused", "tgi-refused", "hf-refused"):
        with pytest.raises(Unavailable) as caught:
            client.infer(model, "hi")
        messages.append(str(caught.value))
    assert len(messages) > 30
    assert any("401" in message for message in messages)
    assert not [message for message in messages if KEY in message]
    leaked = [record for record in caplog.records if KEY in record.getMessage() or KEY in (record.exc_text or "")]
    assert not leaked
    assert KEY not in caplog.text


# -- Hugging Face Inference API and TGI -----------------------------------------------------


def test_hf_tasks(client: Client, fakes: Fakes) -> None:
    assert client.infer("hf-text-generation", "hi", parameters={"seed": 3}).output == "You said: hi"
    assert fakes.hf["text-generation"].requests[-1].body["parameters"]["seed"] == 3
    labels = client.infer("hf-text-classification", "a good day").output
    assert labels[0]["label"] == "POSITIVE" and labels[0]["score"] == pytest.approx(0.9)
    assert client.infer("hf-summarization", "one two three four five six seven").output == "one two three four five"
    entities = client.infer("hf-token-classification", "Alice meets Bob").output
    assert [(e["word"], e["start"], e["end"], e["entity_group"]) for e in entities] == [
        ("Alice", 0, 5, "ENT"), ("Bob", 12, 15, "ENT"),
    ]
    assert fakes.hf["summarization"].requests[-1].headers["authorization"] == f"Bearer {KEY}"
    with pytest.raises(InvalidInput, match="unknown parameter"):
        client.infer("hf-summarization", "x", parameters={"temperature": 1})


def test_hf_and_tgi_stream_tokens_through_grpc(client: Client, fakes: Fakes) -> None:
    assert _streamed(client, "hf-text-generation", "hi") == ["You", " said:", " hi"]
    pieces = _streamed(client, "tgi", "hello world", max_new_tokens=5, temperature=0.7, top_p=0.9, stop=["."])
    assert pieces == ["You", " said:", " hello", " world"]
    body = fakes.tgi.requests[-1].body
    assert body["stream"] is True
    assert body["parameters"]["max_new_tokens"] == 5 and body["parameters"]["do_sample"] is True
    assert body["parameters"]["stop"] == ["."] and body["parameters"]["top_p"] == 0.9
    assert client.infer("tgi", "x").output == "You said: x"


def test_closing_a_remote_stream_stops_reading_it(client: Client, fakes: Fakes) -> None:
    fakes.tgi.event_delay_s = 0.05
    long_text = " ".join(f"w{i}" for i in range(200))
    stream = client.stream("tgi", long_text)
    first = next(stream)
    assert first.output == "You"
    stream.close()
    # The fake notices the closed connection when it next writes: it never sends all 202.
    for _ in range(200):
        if fakes.tgi.events_sent < 202:
            break
    assert fakes.tgi.events_sent < 202
