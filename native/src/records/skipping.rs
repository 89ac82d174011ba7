//! Skipping: values no field reads are checked for syntax and stepped over, and the ends of
//! values are found without reading them.

use super::scanner::{syntax, Scan, Scanner};
use super::SyntaxError;

impl Scanner<'_> {
    /// Checks the syntax of a value that no field reads and steps over it, decoding nothing.
    /// Iterative, with the open brackets on a stack: skipped values may nest however deep.
    pub(super) fn skip(&mut self) -> Scan<()> {
        let base = self.stack.len();
        loop {
            // At a value.
            let byte = self.peek();
            if matches!(byte, Some(b'{' | b'['))
                && self.depth + self.stack.len() - base >= self.max_skipped_depth
            {
                return Err(self.too_deep(self.position, self.max_skipped_depth));
            }
            match byte {
                Some(b'{') => {
                    self.position += 1;
                    if self.peek() == Some(b'}') {
                        self.position += 1;
                    } else {
                        self.stack.push(b'}');
                        self.skip_key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.position += 1;
                    if self.peek() == Some(b']') {
                        self.position += 1;
                    } else {
                        self.stack.push(b']');
                        continue;
                    }
                }
                Some(b'"') => self.skip_string()?,
                Some(b'-' | b'0'..=b'9') => self.skip_number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(_) => return Err(self.error(self.position, "expected a value")),
                None => return Err(self.eof("a value")),
            }
            // After a value: close what ends here, up to the next value.
            loop {
                let Some(&close) = self.stack.get(base..).and_then(<[u8]>::last) else {
                    return Ok(());
                };
                match self.peek() {
                    Some(b',') => {
                        self.position += 1;
                        if close == b'}' {
                            self.skip_key()?;
                        } else {
                            self.expect_element()?;
                        }
                        break;
                    }
                    Some(byte) if byte == close => {
                        self.position += 1;
                        self.stack.pop();
                    }
                    Some(_) if close == b'}' => {
                        return Err(self.error(self.position, "expected ',' or '}'"))
                    }
                    Some(_) => return Err(self.error(self.position, "expected ',' or ']'")),
                    None if close == b'}' => return Err(self.eof("an object")),
                    None => return Err(self.eof("a list")),
                }
            }
        }
    }

    /// A key no field reads, and its colon.
    #[inline]
    fn skip_key(&mut self) -> Scan<()> {
        self.expect_key()?;
        self.skip_string()?;
        self.colon()
    }

    #[inline]
    fn skip_string(&mut self) -> Scan<()> {
        let (_, escaped) = self.plain_string()?;
        if escaped {
            self.escaped_rest(false)?;
        }
        Ok(())
    }

    /// A number no field reads: its syntax is checked, nothing is converted.
    fn skip_number(&mut self) -> Scan<()> {
        self.number_or_skip::<false>().map(|_| ())
    }
}

/// Where the JSON value starting at `start` (not whitespace) ends. Tracks only brackets and
/// strings: the record parser validates everything else.
pub(super) fn value_end(data: &[u8], start: usize) -> Result<usize, SyntaxError> {
    match data.get(start) {
        Some(b'{' | b'[') => container_end(data, start),
        Some(b'"') => string_end(data, start),
        Some(b']' | b'}' | b',' | b':') | None => Err(syntax(start, "expected a value")),
        Some(_) => {
            let mut position = start;
            while position < data.len()
                && !matches!(
                    data[position],
                    b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'}' | b'[' | b'{' | b'"' | b':'
                )
            {
                position += 1;
            }
            Ok(position)
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that may be zero (exact for the lowest one; a byte
/// above a zero byte may be flagged too, so callers check the byte itself).
#[inline(always)]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Where the object or list opening at `start` closes. Only brackets, quotes and backslashes
/// matter here (the record parser checks the rest), so the scan looks at 8 bytes at a time and
/// steps only to those.
fn container_end(data: &[u8], start: usize) -> Result<usize, SyntaxError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut string_start = start;
    // A byte just after a backslash in a string is taken literally.
    let mut skip_until = start;
    let mut base = start;
    let mut visit = |position: usize| -> Option<usize> {
        if position < skip_until {
            return None;
        }
        let byte = data[position];
        if in_string {
            match byte {
                b'"' => in_string = false,
                b'\\' => skip_until = position + 2,
                _ => {}
            }
            return None;
        }
        match byte {
            b'"' => {
                in_string = true;
                string_start = position;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(position + 1);
                }
            }
            _ => {}
        }
        None
    };
    while let Some(chunk) = data.get(base..base + 8) {
        let mut word = 0u64;
        for (index, &byte) in chunk.iter().enumerate() {
            word |= u64::from(byte) << (8 * index);
        }
        // Quotes, backslashes, and bytes like a bracket: {, }, [, ] (and Y, _, y, DEL) are the
        // ones whose bits match 0101_1xx1 under the mask 1101_1001.
        let mut candidates = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            | zero_bytes((word & (ONES * 0xD9)) ^ (ONES * 0x59));
        while candidates != 0 {
            let position = base + (candidates.trailing_zeros() / 8) as usize;
            if let Some(end) = visit(position) {
                return Ok(end);
            }
            candidates &= candidates - 1;
        }
        base += 8;
    }
    for position in base..data.len() {
        if let Some(end) = visit(position) {
            return Ok(end);
        }
    }
    if in_string {
        return Err(syntax(
            string_start,
            "unexpected end of input: a string is not closed",
        ));
    }
    Err(syntax(
        data.len(),
        "unexpected end of input: an object or list is not closed",
    ))
}

/// The offset just past the string that opens at `start`.
fn string_end(data: &[u8], start: usize) -> Result<usize, SyntaxError> {
    let mut position = start + 1;
    while position < data.len() {
        match data[position] {
            b'"' => return Ok(position + 1),
            b'\\' => position += 2,
            _ => position += 1,
        }
    }
    Err(syntax(
        start,
        "unexpected end of input: a string is not closed",
    ))
}

/// The offset of the first bracket in `data` (one JSON document, or several, as NDJSON) that
/// opens a container nested deeper than `limit` (a top-level list is 1 deep), or None. A loop
/// with a counter, 8 bytes at a time as [`container_end`]: it never recurses, and it reads
/// only quotes, backslashes and brackets (the parser that follows checks the syntax).
pub fn nesting_beyond(data: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    // A byte just after a backslash in a string is taken literally.
    let mut skip_until = 0usize;
    let mut visit = |position: usize| -> bool {
        if position < skip_until {
            return false;
        }
        let byte = data[position];
        if in_string {
            match byte {
                b'"' => in_string = false,
                b'\\' => skip_until = position + 2,
                _ => {}
            }
            return false;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                return depth > limit;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        false
    };
    let mut base = 0usize;
    while let Some(chunk) = data.get(base..base + 8) {
        let mut word = 0u64;
        for (index, &byte) in chunk.iter().enumerate() {
            word |= u64::from(byte) << (8 * index);
        }
        let mut candidates = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            | zero_bytes((word & (ONES * 0xD9)) ^ (ONES * 0x59));
        while candidates != 0 {
            let position = base + (candidates.trailing_zeros() / 8) as usize;
            if visit(position) {
                return Some(position);
            }
            candidates &= candidates - 1;
        }
        base += 8;
    }
    (base..data.len()).find(|&position| visit(position))
}

#[cfg(test)]
mod nesting_tests {
    use super::nesting_beyond;
    use crate::records::{parse_json, ParseError};
    use crate::schema::{FieldSpec, Schema, SchemaSpec};

    #[test]
    fn the_schema_limits_read_and_skipped_values_alike() {
        let mut schema = Schema::compile(&SchemaSpec::new(vec![FieldSpec::new("a")])).unwrap();
        let deep = [
            &b"{\"a\": 1, \"b\": "[..],
            &b"[".repeat(200),
            &b"]".repeat(200),
            b"}",
        ]
        .concat();
        assert!(
            parse_json(&schema, &deep).is_ok(),
            "skipped values: any depth by default"
        );
        schema.max_skipped_depth = 64;
        match parse_json(&schema, &deep) {
            Err(ParseError::Syntax(error)) => {
                assert_eq!(error.message, "nested deeper than 64 levels");
                assert_eq!(error.offset, 14 + 63);
            }
            other => panic!("{:?}", other.is_ok()),
        }
    }

    #[test]
    fn counts_brackets_outside_strings_only() {
        assert_eq!(nesting_beyond(b"[[1]]", 2), None);
        assert_eq!(nesting_beyond(b"[[1]]", 1), Some(1));
        assert_eq!(
            nesting_beyond(br#"{"a": "[[[[\"[[[", "b": {}}"#, 1),
            Some(24)
        );
        assert_eq!(nesting_beyond(b"{}\n{}\n{}", 1), None);
        let deep = [b"[".repeat(100_000), b"]".repeat(100_000)].concat();
        assert_eq!(nesting_beyond(&deep, 64), Some(64));
        assert_eq!(nesting_beyond(&deep, 100_000), None);
        // Unbalanced closers are the parser's to refuse; they never underflow here.
        assert_eq!(nesting_beyond(b"]]]]{[", 1), Some(5));
        // Every split of the input into 8-byte words finds the same bracket.
        for pad in 0..9 {
            let text = [b" ".repeat(pad), br#"["\\", [["x"]]]"#.to_vec()].concat();
            assert_eq!(nesting_beyond(&text, 2), Some(pad + 8));
        }
    }
}
