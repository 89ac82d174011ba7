"""Glue for a graph's ``function`` nodes (``function = "inferd.graph.functions:NAME"``).

Any ``module:function`` serves as a node: a plain function runs on the event loop (so it must
be quick: glue, not models), an ``async def`` is awaited, and a generator or async generator
makes the node stream (it receives a streaming input as an async iterator). A function that
declares ``parameters`` receives the node's parameters.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

from ..errors import InvalidInput

__all__ = ["zip_records", "zip_stream", "sentences", "concat"]


def zip_records(**columns: Sequence[Any]) -> list[dict[str, Any]]:
    """Columns of equal length as records: ``zip_records(generated=[a, b], score=[x, y])`` is
    ``[{"generated": a, "score": x}, {"generated": b, "score": y}]``."""
    sizes = {name: len(column) for name, column in columns.items()}
    if len(set(sizes.values())) > 1:
        raise InvalidInput(f"zip_records: columns of different lengths ({sizes})")
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*columns.values())]


async def zip_stream(**streams: AsyncIterable[Any]) -> AsyncIterator[dict[str, Any]]:
    """Streams in step as a stream of records: ``zip_stream(sentence=s, score=t)`` yields
    ``{"sentence": s[0], "score": t[0]}``, then the next, until one of them ends."""
    iterators = {name: aiter(stream) for name, stream in streams.items()}
    while True:
        record = {}
        for name, iterator in iterators.items():
            try:
                record[name] = await anext(iterator)
            except StopAsyncIteration:
                return
        yield record


def concat(*values: Any) -> list[Any]:
    """Its inputs as one list (lists are spliced in)."""
    out: list[Any] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return out


_END = re.compile(r"[.!?](?:[\"')\]]*)(?=\s)|\n")


async def sentences(pieces: AsyncIterable[str] | str) -> AsyncIterator[str]:
    """Text pieces (a model's tokens as they stream) regrouped into sentences: each sentence is
    yielded as soon as its end (``.``, ``!``, ``?`` before a space, or a newline) arrives; what
    is left at the end is the last one."""
    if isinstance(pieces, str):
        text = pieces

        async def once() -> AsyncIterator[str]:
            yield text

        pieces = once()
    buffer = ""
    async for piece in pieces:
        buffer += piece
        while True:
            match = _END.search(buffer)
            if match is None:
                break
            sentence, buffer = buffer[: match.end()].strip(), buffer[match.end() :]
            if sentence:
                yield sentence
    if buffer.strip():
        yield buffer.strip()
