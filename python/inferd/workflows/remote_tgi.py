"""A Text Generation Inference server (``workflow = "tgi"``), streaming tokens as it makes them.

Speaks TGI's own API (``/generate``, ``/generate_stream`` with Server-Sent Events) through
``huggingface_hub``'s ``InferenceClient`` pointed at the server's URL, which is the client
that TGI's documentation recommends. (The older ``text-generation`` package loses the HTTP
status of errors, so 401, 403 and 5xx could not be told apart.)

Options: ``url`` (the TGI server; required), ``api_key_env`` or ``api_key`` (optional: a
bearer token for a protected endpoint), ``timeout_s``, ``max_retries``, ``backoff_s``,
``max_backoff_s``, ``max_chars``, ``default_max_new_tokens``.

Input: text (or JSON ``{"text": ...}``). Parameters: max_new_tokens, temperature, top_p, seed,
stop. ``Infer`` returns the generated text; ``Stream`` yields each token's text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import InferenceClient

from ..errors import ConfigError
from ._params import GenerationParameters, generation_arguments, generation_parameters, text_input
from ._remote import Remote, RemoteWorkflow

__all__ = ["TGIWorkflow"]

_Features = tuple[str, GenerationParameters]


class TGIWorkflow(RemoteWorkflow):
    """Text generation on a Text Generation Inference server."""

    kind = "tgi"
    defaults = {"timeout_s": 120.0}

    def __init__(
        self,
        path: Path | None = None,
        *,
        url: str,
        **options: Any,
    ) -> None:
        super().__init__(path, **options)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"tgi: url must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.client: InferenceClient | None = None
        self.remote = Remote(self.url, "TGI server", self.policy, [])

    def __repr__(self) -> str:
        return f"TGIWorkflow(url={self.url!r})"

    def setup(self) -> None:
        key = self.take_key(required=self.api_key_env is not None)
        self.remote = Remote(self.url, "TGI server", self.policy, [key])
        self.client = InferenceClient(model=self.url, token=key, timeout=self.policy.timeout_s)

    def teardown(self) -> None:
        self.client = None

    def preprocess(self, inputs: Any, parameters: Mapping[str, Any] | None = None) -> _Features:
        checked = generation_parameters(
            parameters or {},
            default_max_new_tokens=self.default_max_new_tokens,
            max_new_tokens_limit=self.max_new_tokens_limit,
        )
        return text_input(inputs, self.max_chars), checked

    def run(self, features: _Features) -> str:
        assert self.client is not None
        client = self.client
        text, parameters = features
        arguments = generation_arguments(parameters)
        generated: str = self.remote.call(lambda: client.text_generation(text, **arguments))
        return generated

    def stream(self, features: _Features) -> Iterator[str]:
        assert self.client is not None
        client = self.client
        text, parameters = features
        arguments = generation_arguments(parameters)
        tokens = self.remote.call(lambda: client.text_generation(text, stream=True, details=True, **arguments))
        for token in self.remote.iterate(iter(tokens)):
            if not token.token.special and token.token.text:
                yield token.token.text
