//! OTLP trace messages: the `ExportTraceServiceRequest` that carries a batch of the server's
//! spans to a collector (opentelemetry-proto, `collector/trace/v1` and `trace/v1`), written
//! by hand as `wire` writes `InferResponse`. Plain Rust: `py_otlp` reads the Python side's
//! span tuples into [`Record`]s, and with the GIL released [`expand`]s them into [`Span`]s
//! (a request's stages become child spans here, off the event loop) and calls
//! [`encode_export`].
//!
//! Only what inferd's spans use is written; proto3 leaves empty and zero fields out.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::wire::{put_bytes, put_tag, put_varint};

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
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_EVENTS: u32 = 11;
const SPAN_LINKS: u32 = 13;
const SPAN_STATUS: u32 = 15;
// Span.Event
const EVENT_TIME: u32 = 1;
const EVENT_NAME: u32 = 2;
const EVENT_ATTRIBUTES: u32 = 3;
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

/// An attribute's value (`AnyValue`'s scalar members).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
}

pub type Attributes = Vec<(String, Value)>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub name: String,
    pub time_ns: u64,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub trace_state: String,
    pub name: String,
    /// `Span.SpanKind`: 1 internal, 2 server.
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    /// (trace id, span id) of each linked span.
    pub links: Vec<(Vec<u8>, Vec<u8>)>,
    /// `Status.StatusCode` (0 unset, 1 ok, 2 error) and its message.
    pub status: (i32, String),
}

/// One request's stages as the engine timed them: each a child span of the span that holds
/// them, starting where the one before ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stages {
    /// The model (each stage span's `inferd.model`).
    pub model: String,
    /// When the request started, in `time.perf_counter()` seconds.
    pub started: f64,
    /// (stage, milliseconds) in order; "total" makes no span.
    pub timings: Vec<(String, f64)>,
    /// The perf_counter seconds at which a stream sent each chunk: the "stream" span's events.
    pub chunks: Vec<f64>,
}

/// What the tracing thread hands over: a span (with the stages of the requests it served),
/// or the stages of a span that was written before them.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Span(Span, Vec<Stages>),
    Stages { trace_id: Vec<u8>, parent_span_id: Vec<u8>, trace_state: String, stages: Vec<Stages> },
}

/// The spans of `records`, each request's stages made into child spans with ids of their
/// own; `clock_ns`: the epoch nanoseconds at perf_counter 0.
pub fn expand(records: Vec<Record>, clock_ns: i64) -> Vec<Span> {
    let mut spans = Vec::with_capacity(records.len() * 6);
    for record in records {
        match record {
            Record::Span(span, stages) => {
                let (trace_id, span_id, trace_state) = (span.trace_id.clone(), span.span_id.clone(), span.trace_state.clone());
                spans.push(span);
                for request in &stages {
                    stage_spans(&trace_id, &span_id, &trace_state, request, clock_ns, &mut spans);
                }
            }
            Record::Stages { trace_id, parent_span_id, trace_state, stages } => {
                for request in &stages {
                    stage_spans(&trace_id, &parent_span_id, &trace_state, request, clock_ns, &mut spans);
                }
            }
        }
    }
    spans
}

/// The stage spans of one request, as `inferd.tracing` made them on the loop before (the
/// same float arithmetic, so the same nanoseconds).
fn stage_spans(trace_id: &[u8], parent: &[u8], trace_state: &str, stages: &Stages, clock_ns: i64, out: &mut Vec<Span>) {
    let mut mark = stages.started;
    for (stage, ms) in &stages.timings {
        if stage == "total" {
            continue;
        }
        let end = mark + ms / 1000.0;
        let events = if stage == "stream" {
            let chunk = |(index, at): (usize, &f64)| Event {
                name: "chunk".to_owned(),
                time_ns: epoch_ns(*at, clock_ns),
                attributes: vec![("index".to_owned(), Value::Int(index as i64))],
            };
            stages.chunks.iter().enumerate().map(chunk).collect()
        } else {
            Vec::new()
        };
        out.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: random_span_id().to_vec(),
            parent_span_id: parent.to_vec(),
            trace_state: trace_state.to_owned(),
            name: stage.clone(),
            kind: 1, // INTERNAL
            start_ns: epoch_ns(mark, clock_ns),
            end_ns: epoch_ns(end, clock_ns),
            attributes: vec![("inferd.model".to_owned(), Value::Str(stages.model.clone()))],
            events,
            links: Vec::new(),
            status: (0, String::new()),
        });
        mark = end;
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

/// One `ExportTraceServiceRequest`: the spans under one resource (`service.name`) and one
/// instrumentation scope.
pub fn encode_export(service: &str, scope: &str, version: &str, spans: &[Span]) -> Vec<u8> {
    let mut resource = Vec::new();
    put_attribute(&mut resource, RESOURCE_ATTRIBUTES, "service.name", &Value::Str(service.to_owned()));
    let mut scope_message = Vec::new();
    put_str(&mut scope_message, SCOPE_NAME, scope);
    put_str(&mut scope_message, SCOPE_VERSION, version);
    let mut scope_spans = Vec::with_capacity(spans.len() * 160);
    put_bytes(&mut scope_spans, SCOPE_SPANS_SCOPE, &scope_message);
    let mut span_buffer = Vec::with_capacity(256);
    for span in spans {
        span_buffer.clear();
        write_span(&mut span_buffer, span);
        put_bytes(&mut scope_spans, SCOPE_SPANS_SPANS, &span_buffer);
    }
    let mut resource_spans = Vec::with_capacity(scope_spans.len() + resource.len() + 16);
    put_bytes(&mut resource_spans, RESOURCE_SPANS_RESOURCE, &resource);
    put_bytes(&mut resource_spans, RESOURCE_SPANS_SCOPE_SPANS, &scope_spans);
    let mut out = Vec::with_capacity(resource_spans.len() + 8);
    put_bytes(&mut out, EXPORT_RESOURCE_SPANS, &resource_spans);
    out
}

fn write_span(out: &mut Vec<u8>, span: &Span) {
    put_nonempty(out, SPAN_TRACE_ID, &span.trace_id);
    put_nonempty(out, SPAN_SPAN_ID, &span.span_id);
    put_str(out, SPAN_TRACE_STATE, &span.trace_state);
    put_nonempty(out, SPAN_PARENT_SPAN_ID, &span.parent_span_id);
    put_str(out, SPAN_NAME, &span.name);
    if span.kind != 0 {
        put_tag(out, SPAN_KIND, VARINT);
        put_varint(out, span.kind as i64 as u64);
    }
    put_fixed64(out, SPAN_START, span.start_ns);
    put_fixed64(out, SPAN_END, span.end_ns);
    for (key, value) in &span.attributes {
        put_attribute(out, SPAN_ATTRIBUTES, key, value);
    }
    let mut nested = Vec::new();
    for event in &span.events {
        nested.clear();
        put_fixed64(&mut nested, EVENT_TIME, event.time_ns);
        put_str(&mut nested, EVENT_NAME, &event.name);
        for (key, value) in &event.attributes {
            put_attribute(&mut nested, EVENT_ATTRIBUTES, key, value);
        }
        put_bytes(out, SPAN_EVENTS, &nested);
    }
    for (trace_id, span_id) in &span.links {
        nested.clear();
        put_nonempty(&mut nested, LINK_TRACE_ID, trace_id);
        put_nonempty(&mut nested, LINK_SPAN_ID, span_id);
        put_bytes(out, SPAN_LINKS, &nested);
    }
    let (code, message) = &span.status;
    if *code != 0 || !message.is_empty() {
        nested.clear();
        put_str(&mut nested, STATUS_MESSAGE, message);
        if *code != 0 {
            put_tag(&mut nested, STATUS_CODE, VARINT);
            put_varint(&mut nested, *code as i64 as u64);
        }
        put_bytes(out, SPAN_STATUS, &nested);
    }
}

fn put_attribute(out: &mut Vec<u8>, number: u32, key: &str, value: &Value) {
    let mut any = Vec::with_capacity(16);
    match value {
        Value::Str(text) => put_bytes(&mut any, ANY_STRING, text.as_bytes()),
        Value::Bool(flag) => {
            put_tag(&mut any, ANY_BOOL, VARINT);
            put_varint(&mut any, u64::from(*flag));
        }
        Value::Int(number) => {
            put_tag(&mut any, ANY_INT, VARINT);
            put_varint(&mut any, *number as u64); // int64: two's complement, 10 bytes if negative
        }
        Value::Double(number) => {
            put_tag(&mut any, ANY_DOUBLE, I64);
            any.extend_from_slice(&number.to_le_bytes());
        }
    }
    let mut pair = Vec::with_capacity(key.len() + any.len() + 4);
    put_bytes(&mut pair, KEY_VALUE_KEY, key.as_bytes());
    put_bytes(&mut pair, KEY_VALUE_VALUE, &any);
    put_bytes(out, number, &pair);
}

fn put_str(out: &mut Vec<u8>, number: u32, text: &str) {
    put_nonempty(out, number, text.as_bytes());
}

fn put_nonempty(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_bytes(out, number, bytes);
    }
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

    #[test]
    fn an_empty_batch_is_one_resource_and_one_scope() {
        let out = encode_export("svc", "inferd", "1", &[]);
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
    fn stages_become_chained_children_and_total_makes_none() {
        let parent = Span { trace_id: vec![1; 16], span_id: vec![2; 8], trace_state: "k=v".into(), ..Span::default() };
        let stages = Stages {
            model: "m".into(),
            started: 10.0,
            timings: vec![("adapt".into(), 1.5), ("stream".into(), 2.0), ("total".into(), 3.5)],
            chunks: vec![10.002, 10.003],
        };
        let spans = expand(vec![Record::Span(parent.clone(), vec![stages])], 1_000);
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[0], parent);
        let (adapt, stream) = (&spans[1], &spans[2]);
        assert_eq!((adapt.name.as_str(), adapt.kind), ("adapt", 1));
        assert_eq!((adapt.start_ns, adapt.end_ns), (10_000_001_000, 10_001_501_000));
        assert_eq!(stream.start_ns, adapt.end_ns);
        assert_eq!(stream.events.iter().map(|event| event.attributes[0].1.clone()).collect::<Vec<_>>(), [Value::Int(0), Value::Int(1)]);
        for span in [adapt, stream] {
            assert_eq!((&span.trace_id, &span.parent_span_id, span.trace_state.as_str()), (&parent.trace_id, &parent.span_id, "k=v"));
            assert_eq!(span.attributes, [("inferd.model".to_owned(), Value::Str("m".into()))]);
        }
        assert_ne!(adapt.span_id, stream.span_id);
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
        put_attribute(&mut out, 9, "k", &Value::Int(-1));
        // tag, len, (key: 3 bytes), (value tag, len, (int tag + 10 bytes))
        assert_eq!(out.len(), 2 + 3 + 2 + 11);
    }
}
