//! inferd's native records core.
//!
//! `schema`, `records` and `batch` are plain Rust (no PyO3): they are what `cargo test` and the
//! fuzz targets exercise. This file and `py_records` are the bindings. JSON calls follow three
//! steps: take the bytes while attached to the interpreter, parse them in [`detached`] (GIL
//! released), then build NumPy arrays from the columns. Python records are read by `py_records`
//! straight from the objects into column buffers, attached (Python objects can only be read so).
//! Every entry Python calls runs in `py_guard::guarded`, so that a panic is an ordinary
//! RuntimeError, logged, and never pyo3's PanicException (a BaseException).

pub mod batch;
pub mod oip_response;
pub mod oip_wire;
pub mod otlp;
#[cfg(feature = "python")]
mod py_guard;
#[cfg(feature = "python")]
mod py_oip;
#[cfg(feature = "python")]
mod py_otlp;
#[cfg(feature = "python")]
mod py_records;
#[cfg(feature = "python")]
mod py_wire;
pub mod records;
pub mod schema;
pub mod wire;

#[cfg(feature = "python")]
mod python {
    use std::sync::Arc;

    use pyo3::exceptions::PyKeyError;
    use pyo3::prelude::*;
    use pyo3::sync::PyOnceLock;
    use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyMapping, PyString, PyType};

    use crate::batch::{self, BatchError, TensorMeta};
    use crate::py_guard::guarded;
    use crate::py_oip::{self, PyOipRequest};
    use crate::py_records::{self, NodeKeys};
    use crate::py_wire::{self, PyRequest, RequestFault};
    use crate::records::{self, Buffer, Column, ParseError, SyntaxError};
    use crate::schema::{self, ConfigValue, FieldSpec, SchemaError, SchemaSpec};

    /// Everything the core can report, before it becomes a Python exception.
    enum CoreError {
        Schema(SchemaError),
        Parse(ParseError),
        Batch(BatchError),
        Request(RequestFault),
    }

    impl From<SchemaError> for CoreError {
        fn from(error: SchemaError) -> Self {
            Self::Schema(error)
        }
    }

    impl From<ParseError> for CoreError {
        fn from(error: ParseError) -> Self {
            Self::Parse(error)
        }
    }

    impl From<SyntaxError> for CoreError {
        fn from(error: SyntaxError) -> Self {
            Self::Parse(ParseError::Syntax(error))
        }
    }

    impl From<BatchError> for CoreError {
        fn from(error: BatchError) -> Self {
            Self::Batch(error)
        }
    }

    static ERRORS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

    fn error_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
        let module =
            ERRORS_MODULE.get_or_try_init(py, || py.import("inferd.errors").map(Bound::unbind))?;
        Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
    }

    /// The one mapping from core errors to inferd's exception classes (inferd.errors).
    impl From<CoreError> for PyErr {
        fn from(error: CoreError) -> Self {
            Python::attach(|py| {
                let (class, message, details) = match error {
                    CoreError::Schema(error) => ("ConfigError", error.message, PyDict::new(py)),
                    CoreError::Parse(ParseError::Record(error)) => {
                        let details = PyDict::new(py);
                        let filled = details
                            .set_item("record", error.record)
                            .and_then(|()| details.set_item("path", &error.path))
                            .and_then(|()| details.set_item("expected", &error.expected))
                            .and_then(|()| details.set_item("value", &error.got));
                        if let Err(error) = filled {
                            return error;
                        }
                        ("RecordError", error.to_string(), details)
                    }
                    CoreError::Parse(ParseError::Syntax(error)) => {
                        let details = PyDict::new(py);
                        if let Err(error) = details.set_item("offset", error.offset) {
                            return error;
                        }
                        ("RecordError", error.to_string(), details)
                    }
                    CoreError::Batch(error) => {
                        let details = PyDict::new(py);
                        let filled = details.set_item("tensor", &error.tensor).and_then(|()| {
                            match error.request {
                                Some(request) => details.set_item("request", request),
                                None => Ok(()),
                            }
                        });
                        if let Err(error) = filled {
                            return error;
                        }
                        ("TensorError", error.to_string(), details)
                    }
                    CoreError::Request(RequestFault { tensor, message }) => {
                        let details = PyDict::new(py);
                        let Some(tensor) = tensor else {
                            return match error_class(py, "InvalidInput")
                                .and_then(|class| class.call1((message,)))
                            {
                                Ok(exception) => PyErr::from_value(exception),
                                Err(import_error) => import_error,
                            };
                        };
                        // The name as Python's repr writes it, as every other tensor message does.
                        let named = PyString::new(py, &tensor)
                            .repr()
                            .map(|name| format!("tensor {name}: {message}"));
                        let message = match named.and_then(|message| {
                            details.set_item("tensor", &tensor).map(|()| message)
                        }) {
                            Ok(message) => message,
                            Err(error) => return error,
                        };
                        ("TensorError", message, details)
                    }
                };
                match error_class(py, class)
                    .and_then(|class| class.call((message,), Some(&details)))
                {
                    Ok(exception) => PyErr::from_value(exception),
                    Err(import_error) => import_error,
                }
            })
        }
    }

    /// JSON shorter than this is read with the GIL held: a few microseconds of work at most,
    /// for which letting the GIL go and taking it back is not worth its cost.
    const DETACH_MIN_BYTES: usize = 4096;

    /// Runs the core's work with the GIL released and maps its error: every heavy binding goes
    /// through here.
    fn detached<T, F>(py: Python<'_>, work: F) -> PyResult<T>
    where
        T: Send,
        F: Send + FnOnce() -> Result<T, CoreError>,
    {
        py.detach(work).map_err(PyErr::from)
    }

    fn owned_array<'py, T: numpy::Element>(
        py: Python<'py>,
        shape: numpy::ndarray::IxDyn,
        values: Vec<T>,
    ) -> PyResult<Bound<'py, PyAny>> {
        // A column's values always fill its shape: a mismatch is the core's own fault.
        let array = numpy::ndarray::Array::from_shape_vec(shape, values).map_err(|error| {
            pyo3::exceptions::PyRuntimeError::new_err(format!("a column's shape: {error}"))
        })?;
        Ok(numpy::PyArray::from_owned_array(py, array).into_any())
    }

    fn columns_to_dict<'py>(py: Python<'py>, columns: Vec<Column>) -> PyResult<Bound<'py, PyDict>> {
        let tensors = PyDict::new(py);
        for column in columns {
            // The arrays take ownership of the buffers, no copy, made in their shape at once (a
            // flat array reshaped was two arrays a tensor).
            let shape = numpy::ndarray::IxDyn(&column.shape);
            let array = match column.data {
                Buffer::Float32(values) => owned_array(py, shape, values)?,
                Buffer::Float64(values) => owned_array(py, shape, values)?,
                Buffer::Int32(values) => owned_array(py, shape, values)?,
                Buffer::Int64(values) => owned_array(py, shape, values)?,
                Buffer::Bool(values) => owned_array(py, shape, values)?,
            };
            tensors.set_item(column.name, array)?;
        }
        Ok(tensors)
    }

    /// A compiled schema: turns records into named tensors.
    #[pyclass(frozen, module = "inferd._native", name = "Schema")]
    struct PySchema {
        schema: Arc<schema::Schema>,
        /// Per trie node, its object keys as Python strings, made once for dict lookups.
        node_keys: NodeKeys,
    }

    #[pymethods]
    impl PySchema {
        #[new]
        #[pyo3(signature = (fields, *, delimiter = ".", dtype = "float32", name = "input", max_depth = None))]
        fn new(
            py: Python<'_>,
            fields: &Bound<'_, PyAny>,
            delimiter: &str,
            dtype: &str,
            name: &str,
            max_depth: Option<usize>,
        ) -> PyResult<Self> {
            guarded("Schema", || {
                let fields = fields
                    .try_iter()?
                    .map(|field| field.and_then(|field| extract_field_spec(&field)))
                    .collect::<PyResult<Vec<_>>>()?;
                let spec = SchemaSpec {
                    fields,
                    delimiter: delimiter.into(),
                    dtype: dtype.into(),
                    name: name.into(),
                };
                let mut schema = schema::Schema::compile(&spec).map_err(CoreError::from)?;
                if let Some(limit) = max_depth {
                    schema.max_depth = limit.max(1);
                    schema.max_skipped_depth = limit.max(1);
                }
                let node_keys = py_records::node_keys(py, &schema);
                Ok(Self {
                    schema: Arc::new(schema),
                    node_keys,
                })
            })
        }

        /// Names of the output tensors, in order.
        #[getter]
        fn tensor_names(&self) -> PyResult<Vec<String>> {
            guarded("Schema.tensor_names", || {
                Ok(self
                    .schema
                    .tensor_names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect())
            })
        }

        /// Output names of the fields, in declaration order.
        #[getter]
        fn columns(&self) -> PyResult<Vec<String>> {
            guarded("Schema.columns", || {
                Ok(self
                    .schema
                    .column_names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect())
            })
        }

        fn parse_json<'py>(
            &self,
            py: Python<'py>,
            data: &Bound<'py, PyBytes>,
        ) -> PyResult<Bound<'py, PyDict>> {
            guarded("Schema.parse_json", || {
                // bytes are immutable, so reading them without the GIL is sound.
                let data = data.as_bytes();
                let columns = if data.len() < DETACH_MIN_BYTES {
                    records::parse_json(&self.schema, data).map_err(CoreError::from)?
                } else {
                    let schema = Arc::clone(&self.schema);
                    detached(py, move || Ok(records::parse_json(&schema, data)?))?
                };
                columns_to_dict(py, columns)
            })
        }

        fn parse_records<'py>(
            &self,
            py: Python<'py>,
            records: &Bound<'py, PyAny>,
        ) -> PyResult<Bound<'py, PyDict>> {
            guarded("Schema.parse_records", || {
                // Python objects can only be read with the GIL held: the values go straight
                // from the objects into the column buffers, with no intermediate copy to hand
                // off.
                let columns = py_records::parse_records(&self.schema, &self.node_keys, records)?
                    .map_err(CoreError::from)?;
                columns_to_dict(py, columns)
            })
        }

        fn __repr__(&self) -> PyResult<String> {
            guarded("Schema.__repr__", || {
                Ok(format!(
                    "Schema(tensors={:?}, columns={:?})",
                    self.schema.tensor_names(),
                    self.schema.column_names()
                ))
            })
        }
    }

    const FIELD_KEYS: [&str; 12] = [
        "path",
        "name",
        "dtype",
        "missing",
        "default",
        "vocabulary",
        "unknown",
        "unknown_index",
        "shape",
        "max_length",
        "pad",
        "tensor",
    ];

    fn extract_field_spec(field: &Bound<'_, PyAny>) -> PyResult<FieldSpec> {
        if let Ok(path) = field.extract::<String>() {
            return Ok(FieldSpec::new(path));
        }
        let mapping = field.cast::<PyMapping>().map_err(|_| {
            config_error(format!(
                "a field is a path string or a mapping, got {field:?}"
            ))
        })?;
        let path: String = match mapping.get_item("path") {
            Ok(path) => path.extract().map_err(|_| {
                config_error(format!("a field's path must be a string, got {path:?}"))
            })?,
            Err(_) => {
                return Err(config_error(format!(
                    "a field mapping needs a path: {field:?}"
                )))
            }
        };
        for key in mapping.keys()?.iter() {
            let key = key.str()?.to_string_lossy().into_owned();
            if !FIELD_KEYS.contains(&key.as_str()) {
                return Err(config_error(format!(
                    "field {path:?}: unknown key {key:?}; known keys are {}",
                    FIELD_KEYS.join(", ")
                )));
            }
        }
        let option = |key: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
            match mapping.get_item(key) {
                Ok(value) if value.is_none() => Ok(None),
                Ok(value) => Ok(Some(value)),
                Err(error) if error.is_instance_of::<PyKeyError>(field.py()) => Ok(None),
                Err(error) => Err(error),
            }
        };
        let typed = |key: &str, what: &str| {
            let path = path.clone();
            let key = key.to_owned();
            let what = what.to_owned();
            move |value: Bound<'_, PyAny>| {
                config_error(format!(
                    "field {path:?}: {key} must be {what}, got {value:?}"
                ))
            }
        };
        macro_rules! get {
            ($key:literal, $type:ty, $what:literal) => {
                match option($key)? {
                    None => None,
                    Some(value) => Some(
                        value
                            .extract::<$type>()
                            .map_err(|_| typed($key, $what)(value))?,
                    ),
                }
            };
        }
        let config_value = |key: &str| -> PyResult<Option<ConfigValue>> {
            let Some(value) = option(key)? else {
                return Ok(None);
            };
            Ok(Some(if let Ok(flag) = value.cast::<PyBool>() {
                ConfigValue::Bool(flag.is_true())
            } else if value.is_instance_of::<PyInt>() {
                ConfigValue::Int(
                    value
                        .extract::<i64>()
                        .map_err(|_| typed(key, "a 64-bit integer")(value.clone()))?,
                )
            } else if let Ok(float) = value.extract::<f64>() {
                ConfigValue::Float(float)
            } else if let Ok(text) = value.extract::<String>() {
                ConfigValue::Str(text)
            } else {
                return Err(typed(key, "a number, bool or string")(value));
            }))
        };
        let shape = match option("shape")? {
            None => None,
            Some(value) if value.is_instance_of::<PyString>() => {
                return Err(typed("shape", "a list of integers")(value))
            }
            Some(value) => Some(
                value
                    .extract::<Vec<i64>>()
                    .map_err(|_| typed("shape", "a list of integers")(value))?,
            ),
        };
        let vocabulary = match option("vocabulary")? {
            None => None,
            Some(value) if value.is_instance_of::<PyString>() => {
                return Err(typed("vocabulary", "a list of strings")(value))
            }
            Some(value) => Some(
                value
                    .extract::<Vec<String>>()
                    .map_err(|_| typed("vocabulary", "a list of strings")(value))?,
            ),
        };
        Ok(FieldSpec {
            name: get!("name", String, "a string"),
            dtype: get!("dtype", String, "a string"),
            missing: get!("missing", String, "a string"),
            default: config_value("default")?,
            vocabulary,
            unknown: get!("unknown", String, "a string"),
            unknown_index: get!("unknown_index", i64, "an integer"),
            shape,
            max_length: get!("max_length", i64, "an integer"),
            pad: config_value("pad")?,
            tensor: get!("tensor", String, "a string"),
            path,
        })
    }

    fn config_error(message: String) -> PyErr {
        CoreError::Schema(SchemaError { message }).into()
    }

    /// Benchmark hook (cargo feature `bench-hooks`, off in the shipped module): parses one JSON document with the same parser as `Schema.parse_json`,
    /// building nothing, and returns how many scalars it holds.
    #[cfg(feature = "bench-hooks")]
    #[pyfunction]
    fn parse_only(py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<usize> {
        guarded("parse_only", || {
            let data = data.as_bytes();
            detached(py, move || Ok(records::count_scalars(data)?))
        })
    }

    /// Benchmark hook (cargo feature `bench-hooks`): `Schema.parse_json` on this one thread,
    /// whatever the input's size: the figure to hold against a one-thread DOM parser.
    #[cfg(feature = "bench-hooks")]
    #[pyfunction]
    fn parse_json_one_thread<'py>(
        py: Python<'py>,
        schema: &Bound<'py, PySchema>,
        data: &Bound<'py, PyBytes>,
    ) -> PyResult<Bound<'py, PyDict>> {
        guarded("parse_json_one_thread", || {
            let data = data.as_bytes();
            let schema = Arc::clone(&schema.get().schema);
            let columns = detached(py, move || {
                Ok(records::parse_json_one_thread(&schema, data)?)
            })?;
            columns_to_dict(py, columns)
        })
    }

    /// Benchmark hook (cargo feature `bench-hooks`): sonic-rs, the fastest Rust JSON parser,
    /// parsing the bytes into its DOM on this one thread; returns the top-level array's length
    /// (1 for any other value). The real limit of a JSON reader.
    #[cfg(feature = "bench-hooks")]
    #[pyfunction]
    fn sonic_dom_parse(py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<usize> {
        use sonic_rs::JsonContainerTrait;
        guarded("sonic_dom_parse", || {
            let data = data.as_bytes();
            detached(py, move || {
                let error = |error: sonic_rs::Error| {
                    CoreError::from(SyntaxError {
                        offset: 0,
                        message: error.to_string(),
                    })
                };
                let document: Result<sonic_rs::Value, _> = sonic_rs::from_slice(data);
                match document {
                    Ok(value) => Ok(value.as_array().map_or(1, |array| array.len())),
                    // NDJSON: one value a line.
                    Err(_) => data
                        .split(|&byte| byte == b'\n')
                        .filter(|line| line.iter().any(|byte| !byte.is_ascii_whitespace()))
                        .map(|line| sonic_rs::from_slice::<sonic_rs::Value>(line).map_err(error))
                        .try_fold(0, |count, value| value.map(|_| count + 1)),
                }
            })
        })
    }

    /// Checks that requests' tensors can be concatenated along the first axis; returns the
    /// offsets of each request's rows (`len(requests) + 1` of them).
    #[pyfunction]
    fn plan_concat(requests: Vec<Vec<(String, String, Vec<usize>)>>) -> PyResult<Vec<usize>> {
        guarded("plan_concat", || {
            let requests: Vec<Vec<TensorMeta>> = requests
                .into_iter()
                .map(|tensors| {
                    tensors
                        .into_iter()
                        .map(|(name, dtype, shape)| TensorMeta { name, dtype, shape })
                        .collect()
                })
                .collect();
            Ok(batch::plan_concat(&requests).map_err(CoreError::from)?)
        })
    }

    /// Checks offsets against a batch of `rows` rows; returns each part's (start, stop).
    #[pyfunction]
    fn split_ranges(
        offsets: Vec<usize>,
        rows: usize,
        tensor: &str,
    ) -> PyResult<Vec<(usize, usize)>> {
        guarded("split_ranges", || {
            let ranges = batch::split_ranges(&offsets, rows, tensor).map_err(CoreError::from)?;
            Ok(ranges
                .into_iter()
                .map(|range| (range.start, range.end))
                .collect())
        })
    }

    /// Reads an `InferRequest` (the server's request deserializer for Infer and Stream). It
    /// never raises: it catches a panic itself (with the guard's helper) and keeps it for
    /// `payload()`, as it keeps every other failure.
    #[pyfunction]
    fn decode_request(py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<PyRequest> {
        py_wire::decode_request(py, data.as_bytes(), |_, fault| {
            CoreError::Request(fault).into()
        })
    }

    /// Reads an Open Inference Protocol `ModelInferRequest` (the server's request deserializer
    /// for ModelInfer and ModelStreamInfer). It never raises: what it does not serve comes back
    /// incomplete, for the Python reader (see `py_oip`).
    #[pyfunction]
    fn decode_infer_request(py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<PyOipRequest> {
        py_oip::decode_infer_request(py, data.as_bytes())
    }

    /// Writes an Open Inference Protocol `ModelInferResponse` (with `stream`, the
    /// `ModelStreamInferResponse` holding it), or returns None: what it leaves to the Python
    /// writer (see `py_oip`).
    #[pyfunction]
    #[pyo3(signature = (model_name, model_version, id, outputs, parameters, stream = false))]
    fn encode_infer_response<'py>(
        py: Python<'py>,
        model_name: &str,
        model_version: &str,
        id: &str,
        outputs: &Bound<'py, PyAny>,
        parameters: Option<&Bound<'py, PyAny>>,
        stream: bool,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        guarded("encode_infer_response", || {
            py_oip::encode_infer_response(
                py,
                model_name,
                model_version,
                id,
                outputs,
                parameters,
                stream,
            )
        })
    }

    /// Writes an `InferResponse` for a tensor output, or returns None (see `py_wire`).
    #[pyfunction]
    fn encode_response<'py>(
        py: Python<'py>,
        model: &str,
        id: &str,
        output: &Bound<'py, PyAny>,
        timings: Vec<(String, f64)>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        guarded("encode_response", || {
            py_wire::encode_response(py, model, id, output, &timings)
        })
    }

    /// Writes an `InferResponse` whose output is the given UTF-8 JSON.
    #[pyfunction]
    fn encode_json_response<'py>(
        py: Python<'py>,
        model: &str,
        id: &str,
        json: &[u8],
        timings: Vec<(String, f64)>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        guarded("encode_json_response", || {
            Ok(py_wire::encode_json_response(py, model, id, json, &timings))
        })
    }

    /// Writes the tracing thread's span tuples as one OTLP `ExportTraceServiceRequest`
    /// (the tuples' layout: `py_otlp`); `clock_ns`: the epoch nanoseconds at perf_counter 0,
    /// for the stages' times. Returns the message and how many records it holds: all,
    /// unless `max_items` (spans and events, 0: no limit) stopped it first.
    #[pyfunction]
    #[pyo3(signature = (spans, service, scope, version, *, clock_ns = 0, max_items = 0))]
    fn encode_spans<'py>(
        py: Python<'py>,
        spans: &Bound<'py, PyAny>,
        service: &str,
        scope: &str,
        version: &str,
        clock_ns: i64,
        max_items: usize,
    ) -> PyResult<(Bound<'py, PyBytes>, usize)> {
        guarded("encode_spans", || {
            crate::py_otlp::encode_spans(py, spans, service, scope, version, clock_ns, max_items)
        })
    }

    /// The offset of the first bracket nesting deeper than `limit` in JSON bytes, or None
    /// (`records::nesting_beyond`); large inputs are read with the GIL released.
    #[pyfunction]
    fn nesting_beyond(
        py: Python<'_>,
        data: &Bound<'_, PyBytes>,
        limit: usize,
    ) -> PyResult<Option<usize>> {
        guarded("nesting_beyond", || {
            let data = data.as_bytes();
            if data.len() < 65536 {
                return Ok(records::nesting_beyond(data, limit));
            }
            detached(py, move || Ok(records::nesting_beyond(data, limit)))
        })
    }

    #[pymodule]
    fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
        module.add_class::<PySchema>()?;
        module.add_class::<PyRequest>()?;
        module.add_function(wrap_pyfunction!(decode_request, module)?)?;
        module.add_class::<PyOipRequest>()?;
        module.add_function(wrap_pyfunction!(decode_infer_request, module)?)?;
        module.add_function(wrap_pyfunction!(encode_infer_response, module)?)?;
        module.add_function(wrap_pyfunction!(encode_response, module)?)?;
        module.add_function(wrap_pyfunction!(encode_json_response, module)?)?;
        module.add_function(wrap_pyfunction!(encode_spans, module)?)?;
        module.add(
            "OTLP_FIELDS",
            crate::otlp::FIELDS
                .iter()
                .copied()
                .collect::<std::collections::HashMap<_, _>>(),
        )?;
        module.add(
            "WIRE_FIELDS",
            crate::wire::FIELDS
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )?;
        module.add(
            "OIP_FIELDS",
            crate::oip_wire::FIELDS
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )?;
        module.add(
            "OIP_RESPONSE_FIELDS",
            crate::oip_response::FIELDS
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )?;
        #[cfg(feature = "bench-hooks")]
        module.add_function(wrap_pyfunction!(parse_only, module)?)?;
        #[cfg(feature = "bench-hooks")]
        module.add_function(wrap_pyfunction!(parse_json_one_thread, module)?)?;
        #[cfg(feature = "bench-hooks")]
        module.add_function(wrap_pyfunction!(sonic_dom_parse, module)?)?;
        module.add_function(wrap_pyfunction!(plan_concat, module)?)?;
        module.add_function(wrap_pyfunction!(split_ranges, module)?)?;
        module.add_function(wrap_pyfunction!(nesting_beyond, module)?)?;
        module.add("PARALLEL_MIN_BYTES", records::PARALLEL_MIN_BYTES)?;
        Ok(())
    }
}
