//! Bindings of [`crate::wire`]: an `InferRequest`'s bytes to a [`PyRequest`] whose payload is
//! already the Python values the engine takes, and tensor or JSON answers to an
//! `InferResponse`'s bytes.
//!
//! Both run attached to the interpreter (they build or read Python objects) and take
//! microseconds: they replace the generated message classes on the serving hot path.

use std::ptr;

use half::f16;
use numpy::{
    Element, IxDyn, PyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use crate::py_guard;
use crate::wire::{self, Answer, Input, OutTensor, TensorRef};

/// A request that cannot be served as sent: the class is InvalidInput, or TensorError when a
/// tensor is named. Raised by [`PyRequest::payload`].
#[derive(Clone)]
pub struct RequestFault {
    pub tensor: Option<String>,
    pub message: String,
}

impl RequestFault {
    fn input(message: impl Into<String>) -> Self {
        Self {
            tensor: None,
            message: message.into(),
        }
    }

    fn tensor(name: &str, message: String) -> Self {
        Self {
            tensor: Some(name.to_owned()),
            message,
        }
    }
}

/// How a request's fault becomes a Python exception (lib.rs's one error map).
pub type RaiseFault = fn(Python<'_>, RequestFault) -> PyErr;

/// Why a request cannot be served, kept as data: [`PyRequest::payload`] raises a new exception
/// each time. A stored exception object would be raised with a traceback whose frames hold
/// the request that holds the exception: a cycle through this class, which the collector
/// cannot see into, so every refused request used to leak its exception, traceback and frames.
enum Unservable {
    /// The caller's mistake (INVALID_ARGUMENT).
    Fault(RequestFault, RaiseFault),
    /// The reader itself failed (a bug of inferd's: INTERNAL), with the message to raise.
    Failure(String),
}

/// A decoded `InferRequest` (what the server's handlers receive instead of the message).
///
/// It holds only strings, bytes and the payload's values, none of which can refer back to it,
/// so it needs no part in the cycle collector (which would cost every request).
#[pyclass(frozen, module = "inferd._native", name = "Request")]
pub struct PyRequest {
    /// The model's name.
    #[pyo3(get)]
    model: Py<PyString>,
    /// The caller's id.
    #[pyo3(get)]
    id: Py<PyString>,
    /// The serialized `google.protobuf.Struct`, or None when the request has none.
    #[pyo3(get)]
    parameters: Option<Py<PyBytes>>,
    /// `(kind, value)`, or why there is none.
    payload: Result<Py<PyTuple>, Unservable>,
}

#[pymethods]
impl PyRequest {
    /// `(kind, value)`: json -> bytes, tensors -> {name: ndarray}, text -> str,
    /// blob -> (data, content_type). Raises what made the request unservable.
    fn payload(&self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        py_guard::guarded("Request.payload", || match &self.payload {
            Ok(payload) => Ok(payload.clone_ref(py)),
            Err(Unservable::Fault(fault, raise)) => Err(raise(py, fault.clone())),
            Err(Unservable::Failure(message)) => Err(PyRuntimeError::new_err(message.clone())),
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        py_guard::guarded("Request.__repr__", || {
            Ok(format!(
                "Request(model={}, id={})",
                self.model.bind(py),
                self.id.bind(py)
            ))
        })
    }
}

/// Reads an `InferRequest`. Never raises: a malformed message or a bad tensor is kept and
/// raised by `payload()`, so that the handler maps it to INVALID_ARGUMENT. So is any other
/// failure, a panic included (a bug of inferd's: the handler answers INTERNAL, and the panic
/// is logged by [`py_guard`]'s helper). grpc gives a deserializer's exception no status of its
/// own, and leaves a call whose deserializer raised a `BaseException` unanswered.
pub fn decode_request(py: Python<'_>, data: &[u8], raise: RaiseFault) -> PyResult<PyRequest> {
    let message = match py_guard::caught("decode_request", || read_request(py, data, raise)) {
        Ok(Ok(request)) => return Ok(request),
        Ok(Err(error)) => format!("the request reader failed: {error}"),
        Err(panicked) => {
            py_guard::log_panic(py, &panicked);
            panicked.message
        }
    };
    Ok(unservable(py, Unservable::Failure(message)))
}

/// A request that only raises.
fn unservable(py: Python<'_>, why: Unservable) -> PyRequest {
    let empty = PyString::new(py, "").unbind();
    PyRequest {
        model: empty.clone_ref(py),
        id: empty,
        parameters: None,
        payload: Err(why),
    }
}

fn read_request(py: Python<'_>, data: &[u8], raise: RaiseFault) -> PyResult<PyRequest> {
    let request = match wire::decode_request(data) {
        Ok(request) => request,
        Err(error) => {
            let fault = RequestFault::input(format!("malformed request: {error}"));
            return Ok(unservable(py, Unservable::Fault(fault, raise)));
        }
    };
    let parameters = match request.parameters.as_slice() {
        [] => None,
        [one] => Some(PyBytes::new(py, one).unbind()),
        many => Some(PyBytes::new(py, &many.concat()).unbind()),
    };
    let payload = match payload(py, &request.input)? {
        Ok(payload) => Ok(payload.unbind()),
        Err(fault) => Err(Unservable::Fault(fault, raise)),
    };
    Ok(PyRequest {
        model: PyString::new(py, request.model).unbind(),
        id: PyString::new(py, request.id).unbind(),
        parameters,
        payload,
    })
}

type Built<'py, T> = PyResult<Result<T, RequestFault>>;

fn payload<'py>(py: Python<'py>, input: &Input<'_>) -> Built<'py, Bound<'py, PyTuple>> {
    let (kind, value) = match input {
        Input::Missing => {
            return Ok(Err(RequestFault::input(
                "the request has no input: set one of json, tensors, text, blob",
            )))
        }
        Input::Json(bytes) => ("json", PyBytes::new(py, bytes).into_any()),
        Input::Text(text) => ("text", PyString::new(py, text).into_any()),
        Input::Blob { data, content_type } => (
            "blob",
            PyTuple::new(
                py,
                [
                    PyBytes::new(py, data).into_any(),
                    PyString::new(py, content_type).into_any(),
                ],
            )?
            .into_any(),
        ),
        Input::Tensors(tensors) => {
            let arrays = PyDict::new(py);
            for tensor in tensors {
                let array = match tensor_array(py, tensor)? {
                    Ok(array) => array,
                    Err(fault) => return Ok(Err(fault)),
                };
                if arrays.contains(tensor.name)? {
                    return Ok(Err(RequestFault::tensor(tensor.name, "given twice".into())));
                }
                arrays.set_item(tensor.name, array)?;
            }
            ("tensors", arrays.into_any())
        }
    };
    Ok(Ok(PyTuple::new(
        py,
        [PyString::new(py, kind).into_any(), value],
    )?))
}

/// numpy's name (also the messages' wording), kind and item size of each numeric `DataType`,
/// by code; 0 is unset.
const NUMERIC: [(&str, u8, usize); 13] = [
    ("", 0, 0),
    ("bool", b'b', 1),
    ("int8", b'i', 1),
    ("int16", b'i', 2),
    ("int32", b'i', 4),
    ("int64", b'i', 8),
    ("uint8", b'u', 1),
    ("uint16", b'u', 2),
    ("uint32", b'u', 4),
    ("uint64", b'u', 8),
    ("float16", b'f', 2),
    ("float32", b'f', 4),
    ("float64", b'f', 8),
];
const DATA_TYPE_STRING: i32 = 13;
/// numpy's limit on an array's dimensions (NPY_MAXDIMS, numpy 2): more would make numpy
/// refuse the array, which rust-numpy turns into a panic.
const MAX_DIMS: usize = 64;

/// One request tensor as a new numpy array (a copy of its bytes), checked against its shape.
fn tensor_array<'py>(py: Python<'py>, tensor: &TensorRef<'_>) -> Built<'py, Bound<'py, PyAny>> {
    let fault = |message: String| Ok(Err(RequestFault::tensor(tensor.name, message)));
    if tensor.shape.len() > MAX_DIMS {
        return fault(format!(
            "shape has {} dimensions, at most {MAX_DIMS} are allowed",
            tensor.shape.len()
        ));
    }
    let mut dims = Vec::with_capacity(tensor.shape.len());
    let mut count = Some(1usize);
    for &size in &tensor.shape {
        let Ok(size) = usize::try_from(size) else {
            return fault(format!("negative size in shape {:?}", tensor.shape));
        };
        dims.push(size);
        count = count.and_then(|count| count.checked_mul(size));
    }
    let Some(count) = count else {
        return fault(format!(
            "shape {:?} has more elements than memory can hold",
            tensor.shape
        ));
    };
    if !numpy_can_hold(&dims, itemsize_of(tensor.dtype)) {
        return fault(format!(
            "shape {:?} is larger than an array can be, even where a size is 0",
            tensor.shape
        ));
    }
    let build = match tensor.dtype {
        1 => booleans,
        2 => typed::<i8>,
        3 => typed::<i16>,
        4 => typed::<i32>,
        5 => typed::<i64>,
        6 => typed::<u8>,
        7 => typed::<u16>,
        8 => typed::<u32>,
        9 => typed::<u64>,
        10 => typed::<f16>,
        11 => typed::<f32>,
        12 => typed::<f64>,
        DATA_TYPE_STRING => return strings(py, tensor, dims, count),
        other => return fault(format!("dtype is unset or unknown ({other})")),
    };
    let (dtype_name, _, itemsize) = NUMERIC[tensor.dtype as usize];
    let needed = count.checked_mul(itemsize);
    if needed != Some(tensor.data.len()) {
        let needed = needed.map_or_else(|| "more".to_owned(), |needed| needed.to_string());
        return fault(format!(
            "shape {:?} of {} needs {needed} bytes, got {}",
            tensor.shape,
            dtype_name,
            tensor.data.len()
        ));
    }
    Ok(Ok(build(py, tensor.data, &dims)))
}

// The wire is little-endian; so is every host this is built for.
#[cfg(target_endian = "big")]
compile_error!("inferd's wire codec copies little-endian tensor data as is: big-endian hosts are not supported");

/// The item size numpy gives a tensor of `dtype` (a pointer for strings, which are objects).
fn itemsize_of(dtype: i32) -> usize {
    match dtype {
        DATA_TYPE_STRING => std::mem::size_of::<usize>(),
        code => NUMERIC
            .get(code as usize)
            .map_or(1, |(_, _, size)| (*size).max(1)),
    }
}

/// numpy refuses an array whose sizes, the zero ones left out, times its item size exceed
/// `isize::MAX` bytes, even when a zero size leaves it empty; rust-numpy then panics. So the
/// request reader asks first.
fn numpy_can_hold(dims: &[usize], itemsize: usize) -> bool {
    let mut bytes = itemsize;
    for &size in dims.iter().filter(|&&size| size != 0) {
        match bytes.checked_mul(size) {
            Some(product) if isize::try_from(product).is_ok() => bytes = product,
            _ => return false,
        }
    }
    true
}

pub(crate) fn typed<'py, T: Element>(
    py: Python<'py>,
    data: &[u8],
    dims: &[usize],
) -> Bound<'py, PyAny> {
    // SAFETY: a new, C-ordered array of exactly `data.len()` bytes (the caller checked the
    // size), every byte of which is written before anyone can see it. Any bit pattern is a
    // valid value of the numeric types this is called for (bool is not: see `booleans`).
    unsafe {
        let array = PyArray::<T, IxDyn>::new(py, IxDyn(dims), false);
        ptr::copy_nonoverlapping(data.as_ptr(), array.data().cast::<u8>(), data.len());
        array.into_any()
    }
}

/// A BOOL tensor: any nonzero byte is true. numpy's bools must be 0 or 1, so each byte is
/// normalised rather than copied as it came.
pub(crate) fn booleans<'py>(py: Python<'py>, data: &[u8], dims: &[usize]) -> Bound<'py, PyAny> {
    let array = PyArray::<bool, IxDyn>::zeros(py, IxDyn(dims), false);
    // SAFETY: the array is new, C-ordered and of exactly `data.len()` one-byte elements (the
    // caller checked the size); nobody else can see it yet.
    let values = unsafe { array.as_slice_mut() }.expect("a new array is contiguous");
    for (value, &byte) in values.iter_mut().zip(data) {
        *value = byte != 0;
    }
    array.into_any()
}

/// A STRING tensor: each element a 4-byte little-endian length and that many UTF-8 bytes.
fn strings<'py>(
    py: Python<'py>,
    tensor: &TensorRef<'_>,
    dims: Vec<usize>,
    count: usize,
) -> Built<'py, Bound<'py, PyAny>> {
    let fault = |message: String| Ok(Err(RequestFault::tensor(tensor.name, message)));
    let data = tensor.data;
    let mut items: Vec<Py<PyAny>> = Vec::new();
    let mut offset = 0usize;
    for index in 0..count {
        let Some(prefix) = data.get(offset..offset + 4) else {
            return fault(format!(
                "string data ends after {index} of {count} elements"
            ));
        };
        let length = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
        offset += 4;
        let Some(bytes) = data.get(offset..).and_then(|rest| rest.get(..length)) else {
            return fault(format!("string element {index} runs past the data"));
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            return fault(format!("string element {index} is not UTF-8"));
        };
        items.push(PyString::new(py, text).into_any().unbind());
        offset += length;
    }
    if offset != data.len() {
        return fault(format!(
            "{} bytes left after {count} strings",
            data.len() - offset
        ));
    }
    Ok(Ok(PyArray::from_vec(py, items).reshape(dims)?.into_any()))
}

/// One output's data, in the wire layout: borrowed from a numeric array, or made (strings).
enum Data<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

/// The `length` bytes of a C-contiguous array's data.
///
/// # Safety
/// `array` must be C-contiguous and hold `length` bytes, and must outlive the slice unresized
/// (the caller keeps a reference to it, and runs no Python code while it reads the slice).
pub(crate) unsafe fn contiguous_bytes<'a>(
    array: &Bound<'_, PyUntypedArray>,
    length: usize,
) -> &'a [u8] {
    if length == 0 {
        return &[];
    }
    let start = (*array.as_array_ptr())
        .fields
        .data
        .cast::<u8>()
        .cast_const();
    std::slice::from_raw_parts(start, length)
}

struct Output<'py> {
    name: Bound<'py, PyString>,
    dtype: i32,
    shape: Vec<usize>,
    data: Data<'py>,
    _array: Bound<'py, PyUntypedArray>,
}

/// Writes an `InferResponse` for a model's tensor output (an ndarray, answered as "output", or
/// a dict of them). Returns None for anything else, or any array without a wire encoding that
/// is already laid out as the wire wants it: the caller's general path handles those.
pub fn encode_response<'py>(
    py: Python<'py>,
    model: &str,
    id: &str,
    output: &Bound<'py, PyAny>,
    timings: &[(String, f64)],
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let mut outputs = Vec::new();
    if let Ok(array) = output.cast::<PyUntypedArray>() {
        let Some(one) = wire_output(py, PyString::new(py, "output"), array)? else {
            return Ok(None);
        };
        outputs.push(one);
    } else if let Ok(dict) = output.cast_exact::<PyDict>() {
        if dict.is_empty() {
            return Ok(None);
        }
        for (name, value) in dict.iter() {
            let (Ok(name), Ok(array)) =
                (name.cast_into::<PyString>(), value.cast::<PyUntypedArray>())
            else {
                return Ok(None);
            };
            let Some(one) = wire_output(py, name, array)? else {
                return Ok(None);
            };
            outputs.push(one);
        }
    } else {
        return Ok(None);
    }
    let names = outputs
        .iter()
        .map(|output| output.name.to_str())
        .collect::<PyResult<Vec<_>>>()?;
    let tensors: Vec<OutTensor<'_>> = outputs
        .iter()
        .zip(&names)
        .map(|(output, name)| OutTensor {
            name,
            dtype: output.dtype,
            shape: &output.shape,
            data: match &output.data {
                Data::Borrowed(bytes) => bytes,
                Data::Owned(bytes) => bytes,
            },
        })
        .collect();
    Ok(Some(write(
        py,
        model,
        id,
        &Answer::Tensors(&tensors),
        timings,
    )))
}

/// Writes an `InferResponse` whose output is `json` (UTF-8 JSON, as is).
pub fn encode_json_response<'py>(
    py: Python<'py>,
    model: &str,
    id: &str,
    json: &[u8],
    timings: &[(String, f64)],
) -> Bound<'py, PyBytes> {
    write(py, model, id, &Answer::Json(json), timings)
}

fn write<'py>(
    py: Python<'py>,
    model: &str,
    id: &str,
    answer: &Answer<'_>,
    timings: &[(String, f64)],
) -> Bound<'py, PyBytes> {
    let timings: Vec<(&str, f64)> = timings
        .iter()
        .map(|(stage, ms)| (stage.as_str(), *ms))
        .collect();
    PyBytes::new(py, &wire::encode_response(model, id, answer, &timings))
}

fn wire_output<'py>(
    py: Python<'py>,
    name: Bound<'py, PyString>,
    array: &Bound<'py, PyUntypedArray>,
) -> PyResult<Option<Output<'py>>> {
    if !array.is_c_contiguous() {
        return Ok(None);
    }
    let dtype = array.dtype();
    let shape = array.shape().to_vec();
    let code = match (dtype.kind(), dtype.itemsize()) {
        (b'O', _) => {
            let Ok(objects) = array.cast::<PyArrayDyn<Py<PyAny>>>() else {
                return Ok(None);
            };
            let objects = objects.readonly();
            let mut data = Vec::new();
            for item in objects.as_slice()? {
                let Ok(text) = item.bind(py).cast::<PyString>() else {
                    return Ok(None);
                };
                let Ok(text) = text.to_str() else {
                    return Ok(None);
                };
                data.extend_from_slice(&(text.len() as u32).to_le_bytes());
                data.extend_from_slice(text.as_bytes());
            }
            return Ok(Some(Output {
                name,
                dtype: DATA_TYPE_STRING,
                shape,
                data: Data::Owned(data),
                _array: array.clone(),
            }));
        }
        (kind, itemsize) => match NUMERIC
            .iter()
            .position(|&(_, wanted, size)| (wanted, size) == (kind, itemsize))
        {
            Some(code) if code > 0 => code as i32,
            _ => return Ok(None),
        },
    };
    if dtype.byteorder() == b'>' {
        return Ok(None);
    }
    let length = shape.iter().product::<usize>() * dtype.itemsize();
    // SAFETY: a C-contiguous array holds `length` bytes at `data`; `_array` keeps it alive, and
    // nothing runs Python code (which could resize it) while the response is written.
    let data = unsafe { contiguous_bytes(array, length) };
    Ok(Some(Output {
        name,
        dtype: code,
        shape,
        data: Data::Borrowed(data),
        _array: array.clone(),
    }))
}
