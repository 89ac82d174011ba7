"""Fakes of the OpenAI API, the Hugging Face Inference API and Text Generation Inference.

The answers are deterministic so that tests can check them:
- chat and text generation answer ``"You said: <the last user text>"``, streamed a word a piece;
- embeddings are ``[len(text), number of words, 1.0]`` per input;
- classification labels text POSITIVE when it contains "good", else NEGATIVE;
- summarization keeps the first five words; token classification tags capitalised words.
Errors carry each API's error body; a 401 echoes the key it got, as some real APIs do, so
that tests can check that inferd never passes it on.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

from .server import FakeServer, Reply, mapping, words

_last_auth: dict[int, str] = {}


def _answer(text: str) -> str:
    return f"You said: {text}"


class FakeOpenAI(FakeServer):
    """``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``."""

    def __init__(self) -> None:
        super().__init__()

    def error_body(self, status: int) -> Any:
        auth = self.requests[-1].headers.get("authorization", "") if self.requests else ""
        kinds = {400: "invalid_request_error", 401: "invalid_api_key", 429: "rate_limit_exceeded"}
        message = f"fake error {status}"
        if status == 401:
            message = f"Incorrect API key provided: {auth.removeprefix('Bearer ')}"
        return {"error": {"message": message, "type": kinds.get(status, "server_error"), "param": None, "code": None}}

    def handle(self, method: str, path: str, body: Any) -> Reply:
        body = mapping(body)
        created = int(time.time())
        model = body.get("model", "fake")
        if path == "/v1/chat/completions":
            messages = body.get("messages") or [{}]
            text = _answer(str(messages[-1].get("content", "")))
            if body.get("stream"):
                events: list[Any] = [
                    {"id": "c1", "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": None}]}
                    for piece in words(text)
                ]
                events.append({"id": "c1", "object": "chat.completion.chunk", "created": created, "model": model,
                               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                events.append("[DONE]")
                return Reply(events=events)
            return Reply(body={
                "id": "c1", "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            })
        if path == "/v1/completions":
            text = _answer(str(body.get("prompt", "")))
            if body.get("stream"):
                events = [
                    {"id": "t1", "object": "text_completion", "created": created, "model": model,
                     "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}]}
                    for piece in words(text)
                ]
                events.append("[DONE]")
                return Reply(events=events)
            return Reply(body={
                "id": "t1", "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
            })
        if path == "/v1/embeddings":
            inputs = body.get("input")
            texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
            data = []
            for index, text in enumerate(texts):
                vector = [float(len(text)), float(len(text.split())), 1.0]
                embedding: Any = vector
                if body.get("encoding_format") == "base64":
                    embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                data.append({"object": "embedding", "index": index, "embedding": embedding})
            return Reply(body={"object": "list", "data": data, "model": model,
                               "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        return Reply(404, self.error_body(404))


def _generate(body: Any) -> tuple[str, dict[str, Any]]:
    body = mapping(body)
    return _answer(str(body.get("inputs", ""))), mapping(body.get("parameters"))


def _token_events(text: str) -> list[Any]:
    pieces = list(words(text))
    events: list[Any] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        events.append({
            "index": index,
            "token": {"id": index, "text": piece, "logprob": -0.1, "special": False},
            "top_tokens": None,
            "generated_text": text if last else None,
            "details": {"finish_reason": "eos_token", "generated_tokens": len(pieces), "seed": None} if last else None,
        })
    return events


class FakeTGI(FakeServer):
    """Text Generation Inference: ``/generate``, ``/generate_stream``, and ``/`` (either)."""

    def error_body(self, status: int) -> Any:
        kind = {422: "validation", 429: "overloaded"}.get(status, "generation")
        return {"error": f"fake error {status}", "error_type": kind}

    def handle(self, method: str, path: str, body: Any) -> Reply:
        if method == "GET" and path == "/info":
            return Reply(body={"model_id": "fake/model", "max_input_tokens": 1024, "max_total_tokens": 2048})
        text, parameters = _generate(body)
        stream = path == "/generate_stream" or (path == "/" and bool(mapping(body).get("stream")))
        if path not in ("/", "/generate", "/generate_stream"):
            return Reply(404, {"error": "not found", "error_type": "not_found"})
        if stream:
            return Reply(events=_token_events(text))
        details = {"finish_reason": "eos_token", "generated_tokens": len(text.split()), "seed": parameters.get("seed")}
        result = {"generated_text": text, "details": details}
        return Reply(body=[result] if path == "/" else result)


class FakeHFInference(FakeServer):
    """The Hugging Face Inference API for one model: ``POST /`` with ``{"inputs": ...}``."""

    def __init__(self, task: str) -> None:
        super().__init__()
        self.task = task

    def handle(self, method: str, path: str, body: Any) -> Reply:
        body = mapping(body)
        inputs = str(body.get("inputs", ""))
        if self.task == "text-generation":
            text = _answer(inputs)
            if body.get("stream"):
                return Reply(events=_token_events(text))
            return Reply(body=[{"generated_text": text}])
        if self.task == "text-classification":
            positive = 0.9 if "good" in inputs else 0.2
            return Reply(body=[[{"label": "POSITIVE", "score": positive}, {"label": "NEGATIVE", "score": 1 - positive}]])
        if self.task == "summarization":
            return Reply(body=[{"summary_text": " ".join(inputs.split()[:5])}])
        if self.task == "token-classification":
            entities = []
            offset = 0
            for word in inputs.split():
                start = inputs.index(word, offset)
                offset = start + len(word)
                if word[:1].isupper():
                    entities.append({"entity_group": "ENT", "score": 0.99, "word": word, "start": start, "end": offset})
            return Reply(body=entities)
        return Reply(404, {"error": "unknown task"})
