//! Records (JSON bytes, or Python values fed by a reader) -> typed column buffers.
//!
//! JSON is read in one pass by a schema-driven scanner that walks the path trie as it reads:
//! keys no field asks for are checked for syntax and skipped without being decoded, numbers are
//! parsed (correctly rounded) only where a field reads them, and values land straight in the
//! column buffers, with no intermediate value per record. A record's problems are kept per
//! field until the record ends, so that a repeated key behaves as in `json.loads` (the last
//! occurrence wins) and the error reported is the first failing field in schema order.
//!
//! The rooms: `columns` (the buffers and a batch's per-record state), `scanner` (the JSON
//! reader), `numbers` and `skipping` (its number reader, and how it steps over what no field
//! reads), `document` (one document on one thread) and `split` (large inputs cut among
//! threads, with the same results and errors).

mod columns;
mod document;
mod errors;
mod keys;
mod numbers;
mod scanner;
mod skipping;
mod split;

pub use columns::{node_table, Batch, Buffer, Column, Lookup};
pub use document::{count_scalars, parse_json, parse_json_one_thread};
pub use errors::{ParseError, RecordError, SyntaxError};
pub use keys::KeyTable;
pub use skipping::nesting_beyond;
pub use split::{parse_json_pieces, parse_json_threaded, PARALLEL_MIN_BYTES, PARALLEL_MIN_THREADS};
