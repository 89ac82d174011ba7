//! One JSON document on this thread, its records read in one pass.

use crate::schema::Schema;

use super::columns::{Batch, Column};
use super::scanner::{skip_whitespace, syntax, Scan, Scanner};
use super::skipping::value_end;
use super::split::{
    parse_json_threaded, parse_span, Layout, PARALLEL_MIN_BYTES, PARALLEL_MIN_THREADS,
};
use super::{ParseError, SyntaxError};

/// JSON is UTF-8, and `json.loads` decodes bytes before it parses them: invalid UTF-8
/// anywhere is the error, whatever else is wrong.
fn as_utf8(data: &[u8]) -> Result<&str, SyntaxError> {
    std::str::from_utf8(data).map_err(|error| syntax(error.valid_up_to(), "invalid UTF-8"))
}

/// The scanner checks UTF-8 only in the strings it reads (see [`Scanner`]), which proves a
/// document it accepts UTF-8. When it refuses one, for whatever reason, the whole input is
/// checked, so that the error is the first invalid UTF-8 if there is any, as from
/// [`as_utf8`] before parsing, and otherwise the scanner's.
pub(super) fn utf8_first<T, E: From<SyntaxError>>(
    data: &[u8],
    result: Result<T, E>,
) -> Result<T, E> {
    if result.is_err() {
        as_utf8(data)?;
    }
    result
}

/// Parses JSON bytes (an array of objects, one object, or NDJSON) into the schema's tensors.
pub fn parse_json(schema: &Schema, data: &[u8]) -> Result<Vec<Column>, ParseError> {
    if data.len() < PARALLEL_MIN_BYTES || rayon::current_num_threads() < PARALLEL_MIN_THREADS {
        return utf8_first(data, parse_document(schema, data));
    }
    parse_json_threaded(schema, data)
}

/// [`parse_json`] on this one thread, whatever the input's size (for benchmarks).
pub fn parse_json_one_thread(schema: &Schema, data: &[u8]) -> Result<Vec<Column>, ParseError> {
    utf8_first(data, parse_document(schema, data))
}

/// One pass over the whole document on this thread, whatever its layout (see [`Layout`]).
/// The input is checked as UTF-8 as it is read: see [`utf8_first`].
pub(super) fn parse_document(schema: &Schema, data: &[u8]) -> Result<Vec<Column>, ParseError> {
    let start = skip_whitespace(data, 0);
    if start == data.len() {
        return Err(ParseError::Syntax(syntax(start, EMPTY_INPUT)));
    }
    if data[start] != b'[' {
        // One object, or NDJSON: one pass over the values, as the threaded path reads them.
        // A small input is most likely one object: no pass ahead to guess the records' count.
        let estimate = if data.len() < ESTIMATE_MIN_BYTES {
            1
        } else {
            value_end(data, start).map_or(0, |end| data.len() / (end - start).max(16))
        };
        let span = parse_span(schema, data, start, usize::MAX, estimate, Layout::Sequence);
        return Ok(span.whole()?.into_columns());
    }
    let mut scanner = Scanner::new(data, start, 0).limited(schema);
    scanner.enter()?;
    if scanner.empty(b']') {
        scanner.end()?;
        return Ok(Batch::new(schema, 0).into_columns());
    }
    // The records from the first (the scanner is on its first byte), as the threaded path
    // reads each of its pieces; rows reserved for their likely count, from the first's size.
    let first = scanner.position;
    let estimate = value_end(data, first)
        .map(|end| data.len() / (end - start).max(16))
        .unwrap_or(0);
    let span = parse_span(schema, data, first, usize::MAX, estimate, Layout::Array);
    Ok(span.whole()?.into_columns())
}

/// Inputs of one object or NDJSON smaller than this reserve one record's rows, with no look
/// at the first record's size.
const ESTIMATE_MIN_BYTES: usize = 64 * 1024;

const EMPTY_INPUT: &str = "empty input: expected a JSON array of objects, an object, or NDJSON";

/// Parses the bytes as one JSON document with the records parser's scanner and counts its
/// scalars, decoding every one (numbers to integers or correctly rounded floats, strings with
/// their escapes) but building nothing: the cost of the parser alone, for benchmarks.
pub fn count_scalars(data: &[u8]) -> Result<usize, SyntaxError> {
    let mut scanner = Scanner::new(data, 0, 0);
    let count = scanner
        .count()
        .and_then(|count| scanner.end().map(|()| count))
        .map_err(|error| *error);
    utf8_first(data, count)
}

impl Scanner<'_> {
    /// Parses any value, decoding every scalar (numbers to float64 or integers, strings with
    /// their escapes), and counts the scalars: the parser's cost without the schema.
    pub(super) fn count(&mut self) -> Scan<usize> {
        match self.peek() {
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.enter()?;
                let mut count = 0;
                if self.empty(close) {
                    return Ok(0);
                }
                loop {
                    if open == b'{' {
                        self.expect_key()?;
                        let key = self.string()?;
                        std::hint::black_box(self.text_of(&key));
                        self.colon()?;
                    }
                    count += self.count()?;
                    if !self.next_item(close)? {
                        return Ok(count);
                    }
                    if open == b'[' {
                        self.expect_element()?;
                    }
                }
            }
            Some(b'"') => {
                let text = self.string()?;
                std::hint::black_box(self.text_of(&text));
                Ok(1)
            }
            Some(b'-' | b'0'..=b'9') => {
                std::hint::black_box(self.number()?);
                Ok(1)
            }
            Some(b't') => self.literal(b"true").map(|()| 1),
            Some(b'f') => self.literal(b"false").map(|()| 1),
            Some(b'n') => self.literal(b"null").map(|()| 1),
            Some(_) => Err(self.error(self.position, "expected a value")),
            None => Err(self.eof("a value")),
        }
    }
}
