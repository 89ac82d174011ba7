//! A bounded fuzz run of the Open Inference Protocol's ModelInferRequest reader
//! (`oip_wire::decode_infer_request` and `plan_inputs`), which reads every ModelInfer and
//! ModelStreamInfer request the server receives: random requests must read back as they were
//! written (and be planned when well formed), and mutated ones (bytes flipped, cut, inserted,
//! spliced) must read or fail, never panic.
//!
//! By default it runs for 2 seconds; `INFERD_FUZZ_SECONDS` and `INFERD_FUZZ_SEED` as in
//! `fuzz_json_records.rs` (`make fuzz` runs it for `FUZZ_OIP_SECONDS`).

use std::time::{Duration, Instant};

use _native::oip_wire::{decode_infer_request, parameter, plan_inputs, Parameter, TensorData};
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

const DATATYPES: &[(&str, usize)] = &[
    ("BOOL", 1),
    ("UINT8", 1),
    ("UINT16", 2),
    ("UINT32", 4),
    ("UINT64", 8),
    ("INT8", 1),
    ("INT16", 2),
    ("INT32", 4),
    ("INT64", 8),
    ("FP16", 2),
    ("FP32", 4),
    ("FP64", 8),
    ("BF16", 2),
    ("BYTES", 0),
];

/// What a random request was written with.
struct Written {
    model: String,
    id: String,
    inputs: Vec<(String, &'static str, Vec<i64>, Vec<u8>)>,
    parameter: (String, i64),
    bytes: Vec<u8>,
}

fn random_request(rng: &mut SmallRng) -> Written {
    let model = text(rng);
    let id = text(rng);
    let mut bytes = Vec::new();
    field(&mut bytes, 1, model.as_bytes());
    field(&mut bytes, 3, id.as_bytes());
    let mut inputs = Vec::new();
    let mut raws = Vec::new();
    for index in 0..rng.random_range(1..4) {
        let name = format!("{}{index}", text(rng)); // distinct
        let (datatype, size) = DATATYPES[rng.random_range(0..DATATYPES.len())];
        let shape: Vec<i64> = (0..rng.random_range(1..4))
            .map(|_| rng.random_range(0..4))
            .collect();
        let count = shape.iter().product::<i64>() as usize;
        let data: Vec<u8> = if size == 0 {
            let mut data = Vec::new();
            for _ in 0..count {
                let length = rng.random_range(0..4u32);
                data.extend_from_slice(&length.to_le_bytes());
                data.extend((0..length).map(|_| rng.random::<u8>()));
            }
            data
        } else if datatype == "BOOL" {
            (0..count).map(|_| rng.random_range(0..2)).collect()
        } else {
            (0..count * size).map(|_| rng.random()).collect()
        };
        let mut tensor = Vec::new();
        field(&mut tensor, 1, name.as_bytes());
        field(&mut tensor, 2, datatype.as_bytes());
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
        field(&mut bytes, 5, &tensor);
        raws.push(data.clone());
        inputs.push((name, datatype, shape, data));
    }
    let key = text(rng);
    let value = rng.random::<i64>();
    let mut parameter = Vec::new();
    varint(&mut parameter, 2 << 3);
    varint(&mut parameter, value as u64);
    let mut entry = Vec::new();
    field(&mut entry, 1, key.as_bytes());
    field(&mut entry, 2, &parameter);
    field(&mut bytes, 4, &entry);
    let mut output = Vec::new();
    field(&mut output, 1, b"probabilities");
    field(&mut output, 2, &entry);
    field(&mut bytes, 6, &output);
    for raw in &raws {
        field(&mut bytes, 7, raw);
    }
    Written {
        model,
        id,
        inputs,
        parameter: (key, value),
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
                [0x00, 0x80, 0xff, 0x0a, 0x12, 0x1a, 0x22, 0x2a, 0x3a][rng.random_range(0..9)],
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
fn fuzz_oip() {
    let (seconds, seed) = common::fuzz_settings();
    let mut rng = SmallRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    let mut previous = Vec::new();
    while Instant::now() < deadline {
        for _ in 0..256 {
            let written = random_request(&mut rng);
            let read = decode_infer_request(&written.bytes).expect("a well-formed request reads");
            assert_eq!(
                (read.model_name, read.id),
                (written.model.as_str(), written.id.as_str())
            );
            let (key, value) = &written.parameter;
            assert_eq!(
                parameter(&read.parameters, key),
                Some(Parameter::Int64(*value))
            );
            assert_eq!(read.outputs[0].name, "probabilities");
            assert_eq!(read.inputs.len(), written.inputs.len());
            for (input, (name, datatype, shape, _)) in read.inputs.iter().zip(&written.inputs) {
                assert_eq!(
                    (input.name, input.datatype, &input.shape),
                    (name.as_str(), *datatype, shape)
                );
            }
            let planned = plan_inputs(&read).expect("a well-formed request is planned");
            for (tensor, (_, _, _, data)) in planned.iter().zip(&written.inputs) {
                match &tensor.data {
                    TensorData::Raw(raw) => assert_eq!(raw, data),
                    TensorData::Elements(elements) => {
                        let count: usize = tensor.dims.iter().product();
                        assert_eq!(elements.len(), count);
                    }
                }
            }
            let mut mutated = written.bytes.clone();
            mutate(&mut rng, &mut mutated, &previous);
            if let Ok(request) = decode_infer_request(&mutated) {
                let _ = plan_inputs(&request); // any result; no panic
            }
            previous = written.bytes;
            runs += 2;
        }
    }
    println!("fuzz_oip: {runs} inputs in {seconds} s (seed {seed}), no failure");
}
