"""Checks of the text-generation request parameters shared by the text workflows.

``max_new_tokens``, ``temperature``, ``top_p``, ``seed`` and ``stop`` mean the same in every
text workflow (local or remote); a bad value raises :class:`~inferd.errors.InvalidInput`
naming the parameter. Request parameters arrive from a protobuf Struct, where whole numbers
become ints, so a float parameter accepts ints.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput

__all__ = [
    "GENERATION_PARAMETERS",
    "GenerationParameters",
    "check_known",
    "generation_arguments",
    "generation_parameters",
    "text_input",
    "chat_messages",
]

GENERATION_PARAMETERS = ("max_new_tokens", "temperature", "top_p", "seed", "stop")

_MAX_STOP = 16


@dataclass(frozen=True, slots=True)
class GenerationParameters:
    """Checked generation parameters; ``None`` means the model's default."""

    max_new_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy: no temperature given, or temperature 0."""
        return not self.temperature


def check_known(parameters: Mapping[str, Any], known: Collection[str]) -> None:
    """Refuses a parameter that is not in ``known`` (a typo must not pass silently)."""
    for name in parameters:
        if name not in known:
            raise InvalidInput(
                f"unknown parameter {name!r} (known: {', '.join(sorted(known))})", parameter=name
            )


def _number(parameters: Mapping[str, Any], name: str, low: float, high: float, *, low_open: bool = False) -> float | None:
    value = parameters.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        (low < value if low_open else low <= value) and value <= high
    ):
        bound = "(" if low_open else "["
        raise InvalidInput(
            f"parameter {name!r}: expected a number in {bound}{low}, {high}], got {value!r}", parameter=name
        )
    return float(value)


def _integer(parameters: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = parameters.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(
            f"parameter {name!r}: expected a whole number from {low} to {high}, got {value!r}", parameter=name
        )
    return value


def generation_parameters(
    parameters: Mapping[str, Any],
    *,
    default_max_new_tokens: int,
    max_new_tokens_limit: int,
    extra: Collection[str] = (),
) -> GenerationParameters:
    """Checks the generation parameters of one request (and refuses unknown ones)."""
    check_known(parameters, (*GENERATION_PARAMETERS, *extra))
    max_new_tokens = _integer(parameters, "max_new_tokens", 1, max_new_tokens_limit)
    stop = parameters.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list):
        stops = stop
    else:
        raise InvalidInput(f"parameter 'stop': expected a list of strings, got {type(stop).__name__}", parameter="stop")
    if len(stops) > _MAX_STOP or not all(isinstance(item, str) and item for item in stops):
        raise InvalidInput(
            f"parameter 'stop': expected at most {_MAX_STOP} non-empty strings", parameter="stop"
        )
    return GenerationParameters(
        max_new_tokens=default_max_new_tokens if max_new_tokens is None else max_new_tokens,
        temperature=_number(parameters, "temperature", 0.0, 100.0),
        top_p=_number(parameters, "top_p", 0.0, 1.0, low_open=True),
        seed=_integer(parameters, "seed", 0, 2**63 - 1),
        stop=list(stops),
    )


def text_input(inputs: Any, max_chars: int) -> str:
    """A request's text: plain text, or JSON ``{"text": ...}`` / ``{"prompt": ...}``."""
    if isinstance(inputs, Mapping):
        for key in ("text", "prompt", "inputs"):
            if isinstance(inputs.get(key), str):
                inputs = inputs[key]
                break
    if not isinstance(inputs, str):
        raise InvalidInput(f'expected text (or JSON {{"text": ...}}), got {type(inputs).__name__}')
    if len(inputs) > max_chars:
        raise InvalidInput(f"text is {len(inputs)} characters; the limit is {max_chars}")
    return inputs


def chat_messages(inputs: Any, max_chars: int, system: str | None = None) -> list[dict[str, str]]:
    """A request as chat messages: text becomes one user message; JSON ``{"messages": [...]}``
    (each ``{"role": ..., "content": ...}``) is checked and kept."""
    if isinstance(inputs, Mapping) and "messages" in inputs:
        raw = inputs["messages"]
        if not isinstance(raw, list) or not raw:
            raise InvalidInput("'messages': expected a non-empty list", path="messages")
        messages: list[dict[str, str]] = []
        total = 0
        for index, message in enumerate(raw):
            if not (
                isinstance(message, Mapping)
                and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)
            ):
                raise InvalidInput(
                    f"messages[{index}]: expected {{\"role\": str, \"content\": str}}", path=f"messages.{index}"
                )
            if message["role"] not in ("system", "user", "assistant"):
                raise InvalidInput(
                    f"messages[{index}].role: expected system, user or assistant, got {message['role']!r}",
                    path=f"messages.{index}.role",
                )
            total += len(message["content"])
            messages.append({"role": message["role"], "content": message["content"]})
        if total > max_chars:
            raise InvalidInput(f"messages hold {total} characters; the limit is {max_chars}")
    else:
        messages = [{"role": "user", "content": text_input(inputs, max_chars)}]
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages


def generation_arguments(parameters: GenerationParameters) -> dict[str, Any]:
    """``InferenceClient.text_generation`` keyword arguments (TGI's parameters: hf-inference, tgi)."""
    arguments: dict[str, Any] = {"max_new_tokens": parameters.max_new_tokens}
    if not parameters.greedy:
        arguments["do_sample"] = True
        arguments["temperature"] = parameters.temperature
    if parameters.top_p is not None and parameters.top_p < 1.0:
        arguments["top_p"] = parameters.top_p
    if parameters.seed is not None:
        arguments["seed"] = parameters.seed
    if parameters.stop:
        arguments["stop"] = parameters.stop
    return arguments
