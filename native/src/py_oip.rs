//! Bindings of [`crate::oip_wire`] and [`crate::oip_response`]: a `ModelInferRequest`'s bytes
//! to a [`PyOipRequest`] whose tensors are already numpy arrays (the Open Inference Protocol's
//! `ModelInfer` and `ModelStreamInfer` request deserializer, through `inferd.server.oip`), and
//! a response's arrays to its bytes ([`encode_infer_response`]).
//!
//! A request the native path does not serve (typed `contents`, any fault, malformed bytes)
//! comes back with `complete` false and nothing else: the server then reads those bytes with
//! the generated message class and the Python reader, so that its answer, faults included, is
//! what it was before the native path. Runs attached to the interpreter (it builds Python
//! objects) and never raises.

use half::f16;
use numpy::{
    IxDyn, PyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::oip_response::{self, InferResponse, Output, OutputData};
use crate::oip_wire::{self, Datatype, Parameter, Parameters, Planned, TensorData};
use crate::py_guard;
use crate::py_wire::{booleans, contiguous_bytes, typed};

/// A `ModelInferRequest` read by the native core (`complete`), or a request it leaves to the
/// Python reader (`complete` false; every other attribute empty).
///
/// It holds only strings, dicts and lists of values read from the request, none of which can
/// refer back to it, so it needs no part in the cycle collector.
#[pyclass(frozen, module = "inferd._native", name = "OipRequest")]
pub struct PyOipRequest {
    /// Whether the native core read it; if not, the Python reader reads the bytes.
    #[pyo3(get)]
    complete: bool,
    #[pyo3(get)]
    model_name: Py<PyString>,
    #[pyo3(get)]
    model_version: Py<PyString>,
    #[pyo3(get)]
    id: Py<PyString>,
    /// The request's parameters: {name: bool | int | str | float | None (unset)}.
    #[pyo3(get)]
    parameters: Py<PyDict>,
    /// Each input's (name, datatype, parameters), in order.
    #[pyo3(get)]
    inputs: Py<PyList>,
    /// {name: ndarray}, in the inputs' order.
    #[pyo3(get)]
    tensors: Py<PyDict>,
    /// The names of the outputs asked for (empty: all).
    #[pyo3(get)]
    outputs: Py<PyList>,
}

#[pymethods]
impl PyOipRequest {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        py_guard::guarded("OipRequest.__repr__", || {
            Ok(format!(
                "OipRequest(model_name={}, id={}, complete={})",
                self.model_name.bind(py),
                self.id.bind(py),
                if self.complete { "True" } else { "False" }
            ))
        })
    }
}

/// Reads a `ModelInferRequest`. Never raises: what the native path does not serve, and any
/// failure of its own (a panic included, logged by [`py_guard`]'s helper), comes back as an
/// incomplete request, which the server reads with the Python reader instead.
pub fn decode_infer_request(py: Python<'_>, data: &[u8]) -> PyResult<PyOipRequest> {
    match py_guard::caught("decode_infer_request", || read(py, data)) {
        Ok(Ok(Some(request))) => return Ok(request),
        Ok(Ok(None)) => {}
        Ok(Err(error)) => {
            // (A MemoryError, say, while building the arrays: the Python reader tries again.)
            drop(error);
        }
        Err(panicked) => py_guard::log_panic(py, &panicked),
    }
    Ok(incomplete(py))
}

fn incomplete(py: Python<'_>) -> PyOipRequest {
    let empty = PyString::new(py, "").unbind();
    PyOipRequest {
        complete: false,
        model_name: empty.clone_ref(py),
        model_version: empty.clone_ref(py),
        id: empty,
        parameters: PyDict::new(py).unbind(),
        inputs: PyList::empty(py).unbind(),
        tensors: PyDict::new(py).unbind(),
        outputs: PyList::empty(py).unbind(),
    }
}

fn read(py: Python<'_>, data: &[u8]) -> PyResult<Option<PyOipRequest>> {
    let Ok(request) = oip_wire::decode_infer_request(data) else {
        return Ok(None);
    };
    let Some(planned) = oip_wire::plan_inputs(&request) else {
        return Ok(None);
    };
    let tensors = PyDict::new(py);
    for tensor in &planned {
        tensors.set_item(tensor.name, array(py, tensor)?)?;
    }
    let inputs = PyList::empty(py);
    for input in &request.inputs {
        let item = PyTuple::new(
            py,
            [
                PyString::new(py, input.name).into_any(),
                PyString::new(py, input.datatype).into_any(),
                parameters(py, &input.parameters)?.into_any(),
            ],
        )?;
        inputs.append(item)?;
    }
    let outputs = PyList::empty(py);
    for output in &request.outputs {
        outputs.append(PyString::new(py, output.name))?;
    }
    Ok(Some(PyOipRequest {
        complete: true,
        model_name: PyString::new(py, request.model_name).unbind(),
        model_version: PyString::new(py, request.model_version).unbind(),
        id: PyString::new(py, request.id).unbind(),
        parameters: parameters(py, &request.parameters)?.unbind(),
        inputs: inputs.unbind(),
        tensors: tensors.unbind(),
        outputs: outputs.unbind(),
    }))
}

/// A parameters map as a dict (a later entry of a key replaces an earlier one, as protobuf's
/// map does), each value what the Python reader's `parameter_value` gives.
fn parameters<'py>(py: Python<'py>, map: &Parameters<'_>) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for &(key, value) in map {
        let value = match value {
            Parameter::Unset => py.None().into_bound(py),
            Parameter::Bool(flag) => PyBool::new(py, flag).to_owned().into_any(),
            Parameter::Int64(number) => PyInt::new(py, number).into_any(),
            Parameter::String(text) => PyString::new(py, text).into_any(),
            Parameter::Double(number) => PyFloat::new(py, number).into_any(),
            Parameter::Uint64(number) => PyInt::new(py, number).into_any(),
        };
        dict.set_item(key, value)?;
    }
    Ok(dict)
}

/// One planned input as a new numpy array (a copy of its bytes: the request's buffer goes
/// when the call ends). Sizes were checked by [`oip_wire::plan_inputs`].
fn array<'py>(py: Python<'py>, tensor: &Planned<'_>) -> PyResult<Bound<'py, PyAny>> {
    let dims = &tensor.dims[..];
    let data = match &tensor.data {
        TensorData::Raw(data) => *data,
        TensorData::Elements(elements) => {
            let items: Vec<Py<PyAny>> = elements
                .iter()
                .map(|element| PyBytes::new(py, element).into_any().unbind())
                .collect();
            return Ok(PyArray::from_vec(py, items)
                .reshape(dims.to_vec())?
                .into_any());
        }
    };
    Ok(match tensor.datatype {
        Datatype::Bool => booleans(py, data, dims),
        Datatype::Uint8 => typed::<u8>(py, data, dims),
        Datatype::Uint16 => typed::<u16>(py, data, dims),
        Datatype::Uint32 => typed::<u32>(py, data, dims),
        Datatype::Uint64 => typed::<u64>(py, data, dims),
        Datatype::Int8 => typed::<i8>(py, data, dims),
        Datatype::Int16 => typed::<i16>(py, data, dims),
        Datatype::Int32 => typed::<i32>(py, data, dims),
        Datatype::Int64 => typed::<i64>(py, data, dims),
        Datatype::Fp16 => typed::<f16>(py, data, dims),
        Datatype::Fp32 => typed::<f32>(py, data, dims),
        Datatype::Fp64 => typed::<f64>(py, data, dims),
        Datatype::Bf16 => bfloat16(py, data, dims),
        Datatype::Bytes => unreachable!("BYTES is planned as elements"),
    })
}

/// BF16 widened to float32, as the Python reader does: each value's 16 bits become the upper
/// half of a float32 (exactly, NaN payloads included).
fn bfloat16<'py>(py: Python<'py>, data: &[u8], dims: &[usize]) -> Bound<'py, PyAny> {
    let array = PyArray::<f32, IxDyn>::zeros(py, IxDyn(dims), false);
    // SAFETY: the array is new, C-ordered and of data.len() / 2 elements (the plan checked
    // the size); nobody else can see it yet.
    let values = unsafe { array.as_slice_mut() }.expect("a new array is contiguous");
    for (value, bits) in values.iter_mut().zip(data.chunks_exact(2)) {
        *value = f32::from_bits(u32::from(u16::from_le_bytes([bits[0], bits[1]])) << 16);
    }
    array.into_any()
}

/// Writes a `ModelInferResponse` (with `stream`, the `ModelStreamInferResponse` that holds it)
/// for `outputs` ({name: ndarray}, in order) and `parameters` ({name: bool | int | float |
/// str}, or None), as the Python writer (`oip_tensors.write_outputs`, `write_parameters`)
/// writes it. Returns None for anything it leaves to that writer: a dict of another kind, an
/// array that is not a C-contiguous little-endian ndarray of a protocol datatype (or, for
/// BYTES, an object array of exactly str or bytes), a parameter of another type or out of
/// int64's range. The contents are copied once, into the new `bytes`, with the GIL released
/// when they are large.
pub fn encode_infer_response<'py>(
    py: Python<'py>,
    model_name: &str,
    model_version: &str,
    id: &str,
    outputs: &Bound<'py, PyAny>,
    parameters: Option<&Bound<'py, PyAny>>,
    stream: bool,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let Ok(outputs) = outputs.cast_exact::<PyDict>() else {
        return Ok(None);
    };
    // What the borrowed strings and slices point into, alive until the bytes are written.
    let mut held: Vec<Held<'py>> = Vec::with_capacity(outputs.len());
    for (name, value) in outputs.iter() {
        let (Ok(name), Ok(array)) = (
            name.cast_into_exact::<PyString>(),
            value.cast_into::<PyUntypedArray>(),
        ) else {
            return Ok(None);
        };
        let Some(one) = held_output(name, array)? else {
            return Ok(None);
        };
        held.push(one);
    }
    let mut entries: Vec<(Bound<'py, PyString>, Bound<'py, PyAny>)> = Vec::new();
    if let Some(parameters) = parameters.filter(|parameters| !parameters.is_none()) {
        let Ok(parameters) = parameters.cast_exact::<PyDict>() else {
            return Ok(None);
        };
        for (key, value) in parameters.iter() {
            let Ok(key) = key.cast_into_exact::<PyString>() else {
                return Ok(None);
            };
            entries.push((key, value));
        }
    }
    let mut response = InferResponse {
        model_name,
        model_version,
        id,
        parameters: Vec::with_capacity(entries.len()),
        outputs: Vec::with_capacity(held.len()),
    };
    for (key, value) in &entries {
        let Ok(key) = key.to_str() else {
            return Ok(None);
        };
        let Some(value) = parameter_of(value) else {
            return Ok(None);
        };
        response.parameters.push((key, value));
    }
    for one in &held {
        let Some(output) = one.output()? else {
            return Ok(None);
        };
        response.outputs.push(output);
    }
    let length = oip_response::encoded_len(&response, stream);
    let large = response.contents_len() >= DETACH_MIN_BYTES;
    let bytes = PyBytes::new_with(py, length, |buf| {
        if large {
            // The arrays and elements are held (`held`), and nothing here runs Python code.
            py.detach(|| oip_response::encode_into(&response, stream, buf));
        } else {
            oip_response::encode_into(&response, stream, buf);
        }
        Ok(())
    })?;
    Ok(Some(bytes))
}

/// Contents below this are copied holding the GIL: releasing and taking it again would cost
/// more than the copy (as `nesting_beyond` decides).
const DETACH_MIN_BYTES: usize = 65536;

/// One output's name and array, and for BYTES the elements (held, so that another thread
/// replacing an element of the array cannot free it while the GIL is released).
struct Held<'py> {
    name: Bound<'py, PyString>,
    array: Bound<'py, PyUntypedArray>,
    datatype: &'static str,
    elements: Vec<Bound<'py, PyAny>>,
}

impl<'py> Held<'py> {
    fn output(&self) -> PyResult<Option<Output<'_>>> {
        let Ok(name) = self.name.to_str() else {
            return Ok(None);
        };
        let shape = self.array.shape().iter().map(|&size| size as i64).collect();
        let data = if self.datatype == "BYTES" {
            let mut elements = Vec::with_capacity(self.elements.len());
            for element in &self.elements {
                if let Ok(bytes) = element.cast_exact::<PyBytes>() {
                    elements.push(bytes.as_bytes());
                } else if let Ok(text) = element
                    .cast_exact::<PyString>()
                    .map(PyStringMethods::to_str)
                {
                    let Ok(text) = text else {
                        return Ok(None); // a lone surrogate: the Python writer's own error
                    };
                    elements.push(text.as_bytes());
                } else {
                    return Ok(None);
                }
            }
            OutputData::Elements(elements)
        } else {
            let length = self.array.len() * self.array.dtype().itemsize();
            // SAFETY: a C-contiguous array holds `length` bytes at `data`, and `self.array`
            // keeps it alive while the response is written; nothing resizes it meanwhile
            // (writing runs no Python code, and a resize checks that nobody else refers to it).
            OutputData::Raw(unsafe { contiguous_bytes(&self.array, length) })
        };
        Ok(Some(Output {
            name,
            datatype: self.datatype,
            shape,
            data,
        }))
    }
}

/// An output the native writer writes, or None: the protocol's datatype as the Python
/// writer's `datatype` names it, from the dtype's kind and size (little-endian only).
fn held_output<'py>(
    name: Bound<'py, PyString>,
    array: Bound<'py, PyUntypedArray>,
) -> PyResult<Option<Held<'py>>> {
    if !array.is_exact_instance_of::<PyUntypedArray>() || !array.is_c_contiguous() {
        return Ok(None);
    }
    let dtype = array.dtype();
    let order = dtype.byteorder();
    let little = matches!(order, b'<' | b'|') || (order == b'=' && cfg!(target_endian = "little"));
    let datatype = match (dtype.kind(), dtype.itemsize()) {
        (b'b', 1) => "BOOL",
        (b'u', 1) => "UINT8",
        (b'u', 2) => "UINT16",
        (b'u', 4) => "UINT32",
        (b'u', 8) => "UINT64",
        (b'i', 1) => "INT8",
        (b'i', 2) => "INT16",
        (b'i', 4) => "INT32",
        (b'i', 8) => "INT64",
        (b'f', 2) => "FP16",
        (b'f', 4) => "FP32",
        (b'f', 8) => "FP64",
        (b'O', _) => "BYTES",
        _ => return Ok(None),
    };
    if !little {
        return Ok(None);
    }
    let mut elements = Vec::new();
    if datatype == "BYTES" {
        let Ok(objects) = array.cast::<PyArrayDyn<Py<PyAny>>>() else {
            return Ok(None);
        };
        let objects = objects.readonly();
        let py = array.py();
        elements = objects
            .as_slice()?
            .iter()
            .map(|item| item.bind(py).clone())
            .collect();
    }
    Ok(Some(Held {
        name,
        array,
        datatype,
        elements,
    }))
}

/// A response parameter as the Python writer's `write_parameters` writes it (bool, int as
/// int64, float, str), or None for any other type (or an int beyond int64): that writer's.
fn parameter_of<'a>(value: &'a Bound<'_, PyAny>) -> Option<Parameter<'a>> {
    if let Ok(flag) = value.cast_exact::<PyBool>() {
        Some(Parameter::Bool(flag.is_true()))
    } else if value.is_exact_instance_of::<PyInt>() {
        value.extract::<i64>().ok().map(Parameter::Int64)
    } else if let Ok(number) = value.cast_exact::<PyFloat>() {
        Some(Parameter::Double(number.value()))
    } else if let Ok(text) = value.cast_exact::<PyString>() {
        text.to_str().ok().map(Parameter::String)
    } else {
        None
    }
}
