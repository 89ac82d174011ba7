"""Adapters: what runs before ``preprocess`` and after ``postprocess``.

Input adapters, one per model, as its ``input`` table says:

- passthrough: the payload as it came (JSON decoded, tensors as numpy, text, a blob);
- records: JSON records, flattened, renamed and selected as the configuration says;
- tensor: JSON records made into typed tensors by a declared schema, in the Rust core.

The output adapter (:func:`adapt_output`) decides what kind of answer a model's output makes:
tensors answer a JSON request as JSON records (one per row) and any other request as tensors;
text, bytes, blobs and audio keep their kind (audio as a blob, its sample rate in the answer's
parameters); anything else is JSON. The transport only writes what it decided.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

from . import _native
from .config import InputConfig, PassthroughInput, RecordsInput, TensorInput
from .errors import ConfigError, InternalError, InvalidInput, RecordError
from .schema import Schema
from .workflow import Audio, Blob

__all__ = [
    "Payload", "Adapter", "JsonLimits", "make_adapter", "decode_json", "decode_records", "adapt_output", "OutputKind",
]  # fmt: skip

#: "object": a Python object from another model of the same server (a graph's node), passed
#: without serialisation.
PayloadKind = Literal["json", "tensors", "text", "blob", "object"]
#: What an answer carries: JSON bytes, tensors (an ndarray, sent as "output", or a dict of
#: them), text, a :class:`Blob`, nothing, or (to an "object" request) the output itself.
OutputKind = Literal["json", "tensors", "text", "blob", "none", "object"]


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 1 µs a request more
class Payload:
    """A request's input, as the transport delivered it.

    ``value`` is ``bytes`` (UTF-8 JSON) for json, ``dict[str, numpy.ndarray]`` for tensors,
    ``str`` for text, :class:`~inferd.workflow.Blob` for blob and anything for object.
    """

    kind: PayloadKind
    value: Any
    #: Answer with the model's output object itself, not its kind's encoding: a call from
    #: another model of the server (a graph's node), whatever kind its input is.
    raw: bool = False


Adapter = Callable[[Payload], Any]


def _malformed(error: orjson.JSONDecodeError, start: int = 0) -> InvalidInput:
    """The error for JSON that does not parse; ``start``: where the parsed bytes began."""
    offset = start + error.pos
    return InvalidInput(f"malformed JSON at byte {offset}: {error.msg}", offset=offset)


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """A model's limits on its JSON payloads (``limits.max_json_depth``, ``max_json_bytes``,
    else ``[server]``'s): :meth:`check` refuses a payload beyond them before it is decoded."""

    depth: int = 64
    size: int | None = None
    #: The model, for the messages.
    model: str = ""

    def check_size(self, data: bytes) -> None:
        """Raises :class:`InvalidInput` naming the limit when ``data`` is larger than allowed."""
        if self.size is not None and len(data) > self.size:
            raise InvalidInput(
                f"model {self.model!r}: the JSON payload is {len(data)} bytes, over the limit of {self.size} "
                "(limits.max_json_bytes)", model=self.model, limit="max_json_bytes", max_json_bytes=self.size,
            )  # fmt: skip

    def check(self, data: bytes) -> None:
        """:meth:`check_size`, and the depth: counted by an iterative native scan (no parser
        recursion; 8 bytes a step, a few GB/s, faster than ``bytes.count``)."""
        self.check_size(data)
        if len(data) <= self.depth:
            return  # fewer bytes than the limit's brackets
        offset = _native.nesting_beyond(data, self.depth)
        if offset is not None:
            raise self.too_deep(offset)

    def too_deep(self, offset: int) -> InvalidInput:
        return InvalidInput(
            f"model {self.model!r}: the JSON payload nests deeper than {self.depth} levels at byte {offset} "
            "(limits.max_json_depth)", model=self.model, limit="max_json_depth", max_json_depth=self.depth,
            offset=offset,
        )  # fmt: skip


def decode_json(data: bytes) -> Any:
    """Parses JSON, naming the byte offset of a syntax error."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise _malformed(error) from None


def decode_records(data: bytes) -> Any:
    """Parses JSON records: an array of objects, one object, or NDJSON (one object a line, as
    the tensor adapter reads them). A syntax error names its byte offset."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if error.msg != "unexpected content after document":
            raise _malformed(error) from None
    records = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        line = data[start:end]
        if line.strip():
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as error:
                raise _malformed(error, start) from None
        start = end + 1
    return records


_preview = reprlib.Repr()  # a record's start for an error message, however deep it nests
_preview.maxlevel = 3


def _passthrough_adapter(limits: JsonLimits) -> Adapter:
    def adapt(payload: Payload) -> Any:
        if payload.kind != "json":
            return payload.value
        limits.check(payload.value)
        return decode_json(payload.value)

    return adapt


def _need_json(payload: Payload, adapter: str) -> bytes:
    if payload.kind != "json":
        raise InvalidInput(f"this model takes JSON records ({adapter} input), got a {payload.kind} payload")
    data: bytes = payload.value
    return data


def _records(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise InvalidInput(f"expected a JSON array of objects or one object, got {type(value).__name__}")
    for index, record in enumerate(value):
        if not isinstance(record, dict):
            raise RecordError(
                f"record {index}: expected an object, got {type(record).__name__}",
                record=index,
                expected="object",
                value=_preview.repr(record)[:40],
            )
    return value


def _flatten(record: Mapping[str, Any], delimiter: str) -> dict[str, Any]:
    """Nested objects' members as top-level keys joined by ``delimiter``, depth first, in
    order. A loop, not a recursion: JSON nests deeper than Python's recursion limit."""
    flat: dict[str, Any] = {}
    stack = [("", iter(record.items()))]
    while stack:
        prefix, members = stack[-1]
        for key, value in members:
            path = f"{prefix}{key}"
            if isinstance(value, dict) and value:
                stack.append((path + delimiter, iter(value.items())))
                break
            flat[path] = value
        else:
            stack.pop()
    return flat


def _records_adapter(config: RecordsInput, limits: JsonLimits) -> Adapter:
    rename = dict(config.rename)
    select = list(config.select) if config.select is not None else None

    def adapt(payload: Payload) -> list[dict[str, Any]]:
        if payload.kind == "object":
            records = _records(payload.value)
        else:
            data = _need_json(payload, "records")
            limits.check(data)
            records = _records(decode_records(data))
        if config.flatten:
            records = [_flatten(record, config.delimiter) for record in records]
        if rename:
            records = [{rename.get(key, key): value for key, value in record.items()} for record in records]
        if select is not None:
            selected = []
            for index, record in enumerate(records):
                missing = [field for field in select if field not in record]
                if missing:
                    raise RecordError(
                        f'record {index}, field "{missing[0]}": missing',
                        record=index,
                        path=missing[0],
                    )
                selected.append({field: record[field] for field in select})
            records = selected
        return records

    return adapt


def _tensor_adapter(config: TensorInput, limits: JsonLimits) -> Adapter:
    try:
        schema = Schema(
            config.fields, delimiter=config.delimiter, dtype=config.dtype, name=config.name, max_depth=limits.depth
        )
    except (ValueError, TypeError) as error:
        raise ConfigError(f"tensor input: {error}") from None

    deep = f"nested deeper than {limits.depth} levels"

    def adapt(payload: Payload) -> dict[str, np.ndarray]:
        if payload.kind == "tensors":
            tensors: dict[str, np.ndarray] = payload.value
            return tensors
        if payload.kind == "object":
            value = payload.value
            if isinstance(value, np.ndarray):
                return {config.name: value}
            if _is_tensors(value):
                return dict(value)
            return schema.parse_json(_json(value))  # records from another node: by the schema
        data = _need_json(payload, "tensor")
        limits.check_size(data)
        try:
            return schema.parse_json(data)  # the Rust scanner counts the depth as it reads
        except RecordError as error:
            if error.offset is not None and error.message.endswith(deep):
                raise limits.too_deep(error.offset) from None
            raise

    return adapt


def make_adapter(config: InputConfig, limits: JsonLimits | None = None) -> Adapter:
    """The adapter for a model's ``input`` table, built (and validated) once; ``limits``:
    its JSON payloads' (default: depth 64, any size)."""
    limits = limits or JsonLimits()
    if isinstance(config, PassthroughInput):
        return _passthrough_adapter(limits)
    if isinstance(config, RecordsInput):
        return _records_adapter(config, limits)
    if isinstance(config, TensorInput):
        return _tensor_adapter(config, limits)
    raise ConfigError(f"unknown input format: {config!r}")


# -- the output adapter ------------------------------------------------------------------


def _is_tensors(output: Any) -> bool:
    return isinstance(output, np.ndarray) or (
        isinstance(output, Mapping)
        and bool(output)
        and all(isinstance(value, np.ndarray) for value in output.values())
    )


def _rows(tensors: Mapping[str, np.ndarray]) -> list[dict[str, Any]] | dict[str, Any]:
    """Tensors with one leading (batch) size as one JSON record a row, else by name."""
    sizes = {value.shape[0] if value.ndim else None for value in tensors.values()}
    columns = {name: value.tolist() for name, value in tensors.items()}
    if len(sizes) != 1 or None in sizes:
        return columns
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def _json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as error:
        raise InternalError(f"the model's output cannot be encoded as JSON: {error}") from error


_NO_PARAMETERS: dict[str, Any] = {}


def adapt_output(output: Any, request: PayloadKind) -> tuple[OutputKind, Any, dict[str, Any]]:
    """(kind, value, parameters) of the answer that ``output`` makes to a request of kind
    ``request`` (see the module's docstring). The parameters are metadata about the output
    (``sample_rate``); do not change the dict returned. To an "object" request (a graph's
    node, any model's call to another) the output goes as it is."""
    if request == "object":
        return "object", output, _NO_PARAMETERS
    if isinstance(output, np.ndarray):
        return ("json", _json(output), _NO_PARAMETERS) if request == "json" else ("tensors", output, _NO_PARAMETERS)
    if output is None:
        return "none", None, _NO_PARAMETERS
    if isinstance(output, str):
        return "text", output, _NO_PARAMETERS
    if isinstance(output, Audio):
        return "blob", Blob(output.data, output.content_type), {"sample_rate": output.sample_rate}
    if isinstance(output, Blob):
        return "blob", output, _NO_PARAMETERS
    if isinstance(output, (bytes, bytearray, memoryview)):
        return "blob", Blob(bytes(output), "application/octet-stream"), _NO_PARAMETERS
    if _is_tensors(output):
        return ("json", _json(_rows(output)), _NO_PARAMETERS) if request == "json" else ("tensors", output, _NO_PARAMETERS)
    return "json", _json(output), _NO_PARAMETERS
