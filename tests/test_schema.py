"""inferd.schema through its public API: declarations, both inputs, errors, batching helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from inferd.errors import ConfigError, RecordError, TensorError
from inferd.schema import (
    Field,
    Schema,
    concat_batches,
    concat_tensors,
    split_batch,
    split_tensors,
)


def both(schema: Schema, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Parses records as JSON and as dicts; the two must agree exactly."""
    from_json = schema.parse_json(json.dumps(records).encode())
    from_dicts = schema.parse_records(records)
    assert list(from_json) == list(from_dicts) == schema.tensor_names
    for name in from_json:
        assert from_json[name].dtype == from_dicts[name].dtype
        assert from_json[name].tobytes() == from_dicts[name].tobytes()
        assert from_json[name].shape == from_dicts[name].shape
    return from_json


def record_error(schema: Schema, records: Any) -> RecordError:
    """The error of both inputs, which must agree on record, path and expectation."""
    with pytest.raises(RecordError) as from_json:
        schema.parse_json(json.dumps(records).encode())
    with pytest.raises(RecordError) as from_dicts:
        schema.parse_records(records)
    for attribute in ("record", "path", "expected"):
        assert getattr(from_json.value, attribute) == getattr(from_dicts.value, attribute)
    return from_json.value


class TestDeclaration:
    def test_plain_paths_are_columns_of_the_default_tensor(self) -> None:
        schema = Schema(["a", "b.c", Field("d", name="renamed")])
        assert schema.tensor_names == ["input"]
        assert schema.columns == ["a", "b.c", "renamed"]
        tensors = both(schema, [{"a": 1, "b": {"c": 2}, "d": 3}, {"a": 4, "b": {"c": 5.5}, "d": -6}])
        np.testing.assert_array_equal(tensors["input"], np.float32([[1, 2, 3], [4, 5.5, -6]]))

    def test_schema_name_and_dtype(self) -> None:
        schema = Schema(["x"], dtype="float64", name="features")
        tensors = both(schema, [{"x": 0.1}])
        assert tensors["features"].dtype == np.float64
        assert tensors["features"][0, 0] == 0.1

    def test_several_named_tensors(self) -> None:
        schema = Schema(
            [
                "a",
                {"path": "ids", "dtype": "int64", "shape": [2], "tensor": "ids"},
                {"path": "color", "vocabulary": ["red", "green"], "tensor": "categories"},
                {"path": "size", "vocabulary": ["s", "m", "l"], "tensor": "categories"},
            ]
        )
        assert schema.tensor_names == ["input", "ids", "categories"]
        tensors = both(schema, [{"a": 1, "ids": [7, 8], "color": "green", "size": "l"}])
        assert tensors["ids"].dtype == np.int64
        np.testing.assert_array_equal(tensors["ids"], [[7, 8]])
        np.testing.assert_array_equal(tensors["categories"], [[1, 2]])

    def test_toml_and_python_declarations_agree(self) -> None:
        from_toml = Schema.from_toml(
            """
            name = "x"
            fields = [
                "a",
                { path = "b", default = 0.5 },
                { path = "v", shape = [2], name = "vector" },
            ]
            """
        )
        from_python = Schema(["a", Field("b", default=0.5), Field("v", shape=[2], name="vector")], name="x")
        records = [{"a": 1, "v": [2, 3]}]
        assert from_toml.columns == from_python.columns == ["a", "b", "vector"]
        np.testing.assert_array_equal(from_toml.parse_records(records)["x"], from_python.parse_records(records)["x"])

    @pytest.mark.parametrize(
        ("field", "message"),
        [
            ({"path": "a", "colour": 1}, "unknown key"),
            ({"path": "a", "dtype": "int32", "missing": "nan"}, "float dtype"),
            ({"path": "a", "dtype": "float16"}, "unknown dtype"),
            ({"path": "a", "missing": "default"}, "needs default"),
            ({"path": "a", "missing": "sometimes"}, "missing must be"),
            ({"path": "a", "default": "x"}, "default: expected float32"),
            ({"path": "a", "shape": [2, 3]}, "not supported"),
            ({"path": "a", "max_length": 0}, "max_length must be positive"),
            ({"path": "a", "vocabulary": ["x", "x"], "tensor": "t"}, "twice"),
            ({"path": "a", "unknown": "index"}, "need a vocabulary"),
            ({"path": "a", "pad": 1}, "list fields only"),
            ({"path": "a..b"}, "empty segment"),
            ({"path": "a\\b"}, "backslash"),
            ({"name": "x"}, "needs a path"),
        ],
    )
    def test_invalid_fields_are_refused(self, field: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            Schema([field])

    def test_overlapping_paths_and_names_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="overlap"):
            Schema(["a", "a.b"])
        with pytest.raises(ConfigError, match="already used"):
            Schema(["a", Field("b", name="a")])
        with pytest.raises(ConfigError, match="a variable-length list needs a tensor of its own"):
            Schema(["a", Field("v", shape=[-1], tensor="input")])
        with pytest.raises(ConfigError, match="its own"):
            Schema(["a", Field("color", vocabulary=["red"])])
        with pytest.raises(ConfigError, match="unknown schema key"):
            Schema.from_config({"fields": ["a"], "delimeter": "/"})

    def test_config_errors_are_value_errors(self) -> None:
        with pytest.raises(ValueError):
            Schema([{"path": "a", "dtype": 3}])


class TestPaths:
    def test_integer_segments_index_lists_or_read_keys(self) -> None:
        schema = Schema(["scores.0", "scores.2", "m.0"])
        tensors = both(schema, [{"scores": [1, 2, 3], "m": {"0": 9}}])
        np.testing.assert_array_equal(tensors["input"], [[1, 3, 9]])

    def test_a_short_list_leaves_the_index_missing(self) -> None:
        schema = Schema([Field("scores.3", missing="nan")])
        assert np.isnan(both(schema, [{"scores": [1]}])["input"][0, 0])

    def test_escaped_delimiters_and_custom_delimiters(self) -> None:
        schema = Schema(["a\\.b", "a.b", "c\\\\"])
        tensors = both(schema, [{"a.b": 1, "a": {"b": 2}, "c\\": 3}])
        np.testing.assert_array_equal(tensors["input"], [[1, 2, 3]])
        slashed = Schema(["a/b.c"], delimiter="/")
        np.testing.assert_array_equal(both(slashed, [{"a": {"b.c": 4}}])["input"], [[4]])

    def test_unicode_keys_escaped_or_not(self) -> None:
        schema = Schema(["ключ.é"])
        for ensure_ascii in (True, False):
            data = json.dumps({"ключ": {"é": 5}}, ensure_ascii=ensure_ascii).encode()
            np.testing.assert_array_equal(schema.parse_json(data)["input"], [[5]])

    def test_a_non_object_on_the_way_is_an_error_and_null_is_missing(self) -> None:
        schema = Schema(["a.b"])
        error = record_error(schema, [{"a": 5}])
        assert (error.record, error.path) == (0, "a.b")
        assert record_error(schema, [{"a": None}]).expected == "float32"


class TestInputs:
    def test_array_object_and_ndjson_agree(self) -> None:
        schema = Schema(["a"])
        array = schema.parse_json(b'[{"a": 1}, {"a": 2}]')["input"]
        ndjson = schema.parse_json(b'{"a": 1}\n{"a": 2}\n')["input"]
        np.testing.assert_array_equal(array, ndjson)
        np.testing.assert_array_equal(schema.parse_json(b'{"a": 1}')["input"], [[1]])
        np.testing.assert_array_equal(schema.parse_records({"a": 1})["input"], [[1]])

    def test_buffers_and_text_are_accepted(self) -> None:
        schema = Schema(["a"])
        for data in (bytearray(b'{"a": 1}'), memoryview(b'{"a": 1}'), '{"a": 1}'):
            np.testing.assert_array_equal(schema.parse_json(data)["input"], [[1]])

    def test_empty_batches_keep_their_columns(self) -> None:
        schema = Schema(["a", Field("v", shape=[-1])])
        tensors = both(schema, [])
        assert tensors["input"].shape == (0, 1)
        assert tensors["v"].shape == (0, 0)
        assert tensors["v_lengths"].shape == (0,)

    def test_records_may_be_tuples_generators_and_mappings(self) -> None:
        class Record(Mapping[str, Any]):
            def __init__(self, **values: Any) -> None:
                self.values = values

            def __getitem__(self, key: str) -> Any:
                return self.values[key]

            def __iter__(self) -> Iterator[str]:
                return iter(self.values)

            def __len__(self) -> int:
                return len(self.values)

        schema = Schema(["a.b"])
        records = (Record(a=Record(b=index)) for index in range(3))
        np.testing.assert_array_equal(schema.parse_records(records)["input"][:, 0], [0, 1, 2])
        np.testing.assert_array_equal(schema.parse_records(({"a": {"b": 1}},))["input"], [[1]])

    def test_duplicate_keys_last_wins_like_json_loads(self) -> None:
        schema = Schema(["a.x", "b"])
        data = b'{"a": {"x": "bad"}, "b": 1, "a": {"x": 2}, "b": 3}'
        np.testing.assert_array_equal(schema.parse_json(data)["input"], [[2, 3]])
        np.testing.assert_array_equal(schema.parse_records(json.loads(data))["input"], [[2, 3]])


class TestValues:
    def test_missing_policies(self) -> None:
        schema = Schema([Field("a", default=7), Field("b", missing="nan"), "c"])
        tensors = both(schema, [{"a": None, "c": 1}])
        assert tensors["input"][0, 0] == 7 and np.isnan(tensors["input"][0, 1])
        error = record_error(schema, [{"c": 1}, {"a": 1}])
        assert (error.record, error.path) == (1, "c")
        assert str(error) == 'record 1, field "c": expected float32, got nothing (missing or null)'

    def test_error_messages_name_record_field_expectation_and_value(self) -> None:
        schema = Schema(["a.b"])
        error = record_error(schema, [{"a": {"b": 1}}] * 3 + [{"a": {"b": "abc"}}])
        assert str(error) == 'record 3, field "a.b": expected float32, got "abc"'
        assert error.details == {"record": 3, "path": "a.b", "expected": "float32", "value": '"abc"'}
        assert error.code == "INVALID_ARGUMENT"

    def test_offending_values_are_truncated(self) -> None:
        error = record_error(Schema(["a"]), [{"a": "x" * 500}])
        assert error.value is not None and len(error.value) < 50

    def test_a_record_that_is_not_an_object(self) -> None:
        error = record_error(Schema(["a"]), [{"a": 1}, [1, 2]])
        assert (error.record, error.path) == (1, None)
        assert str(error) == "record 1: expected an object, got a list"

    def test_malformed_json_names_the_byte_offset(self) -> None:
        schema = Schema(["a"])
        for data, offset in [(b'[{"a": 1}, {"a": 2,}]', 19), (b'[{"a": 1} {"a": 2}]', 10), (b"", 0)]:
            with pytest.raises(RecordError) as caught:
                schema.parse_json(data)
            assert caught.value.offset is not None and abs(caught.value.offset - offset) <= 3, caught.value
            assert "malformed JSON at byte" in str(caught.value)

    def test_a_number_beyond_every_type_is_the_fields_error(self) -> None:
        """Valid JSON (json.loads reads 1e400 as inf): refused by the field that reads it,
        naming the record, never an infinity in the tensor."""
        schema = Schema(["a"])
        with pytest.raises(RecordError) as caught:
            schema.parse_json(b'[{"a": 1}, {"a": 1e400}]')
        assert str(caught.value) == 'record 1, field "a": expected float32, got 1e400'
        with pytest.raises(RecordError) as from_dicts:
            schema.parse_records([{"a": 1}, {"a": 10**400}])
        assert (from_dicts.value.record, from_dicts.value.path) == (1, "a")
        np.testing.assert_array_equal(schema.parse_json(b'{"a": 1, "b": -1e999}')["input"], [[1]])

    def test_malformed_json_is_reported_before_a_bad_record(self) -> None:
        with pytest.raises(RecordError) as caught:
            Schema(["a"]).parse_json(b'[{"a": "x"}, {"a": ]')
        assert caught.value.offset is not None

    def test_deep_nesting_outside_the_paths_is_skipped(self) -> None:
        data = b'{"a": 1, "b": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        np.testing.assert_array_equal(Schema(["a"]).parse_json(data)["input"], [[1]])
        deep_path = ".".join(f"k{level}" for level in range(40))
        record: dict[str, Any] = {"k39": 2.5}
        for level in reversed(range(39)):
            record = {f"k{level}": record}
        np.testing.assert_array_equal(both(Schema([deep_path]), [record])["input"], [[2.5]])

    def test_number_conversion_rules(self) -> None:
        big = 2**53 + 1
        floats = both(Schema([Field("a", dtype="float64")]), [{"a": big}, {"a": -0.0}, {"a": 2**64 + 7}])
        assert floats["input"][0, 0] == float(big) and floats["input"][2, 0] == float(2**64 + 7)
        assert np.signbit(floats["input"][1, 0])
        assert record_error(Schema(["a"]), [{"a": 1e308}]).path == "a"
        assert both(Schema([Field("a", dtype="float64")]), [{"a": 1e308}])["input"][0, 0] == 1e308
        ints = Schema([Field("a", dtype="int32")])
        assert both(ints, [{"a": -(2**31)}])["input"][0, 0] == -(2**31)
        assert record_error(ints, [{"a": 2**31}]).expected == "int32"
        assert record_error(ints, [{"a": 1.0}]).expected == "int32"
        assert record_error(Schema([Field("a", dtype="int64")]), [{"a": 2**63}]).path == "a"
        assert both(Schema([Field("a", dtype="int64")]), [{"a": 2**63 - 1}])["input"][0, 0] == 2**63 - 1
        assert record_error(Schema(["a"]), [{"a": True}]).expected == "float32"

    def test_bool_takes_true_false_0_and_1(self) -> None:
        schema = Schema([Field("a", dtype="bool")])
        tensors = both(schema, [{"a": True}, {"a": 0}, {"a": 1}, {"a": False}])
        np.testing.assert_array_equal(tensors["input"][:, 0], [True, False, True, False])
        assert record_error(schema, [{"a": 2}]).expected == "bool"
        assert record_error(schema, [{"a": 1.0}]).expected == "bool"

    def test_vocabulary_and_unknown_values(self) -> None:
        strict = Schema([Field("c", vocabulary=["red", "green"], tensor="c")])
        np.testing.assert_array_equal(both(strict, [{"c": "green"}, {"c": "red"}])["c"][:, 0], [1, 0])
        assert record_error(strict, [{"c": "blue"}]).expected == "a value in the vocabulary"
        assert record_error(strict, [{"c": 1}]).expected == "string"
        lenient = Schema([Field("c", vocabulary=["red"], unknown="index", tensor="c")])
        assert both(lenient, [{"c": "blue"}])["c"][0, 0] == -1
        custom = Schema([Field("c", vocabulary=["red"], unknown_index=99, dtype="float32")])
        assert both(custom, [{"c": "blue"}])["input"][0, 0] == 99
        defaulted = Schema([Field("c", vocabulary=["red", "green"], default="green", tensor="c")])
        assert both(defaulted, [{}])["c"][0, 0] == 1

    def test_words_read_in_place_or_not_alike(self) -> None:
        # Words under 8 bytes written as they are are found from one 8-byte load; the empty
        # word, 8 bytes, escapes, non-ASCII and unknown words take the general path: the same.
        schema = Schema([Field("c", vocabulary=["", "abcdefg", "abcdefgh", "é", "pro"], unknown_index=9, tensor="c"), "a"])
        data = (
            b'[{"c": "", "a": 1}, {"c": "abcdefg", "a": 1}, {"c": "abcdefgh", "a": 1}, {"c": "\\u00e9", "a": 1},'
            b' {"c": "\xc3\xa9", "a": 1}, {"c": "pr\\u006f", "a": 1}, {"c": "zz", "a": 1},'
            b' {"c": "pro", "c": "abcdefg", "a": 1}, {"a": 2, "c": "pro"}]'
        )
        expected = [0, 1, 2, 3, 3, 4, 9, 1, 4]
        assert schema.parse_json(data)["c"][:, 0].tolist() == expected
        assert schema.parse_records(json.loads(data))["c"][:, 0].tolist() == expected


    def test_strings_in_dicts_read_in_place_or_not_alike(self) -> None:
        # An exact str is read in place; a str subclass, and a string that is not UTF-8 (a
        # lone surrogate), take the general path: the same words, the same errors.
        class Word(str):
            pass

        schema = Schema([Field("c", vocabulary=["red", "grün", ""], unknown_index=9, tensor="c"), "a"])
        records = [{"c": "red", "a": 1}, {"c": "gr\u00fcn", "a": 1}, {"c": Word("red"), "a": 1}, {"c": "", "a": 1}, {"c": "x" * 40, "a": 1}]
        assert schema.parse_records(records)["c"][:, 0].tolist() == [0, 1, 0, 2, 9]
        assert schema.parse_records(records)["c"].tolist() == schema.parse_json(json.dumps(records).encode())["c"].tolist()
        for value in ["\ud800", Word("\ud800")]:  # (JSON cannot carry it: its reader refuses the escape)
            with pytest.raises(RecordError) as refused:
                schema.parse_records([{"c": "red", "a": 1}, {"c": value, "a": 1}])
            assert str(refused.value) == 'record 1, field "c": expected string, got a string that is not valid UTF-8'
        error = record_error(schema, [{"c": "red", "a": "one"}])
        assert str(error) == 'record 0, field "a": expected float32, got "one"'


class TestLists:
    def test_fixed_lists_spread_over_columns(self) -> None:
        schema = Schema(["a", Field("v", shape=[3]), "b"])
        tensors = both(schema, [{"a": 1, "v": [2, 3, 4], "b": 5}])
        np.testing.assert_array_equal(tensors["input"], [[1, 2, 3, 4, 5]])
        error = record_error(schema, [{"a": 1, "v": [2, 3], "b": 5}])
        assert str(error) == 'record 0, field "v": expected list of 3 float32, got a list of 2'
        assert record_error(schema, [{"a": 1, "v": 2, "b": 5}]).path == "v"
        assert record_error(schema, [{"a": 1, "v": [1, [2], 3], "b": 5}]).value == "a list at index 1"

    def test_null_elements_follow_the_missing_policy(self) -> None:
        schema = Schema([Field("v", shape=[2], missing="nan")])
        tensors = both(schema, [{"v": [1, None]}, {}])
        assert tensors["input"][0, 0] == 1 and np.isnan(tensors["input"][0, 1])
        assert np.isnan(tensors["input"][1]).all()
        assert record_error(Schema([Field("v", shape=[2])]), [{"v": [1, None]}]).path == "v"

    def test_variable_lists_pad_to_the_longest_with_lengths(self) -> None:
        schema = Schema(["a", Field("tokens", dtype="int64", shape=[-1], pad=-1)])
        assert schema.tensor_names == ["input", "tokens", "tokens_lengths"]
        tensors = both(schema, [{"a": 0, "tokens": [5]}, {"a": 1, "tokens": [1, 2, 3]}, {"a": 2, "tokens": []}])
        np.testing.assert_array_equal(tensors["tokens"], [[5, -1, -1], [1, 2, 3], [-1, -1, -1]])
        np.testing.assert_array_equal(tensors["tokens_lengths"], [1, 3, 0])
        assert tensors["tokens_lengths"].dtype == np.int64

    def test_max_length_pads_to_a_fixed_width_and_refuses_longer(self) -> None:
        schema = Schema([Field("t", max_length=4, missing="default")])
        tensors = both(schema, [{"t": [1.5]}, {}])
        assert tensors["t"].shape == (2, 4)
        np.testing.assert_array_equal(tensors["t_lengths"], [1, 0])
        error = record_error(schema, [{"t": [1, 2, 3, 4, 5]}])
        assert str(error) == 'record 0, field "t": expected list of at most 4 float32, got a list of 5'


class TestBatching:
    def test_concat_and_split_round_trip_with_views(self) -> None:
        parts = [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros((0, 3), np.float32), np.ones((1, 3), np.float32)]
        batch, offsets = concat_batches(parts)
        assert offsets == [0, 2, 2, 3] and batch.shape == (3, 3)
        pieces = split_batch(batch, offsets)
        for piece, part in zip(pieces, parts, strict=True):
            np.testing.assert_array_equal(piece, part)
            assert piece.size == 0 or np.shares_memory(piece, batch)

    def test_concat_refuses_mismatched_arrays(self) -> None:
        with pytest.raises(TensorError, match="request 1") as caught:
            concat_batches([np.zeros((1, 3), np.float32), np.zeros((1, 4), np.float32)])
        assert caught.value.details["request"] == 1
        with pytest.raises(TensorError, match="dtype"):
            concat_batches([np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float64)])
        with pytest.raises(TensorError, match="scalar"):
            concat_batches([np.array(1.0, dtype=np.float32)])
        with pytest.raises(TensorError):
            concat_batches([])

    def test_split_refuses_bad_offsets(self) -> None:
        with pytest.raises(TensorError, match="offsets"):
            split_batch(np.zeros((3, 1)), [0, 2])
        with pytest.raises(TensorError, match="decrease"):
            split_batch(np.zeros((3, 1)), [0, 2, 1, 3])

    def test_named_tensors_round_trip(self) -> None:
        requests = [
            {"x": np.ones((2, 4), np.float32), "mask": np.ones(2, bool)},
            {"mask": np.zeros(1, bool), "x": np.zeros((1, 4), np.float32)},
        ]
        batch, offsets = concat_tensors(requests)
        assert offsets == [0, 2, 3] and batch["x"].shape == (3, 4)
        parts = split_tensors(batch, offsets)
        for part, request in zip(parts, requests, strict=True):
            assert part.keys() == request.keys()
            for name in request:
                np.testing.assert_array_equal(part[name], request[name])
                assert np.shares_memory(part[name], batch[name])

    def test_named_tensors_must_agree(self) -> None:
        good = {"x": np.ones((1, 4), np.float32)}
        with pytest.raises(TensorError, match="not present|missing") as caught:
            concat_tensors([good, {"y": np.ones((1, 4), np.float32)}])
        assert caught.value.tensor in {"x", "y"} and caught.value.details["request"] == 1
        with pytest.raises(TensorError, match="rows") as caught:
            concat_tensors([{"x": np.ones((2, 4), np.float32), "m": np.ones(3, bool)}])
        assert caught.value.details["request"] == 0
        with pytest.raises(TensorError, match="numpy array"):
            concat_tensors([{"x": [1, 2]}])  # type: ignore[dict-item]
