//! One JSON document on this thread: its records split or read in one pass.

use std::ops::Range;

use crate::schema::{Schema, ROOT};

use super::columns::{Batch, Column};
use super::scanner::{skip_whitespace, syntax, Scan, Scanner};
use super::skipping::value_end;
use super::split::{parse_json_threaded, PARALLEL_MIN_BYTES, PARALLEL_MIN_THREADS};
use super::{ParseError, SyntaxError};

/// Splits the input into its records: the elements of a top-level array, or the top-level
/// values of a document (one object, or NDJSON: one value a line).
pub fn split_records(data: &[u8]) -> Result<Vec<Range<usize>>, SyntaxError> {
    let mut position = skip_whitespace(data, 0);
    if position == data.len() {
        return Err(syntax(
            position,
            "empty input: expected a JSON array of objects, an object, or NDJSON",
        ));
    }
    let mut records = Vec::new();
    if data[position] == b'[' {
        position = skip_whitespace(data, position + 1);
        if data.get(position) == Some(&b']') {
            position += 1;
        } else {
            loop {
                let end = value_end(data, position)?;
                records.push(position..end);
                position = skip_whitespace(data, end);
                match data.get(position) {
                    Some(b',') => position = skip_whitespace(data, position + 1),
                    Some(b']') => {
                        position += 1;
                        break;
                    }
                    Some(_) => return Err(syntax(position, "expected ',' or ']' after a record")),
                    None => {
                        return Err(syntax(
                            position,
                            "unexpected end of input: the array is not closed",
                        ))
                    }
                }
            }
        }
        position = skip_whitespace(data, position);
        if position != data.len() {
            return Err(syntax(position, "trailing characters after the array"));
        }
    } else {
        while position < data.len() {
            let end = value_end(data, position)?;
            records.push(position..end);
            position = skip_whitespace(data, end);
        }
    }
    Ok(records)
}

/// Reads one record (its value starting at `range.start`, nested `depth` deep) into the batch;
/// nothing but whitespace may follow it up to `range.end`.
fn parse_one(batch: &mut Batch<'_>, data: &[u8], range: &Range<usize>, depth: usize) -> Scan<()> {
    let mut scanner = Scanner::new(data.get(..range.end).unwrap_or(data), range.start, depth)
        .limited(batch.schema);
    scanner.value(batch, ROOT)?;
    scanner.end()
}

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

/// Parses `ranges` (records numbered from `first_record`, nested `depth` deep). After a
/// record error the rest is still parsed, so that malformed JSON anywhere is reported before a
/// bad record, and found exactly as by the single-threaded path.
pub(super) fn parse_task<'s>(
    schema: &'s Schema,
    data: &[u8],
    ranges: &[Range<usize>],
    first_record: usize,
    depth: usize,
) -> Result<Batch<'s>, ParseError> {
    let mut batch = Batch::new(schema, ranges.len());
    let mut first_error = None;
    for (index, range) in ranges.iter().enumerate() {
        batch.begin_record();
        parse_one(&mut batch, data, range, depth)?;
        if first_error.is_none() {
            first_error = batch.finish_record(first_record + index).err();
        }
    }
    match first_error {
        Some(error) => Err(ParseError::Record(error)),
        None => Ok(batch),
    }
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

/// One pass over the whole document on this thread: an array needs no boundary scan.
/// The input is checked as UTF-8 as it is read: see [`utf8_first`].
pub(super) fn parse_document(schema: &Schema, data: &[u8]) -> Result<Vec<Column>, ParseError> {
    let start = skip_whitespace(data, 0);
    if start == data.len() {
        return Err(ParseError::Syntax(syntax(start, EMPTY_INPUT)));
    }
    if data[start] != b'[' {
        // One object, the commonest case, read in one pass. Where that fails (a syntax error,
        // or more after it: NDJSON), it is read again as below, whose errors are the rule; where
        // it succeeds, the split below finds that one value, and reads it with these same steps.
        let mut batch = Batch::new(schema, 1);
        batch.begin_record();
        let mut scanner = Scanner::new(data, start, 0).limited(schema);
        if scanner.value(&mut batch, ROOT).is_ok() && scanner.end().is_ok() {
            return match batch.finish_record(0) {
                Ok(()) => Ok(batch.into_columns()),
                Err(error) => Err(ParseError::Record(error)),
            };
        }
        // One object, or NDJSON: split at the values' boundaries as the threaded path does, so
        // that values must be apart by whitespace alike ("1true" is malformed).
        let ranges = split_records(data)?;
        return Ok(parse_task(schema, data, &ranges, 0, 0)?.into_columns());
    }
    // Reserve for the records' likely count, from the size of the first one.
    let estimate = value_end(data, skip_whitespace(data, start + 1))
        .map(|end| data.len() / (end - start).max(16))
        .unwrap_or(0);
    let mut batch = Batch::new(schema, estimate);
    let mut first_error = None;
    let mut scanner = Scanner::new(data, start, 0).limited(schema);
    scanner.enter()?;
    if !scanner.empty(b']') {
        loop {
            batch.begin_record();
            scanner.value(&mut batch, ROOT)?;
            if first_error.is_none() {
                first_error = batch.finish_record(batch.records).err();
            }
            if !scanner.next_item(b']')? {
                break;
            }
            scanner.expect_element()?;
        }
    }
    scanner.end()?;
    match first_error {
        Some(error) => Err(ParseError::Record(error)),
        None => Ok(batch.into_columns()),
    }
}

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
