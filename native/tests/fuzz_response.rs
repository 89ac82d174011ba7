//! A bounded fuzz run of the InferResponse writer (`wire::encode_response`), which writes every
//! tensor and JSON answer the server sends: random answers (names, dtypes, shapes and data of
//! every size, timings of every float) must be written without a panic and read back as they
//! were given, by the request reader (fields 1 to 3 are numbered alike) and a timings walker.
//!
//! By default it runs for 2 seconds; `INFERD_FUZZ_SECONDS` and `INFERD_FUZZ_SEED` as in
//! `fuzz_json_records.rs` (CI runs it through `make fuzz`).

use std::time::{Duration, Instant};

use _native::wire::{decode_request, encode_response, Answer, Input, OutTensor};
mod common;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn text(rng: &mut SmallRng) -> String {
    const PIECES: &[&str] = &[
        "", "wine", "output", "é", "😀", "a.b", "\u{0}", "x y", "run",
    ];
    (0..rng.random_range(0..4))
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

/// A size whose varint takes 1 to 9 bytes (the request reader reads sizes as i64).
fn size(rng: &mut SmallRng) -> usize {
    match rng.random_range(0..4) {
        0 => rng.random_range(0..3),
        1 => rng.random_range(0..300),
        2 => rng.random_range(0..1 << 21),
        _ => rng.random_range(0..=i64::MAX as u64) as usize,
    }
}

fn timing(rng: &mut SmallRng) -> f64 {
    match rng.random_range(0..6) {
        0 => 0.0,
        1 => -0.0,
        2 => f64::NAN,
        3 => f64::INFINITY,
        4 => f64::from_bits(rng.random()),
        _ => rng.random_range(0.0..1e4),
    }
}

/// A tensor as written: name, dtype, shape, data.
type Tensor = (String, i32, Vec<usize>, Vec<u8>);

/// What a response was written with.
struct Written {
    model: String,
    id: String,
    tensors: Option<Vec<Tensor>>,
    json: Vec<u8>,
    timings: Vec<(String, f64)>,
}

fn random_answer(rng: &mut SmallRng) -> Written {
    let tensors = (rng.random_range(0..4) != 0).then(|| {
        (0..rng.random_range(0..4))
            .map(|_| {
                let dtype = match rng.random_range(0..4) {
                    0 => rng.random(),
                    _ => rng.random_range(-1..15),
                };
                let shape = (0..rng.random_range(0..5)).map(|_| size(rng)).collect();
                let data = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
                (text(rng), dtype, shape, data)
            })
            .collect()
    });
    let json = (0..rng.random_range(0..32)).map(|_| rng.random()).collect();
    let timings = (0..rng.random_range(0..4))
        .map(|_| (text(rng), timing(rng)))
        .collect();
    Written {
        model: text(rng),
        id: text(rng),
        tensors,
        json,
        timings,
    }
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
    }
    panic!("a varint of more than 10 bytes")
}

/// The response's top-level fields 5 (timings: stage, ms), read by hand: the request reader
/// has no field 5. Fails on anything but what the writer is meant to write.
fn timings_of(bytes: &[u8]) -> Vec<(String, u64)> {
    let mut timings = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let tag = varint(bytes, &mut at);
        assert_eq!(tag & 7, 2, "every top-level field is length-delimited");
        let length = varint(bytes, &mut at) as usize;
        let field = &bytes[at..at + length];
        at += length;
        if tag >> 3 != 5 {
            continue;
        }
        let (mut stage, mut ms, mut inner) = (String::new(), 0u64, 0);
        while inner < field.len() {
            match varint(field, &mut inner) {
                0x0a => {
                    let length = varint(field, &mut inner) as usize;
                    stage = String::from_utf8(field[inner..inner + length].to_vec()).unwrap();
                    inner += length;
                }
                0x11 => {
                    ms = u64::from_le_bytes(field[inner..inner + 8].try_into().unwrap());
                    inner += 8;
                }
                other => panic!("unexpected tag {other} in a timing"),
            }
        }
        timings.push((stage, ms));
    }
    timings
}

fn check(written: &Written) {
    let tensors: Vec<OutTensor<'_>> = written
        .tensors
        .iter()
        .flatten()
        .map(|(name, dtype, shape, data)| OutTensor {
            name,
            dtype: *dtype,
            shape,
            data,
        })
        .collect();
    let answer = match written.tensors {
        Some(_) => Answer::Tensors(&tensors),
        None => Answer::Json(&written.json),
    };
    let timings: Vec<(&str, f64)> = written
        .timings
        .iter()
        .map(|(stage, ms)| (stage.as_str(), *ms))
        .collect();
    let bytes = encode_response(&written.model, &written.id, &answer, &timings);
    let read = decode_request(&bytes).expect("a written response reads");
    assert_eq!(
        (read.model, read.id),
        (written.model.as_str(), written.id.as_str())
    );
    match (&read.input, &written.tensors) {
        (Input::Json(json), None) => assert_eq!(*json, &written.json[..]),
        (Input::Tensors(read), Some(tensors)) => {
            assert_eq!(read.len(), tensors.len());
            for (tensor, (name, dtype, shape, data)) in read.iter().zip(tensors) {
                let shape: Vec<i64> = shape.iter().map(|&size| size as i64).collect();
                assert_eq!(
                    (tensor.name, tensor.dtype, &tensor.shape, tensor.data),
                    (name.as_str(), *dtype, &shape, &data[..])
                );
            }
        }
        (input, _) => panic!("{input:?} read back"),
    }
    let expected: Vec<(String, u64)> = written
        .timings
        .iter()
        .map(|(stage, ms)| (stage.clone(), ms.to_bits()))
        .collect();
    assert_eq!(timings_of(&bytes), expected);
}

#[test]
fn fuzz_response() {
    let (seconds, seed) = common::fuzz_settings();
    let mut rng = SmallRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..256 {
            check(&random_answer(&mut rng));
            runs += 1;
        }
    }
    println!("fuzz_response: {runs} answers in {seconds} s (seed {seed}), no failure");
}
