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
/// of 32 numbers, ~3 ms of work for one thread: enough to amortise handing pieces to threads
/// and copying their rows together. (An estimate from the per-record cost, not a measured
/// crossover.)
pub const PARALLEL_MIN_BYTES: usize = 1024 * 1024;
/// Threads are used only with at least this many of them. A top-level array is cut into
/// pieces at guessed record starts, with no serial pass over the input (see
/// `parse_array_speculative`), so the threads share nearly all the work. Measured on 2 vCPUs
/// (benches/records.py's 61 MB, best of 12): one thread 125-135 ms, two 72-80 ms; before, with
/// a serial boundary scan (25-35 ms), UTF-8 check (~10 ms) and merge, two took 103-127 ms.
pub const PARALLEL_MIN_THREADS: usize = 2;
/// Extracted Python records are converted by several threads from this many on: the values
/// are already decoded, so conversion is cheap (~20% of parse_records) and pays only in bulk.
pub const PARALLEL_MIN_VALUES_RECORDS: usize = 16 * 1024;
/// Tasks per thread: a few, so that a slow task does not leave the other threads idle. (For
/// the 61 MB array on 2 threads, 2, 4, 8 or 16 pieces took the same time within the noise.)
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

    /// [`convert_number`] and [`Self::set`] in one step for the commonest column, float32:
    /// false where that does not apply (another dtype, not a number, or a number float32 cannot
    /// hold), for the general path to decide.
    #[inline(always)]
    fn set_float32(&mut self, index: usize, scalar: Scalar<'_>) -> bool {
        let Self::Float32(values) = self else {
            return false;
        };
        let narrow = match scalar {
            Scalar::Float(value) => value as f32,
            // Through float64, as convert_number (and numpy from Python ints) rounds.
            Scalar::Int(value) => value as f64 as f32,
            _ => return false,
        };
        if !narrow.is_finite() {
            return false;
        }
        values[index] = narrow;
        true
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

    /// `parts` (buffers of `dtype`) end to end, copied by several threads.
    fn concat(dtype: Dtype, parts: &[&Self]) -> Self {
        fn typed<'a, T: Copy + Default + Send + Sync + 'a>(
            parts: &[&'a Buffer],
            values: impl Fn(&'a Buffer) -> Option<&'a [T]>,
        ) -> Vec<T> {
            let parts: Vec<&[T]> = parts.iter().filter_map(|part| values(part)).collect();
            let total = parts.iter().map(|part| part.len()).sum();
            // Zeroed memory comes from the allocator as untouched pages: each thread's copy
            // is the first write to its part.
            let mut merged = vec![T::default(); total];
            let mut rest = merged.as_mut_slice();
            let mut copies = Vec::with_capacity(parts.len());
            for part in parts {
                let (head, tail) = rest.split_at_mut(part.len());
                copies.push((head, part));
                rest = tail;
            }
            copies
                .into_par_iter()
                .for_each(|(target, part)| target.copy_from_slice(part));
            merged
        }
        // One arm a dtype: the buffer variant of the same name, copied as its element type.
        macro_rules! concat_as {
            ($($variant:ident),*) => {
                match dtype {
                    $(Dtype::$variant => Self::$variant(typed(parts, |part| match part {
                        Self::$variant(values) => Some(values),
                        _ => None,
                    })),)*
                }
            };
        }
        concat_as!(Float32, Float64, Int32, Int64, Bool)
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
#[repr(u8)]
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
    /// Per trie node, its keys' [`key_word`]s, in the order of its keys.
    key_words: Vec<Vec<Option<(u64, u64)>>>,
    /// Per trie node, per place in an object (0: its start; `i + 1`: after the member of key
    /// `i`): the [`Lead`] the input last had there, to be matched in one step next time.
    leads: Vec<Vec<Option<Lead>>>,
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
            key_words: schema
                .nodes
                .iter()
                .map(|node| node.keys.iter().map(|(key, _)| key_word(key)).collect())
                .collect(),
            leads: schema
                .nodes
                .iter()
                .map(|node| vec![None; node.keys.len() + 1])
                .collect(),
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
                if self.buffers[field.tensor].set_float32(index, scalar) {
                    self.states[field_id] = FieldState::Set;
                } else if let Some(cell) = convert_number(field.dtype, scalar) {
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
                    let at = self.row_starts[field.tensor] + field.column + index;
                    if self.buffers[field.tensor].set_float32(at, scalar) {
                        return;
                    }
                    if let Some(cell) = convert_number(field.dtype, scalar) {
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
        // Usually every field was set: one branch-free pass over the states (vectorized) tells
        // so, and no field's policy needs a visit.
        let all_set = self
            .states
            .iter()
            .fold(true, |all, &state| all & (state == FieldState::Set));
        if !all_set {
            self.apply_policies(record)?;
        }
        for (tensor_id, tensor) in self.schema.tensors.iter().enumerate() {
            if tensor.lengths_name.is_some() {
                let length = self.buffers[tensor_id].len() - self.row_starts[tensor_id];
                self.lengths[tensor_id].push(length);
            }
        }
        self.records += 1;
        Ok(())
    }

    /// The fields of the record that are not set: their missing-value policy, or its first
    /// invalid or missing field's error.
    fn apply_policies(&mut self, record: usize) -> Result<(), RecordError> {
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
        Ok(())
    }

    /// The batches' records end to end. Each tensor's buffer is allocated once at its full
    /// size and the batches' parts are copied into it by several threads: appending them one
    /// after another on one thread cost 5-20 ms (noisy) of the 61 MB benchmark's ~130.
    fn concat(schema: &'s Schema, batches: Vec<Self>) -> Self {
        let mut merged = Self::new(schema, 0);
        merged.records = batches.iter().map(|batch| batch.records).sum();
        for (tensor_id, tensor) in schema.tensors.iter().enumerate() {
            let parts: Vec<&Buffer> = batches
                .iter()
                .map(|batch| &batch.buffers[tensor_id])
                .collect();
            merged.buffers[tensor_id] = Buffer::concat(tensor.dtype, &parts);
            merged.lengths[tensor_id] = batches
                .iter()
                .flat_map(|batch| batch.lengths[tensor_id].iter().copied())
                .collect();
        }
        merged
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

/// The place in an object after unknown members that no known one preceded: it has no lead.
const NO_SLOT: usize = usize::MAX;

/// Deepest nesting of objects and lists accepted, as serde_json (and so JSON from most Rust
/// services) allows: a record nested deeper is malformed rather than a stack overflow.
const MAX_DEPTH: usize = 127;

/// Where a decoded string lives: in the input (no escapes) or in the scanner's scratch buffer.
enum Text {
    Input(Range<usize>),
    Scratch,
}

/// Bytes that end the fast part of a string scan: the closing quote, an escape, a control
/// character (which JSON forbids in strings), or the first byte of a non-ASCII character,
/// which is checked there as UTF-8 (see [`Scanner::utf8_character`]).
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    byte = 0x80;
    while byte < 0x100 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Whether JSON writes `key` as it is between quotes: no quote, backslash or control
/// character (non-ASCII characters are fine).
#[inline(always)]
fn written_as_is(key: &[u8]) -> bool {
    !key.iter()
        .any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
}

/// A key of under 8 bytes that JSON writes as it is, as the input holds it after its opening
/// quote: its bytes and closing quote in the low bytes of a little-endian word, and the mask
/// of those bytes. Comparing 8 input bytes with it (masked) is one step, where the byte loop
/// over the key showed as ~8% of a parse's profile.
fn key_word(key: &str) -> Option<(u64, u64)> {
    let bytes = key.as_bytes();
    if bytes.len() >= 8 || !written_as_is(bytes) {
        return None;
    }
    let mut word = 0u64;
    for (index, &byte) in bytes.iter().chain(b"\"").enumerate() {
        word |= u64::from(byte) << (8 * index);
    }
    let mask = u64::MAX >> (8 * (7 - bytes.len()));
    Some((word, mask))
}

/// The text of `data[range]`, which the scanner has checked to be UTF-8 (it checks every
/// non-ASCII character of a string it reads). Converting again costs little: the strings
/// read are short, and mostly ASCII, which is checked a word at a time.
fn text_at(data: &[u8], range: Range<usize>) -> &str {
    data.get(range)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .unwrap_or_default()
}

/// The bytes from the end of one member's value (or from just after an object's `{`) to the
/// start of the next member's value, exactly as the input had them once: separator, quoted key,
/// colon and whitespace (`, "f1": `), up to 16 bytes. Records of one batch are mostly written
/// alike, so the next member usually begins with the same bytes as the last record's did there.
/// If it does, byte for byte, it is the same key, spelt the same way, in syntax that was
/// checked when the lead was learnt; one comparison of two words then stands for the comma,
/// whitespace, key lookup and colon steps. Any difference falls back to those steps.
#[derive(Clone, Copy)]
struct Lead {
    words: [u64; 2],
    masks: [u64; 2],
    len: usize,
    /// The key's index in its node's key list.
    key: usize,
    /// The key's trie node, and whether fields end there.
    child: NodeId,
    leaf: bool,
}

impl Lead {
    fn new(bytes: &[u8], key: usize, child: NodeId, leaf: bool) -> Option<Self> {
        if bytes.len() > 16 {
            return None;
        }
        let mut padded = [0u8; 16];
        padded[..bytes.len()].copy_from_slice(bytes);
        let word = |half: usize| {
            u64::from_le_bytes(padded[8 * half..8 * half + 8].try_into().unwrap_or_default())
        };
        let mask = |half: usize| {
            let used = bytes.len().saturating_sub(8 * half).min(8);
            if used == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * used)) - 1
            }
        };
        Some(Self {
            words: [word(0), word(1)],
            masks: [mask(0), mask(1)],
            len: bytes.len(),
            key,
            child,
            leaf,
        })
    }

    /// Whether `data` holds this lead at `position` (false too where fewer than 16 bytes
    /// remain: the steps handle the input's last bytes).
    #[inline(always)]
    fn matches(&self, data: &[u8], position: usize) -> bool {
        let Some(chunk) = data.get(position..position + 16) else {
            return false;
        };
        let low = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
        let high = u64::from_le_bytes(chunk[8..].try_into().unwrap_or_default());
        ((low ^ self.words[0]) & self.masks[0]) | ((high ^ self.words[1]) & self.masks[1]) == 0
    }
}

/// A single-pass, schema-driven JSON reader. It walks the trie while it reads: keys no field
/// asks for have their values checked for syntax and skipped without being decoded, and the
/// values fields ask for are parsed (numbers correctly rounded) and written straight into the
/// column buffers. There is no intermediate value: only escaped strings are copied.
///
/// It reads bytes, not a `str`: the input is not checked as UTF-8 first. Outside strings
/// only ASCII is JSON, and inside them every non-ASCII character is checked as it is passed,
/// so an input the scanner accepts is UTF-8; one it refuses is checked whole by
/// [`utf8_first`], so that invalid UTF-8 is reported wherever it is, before any other error.
/// This saves a serial pass over the input (~10 ms of the 61 MB benchmark).
struct Scanner<'a> {
    /// The input up to the end of the part being read; offsets are into the whole input.
    data: &'a [u8],
    position: usize,
    depth: usize,
    scratch: String,
    /// The closing brackets of the containers being skipped.
    stack: Vec<u8>,
}

/// The scanner's results. Its error is boxed: a result of one word moves in registers
/// through the scanner's many small steps, where the error itself is the rare case.
type Scan<T> = Result<T, Box<SyntaxError>>;

impl<'a> Scanner<'a> {
    fn new(data: &'a [u8], position: usize, depth: usize) -> Self {
        Self {
            data,
            position,
            depth,
            scratch: String::new(),
            stack: Vec::new(),
        }
    }

    #[cold]
    fn error(&self, offset: usize, message: &str) -> Box<SyntaxError> {
        Box::new(syntax(offset.min(self.data.len()), message))
    }

    #[cold]
    fn eof(&self, what: &str) -> Box<SyntaxError> {
        Box::new(syntax(
            self.data.len(),
            &format!("unexpected end of input while parsing {what}"),
        ))
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
                    0x80.. => {
                        position = self.utf8_character(position)?;
                        continue;
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
        self.scratch.push_str(text_at(self.data, start..end));
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
                    if byte >= 0x80 {
                        position = self.utf8_character(position)?;
                        continue;
                    }
                    if decode {
                        self.scratch.push_str(text_at(self.data, start..position));
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

    /// Checks the UTF-8 character whose first byte (not ASCII) is at `position`, and returns
    /// where the next one starts.
    #[cold]
    fn utf8_character(&self, position: usize) -> Scan<usize> {
        let width = match self.data[position] {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 0,
        };
        match self.data.get(position..position + width) {
            Some(bytes) if width > 0 && std::str::from_utf8(bytes).is_ok() => Ok(position + width),
            _ => Err(self.error(position, "invalid UTF-8")),
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
            Text::Input(range) => text_at(self.data, range.clone()),
            Text::Scratch => &self.scratch,
        }
    }

    /// Reads an object key (the position on its quote) and finds its child among `keys`, trying
    /// the key after the last one found first: records of a batch usually share a key order.
    /// `words` are the keys' [`key_word`]s. After the last key, the first is expected next:
    /// the next record's (or nested object's) first key.
    #[inline(always)]
    fn key(
        &mut self,
        keys: &[(Box<str>, NodeId)],
        words: &[Option<(u64, u64)>],
        hint: &mut usize,
    ) -> Scan<Option<usize>> {
        let start = self.position + 1;
        if *hint >= keys.len() {
            *hint = 0;
        }
        // The expected key, compared in place: a key that JSON writes as it is (no quote,
        // backslash or control character) matches exactly when its bytes and a closing quote
        // follow the opening one. A short key is compared in one step.
        if let Some((candidate, _)) = keys.get(*hint) {
            let candidate = candidate.as_bytes();
            let end = start + candidate.len();
            let word = self
                .data
                .get(start..start + 8)
                .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                .map(u64::from_le_bytes);
            let matched = match (words.get(*hint).copied().flatten(), word) {
                (Some((expected, mask)), Some(word)) => word & mask == expected,
                _ => {
                    self.data.get(end) == Some(&b'"')
                        && self
                            .data
                            .get(start..end)
                            .is_some_and(|raw| same_key(candidate, raw))
                        && written_as_is(candidate)
                }
            };
            if matched {
                self.position = end + 1;
                let index = *hint;
                *hint += 1;
                return Ok(Some(index));
            }
        }
        let (end, escaped) = self.plain_string()?;
        let raw: &[u8] = if escaped {
            self.scratch.clear();
            self.scratch.push_str(text_at(self.data, start..end));
            self.escaped_rest(true)?;
            self.scratch.as_bytes()
        } else {
            let data = self.data;
            &data[start..end]
        };
        if let Some((candidate, _)) = keys.get(*hint) {
            if same_key(candidate.as_bytes(), raw) {
                let index = *hint;
                *hint += 1;
                return Ok(Some(index));
            }
        }
        let found = keys
            .iter()
            .position(|(candidate, _)| same_key(candidate.as_bytes(), raw));
        if let Some(position) = found {
            *hint = position + 1;
        }
        Ok(found)
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
    /// or exponent, become the correctly rounded float64. The commonest short numbers take
    /// [`short_number`]; the rest, the general reader ([`Self::number_or_skip`]).
    #[inline(always)]
    fn number(&mut self) -> Scan<Scalar<'a>> {
        if let Some((scalar, end)) = short_number(self.data, self.position) {
            self.position = end;
            return Ok(scalar);
        }
        self.number_or_skip::<true>()
    }

    /// The general number reader: every number [`Self::number`] takes, or with `DECODE` false
    /// only its syntax checked (as serde_json skips numbers: 1e400 is refused only where a
    /// field reads it).
    #[inline(always)]
    fn number_or_skip<const DECODE: bool>(&mut self) -> Scan<Scalar<'a>> {
        let data = self.data;
        let start = self.position;
        let mut position = start;
        // The sign of record values is as often - as not: no branch on it (here and below).
        let negative = data.get(position) == Some(&b'-');
        position += usize::from(negative);
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
            // Exact either way (at most 2^53); from a signed integer it is one instruction.
            let magnitude = integer as i64 as f64;
            let value = if exponent < 0 {
                magnitude / POWERS_OF_TEN[exponent.unsigned_abs() as usize]
            } else {
                magnitude * POWERS_OF_TEN[exponent as usize]
            };
            return Ok(Scalar::Float(with_sign(value, negative)));
        }
        if !overflow && exponent < 0 {
            if let Some(value) = nearest_quotient(integer, exponent.unsigned_abs() as usize) {
                return Ok(Scalar::Float(with_sign(value, negative)));
            }
        }
        match fast_float2::parse::<f64, _>(&data[start..position]) {
            Ok(value) if value.is_finite() => Ok(Scalar::Float(value)),
            // Valid JSON that no numeric type holds: the field that reads it names it.
            _ => Ok(Scalar::Huge(text_at(data, start..position))),
        }
    }

    #[cold]
    fn number_error(&self, position: usize) -> Box<SyntaxError> {
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
        // Where in the object the next member is, for its lead: 0 at the start (no member read
        // yet), `i + 1` after the member of key i; none after unknown members that no known one
        // preceded (a lead learnt there holds a comma, which an object's start must not accept):
        // `NO_SLOT`, which no lead list reaches.
        let mut slot = 0;
        loop {
            let start = self.position;
            // (The lead's fields, not the lead: a copy of the whole costs more than its match.)
            let matched = batch.leads[node]
                .get(slot)
                .and_then(Option::as_ref)
                .filter(|lead| lead.matches(self.data, start))
                .map(|lead| (lead.len, lead.key, lead.child, lead.leaf));
            let found = match matched {
                Some((len, key, child, leaf)) => {
                    self.position = start + len;
                    Some((key, child, leaf))
                }
                None => {
                    if slot == 0 {
                        if self.empty(b'}') {
                            return Ok(());
                        }
                    } else if !self.next_item(b'}')? {
                        return Ok(());
                    }
                    self.expect_key()?;
                    // The key after the last one read is the likeliest (leads that matched
                    // leave the hint as it was: it is only needed here).
                    if slot != NO_SLOT {
                        batch.key_hints[node] = slot;
                    }
                    let found = self.key(
                        &target.keys,
                        &batch.key_words[node],
                        &mut batch.key_hints[node],
                    )?;
                    self.colon()?;
                    let found = found.map(|index| {
                        let child = target.keys[index].1;
                        (index, child, schema.nodes[child].is_leaf())
                    });
                    if let Some((index, child, leaf)) = found {
                        if slot != NO_SLOT && self.peek().is_some() {
                            batch.leads[node][slot] =
                                Lead::new(&self.data[start..self.position], index, child, leaf);
                        }
                    }
                    found
                }
            };
            match found {
                Some((index, child, leaf)) => {
                    slot = index + 1;
                    // A leaf's value sets its fields' state whatever comes; a container must
                    // forget what an earlier occurrence of its key set below it.
                    if !leaf {
                        batch.reset(child);
                    } else if let Some(b'-' | b'0'..=b'9') = self.data.get(self.position) {
                        // A number for a leaf, the commonest member: read here, without the
                        // call to `value` and its dispatch on the first byte.
                        let number = self.number()?;
                        batch.scalar(child, number);
                        continue;
                    }
                    self.value(batch, child)?;
                }
                None => {
                    if slot == 0 {
                        slot = NO_SLOT;
                    }
                    self.skip()?;
                }
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

/// 10^0 to 10^8, for appending a run of up to 8 digits to a significand.
const POWERS_OF_TEN_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// 5^0 to 5^22, for the powers of ten that a float64 holds exactly ([`POWERS_OF_TEN`]).
const POWERS_OF_FIVE: [u64; 23] = {
    let mut powers = [1u64; 23];
    let mut index = 1;
    while index < 23 {
        powers[index] = powers[index - 1] * 5;
        index += 1;
    }
    powers
};

/// The float64 nearest to `significand / 10^k` (ties to even), for a significand above 2^53
/// (which Clinger's fast path cannot take) and k at most 22: the numbers of 16 to 19 digits
/// with a fraction that records hold ("0.9130110532378982"), found without reading their text
/// again (as a general float parser must). The quotient of two floats is within 2 units in
/// the last place of the exact one; each candidate is then checked against its neighbours'
/// midpoints exactly, in integers (10^k = 5^k * 2^k), and stepped to its neighbour until it
/// is the nearest. None where the scale does not fit the integers (the caller's general
/// parser then decides).
#[inline(never)]
fn nearest_quotient(significand: u64, k: usize) -> Option<f64> {
    let five = u128::from(*POWERS_OF_FIVE.get(k)?);
    if significand <= 1 << 53 {
        return None;
    }
    let mut bits = (significand as f64 / *POWERS_OF_TEN.get(k)?).to_bits();
    for _ in 0..4 {
        // The candidate is m * 2^(biased - 1075), its midpoint with the next float up
        // (2m + 1) * 2^(biased - 1076). The quotient is above that midpoint exactly when
        // significand * 2^shift > (2m + 1) * 5^k, with shift = 1076 - biased - k.
        let biased = (bits >> 52) as i64;
        let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
        let shift = 1076 - biased - k as i64;
        // (At most 62: the scaled significand, doubled, stays under 2^128.)
        if !(0..=62).contains(&shift) {
            return None;
        }
        let scaled = u128::from(significand) << shift;
        let above = u128::from(2 * mantissa + 1) * five;
        // Below the binade's first mantissa the floats are twice as dense: the midpoint with
        // the next float down is (4m - 1) * 2^(biased - 1077).
        let (scaled_below, below) = if mantissa == 1 << 52 {
            (scaled << 1, u128::from(4 * mantissa - 1) * five)
        } else {
            (scaled, u128::from(2 * mantissa - 1) * five)
        };
        let odd = mantissa & 1 == 1;
        if scaled > above || (scaled == above && odd) {
            bits += 1;
        } else if scaled_below < below || (scaled_below == below && odd) {
            bits -= 1;
        } else {
            return Some(f64::from_bits(bits));
        }
    }
    None
}

/// The value of the 8 digits of `digits` (each byte 0-9, the first digit in the lowest byte):
/// the SWAR step of fast_float.
#[inline(always)]
fn eight_digits(digits: u64) -> u64 {
    let pairs = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    let mask = 0x0000_00FF_0000_00FF;
    ((pairs & mask)
        .wrapping_mul(0x000F_4240_0000_0064)
        .wrapping_add(((pairs >> 16) & mask).wrapping_mul(0x0000_2710_0000_0001)))
        >> 32
}

/// Reads a run of ASCII digits into `value` (wrapping: the caller counts the digits), eight
/// bytes at a time where it can: a run's last (or only) 1 to 7 digits are read in one step
/// too, shifted up to the top of the word as if after leading zeros. Numbers in records are
/// mostly short runs ("-482.166499"), which a byte loop read one digit and branch at a time.
/// (With [`key_word`], this took ~7% off a single-threaded parse of the 61 MB benchmark.)
#[inline(always)]
fn digits(data: &[u8], position: &mut usize, value: &mut u64) {
    while let Some(chunk) = data.get(*position..*position + 8) {
        let mut word = 0u64;
        for (index, &byte) in chunk.iter().enumerate() {
            word |= u64::from(byte) << (8 * index);
        }
        let low = word.wrapping_sub(0x3030_3030_3030_3030);
        let high = word.wrapping_add(0x4646_4646_4646_4646);
        // The high bit of each byte that is not a digit: exact for the lowest one (the
        // bytes below it are digits, which neither borrow nor carry), which is all we read.
        let other = (low | high) & 0x8080_8080_8080_8080;
        if other == 0 {
            *value = value
                .wrapping_mul(100_000_000)
                .wrapping_add(eight_digits(low));
            *position += 8;
            continue;
        }
        let count = (other.trailing_zeros() / 8) as usize;
        if count > 0 {
            // The digits to the top bytes, zeros (leading digits) below; the bytes after the
            // run are shifted out.
            let run = eight_digits(low << (8 * (8 - count)));
            *value = value
                .wrapping_mul(POWERS_OF_TEN_U64[count])
                .wrapping_add(run);
            *position += count;
        }
        return;
    }
    while let Some(&byte) = data.get(*position) {
        if !byte.is_ascii_digit() {
            break;
        }
        *value = value.wrapping_mul(10).wrapping_add(u64::from(byte - b'0'));
        *position += 1;
    }
}

/// The 8 bytes at `at` of `window` as a little-endian word (the first byte lowest).
#[inline(always)]
fn word_at(window: &[u8; 24], at: usize) -> Option<u64> {
    let bytes = window.get(at..at + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// How many of the word's bytes, from the lowest, are ASCII digits (0 to 8), and the word
/// with '0' taken from each byte.
#[inline(always)]
fn digit_run(word: u64) -> (usize, u64) {
    let low = word.wrapping_sub(0x3030_3030_3030_3030);
    let high = word.wrapping_add(0x4646_4646_4646_4646);
    let other = (low | high) & 0x8080_8080_8080_8080;
    ((other.trailing_zeros() / 8) as usize, low)
}

/// The value of the first `count` (1 to 7) digits of a [`digit_run`] word.
#[inline(always)]
fn run_value(low: u64, count: usize) -> u64 {
    eight_digits(low << (8 * (8 - count)))
}

/// The numbers records mostly hold, read in a few word operations: an optional minus, 1 to 7
/// integer digits (no leading zero but "0" itself), then optionally a point and 1 to 7
/// fraction digits, and no exponent ("-482.166499", "98693", "0.5"). Returns the value and
/// where the number ends, exactly as the general reader would; None for anything else
/// (longer, an exponent, malformed, or within 24 bytes of the input's end), which the general
/// reader then takes from the start.
#[inline(always)]
fn short_number(data: &[u8], start: usize) -> Option<(Scalar<'static>, usize)> {
    let window: &[u8; 24] = data.get(start..start + 24)?.try_into().ok()?;
    let negative = window[0] == b'-';
    let first = usize::from(negative);
    let (count, low) = digit_run(word_at(window, first)?);
    if count == 0 || count == 8 || (count > 1 && window[first] == b'0') {
        return None;
    }
    let integer = run_value(low, count);
    let after = first + count;
    match window.get(after)? {
        b'.' => {}
        b'e' | b'E' => return None,
        _ => {
            // At most 7 digits: the value fits any integer type, and negating it is exact.
            let value = integer as i64;
            return Some((Scalar::Int(if negative { -value } else { value }), start + after));
        }
    }
    let (fraction, low) = digit_run(word_at(window, after + 1)?);
    if fraction == 0 || fraction == 8 {
        return None;
    }
    let end = after + 1 + fraction;
    if let b'e' | b'E' = window.get(end)? {
        return None;
    }
    // Under 10^14 < 2^53 over 10^1 to 10^7: exact operands, so one correctly rounded division
    // (Clinger's fast path, as in the general reader). From a signed integer, the conversion
    // is one instruction, where an unsigned one takes several.
    let significand = integer * POWERS_OF_TEN_U64[fraction] + run_value(low, fraction);
    let magnitude = significand as i64 as f64 / POWERS_OF_TEN[fraction];
    Some((Scalar::Float(with_sign(magnitude, negative)), start + end))
}

/// `magnitude` (not negative, zero included), negated if `negative`: by setting the sign bit,
/// without a branch (the sign of record values is as often - as not).
#[inline(always)]
fn with_sign(magnitude: f64, negative: bool) -> f64 {
    f64::from_bits(magnitude.to_bits() | (u64::from(negative) << 63))
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
    data: &[u8],
    range: &Range<usize>,
    depth: usize,
) -> Scan<()> {
    let mut scanner = Scanner::new(data.get(..range.end).unwrap_or(data), range.start, depth);
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
fn utf8_first<T, E: From<SyntaxError>>(data: &[u8], result: Result<T, E>) -> Result<T, E> {
    if result.is_err() {
        as_utf8(data)?;
    }
    result
}

/// Parses `ranges` (records numbered from `first_record`, nested `depth` deep). After a
/// record error the rest is still parsed, so that malformed JSON anywhere is reported before a
/// bad record, and found exactly as by the single-threaded path.
fn parse_task<'s>(
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

/// The nesting of the records in a document: 1 inside a top-level array.
fn record_depth(data: &[u8]) -> usize {
    usize::from(data.get(skip_whitespace(data, 0)) == Some(&b'['))
}

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

/// [`parse_json_threaded`] with a top-level array cut into at most `pieces` pieces, however
/// small it is: exposed so that tests and fuzzers can make the guesses of
/// [`parse_array_speculative`] go wrong in every way on small inputs.
#[doc(hidden)]
pub fn parse_json_pieces(
    schema: &Schema,
    data: &[u8],
    pieces: usize,
) -> Result<Vec<Column>, ParseError> {
    let start = skip_whitespace(data, 0);
    if data.get(start) == Some(&b'[') {
        let first = skip_whitespace(data, start + 1);
        if first < data.len() && data[first] != b']' {
            return utf8_first(data, parse_array_speculative(schema, data, first, pieces));
        }
        // An empty or unclosed array: nothing to share among threads.
        return utf8_first(data, parse_document(schema, data));
    }
    // One object or NDJSON: the exact boundaries first, then the records.
    let result = split_records(data)
        .map_err(ParseError::from)
        .and_then(|ranges| {
            let depth = record_depth(data);
            let per_task = records_per_task(ranges.len());
            let results: Vec<Result<Batch<'_>, ParseError>> = ranges
                .par_chunks(per_task)
                .enumerate()
                .map(|(task, chunk)| parse_task(schema, data, chunk, task * per_task, depth))
                .collect();
            merge(schema, results)
        });
    utf8_first(data, result)
}

/// How a span of records ended.
#[derive(Debug, PartialEq, Eq)]
enum SpanEnd {
    /// At the first byte of the first record at or past the span's limit.
    Boundary(usize),
    /// At the array's closing bracket, with nothing but whitespace after it.
    Close,
}

/// The records of a top-level array read from one start, as [`parse_document`] reads them.
struct Span<'s> {
    batch: Batch<'s>,
    /// The span's first record error, its record numbered from the span's first record.
    first_error: Option<RecordError>,
    /// Where the span stopped, or the syntax error that stopped it.
    end: Scan<SpanEnd>,
}

/// Reads the records of a top-level array from `start` (the first byte of a record, or where
/// one is guessed to start) until the first record that starts at or past `limit`, exactly as
/// [`parse_document`] reads them: the scanner is in the same state at a record's start
/// (depth 1, the whole input in view), so from a true record start it finds the same values,
/// record errors and syntax errors, with the same offsets and messages.
fn parse_span<'s>(
    schema: &'s Schema,
    data: &[u8],
    start: usize,
    limit: usize,
    capacity: usize,
) -> Span<'s> {
    let mut batch = Batch::new(schema, capacity);
    let mut first_error = None;
    let mut scanner = Scanner::new(data, start, 1);
    let end = loop {
        batch.begin_record();
        if let Err(error) = scanner.value(&mut batch, ROOT) {
            break Err(error);
        }
        if first_error.is_none() {
            first_error = batch.finish_record(batch.records).err();
        }
        match scanner.next_item(b']') {
            Ok(true) => {}
            Ok(false) => break scanner.end().map(|()| SpanEnd::Close),
            Err(error) => break Err(error),
        }
        if let Err(error) = scanner.expect_element() {
            break Err(error);
        }
        // expect_element leaves the position on the next record's first byte.
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

/// Where a record of a top-level array most likely starts at or after `from` (and before
/// `to`): the `{` of `}`, `,`, `{` (whitespace allowed between), followed by the same bytes as
/// the first record's opening up to its first key's closing quote (`{"id"`). Records of one
/// batch usually share their first key, and objects nested in a record usually do not have
/// it, so a guess is rarely wrong; a wrong one (inside a string, or nested) costs time only.
fn guess_record_start(data: &[u8], from: usize, to: usize, opening: &[u8]) -> Option<usize> {
    let to = to.min(data.len());
    let mut position = from;
    while position < to {
        let close = position + data.get(position..to)?.iter().position(|&b| b == b'}')?;
        position = close + 1;
        let comma = skip_whitespace(data, close + 1);
        if data.get(comma) != Some(&b',') {
            continue;
        }
        let open = skip_whitespace(data, comma + 1);
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

/// The threaded path for a top-level array (`first` is its first record's first byte), with no
/// serial pass over the input. The bytes are cut into pieces at guessed record starts (see
/// [`guess_record_start`]), and each is parsed from its start until the record that starts at
/// or past the next piece's start (UTF-8 is checked as the bytes are read: see [`Scanner`]).
///
/// The guesses are then confirmed in order: the first piece starts at a true record start,
/// and a piece that starts at one and stops exactly on the next piece's start proves that
/// start true too. Where a piece stops elsewhere (the next guess was inside a string or a
/// nested value), the records from where it stopped are read again on this thread up to the
/// next guess they land on. Only confirmed pieces are used, so the result, and the error
/// (the first syntax error, else the first record error), are those of [`parse_document`].
fn parse_array_speculative(
    schema: &Schema,
    data: &[u8],
    first: usize,
    pieces: usize,
) -> Result<Vec<Column>, ParseError> {
    let opening = record_opening(data, first);
    let pieces = pieces.max(1);
    let cut = |piece: usize| first + (data.len() - first) * piece / pieces;
    let mut starts = vec![first];
    for piece in 1..pieces {
        let from = cut(piece).max(starts[starts.len() - 1] + 1);
        if let Some(start) = guess_record_start(data, from, cut(piece + 1), opening) {
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
            Some(parse_span(schema, data, start, limit, capacity))
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
            Some(parse_span(schema, data, position, limit, 0))
        };
    }
    match first_error {
        Some(error) => Err(ParseError::Record(error)),
        None => Ok(Batch::concat(schema, confirmed).into_columns()),
    }
}

/// One pass over the whole document on this thread: an array needs no boundary scan.
/// The input is checked as UTF-8 as it is read: see [`utf8_first`].
fn parse_document(schema: &Schema, data: &[u8]) -> Result<Vec<Column>, ParseError> {
    let start = skip_whitespace(data, 0);
    if start == data.len() {
        return Err(ParseError::Syntax(syntax(start, EMPTY_INPUT)));
    }
    if data[start] != b'[' {
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
    let mut scanner = Scanner::new(data, start, 0);
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
    let batches = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Batch::concat(schema, batches).into_columns())
}

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
    fn leads_learnt_from_one_record_never_change_another_records_values() {
        // Each record read alone (no lead learnt from an earlier record) is the reference for
        // the same records read as one batch, where most members match a learnt lead and the
        // rest differ from it in every way a lead can miss.
        let long = "a_key_too_long_for_a_lead";
        let schema = schema(vec![
            FieldSpec::new("a"),
            FieldSpec::new("b.c"),
            FieldSpec::new("d"),
            FieldSpec::new(long),
        ]);
        let records = [
            r#"{"a": 1, "b": {"c": 2}, "d": 3, "a_key_too_long_for_a_lead": 0}"#,
            r#"{"a": 4, "b": {"c": 5}, "d": 6, "a_key_too_long_for_a_lead": 0}"#,
            r#"{"d": 7, "a": 8, "b": {"c": 9}, "a_key_too_long_for_a_lead": 0}"#,
            r#"{"a":10,"b":{"c":11},"d":12,"a_key_too_long_for_a_lead":0}"#,
            r#"{"a": 13, "x": [1, {"a": 99}], "b": {"c": 14}, "d": 15, "a_key_too_long_for_a_lead": 0}"#,
            r#"{"\u0061": 16, "b": {"c": 17}, "d": 18, "a_key_too_long_for_a_lead": 0}"#,
            r#"{"a": 19, "b": {"c": 20}, "d": 21, "a": 22, "a_key_too_long_for_a_lead": 0}"#,
            r#"{  "a" :  23 , "b": {"c": 24}, "d": 25, "a_key_too_long_for_a_lead": 0}"#,
            r#"{"ab": 1, "a": 26, "b": {"c": 27}, "d": 28, "a_key_too_long_for_a_lead": 1}"#,
            r#"{"a": 29, "b": {"c": 30, "c": 31}, "d": 32, "a_key_too_long_for_a_lead": 2}"#,
            r#"{"a": 33, "b": {"c": 34}, "d": 35, "a_key_too_long_for_a_lead": 3}"#,
        ];
        let mut expected = Vec::new();
        for record in records {
            expected.extend(floats(&parse_json(&schema, record.as_bytes()).unwrap(), "input").1);
        }
        let batch = format!("[{}]", records.join(", "));
        let (shape, values) = floats(&parse_json(&schema, batch.as_bytes()).unwrap(), "input");
        assert_eq!(shape, [records.len(), 4]);
        assert_eq!(values, expected);
        assert_eq!(&values[..8], [1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0, 0.0]);
        // A syntax error right after members that matched leads is found where it is.
        let bad = format!("[{}, {}]", records[0], r#"{"a": 1, "b": {"c": 2}, "d": }"#);
        match parse_json(&schema, bad.as_bytes()) {
            Err(ParseError::Syntax(error)) => assert_eq!(error.offset, bad.len() - 2),
            other => panic!("{other:?}"),
        }
        // A lead that begins with a comma (an unknown member came first) is never taken at an
        // object's start, where a comma is an error (found by the fuzz target).
        let bad = br#"[{"x": 1, "a": 2, "b": {"c": 3}, "d": 4}, {, "a": 2, "b": {"c": 3}, "d": 4}]"#;
        match parse_json(&schema, bad) {
            Err(ParseError::Syntax(error)) => {
                assert_eq!(error.offset, 43);
                assert_eq!(error.message, "expected a key");
            }
            other => panic!("{other:?}"),
        }
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
    fn a_number_beyond_every_type_is_its_fields_error() {
        let mut scores = FieldSpec::new("l");
        scores.shape = Some(vec![2]);
        let schema = schema(vec![FieldSpec::new("a"), scores]);
        let error = record_error(parse_json(
            &schema,
            br#"[{"a": 1, "l": [1, 2]}, {"a": 1e400, "l": [1, 2]}]"#,
        ));
        assert_eq!(
            error.to_string(),
            r#"record 1, field "a": expected float32, got 1e400"#
        );
        let long = format!(r#"{{"a": 1, "l": [1, -{}]}}"#, "9".repeat(400));
        let error = record_error(parse_json(&schema, long.as_bytes()));
        assert_eq!((error.record, error.path.as_deref()), (0, Some("l")));
        assert!(error.got.starts_with("-999"), "{}", error.got);
        // A number no field reads is only checked as JSON.
        let skipped = parse_json(&schema, br#"{"a": 1, "l": [1, 2], "x": 1e999}"#).unwrap();
        let name = skipped[0].name.clone();
        assert_eq!(floats(&skipped, &name), (vec![1, 3], vec![1.0, 1.0, 2.0]));
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
    fn keys_of_every_length_match_whole() {
        let keys = ["k", "kkkkkk", "kkkkkkk", "kkkkkkkk", "é", "ké\u{1F600}"];
        let schema = schema(keys.iter().map(|key| FieldSpec::new(*key)).collect());
        let record = |value: usize| {
            let members: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(index, key)| format!(r#""{key}": {}"#, index + value))
                .collect();
            format!("{{{}}}", members.join(", "))
        };
        let data = format!("[{}, {}]", record(0), record(10));
        let (_, values) = floats(&parse_json(&schema, data.as_bytes()).unwrap(), "input");
        assert_eq!(
            values,
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
        );
        // A key that only starts like an expected one, or is one with more after it.
        for near in [r#""kk""#, r#""kkkkkkkk2""#, r#""kkkkkk\u006b""#, r#""k\"""#] {
            let data = record(0).replacen(r#""kkkkkkk""#, near, 1);
            let result = parse_json(&schema, data.as_bytes());
            let expected = if near == r#""kkkkkk\u006b""# {
                Ok(())
            } else {
                Err(())
            };
            assert_eq!(result.map(|_| ()).map_err(|_| ()), expected, "{data}");
        }
    }

    /// A seeded xorshift64 generator: the same numbers on every run.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn quotients_round_to_the_nearest_float_as_std_does() {
        let mut next = xorshift(0xD1B5_4A32_D192_ED03);
        let mut cases: Vec<(u64, usize)> = vec![
            ((1 << 53) + 1, 1),
            (u64::MAX, 0),
            (u64::MAX, 22),
            (u64::MAX, 23),
            (10_000_000_000_000_000_000, 19),
            (9_999_999_999_999_999_999, 19),
            (6_839_839_319_154_413_000, 19),
        ];
        for _ in 0..200_000 {
            let significand = (1 << 53) + 1 + next() % (u64::MAX - (1 << 53));
            let digits = 16 + (next() % 4) as u32;
            let significand = if next() % 2 == 0 && significand >= 10u64.pow(digits) {
                // As records hold them: 16 to 19 digits.
                (1 << 53) + 1 + significand % (10u64.pow(digits) - (1 << 53))
            } else {
                significand
            };
            cases.push((significand, (next() % 26) as usize));
        }
        // Exact midpoints between two floats, (2m + 1) * 5^k over 10^k = (2m + 1) / 2^k (for a
        // mantissa m of 53 bits, k up to 4 to stay in 64 bits), which must round to the even
        // one; and their neighbours, one unit of the significand away.
        for _ in 0..100_000 {
            let k = (next() % 5) as u32;
            let mantissa = (1u64 << 52) | (next() & ((1 << 52) - 1));
            let Some(midpoint) = (2 * mantissa + 1).checked_mul(5u64.pow(k)) else {
                continue;
            };
            for significand in [midpoint - 1, midpoint, midpoint + 1] {
                cases.push((significand, k as usize));
            }
        }
        // Around powers of two, where the floats below are twice as dense as those above:
        // 2^p * 10^k, and a few half units of the last place (of the float below) around it.
        for k in 0..=22u32 {
            for p in -80..64i32 {
                // 2^p * 10^k = 5^k * 2^(p + k), an integer for p + k >= 0.
                let Ok(twos) = u32::try_from(p + k as i32) else {
                    continue;
                };
                let exact = u128::from(5u64.pow(k)) << twos.min(64);
                if twos > 64 || exact <= 1 << 53 || exact >= 1 << 64 {
                    continue;
                }
                let exact = exact as u64;
                let unit = (exact >> 54).max(1);
                for steps in -4..=4i64 {
                    for offset in -1..=1i64 {
                        let delta = steps * unit as i64 + offset;
                        cases.push((exact.wrapping_add_signed(delta), k as usize));
                    }
                }
            }
        }
        let mut found = 0;
        for &(significand, k) in &cases {
            let expected: f64 = format!("{significand}e-{k}").parse().unwrap();
            if let Some(got) = nearest_quotient(significand, k) {
                found += 1;
                assert_eq!(got.to_bits(), expected.to_bits(), "{significand}e-{k}");
            } else {
                // None only past 10^22, or where the scale does not fit the integers (quotients
                // far from 1).
                assert!(
                    k > 22 || !(1e-9..1e9).contains(&expected),
                    "{significand}e-{k}"
                );
            }
        }
        assert!(found > cases.len() * 3 / 4, "{found} of {}", cases.len());
    }

    #[test]
    fn short_numbers_read_as_the_general_reader_does() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let mut cases: Vec<String> = [
            "0", "-0", "-0.0", "0.5", "00", "01", "-01.5", "00.5", "1.", "-", "-.5", ".5", "1.e5",
            "1.5e3", "1E5", "7e", "1234567", "12345678", "-1234567.1234567", "1234567.12345678",
            "12345678.5", "0.1234567", "0.12345678", "9999999.9999999", "1.5x", "12a", "1-2",
            "1..2", "1.2.3", "-x", "1.5E-3", "+1",
        ]
        .iter()
        .map(|case| (*case).to_owned())
        .collect();
        for _ in 0..20_000 {
            let integer = next() % 10u64.pow((next() % 10) as u32);
            let mut text = integer.to_string();
            if next() % 4 != 0 {
                let fraction = next() % 10u64.pow((next() % 10) as u32);
                let width = (next() % 10) as usize;
                text.push_str(&format!(".{fraction:0width$}"));
            }
            if next() % 2 == 0 {
                text.insert(0, '-');
            }
            if next() % 8 == 0 {
                text.push_str(&format!("e{}", (next() % 20) as i64 - 10));
            }
            cases.push(text);
        }
        for case in cases {
            for tail in [",", "}", "]", " ", "\n", "x", "0", "."] {
                // Padding puts 24 bytes after the number's start, which the short path needs.
                let input = format!("{case}{tail}{}", " ".repeat(24));
                let mut short = Scanner::new(input.as_bytes(), 0, 0);
                let mut general = Scanner::new(input.as_bytes(), 0, 0);
                let got = short.number();
                let want = general.number_or_skip::<true>();
                let same = match (&got, &want) {
                    (Ok(Scalar::Float(a)), Ok(Scalar::Float(b))) => a.to_bits() == b.to_bits(),
                    (got, want) => got == want,
                };
                assert!(same, "{input:?}: {got:?} against {want:?}");
                assert_eq!(short.position, general.position, "{input:?}");
            }
        }
    }

    #[test]
    fn numbers_are_correctly_rounded_like_std() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
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
            let mut scanner = Scanner::new(case.as_bytes(), 0, 0);
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
            let mut scanner = Scanner::new(bad.as_bytes(), 0, 0);
            let ok = scanner.number().is_ok() && scanner.end().is_ok();
            assert!(!ok, "{bad} is not a JSON number");
        }
        let mut scanner = Scanner::new(b"-1e400", 0, 0);
        assert_eq!(
            scanner.number(),
            Ok(Scalar::Huge("-1e400")),
            "valid JSON, out of every type's range: left for the field to refuse"
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
