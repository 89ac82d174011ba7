//! cargo +nightly fuzz run record_shapes -- -max_total_time=60
//!
//! The fuzzer's bytes seed a record shape (fuzz/shapes.rs): its tensors must equal the fields
//! of serde_json's DOM of the same JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../shapes.rs"]
mod shapes;

fuzz_target!(|data: &[u8]| shapes::check_shape(&mut shapes::Rng::from_bytes(data)));
