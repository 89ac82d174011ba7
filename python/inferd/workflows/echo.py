"""A small streaming workflow (``workflow = "echo"``): text in, pieces of it out.

It streams the words of its input back one at a time, the way a text generator streams
tokens, so that ``Stream`` can be exercised end to end without a language model. ``Infer``
returns the whole text.

Parameters: ``delay_ms`` (pause before each piece, default 0) and ``uppercase`` (bool).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..workflow import Workflow, inline

__all__ = ["EchoWorkflow"]

_PIECES = re.compile(r"\s*\S+")


class EchoWorkflow(Workflow):
    """Echoes text back, streaming it word by word."""

    kind = "echo"

    def __init__(self, path: Path | None = None, *, max_chars: int = 100_000) -> None:
        super().__init__(path)
        self.max_chars = max_chars

    @inline  # checks a string and two parameters: cheaper on the loop than in a thread
    def preprocess(self, inputs: Any, parameters: dict[str, Any] | None = None) -> tuple[str, float, bool]:
        parameters = parameters or {}
        if isinstance(inputs, dict) and isinstance(inputs.get("text"), str):
            inputs = inputs["text"]
        if not isinstance(inputs, str):
            raise InvalidInput(f'expected text (or JSON {{"text": ...}}), got {type(inputs).__name__}')
        if len(inputs) > self.max_chars:
            raise InvalidInput(f"text is {len(inputs)} characters; the limit is {self.max_chars}")
        unknown = set(parameters) - {"delay_ms", "uppercase"}
        if unknown:
            raise InvalidInput(f"unknown parameter {sorted(unknown)[0]!r} (known: delay_ms, uppercase)")
        delay = parameters.get("delay_ms", 0)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 10_000:
            raise InvalidInput(f"parameter 'delay_ms': expected a number from 0 to 10000, got {delay!r}")
        uppercase = parameters.get("uppercase", False)
        if not isinstance(uppercase, bool):
            raise InvalidInput(f"parameter 'uppercase': expected true or false, got {uppercase!r}")
        return (inputs.upper() if uppercase else inputs), float(delay), uppercase

    def run(self, features: tuple[str, float, bool]) -> str:
        return features[0]

    async def stream(self, features: tuple[str, float, bool]) -> AsyncIterator[str]:
        # An async generator: each chunk is a step on the event loop, where a plain generator's
        # would be a hop to a stage thread and back (3x the server's CPU a chunk, and a thread
        # held through each delay: benches/stream.py). Its delays wait without holding a thread,
        # so any number of streams can pause at once.
        text, delay_ms, _ = features
        for piece in _PIECES.findall(text):
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            yield piece
