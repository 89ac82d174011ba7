//! The protobuf wire format of the two messages on the serving hot path: `inferd.v1.InferRequest`
//! (read) and `inferd.v1.InferResponse` with a tensors or JSON output (written).
//!
//! The server reads every `Infer` and `Stream` request with [`decode_request`] instead of the
//! generated message class, and writes tensor answers with [`encode_response`]: one call each
//! instead of a dozen attribute reads and writes through the message classes. Anything else (text,
//! blobs, parameters in the answer, streamed chunks) still goes through the generated code.
//!
//! Field numbers are those of `proto/inferd/v1/inference.proto`; [`FIELDS`] lists them so that a
//! test can compare them with the generated descriptors. Reading follows protobuf's rules:
//! unknown fields are skipped, a repeated scalar field may come packed or not, a later scalar
//! wins over an earlier one, an embedded message that comes twice is merged, and setting another
//! member of a oneof replaces the one set before. Strings must be UTF-8. No PyO3 here.

use std::fmt;

// The field numbers of inference.proto that this module reads or writes.
const REQUEST_MODEL: u32 = 1;
const REQUEST_ID: u32 = 2;
const REQUEST_INPUT: u32 = 3;
const REQUEST_PARAMETERS: u32 = 4;
const RESPONSE_MODEL: u32 = 1;
const RESPONSE_ID: u32 = 2;
const RESPONSE_OUTPUT: u32 = 3;
const RESPONSE_TIMINGS: u32 = 5;
const PAYLOAD_JSON: u32 = 1;
const PAYLOAD_TENSORS: u32 = 2;
const PAYLOAD_TEXT: u32 = 3;
const PAYLOAD_BLOB: u32 = 4;
const TENSORS_TENSORS: u32 = 1;
const TENSOR_NAME: u32 = 1;
const TENSOR_DTYPE: u32 = 2;
const TENSOR_SHAPE: u32 = 3;
const TENSOR_DATA: u32 = 4;
const BLOB_DATA: u32 = 1;
const BLOB_CONTENT_TYPE: u32 = 2;
const TIMING_STAGE: u32 = 1;
const TIMING_MS: u32 = 2;

/// (message.field, number) for every field above, so that a test can compare them with the
/// generated descriptors.
pub const FIELDS: [(&str, u32); 21] = [
    ("InferRequest.model", REQUEST_MODEL),
    ("InferRequest.id", REQUEST_ID),
    ("InferRequest.input", REQUEST_INPUT),
    ("InferRequest.parameters", REQUEST_PARAMETERS),
    ("InferResponse.model", RESPONSE_MODEL),
    ("InferResponse.id", RESPONSE_ID),
    ("InferResponse.output", RESPONSE_OUTPUT),
    ("InferResponse.timings", RESPONSE_TIMINGS),
    ("StageTiming.stage", TIMING_STAGE),
    ("StageTiming.ms", TIMING_MS),
    ("Payload.json", PAYLOAD_JSON),
    ("Payload.tensors", PAYLOAD_TENSORS),
    ("Payload.text", PAYLOAD_TEXT),
    ("Payload.blob", PAYLOAD_BLOB),
    ("Tensors.tensors", TENSORS_TENSORS),
    ("Tensor.name", TENSOR_NAME),
    ("Tensor.dtype", TENSOR_DTYPE),
    ("Tensor.shape", TENSOR_SHAPE),
    ("Tensor.data", TENSOR_DATA),
    ("Blob.data", BLOB_DATA),
    ("Blob.content_type", BLOB_CONTENT_TYPE),
];

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A request that is not valid protobuf (or not an `InferRequest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    /// Byte offset in the request where reading failed.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for WireError {}

/// One tensor of a request, borrowed from the request's bytes. Nothing is checked yet: the
/// binding checks shape against data when it builds the array, so that the error names it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    pub dtype: i32,
    pub shape: Vec<i64>,
    pub data: &'a [u8],
}

/// The request's `input`: which member of the `Payload` oneof was set.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Input<'a> {
    #[default]
    Missing,
    Json(&'a [u8]),
    Tensors(Vec<TensorRef<'a>>),
    Text(&'a str),
    Blob {
        data: &'a [u8],
        content_type: &'a str,
    },
}

/// An `InferRequest`, borrowed from its bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request<'a> {
    pub model: &'a str,
    pub id: &'a str,
    pub input: Input<'a>,
    /// The serialized `google.protobuf.Struct`, one slice per occurrence (protobuf merges
    /// occurrences of a message field, which is what parsing them concatenated does).
    pub parameters: Vec<&'a [u8]>,
}

/// One field's value (`oip_wire` reads with the same walker).
pub(crate) enum Value<'a> {
    Varint(u64),
    Len(&'a [u8]),
    /// A fixed64 or fixed32 value's bytes, little-endian.
    Fixed(&'a [u8]),
}

/// The fields of one message, in order; `base` is the message's offset in the whole request.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Whether every byte of the message has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> WireError {
        WireError {
            offset: self.base + self.pos,
            message: message.into(),
        }
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(self.error("varint longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(count)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.error("field runs past the end of its message"))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// The next field: (number, value, offset of the value in the whole request).
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>, usize)>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(self.error(format!("invalid field number {number}")));
        }
        let offset = self.base + self.pos;
        let value = match (tag & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            FIXED64 => Value::Fixed(self.take(8)?),
            LEN => {
                let length = usize::try_from(self.varint()?)
                    .map_err(|_| self.error("length does not fit in memory"))?;
                let offset = self.base + self.pos;
                return Ok(Some((
                    number as u32,
                    Value::Len(self.take(length)?),
                    offset,
                )));
            }
            FIXED32 => Value::Fixed(self.take(4)?),
            other => return Err(self.error(format!("unsupported wire type {other}"))),
        };
        Ok(Some((number as u32, value, offset)))
    }
}

pub(crate) fn utf8<'a>(bytes: &'a [u8], field: &str, offset: usize) -> Result<&'a str, WireError> {
    std::str::from_utf8(bytes).map_err(|error| WireError {
        offset: offset + error.valid_up_to(),
        message: format!("{field} is not valid UTF-8"),
    })
}

/// Reads an `InferRequest`.
pub fn decode_request(buf: &[u8]) -> Result<Request<'_>, WireError> {
    let mut request = Request::default();
    let mut fields = Fields::new(buf, 0);
    while let Some((number, value, offset)) = fields.next_field()? {
        match (number, value) {
            (REQUEST_MODEL, Value::Len(bytes)) => request.model = utf8(bytes, "model", offset)?,
            (REQUEST_ID, Value::Len(bytes)) => request.id = utf8(bytes, "id", offset)?,
            (REQUEST_INPUT, Value::Len(bytes)) => merge_payload(&mut request.input, bytes, offset)?,
            (REQUEST_PARAMETERS, Value::Len(bytes)) => request.parameters.push(bytes),
            _ => {} // unknown, or a known number with another wire type: skipped, as protobuf does
        }
    }
    Ok(request)
}

fn merge_payload<'a>(input: &mut Input<'a>, buf: &'a [u8], base: usize) -> Result<(), WireError> {
    let mut fields = Fields::new(buf, base);
    while let Some((number, value, offset)) = fields.next_field()? {
        let Value::Len(bytes) = value else { continue };
        match number {
            PAYLOAD_JSON => *input = Input::Json(bytes),
            PAYLOAD_TEXT => *input = Input::Text(utf8(bytes, "input.text", offset)?),
            PAYLOAD_TENSORS => {
                if !matches!(input, Input::Tensors(_)) {
                    *input = Input::Tensors(Vec::new());
                }
                let Input::Tensors(tensors) = input else {
                    unreachable!()
                };
                merge_tensors(tensors, bytes, offset)?;
            }
            PAYLOAD_BLOB => {
                if !matches!(input, Input::Blob { .. }) {
                    *input = Input::Blob {
                        data: b"",
                        content_type: "",
                    };
                }
                let Input::Blob { data, content_type } = input else {
                    unreachable!()
                };
                let mut blob = Fields::new(bytes, offset);
                while let Some((number, value, offset)) = blob.next_field()? {
                    match (number, value) {
                        (BLOB_DATA, Value::Len(bytes)) => *data = bytes,
                        (BLOB_CONTENT_TYPE, Value::Len(bytes)) => {
                            *content_type = utf8(bytes, "input.blob.content_type", offset)?;
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn merge_tensors<'a>(
    tensors: &mut Vec<TensorRef<'a>>,
    buf: &'a [u8],
    base: usize,
) -> Result<(), WireError> {
    let mut fields = Fields::new(buf, base);
    while let Some((number, value, offset)) = fields.next_field()? {
        if let (TENSORS_TENSORS, Value::Len(bytes)) = (number, value) {
            tensors.push(decode_tensor(bytes, offset)?);
        }
    }
    Ok(())
}

fn decode_tensor(buf: &[u8], base: usize) -> Result<TensorRef<'_>, WireError> {
    let mut tensor = TensorRef::default();
    let mut fields = Fields::new(buf, base);
    while let Some((number, value, offset)) = fields.next_field()? {
        match (number, value) {
            (TENSOR_NAME, Value::Len(bytes)) => tensor.name = utf8(bytes, "tensor name", offset)?,
            // An enum is an int32: its low 32 bits, as protobuf reads it.
            (TENSOR_DTYPE, Value::Varint(value)) => tensor.dtype = value as u32 as i32,
            (TENSOR_SHAPE, Value::Varint(value)) => tensor.shape.push(value as i64),
            (TENSOR_SHAPE, Value::Len(packed)) => {
                let mut sizes = Fields::new(packed, offset);
                while sizes.pos < packed.len() {
                    tensor.shape.push(sizes.varint()? as i64);
                }
            }
            (TENSOR_DATA, Value::Len(bytes)) => tensor.data = bytes,
            _ => {}
        }
    }
    Ok(tensor)
}

// -- writing ---------------------------------------------------------------------------------

/// One output tensor to write: its data already in the wire layout (little-endian, C order;
/// for strings, each element's 4-byte length and bytes).
pub struct OutTensor<'a> {
    pub name: &'a str,
    pub dtype: i32,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

pub(crate) fn varint_len(value: u64) -> usize {
    // 1 byte per 7 bits, at least 1.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_tag(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, u64::from(number) << 3 | u64::from(wire_type));
}

/// Size of a length-delimited field (tag, length, contents) of `length` bytes, numbers < 16.
pub(crate) fn len_field(length: usize) -> usize {
    1 + varint_len(length as u64) + length
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_tag(out, number, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Proto3 leaves fields at their default out: empty strings and bytes, zeros, empty lists.
fn bytes_size(bytes: &[u8]) -> usize {
    if bytes.is_empty() {
        0
    } else {
        len_field(bytes.len())
    }
}

fn put_bytes_if_any(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_bytes(out, number, bytes);
    }
}

fn shape_size(shape: &[usize]) -> usize {
    shape.iter().map(|&size| varint_len(size as u64)).sum()
}

fn tensor_size(tensor: &OutTensor<'_>) -> usize {
    let dtype = if tensor.dtype == 0 {
        0
    } else {
        1 + varint_len(i64::from(tensor.dtype) as u64)
    };
    let shape = if tensor.shape.is_empty() {
        0
    } else {
        len_field(shape_size(tensor.shape))
    };
    bytes_size(tensor.name.as_bytes()) + dtype + shape + bytes_size(tensor.data)
}

fn timing_size(stage: &str, ms: f64) -> usize {
    bytes_size(stage.as_bytes()) + if ms.to_bits() == 0 { 0 } else { 9 }
}

/// What an `InferResponse` written here carries as its output.
pub enum Answer<'a> {
    Tensors(&'a [OutTensor<'a>]),
    /// UTF-8 JSON, written as is.
    Json(&'a [u8]),
}

/// Writes an `InferResponse` with `answer` as its output and the stage timings.
pub fn encode_response(
    model: &str,
    id: &str,
    answer: &Answer<'_>,
    timings: &[(&str, f64)],
) -> Vec<u8> {
    let answer_size = match answer {
        Answer::Tensors(tensors) => tensors
            .iter()
            .map(|tensor| len_field(tensor_size(tensor)))
            .sum(),
        Answer::Json(json) => json.len(),
    };
    // A oneof member is written even when empty: that it is set is what it says.
    let payload_size = len_field(answer_size);
    let timings_size: usize = timings
        .iter()
        .map(|&(stage, ms)| len_field(timing_size(stage, ms)))
        .sum();
    let total = bytes_size(model.as_bytes())
        + bytes_size(id.as_bytes())
        + len_field(payload_size)
        + timings_size;
    let mut out = Vec::with_capacity(total);
    put_bytes_if_any(&mut out, RESPONSE_MODEL, model.as_bytes());
    put_bytes_if_any(&mut out, RESPONSE_ID, id.as_bytes());
    put_tag(&mut out, RESPONSE_OUTPUT, LEN);
    put_varint(&mut out, payload_size as u64);
    let tensors = match answer {
        Answer::Json(json) => {
            put_bytes(&mut out, PAYLOAD_JSON, json);
            &[][..]
        }
        Answer::Tensors(tensors) => {
            put_tag(&mut out, PAYLOAD_TENSORS, LEN);
            put_varint(&mut out, answer_size as u64);
            tensors
        }
    };
    for tensor in tensors {
        put_tag(&mut out, TENSORS_TENSORS, LEN);
        put_varint(&mut out, tensor_size(tensor) as u64);
        put_bytes_if_any(&mut out, TENSOR_NAME, tensor.name.as_bytes());
        if tensor.dtype != 0 {
            put_tag(&mut out, TENSOR_DTYPE, VARINT);
            put_varint(&mut out, i64::from(tensor.dtype) as u64);
        }
        if !tensor.shape.is_empty() {
            put_tag(&mut out, TENSOR_SHAPE, LEN);
            put_varint(&mut out, shape_size(tensor.shape) as u64);
            for &size in tensor.shape {
                put_varint(&mut out, size as u64);
            }
        }
        put_bytes_if_any(&mut out, TENSOR_DATA, tensor.data);
    }
    for &(stage, ms) in timings {
        put_tag(&mut out, RESPONSE_TIMINGS, LEN);
        put_varint(&mut out, timing_size(stage, ms) as u64);
        put_bytes_if_any(&mut out, TIMING_STAGE, stage.as_bytes());
        if ms.to_bits() != 0 {
            put_tag(&mut out, TIMING_MS, FIXED64);
            out.extend_from_slice(&ms.to_le_bytes());
        }
    }
    debug_assert_eq!(out.len(), total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
        put_bytes(out, number, bytes);
    }

    fn tensor(name: &str, dtype: u64, shape: &[u64], data: &[u8], packed: bool) -> Vec<u8> {
        let mut out = Vec::new();
        field(&mut out, TENSOR_NAME, name.as_bytes());
        put_tag(&mut out, TENSOR_DTYPE, VARINT);
        put_varint(&mut out, dtype);
        if packed {
            let mut sizes = Vec::new();
            for &size in shape {
                put_varint(&mut sizes, size);
            }
            field(&mut out, TENSOR_SHAPE, &sizes);
        } else {
            for &size in shape {
                put_tag(&mut out, TENSOR_SHAPE, VARINT);
                put_varint(&mut out, size);
            }
        }
        field(&mut out, TENSOR_DATA, data);
        out
    }

    /// A `Payload` holding these tensors (each an encoded `Tensor`).
    fn tensors_payload(tensors: &[Vec<u8>]) -> Vec<u8> {
        let mut list = Vec::new();
        for tensor in tensors {
            field(&mut list, TENSORS_TENSORS, tensor);
        }
        let mut payload = Vec::new();
        field(&mut payload, PAYLOAD_TENSORS, &list);
        payload
    }

    fn request_with(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        field(&mut out, REQUEST_MODEL, b"wine");
        field(&mut out, REQUEST_ID, b"r1");
        field(&mut out, REQUEST_INPUT, payload);
        out
    }

    #[test]
    fn reads_tensors_packed_or_not_and_skips_unknown_fields() {
        let payload = tensors_payload(&[
            tensor("a", 11, &[1, 2], &[0; 8], true),
            tensor("b", 5, &[3], &[1; 24], false),
        ]);
        let mut buf = request_with(&payload);
        put_tag(&mut buf, 99, VARINT); // unknown fields of every wire type
        put_varint(&mut buf, 300);
        put_tag(&mut buf, 98, FIXED64);
        buf.extend_from_slice(&[0; 8]);
        put_tag(&mut buf, 97, FIXED32);
        buf.extend_from_slice(&[0; 4]);
        field(&mut buf, 96, b"whatever");
        let request = decode_request(&buf).unwrap();
        assert_eq!((request.model, request.id), ("wine", "r1"));
        let Input::Tensors(tensors) = request.input else {
            panic!("{:?}", request.input)
        };
        assert_eq!(tensors.len(), 2);
        assert_eq!(
            (tensors[0].name, tensors[0].dtype, &tensors[0].shape[..]),
            ("a", 11, &[1, 2][..])
        );
        assert_eq!(
            (tensors[1].name, tensors[1].dtype, &tensors[1].shape[..]),
            ("b", 5, &[3][..])
        );
        assert_eq!(tensors[1].data, &[1; 24]);
    }

    #[test]
    fn later_members_replace_earlier_ones_and_messages_merge() {
        let mut first = Vec::new();
        field(&mut first, PAYLOAD_TEXT, "hello".as_bytes());
        let second = tensors_payload(&[tensor("a", 11, &[0], b"", true)]);
        let mut buf = request_with(&first);
        field(&mut buf, REQUEST_INPUT, &second);
        field(&mut buf, REQUEST_INPUT, &second); // the same member again: its lists append
        field(&mut buf, REQUEST_MODEL, b"other"); // a later scalar wins
        let request = decode_request(&buf).unwrap();
        assert_eq!(request.model, "other");
        let Input::Tensors(tensors) = request.input else {
            panic!()
        };
        assert_eq!(tensors.len(), 2);
    }

    #[test]
    fn reads_json_text_blob_and_parameters() {
        let mut payload = Vec::new();
        field(&mut payload, PAYLOAD_JSON, b"[{}]");
        let mut buf = request_with(&payload);
        field(&mut buf, REQUEST_PARAMETERS, b"\x0a\x00");
        field(&mut buf, REQUEST_PARAMETERS, b"\x0a\x01");
        let request = decode_request(&buf).unwrap();
        assert_eq!(request.input, Input::Json(b"[{}]"));
        assert_eq!(request.parameters, vec![&b"\x0a\x00"[..], &b"\x0a\x01"[..]]);

        let mut blob = Vec::new();
        field(&mut blob, BLOB_DATA, b"\xff\x00");
        field(&mut blob, BLOB_CONTENT_TYPE, b"audio/wav");
        let mut payload = Vec::new();
        field(&mut payload, PAYLOAD_BLOB, &blob);
        let buf = request_with(&payload);
        let request = decode_request(&buf).unwrap();
        assert_eq!(
            request.input,
            Input::Blob {
                data: b"\xff\x00",
                content_type: "audio/wav"
            }
        );
        assert_eq!(decode_request(b"").unwrap(), Request::default());
    }

    #[test]
    fn malformed_requests_name_the_byte() {
        // A length past the end.
        let error = decode_request(b"\x0a\x05ab").unwrap_err();
        assert_eq!(error.offset, 2);
        assert!(error.message.contains("past the end"), "{error}");
        // A truncated varint, an invalid field number, a group, bad UTF-8.
        assert!(decode_request(b"\x08\x80")
            .unwrap_err()
            .message
            .contains("truncated"));
        assert!(decode_request(b"\x00\x01")
            .unwrap_err()
            .message
            .contains("field number 0"));
        assert!(decode_request(b"\x0b")
            .unwrap_err()
            .message
            .contains("wire type 3"));
        let error = decode_request(b"\x0a\x03a\xffb").unwrap_err();
        assert_eq!(
            (error.offset, error.message.as_str()),
            (3, "model is not valid UTF-8")
        );
        // A varint of 11 bytes.
        assert!(decode_request(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .unwrap_err()
        .message
        .contains("varint"));
    }

    #[test]
    fn no_input_of_any_bytes_panics() {
        // Every prefix of a valid request, and every single-byte change to it.
        let buf = request_with(&tensors_payload(&[tensor(
            "input",
            11,
            &[1, 13],
            &[7; 52],
            true,
        )]));
        for end in 0..buf.len() {
            let _ = decode_request(&buf[..end]);
        }
        for at in 0..buf.len() {
            for byte in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut changed = buf.clone();
                changed[at] = byte;
                let _ = decode_request(&changed);
            }
        }
    }

    #[test]
    fn writes_what_it_reads_back() {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let shape = [1usize, 3];
        let tensors = [OutTensor {
            name: "probabilities",
            dtype: 11,
            shape: &shape,
            data: &data,
        }];
        let out = encode_response(
            "wine",
            "",
            &Answer::Tensors(&tensors),
            &[("run", 0.25), ("total", 0.0)],
        );
        // Read it back with the request reader's field walker: model, output, two timings.
        let mut fields = Fields::new(&out, 0);
        let mut seen = Vec::new();
        while let Some((number, value, _)) = fields.next_field().unwrap() {
            let Value::Len(bytes) = value else { panic!() };
            seen.push(number);
            if number == RESPONSE_OUTPUT {
                let mut input = Input::Missing;
                merge_payload(&mut input, bytes, 0).unwrap();
                let Input::Tensors(tensors) = input else {
                    panic!()
                };
                assert_eq!(tensors[0].name, "probabilities");
                assert_eq!(
                    (tensors[0].dtype, &tensors[0].shape[..], tensors[0].data),
                    (11, &[1, 3][..], &data[..])
                );
            }
            if number == RESPONSE_TIMINGS && seen.len() == 3 {
                assert_eq!(bytes, b"\x0a\x03run\x11\x00\x00\x00\x00\x00\x00\xd0\x3f");
            }
            if number == RESPONSE_TIMINGS && seen.len() == 4 {
                assert_eq!(bytes, b"\x0a\x05total"); // 0.0 left out, as proto3 does
            }
        }
        assert_eq!(
            seen,
            vec![
                RESPONSE_MODEL,
                RESPONSE_OUTPUT,
                RESPONSE_TIMINGS,
                RESPONSE_TIMINGS
            ]
        );
    }

    #[test]
    fn writes_json_answers_even_empty() {
        for json in [&b"[{\"label\": 1}]"[..], b""] {
            let out = encode_response("m", "id", &Answer::Json(json), &[]);
            let request = decode_request(&out).unwrap(); // the same field numbers for 1 to 3
            assert_eq!((request.model, request.id), ("m", "id"));
            assert_eq!(request.input, Input::Json(json));
        }
    }

    #[test]
    fn varint_lengths() {
        for value in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            assert_eq!(Fields::new(&out, 0).varint().unwrap(), value);
        }
    }
}
