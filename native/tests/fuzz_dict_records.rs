//! A bounded fuzz run of the dicts path: records as Python gives them to `Schema.parse_records`
//! (dicts, lists and scalars), fed into a [`Batch`] as `py_records` feeds it, must never panic
//! and must give exactly what `parse_json` gives for the same records written as JSON (the same
//! tensors, or the same error).
//!
//! The values are a plain Rust tree here (no interpreter in `cargo test`); `feed` walks it over
//! the schema's trie with the same calls, in the same order, as `py_records::Reader` walks
//! Python objects, so what is fuzzed is the core the dicts path calls.
//!
//! By default it runs for 2 seconds; `INFERD_FUZZ_SECONDS` and `INFERD_FUZZ_SEED` as in
//! `fuzz_json_records.rs` (CI runs it through `make fuzz`).

use std::time::{Duration, Instant};

use _native::records::{parse_json, Batch, Column, ParseError};
use _native::schema::{NodeId, Scalar, Schema, ROOT};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

// Only the schemas and the comparison of columns are used here.
#[allow(dead_code)]
#[path = "../fuzz/check.rs"]
mod check;
mod common;

/// A record as Python holds it once loaded: dicts (unique keys, in insertion order), lists.
#[derive(Clone, Debug)]
enum Py {
    None,
    Bool(bool),
    Int(i64),
    BigInt(u64),
    Float(f64),
    Str(String),
    List(Vec<Py>),
    Dict(Vec<(String, Py)>),
}

impl Py {
    /// The scalar `py_records::read_scalar` reads, or None for a container.
    fn scalar(&self) -> Option<Scalar<'_>> {
        Some(match self {
            Self::None => Scalar::Null,
            Self::Bool(value) => Scalar::Bool(*value),
            Self::Int(value) => Scalar::Int(*value),
            Self::BigInt(value) => Scalar::UInt(*value),
            Self::Float(value) => Scalar::Float(*value),
            Self::Str(value) => Scalar::Str(value),
            Self::List(_) | Self::Dict(_) => return None,
        })
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Self::None => out.push_str("null"),
            Self::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Self::Int(value) => out.push_str(&value.to_string()),
            Self::BigInt(value) => out.push_str(&value.to_string()),
            // Debug is the shortest text that reads back as the same float.
            Self::Float(value) => out.push_str(&format!("{value:?}")),
            Self::Str(value) => out.push_str(&serde_json::to_string(value).unwrap()),
            Self::List(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Self::Dict(entries) => {
                out.push('{');
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&serde_json::to_string(key).unwrap());
                    out.push_str(": ");
                    value.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// `py_records::Reader::container`: what the trie wants below `node`, from a value.
fn container(batch: &mut Batch<'_>, schema: &Schema, node: NodeId, value: &Py) {
    let trie_node = &schema.nodes[node];
    if trie_node.is_leaf() {
        return leaf(batch, node, value);
    }
    match value {
        Py::Dict(entries) => {
            for (key, child_value) in entries {
                if let Some(child) = trie_node.child_by_key(key) {
                    container(batch, schema, child, child_value);
                }
            }
        }
        Py::List(items) => {
            if trie_node.indices.is_empty() || node == ROOT {
                batch.container_mismatch(node, "a list");
                return;
            }
            batch.list_at_container(node);
            for &(index, child) in &trie_node.indices {
                if let Some(item) = items.get(index) {
                    container(batch, schema, child, item);
                }
            }
        }
        scalar => batch.scalar(node, scalar.scalar().expect("a scalar")),
    }
}

/// `py_records::Reader::leaf`: a value at a node where fields end.
fn leaf(batch: &mut Batch<'_>, node: NodeId, value: &Py) {
    match value {
        Py::List(items) => {
            if !batch.leaf_wants_list(node) {
                batch.container_mismatch(node, "a list");
                return;
            }
            for (index, item) in items.iter().enumerate() {
                match item {
                    Py::Dict(_) => batch.element_mismatch(node, index, "an object"),
                    Py::List(_) => batch.element_mismatch(node, index, "a list"),
                    scalar => batch.list_element(node, index, scalar.scalar().expect("a scalar")),
                }
            }
            batch.list_end(node, items.len());
        }
        Py::Dict(_) => batch.container_mismatch(node, "an object"),
        scalar => batch.scalar(node, scalar.scalar().expect("a scalar")),
    }
}

/// `py_records::parse_records` over a list of records.
fn parse_dicts(schema: &Schema, records: &[Py]) -> Result<Vec<Column>, ParseError> {
    let mut batch = Batch::new(schema, records.len());
    let mut first_error = None;
    for (index, record) in records.iter().enumerate() {
        batch.begin_record();
        container(&mut batch, schema, ROOT, record);
        if first_error.is_none() {
            first_error = batch.finish_record(index).err();
        }
    }
    match first_error {
        Some(error) => Err(ParseError::Record(error)),
        None => Ok(batch.into_columns()),
    }
}

const KEYS: &[&str] = &["a", "b", "c", "l", "v", "t", "m", "x", "0", "é", "a.b"];
const WORDS: &[&str] = &["x", "y", "z", "", "é😀", "\"q\\", "\n"];

fn scalar(rng: &mut SmallRng) -> Py {
    match rng.random_range(0..12) {
        0 => Py::None,
        1 => Py::Bool(rng.random()),
        2 => Py::Int(rng.random()),
        3 => Py::Int(rng.random_range(-3..300)),
        4 => Py::BigInt(rng.random_range(i64::MAX as u64 + 1..=u64::MAX)),
        5 => Py::Str(WORDS[rng.random_range(0..WORDS.len())].into()),
        6 => {
            let value = f64::from_bits(rng.random());
            Py::Float(if value.is_finite() { value } else { 0.5 })
        }
        7 => Py::Float([0.0, -0.0, 1e300, -1e-300, 3.4e38, 3.5e38, 1e39][rng.random_range(0..7)]),
        8 => Py::Int([0, 1, 2, i32::MAX as i64 + 1, i64::MIN][rng.random_range(0..5)]),
        _ => Py::Float(rng.random_range(-1e3..1e3)),
    }
}

/// A value at `node`: mostly what the trie asks for there, sometimes anything.
fn value(rng: &mut SmallRng, schema: &Schema, node: Option<NodeId>, depth: usize) -> Py {
    let trie_node = node.map(|node| &schema.nodes[node]);
    let container = trie_node.is_some_and(|trie_node| !trie_node.is_leaf());
    let roll = rng.random_range(0..10);
    if depth > 4 || (roll < 6 && !container) {
        return if roll < 2 && depth <= 4 {
            Py::List(
                (0..rng.random_range(0..5))
                    .map(|_| match rng.random_range(0..10) {
                        0 => value(rng, schema, None, depth + 1),
                        _ => scalar(rng),
                    })
                    .collect(),
            )
        } else {
            scalar(rng)
        };
    }
    if roll < 8 || container && roll < 9 {
        // A dict: some of the trie's keys here, in any order, and keys it does not know.
        let mut entries: Vec<(String, Py)> = Vec::new();
        if let Some(trie_node) = trie_node {
            for (key, child) in &trie_node.keys {
                if rng.random_range(0..6) != 0 {
                    entries.push((key.to_string(), value(rng, schema, Some(*child), depth + 1)));
                }
            }
        }
        for _ in 0..rng.random_range(0..3) {
            let key = KEYS[rng.random_range(0..KEYS.len())];
            if entries.iter().all(|(known, _)| known != key) {
                let child = trie_node.and_then(|trie_node| trie_node.child_by_key(key));
                entries.push((key.into(), value(rng, schema, child, depth + 1)));
            }
        }
        for _ in 0..entries.len() {
            let (one, other) = (
                rng.random_range(0..entries.len()),
                rng.random_range(0..entries.len()),
            );
            entries.swap(one, other);
        }
        return Py::Dict(entries);
    }
    // A list: at a container, what its integer segments read.
    let length = rng.random_range(0..4);
    Py::List(
        (0..length)
            .map(|index| {
                let child = trie_node.and_then(|trie_node| trie_node.child_by_index(index));
                value(rng, schema, child, depth + 1)
            })
            .collect(),
    )
}

#[test]
fn dict_records_never_panic_and_agree_with_json() {
    let (seconds, seed) = common::fuzz_settings();
    let mut rng = SmallRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut read) = (0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..64 {
            for schema in check::schemas() {
                let records: Vec<Py> = (0..rng.random_range(0..6))
                    .map(|_| value(&mut rng, schema, Some(ROOT), 0))
                    .collect();
                let dicts = parse_dicts(schema, &records);
                let mut json = String::new();
                Py::List(records.clone()).write_json(&mut json);
                let from_json = parse_json(schema, json.as_bytes());
                let same = match (&dicts, &from_json) {
                    (Ok(dicts), Ok(from_json)) => check::same_columns(dicts, from_json),
                    (Err(dicts), Err(from_json)) => dicts == from_json,
                    _ => false,
                };
                assert!(
                    same,
                    "the dicts path disagrees with JSON on {json}: {dicts:?} against {from_json:?}"
                );
                if let Ok(columns) = dicts {
                    read += 1;
                    for column in columns {
                        assert_eq!(
                            column.shape.iter().product::<usize>(),
                            column.data.len(),
                            "{}",
                            column.name
                        );
                    }
                }
                runs += 1;
            }
        }
    }
    println!(
        "fuzz_dict_records: {runs} batches ({read} read, the rest refused) in {seconds} s (seed {seed}), no failure"
    );
}
