//! The Open Inference Protocol's `inference.ModelInferResponse` on the wire (write only): what
//! the server's `ModelInfer` answers, and, wrapped in a `ModelStreamInferResponse`, what
//! `ModelStreamInfer` sends.
//!
//! [`encoded_len`] says how many bytes [`encode_into`] writes, so that the binding can write
//! straight into a new Python `bytes` (one copy of each tensor, made with the GIL released
//! when it is large). It writes what the Python writer (`inferd.server.oip_tensors`, the
//! generated message class) writes, as protobuf reads it: proto3 leaves empty strings and a
//! 0-d tensor's empty shape out, `shape` is packed, every `raw_output_contents` entry is
//! written even when empty, and a parameter's oneof member is written even at its default
//! (that it is set is what it says).
//!
//! Field numbers are those of `proto/inference/grpc_service.proto` ([`FIELDS`], which a test
//! compares with the generated descriptors). No PyO3 here.

use crate::oip_wire::Parameter;

const RESPONSE_MODEL_NAME: u32 = 1;
const RESPONSE_MODEL_VERSION: u32 = 2;
const RESPONSE_ID: u32 = 3;
const RESPONSE_PARAMETERS: u32 = 4;
const RESPONSE_OUTPUTS: u32 = 5;
const RESPONSE_RAW_OUTPUT_CONTENTS: u32 = 6;
const OUTPUT_NAME: u32 = 1;
const OUTPUT_DATATYPE: u32 = 2;
const OUTPUT_SHAPE: u32 = 3;
const PARAMETER_BOOL: u32 = 1;
const PARAMETER_INT64: u32 = 2;
const PARAMETER_STRING: u32 = 3;
const PARAMETER_DOUBLE: u32 = 4;
const PARAMETER_UINT64: u32 = 5;
const STREAM_INFER_RESPONSE: u32 = 2;
// A map<string, V> entry is a message of its own: key = 1, value = 2.
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// (message.field, number) for every field above.
pub const FIELDS: [(&str, u32); 15] = [
    ("ModelInferResponse.model_name", RESPONSE_MODEL_NAME),
    ("ModelInferResponse.model_version", RESPONSE_MODEL_VERSION),
    ("ModelInferResponse.id", RESPONSE_ID),
    ("ModelInferResponse.parameters", RESPONSE_PARAMETERS),
    ("ModelInferResponse.outputs", RESPONSE_OUTPUTS),
    (
        "ModelInferResponse.raw_output_contents",
        RESPONSE_RAW_OUTPUT_CONTENTS,
    ),
    ("InferOutputTensor.name", OUTPUT_NAME),
    ("InferOutputTensor.datatype", OUTPUT_DATATYPE),
    ("InferOutputTensor.shape", OUTPUT_SHAPE),
    ("InferParameter.bool_param", PARAMETER_BOOL),
    ("InferParameter.int64_param", PARAMETER_INT64),
    ("InferParameter.string_param", PARAMETER_STRING),
    ("InferParameter.double_param", PARAMETER_DOUBLE),
    ("InferParameter.uint64_param", PARAMETER_UINT64),
    (
        "ModelStreamInferResponse.infer_response",
        STREAM_INFER_RESPONSE,
    ),
];

/// An output tensor's contents as `raw_output_contents` holds them.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputData<'a> {
    /// Fixed-size elements, little-endian and row-major, as they go.
    Raw(&'a [u8]),
    /// BYTES: each element goes as a 4-byte little-endian length and its bytes.
    Elements(Vec<&'a [u8]>),
}

impl OutputData<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Raw(data) => data.len(),
            Self::Elements(elements) => elements.iter().map(|element| 4 + element.len()).sum(),
        }
    }
}

/// One output: its `InferOutputTensor` and its `raw_output_contents` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Output<'a> {
    pub name: &'a str,
    pub datatype: &'a str,
    pub shape: Vec<i64>,
    pub data: OutputData<'a>,
}

/// A `ModelInferResponse` to write, borrowed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InferResponse<'a> {
    pub model_name: &'a str,
    pub model_version: &'a str,
    pub id: &'a str,
    /// The parameters map's entries, in order (a later entry of a key wins, as it is read).
    pub parameters: Vec<(&'a str, Parameter<'a>)>,
    pub outputs: Vec<Output<'a>>,
}

impl InferResponse<'_> {
    /// The bytes of all the outputs' contents: what is worth copying without the GIL.
    pub fn contents_len(&self) -> usize {
        self.outputs.iter().map(|output| output.data.len()).sum()
    }
}

fn varint_len(value: u64) -> usize {
    // 1 byte per 7 bits, at least 1.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Size of a length-delimited field (tag, length, contents) of `length` bytes, numbers < 16.
fn len_field(length: usize) -> usize {
    1 + varint_len(length as u64) + length
}

/// Proto3 leaves an empty string out.
fn string_size(text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        len_field(text.len())
    }
}

fn parameter_size(parameter: &Parameter<'_>) -> usize {
    match *parameter {
        Parameter::Unset => 0,
        Parameter::Bool(_) => 2,
        Parameter::Int64(number) => 1 + varint_len(number as u64),
        Parameter::String(text) => len_field(text.len()),
        Parameter::Double(_) => 9,
        Parameter::Uint64(number) => 1 + varint_len(number),
    }
}

fn entry_size(key: &str, parameter: &Parameter<'_>) -> usize {
    string_size(key) + len_field(parameter_size(parameter))
}

fn shape_size(shape: &[i64]) -> usize {
    shape.iter().map(|&size| varint_len(size as u64)).sum()
}

fn tensor_size(output: &Output<'_>) -> usize {
    let shape = if output.shape.is_empty() {
        0
    } else {
        len_field(shape_size(&output.shape))
    };
    string_size(output.name) + string_size(output.datatype) + shape
}

fn response_size(response: &InferResponse<'_>) -> usize {
    let parameters: usize = response
        .parameters
        .iter()
        .map(|(key, parameter)| len_field(entry_size(key, parameter)))
        .sum();
    let outputs: usize = response
        .outputs
        .iter()
        .map(|output| len_field(tensor_size(output)) + len_field(output.data.len()))
        .sum();
    string_size(response.model_name)
        + string_size(response.model_version)
        + string_size(response.id)
        + parameters
        + outputs
}

/// How many bytes [`encode_into`] writes: the `ModelInferResponse`, or with `stream` the
/// `ModelStreamInferResponse` that holds it.
pub fn encoded_len(response: &InferResponse<'_>, stream: bool) -> usize {
    let size = response_size(response);
    if stream {
        len_field(size)
    } else {
        size
    }
}

/// A writer into a buffer of exactly the size [`encoded_len`] said (a wrong size is a bug:
/// it panics, which the binding's guard turns into an ordinary error).
struct Out<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Out<'_> {
    fn slice(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf[self.at] = (value as u8) | 0x80;
            self.at += 1;
            value >>= 7;
        }
        self.buf[self.at] = value as u8;
        self.at += 1;
    }

    fn tag(&mut self, number: u32, wire_type: u8) {
        self.varint(u64::from(number) << 3 | u64::from(wire_type));
    }

    fn len_header(&mut self, number: u32, length: usize) {
        self.tag(number, LEN);
        self.varint(length as u64);
    }

    fn bytes(&mut self, number: u32, bytes: &[u8]) {
        self.len_header(number, bytes.len());
        self.slice(bytes);
    }

    fn string(&mut self, number: u32, text: &str) {
        if !text.is_empty() {
            self.bytes(number, text.as_bytes());
        }
    }

    fn parameter(&mut self, parameter: &Parameter<'_>) {
        match *parameter {
            Parameter::Unset => {}
            Parameter::Bool(flag) => {
                self.tag(PARAMETER_BOOL, VARINT);
                self.varint(u64::from(flag));
            }
            Parameter::Int64(number) => {
                self.tag(PARAMETER_INT64, VARINT);
                self.varint(number as u64);
            }
            Parameter::String(text) => self.bytes(PARAMETER_STRING, text.as_bytes()),
            Parameter::Double(number) => {
                self.tag(PARAMETER_DOUBLE, FIXED64);
                self.slice(&number.to_le_bytes());
            }
            Parameter::Uint64(number) => {
                self.tag(PARAMETER_UINT64, VARINT);
                self.varint(number);
            }
        }
    }
}

/// Writes the response (with `stream`, as a `ModelStreamInferResponse`'s `infer_response`)
/// into `buf`, which must be [`encoded_len`] bytes long.
pub fn encode_into(response: &InferResponse<'_>, stream: bool, buf: &mut [u8]) {
    let mut out = Out { buf, at: 0 };
    if stream {
        out.len_header(STREAM_INFER_RESPONSE, response_size(response));
    }
    out.string(RESPONSE_MODEL_NAME, response.model_name);
    out.string(RESPONSE_MODEL_VERSION, response.model_version);
    out.string(RESPONSE_ID, response.id);
    for (key, parameter) in &response.parameters {
        out.len_header(RESPONSE_PARAMETERS, entry_size(key, parameter));
        out.string(ENTRY_KEY, key);
        out.len_header(ENTRY_VALUE, parameter_size(parameter));
        out.parameter(parameter);
    }
    for output in &response.outputs {
        out.len_header(RESPONSE_OUTPUTS, tensor_size(output));
        out.string(OUTPUT_NAME, output.name);
        out.string(OUTPUT_DATATYPE, output.datatype);
        if !output.shape.is_empty() {
            out.len_header(OUTPUT_SHAPE, shape_size(&output.shape));
            for &size in &output.shape {
                out.varint(size as u64);
            }
        }
    }
    for output in &response.outputs {
        out.len_header(RESPONSE_RAW_OUTPUT_CONTENTS, output.data.len());
        match &output.data {
            OutputData::Raw(data) => out.slice(data),
            OutputData::Elements(elements) => {
                for element in elements {
                    out.slice(&(element.len() as u32).to_le_bytes());
                    out.slice(element);
                }
            }
        }
    }
    assert_eq!(out.at, out.buf.len(), "the response's size was miscounted");
}

/// The response's bytes in a new vector (the binding writes into Python's `bytes` instead).
pub fn encode(response: &InferResponse<'_>, stream: bool) -> Vec<u8> {
    let mut buf = vec![0; encoded_len(response, stream)];
    encode_into(response, stream, &mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Fields, Value};

    /// Each field of a message as (number, value), read back with the reader's own code.
    fn fields(buf: &[u8]) -> Vec<(u32, Value<'_>)> {
        let mut fields = Fields::new(buf, 0);
        let mut out = Vec::new();
        while let Some((number, value, _)) = fields.next_field().unwrap() {
            out.push((number, value));
        }
        out
    }

    fn len<'a>(value: &Value<'a>) -> &'a [u8] {
        match value {
            Value::Len(bytes) => bytes,
            _ => panic!("not length-delimited"),
        }
    }

    fn wine() -> InferResponse<'static> {
        InferResponse {
            model_name: "wine",
            model_version: "1",
            id: "w",
            parameters: vec![],
            outputs: vec![Output {
                name: "label",
                datatype: "INT64",
                shape: vec![2],
                data: OutputData::Raw(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]),
            }],
        }
    }

    #[test]
    fn writes_a_wine_answer_field_by_field() {
        let buf = encode(&wine(), false);
        let read = fields(&buf);
        let numbers: Vec<u32> = read.iter().map(|(number, _)| *number).collect();
        assert_eq!(numbers, [1, 2, 3, 5, 6]);
        assert_eq!(len(&read[0].1), b"wine");
        assert_eq!(len(&read[2].1), b"w");
        let tensor = fields(len(&read[3].1));
        assert_eq!(len(&tensor[0].1), b"label");
        assert_eq!(len(&tensor[1].1), b"INT64");
        assert_eq!(len(&tensor[2].1), b"\x02"); // packed shape
        assert_eq!(len(&read[4].1).len(), 16);
    }

    #[test]
    fn leaves_defaults_out_but_keeps_every_contents_entry_and_oneof_member() {
        let response = InferResponse {
            parameters: vec![
                ("", Parameter::Bool(false)),
                ("n", Parameter::Int64(-1)),
                ("x", Parameter::Double(0.0)),
                ("s", Parameter::String("")),
                ("u", Parameter::Uint64(u64::MAX)),
            ],
            outputs: vec![Output {
                name: "",
                datatype: "FP32",
                shape: vec![],
                data: OutputData::Raw(&[]),
            }],
            ..InferResponse::default()
        };
        let buf = encode(&response, false);
        assert_eq!(buf.len(), encoded_len(&response, false));
        let read = fields(&buf);
        let numbers: Vec<u32> = read.iter().map(|(number, _)| *number).collect();
        assert_eq!(numbers, [4, 4, 4, 4, 4, 5, 6]);
        let entry = fields(len(&read[0].1));
        assert_eq!(entry.len(), 1); // an empty key is left out, the value is not
        assert_eq!(len(&entry[0].1), b"\x08\x00"); // bool_param = false, written
        let negative = fields(len(&fields(len(&read[1].1))[1].1));
        assert!(matches!(negative[0], (2, Value::Varint(value)) if value as i64 == -1));
        assert_eq!(fields(len(&fields(len(&read[2].1))[1].1))[0].0, 4);
        assert_eq!(len(&fields(len(&fields(len(&read[3].1))[1].1))[0].1), b"");
        assert_eq!(len(&read[5].1), b"\x12\x04FP32"); // no name, no shape
        assert_eq!(len(&read[6].1), b""); // the contents entry, empty
    }

    #[test]
    fn bytes_elements_are_length_prefixed() {
        let response = InferResponse {
            outputs: vec![Output {
                name: "text",
                datatype: "BYTES",
                shape: vec![3],
                data: OutputData::Elements(vec![b"ab", b"", "é".as_bytes()]),
            }],
            ..InferResponse::default()
        };
        let buf = encode(&response, false);
        let read = fields(&buf);
        assert_eq!(
            len(&read[1].1),
            b"\x02\x00\x00\x00ab\x00\x00\x00\x00\x02\x00\x00\x00\xc3\xa9"
        );
    }

    #[test]
    fn a_stream_response_holds_the_response() {
        let response = wine();
        let plain = encode(&response, false);
        let stream = encode(&response, true);
        assert_eq!(stream.len(), encoded_len(&response, true));
        let read = fields(&stream);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].0, STREAM_INFER_RESPONSE);
        assert_eq!(len(&read[0].1), &plain[..]);
    }

    #[test]
    fn sizes_are_counted_exactly_across_varint_lengths() {
        let big = vec![7u8; 300];
        for count in [0usize, 1, 127, 128, 300] {
            for size in [0i64, 127, 128, 1 << 20, -1] {
                let response = InferResponse {
                    id: "x",
                    parameters: vec![("k", Parameter::String("v".repeat(count).leak()))],
                    outputs: vec![Output {
                        name: "o",
                        datatype: "UINT8",
                        shape: vec![size, count as i64],
                        data: OutputData::Raw(&big[..count]),
                    }],
                    ..InferResponse::default()
                };
                for stream in [false, true] {
                    // encode asserts that it wrote exactly the bytes counted.
                    assert_eq!(
                        encode(&response, stream).len(),
                        encoded_len(&response, stream)
                    );
                }
            }
        }
    }
}
