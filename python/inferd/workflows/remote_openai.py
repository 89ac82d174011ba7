"""OpenAI and OpenAI-compatible APIs (``workflow = "openai"``), on the official ``openai`` client.

Options: ``model`` (the remote model name; required), ``endpoint`` (``chat``, ``completion`` or
``embeddings``; default chat), ``base_url`` (default OpenAI's; any compatible server: vLLM,
llama.cpp, Ollama, TGI's /v1, ...), ``api_key_env`` (default ``OPENAI_API_KEY``) or
``api_key``, ``system`` (a system prompt for chat), ``timeout_s``, ``max_retries``,
``backoff_s``, ``max_backoff_s``, ``max_chars``, ``default_max_new_tokens``.

Input: text (one user message, or the prompt), JSON ``{"messages": [...]}`` for chat, or for
embeddings text / JSON ``{"input": [texts]}``. Parameters (chat, completion): max_new_tokens,
temperature, top_p, seed, stop. ``Infer`` returns the text (embeddings: a float32 tensor,
one row per input); ``Stream`` yields text pieces as the API sends them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import openai

from ..errors import ConfigError, InvalidInput, Unimplemented
from ._params import GenerationParameters, chat_messages, check_known, generation_parameters, text_input
from ._remote import Remote, RemoteWorkflow

__all__ = ["OpenAIWorkflow"]

Endpoint = Literal["chat", "completion", "embeddings"]

_Features = tuple[Any, GenerationParameters | None]


class OpenAIWorkflow(RemoteWorkflow):
    """Chat, completion or embeddings through an OpenAI-compatible HTTP API."""

    kind = "openai"
    defaults = {"api_key_env": "OPENAI_API_KEY", "max_chars": 200_000}

    def __init__(
        self,
        path: Path | None = None,
        *,
        model: str,
        endpoint: Endpoint = "chat",
        base_url: str | None = None,
        system: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(path, **options)
        if endpoint not in ("chat", "completion", "embeddings"):
            raise ConfigError(f"openai: endpoint must be chat, completion or embeddings, not {endpoint!r}")
        self.model = model
        self.endpoint: Endpoint = endpoint
        self.base_url = base_url
        self.system = system
        self.client: openai.OpenAI | None = None
        self.remote = Remote(model, "OpenAI API", self.policy, [])

    def __repr__(self) -> str:
        return f"OpenAIWorkflow(model={self.model!r}, endpoint={self.endpoint!r}, base_url={self.base_url!r})"

    def setup(self) -> None:
        key = self.take_key(required=self.base_url is None)
        self.remote = Remote(self.model, f"OpenAI API at {self.base_url or 'api.openai.com'}", self.policy, [key])
        # Retries are ours (counted, bounded, logged without secrets): the client's are off.
        self.client = openai.OpenAI(
            api_key=key or "none", base_url=self.base_url, timeout=self.policy.timeout_s, max_retries=0
        )

    def teardown(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def preprocess(self, inputs: Any, parameters: Mapping[str, Any] | None = None) -> _Features:
        parameters = parameters or {}
        if self.endpoint == "embeddings":
            check_known(parameters, ())
            if isinstance(inputs, Mapping) and isinstance(inputs.get("input"), list):
                texts = inputs["input"]
                if not texts or not all(isinstance(text, str) for text in texts):
                    raise InvalidInput("'input': expected a non-empty list of strings", path="input")
                if sum(len(text) for text in texts) > self.max_chars:
                    raise InvalidInput(f"input is longer than {self.max_chars} characters")
                return list(texts), None
            return [text_input(inputs, self.max_chars)], None
        checked = generation_parameters(
            parameters,
            default_max_new_tokens=self.default_max_new_tokens,
            max_new_tokens_limit=self.max_new_tokens_limit,
        )
        if self.endpoint == "chat":
            return chat_messages(inputs, self.max_chars, self.system), checked
        return text_input(inputs, self.max_chars), checked

    def _arguments(self, parameters: GenerationParameters) -> dict[str, Any]:
        arguments: dict[str, Any] = {"model": self.model, "max_tokens": parameters.max_new_tokens}
        if parameters.temperature is not None:
            arguments["temperature"] = parameters.temperature
        if parameters.top_p is not None:
            arguments["top_p"] = parameters.top_p
        if parameters.seed is not None:
            arguments["seed"] = parameters.seed
        if parameters.stop:
            arguments["stop"] = parameters.stop
        return arguments

    def run(self, features: _Features) -> Any:
        assert self.client is not None
        client = self.client
        inputs, parameters = features
        if parameters is None:
            response = self.remote.call(lambda: client.embeddings.create(model=self.model, input=inputs))
            rows = sorted(response.data, key=lambda item: item.index)
            return np.asarray([row.embedding for row in rows], dtype=np.float32)
        arguments = self._arguments(parameters)
        if self.endpoint == "chat":
            chat = self.remote.call(lambda: client.chat.completions.create(messages=inputs, **arguments))
            return chat.choices[0].message.content or "" if chat.choices else ""
        completion = self.remote.call(lambda: client.completions.create(prompt=inputs, **arguments))
        return completion.choices[0].text if completion.choices else ""

    def stream(self, features: _Features) -> Iterator[str]:
        assert self.client is not None
        client = self.client
        inputs, parameters = features
        if parameters is None:
            raise Unimplemented("embeddings do not stream: call Infer")
        arguments = self._arguments(parameters)
        if self.endpoint == "chat":
            chats = self.remote.call(lambda: client.chat.completions.create(messages=inputs, stream=True, **arguments))
            with chats:
                for chunk in self.remote.iterate(iter(chats)):
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
            return
        completions = self.remote.call(lambda: client.completions.create(prompt=inputs, stream=True, **arguments))
        with completions:
            for piece in self.remote.iterate(iter(completions)):
                if piece.choices and piece.choices[0].text:
                    yield piece.choices[0].text
