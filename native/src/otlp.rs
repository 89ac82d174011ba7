//! OTLP trace messages: the `ExportTraceServiceRequest` that carries a batch of the server's
//! spans to a collector (opentelemetry-proto, `collector/trace/v1` and `trace/v1`), written
//! by hand as `wire` writes `InferResponse`. Plain Rust: `py_otlp` walks the Python side's
//! span tuples once and writes each span as it reads it into an [`Export`] (a request's
//! stages become child spans here, off the event loop, with [`Export::stage`]). Nothing is
//! copied out of Python first and nothing is allocated a span: lengths are computed, and a
//! span is written in a scratch buffer that is reused.
//!
//! Only what inferd's spans use is written; proto3 leaves empty and zero fields out.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use std::convert::Infallible;

use crate::wire::{len_field, put_bytes, put_tag, put_varint, varint_len, LEN};

// ExportTraceServiceRequest
const EXPORT_RESOURCE_SPANS: u32 = 1;
// ResourceSpans
const RESOURCE_SPANS_RESOURCE: u32 = 1;
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
// Resource
const RESOURCE_ATTRIBUTES: u32 = 1;
// ScopeSpans
const SCOPE_SPANS_SCOPE: u32 = 1;
const SCOPE_SPANS_SPANS: u32 = 2;
// InstrumentationScope
const SCOPE_NAME: u32 = 1;
const SCOPE_VERSION: u32 = 2;
// Span
const SPAN_TRACE_ID: u32 = 1;
const SPAN_SPAN_ID: u32 = 2;
const SPAN_TRACE_STATE: u32 = 3;
const SPAN_PARENT_SPAN_ID: u32 = 4;
const SPAN_NAME: u32 = 5;
const SPAN_KIND: u32 = 6;
const SPAN_START: u32 = 7;
const SPAN_END: u32 = 8;
pub const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_EVENTS: u32 = 11;
const SPAN_LINKS: u32 = 13;
const SPAN_STATUS: u32 = 15;
// Span.Event
const EVENT_TIME: u32 = 1;
const EVENT_NAME: u32 = 2;
pub const EVENT_ATTRIBUTES: u32 = 3;

// Span.Link
const LINK_TRACE_ID: u32 = 1;
const LINK_SPAN_ID: u32 = 2;
// Status
const STATUS_MESSAGE: u32 = 2;
const STATUS_CODE: u32 = 3;
// KeyValue and AnyValue
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;
const ANY_STRING: u32 = 1;
const ANY_BOOL: u32 = 2;
const ANY_INT: u32 = 3;
const ANY_DOUBLE: u32 = 4;

const VARINT: u8 = 0;
const I64: u8 = 1;

/// (message.field, number) for every field above, so that a test can compare them with the
/// descriptors opentelemetry-proto ships.
pub const FIELDS: &[(&str, u32)] = &[
    ("ExportTraceServiceRequest.resource_spans", EXPORT_RESOURCE_SPANS),
    ("ResourceSpans.resource", RESOURCE_SPANS_RESOURCE),
    ("ResourceSpans.scope_spans", RESOURCE_SPANS_SCOPE_SPANS),
    ("Resource.attributes", RESOURCE_ATTRIBUTES),
    ("ScopeSpans.scope", SCOPE_SPANS_SCOPE),
    ("ScopeSpans.spans", SCOPE_SPANS_SPANS),
    ("InstrumentationScope.name", SCOPE_NAME),
    ("InstrumentationScope.version", SCOPE_VERSION),
    ("Span.trace_id", SPAN_TRACE_ID),
    ("Span.span_id", SPAN_SPAN_ID),
    ("Span.trace_state", SPAN_TRACE_STATE),
    ("Span.parent_span_id", SPAN_PARENT_SPAN_ID),
    ("Span.name", SPAN_NAME),
    ("Span.kind", SPAN_KIND),
    ("Span.start_time_unix_nano", SPAN_START),
    ("Span.end_time_unix_nano", SPAN_END),
    ("Span.attributes", SPAN_ATTRIBUTES),
    ("Span.events", SPAN_EVENTS),
    ("Span.links", SPAN_LINKS),
    ("Span.status", SPAN_STATUS),
    ("Event.time_unix_nano", EVENT_TIME),
    ("Event.name", EVENT_NAME),
    ("Event.attributes", EVENT_ATTRIBUTES),
    ("Link.trace_id", LINK_TRACE_ID),
    ("Link.span_id", LINK_SPAN_ID),
    ("Status.message", STATUS_MESSAGE),
    ("Status.code", STATUS_CODE),
    ("KeyValue.key", KEY_VALUE_KEY),
    ("KeyValue.value", KEY_VALUE_VALUE),
    ("AnyValue.string_value", ANY_STRING),
    ("AnyValue.bool_value", ANY_BOOL),
    ("AnyValue.int_value", ANY_INT),
    ("AnyValue.double_value", ANY_DOUBLE),
];

/// An attribute's value (`AnyValue`'s scalar members), borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
}

/// A span's fields before its attributes, in field order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Head<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub trace_state: &'a str,
    pub parent_span_id: &'a [u8],
    pub name: &'a str,
    /// `Span.SpanKind`: 1 internal, 2 server.
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// What a request's stage spans inherit from the span that holds them.
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub trace_state: &'a str,
}

/// Room kept before the spans for the message's headers: three tags and lengths of at most
/// ten bytes each, besides the resource and the scope.
const HEADERS: usize = 3 * 11;

/// One `ExportTraceServiceRequest` being written: the spans under one resource
/// (`service.name`) and one instrumentation scope. Each span is written in [`Export::span`]
/// (its fields in order: [`put_head`], attributes, [`Export::event`]s, [`put_link`]s,
/// [`put_status`]) and then added with [`Export::push_span`]; the headers that go before
/// the spans, whose lengths depend on them, are written into the room kept for them at
/// [`Export::finish`].
pub struct Export {
    out: Vec<u8>,
    /// The resource and scope fields, written when the spans' length is known.
    resource: Vec<u8>,
    scope: Vec<u8>,
    start: usize,
    /// The span being written.
    pub span: Vec<u8>,
    nested: Vec<u8>,
}

impl Export {
    /// `capacity`: bytes the spans are expected to take.
    pub fn new(service: &str, scope: &str, version: &str, capacity: usize) -> Export {
        let mut resource = Vec::new();
        put_attribute(&mut resource, RESOURCE_ATTRIBUTES, "service.name", Value::Str(service));
        let mut scope_message = Vec::new();
        put_str(&mut scope_message, SCOPE_NAME, scope);
        put_str(&mut scope_message, SCOPE_VERSION, version);
        let mut scope = Vec::with_capacity(len_field(scope_message.len()));
        put_bytes(&mut scope, SCOPE_SPANS_SCOPE, &scope_message);
        let start = HEADERS + len_field(resource.len()) + scope.len();
        let mut out = Vec::with_capacity(start + capacity);
        out.resize(start, 0);
        Export { out, resource, scope, start, span: Vec::with_capacity(512), nested: Vec::with_capacity(64) }
    }

    /// Adds the span written in [`Export::span`], and clears it for the next.
    pub fn push_span(&mut self) {
        put_bytes(&mut self.out, SCOPE_SPANS_SPANS, &self.span);
        self.span.clear();
    }

    /// An event of the span being written: `attributes` writes its attributes (each with
    /// [`put_attribute`] as [`EVENT_ATTRIBUTES`]) into the buffer it is given.
    pub fn event<E>(&mut self, time_ns: u64, name: &str, attributes: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        self.nested.clear();
        put_fixed64(&mut self.nested, EVENT_TIME, time_ns);
        put_str(&mut self.nested, EVENT_NAME, name);
        attributes(&mut self.nested)?;
        put_bytes(&mut self.span, SPAN_EVENTS, &self.nested);
        Ok(())
    }

    /// One stage of a request, a child span of `parent` from `mark` (perf_counter seconds)
    /// for `ms` milliseconds, its own id drawn here; "total" makes no span. `chunks`: the
    /// perf_counter seconds at which a stream sent its chunks, the "stream" span's events.
    /// Returns where the stage ended, where the next one starts (the same float arithmetic
    /// the loop once did, so the same nanoseconds).
    #[allow(clippy::too_many_arguments)]
    pub fn stage(&mut self, parent: &Parent, stage: &str, model: &str, mark: f64, ms: f64, chunks: &[f64], clock_ns: i64) -> f64 {
        if stage == "total" {
            return mark;
        }
        let end = mark + ms / 1000.0;
        let span_id = random_span_id();
        let head = Head {
            trace_id: parent.trace_id,
            span_id: &span_id,
            trace_state: parent.trace_state,
            parent_span_id: parent.span_id,
            name: stage,
            kind: 1, // INTERNAL
            start_ns: epoch_ns(mark, clock_ns),
            end_ns: epoch_ns(end, clock_ns),
        };
        put_head(&mut self.span, &head);
        put_attribute(&mut self.span, SPAN_ATTRIBUTES, "inferd.model", Value::Str(model));
        if stage == "stream" {
            for (index, at) in chunks.iter().enumerate() {
                let _: Result<(), Infallible> = self.event(epoch_ns(*at, clock_ns), "chunk", |out| {
                    put_attribute(out, EVENT_ATTRIBUTES, "index", Value::Int(index as i64));
                    Ok(())
                });
            }
        }
        self.push_span();
        end
    }

    /// The whole message: its bytes are `buffer[start..]` of what this returns.
    pub fn finish(self) -> (Vec<u8>, usize) {
        let Export { mut out, resource, scope, start, .. } = self;
        let spans = out.len() - start;
        let scope_spans = scope.len() + spans;
        let resource_spans = len_field(resource.len()) + len_field(scope_spans);
        let mut headers = Vec::with_capacity(start);
        put_tag(&mut headers, EXPORT_RESOURCE_SPANS, LEN);
        put_varint(&mut headers, resource_spans as u64);
        put_bytes(&mut headers, RESOURCE_SPANS_RESOURCE, &resource);
        put_tag(&mut headers, RESOURCE_SPANS_SCOPE_SPANS, LEN);
        put_varint(&mut headers, scope_spans as u64);
        headers.extend_from_slice(&scope);
        let at = start - headers.len();
        out[at..start].copy_from_slice(&headers);
        (out, at)
    }
}

/// perf_counter seconds -> epoch nanoseconds, as Python's `int(seconds * 1e9) + clock_ns`.
fn epoch_ns(seconds: f64, clock_ns: i64) -> u64 {
    ((seconds * 1e9) as i64).saturating_add(clock_ns).max(0) as u64
}

/// A span id: random, never zero. SipHash of a counter under keys the OS drew for this
/// process: unique within the process, unpredictable, and no dependency.
pub fn random_span_id() -> [u8; 8] {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = KEYS.get_or_init(RandomState::new);
    loop {
        let id = keys.hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// A span's fields before its attributes.
pub fn put_head(out: &mut Vec<u8>, head: &Head) {
    put_nonempty(out, SPAN_TRACE_ID, head.trace_id);
    put_nonempty(out, SPAN_SPAN_ID, head.span_id);
    put_str(out, SPAN_TRACE_STATE, head.trace_state);
    put_nonempty(out, SPAN_PARENT_SPAN_ID, head.parent_span_id);
    put_str(out, SPAN_NAME, head.name);
    if head.kind != 0 {
        put_tag(out, SPAN_KIND, VARINT);
        put_varint(out, head.kind as i64 as u64);
    }
    put_fixed64(out, SPAN_START, head.start_ns);
    put_fixed64(out, SPAN_END, head.end_ns);
}

/// A link of the span being written (after its events).
pub fn put_link(out: &mut Vec<u8>, trace_id: &[u8], span_id: &[u8]) {
    let size = nonempty_size(trace_id) + nonempty_size(span_id);
    put_tag(out, SPAN_LINKS, LEN);
    put_varint(out, size as u64);
    put_nonempty(out, LINK_TRACE_ID, trace_id);
    put_nonempty(out, LINK_SPAN_ID, span_id);
}

/// The span's status (`Status.StatusCode`: 0 unset, 1 ok, 2 error), its last field; none
/// when unset without a message.
pub fn put_status(out: &mut Vec<u8>, code: i32, message: &str) {
    if code == 0 && message.is_empty() {
        return;
    }
    let code = code as i64 as u64;
    let size = nonempty_size(message.as_bytes()) + if code != 0 { 1 + varint_len(code) } else { 0 };
    put_tag(out, SPAN_STATUS, LEN);
    put_varint(out, size as u64);
    put_str(out, STATUS_MESSAGE, message);
    if code != 0 {
        put_tag(out, STATUS_CODE, VARINT);
        put_varint(out, code);
    }
}

/// A `KeyValue` as field `number`, its lengths computed: nothing allocated.
pub fn put_attribute(out: &mut Vec<u8>, number: u32, key: &str, value: Value) {
    let any = match value {
        Value::Str(text) => len_field(text.len()),
        Value::Bool(_) => 2,
        Value::Int(number) => 1 + varint_len(number as u64), // int64: two's complement, 10 bytes if negative
        Value::Double(_) => 9,
    };
    let pair = len_field(key.len()) + len_field(any);
    put_tag(out, number, LEN);
    put_varint(out, pair as u64);
    put_bytes(out, KEY_VALUE_KEY, key.as_bytes());
    put_tag(out, KEY_VALUE_VALUE, LEN);
    put_varint(out, any as u64);
    match value {
        Value::Str(text) => put_bytes(out, ANY_STRING, text.as_bytes()),
        Value::Bool(flag) => {
            put_tag(out, ANY_BOOL, VARINT);
            put_varint(out, u64::from(flag));
        }
        Value::Int(number) => {
            put_tag(out, ANY_INT, VARINT);
            put_varint(out, number as u64);
        }
        Value::Double(number) => {
            put_tag(out, ANY_DOUBLE, I64);
            out.extend_from_slice(&number.to_le_bytes());
        }
    }
}

fn put_str(out: &mut Vec<u8>, number: u32, text: &str) {
    put_nonempty(out, number, text.as_bytes());
}

fn put_nonempty(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_bytes(out, number, bytes);
    }
}

fn nonempty_size(bytes: &[u8]) -> usize {
    if bytes.is_empty() { 0 } else { len_field(bytes.len()) }
}

fn put_fixed64(out: &mut Vec<u8>, number: u32, value: u64) {
    if value != 0 {
        put_tag(out, number, I64);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The varint at `at`, and where it ends.
    fn varint(bytes: &[u8], mut at: usize) -> (usize, usize) {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            value |= usize::from(bytes[at] & 0x7f) << shift;
            shift += 7;
            at += 1;
            if bytes[at - 1] < 0x80 {
                return (value, at);
            }
        }
    }

    fn message(export: Export) -> Vec<u8> {
        let (out, start) = export.finish();
        out[start..].to_vec()
    }

    #[test]
    fn an_empty_batch_is_one_resource_and_one_scope() {
        let out = message(Export::new("svc", "inferd", "1", 0));
        // resource_spans { resource { attributes { key: "service.name" value { string_value: "svc" } } }
        //                  scope_spans { scope { name: "inferd" version: "1" } } }
        let any = [&[0x0a, 3][..], b"svc"].concat();
        let pair = [&[0x0a, 12][..], b"service.name", &[0x12, any.len() as u8], &any].concat();
        let resource = [&[0x0a, pair.len() as u8][..], &pair].concat();
        let scope = [&[0x0a, 6][..], b"inferd", &[0x12, 1], b"1"].concat();
        let scope_spans = [&[0x0a, scope.len() as u8][..], &scope].concat();
        let inner = [&[0x0a, resource.len() as u8][..], &resource, &[0x12, scope_spans.len() as u8], &scope_spans].concat();
        assert_eq!(out, [&[0x0a, inner.len() as u8][..], &inner].concat());
    }

    #[test]
    fn headers_fit_however_long_the_spans() {
        for spans in [0usize, 1, 100, 10_000] {
            let mut export = Export::new(&"s".repeat(300), "inferd", "1", 0);
            for _ in 0..spans {
                export.span.extend_from_slice(&[0x2a, 1, b'n']); // name: "n"
                export.push_span();
            }
            let out = message(export);
            // The outer length covers everything after its own tag and length.
            let (length, at) = varint(&out, 1);
            assert_eq!(length, out.len() - at);
            assert!(out.ends_with(&[0x12, 3, 0x2a, 1, b'n'][..if spans > 0 { 5 } else { 0 }]));
        }
    }

    #[test]
    fn stages_chain_and_total_makes_none() {
        let parent = Parent { trace_id: &[1; 16], span_id: &[2; 8], trace_state: "k=v" };
        let mut export = Export::new("svc", "inferd", "1", 0);
        let end = export.stage(&parent, "adapt", "m", 10.0, 1.5, &[], 1_000);
        assert_eq!(end, 10.0015);
        let before = export.out.len();
        assert_eq!(export.stage(&parent, "total", "m", end, 3.5, &[], 1_000), end);
        assert_eq!(export.out.len(), before);
        let (stream, other) = (export.out.len(), export.stage(&parent, "stream", "m", end, 2.0, &[10.002, 10.003], 1_000));
        assert_eq!(other, end + 0.002);
        // Two chunk events, each with its index.
        let written = &export.out[stream..];
        assert_eq!(written.windows(5).filter(|w| w == b"chunk").count(), 2);
        assert_eq!(written.windows(5).filter(|w| w == b"index").count(), 2);
    }

    #[test]
    fn span_ids_are_never_zero_and_do_not_repeat() {
        let ids: std::collections::HashSet<[u8; 8]> = (0..10_000).map(|_| random_span_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(!ids.contains(&[0; 8]));
    }

    #[test]
    fn negative_ints_take_ten_bytes() {
        let mut out = Vec::new();
        put_attribute(&mut out, 9, "k", Value::Int(-1));
        // tag, len, (key: 3 bytes), (value tag, len, (int tag + 10 bytes))
        assert_eq!(out.len(), 2 + 3 + 2 + 11);
    }

    #[test]
    fn attribute_lengths_are_the_written_lengths() {
        for value in [Value::Str(""), Value::Str(&"x".repeat(200)), Value::Bool(true), Value::Int(0), Value::Int(1 << 40), Value::Double(-0.5)] {
            let mut out = Vec::new();
            put_attribute(&mut out, 9, "key", value);
            let (length, at) = varint(&out, 1);
            assert_eq!(length, out.len() - at, "{value:?}");
        }
    }
}
