//! The property both fuzzers check: any bytes through `parse_json` either fail cleanly or give
//! tensors whose buffers match their shapes. Shared by the cargo-fuzz target and the stable
//! runner (native/tests/fuzz_json_records.rs).

use std::sync::OnceLock;

use _native::records::{parse_json, parse_json_threaded, Buffer, Column, ParseError};
use _native::schema::{ConfigValue, FieldSpec, Schema, SchemaSpec};

fn schemas() -> &'static [Schema] {
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
fn same_columns(left: &[Column], right: &[Column]) -> bool {
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

pub fn check_json_records(data: &[u8]) {
    for schema in schemas() {
        let result = parse_json(schema, data);
        // The threaded path must agree: same tensors, or the same kind of error (and the same
        // record for a record error). Syntax messages may differ: the paths find them apart.
        match (&result, parse_json_threaded(schema, data)) {
            (Ok(single), Ok(threaded)) => assert!(
                same_columns(single, &threaded),
                "{single:?} against {threaded:?}"
            ),
            (Err(ParseError::Record(single)), Err(ParseError::Record(threaded))) => {
                assert_eq!(single, &threaded)
            }
            (Err(ParseError::Syntax(_)), Err(ParseError::Syntax(_))) => {}
            (single, threaded) => panic!(
                "paths disagree on {:?}: {single:?} against {threaded:?}",
                String::from_utf8_lossy(data)
            ),
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
