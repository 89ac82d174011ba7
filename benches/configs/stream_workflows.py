"""The workflows of benches/configs/stream.toml.

``Words`` streams the words of its text as echo does, from an async generator (no thread hop).
``Ticks`` streams ``chunks`` numbered pieces with ``gap_ms`` between them (asyncio.sleep): a
model whose own gap between chunks is known, for the 1,000-stream run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from inferd import Workflow
from inferd.errors import InvalidInput

_PIECES = re.compile(r"\s*\S+")


class Words(Workflow):
    async def stream(self, features: Any) -> AsyncIterator[str]:
        if not isinstance(features, str):
            raise InvalidInput(f"expected text, got {type(features).__name__}")
        for piece in _PIECES.findall(features):
            yield piece


class Ticks(Workflow):
    async def stream(self, features: Any, parameters: dict[str, Any] | None = None) -> AsyncIterator[str]:
        parameters = parameters or {}
        gap_s = float(parameters.get("gap_ms", 100)) / 1000
        for index in range(int(parameters.get("chunks", 10))):
            await asyncio.sleep(gap_s)
            yield str(index)
