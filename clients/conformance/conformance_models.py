"""The workflows the conformance server serves beside the default service's models: one to
provoke each row of the error table, and round trips of every payload kind."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from inferd import Blob, Workflow


class Payloads(Workflow):
    """Answers with its input as it came: JSON as JSON, text as text, a blob as a blob (its
    bytes reversed, so an answer cannot be the request read back by mistake), tensors as
    tensors."""

    async def run(self, features: Any) -> Any:
        if isinstance(features, Blob):
            return Blob(features.data[::-1], features.content_type)
        return features


class Parameters(Workflow):
    """Answers with the parameters it was given, as JSON (numbers keep their kind)."""

    def preprocess(self, inputs: Any, parameters: dict[str, Any]) -> Any:
        return {"parameters": parameters}

    async def run(self, features: Any) -> Any:
        return features


class Sleeper(Workflow):
    """Sleeps ``parameters.ms`` (default 10 s) before answering: for deadlines."""

    def preprocess(self, inputs: Any, parameters: dict[str, Any]) -> Any:
        return float(parameters.get("ms", 10_000))

    async def run(self, features: Any) -> Any:
        await asyncio.sleep(features / 1000)
        return {"slept_ms": features}


class Crashing(Workflow):
    """Raises in run: INTERNAL, and the message says nothing of the model's own."""

    def run(self, features: Any) -> Any:
        raise RuntimeError("a secret the client must not see")


class Busy(Workflow):
    """``run`` blocks until the server stops; serve.py sends one request that holds its only
    slot (max_inflight = 1), so every other request is RESOURCE_EXHAUSTED."""

    entered = threading.Event()
    released = threading.Event()

    def run(self, features: Any) -> Any:
        type(self).entered.set()
        type(self).released.wait()
        return {"done": True}


class Large(Workflow):
    """Answers with ``parameters.bytes`` (default 6 MiB) of text: more than the 4 MiB most gRPC
    clients accept by default, less than the server's 64 MiB."""

    def preprocess(self, inputs: Any, parameters: dict[str, Any]) -> Any:
        return int(parameters.get("bytes", 6 * 1024 * 1024))

    async def run(self, features: Any) -> Any:
        return "x" * features
