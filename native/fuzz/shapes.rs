//! The record shapes of issue 22, generated from a seed: random schemas (float32, float64,
//! int64, vocabularies, fixed and ragged lists, paths up to 6 deep over short, long, unicode and
//! escaped keys), records holding every field plus unused strings, objects and arrays, keys
//! shuffled in every record or kept in one order, written compact, spaced, pretty-printed, as
//! NDJSON or as one object. `check_shape` asserts that `parse_json` (one thread and cut among
//! threads) gives exactly the fields extracted from serde_json's DOM of the same bytes.
//! Shared by the cargo-fuzz target (fuzz_targets/record_shapes.rs) and the stable runner
//! (native/tests/fuzz_json_records.rs).

use std::collections::HashMap;
use std::fmt::Write;

use _native::records::{parse_json, parse_json_one_thread, parse_json_pieces, Buffer, Column};
use _native::schema::{ConfigValue, FieldSpec, Schema, SchemaSpec};
use serde_json::Value;

/// splitmix64: enough randomness for shapes, and no dependency for the cargo-fuzz crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    #[allow(dead_code)] // the cargo-fuzz target's
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut state = 0x243F_6A88_85A3_08D3u64;
        for &byte in bytes {
            state = (state ^ u64::from(byte)).wrapping_mul(0x100_0000_01B3);
        }
        Self(state)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            items.swap(index, self.below(index + 1));
        }
    }
}

const PARENTS: &[&str] = &[
    "a",
    "nested",
    "request",
    "ключ",
    "with space",
    "q\"uote",
    "back\\slash",
    "a_rather_long_parent_key",
];
const LEAVES: &[&str] = &[
    "f",
    "x",
    "feature_",
    "значение_",
    "tab\t",
    "long_leaf_name_over_16_bytes_",
];
const VOCAB: &[&str] = &[
    "free",
    "pro",
    "team",
    "é",
    "q\"",
    "a_long_category_name",
    "",
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Float32,
    Float64,
    Int64,
    Vocab,
    Fixed(usize),
    Ragged(usize),
}

struct Field {
    path: Vec<String>,
    kind: Kind,
}

/// A JSON value as written: members in the order given.
enum Json {
    Number(String),
    Text(String),
    Bool(bool),
    Null,
    List(Vec<Json>),
    Object(Vec<(String, Json)>),
}

fn float_text(rng: &mut Rng, wide: bool) -> String {
    match rng.below(5) {
        // 17 significant digits, as Python writes floats.
        0 | 1 => format!(
            "{:?}",
            (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi(rng.below(12) as i32 - 4)
        ),
        2 => format!("{}", rng.next() as i64 >> rng.below(40).max(11)),
        3 if wide => format!("{:e}", f64::from_bits(rng.next() >> 2)),
        _ => format!(
            "{}.{}e{}",
            rng.below(1000) as i64 - 500,
            rng.below(1000),
            rng.below(40) as i64 - 20
        ),
    }
}

fn value(rng: &mut Rng, kind: Kind) -> Json {
    match kind {
        Kind::Float32 => Json::Number(float_text(rng, false)),
        Kind::Float64 => Json::Number(float_text(rng, true)),
        Kind::Int64 => Json::Number(format!("{}", rng.next() as i64 >> rng.below(63))),
        Kind::Vocab => Json::Text(rng.pick(VOCAB).to_owned()),
        Kind::Fixed(size) => Json::List(
            (0..size)
                .map(|_| Json::Number(float_text(rng, false)))
                .collect(),
        ),
        Kind::Ragged(size) => Json::List(
            (0..rng.below(size + 1))
                .map(|_| value(rng, Kind::Int64))
                .collect(),
        ),
    }
}

fn unused(rng: &mut Rng, depth: usize) -> Json {
    match rng.below(if depth > 2 { 4 } else { 6 }) {
        0 => Json::Null,
        1 => Json::Bool(rng.below(2) == 0),
        2 => Json::Number(float_text(rng, true)),
        3 => Json::Text(
            (0..rng.below(300))
                .map(|index| ['a', ' ', 'é', '"', '\\', '\n', '😀'][(index * 7 + depth) % 7])
                .collect(),
        ),
        4 => Json::List((0..rng.below(4)).map(|_| unused(rng, depth + 1)).collect()),
        _ => Json::Object(
            (0..rng.below(4))
                .map(|index| (format!("u{index}"), unused(rng, depth + 1)))
                .collect(),
        ),
    }
}

fn insert(object: &mut Vec<(String, Json)>, path: &[String], leaf: Json) {
    let (first, rest) = path.split_first().expect("a path has a segment");
    if rest.is_empty() {
        object.push((first.clone(), leaf));
        return;
    }
    let index = match object.iter().position(|(key, _)| key == first) {
        Some(index) => index,
        None => {
            object.push((first.clone(), Json::Object(Vec::new())));
            object.len() - 1
        }
    };
    if let Json::Object(child) = &mut object[index].1 {
        insert(child, rest, leaf);
    }
}

fn shuffle_keys(rng: &mut Rng, value: &mut Json) {
    if let Json::Object(members) = value {
        rng.shuffle(members);
        for (_, member) in members {
            shuffle_keys(rng, member);
        }
    }
}

fn write_text(out: &mut String, text: &str, ascii: bool) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap_or(()),
            c if ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04x}").unwrap_or(());
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `indent`: None for one line (`spaced`: ", " and ": "), Some(n) pretty-printed.
fn write_json(
    out: &mut String,
    value: &Json,
    indent: Option<usize>,
    spaced: bool,
    ascii: bool,
    level: usize,
) {
    let newline = |out: &mut String, level: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', width * level));
        }
    };
    let comma = if spaced && indent.is_none() {
        ", "
    } else {
        ","
    };
    let colon = if spaced || indent.is_some() {
        ": "
    } else {
        ":"
    };
    match value {
        Json::Number(text) => out.push_str(text),
        Json::Text(text) => write_text(out, text, ascii),
        Json::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Json::Null => out.push_str("null"),
        Json::List(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                out.push_str(if index > 0 { comma } else { "" });
                newline(out, level + 1);
                write_json(out, item, indent, spaced, ascii, level + 1);
            }
            if !items.is_empty() {
                newline(out, level);
            }
            out.push(']');
        }
        Json::Object(members) => {
            out.push('{');
            for (index, (key, member)) in members.iter().enumerate() {
                out.push_str(if index > 0 { comma } else { "" });
                newline(out, level + 1);
                write_text(out, key, ascii);
                out.push_str(colon);
                write_json(out, member, indent, spaced, ascii, level + 1);
            }
            if !members.is_empty() {
                newline(out, level);
            }
            out.push('}');
        }
    }
}

fn escape(segment: &str) -> String {
    segment.replace('\\', "\\\\").replace('.', "\\.")
}

fn schema_of(fields: &[Field]) -> Schema {
    let specs = fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let mut spec = FieldSpec::new(
                field
                    .path
                    .iter()
                    .map(|segment| escape(segment))
                    .collect::<Vec<_>>()
                    .join("."),
            );
            let tensor = |name: &str| Some(name.to_owned());
            match field.kind {
                Kind::Float32 => {}
                Kind::Float64 => (spec.dtype, spec.tensor) = (tensor("float64"), tensor("f64")),
                Kind::Int64 => (spec.dtype, spec.tensor) = (tensor("int64"), tensor("ints")),
                Kind::Vocab => {
                    spec.vocabulary = Some(VOCAB.iter().map(|word| word.to_string()).collect());
                    (spec.dtype, spec.tensor) = (tensor("int64"), tensor("cats"));
                }
                Kind::Fixed(size) => spec.shape = Some(vec![size as i64]),
                Kind::Ragged(size) => {
                    spec.max_length = Some(size as i64);
                    spec.pad = Some(ConfigValue::Int(0));
                    spec.name = Some(format!("r{index}"));
                    (spec.dtype, spec.tensor) = (tensor("int64"), Some(format!("r{index}")));
                }
            }
            spec
        })
        .collect();
    Schema::compile(&SchemaSpec::new(specs)).expect("generated schemas are valid")
}

/// The reference: each field read from serde_json's DOM of the records, as named tensors.
fn extract(fields: &[Field], records: &[Value]) -> HashMap<String, (Vec<usize>, Buffer)> {
    let rows = records.len();
    let mut out: HashMap<String, (Vec<usize>, Buffer)> = HashMap::new();
    let as_f64 = |value: &Value| {
        value
            .as_i64()
            .map(|int| int as f64)
            .or_else(|| value.as_f64())
            .expect("a number")
    };
    let mut grow = |name: &str, width: usize, make: fn() -> Buffer| {
        let entry = out
            .entry(name.to_owned())
            .or_insert_with(|| (vec![rows, 0], make()));
        entry.0[1] += width;
    };
    for field in fields {
        match field.kind {
            Kind::Float32 => grow("input", 1, || Buffer::Float32(Vec::new())),
            Kind::Fixed(size) => grow("input", size, || Buffer::Float32(Vec::new())),
            Kind::Float64 => grow("f64", 1, || Buffer::Float64(Vec::new())),
            Kind::Int64 => grow("ints", 1, || Buffer::Int64(Vec::new())),
            Kind::Vocab => grow("cats", 1, || Buffer::Int64(Vec::new())),
            Kind::Ragged(_) => {}
        }
    }
    for (index, field) in fields.iter().enumerate() {
        if let Kind::Ragged(size) = field.kind {
            out.insert(
                format!("r{index}"),
                (vec![rows, size], Buffer::Int64(Vec::new())),
            );
            out.insert(
                format!("r{index}_lengths"),
                (vec![rows], Buffer::Int64(Vec::new())),
            );
        }
    }
    for record in records {
        for (index, field) in fields.iter().enumerate() {
            let value = field
                .path
                .iter()
                .fold(record, |node, segment| &node[segment.as_str()]);
            let push = |out: &mut HashMap<String, (Vec<usize>, Buffer)>,
                        name: &str,
                        value: &Value,
                        kind: Kind| {
                match (&mut out.get_mut(name).expect("a tensor").1, kind) {
                    (Buffer::Float32(values), _) => values.push(as_f64(value) as f32),
                    (Buffer::Float64(values), _) => values.push(as_f64(value)),
                    (Buffer::Int64(values), Kind::Vocab) => values.push(
                        VOCAB
                            .iter()
                            .position(|word| Some(*word) == value.as_str())
                            .expect("a word") as i64,
                    ),
                    (Buffer::Int64(values), _) => values.push(value.as_i64().expect("an integer")),
                    _ => unreachable!("generated tensors are float32, float64 or int64"),
                }
            };
            match field.kind {
                Kind::Float32 => push(&mut out, "input", value, field.kind),
                Kind::Fixed(_) => {
                    for item in value.as_array().expect("a list") {
                        push(&mut out, "input", item, field.kind);
                    }
                }
                Kind::Float64 => push(&mut out, "f64", value, field.kind),
                Kind::Int64 => push(&mut out, "ints", value, field.kind),
                Kind::Vocab => push(&mut out, "cats", value, field.kind),
                Kind::Ragged(size) => {
                    let items = value.as_array().expect("a list");
                    for position in 0..size {
                        let item = items.get(position).cloned().unwrap_or(Value::from(0));
                        push(&mut out, &format!("r{index}"), &item, field.kind);
                    }
                    let length = Value::from(items.len());
                    push(&mut out, &format!("r{index}_lengths"), &length, field.kind);
                }
            }
        }
    }
    out
}

/// A shape from the seed: its schema's fields, and the JSON bytes of its records.
fn generate(rng: &mut Rng) -> (Vec<Field>, Vec<u8>, bool) {
    let fields: Vec<Field> = (0..1 + rng.below(40))
        .map(|index| {
            let mut path: Vec<String> = (0..rng.below(6))
                .map(|_| rng.pick(PARENTS).to_owned())
                .collect();
            path.push(format!("{}{index}", rng.pick(LEAVES)));
            let size = 1 + rng.below(5);
            let kind = [
                Kind::Float32,
                Kind::Float32,
                Kind::Float64,
                Kind::Int64,
                Kind::Vocab,
                Kind::Fixed(size),
                Kind::Ragged(size),
            ][rng.below(7)];
            Field { path, kind }
        })
        .collect();
    let most = if rng.below(4) == 0 { 200 } else { 8 };
    let count = 1 + rng.below(most);
    let shuffle = rng.below(3) != 0;
    let mut records: Vec<Json> = (0..count)
        .map(|_| {
            let mut members = Vec::new();
            for field in &fields {
                insert(&mut members, &field.path, value(rng, field.kind));
            }
            for index in 0..rng.below(4) {
                let at = rng.below(members.len() + 1);
                members.insert(at, (format!("unused{index}"), unused(rng, 0)));
            }
            Json::Object(members)
        })
        .collect();
    if shuffle {
        for record in &mut records {
            shuffle_keys(rng, record);
        }
    }
    let ascii = rng.below(2) == 0;
    let mut text = String::new();
    let one = count == 1 && rng.below(2) == 0;
    match (one, rng.below(4)) {
        (true, _) => write_json(&mut text, &records[0], None, true, ascii, 0),
        (false, 0) => {
            for record in &records {
                write_json(&mut text, record, None, rng.below(2) == 0, ascii, 0);
                text.push('\n');
            }
        }
        (false, layout) => {
            let indent = (layout == 1).then_some(2);
            write_json(
                &mut text,
                &Json::List(records),
                indent,
                layout == 2,
                ascii,
                0,
            );
        }
    }
    (fields, text.into_bytes(), one)
}

fn by_name(columns: Vec<Column>) -> HashMap<String, (Vec<usize>, Buffer)> {
    columns
        .into_iter()
        .map(|column| (column.name, (column.shape, column.data)))
        .collect()
}

/// Equal buffers, floats compared by their bits.
fn same(left: &Buffer, right: &Buffer) -> bool {
    match (left, right) {
        (Buffer::Float32(left), Buffer::Float32(right)) => left
            .iter()
            .map(|v| v.to_bits())
            .eq(right.iter().map(|v| v.to_bits())),
        (Buffer::Float64(left), Buffer::Float64(right)) => left
            .iter()
            .map(|v| v.to_bits())
            .eq(right.iter().map(|v| v.to_bits())),
        (left, right) => left == right,
    }
}

/// One shape from the seed: the core's tensors equal serde_json's DOM's fields.
pub fn check_shape(rng: &mut Rng) {
    let (fields, data, _one) = generate(rng);
    let schema = schema_of(&fields);
    let dom: Vec<Value> = match serde_json::from_slice::<Value>(&data) {
        Ok(Value::Array(records)) => records,
        Ok(record) => vec![record],
        Err(_) => serde_json::Deserializer::from_slice(&data)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .expect("generated NDJSON is JSON"),
    };
    let want = extract(&fields, &dom);
    let text = String::from_utf8_lossy(&data);
    let compare = |how: &str, got: Vec<Column>| {
        let got = by_name(got);
        assert_eq!(got.len(), want.len(), "{how}: tensors differ for {text}");
        for (name, (shape, buffer)) in &want {
            let (got_shape, got_buffer) = got
                .get(name)
                .unwrap_or_else(|| panic!("{how}: no tensor {name:?} for {text}"));
            assert_eq!(got_shape, shape, "{how}: shape of {name:?} for {text}");
            assert!(
                same(got_buffer, buffer),
                "{how}: tensor {name:?} differs for {text}"
            );
        }
    };
    compare(
        "parse_json",
        parse_json(&schema, &data).expect("generated records parse"),
    );
    compare(
        "one thread",
        parse_json_one_thread(&schema, &data).expect("generated records parse"),
    );
    let pieces = 2 + rng.below(8);
    compare(
        "pieces",
        parse_json_pieces(&schema, &data, pieces).expect("generated records parse"),
    );
}
