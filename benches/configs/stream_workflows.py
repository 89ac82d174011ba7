"""The workflows of benches/configs/stream.toml beside echo.

``Words`` streams the words of its text as echo does, from an async generator, with nothing
else: no parameters, no checks (the least a workflow's stream can do). ``PlainEcho`` is echo
with a plain generator's stream.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from inferd import Workflow
from inferd.errors import InvalidInput
from inferd.workflows.echo import EchoWorkflow

_PIECES = re.compile(r"\s*\S+")


class Words(Workflow):
    async def stream(self, features: Any) -> AsyncIterator[str]:
        if not isinstance(features, str):
            raise InvalidInput(f"expected text, got {type(features).__name__}")
        for piece in _PIECES.findall(features):
            yield piece


class PlainEcho(EchoWorkflow):
    """echo's stream as a plain generator (what echo was before benches/stream.py): each step
    runs in a stage thread, the cost a plain generator's chunk has."""

    def stream(self, features: tuple[str, float, bool]) -> Iterator[str]:  # type: ignore[override]
        text, delay_ms, _ = features
        for piece in _PIECES.findall(text):
            if delay_ms:
                time.sleep(delay_ms / 1000)
            yield piece
