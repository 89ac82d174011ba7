"""Records in, tensors out: the Python face of the native records core.

A :class:`Schema` is an ordered list of :class:`Field` declarations. It turns JSON bytes (an
array of objects, one object, or NDJSON) or Python records (dicts) into named NumPy tensors;
both inputs give identical results. JSON is parsed in Rust with the GIL released; Python records
are read in Rust straight from the objects, which needs the GIL held.

Rules, in one place:

* **Paths** are dotted (the delimiter is configurable); a backslash escapes the delimiter or a
  backslash inside a key (``"a\\\\.b"`` is the key ``"a.b"``). A segment that is a plain integer
  (``scores.0``) indexes a list, or reads the key ``"0"`` of an object.
* **Columns**: fields without ``tensor=`` are the columns, in order, of the schema's 2-D default
  tensor (named ``name``); a fixed-length list (``shape=[N]``) contributes N columns. Fields that
  name a tensor form that tensor the same way. All fields of one tensor share its dtype.
* **Variable-length lists** (``shape=[-1]`` or ``max_length=M``) get a tensor of their own (named
  after the field unless ``tensor=`` says otherwise), padded with ``pad`` (default 0) to the
  batch's longest list or to ``max_length``, plus an int64 ``<name>_lengths`` tensor. A list
  longer than ``max_length`` is an error, never truncated.
* **Missing or null** values: ``missing="error"`` (the default) refuses them; ``default=x``
  (or ``missing="default"``) fills ``x``; ``missing="nan"`` fills NaN and is allowed for float
  dtypes only. For a variable-length list, ``missing="default"`` means an empty list. A null
  inside a fixed-length list follows the same policy. Nothing becomes NaN silently.
* **Numbers**: float columns take integers and floats. Integers go through float64 first: beyond
  2**53 they round to the nearest float64 (then float32 rounds again). A finite number too large
  for float32 (``1e308``) is refused, not turned into infinity. Integer columns take integers
  only (``1.0`` is refused) and refuse overflow. Bool columns take ``true``/``false`` and the
  integers 0 and 1.
* **Categories**: a field with ``vocabulary=[...]`` maps strings to their index (int64 unless
  ``dtype`` says otherwise); ``unknown="index"`` maps other strings to ``unknown_index``
  (default -1), ``unknown="error"`` (the default) refuses them.
* **Duplicate keys** in JSON: the last occurrence wins, as with :func:`json.loads`.
* **Errors**: a bad record raises :class:`~inferd.errors.RecordError` naming the record index,
  field path, what was expected and the value (cut to 40 characters); malformed JSON raises it
  with the byte ``offset``. Malformed JSON anywhere is reported before a bad record. Parts of a
  record that no field reads are checked for syntax but not decoded, however deep they nest.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from inferd import _native
from inferd.errors import ConfigError, TensorError

__all__ = [
    "Dtype",
    "Field",
    "Schema",
    "concat_batches",
    "concat_tensors",
    "split_batch",
    "split_tensors",
]

Dtype = Literal["float32", "float64", "int32", "int64", "bool"]
Scalar = bool | int | float | str

#: What a batching helper calls the single tensor of :func:`concat_batches` in its errors.
BATCH_TENSOR: Final = "batch"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a schema: where a value lives in a record and what it becomes."""

    path: str
    """Dotted path into nested objects; integer segments index lists."""
    name: str | None = None
    """Output name (defaults to the path)."""
    dtype: Dtype | None = None
    """Element type (defaults to the schema's dtype, or int64 for a vocabulary field)."""
    missing: Literal["error", "default", "nan"] | None = None
    """What an absent or null value becomes (default "error", or "default" if `default` is set)."""
    default: Scalar | None = None
    """The fill value for missing = "default"."""
    vocabulary: Sequence[str] | None = None
    """Categories: strings map to their index in this list."""
    unknown: Literal["error", "index"] | None = None
    """What a string outside the vocabulary becomes."""
    unknown_index: int | None = None
    """The index of unknown strings when unknown = "index" (default -1)."""
    shape: Sequence[int] | None = None
    """[N] for a fixed-length list, [-1] for a variable-length one."""
    max_length: int | None = None
    """A variable-length list, padded to this length."""
    pad: Scalar | None = None
    """The padding value of a list (default 0)."""
    tensor: str | None = None
    """The output tensor (defaults to the schema's tensor, or the field's name for a ragged list)."""

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Field:
        """A field from a mapping with the same keys (as in TOML); unknown keys are refused."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(str(key) for key in mapping if key not in known)
        if unknown:
            where = f"field {mapping.get('path')!r}: " if "path" in mapping else ""
            raise ConfigError(
                f"{where}unknown key(s) {', '.join(map(repr, unknown))}; "
                f"known keys are {', '.join(sorted(known))}"
            )
        if "path" not in mapping:
            raise ConfigError(f"a field needs a path: {dict(mapping)!r}")
        return cls(**mapping)

    def to_mapping(self) -> dict[str, Any]:
        """The options that are set, as plain values."""
        options: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if item.name in ("vocabulary", "shape"):
                if isinstance(value, str | bytes):
                    raise ConfigError(f"field {self.path!r}: {item.name} must be a list, got {value!r}")
                value = list(value)
            options[item.name] = value
        return options


FieldLike = str | Field | Mapping[str, Any]
Records = Sequence[Mapping[str, Any]] | Mapping[str, Any]


class Schema:
    """Turns records into named tensors, as declared by an ordered list of fields.

    Plain strings are paths with the schema's dtype, landing as columns of the tensor ``name``.
    Declaration errors raise :class:`~inferd.errors.ConfigError` when the schema is built.
    """

    __slots__ = ("_native", "delimiter", "dtype", "fields", "name")

    def __init__(
        self,
        fields: Sequence[FieldLike],
        *,
        delimiter: str = ".",
        dtype: str = "float32",
        name: str = "input",
        max_depth: int | None = None,
    ) -> None:
        if isinstance(fields, str | bytes):
            raise ConfigError("fields must be a list of paths, Fields or mappings, not a string")
        self.fields: tuple[Field, ...] = tuple(_as_field(field) for field in fields)
        self.delimiter = delimiter
        self.dtype = dtype
        self.name = name
        self._native = _native.Schema(
            [field.to_mapping() for field in self.fields],
            delimiter=delimiter,
            dtype=dtype,
            name=name,
            max_depth=max_depth,
        )

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> Schema:
        """A schema from a config table: ``fields`` plus optional ``delimiter``, ``dtype``, ``name``."""
        allowed = {"fields", "delimiter", "dtype", "name"}
        unknown = sorted(str(key) for key in table if key not in allowed)
        if unknown:
            raise ConfigError(
                f"unknown schema key(s) {', '.join(map(repr, unknown))}; "
                f"known keys are {', '.join(sorted(allowed))}"
            )
        if "fields" not in table:
            raise ConfigError("a schema needs fields")
        options = {key: value for key, value in table.items() if key != "fields"}
        return cls(table["fields"], **options)

    @classmethod
    def from_toml(cls, text: str) -> Schema:
        """A schema from TOML text holding the keys of :meth:`from_config` at its top level."""
        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"invalid TOML: {error}") from error
        return cls.from_config(table)

    @property
    def tensor_names(self) -> list[str]:
        """Names of the output tensors, in order (a lengths tensor follows its list's tensor)."""
        return self._native.tensor_names

    @property
    def columns(self) -> list[str]:
        """Output names of the fields, in declaration order."""
        return self._native.columns

    def parse_json(self, data: bytes | bytearray | memoryview | str) -> dict[str, npt.NDArray[Any]]:
        """Tensors from JSON: an array of objects, one object, or NDJSON (one object a line)."""
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, bytes):
            # The parser reads without the GIL: give it bytes, which nobody can change meanwhile.
            data = bytes(data)
        return self._native.parse_json(data)

    def parse_records(self, records: Records) -> dict[str, npt.NDArray[Any]]:
        """Tensors from Python records: a sequence of mappings, or one mapping."""
        if isinstance(records, str | bytes | bytearray):
            raise TypeError("parse_records takes mappings; use parse_json for JSON text")
        return self._native.parse_records(records)

    def __repr__(self) -> str:
        return (
            f"Schema({list(self.fields)!r}, delimiter={self.delimiter!r}, "
            f"dtype={self.dtype!r}, name={self.name!r})"
        )


def _as_field(field: FieldLike) -> Field:
    if isinstance(field, Field):
        return field
    if isinstance(field, str):
        return Field(field)
    if isinstance(field, Mapping):
        return Field.from_mapping(field)
    raise ConfigError(f"a field is a path, a Field or a mapping, got {field!r}")


def _meta(name: str, array: object, request: int) -> tuple[str, str, list[int]]:
    if not isinstance(array, np.ndarray):
        raise TensorError(
            f"request {request}, tensor {name!r}: expected a numpy array, got {type(array).__name__}",
            tensor=name,
            request=request,
        )
    return (name, _dtype_name(array.dtype), list(array.shape))


#: dtype -> its name (``str(dtype)`` costs microseconds, a batch asks for it once per request)
_DTYPE_NAMES: dict[np.dtype[Any], str] = {}


def _dtype_name(dtype: np.dtype[Any]) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = str(dtype)
        if len(_DTYPE_NAMES) < 256:  # structured dtypes are endless: keep the common ones
            _DTYPE_NAMES[dtype] = name
    return name


def concat_batches(arrays: Sequence[npt.NDArray[Any]]) -> tuple[npt.NDArray[Any], list[int]]:
    """Joins arrays along the first axis; returns the batch and each one's row offsets.

    ``offsets`` has ``len(arrays) + 1`` items: array ``i`` is ``batch[offsets[i]:offsets[i+1]]``.
    The arrays must agree on dtype and on their shape after the first axis.
    """
    if not arrays:
        raise TensorError("no arrays to concatenate", tensor=BATCH_TENSOR)
    offsets = _native.plan_concat(
        [[_meta(BATCH_TENSOR, array, index)] for index, array in enumerate(arrays)]
    )
    return np.concatenate(arrays, axis=0), offsets


def split_batch(batch: npt.NDArray[Any], offsets: Sequence[int]) -> list[npt.NDArray[Any]]:
    """Splits a batch at ``offsets`` (as returned by :func:`concat_batches`) into views: no copy."""
    rows = batch.shape[0] if batch.ndim else 0
    ranges = _native.split_ranges(list(offsets), rows, BATCH_TENSOR)
    return [batch[start:stop] for start, stop in ranges]


def concat_tensors(
    requests: Sequence[Mapping[str, npt.NDArray[Any]]],
) -> tuple[dict[str, npt.NDArray[Any]], list[int]]:
    """Joins requests' named tensors along the first axis; returns the batch and row offsets.

    Every request must carry the same names, each with the same dtype and shape after the first
    axis, and all tensors of one request the same number of rows; otherwise
    :class:`~inferd.errors.TensorError` names the request and tensor.
    """
    if not requests:
        raise TensorError("no requests to concatenate", tensor=BATCH_TENSOR)
    offsets = _native.plan_concat(
        [
            [_meta(name, array, index) for name, array in request.items()]
            for index, request in enumerate(requests)
        ]
    )
    batch = {
        name: np.concatenate([request[name] for request in requests], axis=0)
        for name in requests[0]
    }
    return batch, offsets


def split_tensors(
    batch: Mapping[str, npt.NDArray[Any]], offsets: Sequence[int]
) -> list[dict[str, npt.NDArray[Any]]]:
    """Splits named batch tensors at ``offsets`` into per-request dicts of views: no copy."""
    offsets = list(offsets)
    parts: list[dict[str, npt.NDArray[Any]]] = [{} for _ in range(max(len(offsets) - 1, 0))]
    for name, tensor in batch.items():
        rows = tensor.shape[0] if tensor.ndim else 0
        for part, (start, stop) in zip(parts, _native.split_ranges(offsets, rows, name), strict=True):
            part[name] = tensor[start:stop]
    return parts

