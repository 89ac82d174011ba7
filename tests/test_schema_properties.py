"""Properties: the native records core agrees with a small pure-Python reference.

Random schemas over random nested records (unicode keys, keys holding the delimiter, nulls,
integers beyond 2**53 and 2**64, 1e308, -0.0, deep nesting, empty lists, duplicate keys in the
JSON text). For each, ``parse_json(bytes)``, ``parse_records(json.loads(bytes))`` and the
reference below must give byte-identical tensors, or all fail on the same record and field.
Duplicate keys follow ``json.loads``: the last occurrence wins.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from inferd.errors import ConfigError, RecordError
from inferd.schema import Field, Schema

# ---------------------------------------------------------------------------------------------
# The reference: the documented semantics, written as plainly as possible.

NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64, "bool": np.bool_}
INTEGER_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


class Invalid(Exception):
    """The value does not fit the field."""


class Missing(Exception):
    """Absent or null."""


def as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid
    return float(value)


def convert_number(dtype: str, value: Any) -> Any:
    if dtype == "float64":
        return as_float(value)
    if dtype == "float32":
        # Packing to a C float rounds once. A finite value that rounds to infinity is beyond
        # float32: refused. (struct's native "f" gives inf for it rather than raising.)
        wide = as_float(value)
        narrow = struct.unpack("f", struct.pack("f", wide))[0]
        if math.isinf(narrow) and not math.isinf(wide):
            raise Invalid
        return narrow
    if dtype == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return value == 1
        raise Invalid
    low, high = INTEGER_RANGES[dtype]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid
    return value


def convert(field: Field, value: Any) -> Any:
    dtype = field.dtype or "float32"
    if field.vocabulary is None:
        return convert_number(dtype, value)
    if not isinstance(value, str):
        raise Invalid
    vocabulary = list(field.vocabulary)
    if value in vocabulary:
        return convert_number(dtype, vocabulary.index(value))
    if field.unknown == "index" or field.unknown_index is not None:
        return convert_number(dtype, -1 if field.unknown_index is None else field.unknown_index)
    raise Invalid


def fill(field: Field, dtype: str) -> Any:
    """The value a missing scalar (or null list element) becomes; Missing if it is an error."""
    if field.missing == "nan":
        return float("nan")
    if field.default is not None:
        return convert(field, field.default)
    if field.missing == "default":
        return convert_number(dtype, 0)
    raise Missing


def is_index(segment: str) -> bool:
    return segment == "0" or (segment.isascii() and segment.isdigit() and not segment.startswith("0"))


def lookup(record: Any, segments: list[str]) -> Any:
    current = record
    for segment in segments:
        if current is None:
            raise Missing
        if isinstance(current, dict):
            if segment not in current:
                raise Missing
            current = current[segment]
        elif isinstance(current, list) and is_index(segment):
            if int(segment) >= len(current):
                raise Missing
            current = current[int(segment)]
        else:
            raise Invalid
    if current is None:
        raise Missing
    return current


def read_list(field: Field, value: Any, dtype: str) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid
    items = []
    for item in value:
        if isinstance(item, list | dict):
            raise Invalid
        if item is None:
            try:
                items.append(fill(field, dtype))
            except Missing:
                raise Invalid from None
        else:
            items.append(convert(field, item))
    return items


@dataclass
class Column:
    field: Field
    segments: list[str]
    tensor: str
    kind: str  # "scalar" | "fixed" | "variable"


def width_of(column: Column) -> int:
    """Columns a scalar or fixed-length list field fills in its tensor."""
    return column.field.shape[0] if column.kind == "fixed" and column.field.shape else 1


class ReferenceError(Exception):
    def __init__(self, record: int, path: str | None) -> None:
        super().__init__(record, path)
        self.record = record
        self.path = path


def reference(columns: list[Column], default_dtype: str, records: list[Any]) -> dict[str, np.ndarray]:
    tensors: dict[str, list[list[Any]]] = {}
    lengths: dict[str, list[int]] = {}
    for column in columns:
        tensors.setdefault(column.tensor, [])
    rows_by_tensor: dict[str, list[list[Any]]] = {name: [] for name in tensors}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ReferenceError(index, None)
        row: dict[str, list[Any]] = {name: [] for name in tensors}
        for column in columns:
            field = column.field
            dtype = field.dtype or ("int64" if field.vocabulary is not None else default_dtype)
            try:
                try:
                    value = lookup(record, column.segments)
                except Missing:
                    if column.kind == "variable":
                        if field.missing != "default":
                            raise
                        row[column.tensor] = []
                        continue
                    filled = fill(field, dtype)
                    row[column.tensor].extend([filled] * width_of(column))
                    continue
                if column.kind == "scalar":
                    if isinstance(value, list | dict):
                        raise Invalid
                    row[column.tensor].append(convert(field, value))
                else:
                    items = read_list(field, value, dtype)
                    if column.kind == "fixed" and len(items) != width_of(column):
                        raise Invalid
                    if column.kind == "variable" and field.max_length is not None and len(items) > field.max_length:
                        raise Invalid
                    row[column.tensor].extend(items)
            except (Invalid, Missing):
                raise ReferenceError(index, field.path) from None
        for name, values in row.items():
            rows_by_tensor[name].append(values)
    result: dict[str, np.ndarray] = {}
    for column in columns:
        name = column.tensor
        if name in result:
            continue
        dtype = NUMPY_DTYPES[column.field.dtype or ("int64" if column.field.vocabulary is not None else default_dtype)]
        rows = rows_by_tensor[name]
        if column.kind == "variable":
            width = column.field.max_length or max((len(row) for row in rows), default=0)
            pad = 0 if column.field.pad is None else column.field.pad
            lengths[name] = [len(row) for row in rows]
            rows = [row + [pad] * (width - len(row)) for row in rows]
            result[name] = np.asarray(rows, dtype=dtype).reshape(len(rows), width)
            result[f"{column.field.name}_lengths"] = np.asarray(lengths[name], dtype=np.int64)
        else:
            width = sum(width_of(other) for other in columns if other.tensor == name)
            result[name] = np.asarray(rows, dtype=dtype).reshape(len(rows), width)
    return result


# ---------------------------------------------------------------------------------------------
# Strategies

KEYS = ["a", "b", "é", "ключ", "k.e", "0", "1", "x\\y", "🙂"]
VOCABULARY = ["red", "green", "blue"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**53 + 1, -(2**53) - 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64 + 1, 2**31, -(2**31) - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, -0.0, 0.0, 3.4028235e38, 1e-320, 0.1]),
    st.sampled_from(VOCABULARY + ["mauve", ""]),
    st.text(max_size=5),
)

# An object is a list of (key, value) pairs: the JSON text keeps duplicates, json.loads keeps the last.
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(st.tuples(st.sampled_from(KEYS), children), max_size=5).map(lambda pairs: ("object", pairs)),
    ),
    max_leaves=25,
)
records = st.lists(st.tuples(st.sampled_from(KEYS), values), max_size=6).map(lambda pairs: ("object", pairs))


def to_json(value: Any, ensure_ascii: bool = True, compact: bool = False) -> str:
    """JSON text for a generated value, keeping every (possibly duplicate) key of an object;
    ``compact`` leaves out the spaces after commas and colons."""
    comma, colon = (",", ":") if compact else (", ", ": ")
    if isinstance(value, tuple) and value[0] == "object":
        members = (
            f"{json.dumps(key, ensure_ascii=ensure_ascii)}{colon}{to_json(item, ensure_ascii, compact)}" for key, item in value[1]
        )
        return "{" + comma.join(members) + "}"
    if isinstance(value, list):
        return "[" + comma.join(to_json(item, ensure_ascii, compact) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ensure_ascii)


def escape(segment: str) -> str:
    return segment.replace("\\", "\\\\").replace(".", "\\.")


@st.composite
def fields(draw: st.DrawFn, position: int, default_dtype: str) -> Column:
    segments = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3))
    path = ".".join(escape(segment) for segment in segments)
    name = f"c{position}"
    kind = draw(st.sampled_from(["scalar", "scalar", "fixed", "variable", "category"]))
    options: dict[str, Any] = {"path": path, "name": name}
    if kind == "category":
        options.update(vocabulary=VOCABULARY, tensor=name)
        if draw(st.booleans()):
            options["unknown"] = "index"
        if draw(st.booleans()):
            options["default"] = draw(st.sampled_from(VOCABULARY))
        kind = "scalar"
    else:
        dtype = draw(st.sampled_from([default_dtype, "float32", "float64", "int32", "int64", "bool"]))
        options["dtype"] = dtype
        if dtype != default_dtype:
            options["tensor"] = name
        if kind == "fixed":
            options["shape"] = [draw(st.integers(1, 3))]
        elif kind == "variable":
            if draw(st.booleans()):
                options["shape"] = [-1]
            else:
                options["max_length"] = draw(st.integers(1, 3))
            options["tensor"] = name
            if draw(st.booleans()):
                options["missing"] = "default"
            if draw(st.booleans()):
                options["pad"] = {"bool": True}.get(dtype, 7)
        else:
            policy = draw(st.sampled_from(["error", "default", "nan"] if dtype.startswith("float") else ["error", "default"]))
            if policy == "nan":
                options["missing"] = "nan"
            elif policy == "default":
                options["default"] = {"bool": True, "int32": -5, "int64": 2**40}.get(dtype, 0.25)
    field = Field.from_mapping(options)
    return Column(field, segments, options.get("tensor", "input"), kind)


@st.composite
def schemas(draw: st.DrawFn) -> tuple[Schema, list[Column], str]:
    default_dtype = draw(st.sampled_from(["float32", "float64"]))
    count = draw(st.integers(1, 4))
    columns = [draw(fields(position, default_dtype)) for position in range(count)]
    try:
        schema = Schema([column.field for column in columns], dtype=default_dtype)
    except ConfigError:
        reject()  # overlapping paths: refused by design, covered in test_schema.py
    return schema, columns, default_dtype


# ---------------------------------------------------------------------------------------------
# Properties

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except RecordError as error:
        return "error", (error.record, error.path)
    except ReferenceError as error:
        return "error", (error.record, error.path)


def same_tensors(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> bool:
    if list(left) != list(right) and set(left) != set(right):
        return False
    return all(
        left[name].dtype == right[name].dtype
        and left[name].shape == right[name].shape
        and left[name].tobytes() == right[name].tobytes()
        for name in left
    )


@FAST
@given(schemas(), st.lists(records, max_size=4), st.booleans())
def test_native_matches_the_reference(
    declared: tuple[Schema, list[Column], str], batch: list[Any], ensure_ascii: bool
) -> None:
    schema, columns, default_dtype = declared
    data = ("[" + ", ".join(to_json(record, ensure_ascii) for record in batch) + "]").encode()
    loaded = json.loads(data)

    expected = outcome(lambda: reference(columns, default_dtype, loaded))
    event(f"reference: {expected[0]}")
    from_json = outcome(lambda: schema.parse_json(data))
    from_dicts = outcome(lambda: schema.parse_records(loaded))

    assert from_json[0] == from_dicts[0] == expected[0], (expected, from_json, from_dicts)
    if expected[0] == "error":
        assert from_json[1] == from_dicts[1] == expected[1]
    else:
        assert list(from_json[1]) == schema.tensor_names
        assert same_tensors(from_json[1], expected[1]), (from_json[1], expected[1])
        assert same_tensors(from_dicts[1], expected[1]), (from_dicts[1], expected[1])


def variant(template: Any, change: int, value: Any) -> tuple[Any, bool]:
    """The template record changed in one way: 0 the same, 1 one value replaced, 2 members in
    reverse order, 3 the first member dropped, 4 written compact. Returns (record, compact)."""
    pairs = list(template[1])
    if change == 1 and pairs:
        pairs[len(pairs) // 2] = (pairs[len(pairs) // 2][0], value)
    elif change == 2:
        pairs.reverse()
    elif change == 3:
        pairs = pairs[1:]
    return ("object", pairs), change == 4


@FAST
@given(schemas(), records, st.lists(st.tuples(st.integers(0, 4), values), min_size=1, max_size=6), st.booleans())
def test_records_written_alike_match_the_reference(
    declared: tuple[Schema, list[Column], str], template: Any, changes: list[tuple[int, Any]], ensure_ascii: bool
) -> None:
    """Batches of records written like one template. The native reader learns, per object, the
    bytes that lead from one member's value to the next one's (comma, key, colon) and matches
    them in one step in the next record: these batches take that path, and leave it by one
    change at a time."""
    schema, columns, default_dtype = declared
    written = [to_json(template, ensure_ascii)]
    for change, value in changes:
        record, compact = variant(template, change, value)
        written.append(to_json(record, ensure_ascii, compact))
    data = ("[" + ", ".join(written) + "]").encode()
    loaded = json.loads(data)
    expected = outcome(lambda: reference(columns, default_dtype, loaded))
    from_json = outcome(lambda: schema.parse_json(data))
    assert from_json[0] == expected[0], (expected, from_json)
    if expected[0] == "error":
        assert from_json[1] == expected[1]
    else:
        assert same_tensors(from_json[1], expected[1]), (from_json[1], expected[1])


@settings(max_examples=60, deadline=None)
@given(st.lists(records, min_size=1, max_size=5))
def test_ndjson_array_and_single_objects_agree(batch: list[Any]) -> None:
    schema = Schema([Field("a", missing="nan"), Field("b.0", missing="nan")])
    array = outcome(lambda: schema.parse_json(("[" + ",".join(map(to_json, batch)) + "]").encode()))
    ndjson = outcome(lambda: schema.parse_json("\n".join(map(to_json, batch)).encode()))
    assert array[0] == ndjson[0]
    if array[0] == "ok":
        assert same_tensors(array[1], ndjson[1])
        for index, record in enumerate(batch):
            single = outcome(lambda record=record: schema.parse_json(to_json(record).encode()))
            assert single[0] == "ok"
            assert same_tensors({k: v[index : index + 1] for k, v in array[1].items()}, single[1])
    else:
        assert array[1] == ndjson[1]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    schema = Schema([Field("a", missing="nan"), Field("b", shape=[-1], missing="default")])
    try:
        schema.parse_json(data)
    except RecordError:
        pass
