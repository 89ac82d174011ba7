//! The records core through its public entry points: JSON in, tensors or errors out.

use _native::records::{count_scalars, parse_json, Buffer, Column, ParseError, RecordError};
use _native::schema::{ConfigValue, FieldSpec, Schema, SchemaSpec};

fn schema(fields: Vec<FieldSpec>) -> Schema {
    Schema::compile(&SchemaSpec::new(fields)).unwrap()
}

fn floats(columns: &[Column], name: &str) -> (Vec<usize>, Vec<f32>) {
    let column = columns.iter().find(|column| column.name == name).unwrap();
    match &column.data {
        Buffer::Float32(values) => (column.shape.clone(), values.clone()),
        other => panic!("{name} is {other:?}"),
    }
}

fn record_error(result: Result<Vec<Column>, ParseError>) -> RecordError {
    match result {
        Err(ParseError::Record(error)) => error,
        other => panic!("expected a record error, got {other:?}"),
    }
}

#[test]
fn arrays_objects_and_ndjson_give_the_same_rows() {
    let schema = schema(vec![FieldSpec::new("a"), FieldSpec::new("b.c")]);
    let array = parse_json(
        &schema,
        br#"[{"a": 1, "b": {"c": 2.5}}, {"b": {"c": -1}, "a": 3}]"#,
    )
    .unwrap();
    let ndjson = parse_json(
        &schema,
        b"{\"a\": 1, \"b\": {\"c\": 2.5}}\n{\"b\": {\"c\": -1}, \"a\": 3}\n",
    )
    .unwrap();
    assert_eq!(array, ndjson);
    assert_eq!(
        floats(&array, "input"),
        (vec![2, 2], vec![1.0, 2.5, 3.0, -1.0])
    );
    let single = parse_json(&schema, br#" {"a": 1, "b": {"c": 2.5}} "#).unwrap();
    assert_eq!(floats(&single, "input"), (vec![1, 2], vec![1.0, 2.5]));
    let empty = parse_json(&schema, b"[]").unwrap();
    assert_eq!(floats(&empty, "input"), (vec![0, 2], vec![]));
}

#[test]
fn leads_learnt_from_one_record_never_change_another_records_values() {
    // Each record read alone (no lead learnt from an earlier record) is the reference for
    // the same records read as one batch, where most members match a learnt lead and the
    // rest differ from it in every way a lead can miss.
    let long = "a_key_too_long_for_a_lead";
    let schema = schema(vec![
        FieldSpec::new("a"),
        FieldSpec::new("b.c"),
        FieldSpec::new("d"),
        FieldSpec::new(long),
    ]);
    let records = [
        r#"{"a": 1, "b": {"c": 2}, "d": 3, "a_key_too_long_for_a_lead": 0}"#,
        r#"{"a": 4, "b": {"c": 5}, "d": 6, "a_key_too_long_for_a_lead": 0}"#,
        r#"{"d": 7, "a": 8, "b": {"c": 9}, "a_key_too_long_for_a_lead": 0}"#,
        r#"{"a":10,"b":{"c":11},"d":12,"a_key_too_long_for_a_lead":0}"#,
        r#"{"a": 13, "x": [1, {"a": 99}], "b": {"c": 14}, "d": 15, "a_key_too_long_for_a_lead": 0}"#,
        r#"{"\u0061": 16, "b": {"c": 17}, "d": 18, "a_key_too_long_for_a_lead": 0}"#,
        r#"{"a": 19, "b": {"c": 20}, "d": 21, "a": 22, "a_key_too_long_for_a_lead": 0}"#,
        r#"{  "a" :  23 , "b": {"c": 24}, "d": 25, "a_key_too_long_for_a_lead": 0}"#,
        r#"{"ab": 1, "a": 26, "b": {"c": 27}, "d": 28, "a_key_too_long_for_a_lead": 1}"#,
        r#"{"a": 29, "b": {"c": 30, "c": 31}, "d": 32, "a_key_too_long_for_a_lead": 2}"#,
        r#"{"a": 33, "b": {"c": 34}, "d": 35, "a_key_too_long_for_a_lead": 3}"#,
    ];
    let mut expected = Vec::new();
    for record in records {
        expected.extend(floats(&parse_json(&schema, record.as_bytes()).unwrap(), "input").1);
    }
    let batch = format!("[{}]", records.join(", "));
    let (shape, values) = floats(&parse_json(&schema, batch.as_bytes()).unwrap(), "input");
    assert_eq!(shape, [records.len(), 4]);
    assert_eq!(values, expected);
    assert_eq!(&values[..8], [1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0, 0.0]);
    // A syntax error right after members that matched leads is found where it is.
    let bad = format!("[{}, {}]", records[0], r#"{"a": 1, "b": {"c": 2}, "d": }"#);
    match parse_json(&schema, bad.as_bytes()) {
        Err(ParseError::Syntax(error)) => assert_eq!(error.offset, bad.len() - 2),
        other => panic!("{other:?}"),
    }
    // A lead that begins with a comma (an unknown member came first) is never taken at an
    // object's start, where a comma is an error (found by the fuzz target).
    let bad = br#"[{"x": 1, "a": 2, "b": {"c": 3}, "d": 4}, {, "a": 2, "b": {"c": 3}, "d": 4}]"#;
    match parse_json(&schema, bad) {
        Err(ParseError::Syntax(error)) => {
            assert_eq!(error.offset, 43);
            assert_eq!(error.message, "expected a key");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_last_duplicate_key_wins_like_json_loads() {
    let schema = schema(vec![FieldSpec::new("a.x"), FieldSpec::new("b")]);
    let columns = parse_json(
        &schema,
        br#"{"a": {"x": "bad"}, "b": 1, "a": {"x": 2}, "b": 3}"#,
    )
    .unwrap();
    assert_eq!(floats(&columns, "input").1, [2.0, 3.0]);
    // The later object replaces the earlier one entirely, so a.x is missing.
    let error = record_error(parse_json(&schema, br#"{"a": {"x": 1}, "b": 1, "a": {}}"#));
    assert_eq!(error.path.as_deref(), Some("a.x"));
}

#[test]
fn errors_name_the_record_field_expectation_and_value() {
    let schema = schema(vec![FieldSpec::new("a.b")]);
    let error = record_error(parse_json(
        &schema,
        br#"[{"a": {"b": 1}}, {"a": {"b": "abc"}}]"#,
    ));
    assert_eq!(
        error.to_string(),
        r#"record 1, field "a.b": expected float32, got "abc""#
    );
    let error = record_error(parse_json(&schema, br#"[{"a": 5}]"#));
    assert_eq!(error.expected, r#"an object at "a""#);
    let error = record_error(parse_json(&schema, br#"[3]"#));
    assert_eq!(error.to_string(), "record 0: expected an object, got 3");
    let error = record_error(parse_json(&schema, br#"[{"a": null}]"#));
    assert_eq!(error.got, "nothing (missing or null)");
}

#[test]
fn a_number_beyond_every_type_is_its_fields_error() {
    let mut scores = FieldSpec::new("l");
    scores.shape = Some(vec![2]);
    let schema = schema(vec![FieldSpec::new("a"), scores]);
    let error = record_error(parse_json(
        &schema,
        br#"[{"a": 1, "l": [1, 2]}, {"a": 1e400, "l": [1, 2]}]"#,
    ));
    assert_eq!(
        error.to_string(),
        r#"record 1, field "a": expected float32, got 1e400"#
    );
    let long = format!(r#"{{"a": 1, "l": [1, -{}]}}"#, "9".repeat(400));
    let error = record_error(parse_json(&schema, long.as_bytes()));
    assert_eq!((error.record, error.path.as_deref()), (0, Some("l")));
    assert!(error.got.starts_with("-999"), "{}", error.got);
    // A number no field reads is only checked as JSON.
    let skipped = parse_json(&schema, br#"{"a": 1, "l": [1, 2], "x": 1e999}"#).unwrap();
    let name = skipped[0].name.clone();
    assert_eq!(floats(&skipped, &name), (vec![1, 3], vec![1.0, 1.0, 2.0]));
}

#[test]
fn malformed_json_reports_its_byte_offset() {
    let schema = schema(vec![FieldSpec::new("a")]);
    for (input, offset) in [
        (&br#"[{"a": 1}, {"a": 2,}]"#[..], 19),
        (br#"[{"a": 1} {"a": 2}]"#, 10),
        (br#"[{"a": 1"#, 8),
        (b"", 0),
        (br#"{"a": tru}"#, 6),
    ] {
        match parse_json(&schema, input) {
            Err(ParseError::Syntax(error)) => {
                assert!(
                    error.offset.abs_diff(offset) <= 3,
                    "{input:?}: {error} (wanted near {offset})"
                )
            }
            other => panic!("{input:?}: {other:?}"),
        }
    }
    // Malformed JSON anywhere is reported before a bad record.
    let result = parse_json(&schema, br#"[{"a": "x"}, {"a": ]"#);
    assert!(matches!(result, Err(ParseError::Syntax(_))), "{result:?}");
}

#[test]
fn lists_fixed_variable_and_indexed() {
    let mut fixed = FieldSpec::new("v");
    fixed.shape = Some(vec![2]);
    let mut tokens = FieldSpec::new("t");
    tokens.shape = Some(vec![-1]);
    tokens.pad = Some(ConfigValue::Int(-1));
    let schema = schema(vec![FieldSpec::new("s.1"), fixed, tokens]);
    let columns = parse_json(
        &schema,
        br#"[{"s": [9, 8], "v": [1, 2], "t": [5]}, {"s": [7, 6, 5], "v": [3, 4], "t": [1, 2, 3]}]"#,
    )
    .unwrap();
    assert_eq!(
        floats(&columns, "input"),
        (vec![2, 3], vec![8.0, 1.0, 2.0, 6.0, 3.0, 4.0])
    );
    assert_eq!(
        floats(&columns, "t"),
        (vec![2, 3], vec![5.0, -1.0, -1.0, 1.0, 2.0, 3.0])
    );
    let lengths = columns
        .iter()
        .find(|column| column.name == "t_lengths")
        .unwrap();
    assert_eq!(lengths.data, Buffer::Int64(vec![1, 3]));
    let error = record_error(parse_json(
        &schema,
        br#"{"s": [1, 2], "v": [1, 2, 3], "t": []}"#,
    ));
    assert_eq!(
        error.to_string(),
        r#"record 0, field "v": expected list of 2 float32, got a list of 3"#
    );
}

#[test]
fn ragged_lists_take_every_number_and_refuse_the_rest() {
    let mut floats32 = FieldSpec::new("f");
    floats32.max_length = Some(3);
    floats32.pad = Some(ConfigValue::Int(0));
    let mut ints = FieldSpec::new("i");
    ints.shape = Some(vec![-1]);
    ints.dtype = Some("int64".into());
    ints.pad = Some(ConfigValue::Int(-1));
    let schema = schema(vec![floats32, ints]);
    let columns = parse_json(
        &schema,
        br#"[{"f": [1, 2.5, -3e2], "i": [7, -8]}, {"f": [], "i": [9223372036854775807]}, {"f": [0.1], "i": []}]"#,
    )
    .unwrap();
    assert_eq!(
        floats(&columns, "f"),
        (vec![3, 3], vec![1.0, 2.5, -300.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0])
    );
    let ints = columns.iter().find(|column| column.name == "i").unwrap();
    assert_eq!(ints.shape, [3, 2]);
    assert_eq!(ints.data, Buffer::Int64(vec![7, -8, i64::MAX, -1, -1, -1]));
    // What a list's column cannot hold is its record's error, naming the element.
    let refused = [
        (r#"{"f": [1, 1e39], "i": []}"#, r#"field "f": expected list of at most 3 float32, got 1e39 at index 1"#),
        (r#"{"f": [1, null], "i": []}"#, r#"field "f": expected list of at most 3 float32, got null at index 1"#),
        (r#"{"f": [1, "2"], "i": []}"#, r#"field "f": expected list of at most 3 float32, got "2" at index 1"#),
        (r#"{"f": [1, 2, 3, 4], "i": []}"#, r#"field "f": expected list of at most 3 float32, got a list of 4"#),
        (r#"{"f": [], "i": [1, 2.5]}"#, r#"field "i": expected list of int64, got 2.5 at index 1"#),
        (r#"{"f": [], "i": [18446744073709551615]}"#, r#"field "i": expected list of int64, got 18446744073709551615 at index 0"#),
    ];
    for (input, message) in refused {
        let error = record_error(parse_json(&schema, input.as_bytes()));
        assert_eq!(error.to_string(), format!("record 0, {message}"), "{input}");
    }
}

#[test]
fn missing_policies_fill_or_refuse() {
    let mut with_default = FieldSpec::new("a");
    with_default.default = Some(ConfigValue::Float(7.0));
    let mut with_nan = FieldSpec::new("b");
    with_nan.missing = Some("nan".into());
    let schema = schema(vec![with_default, with_nan, FieldSpec::new("c")]);
    let columns = parse_json(&schema, br#"{"a": null, "c": 1}"#).unwrap();
    let (_, values) = floats(&columns, "input");
    assert_eq!(values[0], 7.0);
    assert!(values[1].is_nan());
    assert!(parse_json(&schema, br#"{"a": 1, "b": 2}"#).is_err());
}

#[test]
fn categories_map_to_indices() {
    let mut color = FieldSpec::new("color");
    color.vocabulary = Some(vec!["red".into(), "green".into()]);
    color.unknown = Some("index".into());
    let schema = schema(vec![color]);
    let columns = parse_json(
        &schema,
        br#"[{"color": "green"}, {"color": "mauve"}, {"color": "red"}]"#,
    )
    .unwrap();
    assert_eq!(columns[0].data, Buffer::Int64(vec![1, -1, 0]));
}

#[test]
fn keys_of_every_length_match_whole() {
    let keys = ["k", "kkkkkk", "kkkkkkk", "kkkkkkkk", "é", "ké\u{1F600}"];
    let schema = schema(keys.iter().map(|key| FieldSpec::new(*key)).collect());
    let record = |value: usize| {
        let members: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(index, key)| format!(r#""{key}": {}"#, index + value))
            .collect();
        format!("{{{}}}", members.join(", "))
    };
    let data = format!("[{}, {}]", record(0), record(10));
    let (_, values) = floats(&parse_json(&schema, data.as_bytes()).unwrap(), "input");
    assert_eq!(
        values,
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    );
    // A key that only starts like an expected one, or is one with more after it.
    for near in [r#""kk""#, r#""kkkkkkkk2""#, r#""kkkkkk\u006b""#, r#""k\"""#] {
        let data = record(0).replacen(r#""kkkkkkk""#, near, 1);
        let result = parse_json(&schema, data.as_bytes());
        let expected = if near == r#""kkkkkk\u006b""# {
            Ok(())
        } else {
            Err(())
        };
        assert_eq!(result.map(|_| ()).map_err(|_| ()), expected, "{data}");
    }
}

#[test]
fn count_scalars_counts_every_value() {
    assert_eq!(
        count_scalars(br#"[{"a": 1, "b": [true, null, "x"]}, 2.5]"#).unwrap(),
        5
    );
    assert!(count_scalars(b"[1,").is_err());
}
