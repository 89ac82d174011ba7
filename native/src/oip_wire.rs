//! The Open Inference Protocol's `inference.ModelInferRequest` on the wire (read only): what
//! the server's `ModelInfer` and `ModelStreamInfer` receive.
//!
//! [`decode_infer_request`] reads the whole message, borrowing every string and tensor from
//! the request's bytes (nothing is copied until the binding builds numpy arrays). It follows
//! protobuf's rules as `wire` does: unknown fields (and known numbers of another wire type)
//! are skipped, `shape` may come packed or not, a later scalar wins, a map entry whose key
//! comes again replaces the earlier one, strings must be UTF-8. Malformed bytes are an error,
//! never a panic.
//!
//! [`plan_inputs`] then says whether the request is one the native path serves as the Python
//! reader (`inferd.server.oip_tensors`) would: tensors in `raw_input_contents`, one entry per
//! input, every datatype known and every size consistent. Anything else (typed `contents`, a
//! fault of any kind, malformed bytes) is declined, and the server reads the request with the
//! generated message class and the Python reader, so that every fault keeps its message.
//!
//! Field numbers are those of `proto/inference/grpc_service.proto` ([`FIELDS`], which a test
//! compares with the generated descriptors). No PyO3 here.

use crate::wire::{utf8, Fields, Value, WireError};

const REQUEST_MODEL_NAME: u32 = 1;
const REQUEST_MODEL_VERSION: u32 = 2;
const REQUEST_ID: u32 = 3;
const REQUEST_PARAMETERS: u32 = 4;
const REQUEST_INPUTS: u32 = 5;
const REQUEST_OUTPUTS: u32 = 6;
const REQUEST_RAW_INPUT_CONTENTS: u32 = 7;
const INPUT_NAME: u32 = 1;
const INPUT_DATATYPE: u32 = 2;
const INPUT_SHAPE: u32 = 3;
const INPUT_PARAMETERS: u32 = 4;
const INPUT_CONTENTS: u32 = 5;
const OUTPUT_NAME: u32 = 1;
const OUTPUT_PARAMETERS: u32 = 2;
const PARAMETER_BOOL: u32 = 1;
const PARAMETER_INT64: u32 = 2;
const PARAMETER_STRING: u32 = 3;
const PARAMETER_DOUBLE: u32 = 4;
const PARAMETER_UINT64: u32 = 5;
// A map<string, V> entry is a message of its own: key = 1, value = 2.
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;

/// (message.field, number) for every field above.
pub const FIELDS: [(&str, u32); 19] = [
    ("ModelInferRequest.model_name", REQUEST_MODEL_NAME),
    ("ModelInferRequest.model_version", REQUEST_MODEL_VERSION),
    ("ModelInferRequest.id", REQUEST_ID),
    ("ModelInferRequest.parameters", REQUEST_PARAMETERS),
    ("ModelInferRequest.inputs", REQUEST_INPUTS),
    ("ModelInferRequest.outputs", REQUEST_OUTPUTS),
    (
        "ModelInferRequest.raw_input_contents",
        REQUEST_RAW_INPUT_CONTENTS,
    ),
    ("InferInputTensor.name", INPUT_NAME),
    ("InferInputTensor.datatype", INPUT_DATATYPE),
    ("InferInputTensor.shape", INPUT_SHAPE),
    ("InferInputTensor.parameters", INPUT_PARAMETERS),
    ("InferInputTensor.contents", INPUT_CONTENTS),
    ("InferRequestedOutputTensor.name", OUTPUT_NAME),
    ("InferRequestedOutputTensor.parameters", OUTPUT_PARAMETERS),
    ("InferParameter.bool_param", PARAMETER_BOOL),
    ("InferParameter.int64_param", PARAMETER_INT64),
    ("InferParameter.string_param", PARAMETER_STRING),
    ("InferParameter.double_param", PARAMETER_DOUBLE),
    ("InferParameter.uint64_param", PARAMETER_UINT64),
];

/// An `InferParameter`: which member of its oneof is set.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Parameter<'a> {
    #[default]
    Unset,
    Bool(bool),
    Int64(i64),
    String(&'a str),
    Double(f64),
    Uint64(u64),
}

/// A `map<string, InferParameter>` as its entries came, in order, repeated keys included:
/// the last entry of a key is its value (as a dict built in this order has it).
pub type Parameters<'a> = Vec<(&'a str, Parameter<'a>)>;

/// A map's value for `key` (its last entry), if any.
pub fn parameter<'a>(parameters: &Parameters<'a>, key: &str) -> Option<Parameter<'a>> {
    parameters
        .iter()
        .rev()
        .find(|(name, _)| *name == key)
        .map(|&(_, value)| value)
}

/// One `InferInputTensor`, borrowed. `contents` is not read: a request that has it is
/// declined by [`plan_inputs`] (the Python reader reads typed contents).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputRef<'a> {
    pub name: &'a str,
    pub datatype: &'a str,
    pub shape: Vec<i64>,
    pub parameters: Parameters<'a>,
    /// Whether `contents` was set (even empty).
    pub has_contents: bool,
}

/// One `InferRequestedOutputTensor`, borrowed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputRef<'a> {
    pub name: &'a str,
    pub parameters: Parameters<'a>,
}

/// A `ModelInferRequest`, borrowed from its bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InferRequest<'a> {
    pub model_name: &'a str,
    pub model_version: &'a str,
    pub id: &'a str,
    pub parameters: Parameters<'a>,
    pub inputs: Vec<InputRef<'a>>,
    pub outputs: Vec<OutputRef<'a>>,
    pub raw_input_contents: Vec<&'a [u8]>,
}

/// Reads a `ModelInferRequest`.
pub fn decode_infer_request(buf: &[u8]) -> Result<InferRequest<'_>, WireError> {
    let mut request = InferRequest::default();
    let mut fields = Fields::new(buf, 0);
    while let Some((number, value, offset)) = fields.next_field()? {
        let Value::Len(bytes) = value else { continue }; // every field here is length-delimited
        match number {
            REQUEST_MODEL_NAME => request.model_name = utf8(bytes, "model_name", offset)?,
            REQUEST_MODEL_VERSION => {
                request.model_version = utf8(bytes, "model_version", offset)?;
            }
            REQUEST_ID => request.id = utf8(bytes, "id", offset)?,
            REQUEST_PARAMETERS => map_entry(&mut request.parameters, bytes, offset)?,
            REQUEST_INPUTS => request.inputs.push(input(bytes, offset)?),
            REQUEST_OUTPUTS => request.outputs.push(output(bytes, offset)?),
            REQUEST_RAW_INPUT_CONTENTS => request.raw_input_contents.push(bytes),
            _ => {}
        }
    }
    Ok(request)
}

fn input(buf: &[u8], base: usize) -> Result<InputRef<'_>, WireError> {
    let mut tensor = InputRef::default();
    let mut fields = Fields::new(buf, base);
    while let Some((number, value, offset)) = fields.next_field()? {
        match (number, value) {
            (INPUT_NAME, Value::Len(bytes)) => tensor.name = utf8(bytes, "input name", offset)?,
            (INPUT_DATATYPE, Value::Len(bytes)) => {
                tensor.datatype = utf8(bytes, "input datatype", offset)?;
            }
            (INPUT_SHAPE, Value::Varint(size)) => tensor.shape.push(size as i64),
            (INPUT_SHAPE, Value::Len(packed)) => {
                let mut sizes = Fields::new(packed, offset);
                while !sizes.at_end() {
                    tensor.shape.push(sizes.varint()? as i64);
                }
            }
            (INPUT_PARAMETERS, Value::Len(bytes)) => {
                map_entry(&mut tensor.parameters, bytes, offset)?;
            }
            (INPUT_CONTENTS, Value::Len(_)) => tensor.has_contents = true,
            _ => {}
        }
    }
    Ok(tensor)
}

fn output(buf: &[u8], base: usize) -> Result<OutputRef<'_>, WireError> {
    let mut tensor = OutputRef::default();
    let mut fields = Fields::new(buf, base);
    while let Some((number, value, offset)) = fields.next_field()? {
        match (number, value) {
            (OUTPUT_NAME, Value::Len(bytes)) => tensor.name = utf8(bytes, "output name", offset)?,
            (OUTPUT_PARAMETERS, Value::Len(bytes)) => {
                map_entry(&mut tensor.parameters, bytes, offset)?;
            }
            _ => {}
        }
    }
    Ok(tensor)
}

/// One entry of a `map<string, InferParameter>`: a missing key is "", a missing value unset.
///
/// An entry with any other field in it (an unknown number, or the key or value under another
/// wire type) is not an entry of the map: protobuf's upb runtime keeps such an entry among the
/// message's unknown fields, so the map does not have it, and neither does this reader.
fn map_entry<'a>(
    parameters: &mut Parameters<'a>,
    buf: &'a [u8],
    base: usize,
) -> Result<(), WireError> {
    let mut key = "";
    let mut value = Parameter::Unset;
    let mut unknown = false;
    let mut fields = Fields::new(buf, base);
    while let Some((number, field, offset)) = fields.next_field()? {
        match (number, field) {
            (ENTRY_KEY, Value::Len(bytes)) => key = utf8(bytes, "parameter name", offset)?,
            // The value is a message: one that comes twice in an entry is merged.
            (ENTRY_VALUE, Value::Len(bytes)) => merge_parameter(&mut value, bytes, offset)?,
            _ => unknown = true,
        }
    }
    if !unknown {
        parameters.push((key, value));
    }
    Ok(())
}

fn merge_parameter<'a>(
    value: &mut Parameter<'a>,
    buf: &'a [u8],
    base: usize,
) -> Result<(), WireError> {
    let mut fields = Fields::new(buf, base);
    while let Some((number, field, offset)) = fields.next_field()? {
        // The oneof's members: the last one set wins.
        match (number, field) {
            (PARAMETER_BOOL, Value::Varint(bits)) => *value = Parameter::Bool(bits != 0),
            (PARAMETER_INT64, Value::Varint(bits)) => *value = Parameter::Int64(bits as i64),
            (PARAMETER_STRING, Value::Len(bytes)) => {
                *value = Parameter::String(utf8(bytes, "string_param", offset)?);
            }
            (PARAMETER_DOUBLE, Value::Fixed(bytes)) => {
                if let Ok(bytes) = <[u8; 8]>::try_from(bytes) {
                    *value = Parameter::Double(f64::from_le_bytes(bytes));
                } // a fixed32 under a double's number: another wire type, skipped
            }
            (PARAMETER_UINT64, Value::Varint(bits)) => *value = Parameter::Uint64(bits),
            _ => {}
        }
    }
    Ok(())
}

// -- what the native path serves -------------------------------------------------------------

/// The protocol's datatypes (their names as the protocol spells them: exactly these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    /// Read as its bits; the binding widens it to float32 (bfloat16 is float32's upper half).
    Bf16,
    /// Each element a 4-byte little-endian length and that many bytes.
    Bytes,
}

impl Datatype {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "BOOL" => Self::Bool,
            "UINT8" => Self::Uint8,
            "UINT16" => Self::Uint16,
            "UINT32" => Self::Uint32,
            "UINT64" => Self::Uint64,
            "INT8" => Self::Int8,
            "INT16" => Self::Int16,
            "INT32" => Self::Int32,
            "INT64" => Self::Int64,
            "FP16" => Self::Fp16,
            "FP32" => Self::Fp32,
            "FP64" => Self::Fp64,
            "BF16" => Self::Bf16,
            "BYTES" => Self::Bytes,
            _ => return None,
        })
    }

    /// Bytes per element on the wire (BYTES: none fixed).
    pub fn wire_size(self) -> Option<usize> {
        Some(match self {
            Self::Bool | Self::Uint8 | Self::Int8 => 1,
            Self::Uint16 | Self::Int16 | Self::Fp16 | Self::Bf16 => 2,
            Self::Uint32 | Self::Int32 | Self::Fp32 => 4,
            Self::Uint64 | Self::Int64 | Self::Fp64 => 8,
            Self::Bytes => return None,
        })
    }

    /// Bytes per element of the numpy array made of it (BYTES: an object pointer).
    fn array_itemsize(self) -> usize {
        match self {
            Self::Bf16 => 4,
            Self::Bytes => std::mem::size_of::<usize>(),
            other => other.wire_size().unwrap_or(1),
        }
    }
}

/// A tensor's data, checked against its shape.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData<'a> {
    /// Fixed-size elements, exactly as many bytes as the shape needs.
    Raw(&'a [u8]),
    /// BYTES: the elements, as many as the shape has.
    Elements(Vec<&'a [u8]>),
}

/// One input the native path serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned<'a> {
    pub name: &'a str,
    pub datatype: Datatype,
    pub dims: Vec<usize>,
    pub data: TensorData<'a>,
}

/// numpy's limit on an array's dimensions (NPY_MAXDIMS, numpy 2).
const MAX_DIMS: usize = 64;

/// The request's inputs, checked, when the native path serves them as the Python reader
/// would; None when it declines (the Python reader then reads the request, faults included).
pub fn plan_inputs<'a>(request: &InferRequest<'a>) -> Option<Vec<Planned<'a>>> {
    let inputs = &request.inputs;
    let raw = &request.raw_input_contents;
    if inputs.is_empty() || raw.len() != inputs.len() || inputs.iter().any(|i| i.has_contents) {
        return None;
    }
    if !unique_names(inputs) {
        return None;
    }
    inputs
        .iter()
        .zip(raw)
        .map(|(input, data)| plan_one(input, data))
        .collect()
}

fn unique_names(inputs: &[InputRef<'_>]) -> bool {
    if inputs.len() <= 16 {
        return inputs
            .iter()
            .enumerate()
            .all(|(at, input)| inputs[..at].iter().all(|other| other.name != input.name));
    }
    let mut seen = std::collections::HashSet::with_capacity(inputs.len());
    inputs.iter().all(|input| seen.insert(input.name))
}

fn plan_one<'a>(input: &InputRef<'a>, data: &'a [u8]) -> Option<Planned<'a>> {
    let datatype = Datatype::parse(input.datatype)?;
    // The Python reader's widening of a BF16 scalar (no dimensions) gives a numpy scalar, not
    // an array: left to it, so that it stays what it was.
    if input.shape.len() > MAX_DIMS || (datatype == Datatype::Bf16 && input.shape.is_empty()) {
        return None;
    }
    let dims = input
        .shape
        .iter()
        .map(|&size| usize::try_from(size).ok())
        .collect::<Option<Vec<usize>>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |count, &size| count.checked_mul(size))?;
    if !numpy_can_hold(&dims, datatype.array_itemsize()) {
        return None;
    }
    let data = match datatype.wire_size() {
        Some(size) => {
            if count.checked_mul(size)? != data.len() {
                return None;
            }
            if datatype == Datatype::Bool && data.iter().any(|&byte| byte > 1) {
                return None;
            }
            TensorData::Raw(data)
        }
        None => {
            let elements = bytes_elements(data)?;
            if elements.len() != count {
                return None;
            }
            TensorData::Elements(elements)
        }
    };
    Some(Planned {
        name: input.name,
        datatype,
        dims,
        data,
    })
}

/// A raw BYTES tensor's elements, or None when one runs past the data.
pub fn bytes_elements(data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut elements = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (prefix, after) = rest.split_first_chunk::<4>()?;
        let size = usize::try_from(u32::from_le_bytes(*prefix)).ok()?;
        if size > after.len() {
            return None;
        }
        let (element, after) = after.split_at(size);
        elements.push(element);
        rest = after;
    }
    Some(elements)
}

/// numpy refuses an array whose sizes, the zero ones left out, times its item size exceed
/// `isize::MAX` bytes, even when a zero size leaves it empty.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{put_bytes, put_tag, put_varint};

    fn string(out: &mut Vec<u8>, number: u32, text: &str) {
        put_bytes(out, number, text.as_bytes());
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, ENTRY_KEY, key);
        put_bytes(&mut out, ENTRY_VALUE, value);
        out
    }

    fn varint_field(out: &mut Vec<u8>, number: u32, value: u64) {
        put_tag(out, number, 0);
        put_varint(out, value);
    }

    fn input_tensor(name: &str, datatype: &str, shape: &[i64], packed: bool) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, INPUT_NAME, name);
        string(&mut out, INPUT_DATATYPE, datatype);
        if packed {
            let mut sizes = Vec::new();
            for &size in shape {
                put_varint(&mut sizes, size as u64);
            }
            put_bytes(&mut out, INPUT_SHAPE, &sizes);
        } else {
            for &size in shape {
                varint_field(&mut out, INPUT_SHAPE, size as u64);
            }
        }
        out
    }

    fn wine(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, REQUEST_MODEL_NAME, "wine");
        string(&mut out, REQUEST_ID, "r1");
        put_bytes(
            &mut out,
            REQUEST_INPUTS,
            &input_tensor("input", "FP32", &[1, 13], true),
        );
        put_bytes(&mut out, REQUEST_RAW_INPUT_CONTENTS, data);
        out
    }

    #[test]
    fn reads_a_wine_request_borrowing_its_tensor() {
        let data = [7u8; 52];
        let buf = wine(&data);
        let request = decode_infer_request(&buf).unwrap();
        assert_eq!(
            (request.model_name, request.model_version, request.id),
            ("wine", "", "r1")
        );
        assert_eq!(request.inputs.len(), 1);
        assert_eq!(
            (
                request.inputs[0].name,
                request.inputs[0].datatype,
                &request.inputs[0].shape[..]
            ),
            ("input", "FP32", &[1, 13][..])
        );
        let raw = request.raw_input_contents[0];
        assert!(std::ptr::eq(raw.as_ptr(), buf[buf.len() - 52..].as_ptr())); // no copy
        let planned = plan_inputs(&request).unwrap();
        assert_eq!(planned[0].dims, vec![1, 13]);
        assert_eq!(planned[0].data, TensorData::Raw(&data[..]));
    }

    #[test]
    fn reads_parameters_outputs_and_skips_unknown_fields() {
        let mut buf = wine(&[0; 52]);
        let mut double = Vec::new();
        put_tag(&mut double, PARAMETER_DOUBLE, 1);
        double.extend_from_slice(&1.5f64.to_le_bytes());
        let mut text = Vec::new();
        string(&mut text, PARAMETER_STRING, "é");
        let mut flag = Vec::new();
        varint_field(&mut flag, PARAMETER_BOOL, 1);
        let mut negative = Vec::new();
        varint_field(&mut negative, PARAMETER_INT64, -3i64 as u64);
        let mut big = Vec::new();
        varint_field(&mut big, PARAMETER_UINT64, u64::MAX);
        put_bytes(&mut buf, REQUEST_PARAMETERS, &entry("d", &double));
        put_bytes(&mut buf, REQUEST_PARAMETERS, &entry("s", &text));
        put_bytes(&mut buf, REQUEST_PARAMETERS, &entry("b", &flag));
        put_bytes(&mut buf, REQUEST_PARAMETERS, &entry("i", &negative));
        put_bytes(&mut buf, REQUEST_PARAMETERS, &entry("u", &big));
        put_bytes(&mut buf, REQUEST_PARAMETERS, &entry("d", &flag)); // a later entry replaces
        put_bytes(&mut buf, REQUEST_PARAMETERS, b"\x0a\x01e"); // no value: unset
        let mut wanted = Vec::new();
        string(&mut wanted, OUTPUT_NAME, "probabilities");
        put_bytes(&mut wanted, OUTPUT_PARAMETERS, &entry("binary_data", &flag));
        put_bytes(&mut buf, REQUEST_OUTPUTS, &wanted);
        // Unknown fields of every wire type, and a known number with another wire type.
        varint_field(&mut buf, 99, 300);
        put_tag(&mut buf, 98, 1);
        buf.extend_from_slice(&[0; 8]);
        put_tag(&mut buf, 97, 5);
        buf.extend_from_slice(&[0; 4]);
        string(&mut buf, 96, "whatever");
        varint_field(&mut buf, REQUEST_MODEL_NAME, 1);
        let request = decode_infer_request(&buf).unwrap();
        assert_eq!(request.model_name, "wine");
        let p = &request.parameters;
        assert_eq!(parameter(p, "d"), Some(Parameter::Bool(true)));
        assert_eq!(parameter(p, "s"), Some(Parameter::String("é")));
        assert_eq!(parameter(p, "i"), Some(Parameter::Int64(-3)));
        assert_eq!(parameter(p, "u"), Some(Parameter::Uint64(u64::MAX)));
        assert_eq!(parameter(p, "e"), Some(Parameter::Unset));
        assert_eq!(parameter(p, "x"), None);
        assert_eq!(p.len(), 7);
        assert_eq!(request.outputs.len(), 1);
        assert_eq!(request.outputs[0].name, "probabilities");
        assert_eq!(
            parameter(&request.outputs[0].parameters, "binary_data"),
            Some(Parameter::Bool(true))
        );
        // A double first, then a later member of the oneof in the same value message.
        let mut merged = double.clone();
        varint_field(&mut merged, PARAMETER_INT64, 4);
        let mut one = Vec::new();
        put_bytes(&mut one, REQUEST_PARAMETERS, &entry("m", &merged));
        let request = decode_infer_request(&one).unwrap();
        assert_eq!(
            parameter(&request.parameters, "m"),
            Some(Parameter::Int64(4))
        );
        let request = decode_infer_request(&buf[..0]).unwrap();
        assert_eq!(request, InferRequest::default());
    }

    #[test]
    fn a_map_entry_with_any_other_field_is_not_in_the_map() {
        let mut flag = Vec::new();
        varint_field(&mut flag, PARAMETER_BOOL, 1);
        let kept = entry("k", &flag);
        let mut unknown_number = entry("a", &flag);
        string(&mut unknown_number, 3, "x");
        let mut key_as_varint = entry("b", &flag);
        varint_field(&mut key_as_varint, ENTRY_KEY, 0);
        let mut value_as_varint = Vec::new();
        string(&mut value_as_varint, ENTRY_KEY, "c");
        varint_field(&mut value_as_varint, ENTRY_VALUE, 2);
        // Unknown fields inside the value are the value's own: the entry stays.
        let mut odd_value = flag.clone();
        varint_field(&mut odd_value, 42, 7);
        let mut buf = Vec::new();
        for bytes in [&kept, &unknown_number, &key_as_varint, &value_as_varint, &entry("v", &odd_value)] {
            put_bytes(&mut buf, REQUEST_PARAMETERS, bytes);
        }
        let request = decode_infer_request(&buf).unwrap();
        let keys: Vec<&str> = request.parameters.iter().map(|(key, _)| *key).collect();
        assert_eq!(keys, ["k", "v"]);
        assert_eq!(parameter(&request.parameters, "v"), Some(Parameter::Bool(true)));
    }

    #[test]
    fn shape_packed_or_not_and_every_datatype() {
        for (name, size) in [
            ("BOOL", 1),
            ("UINT8", 1),
            ("UINT16", 2),
            ("UINT32", 4),
            ("UINT64", 8),
            ("INT8", 1),
            ("INT16", 2),
            ("INT32", 4),
            ("INT64", 8),
            ("FP16", 2),
            ("FP32", 4),
            ("FP64", 8),
            ("BF16", 2),
        ] {
            for packed in [true, false] {
                let mut buf = Vec::new();
                put_bytes(
                    &mut buf,
                    REQUEST_INPUTS,
                    &input_tensor("x", name, &[2, 3], packed),
                );
                put_bytes(&mut buf, REQUEST_RAW_INPUT_CONTENTS, &vec![1u8; 6 * size]);
                let request = decode_infer_request(&buf).unwrap();
                let planned = plan_inputs(&request).expect(name);
                assert_eq!(planned[0].datatype, Datatype::parse(name).unwrap());
                assert_eq!(planned[0].dims, vec![2, 3]);
            }
        }
    }

    #[test]
    fn bytes_elements_are_split() {
        let mut data = Vec::new();
        for element in [&b"ab"[..], b"", b"xyz"] {
            data.extend_from_slice(&(element.len() as u32).to_le_bytes());
            data.extend_from_slice(element);
        }
        assert_eq!(
            bytes_elements(&data).unwrap(),
            vec![&b"ab"[..], b"", b"xyz"]
        );
        assert_eq!(bytes_elements(b"").unwrap(), Vec::<&[u8]>::new());
        assert!(bytes_elements(&data[..data.len() - 1]).is_none());
        assert!(bytes_elements(b"\x01\x00").is_none());
        let mut buf = Vec::new();
        put_bytes(
            &mut buf,
            REQUEST_INPUTS,
            &input_tensor("t", "BYTES", &[3], false),
        );
        put_bytes(&mut buf, REQUEST_RAW_INPUT_CONTENTS, &data);
        let request = decode_infer_request(&buf).unwrap();
        let planned = plan_inputs(&request).unwrap();
        assert_eq!(
            planned[0].data,
            TensorData::Elements(vec![b"ab", b"", b"xyz"])
        );
    }

    #[test]
    fn what_the_python_reader_answers_is_declined() {
        let plan = |buf: &[u8]| plan_inputs(&decode_infer_request(buf).unwrap()).is_some();
        assert!(plan(&wine(&[0; 52])));
        assert!(!plan(&wine(&[0; 51]))); // size
        assert!(!plan(b"")); // no inputs
        let mut two = wine(&[0; 52]);
        put_bytes(&mut two, REQUEST_RAW_INPUT_CONTENTS, b""); // 2 raw entries, 1 input
        assert!(!plan(&two));
        let mut twice = wine(&[0; 52]);
        put_bytes(
            &mut twice,
            REQUEST_INPUTS,
            &input_tensor("input", "FP32", &[0], true),
        );
        put_bytes(&mut twice, REQUEST_RAW_INPUT_CONTENTS, b"");
        assert!(!plan(&twice)); // a name given twice
        let declined = |datatype: &str, shape: &[i64], data: &[u8], contents: bool| {
            let mut tensor = input_tensor("t", datatype, shape, true);
            if contents {
                put_bytes(&mut tensor, INPUT_CONTENTS, b"");
            }
            let mut buf = Vec::new();
            put_bytes(&mut buf, REQUEST_INPUTS, &tensor);
            put_bytes(&mut buf, REQUEST_RAW_INPUT_CONTENTS, data);
            !plan(&buf)
        };
        assert!(!declined("BOOL", &[2], b"\x00\x01", false));
        assert!(declined("BOOL", &[2], b"\x00\x02", false)); // BOOL bytes are 0 or 1
        assert!(declined("FP32", &[1], b"\x00\x00\x00\x00", true)); // typed contents
        assert!(declined("fp32", &[1], b"\x00\x00\x00\x00", false)); // unknown datatype
        assert!(declined("FP32", &[-1], b"", false)); // negative size
        assert!(declined("FP32", &[0, 1 << 62, 1 << 62], b"", false)); // too big for numpy
        assert!(declined("FP32", &[1 << 40, 1 << 40], b"", false)); // overflow
        assert!(declined("FP32", &[1; 65], b"\x00\x00\x00\x00", false)); // numpy's dims
        assert!(declined("BYTES", &[2], b"\x00\x00\x00\x00", false)); // 1 element of 2
        assert!(!declined("FP32", &[], b"\x00\x00\x00\x00", false)); // a scalar
        assert!(declined("BF16", &[], b"\x00\x00", false)); // the Python reader's own scalar
    }

    #[test]
    fn malformed_requests_are_errors() {
        let buf = wine(&[1; 52]);
        assert!(decode_infer_request(&buf[..buf.len() - 1]).is_err()); // truncated
        assert!(decode_infer_request(b"\x0a\x02\xff\xfe").is_err()); // model_name not UTF-8
        let mut bad_key = Vec::new();
        put_bytes(&mut bad_key, REQUEST_PARAMETERS, b"\x0a\x01\xff");
        let error = decode_infer_request(&bad_key).unwrap_err();
        assert!(error.message.contains("parameter name"), "{error}");
        let mut bad_shape = Vec::new();
        put_bytes(&mut bad_shape, REQUEST_INPUTS, b"\x1a\x01\x80"); // packed, truncated
        assert!(decode_infer_request(&bad_shape).is_err());
        assert!(decode_infer_request(b"\x0b").is_err()); // a group
    }

    #[test]
    fn no_input_of_any_bytes_panics() {
        let mut buf = wine(&[1; 52]);
        put_bytes(
            &mut buf,
            REQUEST_PARAMETERS,
            &entry("k", b"\x18\x01\x1a\x01x"),
        );
        for end in 0..buf.len() {
            if let Ok(request) = decode_infer_request(&buf[..end]) {
                let _ = plan_inputs(&request);
            }
        }
        for at in 0..buf.len() {
            for byte in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut changed = buf.clone();
                changed[at] = byte;
                if let Ok(request) = decode_infer_request(&changed) {
                    let _ = plan_inputs(&request);
                }
            }
        }
    }
}
