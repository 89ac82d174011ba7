//! A bounded fuzz run on the stable toolchain: seeded random and mutated JSON through the
//! records parser, asserting it never panics (the same check as the cargo-fuzz target).
//!
//! By default it runs for 2 seconds, so that `cargo test` stays quick. CI runs it longer:
//!
//!     INFERD_FUZZ_SECONDS=60 cargo test --release --manifest-path native/Cargo.toml \
//!         --test fuzz_json_records -- --nocapture
//!
//! INFERD_FUZZ_SEED picks the seed (default 0), so that a failure can be replayed.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[path = "../fuzz/check.rs"]
mod check;
mod common;
#[path = "../fuzz/shapes.rs"]
mod shapes;

const SEEDS: &[&str] = &[
    r#"[{"a": 1, "b": {"c": 2.5}, "l": [1, 2]}, {"a": -0.0, "b": null}]"#,
    r#"{"v": [1, null], "t": [1, 2, 3], "m": [true, false, 1]}"#,
    "{\"c\": \"x\"}\n{\"c\": \"z\"}\n{\"c\": 5}",
    r#"[{"a": 18446744073709551617, "b": {"c": 1e308}, "a": "é\u00e9\ud83d\ude00"}]"#,
    r#"[{"v": [[1], {"x": 1}], "t": [], "m": [0, 1, 0, 1]}, [], 3, "s", null]"#,
    r#"{"a": {"a": {"a": [[[[{"b": [1, 2, {"c": [true]}]}]]]]}}, "b": {"c": -1.5e-7}}"#,
    // Record starts as the threaded path guesses them (`}, {"a"`), inside strings and nested.
    r#"[{"a": 1, "s": "}, {\"a\": 2}, {\"a\": 3"}, {"a": 2, "l": [{"a": 3}, {"a": 4, "b": {"c": 1}}]}, {"a": 3}]"#,
    r#"[{"a": 0, "b": {"c": [{"a": 1}, {"a": [{"a": 2}, {"a": "é"}]}]}}, {"a": "}, {\"a\"", "b": null}, {"a": 5}]"#,
    // The same in NDJSON (`}` then `{"a"`), and records with nothing between them.
    "{\"a\": 1, \"s\": \"}\\n{\\\"a\\\": 2}\"}\n{\"a\": 2, \"b\": {\"c\": 1}}{\"a\": 3}  {\"a\": 4}\n",
    "{\"a\": 1}\n1\n{\"a\": 2}true{\"a\": 3}\n\"x\"{\"a\": 4}",
];

/// Parts of records for [`record_array`]: most start with the same key, as real batches do.
const RECORD_PARTS: &[&str] = &[
    r#""a": 1"#,
    r#""a": -2.5e3"#,
    r#""b": {"c": 0.125}"#,
    r#""b": {"a": {"a": 1}, "c": [{"a": 2}, {"a": 3}]}"#,
    r#""s": "}, {\"a\": 4}""#,
    r#""s": "},{\"a\":\n"#,
    r#""l": [1, 2, {"a": 5}]"#,
    r#""v": [0.5, 1], "t": [1, 2, 3], "m": [true]"#,
    r#""c": "x""#,
    r#""a": "é😀""#,
];

/// A top-level array of records built from [`RECORD_PARTS`] (or, one time in three, the same
/// records as NDJSON), so that the threaded path has many records to cut between (and guesses
/// to get wrong).
fn record_array(rng: &mut SmallRng) -> Vec<u8> {
    let ndjson = rng.random_range(0..3) == 0;
    let mut text = String::from(if ndjson { "" } else { "[" });
    for index in 0..rng.random_range(1..40) {
        if index > 0 && ndjson {
            text.push_str(["\n", "\n", "\r\n", "\n\n", " ", ""][rng.random_range(0..6)]);
        } else if index > 0 {
            text.push_str(if rng.random_range(0..4) == 0 {
                ",\n "
            } else {
                ", "
            });
        }
        // A first key with an escape leaves the threaded path only "{" to guess starts by.
        text.push_str(if index == 0 && rng.random_range(0..3) == 0 {
            "{\"\\u0061\": 0"
        } else {
            "{\"a\": 0"
        });
        for _ in 0..rng.random_range(0..4) {
            text.push_str(", ");
            text.push_str(RECORD_PARTS[rng.random_range(0..RECORD_PARTS.len())]);
        }
        text.push('}');
    }
    if !ndjson {
        text.push(']');
    }
    text.into_bytes()
}

/// Bytes that matter to a JSON parser, so that mutations often stay near-valid.
const ALPHABET: &[u8] = b"{}[],:\"\\/ \n0123456789.eE+-ntrufalsx\x00\xff\xc3\xa9u";

fn mutate(rng: &mut SmallRng, input: &mut Vec<u8>) {
    match rng.random_range(0..7) {
        0 if !input.is_empty() => {
            let at = rng.random_range(0..input.len());
            input[at] = ALPHABET[rng.random_range(0..ALPHABET.len())];
        }
        1 => {
            let at = rng.random_range(0..=input.len());
            input.insert(at, ALPHABET[rng.random_range(0..ALPHABET.len())]);
        }
        2 if !input.is_empty() => {
            let start = rng.random_range(0..input.len());
            let end = rng.random_range(start..=input.len().min(start + 8));
            input.drain(start..end);
        }
        3 if !input.is_empty() => {
            let start = rng.random_range(0..input.len());
            let end = rng.random_range(start..=input.len());
            let copy = input[start..end].to_vec();
            let at = rng.random_range(0..=input.len());
            input.splice(at..at, copy);
        }
        4 => input.truncate(rng.random_range(0..=input.len())),
        5 if !input.is_empty() => {
            let at = rng.random_range(0..input.len());
            input[at] = rng.random();
        }
        _ => {
            let other = SEEDS[rng.random_range(0..SEEDS.len())].as_bytes();
            let at = rng.random_range(0..=input.len());
            input.splice(at..at, other.iter().copied());
        }
    }
}

#[test]
fn random_and_mutated_json_never_panics() {
    let (seconds, seed) = common::fuzz_settings();
    let mut rng = SmallRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..256 {
            let mut input = match rng.random_range(0..10) {
                0 => (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
                1..=4 => record_array(&mut rng),
                _ => SEEDS[rng.random_range(0..SEEDS.len())].as_bytes().to_vec(),
            };
            // Arrays of records are mutated less, so that most stay valid and are cut.
            for _ in 0..rng.random_range(0..6) {
                mutate(&mut rng, &mut input);
            }
            if rng.random_range(0..4) == 0 {
                check::check_json_records(&input);
            } else {
                let pieces = [rng.random_range(2..6), rng.random_range(6..40)];
                check::check_json_records_cut(&input, &pieces);
            }
            runs += 1;
        }
    }
    println!("fuzz: {runs} inputs in {seconds} s (seed {seed})");
}

/// Issue 22's record shapes (shuffled keys, many fields, pretty-printed, unused values, deep
/// paths, vocabularies, ragged lists, NDJSON, one object): the tensors equal the fields that
/// serde_json's DOM of the same bytes holds. Half the fuzz budget, beside the test above.
#[test]
fn record_shapes_match_the_dom() {
    let (seconds, seed) = common::fuzz_settings();
    let mut rng = shapes::Rng::new(seed ^ 0x5EED);
    let deadline = Instant::now() + Duration::from_millis(seconds * 500);
    let mut runs = 0u64;
    while runs < 20 || Instant::now() < deadline {
        for _ in 0..16 {
            shapes::check_shape(&mut rng);
            runs += 1;
        }
    }
    println!(
        "fuzz: {runs} record shapes in {} s (seed {seed})",
        seconds as f64 / 2.0
    );
}
