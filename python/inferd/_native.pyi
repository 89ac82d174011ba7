"""The native records core of inferd (Rust, built by maturin as ``inferd._native``).

Use it through :mod:`inferd.schema`; this module is its private engine. JSON is parsed with the
GIL released; Python records are read with it held (Python objects can only be read so).
Errors are raised as :mod:`inferd.errors` classes: ``ConfigError`` for a bad declaration,
``RecordError`` for a bad record or malformed JSON, ``TensorError`` for tensors that cannot be
batched together.

It also reads and writes the two messages of the serving hot path (``decode_request``,
``encode_response``), which the server uses in place of the generated message classes, and
writes the server's spans as OTLP (``encode_spans``, in the tracing thread).
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, final

import numpy.typing as npt

__all__ = [
    "PARALLEL_MIN_BYTES",
    "OIP_FIELDS",
    "OIP_RESPONSE_FIELDS",
    "OTLP_FIELDS",
    "WIRE_FIELDS",
    "OipRequest",
    "Request",
    "Schema",
    "decode_infer_request",
    "decode_request",
    "encode_infer_response",
    "encode_json_response",
    "encode_response",
    "encode_spans",
    "nesting_beyond",
    "plan_concat",
    "split_ranges",
]

PARALLEL_MIN_BYTES: Final[int]
"""JSON inputs at least this many bytes are parsed by several threads."""

WIRE_FIELDS: Final[dict[str, int]]
"""The field numbers the wire codec reads and writes, as "Message.field": number."""

OIP_FIELDS: Final[dict[str, int]]
"""The field numbers :func:`decode_infer_request` reads, as "Message.field": number."""

OIP_RESPONSE_FIELDS: Final[dict[str, int]]
"""The field numbers :func:`encode_infer_response` writes, as "Message.field": number."""

OTLP_FIELDS: Final[dict[str, int]]
"""The OTLP trace field numbers :func:`encode_spans` writes, as "Message.field": number."""

@final
class Request:
    """An ``inferd.v1.InferRequest``, read by :func:`decode_request`."""

    @property
    def model(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def parameters(self) -> bytes | None:
        """The serialized ``google.protobuf.Struct``, or None when the request has none."""

    def payload(self) -> tuple[str, Any]:
        """``(kind, value)``: json -> bytes, tensors -> {name: ndarray}, text -> str,
        blob -> (data, content_type). Raises ``InvalidInput`` for a malformed request or one
        without input, ``TensorError`` for a tensor whose dtype, shape and data disagree."""

def decode_request(data: bytes) -> Request:
    """Reads an ``InferRequest``; never raises for what the bytes hold (``payload()`` does)."""

@final
class OipRequest:
    """An Open Inference Protocol ``ModelInferRequest``, read by :func:`decode_infer_request`;
    or, with ``complete`` false (every other attribute empty), one it leaves to the Python
    reader: typed ``contents``, any fault, malformed bytes."""

    @property
    def complete(self) -> bool: ...
    @property
    def model_name(self) -> str: ...
    @property
    def model_version(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def parameters(self) -> dict[str, Any]:
        """``{name: bool | int | str | float | None}`` (None: no member of the oneof set)."""

    @property
    def inputs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Each input's ``(name, datatype, parameters)``, in order."""

    @property
    def tensors(self) -> dict[str, npt.NDArray[Any]]:
        """``{name: ndarray}`` from ``raw_input_contents``, in the inputs' order (BF16 as
        float32, BYTES as an object array of bytes)."""

    @property
    def outputs(self) -> list[str]:
        """The names of the outputs asked for (empty: all)."""

def decode_infer_request(data: bytes) -> OipRequest:
    """Reads a ``ModelInferRequest``; never raises (what it does not serve is incomplete)."""

def encode_infer_response(
    model_name: str,
    model_version: str,
    id: str,
    outputs: object,
    parameters: object,
    stream: bool = False,
) -> bytes | None:
    """An Open Inference Protocol ``ModelInferResponse`` (with ``stream``, the
    ``ModelStreamInferResponse`` holding it) of ``outputs`` ({name: ndarray}, in order) and
    ``parameters`` ({name: bool | int | float | str} or None), as the Python writer writes it;
    None for what it leaves to that writer (another kind of dict or array: not C-contiguous,
    big-endian, no protocol datatype, BYTES elements not exactly str or bytes; a parameter
    of another type or beyond int64). Large contents are copied with the GIL released."""

def encode_response(
    model: str, id: str, output: object, timings: Sequence[tuple[str, float]]
) -> bytes | None:
    """An ``InferResponse`` carrying ``output`` (an ndarray, sent as "output", or a dict of
    them) as tensors; None when an output has no tensor encoding as laid out (the caller's
    message path handles it)."""

def encode_json_response(model: str, id: str, json: bytes, timings: Sequence[tuple[str, float]]) -> bytes:
    """An ``InferResponse`` carrying ``json`` (UTF-8 JSON, written as is) as its output."""

def encode_spans(
    spans: Iterable[tuple[Any, ...]], service: str, scope: str, version: str, *, clock_ns: int = 0, max_items: int = 0
) -> tuple[bytes, int]:
    """One OTLP ``ExportTraceServiceRequest`` of the span tuples (``inferd.tracing``'s layout:
    trace id, span id, parent id, trace state, name, kind, start ns, end ns, attributes,
    events, links, status, and optionally the stages of the requests it served), under the
    resource ``service.name = service`` and one scope. Stages, a sequence of ``(model,
    started, timings, chunks)`` (perf_counter seconds, (stage, ms) pairs, a stream's chunks'
    perf_counter seconds), become child spans with ids of their own, each starting where the
    one before ended ("total" makes none; "stream" has an event a chunk); ``clock_ns``: the
    epoch nanoseconds at perf_counter 0. A 4-tuple ``(trace id, parent id, trace state,
    stages)`` is stages alone, whose span was recorded before them.

    Returns the message and how many of the tuples it holds: all of them, unless
    ``max_items`` (spans and events together, stages' included; 0: no limit) stopped it
    before one that would have gone past, the first always taken."""

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
        max_depth: int | None = None,
    ) -> Schema:
        """Validates the fields (paths, or mappings with the keys of ``inferd.schema.Field``).
        JSON nested deeper than ``max_depth`` (a top-level list is 1 deep) is malformed; without
        it, values the fields read may nest 127 deep and skipped ones any depth."""

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

def plan_concat(requests: Sequence[Sequence[tuple[str, str, Sequence[int]]]]) -> list[int]:
    """Checks that the requests' tensors (name, dtype, shape) can be joined on the first axis;
    returns each request's first row, plus the total (``len(requests) + 1`` offsets)."""

def split_ranges(offsets: Sequence[int], rows: int, tensor: str) -> list[tuple[int, int]]:
    """Checks offsets against a batch of ``rows`` rows; returns each part's (start, stop)."""

def nesting_beyond(data: bytes, limit: int) -> int | None:
    """The offset of the first bracket in JSON ``data`` (a document, or NDJSON) that opens a
    container nested deeper than ``limit`` (a top-level list is 1 deep), or None. Iterative:
    any depth is safe; only quotes, backslashes and brackets are read (not the syntax)."""
