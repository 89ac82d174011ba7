//! The bindings of `otlp`: the tracing thread's span tuples (`inferd.tracing`), each written
//! as it is read, in one pass with the GIL held: nothing is copied out of Python first, and
//! the GIL is let go between slices of records so that the event loop never waits long.
//!
//! A span tuple: `(trace_id, span_id, parent_span_id, trace_state, name, kind, start_ns,
//! end_ns, attributes, events, links, status)`, and optionally a 13th item, the stages of
//! the requests it served (each its child spans); attributes a dict of str to str, bool, int
//! or float (anything else is written as its `str()`); events `(name, time_ns, attributes)`;
//! links `(trace_id, span_id)`; status `(code, message)`. Stages: a sequence of `(model,
//! started, timings, chunks)`: perf_counter seconds, (stage, ms) pairs, the chunks'
//! perf_counter seconds. A 4-tuple `(trace_id, parent_span_id, trace_state, stages)` is the
//! stages alone, of a span recorded before them.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyString, PyTuple};

use crate::otlp::{self, Export, Head, Parent, Value};

/// Records written between two moments the GIL is let go.
const SLICE: usize = 256;
/// Bytes a record is expected to take (a call's span and its four stages).
const RECORD_BYTES: usize = 640;

/// The export of `records`, and how many of them it holds: all, unless `max_items` (spans
/// and events together, 0: no limit) stops it first; never none while there are any.
pub fn encode_spans<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyAny>,
    service: &str,
    scope: &str,
    version: &str,
    clock_ns: i64,
    max_items: usize,
) -> PyResult<(Bound<'py, PyBytes>, usize)> {
    let expected = records.len().unwrap_or(0);
    let mut export = Export::new(service, scope, version, expected * RECORD_BYTES);
    let mut chunks = Vec::new();
    let (mut taken, mut items) = (0usize, 0usize);
    for record in records.try_iter()? {
        let record = record?;
        let record = record.cast::<PyTuple>()?;
        if max_items > 0 {
            let count = items_of(record)?;
            if taken > 0 && items + count > max_items {
                break;
            }
            items += count;
        }
        write_record(&mut export, record, clock_ns, &mut chunks)?;
        taken += 1;
        if taken % SLICE == 0 {
            py.detach(|| ()); // the loop's turn, if it waits for the GIL
        }
    }
    let (out, start) = export.finish();
    Ok((PyBytes::new(py, &out[start..]), taken))
}

/// The spans and events a record makes: its own span and events, and its stages' spans and
/// chunks ("total" counted too: an upper bound).
fn items_of(record: &Bound<'_, PyTuple>) -> PyResult<usize> {
    let (own, stages) = if record.len() == 4 {
        (0, Some(record.get_item(3)?))
    } else {
        (1 + record.get_item(9)?.len()?, if record.len() > 12 { Some(record.get_item(12)?) } else { None })
    };
    let mut count = own;
    if let Some(stages) = stages {
        for request in stages.try_iter()? {
            let request = request?;
            count += request.get_item(2)?.len()? + request.get_item(3)?.len()?;
        }
    }
    Ok(count)
}

fn write_record(export: &mut Export, record: &Bound<'_, PyTuple>, clock_ns: i64, chunks: &mut Vec<f64>) -> PyResult<()> {
    let item = |index: usize| record.get_item(index);
    if record.len() == 4 {
        let (trace_id, parent, state) = (item(0)?, item(1)?, item(2)?);
        let parent = Parent { trace_id: bytes_of(&trace_id)?, span_id: bytes_of(&parent)?, trace_state: str_of(&state)? };
        return write_stages(export, &parent, &item(3)?, clock_ns, chunks);
    }
    let (trace_id, span_id, parent_id, state, name) = (item(0)?, item(1)?, item(2)?, item(3)?, item(4)?);
    let head = Head {
        trace_id: bytes_of(&trace_id)?,
        span_id: bytes_of(&span_id)?,
        trace_state: str_of(&state)?,
        parent_span_id: bytes_of(&parent_id)?,
        name: str_of(&name)?,
        kind: item(5)?.extract()?,
        start_ns: item(6)?.extract()?,
        end_ns: item(7)?.extract()?,
    };
    otlp::put_head(&mut export.span, &head);
    write_attributes(&mut export.span, otlp::SPAN_ATTRIBUTES, &item(8)?)?;
    for event in item(9)?.try_iter()? {
        let event = event?;
        let (event_name, time_ns, attributes) = (event.get_item(0)?, event.get_item(1)?.extract::<u64>()?, event.get_item(2)?);
        export.event(time_ns, str_of(&event_name)?, |out| write_attributes(out, otlp::EVENT_ATTRIBUTES, &attributes))?;
    }
    for link in item(10)?.try_iter()? {
        let link = link?;
        let (link_trace, link_span) = (link.get_item(0)?, link.get_item(1)?);
        otlp::put_link(&mut export.span, bytes_of(&link_trace)?, bytes_of(&link_span)?);
    }
    let status = item(11)?;
    let (code, message) = (status.get_item(0)?.extract::<i32>()?, status.get_item(1)?);
    otlp::put_status(&mut export.span, code, str_of(&message)?);
    export.push_span();
    if record.len() > 12 {
        let parent = Parent { trace_id: head.trace_id, span_id: head.span_id, trace_state: head.trace_state };
        write_stages(export, &parent, &item(12)?, clock_ns, chunks)?;
    }
    Ok(())
}

/// Each request's stages as child spans of `parent`, each starting where the one before ended.
fn write_stages(export: &mut Export, parent: &Parent, stages: &Bound<'_, PyAny>, clock_ns: i64, chunks: &mut Vec<f64>) -> PyResult<()> {
    for request in stages.try_iter()? {
        let request = request?;
        let (model, timings) = (request.get_item(0)?, request.get_item(2)?);
        let model = str_of(&model)?;
        let mut mark: f64 = request.get_item(1)?.extract()?;
        chunks.clear();
        for at in request.get_item(3)?.try_iter()? {
            chunks.push(at?.extract()?);
        }
        for timing in timings.try_iter()? {
            let timing = timing?;
            let (stage, ms) = (timing.get_item(0)?, timing.get_item(1)?.extract::<f64>()?);
            mark = export.stage(parent, str_of(&stage)?, model, mark, ms, chunks, clock_ns);
        }
    }
    Ok(())
}

/// Each item of a dict as a `KeyValue` (field `number`).
fn write_attributes(out: &mut Vec<u8>, number: u32, attributes: &Bound<'_, PyAny>) -> PyResult<()> {
    for (key, value) in attributes.cast::<PyDict>()?.iter() {
        let key = key.str()?;
        let key = key.to_str()?;
        let int = if value.is_instance_of::<PyInt>() { value.extract::<i64>().ok() } else { None };
        if let Ok(text) = value.cast::<PyString>() {
            otlp::put_attribute(out, number, key, Value::Str(text.to_str()?));
        } else if let Ok(flag) = value.cast::<PyBool>() {
            otlp::put_attribute(out, number, key, Value::Bool(flag.is_true()));
        } else if let Some(int) = int {
            otlp::put_attribute(out, number, key, Value::Int(int));
        } else if let Ok(number_value) = value.cast::<PyFloat>() {
            otlp::put_attribute(out, number, key, Value::Double(number_value.value()));
        } else {
            // Past int64, or no scalar: its text.
            let text = value.str()?;
            otlp::put_attribute(out, number, key, Value::Str(text.to_str()?));
        }
    }
    Ok(())
}

/// An id: `bytes`, borrowed (extracting a `Vec<u8>` reads a sequence item by item).
fn bytes_of<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    Ok(value.cast::<PyBytes>()?.as_bytes())
}

fn str_of<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    value.cast::<PyString>()?.to_str()
}
