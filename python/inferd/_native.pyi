"""The native records core of inferd (Rust, built by maturin as ``inferd._native``).

Use it through :mod:`inferd.schema`; this module is its private engine. JSON is parsed with the
GIL released; Python records are read with it held (Python objects can only be read so).
Errors are raised as :mod:`inferd.errors` classes: ``ConfigError`` for a bad declaration,
``RecordError`` for a bad record or malformed JSON, ``TensorError`` for tensors that cannot be
batched together.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, final

import numpy.typing as npt

__all__ = ["PARALLEL_MIN_BYTES", "Schema", "parse_only", "plan_concat", "split_ranges"]

PARALLEL_MIN_BYTES: Final[int]
"""JSON inputs at least this many bytes are parsed by several threads."""

@final
class Schema:
    """A compiled schema: an ordered list of fields, each a path into a record."""

    def __new__(
        cls,
        fields: Iterable[str | Mapping[str, Any]],
        *,
        delimiter: str = ".",
        dtype: str = "float32",
        name: str = "input",
    ) -> Schema:
        """Validates the fields (paths, or mappings with the keys of ``inferd.schema.Field``)."""

    @property
    def tensor_names(self) -> list[str]:
        """Names of the output tensors, in order."""

    @property
    def columns(self) -> list[str]:
        """Output names of the fields, in declaration order."""

    def parse_json(self, data: bytes) -> dict[str, npt.NDArray[Any]]:
        """Tensors from JSON bytes: an array of objects, one object, or NDJSON."""

    def parse_records(
        self, records: Iterable[Mapping[str, Any]] | Mapping[str, Any]
    ) -> dict[str, npt.NDArray[Any]]:
        """Tensors from Python records, read straight from the objects (with the GIL held)."""

def parse_only(data: bytes) -> int:
    """Benchmark hook: parses one JSON document with the parser of ``Schema.parse_json``,
    building nothing (numbers are still decoded), and returns how many scalars it holds."""

def plan_concat(requests: Sequence[Sequence[tuple[str, str, Sequence[int]]]]) -> list[int]:
    """Checks that the requests' tensors (name, dtype, shape) can be joined on the first axis;
    returns each request's first row, plus the total (``len(requests) + 1`` offsets)."""

def split_ranges(offsets: Sequence[int], rows: int, tensor: str) -> list[tuple[int, int]]:
    """Checks offsets against a batch of ``rows`` rows; returns each part's (start, stop)."""
