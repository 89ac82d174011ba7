//! The core's error paths give back every byte they allocate: a counting global allocator
//! measures the bytes live before and after many rounds of bad input (after one round to warm
//! up), for each entry point that the bindings call with what a client sent.
//!
//! One test function only: the counter is global, and tests of one binary run in parallel.
//! The threaded parser is left out for that reason (rayon's pool keeps its threads' memory).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use _native::batch::{plan_concat, split_ranges, TensorMeta};
use _native::records::{count_scalars, parse_json};
use _native::schema::{FieldSpec, Schema, SchemaSpec};
use _native::wire::decode_request;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(pointer, layout)
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        LIVE.fetch_add(size as isize - layout.size() as isize, Ordering::Relaxed);
        System.realloc(pointer, layout, size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ROUNDS: usize = 2_000;

/// Bytes still live after `ROUNDS` calls of `work` (after one call to warm up), the least of
/// three tries: the counter is global, and the test harness's own thread allocates now and then
/// (900 bytes once, in CI), while a leak of `work` leaves bytes behind in every try.
fn left_behind(work: &mut dyn FnMut()) -> isize {
    work();
    (0..3)
        .map(|_| {
            let before = LIVE.load(Ordering::Relaxed);
            for _ in 0..ROUNDS {
                work();
            }
            LIVE.load(Ordering::Relaxed) - before
        })
        .min()
        .expect("three tries")
}

fn schema() -> Schema {
    let mut count = FieldSpec::new("count");
    count.dtype = Some("int64".into());
    count.tensor = Some("count".into());
    Schema::compile(&SchemaSpec::new(vec![FieldSpec::new("a"), FieldSpec::new("b.c"), count]))
        .expect("a valid schema")
}

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

/// An InferRequest for "wine" whose input is one tensor with the given shape and data.
fn tensor_request(shape: &[u64], data: &[u8]) -> Vec<u8> {
    let mut tensor = Vec::new();
    field(&mut tensor, 1, b"input");
    tensor.extend_from_slice(&[2 << 3, 11]); // dtype FLOAT32
    let mut packed = Vec::new();
    for &size in shape {
        varint(&mut packed, size);
    }
    field(&mut tensor, 3, &packed);
    field(&mut tensor, 4, data);
    let mut tensors = Vec::new();
    field(&mut tensors, 1, &tensor);
    let mut payload = Vec::new();
    field(&mut payload, 2, &tensors);
    let mut request = Vec::new();
    field(&mut request, 1, b"wine");
    field(&mut request, 3, &payload);
    request
}

#[test]
fn error_paths_leave_no_allocation_behind() {
    let schema = schema();
    let bad_json: Vec<(&str, &[u8])> = vec![
        ("syntax", br#"[{"a": 1, "b": {"c": 2}, "count": 3}, {"a": "#),
        ("missing field", br#"[{"a": 1, "count": 3}]"#),
        ("wrong type", br#"{"a": "one", "b": {"c": 2}, "count": 3}"#),
        ("out of range", br#"{"a": 1, "b": {"c": 2}, "count": 1e400}"#),
        ("container", br#"{"a": [1], "b": 2, "count": 3}"#),
        ("not records", b"42"),
        ("control byte", b"{\"a\": \"\x01\"}"),
    ];
    for (what, data) in &bad_json {
        let leaked = left_behind(&mut || assert!(parse_json(&schema, data).is_err()));
        assert_eq!(leaked, 0, "parse_json, {what}: {leaked} bytes left behind");
        let leaked = left_behind(&mut || {
            let _ = count_scalars(data);
        });
        assert_eq!(leaked, 0, "count_scalars, {what}: {leaked} bytes left behind");
    }

    let bad_requests: Vec<(&str, Vec<u8>)> = vec![
        ("truncated varint", vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        ("length past the end", vec![0x0a, 0x20, b'w']),
        ("wrong wire type", vec![0x0d, 1, 2, 3, 4]),
        ("cut tensor", {
            let mut request = tensor_request(&[1, 13], &[0; 52]);
            request.truncate(request.len() - 7);
            request
        }),
        ("huge shape", tensor_request(&[0, 1 << 62, 1 << 62], &[])),
    ];
    for (what, data) in &bad_requests {
        let leaked = left_behind(&mut || {
            let _ = decode_request(data);
        });
        assert_eq!(leaked, 0, "decode_request, {what}: {leaked} bytes left behind");
    }

    let leaked = left_behind(&mut || {
        let _ = Schema::compile(&SchemaSpec::new(vec![FieldSpec::new("a"), FieldSpec::new("a")]));
        let mut bad_dtype = FieldSpec::new("x");
        bad_dtype.dtype = Some("complex256".into());
        let _ = Schema::compile(&SchemaSpec::new(vec![bad_dtype]));
    });
    assert_eq!(leaked, 0, "Schema::compile: {leaked} bytes left behind");

    let leaked = left_behind(&mut || {
        let first = vec![TensorMeta::new("x", "float32", vec![2, 3])];
        let other = vec![TensorMeta::new("x", "float32", vec![2, 4])];
        assert!(plan_concat(&[first, other]).is_err());
        assert!(split_ranges(&[0, 5, 3], 4, "x").is_err());
    });
    assert_eq!(leaked, 0, "plan_concat/split_ranges: {leaked} bytes left behind");
}
