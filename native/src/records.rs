//! Records (JSON bytes, or values extracted from Python) -> typed column buffers.
//!
//! JSON is read in one pass by a schema-driven scanner that walks the path trie as it reads:
//! keys no field asks for are checked for syntax and skipped without being decoded, numbers are
//! parsed (correctly rounded) only where a field reads them, and values land straight in the
//! column buffers, with no intermediate value per record. A record's problems are kept per field until the record ends, so that a
//! repeated key behaves as in `json.loads` (the last occurrence wins) and the error reported is
//! the first failing field in schema order.

use std::fmt;
use std::ops::Range;

use rayon::prelude::*;

use crate::schema::{
    convert_number, render_scalar, truncate, Cell, Dtype, FieldKind, Mismatch, NodeId, Scalar,
    Schema, ROOT,
};

/// JSON inputs smaller than this are parsed on the calling thread. 1 MiB is about 1,700 records
/// of 32 numbers, 4 ms of work: enough to amortise splitting the input and merging the parts.
/// (An estimate from the per-record cost, not a measured crossover; see PARALLEL_MIN_THREADS.)
pub const PARALLEL_MIN_BYTES: usize = 1024 * 1024;
/// Threads are used only with at least this many of them. Threads need the record boundaries
/// first: a scan of brackets and quotes, 8 bytes a step, which costs ~15% of a single-threaded
/// parse (25 ms of 150 ms for 61 MB). On the 2-vCPU machine measured (benches/records.py) two
/// threads parsed 61 MB in 110 ms against 150 ms for one, so two are enough.
pub const PARALLEL_MIN_THREADS: usize = 2;
/// Extracted Python records are converted by several threads from this many on: the values
/// are already decoded, so conversion is cheap (~20% of parse_records) and pays only in bulk.
pub const PARALLEL_MIN_VALUES_RECORDS: usize = 16 * 1024;
/// Tasks per thread: a few, so that a slow task does not leave the other threads idle.
const TASKS_PER_THREAD: usize = 4;

/// Records per parallel task for a batch of `records`.
fn records_per_task(records: usize) -> usize {
    records
        .div_ceil(rayon::current_num_threads() * TASKS_PER_THREAD)
        .max(1)
}

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

/// A typed, contiguous buffer of one tensor's values.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    Float32(Vec<f32>),
    Float64(Vec<f64>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Bool(Vec<bool>),
}

impl Buffer {
    fn new(dtype: Dtype) -> Self {
        match dtype {
            Dtype::Float32 => Self::Float32(Vec::new()),
            Dtype::Float64 => Self::Float64(Vec::new()),
            Dtype::Int32 => Self::Int32(Vec::new()),
            Dtype::Int64 => Self::Int64(Vec::new()),
            Dtype::Bool => Self::Bool(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Float32(values) => values.len(),
            Self::Float64(values) => values.len(),
            Self::Int32(values) => values.len(),
            Self::Int64(values) => values.len(),
            Self::Bool(values) => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn resize(&mut self, len: usize, cell: Cell) {
        match (self, cell) {
            (Self::Float32(values), Cell::Float32(value)) => values.resize(len, value),
            (Self::Float64(values), Cell::Float64(value)) => values.resize(len, value),
            (Self::Int32(values), Cell::Int32(value)) => values.resize(len, value),
            (Self::Int64(values), Cell::Int64(value)) => values.resize(len, value),
            (Self::Bool(values), Cell::Bool(value)) => values.resize(len, value),
            _ => debug_assert!(false, "a cell of another dtype than its buffer"),
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            Self::Float32(values) => values.truncate(len),
            Self::Float64(values) => values.truncate(len),
            Self::Int32(values) => values.truncate(len),
            Self::Int64(values) => values.truncate(len),
            Self::Bool(values) => values.truncate(len),
        }
    }

    // A field's dtype is its tensor's dtype (checked when the schema compiles), so a cell
    // always matches its buffer.
    #[inline]
    fn set(&mut self, index: usize, cell: Cell) {
        match (self, cell) {
            (Self::Float32(values), Cell::Float32(value)) => values[index] = value,
            (Self::Float64(values), Cell::Float64(value)) => values[index] = value,
            (Self::Int32(values), Cell::Int32(value)) => values[index] = value,
            (Self::Int64(values), Cell::Int64(value)) => values[index] = value,
            (Self::Bool(values), Cell::Bool(value)) => values[index] = value,
            _ => debug_assert!(false, "a cell of another dtype than its buffer"),
        }
    }

    #[inline]
    fn push(&mut self, cell: Cell) {
        match (self, cell) {
            (Self::Float32(values), Cell::Float32(value)) => values.push(value),
            (Self::Float64(values), Cell::Float64(value)) => values.push(value),
            (Self::Int32(values), Cell::Int32(value)) => values.push(value),
            (Self::Int64(values), Cell::Int64(value)) => values.push(value),
            (Self::Bool(values), Cell::Bool(value)) => values.push(value),
            _ => debug_assert!(false, "a cell of another dtype than its buffer"),
        }
    }

    fn append(&mut self, other: &mut Self) {
        match (self, other) {
            (Self::Float32(values), Self::Float32(more)) => values.append(more),
            (Self::Float64(values), Self::Float64(more)) => values.append(more),
            (Self::Int32(values), Self::Int32(more)) => values.append(more),
            (Self::Int64(values), Self::Int64(more)) => values.append(more),
            (Self::Bool(values), Self::Bool(more)) => values.append(more),
            _ => debug_assert!(false, "buffers of different dtypes"),
        }
    }

    /// Lays ragged rows (`lengths[i]` values each) out as `[rows, width]`, padding with `pad`.
    fn pad_rows(&self, lengths: &[usize], width: usize, pad: Cell) -> Self {
        fn pad_typed<T: Copy>(values: &[T], lengths: &[usize], width: usize, pad: T) -> Vec<T> {
            let mut padded = vec![pad; lengths.len() * width];
            let mut start = 0;
            for (row, &length) in lengths.iter().enumerate() {
                padded[row * width..row * width + length]
                    .copy_from_slice(&values[start..start + length]);
                start += length;
            }
            padded
        }
        match (self, pad) {
            (Self::Float32(values), Cell::Float32(pad)) => {
                Self::Float32(pad_typed(values, lengths, width, pad))
            }
            (Self::Float64(values), Cell::Float64(pad)) => {
                Self::Float64(pad_typed(values, lengths, width, pad))
            }
            (Self::Int32(values), Cell::Int32(pad)) => {
                Self::Int32(pad_typed(values, lengths, width, pad))
            }
            (Self::Int64(values), Cell::Int64(pad)) => {
                Self::Int64(pad_typed(values, lengths, width, pad))
            }
            (Self::Bool(values), Cell::Bool(pad)) => {
                Self::Bool(pad_typed(values, lengths, width, pad))
            }
            _ => {
                debug_assert!(false, "a pad of another dtype than its buffer");
                self.clone()
            }
        }
    }
}

/// One output tensor: a C-order buffer and its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Buffer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldState {
    Unset,
    Set,
    Invalid,
}

/// Accumulates the records of one task: the rows of every tensor, plus per-field state of the
/// record being read. Public so that a reader of other inputs (Python objects, in lib.rs) can
/// feed it value by value: `begin_record`, then values at trie nodes, then `finish_record`.
pub struct Batch<'s> {
    schema: &'s Schema,
    records: usize,
    /// Per tensor: `records * width` values, or a variable list's values end to end.
    buffers: Vec<Buffer>,
    /// Per tensor: where the current record's row (or list) starts in its buffer.
    row_starts: Vec<usize>,
    /// Per tensor of a variable list: each record's list length.
    lengths: Vec<Vec<usize>>,
    states: Vec<FieldState>,
    mismatches: Vec<Option<Mismatch>>,
    /// Set when the record itself is not an object.
    record_mismatch: Option<String>,
    /// Per trie node, where the next key is most likely in its key list: records of one batch
    /// usually list their keys in the same order, so the lookup rarely has to search.
    key_hints: Vec<usize>,
    /// Per trie node: its one field, when that is the only field there and a plain number
    /// (no vocabulary): the common case, written without the general dispatch.
    plain: Vec<Option<usize>>,
}

impl<'s> Batch<'s> {
    pub fn new(schema: &'s Schema, capacity: usize) -> Self {
        let buffers = schema
            .tensors
            .iter()
            .map(|tensor| {
                let mut buffer = Buffer::new(tensor.dtype);
                reserve(&mut buffer, capacity * tensor.width);
                buffer
            })
            .collect();
        Self {
            schema,
            records: 0,
            buffers,
            row_starts: vec![0; schema.tensors.len()],
            lengths: vec![Vec::new(); schema.tensors.len()],
            states: vec![FieldState::Unset; schema.fields.len()],
            mismatches: vec![None; schema.fields.len()],
            record_mismatch: None,
            key_hints: vec![0; schema.nodes.len()],
            plain: schema
                .nodes
                .iter()
                .map(|node| match node.fields[..] {
                    [field_id] if schema.fields[field_id].vocabulary.is_none() => Some(field_id),
                    _ => None,
                })
                .collect(),
        }
    }

    pub fn begin_record(&mut self) {
        for ((tensor, buffer), row_start) in self
            .schema
            .tensors
            .iter()
            .zip(&mut self.buffers)
            .zip(&mut self.row_starts)
        {
            *row_start = buffer.len();
            buffer.resize(*row_start + tensor.width, Cell::zero(tensor.dtype));
        }
        // Stale mismatches need no clearing: one is only read for a field marked invalid, and
        // marking a field invalid writes its mismatch.
        self.states.fill(FieldState::Unset);
        self.record_mismatch = None;
    }

    /// A key is (re)entered: whatever an earlier occurrence of it wrote no longer counts.
    fn reset(&mut self, node: NodeId) {
        for &field_id in &self.schema.nodes[node].fields_below {
            // A first occurrence has nothing to undo (the usual case).
            if self.states[field_id] == FieldState::Unset {
                continue;
            }
            self.states[field_id] = FieldState::Unset;
            self.mismatches[field_id] = None;
            let field = &self.schema.fields[field_id];
            if let FieldKind::VariableList { .. } = field.kind {
                self.buffers[field.tensor].truncate(self.row_starts[field.tensor]);
            }
        }
    }

    fn invalid(&mut self, field_id: usize, expected: String, got: String) {
        self.states[field_id] = FieldState::Invalid;
        self.mismatches[field_id] = Some(Mismatch { expected, got });
    }

    /// Every field below `node` is out of reach: the value there is not a container.
    fn unreachable_below(&mut self, node: NodeId, got: &str) {
        if node == ROOT {
            self.record_mismatch = Some(got.to_owned());
            return;
        }
        let expected = format!("an object at {:?}", self.schema.nodes[node].label);
        for &field_id in &self.schema.nodes[node].fields_below {
            self.invalid(field_id, expected.clone(), got.to_owned());
        }
    }

    #[inline(always)]
    pub fn scalar(&mut self, node: NodeId, scalar: Scalar<'_>) {
        if let Some(field_id) = self.plain[node] {
            let field = &self.schema.fields[field_id];
            if field.kind == FieldKind::Scalar && scalar != Scalar::Null {
                let index = self.row_starts[field.tensor] + field.column;
                if let Some(cell) = convert_number(field.dtype, scalar) {
                    self.buffers[field.tensor].set(index, cell);
                    self.states[field_id] = FieldState::Set;
                } else {
                    let mismatch = field.mismatch(scalar);
                    self.invalid(field_id, mismatch.expected, mismatch.got);
                }
                return;
            }
        }
        self.scalar_general(node, scalar);
    }

    fn scalar_general(&mut self, node: NodeId, scalar: Scalar<'_>) {
        let schema = self.schema;
        let target = &schema.nodes[node];
        if !target.is_leaf() {
            // A null container is a missing one: its fields follow their missing policy.
            if scalar != Scalar::Null || node == ROOT {
                self.unreachable_below(node, &render_scalar(scalar));
            }
            return;
        }
        for &field_id in &target.fields {
            let field = &schema.fields[field_id];
            if scalar == Scalar::Null {
                // Null is missing, also after an earlier occurrence of the key.
                self.states[field_id] = FieldState::Unset;
                continue;
            }
            match field.kind {
                FieldKind::Scalar => match field.convert(scalar) {
                    Ok(cell) => {
                        self.buffers[field.tensor]
                            .set(self.row_starts[field.tensor] + field.column, cell);
                        self.states[field_id] = FieldState::Set;
                    }
                    Err(mismatch) => self.invalid(field_id, mismatch.expected, mismatch.got),
                },
                _ => self.invalid(field_id, field.expected(), render_scalar(scalar)),
            }
        }
    }

    /// An object or list arrived where the node's fields wanted something else.
    pub fn container_mismatch(&mut self, node: NodeId, got: &str) {
        let schema = self.schema;
        let target = &schema.nodes[node];
        if !target.is_leaf() {
            self.unreachable_below(node, got);
            return;
        }
        for &field_id in &target.fields {
            self.invalid(field_id, schema.fields[field_id].expected(), got.to_owned());
        }
    }

    /// A list arrived at a container node: only integer segments can read into it.
    pub fn list_at_container(&mut self, node: NodeId) {
        let schema = self.schema;
        let target = &schema.nodes[node];
        for (key, child) in &target.keys {
            if !target
                .indices
                .iter()
                .any(|(_, index_child)| index_child == child)
            {
                let expected = format!("an object at {:?} (key {key:?})", target.label);
                for &field_id in &schema.nodes[*child].fields_below {
                    self.invalid(field_id, expected.clone(), "a list".into());
                }
            }
        }
    }

    pub fn leaf_wants_list(&self, node: NodeId) -> bool {
        let target = &self.schema.nodes[node];
        target.is_leaf()
            && target
                .fields
                .iter()
                .any(|&id| self.schema.fields[id].kind != FieldKind::Scalar)
    }

    #[inline(always)]
    pub fn list_element(&mut self, node: NodeId, index: usize, scalar: Scalar<'_>) {
        if let Some(field_id) = self.plain[node] {
            let field = &self.schema.fields[field_id];
            if let FieldKind::FixedList(length) = field.kind {
                if index < length
                    && scalar != Scalar::Null
                    && self.states[field_id] != FieldState::Invalid
                {
                    if let Some(cell) = convert_number(field.dtype, scalar) {
                        let at = self.row_starts[field.tensor] + field.column + index;
                        self.buffers[field.tensor].set(at, cell);
                        return;
                    }
                }
            }
        }
        self.list_element_general(node, index, scalar);
    }

    fn list_element_general(&mut self, node: NodeId, index: usize, scalar: Scalar<'_>) {
        let schema = self.schema;
        for &field_id in &schema.nodes[node].fields {
            if self.states[field_id] == FieldState::Invalid {
                continue;
            }
            let field = &schema.fields[field_id];
            let converted = if scalar == Scalar::Null {
                field.fill.ok_or_else(|| field.mismatch(scalar))
            } else {
                field.convert(scalar)
            };
            let cell = match converted {
                Ok(cell) => cell,
                Err(mismatch) => {
                    let got = format!("{} at index {index}", mismatch.got);
                    self.invalid(field_id, field.expected(), got);
                    continue;
                }
            };
            match field.kind {
                FieldKind::FixedList(length) if index < length => self.buffers[field.tensor]
                    .set(self.row_starts[field.tensor] + field.column + index, cell),
                FieldKind::VariableList { max_length }
                    if max_length.is_none_or(|max| index < max) =>
                {
                    self.buffers[field.tensor].push(cell)
                }
                // Too long: list_end reports the length.
                _ => {}
            }
        }
    }

    pub fn element_mismatch(&mut self, node: NodeId, index: usize, got: &str) {
        let schema = self.schema;
        for &field_id in &schema.nodes[node].fields {
            if self.states[field_id] != FieldState::Invalid {
                self.invalid(
                    field_id,
                    schema.fields[field_id].expected(),
                    format!("{got} at index {index}"),
                );
            }
        }
    }

    pub fn list_end(&mut self, node: NodeId, count: usize) {
        let schema = self.schema;
        for &field_id in &schema.nodes[node].fields {
            let field = &schema.fields[field_id];
            if self.states[field_id] == FieldState::Invalid {
                continue;
            }
            let fits = match field.kind {
                FieldKind::Scalar => {
                    self.invalid(field_id, field.expected(), "a list".into());
                    continue;
                }
                FieldKind::FixedList(length) => count == length,
                FieldKind::VariableList { max_length } => max_length.is_none_or(|max| count <= max),
            };
            if fits {
                self.states[field_id] = FieldState::Set;
            } else {
                self.invalid(field_id, field.expected(), format!("a list of {count}"));
            }
        }
    }

    /// Applies the missing-value policies and reports the record's first problem.
    pub fn finish_record(&mut self, record: usize) -> Result<(), RecordError> {
        if let Some(got) = self.record_mismatch.take() {
            return Err(RecordError {
                record,
                path: None,
                expected: "an object".into(),
                got,
            });
        }
        let schema = self.schema;
        for (field_id, field) in schema.fields.iter().enumerate() {
            match self.states[field_id] {
                FieldState::Set => {}
                FieldState::Invalid => {
                    let mismatch = self.mismatches[field_id].take().unwrap_or(Mismatch {
                        expected: field.expected(),
                        got: "an invalid value".into(),
                    });
                    return Err(RecordError {
                        record,
                        path: Some(field.path.clone()),
                        expected: mismatch.expected,
                        got: mismatch.got,
                    });
                }
                FieldState::Unset => {
                    let Some(fill) = field.fill else {
                        return Err(RecordError {
                            record,
                            path: Some(field.path.clone()),
                            expected: field.expected(),
                            got: "nothing (missing or null)".into(),
                        });
                    };
                    let start = self.row_starts[field.tensor] + field.column;
                    match field.kind {
                        FieldKind::Scalar => self.buffers[field.tensor].set(start, fill),
                        FieldKind::FixedList(length) => {
                            for index in start..start + length {
                                self.buffers[field.tensor].set(index, fill);
                            }
                        }
                        // Missing with missing = "default": an empty list.
                        FieldKind::VariableList { .. } => {
                            self.buffers[field.tensor].truncate(self.row_starts[field.tensor])
                        }
                    }
                }
            }
        }
        for (tensor_id, tensor) in schema.tensors.iter().enumerate() {
            if tensor.lengths_name.is_some() {
                let length = self.buffers[tensor_id].len() - self.row_starts[tensor_id];
                self.lengths[tensor_id].push(length);
            }
        }
        self.records += 1;
        Ok(())
    }

    fn append(&mut self, mut other: Self) {
        self.records += other.records;
        for (buffer, more) in self.buffers.iter_mut().zip(&mut other.buffers) {
            buffer.append(more);
        }
        for (lengths, more) in self.lengths.iter_mut().zip(&mut other.lengths) {
            lengths.append(more);
        }
    }

    pub fn into_columns(self) -> Vec<Column> {
        let mut columns = Vec::new();
        for ((tensor, buffer), lengths) in self
            .schema
            .tensors
            .iter()
            .zip(self.buffers)
            .zip(self.lengths)
        {
            let Some(lengths_name) = &tensor.lengths_name else {
                columns.push(Column {
                    name: tensor.name.clone(),
                    shape: vec![self.records, tensor.width],
                    data: buffer,
                });
                continue;
            };
            let field = &self.schema.fields[tensor.fields[0]];
            let width = match field.kind {
                FieldKind::VariableList {
                    max_length: Some(max),
                } => max,
                _ => lengths.iter().copied().max().unwrap_or(0),
            };
            let padded = buffer.pad_rows(&lengths, width, field.pad);
            columns.push(Column {
                name: tensor.name.clone(),
                shape: vec![self.records, width],
                data: padded,
            });
            let lengths = lengths.iter().map(|&length| length as i64).collect();
            columns.push(Column {
                name: lengths_name.clone(),
                shape: vec![self.records],
                data: Buffer::Int64(lengths),
            });
        }
        columns
    }
}

fn reserve(buffer: &mut Buffer, additional: usize) {
    match buffer {
        Buffer::Float32(values) => values.reserve(additional),
        Buffer::Float64(values) => values.reserve(additional),
        Buffer::Int32(values) => values.reserve(additional),
        Buffer::Int64(values) => values.reserve(additional),
        Buffer::Bool(values) => values.reserve(additional),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

/// 10^0 to 10^22: the powers of ten that a float64 holds exactly.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Deepest nesting of objects and lists accepted, as serde_json (and so JSON from most Rust
/// services) allows: a record nested deeper is malformed rather than a stack overflow.
const MAX_DEPTH: usize = 127;

/// Where a decoded string lives: in the input (no escapes) or in the scanner's scratch buffer.
enum Text {
    Input(Range<usize>),
    Scratch,
}

/// Bytes that end the fast part of a string scan: the closing quote, an escape, or a control
/// character (which JSON forbids in strings).
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// A single-pass, schema-driven JSON reader. It walks the trie while it reads: keys no field
/// asks for have their values checked for syntax and skipped without being decoded, and the
/// values fields ask for are parsed (numbers correctly rounded) and written straight into the
/// column buffers. There is no intermediate value: only escaped strings are copied.
struct Scanner<'a> {
    /// The input up to the end of the part being read; offsets are into the whole input.
    text: &'a str,
    data: &'a [u8],
    position: usize,
    depth: usize,
    scratch: String,
    /// The closing brackets of the containers being skipped.
    stack: Vec<u8>,
}

type Scan<T> = Result<T, SyntaxError>;

impl<'a> Scanner<'a> {
    fn new(text: &'a str, position: usize, depth: usize) -> Self {
        Self {
            text,
            data: text.as_bytes(),
            position,
            depth,
            scratch: String::new(),
            stack: Vec::new(),
        }
    }

    #[cold]
    fn error(&self, offset: usize, message: &str) -> SyntaxError {
        syntax(offset.min(self.data.len()), message)
    }

    #[cold]
    fn eof(&self, what: &str) -> SyntaxError {
        syntax(
            self.data.len(),
            &format!("unexpected end of input while parsing {what}"),
        )
    }

    /// The next byte that is not whitespace (the position is left on it).
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        loop {
            let byte = *self.data.get(self.position)?;
            if !matches!(byte, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(byte);
            }
            self.position += 1;
        }
    }

    #[inline]
    fn enter(&mut self) -> Scan<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(self.position, "recursion limit exceeded"));
        }
        self.position += 1;
        Ok(())
    }

    #[inline]
    fn colon(&mut self) -> Scan<()> {
        match self.peek() {
            Some(b':') => {
                self.position += 1;
                Ok(())
            }
            Some(_) => Err(self.error(self.position, "expected ':'")),
            None => Err(self.eof("an object")),
        }
    }

    /// After a member or element: true if another follows (the comma is consumed), false at the
    /// closing bracket (consumed too).
    #[inline(always)]
    fn next_item(&mut self, close: u8) -> Scan<bool> {
        match self.peek() {
            Some(b',') => {
                self.position += 1;
                Ok(true)
            }
            Some(byte) if byte == close => {
                self.position += 1;
                self.depth -= 1;
                Ok(false)
            }
            Some(_) if close == b'}' => Err(self.error(self.position, "expected ',' or '}'")),
            Some(_) => Err(self.error(self.position, "expected ',' or ']'")),
            None if close == b'}' => Err(self.eof("an object")),
            None => Err(self.eof("a list")),
        }
    }

    /// At an object's first key or after a comma: the next byte must open a key.
    #[inline(always)]
    fn expect_key(&mut self) -> Scan<()> {
        match self.peek() {
            Some(b'"') => Ok(()),
            Some(b'}') => Err(self.error(self.position, "trailing comma")),
            Some(_) => Err(self.error(self.position, "expected a key")),
            None => Err(self.eof("an object")),
        }
    }

    /// Just after an opening bracket: true if the container is empty (and now closed).
    #[inline(always)]
    fn empty(&mut self, close: u8) -> bool {
        if self.peek() == Some(close) {
            self.position += 1;
            self.depth -= 1;
            true
        } else {
            false
        }
    }

    /// Before a list element after a comma: a closing bracket there is a trailing comma.
    #[inline(always)]
    fn expect_element(&mut self) -> Scan<()> {
        match self.peek() {
            Some(b']') => Err(self.error(self.position, "trailing comma")),
            _ => Ok(()),
        }
    }

    /// Scans a string (the position on its opening quote) up to its end or its first escape:
    /// returns the end of the plain part and whether an escape follows.
    #[inline(always)]
    fn plain_string(&mut self) -> Scan<(usize, bool)> {
        let start = self.position + 1;
        let mut position = start;
        while let Some(&byte) = self.data.get(position) {
            if STRING_STOP[byte as usize] {
                return match byte {
                    b'"' => {
                        self.position = position + 1;
                        Ok((position, false))
                    }
                    b'\\' => {
                        self.position = position;
                        Ok((position, true))
                    }
                    _ => Err(self.error(position, "control character in a string")),
                };
            }
            position += 1;
        }
        Err(self.eof("a string"))
    }

    /// Reads a string (the position on its opening quote), decoding escapes into the scratch
    /// buffer only when there are any.
    fn string(&mut self) -> Scan<Text> {
        let start = self.position + 1;
        let (end, escaped) = self.plain_string()?;
        if !escaped {
            return Ok(Text::Input(start..end));
        }
        self.scratch.clear();
        self.scratch
            .push_str(self.text.get(start..end).unwrap_or_default());
        self.escaped_rest(true)?;
        Ok(Text::Scratch)
    }

    /// Continues a string from an escape (the position on a backslash) to its closing quote,
    /// decoding into the scratch buffer if `decode`.
    fn escaped_rest(&mut self, decode: bool) -> Scan<()> {
        loop {
            // On a backslash.
            let escape = self.position;
            let Some(&kind) = self.data.get(escape + 1) else {
                return Err(self.eof("a string"));
            };
            self.position = escape + 2;
            let decoded = match kind {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let unit = self.hex4()?;
                    if !decode {
                        // Skipped strings are checked for syntax only, as serde_json does.
                        ' '
                    } else if (0xD800..0xDC00).contains(&unit) {
                        if self.data.get(self.position..self.position + 2) != Some(b"\\u") {
                            return Err(
                                self.error(self.position, "lone leading surrogate in hex escape")
                            );
                        }
                        self.position += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return Err(
                                self.error(self.position, "lone leading surrogate in hex escape")
                            );
                        }
                        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code).unwrap_or('\u{fffd}')
                    } else {
                        match char::from_u32(unit) {
                            Some(character) => character,
                            None => {
                                return Err(self
                                    .error(self.position, "lone trailing surrogate in hex escape"))
                            }
                        }
                    }
                }
                _ => return Err(self.error(escape + 1, "invalid escape")),
            };
            if decode {
                self.scratch.push(decoded);
            }
            // The plain run up to the next escape or the end.
            let start = self.position;
            let mut position = start;
            loop {
                let Some(&byte) = self.data.get(position) else {
                    return Err(self.eof("a string"));
                };
                if STRING_STOP[byte as usize] {
                    if decode {
                        self.scratch
                            .push_str(self.text.get(start..position).unwrap_or_default());
                    }
                    match byte {
                        b'"' => {
                            self.position = position + 1;
                            return Ok(());
                        }
                        b'\\' => {
                            self.position = position;
                            break;
                        }
                        _ => return Err(self.error(position, "control character in a string")),
                    }
                }
                position += 1;
            }
        }
    }

    fn hex4(&mut self) -> Scan<u32> {
        let mut value = 0;
        for _ in 0..4 {
            let Some(&byte) = self.data.get(self.position) else {
                return Err(self.eof("a string"));
            };
            let digit = match byte {
                b'0'..=b'9' => byte - b'0',
                b'a'..=b'f' => byte - b'a' + 10,
                b'A'..=b'F' => byte - b'A' + 10,
                _ => return Err(self.error(self.position, "invalid escape")),
            };
            value = value * 16 + u32::from(digit);
            self.position += 1;
        }
        Ok(value)
    }

    fn text_of(&self, text: &Text) -> &str {
        match text {
            Text::Input(range) => self.text.get(range.clone()).unwrap_or_default(),
            Text::Scratch => &self.scratch,
        }
    }

    /// Reads an object key (the position on its quote) and finds its child among `keys`, trying
    /// the key after the last one found first: records of a batch usually share a key order.
    #[inline(always)]
    fn key(&mut self, keys: &[(Box<str>, NodeId)], hint: &mut usize) -> Scan<Option<NodeId>> {
        let start = self.position + 1;
        // The expected key, compared in place: a key that JSON writes as it is (no quote,
        // backslash or control character) matches exactly when its bytes and a closing quote
        // follow the opening one.
        if let Some((candidate, node)) = keys.get(*hint) {
            let candidate = candidate.as_bytes();
            let end = start + candidate.len();
            if self.data.get(end) == Some(&b'"')
                && self
                    .data
                    .get(start..end)
                    .is_some_and(|raw| same_key(candidate, raw))
                && !candidate.iter().any(|&byte| STRING_STOP[byte as usize])
            {
                self.position = end + 1;
                *hint += 1;
                return Ok(Some(*node));
            }
        }
        let (end, escaped) = self.plain_string()?;
        let raw: &[u8] = if escaped {
            self.scratch.clear();
            self.scratch
                .push_str(self.text.get(start..end).unwrap_or_default());
            self.escaped_rest(true)?;
            self.scratch.as_bytes()
        } else {
            let data = self.data;
            &data[start..end]
        };
        if let Some((candidate, node)) = keys.get(*hint) {
            if same_key(candidate.as_bytes(), raw) {
                *hint += 1;
                return Ok(Some(*node));
            }
        }
        let found = keys
            .iter()
            .position(|(candidate, _)| same_key(candidate.as_bytes(), raw));
        if let Some(position) = found {
            *hint = position + 1;
        }
        Ok(found.map(|position| keys[position].1))
    }

    fn literal(&mut self, word: &'static [u8]) -> Scan<()> {
        let start = self.position;
        for (index, &expected) in word.iter().enumerate() {
            match self.data.get(start + index) {
                Some(&byte) if byte == expected => {}
                Some(_) => return Err(self.error(start + index, "expected a value")),
                None => return Err(self.eof("a value")),
            }
        }
        self.position = start + word.len();
        Ok(())
    }

    /// Reads a number (the position on its first byte) as JSON's grammar has it. Integers that
    /// fit 64 bits stay integers (as in `json.loads`); others, and all numbers with a fraction
    /// or exponent, become the correctly rounded float64.
    #[inline(always)]
    fn number(&mut self) -> Scan<Scalar<'static>> {
        self.number_or_skip::<true>()
    }

    /// [`Self::number`], or with `DECODE` false only its syntax checked (as serde_json skips
    /// numbers: 1e400 is out of range only where it is read).
    #[inline(always)]
    fn number_or_skip<const DECODE: bool>(&mut self) -> Scan<Scalar<'static>> {
        let data = self.data;
        let start = self.position;
        let mut position = start;
        let negative = data.get(position) == Some(&b'-');
        if negative {
            position += 1;
        }
        let mut integer: u64 = 0;
        let digits_start = position;
        match data.get(position) {
            Some(b'0') => position += 1,
            Some(b'1'..=b'9') => digits(data, &mut position, &mut integer),
            Some(_) => return Err(self.error(position, "invalid number")),
            None => return Err(self.eof("a number")),
        }
        let mut digit_count = position - digits_start;
        let mut is_float = false;
        let mut exponent: i64 = 0;
        if data.get(position) == Some(&b'.') {
            position += 1;
            let fraction = position;
            // The fraction's digits continue the significand (for the fast path below).
            digits(data, &mut position, &mut integer);
            if position == fraction {
                return Err(self.number_error(position));
            }
            digit_count += position - fraction;
            exponent = -((position - fraction) as i64);
            is_float = true;
        }
        if let Some(b'e' | b'E') = data.get(position) {
            position += 1;
            let negative_exponent = data.get(position) == Some(&b'-');
            if let Some(b'+' | b'-') = data.get(position) {
                position += 1;
            }
            let digits = position;
            let mut explicit: i64 = 0;
            while let Some(&byte) = data.get(position) {
                if !byte.is_ascii_digit() {
                    break;
                }
                explicit = (explicit * 10 + i64::from(byte - b'0')).min(1 << 40);
                position += 1;
            }
            if position == digits {
                return Err(self.number_error(position));
            }
            exponent += if negative_exponent {
                -explicit
            } else {
                explicit
            };
            is_float = true;
        }
        self.position = position;
        if !DECODE {
            return Ok(Scalar::Null);
        }
        // Up to 19 digits cannot overflow 64 bits; longer integers are read again, checked.
        let mut overflow = digit_count > 19;
        if overflow && !is_float {
            overflow = false;
            integer = 0;
            for &byte in &data[digits_start..position] {
                match integer
                    .checked_mul(10)
                    .and_then(|value| value.checked_add(u64::from(byte - b'0')))
                {
                    Some(value) => integer = value,
                    None => {
                        overflow = true;
                        break;
                    }
                }
            }
        }
        if !is_float && !overflow {
            if !negative {
                return Ok(match i64::try_from(integer) {
                    Ok(value) => Scalar::Int(value),
                    Err(_) => Scalar::UInt(integer),
                });
            }
            if integer <= 1 << 63 {
                return Ok(Scalar::Int((integer as i64).wrapping_neg()));
            }
        }
        // Clinger's fast path: a significand and a power of ten both exact in a float64 give
        // the correctly rounded result in one multiplication or division.
        if !overflow && integer <= 1 << 53 && (-22..=22).contains(&exponent) {
            let magnitude = integer as f64;
            let value = if exponent < 0 {
                magnitude / POWERS_OF_TEN[exponent.unsigned_abs() as usize]
            } else {
                magnitude * POWERS_OF_TEN[exponent as usize]
            };
            return Ok(Scalar::Float(if negative { -value } else { value }));
        }
        match fast_float2::parse::<f64, _>(&data[start..position]) {
            Ok(value) if value.is_finite() => Ok(Scalar::Float(value)),
            _ => Err(self.error(start, "number out of range")),
        }
    }

    #[cold]
    fn number_error(&self, position: usize) -> SyntaxError {
        if position >= self.data.len() {
            self.eof("a number")
        } else {
            self.error(position, "invalid number")
        }
    }

    /// Reads the value at `node` into the batch.
    fn value(&mut self, batch: &mut Batch<'_>, node: NodeId) -> Scan<()> {
        match self.peek() {
            Some(b'{') => self.object(batch, node),
            Some(b'[') => self.list(batch, node),
            Some(b'"') => {
                let text = self.string()?;
                batch.scalar(node, Scalar::Str(self.text_of(&text)));
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                let number = self.number()?;
                batch.scalar(node, number);
                Ok(())
            }
            Some(b't') => {
                self.literal(b"true")?;
                batch.scalar(node, Scalar::Bool(true));
                Ok(())
            }
            Some(b'f') => {
                self.literal(b"false")?;
                batch.scalar(node, Scalar::Bool(false));
                Ok(())
            }
            Some(b'n') => {
                self.literal(b"null")?;
                batch.scalar(node, Scalar::Null);
                Ok(())
            }
            Some(_) => Err(self.error(self.position, "expected a value")),
            None => Err(self.eof("a value")),
        }
    }

    fn object(&mut self, batch: &mut Batch<'_>, node: NodeId) -> Scan<()> {
        let schema = batch.schema;
        let target = &schema.nodes[node];
        if target.is_leaf() {
            batch.container_mismatch(node, "an object");
            return self.skip();
        }
        self.enter()?;
        if self.empty(b'}') {
            return Ok(());
        }
        loop {
            self.expect_key()?;
            let child = self.key(&target.keys, &mut batch.key_hints[node])?;
            self.colon()?;
            match child {
                Some(child) => {
                    // A leaf's value sets its fields' state whatever comes; a container must
                    // forget what an earlier occurrence of its key set below it.
                    if !schema.nodes[child].is_leaf() {
                        batch.reset(child);
                    }
                    self.value(batch, child)?;
                }
                None => self.skip()?,
            }
            if !self.next_item(b'}')? {
                return Ok(());
            }
        }
    }

    fn list(&mut self, batch: &mut Batch<'_>, node: NodeId) -> Scan<()> {
        let schema = batch.schema;
        let target = &schema.nodes[node];
        if batch.leaf_wants_list(node) {
            batch.reset(node);
            self.enter()?;
            let mut count = 0;
            if !self.empty(b']') {
                loop {
                    self.element(batch, node, count)?;
                    count += 1;
                    if !self.next_item(b']')? {
                        break;
                    }
                    self.expect_element()?;
                }
            }
            batch.list_end(node, count);
            Ok(())
        } else if !target.is_leaf() && !target.indices.is_empty() && node != ROOT {
            batch.list_at_container(node);
            self.enter()?;
            if self.empty(b']') {
                return Ok(());
            }
            let mut index = 0;
            loop {
                match target.child_by_index(index) {
                    Some(child) => {
                        if !schema.nodes[child].is_leaf() {
                            batch.reset(child);
                        }
                        self.value(batch, child)?;
                    }
                    None => self.skip()?,
                }
                index += 1;
                if !self.next_item(b']')? {
                    return Ok(());
                }
                self.expect_element()?;
            }
        } else {
            batch.container_mismatch(node, "a list");
            self.skip()
        }
    }

    /// One element of a list field.
    #[inline]
    fn element(&mut self, batch: &mut Batch<'_>, node: NodeId, index: usize) -> Scan<()> {
        let scalar = match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(b'"') => {
                let text = self.string()?;
                batch.list_element(node, index, Scalar::Str(self.text_of(&text)));
                return Ok(());
            }
            Some(b't') => {
                self.literal(b"true")?;
                Scalar::Bool(true)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                Scalar::Bool(false)
            }
            Some(b'n') => {
                self.literal(b"null")?;
                Scalar::Null
            }
            Some(b'{') => {
                batch.element_mismatch(node, index, "an object");
                return self.skip();
            }
            Some(b'[') => {
                batch.element_mismatch(node, index, "a list");
                return self.skip();
            }
            Some(_) => return Err(self.error(self.position, "expected a value")),
            None => return Err(self.eof("a value")),
        };
        batch.list_element(node, index, scalar);
        Ok(())
    }

    /// Checks the syntax of a value that no field reads and steps over it, decoding nothing.
    /// Iterative, with the open brackets on a stack: skipped values may nest however deep.
    fn skip(&mut self) -> Scan<()> {
        let base = self.stack.len();
        loop {
            // At a value.
            match self.peek() {
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

    /// Parses any value, decoding every scalar (numbers to float64 or integers, strings with
    /// their escapes), and counts the scalars: the parser's cost without the schema.
    fn count(&mut self) -> Scan<usize> {
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

    /// After a top-level value: only whitespace may follow.
    fn end(&mut self) -> Scan<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error(self.position, "trailing characters")),
        }
    }
}

/// Reads a run of ASCII digits into `value` (wrapping: the caller counts the digits), eight at
/// a time where it can.
#[inline(always)]
fn digits(data: &[u8], position: &mut usize, value: &mut u64) {
    while let Some(chunk) = data.get(*position..*position + 8) {
        let mut word = 0u64;
        for (index, &byte) in chunk.iter().enumerate() {
            word |= u64::from(byte) << (8 * index);
        }
        let low = word.wrapping_sub(0x3030_3030_3030_3030);
        let high = word.wrapping_add(0x4646_4646_4646_4646);
        if (low | high) & 0x8080_8080_8080_8080 != 0 {
            break;
        }
        // Eight digits at once (the SWAR step of fast_float).
        let pairs = low.wrapping_mul(10).wrapping_add(low >> 8);
        let mask = 0x0000_00FF_0000_00FF;
        let eight = ((pairs & mask)
            .wrapping_mul(0x000F_4240_0000_0064)
            .wrapping_add(((pairs >> 16) & mask).wrapping_mul(0x0000_2710_0000_0001)))
            >> 32;
        *value = value.wrapping_mul(100_000_000).wrapping_add(eight);
        *position += 8;
    }
    while let Some(&byte) = data.get(*position) {
        if !byte.is_ascii_digit() {
            break;
        }
        *value = value.wrapping_mul(10).wrapping_add(u64::from(byte - b'0'));
        *position += 1;
    }
}

/// Keys are short: an inline byte loop beats a call to memcmp.
#[inline(always)]
fn same_key(candidate: &[u8], key: &[u8]) -> bool {
    candidate.len() == key.len() && candidate.iter().zip(key).all(|(left, right)| left == right)
}

const WHITESPACE: [u8; 4] = [b' ', b'\t', b'\n', b'\r'];

fn skip_whitespace(data: &[u8], mut position: usize) -> usize {
    while position < data.len() && WHITESPACE.contains(&data[position]) {
        position += 1;
    }
    position
}

fn syntax(offset: usize, message: &str) -> SyntaxError {
    SyntaxError {
        offset,
        message: message.to_owned(),
    }
}

/// Where the JSON value starting at `start` (not whitespace) ends. Tracks only brackets and
/// strings: the record parser validates everything else.
fn value_end(data: &[u8], start: usize) -> Result<usize, SyntaxError> {
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
fn parse_one(
    batch: &mut Batch<'_>,
    text: &str,
    range: &Range<usize>,
    depth: usize,
) -> Result<(), SyntaxError> {
    let mut scanner = Scanner::new(text.get(..range.end).unwrap_or(text), range.start, depth);
    scanner.value(batch, ROOT)?;
    scanner.end()
}

/// JSON is UTF-8: checked once for the whole input (as `json.loads` does), so that invalid
/// bytes are found wherever they are, and the parser need not check each string again.
fn as_utf8(data: &[u8]) -> Result<&str, SyntaxError> {
    std::str::from_utf8(data).map_err(|error| syntax(error.valid_up_to(), "invalid UTF-8"))
}

/// Parses `ranges` (records numbered from `first_record`, nested `depth` deep). After a
/// record error the rest is still parsed, so that malformed JSON anywhere is reported before a
/// bad record, and found exactly as by the single-threaded path.
fn parse_task<'s>(
    schema: &'s Schema,
    text: &str,
    ranges: &[Range<usize>],
    first_record: usize,
    depth: usize,
) -> Result<Batch<'s>, ParseError> {
    let mut batch = Batch::new(schema, ranges.len());
    let mut first_error = None;
    for (index, range) in ranges.iter().enumerate() {
        batch.begin_record();
        parse_one(&mut batch, text, range, depth).map_err(ParseError::Syntax)?;
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
        return parse_document(schema, as_utf8(data).map_err(ParseError::Syntax)?);
    }
    parse_json_threaded(schema, data)
}

/// The nesting of the records in a document: 1 inside a top-level array.
fn record_depth(data: &[u8]) -> usize {
    usize::from(data.get(skip_whitespace(data, 0)) == Some(&b'['))
}

/// The threaded path of [`parse_json`], whatever the input's size: exposed so that tests and
/// fuzzers can check that both paths agree.
#[doc(hidden)]
pub fn parse_json_threaded(schema: &Schema, data: &[u8]) -> Result<Vec<Column>, ParseError> {
    let text = as_utf8(data).map_err(ParseError::Syntax)?;
    // Threads need the record boundaries first: one structural pass over the bytes.
    let ranges = split_records(data).map_err(ParseError::Syntax)?;
    let depth = record_depth(data);
    let per_task = records_per_task(ranges.len());
    let results: Vec<Result<Batch<'_>, ParseError>> = ranges
        .par_chunks(per_task)
        .enumerate()
        .map(|(task, chunk)| parse_task(schema, text, chunk, task * per_task, depth))
        .collect();
    merge(schema, results)
}

/// One pass over the whole document on this thread: an array needs no boundary scan.
fn parse_document(schema: &Schema, text: &str) -> Result<Vec<Column>, ParseError> {
    let data = text.as_bytes();
    let start = skip_whitespace(data, 0);
    if start == data.len() {
        return Err(ParseError::Syntax(syntax(start, EMPTY_INPUT)));
    }
    if data[start] != b'[' {
        // One object, or NDJSON: split at the values' boundaries as the threaded path does, so
        // that values must be apart by whitespace alike ("1true" is malformed).
        let ranges = split_records(data).map_err(ParseError::Syntax)?;
        return Ok(parse_task(schema, text, &ranges, 0, 0)?.into_columns());
    }
    // Reserve for the records' likely count, from the size of the first one.
    let estimate = value_end(data, skip_whitespace(data, start + 1))
        .map(|end| data.len() / (end - start).max(16))
        .unwrap_or(0);
    let mut batch = Batch::new(schema, estimate);
    let mut first_error = None;
    let mut scanner = Scanner::new(text, start, 0);
    scanner.enter().map_err(ParseError::Syntax)?;
    if !scanner.empty(b']') {
        loop {
            batch.begin_record();
            scanner
                .value(&mut batch, ROOT)
                .map_err(ParseError::Syntax)?;
            if first_error.is_none() {
                first_error = batch.finish_record(batch.records).err();
            }
            if !scanner.next_item(b']').map_err(ParseError::Syntax)? {
                break;
            }
            scanner.expect_element().map_err(ParseError::Syntax)?;
        }
    }
    scanner.end().map_err(ParseError::Syntax)?;
    match first_error {
        Some(error) => Err(ParseError::Record(error)),
        None => Ok(batch.into_columns()),
    }
}

const EMPTY_INPUT: &str = "empty input: expected a JSON array of objects, an object, or NDJSON";

fn merge<'s>(
    schema: &'s Schema,
    results: Vec<Result<Batch<'s>, ParseError>>,
) -> Result<Vec<Column>, ParseError> {
    // Syntax errors win over record errors, and earlier records over later ones.
    if let Some(Err(error)) = results
        .iter()
        .find(|result| matches!(result, Err(ParseError::Syntax(_))))
    {
        return Err(error.clone());
    }
    let mut merged = Batch::new(schema, 0);
    for result in results {
        merged.append(result?);
    }
    Ok(merged.into_columns())
}

/// Parses the bytes as one JSON document with the records parser's scanner and counts its
/// scalars, decoding every one (numbers to integers or correctly rounded floats, strings with
/// their escapes) but building nothing: the cost of the parser alone, for benchmarks.
pub fn count_scalars(data: &[u8]) -> Result<usize, SyntaxError> {
    let text = as_utf8(data)?;
    let mut scanner = Scanner::new(text, 0, 0);
    let count = scanner.count()?;
    scanner.end()?;
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// Values extracted from Python

/// The part of a record that the schema reads, extracted from Python objects while the GIL is
/// held. Containers keep only the children the trie asks for, already resolved to nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// A list at a list field: every element (nested containers become `Other`).
    List(Vec<Value>),
    /// An object at a container node: the children present, by node.
    Object(Vec<(NodeId, Value)>),
    /// A list at a container node: the elements that integer segments read, by node.
    IndexedList(Vec<(NodeId, Value)>),
    /// Anything else, rendered for an error message ("an object", "a set", ...).
    Other(String),
}

impl Value {
    fn as_scalar(&self) -> Option<Scalar<'_>> {
        match self {
            Self::Null => Some(Scalar::Null),
            Self::Bool(value) => Some(Scalar::Bool(*value)),
            Self::Int(value) => Some(Scalar::Int(*value)),
            Self::UInt(value) => Some(Scalar::UInt(*value)),
            Self::Float(value) => Some(Scalar::Float(*value)),
            Self::Str(value) => Some(Scalar::Str(value)),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match (self, self.as_scalar()) {
            (_, Some(scalar)) => render_scalar(scalar),
            (Self::List(_) | Self::IndexedList(_), None) => "a list".into(),
            (Self::Object(_), None) => "an object".into(),
            (Self::Other(text), None) => truncate(text.clone()),
            (_, None) => "a value".into(),
        }
    }
}

fn feed_value(batch: &mut Batch<'_>, node: NodeId, value: &Value) {
    if let Some(scalar) = value.as_scalar() {
        batch.scalar(node, scalar);
        return;
    }
    match value {
        Value::Object(children) if !batch.schema.nodes[node].is_leaf() => {
            for (child, child_value) in children {
                feed_value(batch, *child, child_value);
            }
        }
        Value::IndexedList(children) if node != ROOT && !batch.schema.nodes[node].is_leaf() => {
            batch.list_at_container(node);
            for (child, child_value) in children {
                feed_value(batch, *child, child_value);
            }
        }
        Value::List(items) if batch.leaf_wants_list(node) => {
            for (index, item) in items.iter().enumerate() {
                match item.as_scalar() {
                    Some(scalar) => batch.list_element(node, index, scalar),
                    None => batch.element_mismatch(node, index, &item.describe()),
                }
            }
            batch.list_end(node, items.len());
        }
        other => batch.container_mismatch(node, &other.describe()),
    }
}

fn parse_values_task<'s>(
    schema: &'s Schema,
    records: &[Value],
    first_record: usize,
) -> Result<Batch<'s>, ParseError> {
    let mut batch = Batch::new(schema, records.len());
    for (index, record) in records.iter().enumerate() {
        batch.begin_record();
        feed_value(&mut batch, ROOT, record);
        batch
            .finish_record(first_record + index)
            .map_err(ParseError::Record)?;
    }
    Ok(batch)
}

/// Converts extracted records into the schema's tensors. The values are decoded already, so
/// the only errors are record errors.
pub fn parse_values(schema: &Schema, records: &[Value]) -> Result<Vec<Column>, ParseError> {
    let threaded = records.len() >= PARALLEL_MIN_VALUES_RECORDS
        && rayon::current_num_threads() >= PARALLEL_MIN_THREADS;
    convert_values(schema, records, threaded)
}

fn convert_values(
    schema: &Schema,
    records: &[Value],
    threaded: bool,
) -> Result<Vec<Column>, ParseError> {
    if !threaded {
        return parse_values_task(schema, records, 0).map(Batch::into_columns);
    }
    let per_task = records_per_task(records.len());
    let results: Vec<_> = records
        .par_chunks(per_task)
        .enumerate()
        .map(|(task, chunk)| parse_values_task(schema, chunk, task * per_task))
        .collect();
    merge(schema, results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ConfigValue, FieldSpec, SchemaSpec};

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
    fn arrays_objects_and_ndjson_give_the_same_rows() {
        let schema = schema(vec![FieldSpec::new("a"), FieldSpec::new("b.c")]);
        let array = parse_json(
            &schema,
            br#"[{"a": 1, "b": {"c": 2.5}}, {"b": {"c": -1}, "a": 3}]"#,
        )
        .unwrap();
        let ndjson = parse_json(
            &schema,
            b"{\"a\": 1, \"b\": {\"c\": 2.5}}\n{\"b\": {\"c\": -1}, \"a\": 3}\n",
        )
        .unwrap();
        assert_eq!(array, ndjson);
        assert_eq!(
            floats(&array, "input"),
            (vec![2, 2], vec![1.0, 2.5, 3.0, -1.0])
        );
        let single = parse_json(&schema, br#" {"a": 1, "b": {"c": 2.5}} "#).unwrap();
        assert_eq!(floats(&single, "input"), (vec![1, 2], vec![1.0, 2.5]));
        let empty = parse_json(&schema, b"[]").unwrap();
        assert_eq!(floats(&empty, "input"), (vec![0, 2], vec![]));
    }

    #[test]
    fn the_last_duplicate_key_wins_like_json_loads() {
        let schema = schema(vec![FieldSpec::new("a.x"), FieldSpec::new("b")]);
        let columns = parse_json(
            &schema,
            br#"{"a": {"x": "bad"}, "b": 1, "a": {"x": 2}, "b": 3}"#,
        )
        .unwrap();
        assert_eq!(floats(&columns, "input").1, [2.0, 3.0]);
        // The later object replaces the earlier one entirely, so a.x is missing.
        let error = record_error(parse_json(&schema, br#"{"a": {"x": 1}, "b": 1, "a": {}}"#));
        assert_eq!(error.path.as_deref(), Some("a.x"));
    }

    #[test]
    fn errors_name_the_record_field_expectation_and_value() {
        let schema = schema(vec![FieldSpec::new("a.b")]);
        let error = record_error(parse_json(
            &schema,
            br#"[{"a": {"b": 1}}, {"a": {"b": "abc"}}]"#,
        ));
        assert_eq!(
            error.to_string(),
            r#"record 1, field "a.b": expected float32, got "abc""#
        );
        let error = record_error(parse_json(&schema, br#"[{"a": 5}]"#));
        assert_eq!(error.expected, r#"an object at "a""#);
        let error = record_error(parse_json(&schema, br#"[3]"#));
        assert_eq!(error.to_string(), "record 0: expected an object, got 3");
        let error = record_error(parse_json(&schema, br#"[{"a": null}]"#));
        assert_eq!(error.got, "nothing (missing or null)");
    }

    #[test]
    fn malformed_json_reports_its_byte_offset() {
        let schema = schema(vec![FieldSpec::new("a")]);
        for (input, offset) in [
            (&br#"[{"a": 1}, {"a": 2,}]"#[..], 19),
            (br#"[{"a": 1} {"a": 2}]"#, 10),
            (br#"[{"a": 1"#, 8),
            (b"", 0),
            (br#"{"a": tru}"#, 6),
        ] {
            match parse_json(&schema, input) {
                Err(ParseError::Syntax(error)) => {
                    assert!(
                        error.offset.abs_diff(offset) <= 3,
                        "{input:?}: {error} (wanted near {offset})"
                    )
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
        // Malformed JSON anywhere is reported before a bad record.
        let result = parse_json(&schema, br#"[{"a": "x"}, {"a": ]"#);
        assert!(matches!(result, Err(ParseError::Syntax(_))), "{result:?}");
    }

    #[test]
    fn lists_fixed_variable_and_indexed() {
        let mut fixed = FieldSpec::new("v");
        fixed.shape = Some(vec![2]);
        let mut tokens = FieldSpec::new("t");
        tokens.shape = Some(vec![-1]);
        tokens.pad = Some(ConfigValue::Int(-1));
        let schema = schema(vec![FieldSpec::new("s.1"), fixed, tokens]);
        let columns = parse_json(&schema, br#"[{"s": [9, 8], "v": [1, 2], "t": [5]}, {"s": [7, 6, 5], "v": [3, 4], "t": [1, 2, 3]}]"#).unwrap();
        assert_eq!(
            floats(&columns, "input"),
            (vec![2, 3], vec![8.0, 1.0, 2.0, 6.0, 3.0, 4.0])
        );
        assert_eq!(
            floats(&columns, "t"),
            (vec![2, 3], vec![5.0, -1.0, -1.0, 1.0, 2.0, 3.0])
        );
        let lengths = columns
            .iter()
            .find(|column| column.name == "t_lengths")
            .unwrap();
        assert_eq!(lengths.data, Buffer::Int64(vec![1, 3]));
        let error = record_error(parse_json(
            &schema,
            br#"{"s": [1, 2], "v": [1, 2, 3], "t": []}"#,
        ));
        assert_eq!(
            error.to_string(),
            r#"record 0, field "v": expected list of 2 float32, got a list of 3"#
        );
    }

    #[test]
    fn missing_policies_fill_or_refuse() {
        let mut with_default = FieldSpec::new("a");
        with_default.default = Some(ConfigValue::Float(7.0));
        let mut with_nan = FieldSpec::new("b");
        with_nan.missing = Some("nan".into());
        let schema = schema(vec![with_default, with_nan, FieldSpec::new("c")]);
        let columns = parse_json(&schema, br#"{"a": null, "c": 1}"#).unwrap();
        let (_, values) = floats(&columns, "input");
        assert_eq!(values[0], 7.0);
        assert!(values[1].is_nan());
        assert!(parse_json(&schema, br#"{"a": 1, "b": 2}"#).is_err());
    }

    #[test]
    fn categories_map_to_indices() {
        let mut color = FieldSpec::new("color");
        color.vocabulary = Some(vec!["red".into(), "green".into()]);
        color.unknown = Some("index".into());
        let schema = schema(vec![color]);
        let columns = parse_json(
            &schema,
            br#"[{"color": "green"}, {"color": "mauve"}, {"color": "red"}]"#,
        )
        .unwrap();
        assert_eq!(columns[0].data, Buffer::Int64(vec![1, -1, 0]));
    }

    #[test]
    fn extracted_values_give_the_same_results_as_json() {
        let schema = schema(vec![FieldSpec::new("a"), FieldSpec::new("b.c")]);
        let b = schema.nodes[ROOT].child_by_key("b").unwrap();
        let c = schema.nodes[b].child_by_key("c").unwrap();
        let a = schema.nodes[ROOT].child_by_key("a").unwrap();
        let records = vec![Value::Object(vec![
            (a, Value::Int(1)),
            (b, Value::Object(vec![(c, Value::Float(2.5))])),
        ])];
        let from_values = parse_values(&schema, &records).unwrap();
        assert_eq!(
            from_values,
            parse_json(&schema, br#"{"a": 1, "b": {"c": 2.5}}"#).unwrap()
        );
        let bad = vec![Value::Object(vec![(a, Value::Str("x".into()))])];
        match parse_values(&schema, &bad) {
            Err(ParseError::Record(error)) => assert_eq!(error.path.as_deref(), Some("a")),
            other => panic!("{other:?}"),
        }
        // The threaded conversion agrees, and names the same first bad record.
        let mut many: Vec<Value> = (0..5_000)
            .map(|index| {
                let nested = Value::Object(vec![(c, Value::Float(0.5))]);
                Value::Object(vec![(a, Value::Int(index)), (b, nested)])
            })
            .collect();
        assert_eq!(
            convert_values(&schema, &many, true),
            convert_values(&schema, &many, false)
        );
        many[4_321] = Value::Object(vec![(a, Value::Bool(true))]);
        many[4_500] = Value::Null;
        let threaded = convert_values(&schema, &many, true);
        assert_eq!(threaded, convert_values(&schema, &many, false));
        assert!(matches!(
            threaded,
            Err(ParseError::Record(RecordError { record: 4_321, .. }))
        ));
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
        assert_eq!(
            threaded,
            parse_document(&schema, std::str::from_utf8(&data).unwrap()).unwrap()
        );
        let (shape, values) = floats(&threaded, "input");
        assert_eq!(shape, [40_000, 2]);
        assert_eq!(values[2 * 39_999 + 1], 79_998.0);
        // A bad record late in the input is found and named, by both paths.
        let bad = String::from_utf8(data)
            .unwrap()
            .replace(r#""a": 35000,"#, r#""a": "x","#);
        let threaded_error = record_error(parse_json_threaded(&schema, bad.as_bytes()));
        assert_eq!(threaded_error.record, 35_000);
        assert_eq!(threaded_error, record_error(parse_document(&schema, &bad)));
    }

    #[test]
    fn numbers_are_correctly_rounded_like_std() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "-0.0",
            "0.1",
            "1e22",
            "1e23",
            "9007199254740993",
            "9007199254740993.0",
            "2.2250738585072014e-308",
            "4.9e-324",
            "1.7976931348623157e308",
            "123456789012345678901234",
            "0.30000000000000004",
            "-18446744073709551616",
            "18446744073709551615",
            "1.5e-400",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.000001",
            "1E5",
            "1e-22",
            "3e-23",
        ]
        .iter()
        .map(|case| (*case).to_owned())
        .collect();
        for _ in 0..20_000 {
            let digits = next() % 10u64.pow((next() % 20) as u32);
            let point = (next() % 21) as usize;
            let mut text = digits.to_string();
            if point < text.len() && point > 0 {
                text.insert(point, '.');
            }
            if next() % 3 == 0 {
                text.push_str(&format!("e{}", (next() % 60) as i64 - 30));
            }
            if next() % 2 == 0 {
                text.insert(0, '-');
            }
            cases.push(text);
        }
        for case in cases {
            let mut scanner = Scanner::new(&case, 0, 0);
            let scalar = scanner.number().unwrap();
            assert_eq!(scanner.position, case.len(), "{case}");
            let expected: f64 = case.parse().unwrap();
            let got = match scalar {
                Scalar::Int(value) => value as f64,
                Scalar::UInt(value) => value as f64,
                Scalar::Float(value) => value,
                other => panic!("{case}: {other:?}"),
            };
            if case.starts_with("-0") && !case.contains(['.', 'e', 'E']) {
                assert_eq!(
                    scalar,
                    Scalar::Int(0),
                    "an integer -0 is 0, as in json.loads"
                );
                continue;
            }
            assert_eq!(
                got.to_bits(),
                expected.to_bits(),
                "{case}: {got} against {expected}"
            );
        }
        for bad in ["-", "01", "1.", ".5", "1e", "1e+", "-a", "+1", "1.e5"] {
            let mut scanner = Scanner::new(bad, 0, 0);
            let ok = scanner.number().is_ok() && scanner.end().is_ok();
            assert!(!ok, "{bad} is not a JSON number");
        }
        let mut scanner = Scanner::new("1e400", 0, 0);
        assert!(
            scanner.number().is_err(),
            "1e400 is out of range, as serde_json has it"
        );
    }

    #[test]
    fn count_scalars_counts_every_value() {
        assert_eq!(
            count_scalars(br#"[{"a": 1, "b": [true, null, "x"]}, 2.5]"#).unwrap(),
            5
        );
        assert!(count_scalars(b"[1,").is_err());
    }
}
