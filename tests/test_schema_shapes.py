"""Properties on the record shapes of issue 22: whatever the shape, the native core gives the
tensors of extracting the same fields from ``json.loads``.

Random schemas of 1-40 fields (float32, float64, int64, vocabularies, fixed and ragged lists)
at paths 1-6 levels deep, over keys short and long, unicode and needing escapes; records hold
every field plus unused long strings, nested objects and arrays, with their keys shuffled in
every record (or kept in one order); the JSON is compact, pretty-printed, NDJSON or one object.
``parse_json(bytes)``, ``parse_records(json.loads(bytes))`` and ``parse_records`` of the
original dicts must all equal the extraction, byte for byte.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferd.schema import Schema

PARENTS = ["a", "nested", "request", "ключ", "with space", 'q"uote', "back\\slash", "a_rather_long_parent_key"]
LEAVES = ["f", "x", "feature_", "значение_", "tab\t", "long_leaf_name_over_16_bytes_"]
KINDS = ["float32", "float32", "float64", "int64", "vocab", "fixed", "ragged"]
VOCAB = ["free", "pro", "team", "é", 'q"', "a_long_category_name", ""]


@dataclass
class Spec:
    path: list[str]
    kind: str
    size: int  # a fixed list's length, a ragged list's max_length

    @property
    def name(self) -> str:
        return "/".join(self.path)


def escape(segment: str) -> str:
    return segment.replace("\\", "\\\\").replace(".", "\\.")


@st.composite
def specs(draw: st.DrawFn) -> list[Spec]:
    count = draw(st.integers(1, 40))
    out = []
    for index in range(count):
        parents = draw(st.lists(st.sampled_from(PARENTS), max_size=5))
        leaf = f"{draw(st.sampled_from(LEAVES))}{index}"
        out.append(Spec([*parents, leaf], draw(st.sampled_from(KINDS)), draw(st.integers(1, 5))))
    # A path's parents never end in a digit, so no leaf is another field's parent.
    return out


def schema_of(fields: list[Spec]) -> Schema:
    config: list[Any] = []
    for index, spec in enumerate(fields):
        path = ".".join(escape(segment) for segment in spec.path)
        if spec.kind == "float32":
            config.append(path)
        elif spec.kind == "float64":
            config.append({"path": path, "dtype": "float64", "tensor": "f64"})
        elif spec.kind == "int64":
            config.append({"path": path, "dtype": "int64", "tensor": "ints"})
        elif spec.kind == "vocab":
            config.append({"path": path, "vocabulary": VOCAB, "dtype": "int64", "tensor": "cats"})
        elif spec.kind == "fixed":
            config.append({"path": path, "shape": [spec.size]})
        else:
            config.append({"path": path, "name": f"r{index}", "max_length": spec.size, "pad": 0, "dtype": "int64", "tensor": f"r{index}"})
    return Schema(config)


floats32 = st.floats(-1e30, 1e30, allow_nan=False) | st.integers(-(2**53), 2**53)
floats64 = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
ints64 = st.integers(-(2**63), 2**63 - 1)


def value_for(draw: st.DrawFn, spec: Spec) -> Any:
    if spec.kind == "float32":
        return draw(floats32)
    if spec.kind == "float64":
        return draw(floats64)
    if spec.kind == "int64":
        return draw(ints64)
    if spec.kind == "vocab":
        return draw(st.sampled_from(VOCAB))
    if spec.kind == "fixed":
        return draw(st.lists(floats32, min_size=spec.size, max_size=spec.size))
    return draw(st.lists(ints64, max_size=spec.size))


unused = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def record_for(draw: st.DrawFn, fields: list[Spec]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for spec in fields:
        node = record
        for segment in spec.path[:-1]:
            node = node.setdefault(segment, {})
        node[spec.path[-1]] = value_for(draw, spec)
    # Unused members, at the top and in nested objects: keys no field names.
    for _ in range(draw(st.integers(0, 3))):
        node = record
        for segment in draw(st.lists(st.sampled_from(PARENTS), max_size=2)):
            child = node.get(segment)
            if not isinstance(child, dict):
                break
            node = child
        node[f"unused_{draw(st.text(max_size=8))}"] = draw(unused)
    return record


def shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = [(key, shuffled(item, rng)) for key, item in value.items()]
        rng.shuffle(items)
        return dict(items)
    return value


def extract(fields: list[Spec], records: list[Any]) -> dict[str, np.ndarray]:
    """The reference: each field read from records as json.loads gives them."""

    def at(record: Any, spec: Spec) -> Any:
        for segment in spec.path:
            record = record[segment]
        return record

    tensors: dict[str, list[list[Any]]] = {}
    out: dict[str, np.ndarray] = {}
    dtypes = {"input": "float32", "f64": "float64", "ints": "int64", "cats": "int64"}
    groups = {"float32": "input", "fixed": "input", "float64": "f64", "int64": "ints", "vocab": "cats"}
    rows: dict[str, list[list[Any]]] = {name: [[] for _ in records] for name in dtypes}
    for index, spec in enumerate(fields):
        values = [at(record, spec) for record in records]
        if spec.kind == "ragged":
            padded = np.zeros((len(records), spec.size), dtype="int64")
            for row, items in enumerate(values):
                padded[row, : len(items)] = items
            out[f"r{index}"] = padded
            out[f"r{index}_lengths"] = np.asarray([len(items) for items in values], dtype="int64")
            continue
        group = groups[spec.kind]
        tensors.setdefault(group, [])
        for row, value in enumerate(values):
            if spec.kind == "vocab":
                rows[group][row].append(VOCAB.index(value))
            elif spec.kind == "fixed":
                # Through float64, as the core (and numpy from Python floats) rounds.
                rows[group][row].extend(float(item) for item in value)
            elif spec.kind in ("float32", "float64"):
                rows[group][row].append(float(value))
            else:
                rows[group][row].append(value)
    for group in tensors:
        out[group] = np.asarray(rows[group], dtype=dtypes[group]).reshape(len(records), -1)
    return out


def same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> bool:
    return set(got) == set(want) and all(
        got[name].dtype == want[name].dtype and got[name].shape == want[name].shape and got[name].tobytes() == want[name].tobytes()
        for name in want
    )


def encode(records: list[Any], layout: str, ensure_ascii: bool) -> bytes:
    if layout == "pretty":
        return json.dumps(records, indent=2, ensure_ascii=ensure_ascii).encode()
    if layout == "ndjson":
        return "".join(json.dumps(record, ensure_ascii=ensure_ascii) + "\n" for record in records).encode()
    if layout == "compact":
        return json.dumps(records, separators=(",", ":"), ensure_ascii=ensure_ascii).encode()
    return json.dumps(records, ensure_ascii=ensure_ascii).encode()


@st.composite
def shapes(draw: st.DrawFn) -> tuple[list[Spec], list[dict[str, Any]], bytes, bool]:
    fields = draw(specs())
    records = draw(st.lists(record_for(fields), min_size=1, max_size=6))
    if draw(st.booleans()):
        rng = random.Random(draw(st.integers(0, 2**32)))
        records = [shuffled(record, rng) for record in records]
    one = len(records) == 1 and draw(st.booleans())
    layout = draw(st.sampled_from(["spaced", "compact", "pretty", "ndjson"]))
    data = (
        json.dumps(records[0], ensure_ascii=draw(st.booleans())).encode()
        if one
        else encode(records, layout, draw(st.booleans()))
    )
    return fields, records, data, one


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(shapes())
def test_every_shape_matches_json_loads_extraction(shape: tuple[list[Spec], list[dict[str, Any]], bytes, bool]) -> None:
    fields, records, data, one = shape
    schema = schema_of(fields)
    loaded = json.loads(data) if not data.lstrip().startswith(b"{") or one else None
    if loaded is None:  # NDJSON
        loaded = [json.loads(line) for line in data.splitlines() if line.strip()]
    if one:
        loaded = [loaded]
    want = extract(fields, loaded)
    assert same(schema.parse_json(data), want)
    assert same(schema.parse_records(loaded), want)
    assert same(schema.parse_records(records[0] if one else records), want)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.integers(0, 2**32), st.sampled_from(["spaced", "pretty", "ndjson"]))
def test_many_fields_in_any_order(count: int, seed: int, layout: str) -> None:
    """Up to 200 keys at one node, each record in its own order, many records: every key is
    found whatever its place, in the JSON and the dicts paths."""
    rng = random.Random(seed)
    keys = [rng.choice(["f", "feature_", "k"]) + str(index) for index in range(count)]
    records = [shuffled({key: rng.uniform(-1e6, 1e6) for key in keys}, rng) for _ in range(50)]
    fields = [Spec([key], "float64", 1) for key in keys]
    schema = schema_of(fields)
    data = encode(records, layout, True)
    want = extract(fields, records)
    assert same(schema.parse_json(data), want)
    assert same(schema.parse_records(records), want)
    assert same(schema.parse_records(json.loads(data) if layout != "ndjson" else [json.loads(line) for line in data.splitlines()]), want)


def fresh(key: str) -> str:
    """An equal string that is a new object (not interned, not shared between records)."""
    return "".join(list(key))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([1, 3, 40]))
def test_dicts_with_fresh_key_objects_in_every_record(seed: int, count: int) -> None:
    """Key objects new in every record (dicts built from computed strings) outgrow the address
    table of each node; keys are then found by their contents, in any order, nested too."""
    rng = random.Random(seed)
    keys = [f"k{index}" for index in range(count)]
    records = []
    for _ in range(700):
        inner = {fresh(key): rng.uniform(-1, 1) for key in keys}
        records.append(shuffled({fresh("outer"): inner, **{fresh(key): rng.randint(-9, 9) for key in keys}, fresh("unused"): 1}, rng))
    fields = [Spec([key], "int64", 1) for key in keys] + [Spec(["outer", key], "float64", 1) for key in keys]
    schema = schema_of(fields)
    want = extract(fields, records)
    assert same(schema.parse_records(records), want)
    assert same(schema.parse_json(json.dumps(records).encode()), want)
