//! What reading records can report: a record that does not fit the schema, or bytes that are
//! not JSON.

use std::fmt;

/// A record that does not fit the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub record: usize,
    /// The field's path as declared; `None` when the record itself is not an object.
    pub path: Option<String>,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "record {}", self.record)?;
        if let Some(path) = &self.path {
            write!(formatter, ", field {path:?}")?;
        }
        write!(formatter, ": expected {}, got {}", self.expected, self.got)
    }
}

/// Bytes that are not JSON (or not a JSON array, object or NDJSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset into the input where the problem was found.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "malformed JSON at byte {}: {}",
            self.offset, self.message
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    Syntax(SyntaxError),
    Record(RecordError),
}

impl fmt::Display for ParseError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(error) => error.fmt(formatter),
            Self::Record(error) => error.fmt(formatter),
        }
    }
}

impl std::error::Error for ParseError {}

impl From<Box<SyntaxError>> for ParseError {
    fn from(error: Box<SyntaxError>) -> Self {
        Self::Syntax(*error)
    }
}

impl From<SyntaxError> for ParseError {
    fn from(error: SyntaxError) -> Self {
        Self::Syntax(error)
    }
}
