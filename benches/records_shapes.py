"""The record shapes of benches/records.py: each one's records, JSON bytes, schema, and the
plain-Python extraction (a list comprehension per tensor) that every contender must equal.

Each shape is built from a seed, so that a run is repeatable; `SHAPES` lists them in report
order. A shape's `flat` names its tensors' columns as flattened keys (`a.b.0`), which is how
packflow's records mode reads it; None where packflow cannot express the shape (vocabularies,
ragged lists).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferd.schema import Schema

Record = dict[str, Any]
Tensors = dict[str, np.ndarray]


@dataclass
class Shape:
    name: str
    description: str
    records: list[Record]
    data: bytes
    schema: Schema
    #: The reference: the tensors from records as json.loads gives them.
    extract: Callable[[list[Record]], Tensors]
    #: tensor name -> (dtype, flattened column keys), for packflow; None: it cannot express it.
    flat: dict[str, tuple[str, list[str]]] | None
    ndjson: bool = False
    #: One record per request: each case is timed over `calls` single-record calls.
    one_record: bool = False


def columns_of(paths: list[str]) -> Callable[[Record], list[Any]]:
    """A row function reading dotted paths (integer segments index lists) from a record."""
    split = [[int(part) if part.isdigit() else part for part in path.split(".")] for path in paths]

    def row(record: Record) -> list[Any]:
        out = []
        for parts in split:
            value: Any = record
            for part in parts:
                value = value[part]
            out.append(value)
        return out

    return row


def plain_extract(paths: list[str], dtype: str = "float32", name: str = "input") -> Callable[[list[Record]], Tensors]:
    row = columns_of(paths)
    return lambda records: {name: np.asarray([row(record) for record in records], dtype=dtype)}


def number(rng: random.Random) -> float:
    return round(rng.uniform(-1000.0, 1000.0), 6)


TOP = [f"f{index}" for index in range(16)]
NESTED = [f"n{index}" for index in range(8)]
BASE_PATHS = [*TOP, *(f"nested.{key}" for key in NESTED), *(f"scores.{index}" for index in range(8))]


def base_records(count: int, rng: random.Random) -> list[Record]:
    """16 top-level numbers (4 integers), 8 nested, a list of 8 floats: the first bench's."""
    records = []
    for _ in range(count):
        record: Record = {key: rng.randint(-100_000, 100_000) if index < 4 else number(rng) for index, key in enumerate(TOP)}
        record["nested"] = {key: number(rng) for key in NESTED}
        record["scores"] = [rng.random() for _ in range(8)]
        records.append(record)
    return records


def base_schema() -> Schema:
    return Schema([*TOP, *(f"nested.{key}" for key in NESTED), {"path": "scores", "shape": [8]}])


def shuffled(record: Record, rng: random.Random) -> Record:
    """The record with its keys (and its nested objects' keys) in a random order."""
    items = [(key, shuffled(value, rng) if isinstance(value, dict) else value) for key, value in record.items()]
    rng.shuffle(items)
    return dict(items)


def base_shape(name: str, description: str, records: list[Record], data: bytes, **options: Any) -> Shape:
    return Shape(name, description, records, data, base_schema(), plain_extract(BASE_PATHS), {"input": ("float32", BASE_PATHS)}, **options)


def flat_shape(count: int, fields: int, rng: random.Random) -> Shape:
    keys = [f"f{index}" if fields <= 32 else f"feature_{index:03d}" for index in range(fields)]
    records = [{key: number(rng) for key in keys} for _ in range(count)]
    return Shape(
        f"fields-{fields}",
        f"{fields} flat float fields" + (" (11-byte keys)" if fields > 32 else ""),
        records,
        json.dumps(records).encode(),
        Schema(keys),
        plain_extract(keys),
        {"input": ("float32", keys)},
    )


def unused_shape(count: int, rng: random.Random) -> Shape:
    records = base_records(count, rng)
    for record in records:
        record["comment"] = "".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(300))
        record["session"] = {"id": f"{rng.getrandbits(128):032x}", "agent": {"name": "Mozilla/5.0 " * 8, "flags": [1, 2, 3]}}
        record["history"] = [{"t": rng.random(), "event": "click"} for _ in range(6)]
        record["tags"] = ["alpha", "beta", "gamma", "delta"]
    return Shape(
        "unused",
        "base + unused 300-char string, nested objects and arrays",
        records,
        json.dumps(records).encode(),
        base_schema(),
        plain_extract(BASE_PATHS),
        None,  # packflow's flatten_lists expands the unused lists of objects too
    )


def numbers_shape(count: int, rng: random.Random) -> Shape:
    floats = [f"x{index}" for index in range(16)]
    ints = [f"i{index}" for index in range(16)]
    records = [
        {**{key: rng.random() * 10 ** rng.randint(-3, 6) for key in floats}, **{key: rng.randint(-(2**40), 2**40) for key in ints}}
        for _ in range(count)
    ]
    float_row, int_row = columns_of(floats), columns_of(ints)

    def extract(items: list[Record]) -> Tensors:
        return {
            "input": np.asarray([float_row(record) for record in items], dtype="float64"),
            "ints": np.asarray([int_row(record) for record in items], dtype="int64"),
        }

    return Shape(
        "numbers",
        "16 Python 17-digit floats (float64) + 16 integers (int64)",
        records,
        json.dumps(records).encode(),
        Schema([*floats, *({"path": key, "dtype": "int64", "tensor": "ints"} for key in ints)], dtype="float64"),
        extract,
        {"input": ("float64", floats), "ints": ("int64", ints)},
    )


def deep_shape(count: int, rng: random.Random) -> Shape:
    paths = [f"request.user.profile.stats.x{index}" for index in range(16)]
    paths += [f"request.context.device.sensors.imu.y{index}" for index in range(8)]
    records = []
    for _ in range(count):
        record: Record = {}
        for path in paths:
            node = record
            *parents, leaf = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = number(rng)
        record["request"]["id"] = rng.getrandbits(32)
        records.append(record)
    return Shape("deep", "24 fields 5-6 levels deep", records, json.dumps(records).encode(), Schema(paths), plain_extract(paths), {"input": ("float32", paths)})


COUNTRIES = [f"C{index:02d}" for index in range(50)]
PLANS = ["free", "basic", "pro", "team"]
DEVICES = ["ios", "android", "web", "tv", "watch", "car", "desktop", "other"]
LANGS = ["en", "fr", "de", "es", "it", "pt", "nl", "sv", "pl", "ru", "ja", "zh", "ko", "ar", "hi", "tr", "cs", "da", "fi", "no"]
VOCABS = {"country": COUNTRIES, "plan": PLANS, "device": DEVICES, "lang": LANGS}


def categorical_shape(count: int, rng: random.Random) -> Shape:
    numeric = [f"f{index}" for index in range(12)]
    records = [{**{key: number(rng) for key in numeric}, **{key: rng.choice(vocab) for key, vocab in VOCABS.items()}} for _ in range(count)]
    indices = {key: {word: index for index, word in enumerate(vocab)} for key, vocab in VOCABS.items()}
    row = columns_of(numeric)

    def extract(items: list[Record]) -> Tensors:
        return {
            "input": np.asarray([row(record) for record in items], dtype="float32"),
            "cats": np.asarray([[indices[key][record[key]] for key in VOCABS] for record in items], dtype="int64"),
        }

    fields: list[Any] = [*numeric]
    fields += [{"path": key, "vocabulary": vocab, "dtype": "int64", "tensor": "cats"} for key, vocab in VOCABS.items()]
    return Shape("categorical", "12 floats + 4 categorical strings (vocabularies of 4-50)", records, json.dumps(records).encode(), Schema(fields), extract, None)


def ragged_shape(count: int, rng: random.Random) -> Shape:
    numeric = [f"f{index}" for index in range(8)]
    records = [{**{key: number(rng) for key in numeric}, "clicks": [rng.randint(0, 10_000) for _ in range(rng.randint(0, 16))]} for _ in range(count)]
    row = columns_of(numeric)

    def extract(items: list[Record]) -> Tensors:
        clicks = np.zeros((len(items), 16), dtype="int64")
        for index, record in enumerate(items):
            clicks[index, : len(record["clicks"])] = record["clicks"]
        return {
            "input": np.asarray([row(record) for record in items], dtype="float32"),
            "clicks": clicks,
            "clicks_lengths": np.asarray([len(record["clicks"]) for record in items], dtype="int64"),
        }

    fields: list[Any] = [*numeric, {"path": "clicks", "max_length": 16, "pad": 0, "dtype": "int64", "tensor": "clicks"}]
    return Shape("ragged", "8 floats + a ragged int list (0-16, padded)", records, json.dumps(records).encode(), Schema(fields), extract, None)


def make_shapes(count: int, seed: int = 0, only: list[str] | None = None) -> list[Shape]:
    rng = random.Random(seed)
    base = base_records(count, rng)
    builders: dict[str, Callable[[], Shape]] = {
        "fixed-order": lambda: base_shape("fixed-order", "32 columns (16 top, 8 nested, list of 8), keys in one order", base, json.dumps(base).encode()),
        "shuffled": lambda: (
            lambda records: base_shape("shuffled", "the same, keys shuffled in every record", records, json.dumps(records).encode())
        )([shuffled(record, rng) for record in base]),
        "fields-8": lambda: flat_shape(count, 8, rng),
        "fields-32": lambda: flat_shape(count, 32, rng),
        "fields-128": lambda: flat_shape(max(count // 4, 1), 128, rng),
        "pretty": lambda: base_shape("pretty", "fixed-order, pretty-printed (indent=2)", base, json.dumps(base, indent=2).encode()),
        "unused": lambda: unused_shape(count, rng),
        "numbers": lambda: numbers_shape(count, rng),
        "deep": lambda: deep_shape(count, rng),
        "categorical": lambda: categorical_shape(count, rng),
        "ragged": lambda: ragged_shape(count, rng),
        "ndjson": lambda: base_shape("ndjson", "fixed-order as NDJSON", base, "".join(json.dumps(record) + "\n" for record in base).encode(), ndjson=True),
        "one-record": lambda: base_shape("one-record", "one fixed-order record per request", base[:1], json.dumps(base[0]).encode(), one_record=True),
    }
    return [build() for name, build in builders.items() if only is None or name in only]


SHAPE_NAMES = [
    "fixed-order", "shuffled", "fields-8", "fields-32", "fields-128", "pretty", "unused",
    "numbers", "deep", "categorical", "ragged", "ndjson", "one-record",
]  # fmt: skip
