//! The parallel split: a large input cut into pieces that threads read at once, with exactly
//! the results and errors of reading it on one thread.

use std::ops::Range;

use rayon::prelude::*;

use crate::schema::{Schema, ROOT};

use super::columns::{Batch, Column};
use super::document::{parse_document, utf8_first};
use super::scanner::{skip_whitespace, Scan, Scanner};
use super::skipping::value_end;
use super::{ParseError, RecordError};

/// JSON inputs smaller than this are parsed on the calling thread. 1 MiB is about 1,700 records
/// of 32 numbers, ~3 ms of work for one thread: enough to amortise handing pieces to threads
/// and copying their rows together. (An estimate from the per-record cost, not a measured
/// crossover.)
pub const PARALLEL_MIN_BYTES: usize = 1024 * 1024;
/// Threads are used only with at least this many of them. The input (a top-level array, or
/// NDJSON) is cut into pieces at guessed record starts, with no serial pass over it (see
/// `parse_speculative`), so the threads share nearly all the work. Measured on 2 vCPUs
/// (benches/records.py's 61 MB, best of 12): one thread 125-135 ms, two 72-80 ms; before, with
/// a serial boundary scan (25-35 ms), UTF-8 check (~10 ms) and merge, two took 103-127 ms.
pub const PARALLEL_MIN_THREADS: usize = 2;
/// Tasks per thread: a few, so that a slow task does not leave the other threads idle. (For
/// the 61 MB array on 2 threads, 2, 4, 8 or 16 pieces took the same time within the noise.)
const TASKS_PER_THREAD: usize = 4;

/// The threaded path of [`parse_json`], whatever the input's size: exposed so that tests and
/// fuzzers can check that both paths agree.
#[doc(hidden)]
pub fn parse_json_threaded(schema: &Schema, data: &[u8]) -> Result<Vec<Column>, ParseError> {
    parse_json_pieces(
        schema,
        data,
        rayon::current_num_threads() * TASKS_PER_THREAD,
    )
}

/// [`parse_json_threaded`] with the input cut into at most `pieces` pieces, however small it
/// is: exposed so that tests and fuzzers can make the guesses of [`parse_speculative`] go
/// wrong in every way on small inputs.
#[doc(hidden)]
pub fn parse_json_pieces(
    schema: &Schema,
    data: &[u8],
    pieces: usize,
) -> Result<Vec<Column>, ParseError> {
    let start = skip_whitespace(data, 0);
    match data.get(start) {
        Some(b'[') => {
            let first = skip_whitespace(data, start + 1);
            if first < data.len() && data[first] != b']' {
                return utf8_first(
                    data,
                    parse_speculative(schema, data, first, pieces, Layout::Array),
                );
            }
            // An empty or unclosed array: nothing to share among threads.
            utf8_first(data, parse_document(schema, data))
        }
        // One object, or NDJSON: top-level values one after another.
        Some(_) => utf8_first(
            data,
            parse_speculative(schema, data, start, pieces, Layout::Sequence),
        ),
        None => utf8_first(data, parse_document(schema, data)),
    }
}

/// How a document's records follow one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// The elements of a top-level array: a comma between two, the brackets around them all.
    Array,
    /// Top-level values one after another (one object, or NDJSON), apart by whitespace or by
    /// nothing at all: `{"a": 1}{"a": 2}` is two records, as serde_json's stream reads it. A
    /// number or literal must be followed by whitespace or punctuation (`1true` is malformed).
    Sequence,
}

/// How a span of records ended.
#[derive(Debug, PartialEq, Eq)]
enum SpanEnd {
    /// At the first byte of the first record at or past the span's limit.
    Boundary(usize),
    /// At the end of the records: an array's closing bracket, with nothing but whitespace
    /// after it, or the end of the input.
    Close,
}

/// The records of a document read from one start, as [`parse_document`] reads them.
pub(super) struct Span<'s> {
    batch: Batch<'s>,
    /// The span's first record error, its record numbered from the span's first record.
    first_error: Option<RecordError>,
    /// Where the span stopped, or the syntax error that stopped it.
    end: Scan<SpanEnd>,
}

/// Bytes that may follow a number or a literal directly (besides whitespace): where
/// serde_json's stream of values ends one.
fn ends_scalar(byte: u8) -> bool {
    matches!(byte, b',' | b']' | b'}' | b'[' | b'{' | b'"' | b':')
}

/// Reads the records of a document laid out as `layout` from `start` (the first byte of a
/// record, or where one is guessed to start) until the first record that starts at or past
/// `limit`, exactly as [`parse_document`] reads them: the scanner is in the same state at a
/// record's start (depth 1 in an array, 0 in a sequence, the whole input in view), so from a
/// true record start it finds the same values, record errors and syntax errors, with the same
/// offsets and messages.
pub(super) fn parse_span<'s>(
    schema: &'s Schema,
    data: &[u8],
    start: usize,
    limit: usize,
    capacity: usize,
    layout: Layout,
) -> Span<'s> {
    let mut batch = Batch::new(schema, capacity);
    let mut first_error = None;
    let depth = usize::from(layout == Layout::Array);
    let mut scanner = Scanner::new(data, start, depth).limited(schema);
    let end = loop {
        batch.begin_record();
        // (Only a sequence asks: what may follow a value there depends on its kind.)
        let scalar = layout == Layout::Sequence
            && !matches!(scanner.peek(), Some(b'{' | b'[' | b'"'));
        if let Err(error) = scanner.value(&mut batch, ROOT) {
            break Err(error);
        }
        if first_error.is_none() {
            first_error = batch.finish_record(batch.records).err();
        }
        match layout {
            Layout::Array => {
                match scanner.next_item(b']') {
                    Ok(true) => {}
                    Ok(false) => break scanner.end().map(|()| SpanEnd::Close),
                    Err(error) => break Err(error),
                }
                if let Err(error) = scanner.expect_element() {
                    break Err(error);
                }
            }
            Layout::Sequence => {
                let value_end = scanner.position;
                match scanner.peek() {
                    None => break Ok(SpanEnd::Close),
                    Some(byte) if scalar && scanner.position == value_end && !ends_scalar(byte) => {
                        break Err(scanner.error(value_end, "trailing characters"));
                    }
                    Some(_) => {}
                }
            }
        }
        // The position is now on the next record's first byte.
        if scanner.position >= limit {
            break Ok(SpanEnd::Boundary(scanner.position));
        }
    };
    Span {
        batch,
        first_error,
        end,
    }
}

impl<'s> Span<'s> {
    /// The records of a span read to the document's end: the first syntax error, else the
    /// first record error, else the batch.
    pub(super) fn whole(self) -> Result<Batch<'s>, ParseError> {
        self.end?;
        match self.first_error {
            Some(error) => Err(ParseError::Record(error)),
            None => Ok(self.batch),
        }
    }
}

/// Where a record most likely starts at or after `from` (and before `to`): the `{` of `}`,
/// `,`, `{` in an array, or of `}`, `{` in a sequence (whitespace allowed between), followed
/// by the same bytes as the first record's opening up to its first key's closing quote
/// (`{"id"`). Records of one batch usually share their first key, and objects nested in a
/// record usually do not have it (nor follow a `}` without a comma, which JSON forbids), so a
/// guess is rarely wrong; a wrong one (inside a string, or nested) costs time only.
fn guess_record_start(
    data: &[u8],
    from: usize,
    to: usize,
    opening: &[u8],
    layout: Layout,
) -> Option<usize> {
    let to = to.min(data.len());
    let mut position = from;
    while position < to {
        let close = position + data.get(position..to)?.iter().position(|&b| b == b'}')?;
        position = close + 1;
        let mut open = skip_whitespace(data, close + 1);
        if layout == Layout::Array {
            if data.get(open) != Some(&b',') {
                continue;
            }
            open = skip_whitespace(data, open + 1);
        }
        if data.get(open..open + opening.len()) == Some(opening) && open < to {
            return Some(open);
        }
    }
    None
}

/// The first record's opening bytes that a guessed start must repeat: its `{`, whitespace
/// and first key with its quotes, or just the `{` (when the record is not an object, has no
/// key, or its first key is escaped or long).
fn record_opening(data: &[u8], first: usize) -> &[u8] {
    if data.get(first) != Some(&b'{') {
        return b"{";
    }
    let quote = skip_whitespace(data, first + 1);
    if data.get(quote) != Some(&b'"') {
        return b"{";
    }
    let key = data.get(quote + 1..).unwrap_or_default();
    match key.iter().take(64).position(|&b| b == b'"' || b == b'\\') {
        Some(length) if key[length] == b'"' => &data[first..quote + length + 2],
        _ => b"{",
    }
}

/// The threaded path (`first` is the first record's first byte, inside a top-level array or
/// at the top of a sequence), with no serial pass over the input. The bytes are cut into pieces at guessed record starts (see
/// [`guess_record_start`]), and each is parsed from its start until the record that starts at
/// or past the next piece's start (UTF-8 is checked as the bytes are read: see [`Scanner`]).
///
/// The guesses are then confirmed in order: the first piece starts at a true record start,
/// and a piece that starts at one and stops exactly on the next piece's start proves that
/// start true too. Where a piece stops elsewhere (the next guess was inside a string or a
/// nested value), the records from where it stopped are read again on this thread up to the
/// next guess they land on. Only confirmed pieces are used, so the result, and the error
/// (the first syntax error, else the first record error), are those of [`parse_document`].
fn parse_speculative(
    schema: &Schema,
    data: &[u8],
    first: usize,
    pieces: usize,
    layout: Layout,
) -> Result<Vec<Column>, ParseError> {
    let opening = record_opening(data, first);
    let pieces = pieces.max(1);
    let cut = |piece: usize| first + (data.len() - first) * piece / pieces;
    let mut starts = vec![first];
    for piece in 1..pieces {
        let from = cut(piece).max(starts[starts.len() - 1] + 1);
        if let Some(start) = guess_record_start(data, from, cut(piece + 1), opening, layout) {
            starts.push(start);
        }
    }
    let bounds: Vec<Range<usize>> = starts
        .iter()
        .copied()
        .zip(
            starts[1..]
                .iter()
                .copied()
                .chain(std::iter::once(data.len())),
        )
        .map(|(start, end)| start..end)
        .collect();
    // Rows to reserve per piece, from the size of the first record.
    let record_bytes = value_end(data, first)
        .map(|end| (end - first).max(16))
        .unwrap_or(data.len());
    let mut spans: Vec<Option<Span<'_>>> = bounds
        .par_iter()
        .enumerate()
        .map(|(index, range)| {
            let start = starts[index];
            let limit = starts.get(index + 1).copied().unwrap_or(usize::MAX);
            let capacity = (range.end - range.start) / record_bytes + 1;
            Some(parse_span(schema, data, start, limit, capacity, layout))
        })
        .collect();
    // Confirm the guesses in order, reading again where one was wrong.
    let mut confirmed = Vec::with_capacity(spans.len());
    let mut records = 0;
    let mut first_error: Option<RecordError> = None;
    let mut next = 1;
    let mut span = spans[0].take();
    while let Some(current) = span.take() {
        if let Some(mut error) = current.first_error {
            if first_error.is_none() {
                error.record += records;
                first_error = Some(error);
            }
        }
        records += current.batch.records;
        let end = current.end?;
        confirmed.push(current.batch);
        let SpanEnd::Boundary(position) = end else {
            break;
        };
        while next < starts.len() && starts[next] < position {
            next += 1;
        }
        span = if starts.get(next) == Some(&position) {
            next += 1;
            spans[next - 1].take()
        } else {
            let limit = starts.get(next).copied().unwrap_or(usize::MAX);
            Some(parse_span(schema, data, position, limit, 0, layout))
        };
    }
    match first_error {
        Some(error) => Err(ParseError::Record(error)),
        None => Ok(Batch::concat(schema, confirmed).into_columns()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Buffer, SyntaxError};
    use crate::schema::{FieldSpec, SchemaSpec};

    fn schema(fields: Vec<FieldSpec>) -> Schema {
        Schema::compile(&SchemaSpec::new(fields)).unwrap()
    }

    fn floats(columns: &[Column], name: &str) -> (Vec<usize>, Vec<f32>) {
        let column = columns.iter().find(|column| column.name == name).unwrap();
        match &column.data {
            Buffer::Float32(values) => (column.shape.clone(), values.clone()),
            other => panic!("{name} is {other:?}"),
        }
    }

    fn record_error(result: Result<Vec<Column>, ParseError>) -> RecordError {
        match result {
            Err(ParseError::Record(error)) => error,
            other => panic!("expected a record error, got {other:?}"),
        }
    }

    #[test]
    fn large_inputs_parse_in_parallel_with_the_same_result() {
        let schema = schema(vec![FieldSpec::new("a"), FieldSpec::new("b")]);
        let mut data = b"[".to_vec();
        for index in 0..40_000 {
            if index > 0 {
                data.push(b',');
            }
            data.extend_from_slice(format!(r#"{{"a": {index}, "b": {}}}"#, index * 2).as_bytes());
        }
        data.push(b']');
        let threaded = parse_json_threaded(&schema, &data).unwrap();
        assert_eq!(threaded, parse_document(&schema, &data).unwrap());
        let (shape, values) = floats(&threaded, "input");
        assert_eq!(shape, [40_000, 2]);
        assert_eq!(values[2 * 39_999 + 1], 79_998.0);
        // A bad record late in the input is found and named, by both paths.
        let bad = String::from_utf8(data)
            .unwrap()
            .replace(r#""a": 35000,"#, r#""a": "x","#);
        let threaded_error = record_error(parse_json_threaded(&schema, bad.as_bytes()));
        assert_eq!(threaded_error.record, 35_000);
        assert_eq!(
            threaded_error,
            record_error(parse_document(&schema, bad.as_bytes()))
        );
    }

    #[test]
    fn wrong_guesses_of_record_starts_change_nothing() {
        let schema = schema(vec![FieldSpec::new("a"), FieldSpec::new("b.a")]);
        // Every record starts with "a"; so do objects nested in records and text in strings,
        // so the threaded path's guesses of record starts are often wrong.
        let mut data = String::from("[");
        for index in 0..300 {
            if index > 0 {
                data.push_str(if index % 7 == 0 { " ,\n" } else { ", " });
            }
            data.push_str(&match index % 4 {
                0 => format!(r#"{{"a": {index}, "b": {{"a": 1, "l": [{{"a": 2}}, {{"a": 3}}]}}}}"#),
                1 => format!(
                    r#"{{"a": {index}, "s": "}}, {{\"a\": 9}}, {{\"a\"", "b": {{"a": 2}}}}"#
                ),
                2 => {
                    format!(r#"{{"a": {index}, "b": {{"a": -1.5, "x": [{{"a": [{{"a": 0}}]}}]}}}}"#)
                }
                _ => format!(r#"{{"a": {index}, "b": {{"a": "é"}}, "b": {{"a": 4}}}}"#),
            });
        }
        data.push(']');
        let single = parse_document(&schema, data.as_bytes());
        assert_eq!(floats(single.as_ref().unwrap(), "input").0, [300, 2]);
        // A first key written with an escape leaves only "{" to guess by, which strings match.
        let escaped = data.replacen(r#"[{"a""#, r#"[{"\u0061""#, 1);
        for pieces in 1..80 {
            assert_eq!(
                parse_json_pieces(&schema, data.as_bytes(), pieces),
                single,
                "{pieces} pieces"
            );
            assert_eq!(
                parse_json_pieces(&schema, escaped.as_bytes(), pieces),
                single,
                "{pieces} pieces, escaped"
            );
        }
        // Errors too: the same syntax error (the first), record error (the first, numbered
        // across the whole array) or invalid UTF-8 (wherever it is, before any other error).
        let bad_record = data.replacen(r#""a": 150,"#, r#""a": true,"#, 1);
        let both = bad_record.replacen(r#""a": 290,"#, r#""a": 290,,"#, 1);
        let mut invalid = both.clone().into_bytes();
        let last = invalid.len() - 5;
        invalid[last] = 0xFF;
        for input in [bad_record.as_bytes(), both.as_bytes(), &invalid] {
            let single = utf8_first(input, parse_document(&schema, input));
            assert!(single.is_err());
            for pieces in 1..80 {
                assert_eq!(
                    parse_json_pieces(&schema, input, pieces),
                    single,
                    "{pieces} pieces"
                );
            }
        }
        assert!(matches!(
            parse_json_pieces(&schema, bad_record.as_bytes(), 8),
            Err(ParseError::Record(RecordError { record: 150, .. }))
        ));
        assert!(matches!(
            parse_json_pieces(&schema, &invalid, 8),
            Err(ParseError::Syntax(SyntaxError { offset, .. })) if offset == last
        ));
    }

    #[test]
    fn ndjson_is_cut_among_threads_with_the_results_and_errors_of_one_pass() {
        let schema = schema(vec![FieldSpec::new("a"), FieldSpec::new("b.a")]);
        // Records whose strings and nested objects look like record starts (`}` then `{"a"`).
        let records: Vec<String> = (0..300)
            .map(|index| match index % 3 {
                0 => format!(r#"{{"a": {index}, "b": {{"a": 1, "l": [{{"a": 2}}]}}}}"#),
                1 => format!(r#"{{"a": {index}, "s": "}}\n{{\"a\": 9}}", "b": {{"a": 2}}}}"#),
                _ => format!(r#"{{"a": {index}, "b": {{"a": -1.5}}}}"#),
            })
            .collect();
        let array = parse_document(&schema, format!("[{}]", records.join(",")).as_bytes());
        assert_eq!(floats(array.as_ref().unwrap(), "input").0, [300, 2]);
        for separator in ["\n", "\r\n", "\n\n  ", " ", ""] {
            let ndjson = records.join(separator) + "\n";
            assert_eq!(parse_document(&schema, ndjson.as_bytes()), array, "{separator:?}");
            for pieces in 1..60 {
                assert_eq!(
                    parse_json_pieces(&schema, ndjson.as_bytes(), pieces),
                    array,
                    "{separator:?}, {pieces} pieces"
                );
            }
        }
        // Errors: the first syntax error, else the first record error, numbered across the
        // whole input, however it is cut.
        let ndjson = records.join("\n");
        let bad_record = ndjson.replacen(r#""a": 150,"#, r#""a": true,"#, 1);
        let both = bad_record.replacen(r#""a": 290,"#, r#""a": 290,,"#, 1);
        for input in [&bad_record, &both] {
            let single = parse_document(&schema, input.as_bytes());
            assert!(single.is_err());
            for pieces in 1..60 {
                assert_eq!(parse_json_pieces(&schema, input.as_bytes(), pieces), single);
            }
        }
        assert!(matches!(
            parse_json_pieces(&schema, bad_record.as_bytes(), 8),
            Err(ParseError::Record(RecordError { record: 150, .. }))
        ));
        // A number or literal must end at whitespace or punctuation, as in serde_json's stream.
        let glued = br#"{"a": 1, "b": {"a": 2}}1true"#;
        assert!(matches!(
            parse_document(&schema, glued),
            Err(ParseError::Syntax(SyntaxError { offset: 24, ref message })) if message == "trailing characters"
        ));
    }
}
