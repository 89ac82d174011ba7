//! The property both fuzzers check: any bytes through `parse_json` either fail cleanly or give
//! tensors whose buffers match their shapes. Shared by the cargo-fuzz target and the stable
//! runner (native/tests/fuzz_json_records.rs).

use std::sync::OnceLock;

use _native::records::{
    nesting_beyond, parse_json, parse_json_pieces, parse_json_threaded, Buffer, Column, ParseError,
};
use _native::schema::{ConfigValue, FieldSpec, Schema, SchemaSpec};

pub fn schemas() -> &'static [Schema] {
    static SCHEMAS: OnceLock<Vec<Schema>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let field = |path: &str, configure: &dyn Fn(&mut FieldSpec)| {
            let mut spec = FieldSpec::new(path);
            configure(&mut spec);
            spec
        };
        let specs = [
            SchemaSpec::new(vec![
                field("a", &|_| {}),
                field("b.c", &|spec| spec.missing = Some("nan".into())),
                field("l.0", &|spec| spec.default = Some(ConfigValue::Float(1.5))),
            ]),
            SchemaSpec::new(vec![
                field("v", &|spec| {
                    spec.shape = Some(vec![2]);
                    spec.missing = Some("nan".into());
                }),
                field("t", &|spec| {
                    spec.shape = Some(vec![-1]);
                    spec.dtype = Some("int32".into());
                    spec.missing = Some("default".into());
                }),
                field("m", &|spec| {
                    spec.max_length = Some(3);
                    spec.dtype = Some("bool".into());
                    spec.missing = Some("default".into());
                }),
            ]),
            SchemaSpec::new(vec![field("c", &|spec| {
                spec.vocabulary = Some(vec!["x".into(), "y".into()]);
                spec.unknown = Some("index".into());
                spec.tensor = Some("c".into());
            })]),
        ];
        specs
            .iter()
            .filter_map(|spec| Schema::compile(spec).ok())
            .collect()
    })
}

/// Equal, comparing floats by their bits (NaN fills must match too).
pub fn same_columns(left: &[Column], right: &[Column]) -> bool {
    let same_data = |left: &Buffer, right: &Buffer| match (left, right) {
        (Buffer::Float32(left), Buffer::Float32(right)) => left
            .iter()
            .map(|value| value.to_bits())
            .eq(right.iter().map(|value| value.to_bits())),
        (Buffer::Float64(left), Buffer::Float64(right)) => left
            .iter()
            .map(|value| value.to_bits())
            .eq(right.iter().map(|value| value.to_bits())),
        (left, right) => left == right,
    };
    left.len() == right.len()
        && left.iter().zip(right).all(|(left, right)| {
            left.name == right.name
                && left.shape == right.shape
                && same_data(&left.data, &right.data)
        })
}

/// The threaded paths must agree with the single-threaded one exactly: the same tensors, or
/// the same error (the same record, or the same offset and message).
fn assert_same(
    data: &[u8],
    single: &Result<Vec<Column>, ParseError>,
    threaded: &Result<Vec<Column>, ParseError>,
    how: &str,
) {
    let same = match (single, threaded) {
        (Ok(single), Ok(threaded)) => same_columns(single, threaded),
        (Err(single), Err(threaded)) => single == threaded,
        _ => false,
    };
    assert!(
        same,
        "{how} disagrees on {:?}: {single:?} against {threaded:?}",
        String::from_utf8_lossy(data)
    );
}

pub fn check_json_records(data: &[u8]) {
    check_json_records_cut(data, &[1, 2, 3, 5, 8]);
    // The depth limit's scan (8 bytes at a time) finds what a byte-at-a-time count finds.
    for limit in [1, 2, 3, 64] {
        assert_eq!(
            nesting_beyond(data, limit),
            nesting_one_byte_at_a_time(data, limit),
            "nesting_beyond({data:?}, {limit})"
        );
    }
}

fn nesting_one_byte_at_a_time(data: &[u8], limit: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (position, &byte) in data.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Some(position);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// [`check_json_records`], with the threaded path also made to cut the input into each of
/// `pieces` (its record-start guesses go wrong in every way on small inputs).
pub fn check_json_records_cut(data: &[u8], pieces: &[usize]) {
    let utf8 = std::str::from_utf8(data);
    for schema in schemas() {
        let result = parse_json(schema, data);
        assert_same(
            data,
            &result,
            &parse_json_threaded(schema, data),
            "the threaded path",
        );
        for &count in pieces {
            let threaded = parse_json_pieces(schema, data, count);
            assert_same(data, &result, &threaded, &format!("{count} pieces"));
        }
        // What the scanner accepts as syntax is JSON as serde_json reads it: one value, or
        // values one after another (NDJSON). Its fast paths (learnt leads) must not accept more.
        if !matches!(result, Err(ParseError::Syntax(_))) {
            let mut values =
                serde_json::Deserializer::from_slice(data).into_iter::<serde::de::IgnoredAny>();
            if let Some(Err(error)) = values.find(Result::is_err) {
                panic!("accepted, but serde_json says {error}: {data:?}");
            }
        }
        // The scanner checks UTF-8 only in strings; invalid UTF-8 anywhere must still be the
        // error, at the offset where decoding the whole input fails.
        match (&utf8, &result) {
            (Ok(_), Err(ParseError::Syntax(error))) => {
                assert_ne!(error.message, "invalid UTF-8", "{data:?}")
            }
            (Ok(_), _) => {}
            (Err(invalid), Err(ParseError::Syntax(error))) => assert_eq!(
                (error.offset, error.message.as_str()),
                (invalid.valid_up_to(), "invalid UTF-8"),
                "{data:?}"
            ),
            (Err(_), other) => panic!("invalid UTF-8 accepted: {data:?} gave {other:?}"),
        }
        match result {
            Ok(columns) => {
                for column in columns {
                    assert_eq!(
                        column.shape.iter().product::<usize>(),
                        column.data.len(),
                        "{}",
                        column.name
                    );
                }
            }
            Err(ParseError::Syntax(error)) => assert!(error.offset <= data.len(), "{error}"),
            Err(ParseError::Record(_)) => {}
        }
    }
}
