//! A bounded fuzz run of the InferRequest reader (`wire::decode_request`), which reads every
//! request the server receives: random requests must read back as they were written, and
//! mutated ones (bytes flipped, cut, inserted, spliced) must read or fail, never panic.
//!
//! By default it runs for 2 seconds; `INFERD_FUZZ_SECONDS` and `INFERD_FUZZ_SEED` as in
//! `fuzz_json_records.rs` (CI runs both through `make fuzz`).

use std::time::{Duration, Instant};

use _native::wire::{decode_request, Input};
mod common;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn text(rng: &mut SmallRng) -> String {
    const PIECES: &[&str] = &["", "wine", "input", "é", "😀", "a.b", "\u{0}", "x y"];
    (0..rng.random_range(0..3))
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

/// What a random request was written with.
struct Written {
    model: String,
    id: String,
    tensors: Vec<(String, i32, Vec<i64>, Vec<u8>)>,
    bytes: Vec<u8>,
}

fn random_request(rng: &mut SmallRng) -> Written {
    let model = text(rng);
    let id = text(rng);
    let mut tensors = Vec::new();
    let mut list = Vec::new();
    for _ in 0..rng.random_range(0..4) {
        let name = text(rng);
        let dtype = rng.random_range(-1..15);
        let shape: Vec<i64> = (0..rng.random_range(0..4))
            .map(|_| rng.random_range(-1..5))
            .collect();
        let data: Vec<u8> = (0..rng.random_range(0..40)).map(|_| rng.random()).collect();
        let mut tensor = Vec::new();
        if !name.is_empty() {
            field(&mut tensor, 1, name.as_bytes());
        }
        varint(&mut tensor, 2 << 3);
        varint(&mut tensor, dtype as i64 as u64);
        if rng.random_range(0..2) == 0 {
            let mut packed = Vec::new();
            for &size in &shape {
                varint(&mut packed, size as u64);
            }
            field(&mut tensor, 3, &packed);
        } else {
            for &size in &shape {
                varint(&mut tensor, 3 << 3);
                varint(&mut tensor, size as u64);
            }
        }
        field(&mut tensor, 4, &data);
        field(&mut list, 1, &tensor);
        tensors.push((name, dtype, shape, data));
    }
    let mut payload = Vec::new();
    field(&mut payload, 2, &list);
    let mut bytes = Vec::new();
    field(&mut bytes, 1, model.as_bytes());
    field(&mut bytes, 2, id.as_bytes());
    field(&mut bytes, 3, &payload);
    if rng.random_range(0..3) == 0 {
        field(&mut bytes, 4, b"\x0a\x00"); // parameters
    }
    Written {
        model,
        id,
        tensors,
        bytes,
    }
}

fn mutate(rng: &mut SmallRng, bytes: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..rng.random_range(1..4) {
        let at = rng.random_range(0..=bytes.len());
        match rng.random_range(0..5) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes.truncate(at),
            2 => bytes.insert(
                at,
                [0x00, 0x80, 0xff, 0x0a, 0x12, 0x1a][rng.random_range(0..6)],
            ),
            3 => {
                let from = rng.random_range(0..=other.len());
                bytes.splice(at..at, other[from..].iter().take(12).copied());
            }
            _ if at < bytes.len() => bytes[at] = rng.random(),
            _ => {}
        }
    }
}

#[test]
fn fuzz_wire() {
    let (seconds, seed) = common::fuzz_settings();
    let mut rng = SmallRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    let mut previous = Vec::new();
    while Instant::now() < deadline {
        for _ in 0..256 {
            let written = random_request(&mut rng);
            let read = decode_request(&written.bytes).expect("a well-formed request reads");
            assert_eq!(
                (read.model, read.id),
                (written.model.as_str(), written.id.as_str())
            );
            let Input::Tensors(tensors) = &read.input else {
                panic!("tensors written, {:?} read", read.input)
            };
            assert_eq!(tensors.len(), written.tensors.len());
            for (tensor, (name, dtype, shape, data)) in tensors.iter().zip(&written.tensors) {
                assert_eq!(
                    (tensor.name, tensor.dtype, &tensor.shape, tensor.data),
                    (name.as_str(), *dtype, shape, &data[..])
                );
            }
            let mut mutated = written.bytes.clone();
            mutate(&mut rng, &mut mutated, &previous);
            let _ = decode_request(&mutated); // any result; no panic
            previous = written.bytes;
            runs += 2;
        }
    }
    println!("fuzz_wire: {runs} inputs in {seconds} s (seed {seed}), no failure");
}
