//! cargo +nightly fuzz run json_records -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../check.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check_json_records(data));
