//! The bindings of `otlp`: the tracing thread's span tuples (`inferd.tracing`) read into
//! [`Record`]s while attached, then expanded and written with the GIL released.
//!
//! A span tuple: `(trace_id, span_id, parent_span_id, trace_state, name, kind, start_ns,
//! end_ns, attributes, events, links, status)`, and optionally a 13th item, the stages of
//! the requests it served (each its child spans); attributes a dict of str to str, bool, int
//! or float (anything else is written as its `str()`); events `(name, time_ns, attributes)`;
//! links `(trace_id, span_id)`; status `(code, message)`. Stages: a sequence of `(model,
//! started, timings, chunks)` ([`Stages`]: perf_counter seconds, (stage, ms) pairs, the
//! chunks' perf_counter seconds). A 4-tuple `(trace_id, parent_span_id, trace_state,
//! stages)` is the stages alone, of a span recorded before them.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyString, PyTuple};

use crate::otlp::{self, Attributes, Event, Record, Span, Stages, Value};

pub fn encode_spans<'py>(
    py: Python<'py>,
    spans: &Bound<'py, PyAny>,
    service: &str,
    scope: &str,
    version: &str,
    clock_ns: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut read = Vec::new();
    for span in spans.try_iter()? {
        read.push(read_record(&span?)?);
    }
    let (service, scope, version) = (service.to_owned(), scope.to_owned(), version.to_owned());
    let out = py.detach(move || otlp::encode_export(&service, &scope, &version, &otlp::expand(read, clock_ns)));
    Ok(PyBytes::new(py, &out))
}

fn read_record(record: &Bound<'_, PyAny>) -> PyResult<Record> {
    let tuple = record.cast::<PyTuple>()?;
    if tuple.len() == 4 {
        return Ok(Record::Stages {
            trace_id: tuple.get_item(0)?.extract()?,
            parent_span_id: tuple.get_item(1)?.extract()?,
            trace_state: tuple.get_item(2)?.extract()?,
            stages: read_stages(&tuple.get_item(3)?)?,
        });
    }
    let stages = if tuple.len() > 12 { read_stages(&tuple.get_item(12)?)? } else { Vec::new() };
    Ok(Record::Span(read_span(tuple)?, stages))
}

fn read_stages(stages: &Bound<'_, PyAny>) -> PyResult<Vec<Stages>> {
    let mut out = Vec::new();
    for request in stages.try_iter()? {
        let (model, started, timings, chunks): (String, f64, Bound<'_, PyAny>, Bound<'_, PyAny>) = request?.extract()?;
        let mut read = Stages { model, started, ..Stages::default() };
        for timing in timings.try_iter()? {
            read.timings.push(timing?.extract()?);
        }
        for at in chunks.try_iter()? {
            read.chunks.push(at?.extract()?);
        }
        out.push(read);
    }
    Ok(out)
}

fn read_span(span: &Bound<'_, PyTuple>) -> PyResult<Span> {
    let item = |index: usize| span.get_item(index);
    let mut events = Vec::new();
    for event in item(9)?.try_iter()? {
        let (name, time_ns, attributes): (String, u64, Bound<'_, PyAny>) = event?.extract()?;
        events.push(Event { name, time_ns, attributes: read_attributes(&attributes)? });
    }
    let mut links = Vec::new();
    for link in item(10)?.try_iter()? {
        let (trace_id, span_id): (Vec<u8>, Vec<u8>) = link?.extract()?;
        links.push((trace_id, span_id));
    }
    Ok(Span {
        trace_id: item(0)?.extract()?,
        span_id: item(1)?.extract()?,
        parent_span_id: item(2)?.extract()?,
        trace_state: item(3)?.extract()?,
        name: item(4)?.extract()?,
        kind: item(5)?.extract()?,
        start_ns: item(6)?.extract()?,
        end_ns: item(7)?.extract()?,
        attributes: read_attributes(&item(8)?)?,
        events,
        links,
        status: item(11)?.extract()?,
    })
}

fn read_attributes(attributes: &Bound<'_, PyAny>) -> PyResult<Attributes> {
    let attributes = attributes.cast::<PyDict>()?;
    let mut out = Vec::with_capacity(attributes.len());
    for (key, value) in attributes.iter() {
        let key: String = key.str()?.extract()?;
        let value = if let Ok(text) = value.cast::<PyString>() {
            Value::Str(text.to_str()?.to_owned())
        } else if let Ok(flag) = value.cast::<PyBool>() {
            Value::Bool(flag.is_true())
        } else if value.is_instance_of::<PyInt>() {
            match value.extract::<i64>() {
                Ok(number) => Value::Int(number),
                Err(_) => Value::Str(value.str()?.extract()?), // past int64
            }
        } else if let Ok(number) = value.cast::<PyFloat>() {
            Value::Double(number.value())
        } else {
            Value::Str(value.str()?.extract()?)
        };
        out.push((key, value));
    }
    Ok(out)
}
