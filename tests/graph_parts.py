"""Workflows and functions that the graph tests put in graphs (tests/test_graph.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from inferd import Workflow
from inferd.errors import InvalidInput


class Upper(Workflow):
    def run(self, text: Any, parameters: dict[str, Any] | None = None) -> str:
        return str(text).upper() + str((parameters or {}).get("suffix", ""))


class Length(Workflow):
    def run(self, text: Any) -> int:
        return len(str(text))


class Barrier(Workflow):
    """Two calls must be inside ``run`` at once: each waits for the other (a thread stage)."""

    barrier = threading.Barrier(2, timeout=10)

    def run(self, text: Any) -> str:
        type(self).barrier.wait()  # BrokenBarrierError (the call fails) unless both arrive
        return f"met:{text}"


class Recorder(Workflow):
    """Records when each call starts and ends (the tests check an order)."""

    events: list[tuple[str, str, float]] = []

    def run(self, text: Any, parameters: dict[str, Any] | None = None) -> str:
        tag = str((parameters or {}).get("tag", "?"))
        type(self).events.append((tag, "start", time.perf_counter()))
        time.sleep(0.02)
        type(self).events.append((tag, "end", time.perf_counter()))
        return f"{text}>{tag}"


class Refuses(Workflow):
    def run(self, text: Any) -> str:
        raise InvalidInput(f"cannot take {text!r}")


class Crashes(Workflow):
    def run(self, text: Any) -> str:
        raise ZeroDivisionError("a secret detail")


class Sleeper(Workflow):
    """Waits (on the loop) until cancelled; counts the calls that started and were cancelled."""

    started = 0
    cancelled = 0

    async def run(self, text: Any) -> str:
        type(self).started += 1
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            type(self).cancelled += 1
            raise
        return str(text)


class Ticker(Workflow):
    """Streams numbered words, one each 10 ms, from a thread (a plain generator); counts what it
    made and the streams that closed."""

    made = 0
    open = 0

    def stream(self, text: Any, parameters: dict[str, Any] | None = None) -> Iterator[str]:
        count = int((parameters or {}).get("count", 5))
        type(self).open += 1
        try:
            for index in range(count):
                time.sleep(0.01)
                type(self).made += 1
                yield f"{text}{index}. "
        finally:
            type(self).open -= 1


class Words(Workflow):
    async def stream(self, text: Any) -> AsyncIterator[str]:
        for word in str(text).split():
            await asyncio.sleep(0.005)
            yield word + " "


class Label(Workflow):
    """The kind of a text: "question" or "statement"."""

    def run(self, text: Any) -> dict[str, str]:
        return {"label": "question" if str(text).rstrip().endswith("?") else "statement"}


def pair(a: Any, b: Any) -> dict[str, Any]:
    return {"a": a, "b": b}


def shout(text: str, parameters: dict[str, Any]) -> str:
    return text + str(parameters.get("mark", "!"))


async def later(text: str) -> str:
    await asyncio.sleep(0.001)
    return f"later:{text}"


def naps(text: str) -> Any:
    """A plain function that gives an awaitable: the Sleeper's wait (counted with it)."""
    return Sleeper().run(text)


def images(rows: list[Any]) -> list[Any]:
    """8x8 images (nested lists) as the digits model's input tensors, one per image."""
    import numpy as np

    return [{"input": np.asarray(image, dtype=np.float32).reshape(1, 1, 8, 8)} for image in rows]


def labels(outputs: list[dict[str, Any]]) -> list[int]:
    return [int(output["label"][0]) for output in outputs]


def split(text: str) -> list[str]:
    return str(text).split()


class PythonPair(Workflow):
    """The graph ``pair-graph`` of test_graph.py, written in Python with handles."""

    async def run(self, text: Any) -> dict[str, Any]:
        upper = self.models["upper"]
        a, b = await asyncio.gather(upper.infer(text, {"suffix": "!"}), upper.infer(text))
        return pair(a, b)


class PythonStream(Workflow):
    """The graph ``words-upper`` in Python: each streamed word upper-cased as it comes."""

    async def stream(self, text: Any) -> AsyncIterator[str]:
        async for word in self.models["words"].stream(text):
            yield await self.models["upper"].infer(word)
