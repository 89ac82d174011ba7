"""The Hugging Face Inference API (``workflow = "hf-inference"``), on ``huggingface_hub``'s
``InferenceClient``.

Options: ``model`` (a Hub model id, or the URL of an Inference Endpoint; required), ``task``
(``text-generation`` (default), ``text-classification``, ``summarization``,
``token-classification``), ``provider`` (an inference provider; default the client's),
``api_key_env`` (default ``HF_TOKEN``) or ``api_key``, ``timeout_s``, ``max_retries``,
``backoff_s``, ``max_backoff_s``, ``max_chars``, ``default_max_new_tokens``.

Input: text (or JSON ``{"text": ...}``). Outputs: text-generation -> text (``Stream`` yields
tokens); summarization -> text; text-classification -> ``[{"label", "score"}, ...]``;
token-classification -> ``[{"entity_group", "word", "score", "start", "end"}, ...]``.
Parameters: for text-generation max_new_tokens, temperature, top_p, seed, stop; none for the
other tasks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import InferenceClient

from ..errors import ConfigError, Unimplemented
from ._params import GenerationParameters, check_known, generation_arguments, generation_parameters, text_input
from ._remote import Remote, RemoteWorkflow

__all__ = ["HFInferenceWorkflow"]

TASKS = ("text-generation", "text-classification", "summarization", "token-classification")

_Features = tuple[str, GenerationParameters | None]


class HFInferenceWorkflow(RemoteWorkflow):
    """One task of one model on the Hugging Face Inference API (or an Inference Endpoint)."""

    kind = "hf-inference"
    defaults = {"api_key_env": "HF_TOKEN"}

    def __init__(
        self,
        path: Path | None = None,
        *,
        model: str,
        task: str = "text-generation",
        provider: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(path, **options)
        if task not in TASKS:
            raise ConfigError(f"hf-inference: task must be one of {', '.join(TASKS)}, not {task!r}")
        self.model = model
        self.task = task
        self.provider = provider
        self.client: InferenceClient | None = None
        self.remote = Remote(model, "Hugging Face Inference API", self.policy, [])

    def __repr__(self) -> str:
        return f"HFInferenceWorkflow(model={self.model!r}, task={self.task!r})"

    def setup(self) -> None:
        key = self.take_key(required=False)
        self.remote = Remote(self.model, "Hugging Face Inference API", self.policy, [key])
        arguments: dict[str, Any] = {"model": self.model, "token": key, "timeout": self.policy.timeout_s}
        if self.provider is not None:
            arguments["provider"] = self.provider
        self.client = InferenceClient(**arguments)

    def teardown(self) -> None:
        self.client = None

    def preprocess(self, inputs: Any, parameters: Mapping[str, Any] | None = None) -> _Features:
        parameters = parameters or {}
        text = text_input(inputs, self.max_chars)
        if self.task != "text-generation":
            check_known(parameters, ())
            return text, None
        checked = generation_parameters(
            parameters,
            default_max_new_tokens=self.default_max_new_tokens,
            max_new_tokens_limit=self.max_new_tokens_limit,
        )
        return text, checked

    def run(self, features: _Features) -> Any:
        assert self.client is not None
        client = self.client
        text, parameters = features
        if parameters is not None:
            arguments = generation_arguments(parameters)
            return self.remote.call(lambda: client.text_generation(text, **arguments))
        if self.task == "summarization":
            return self.remote.call(lambda: client.summarization(text)).summary_text
        if self.task == "text-classification":
            labels = self.remote.call(lambda: client.text_classification(text))
            return [{"label": item.label, "score": item.score} for item in labels]
        entities = self.remote.call(lambda: client.token_classification(text))
        return [
            {
                "entity_group": item.entity_group or item.entity,
                "word": item.word,
                "score": item.score,
                "start": item.start,
                "end": item.end,
            }
            for item in entities
        ]

    def stream(self, features: _Features) -> Iterator[str]:
        assert self.client is not None
        client = self.client
        text, parameters = features
        if parameters is None:
            raise Unimplemented(f"task {self.task} does not stream: call Infer")
        arguments = generation_arguments(parameters)
        tokens = self.remote.call(
            lambda: client.text_generation(text, stream=True, details=True, **arguments)
        )
        for token in self.remote.iterate(iter(tokens)):
            if not token.token.special and token.token.text:
                yield token.token.text
