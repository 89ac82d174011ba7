//! Records (JSON bytes, or values extracted from Python) -> typed column buffers.
//!
//! JSON is read in one pass per record with a serde visitor that walks the schema's path trie:
//! keys no field asks for are skipped without being decoded, and values land straight in the
//! column buffers. A record's problems are kept per field until the record ends, so that a
//! repeated key behaves as in `json.loads` (the last occurrence wins) and the error reported is
//! the first failing field in schema order.

use std::fmt;
use std::ops::Range;

use rayon::prelude::*;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::schema::{
    render_scalar, truncate, Cell, Dtype, FieldKind, Mismatch, NodeId, Scalar, Schema, ROOT,
};

/// JSON inputs smaller than this are parsed on the calling thread. 1 MiB is about 1,700 records
/// of 32 numbers, 4 ms of work: enough to amortise splitting the input and merging the parts.
/// (An estimate from the per-record cost, not a measured crossover; see PARALLEL_MIN_THREADS.)
pub const PARALLEL_MIN_BYTES: usize = 1024 * 1024;
/// Threads are used only with at least this many of them. Threads need the record boundaries
/// first, and that scan costs ~25% of a single-threaded parse (70 ms of 245 ms for 61 MB), so
/// two threads gain little at best; on the 2-vCPU machine measured (benches/records.py), two
/// threads were slower than one (290 ms against 245 ms) because its vCPUs share one core's
/// throughput (two busy processes took 1.85x the time of one).
pub const PARALLEL_MIN_THREADS: usize = 3;
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
/// record being read.
struct Batch<'s> {
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
}

impl<'s> Batch<'s> {
    fn new(schema: &'s Schema, capacity: usize) -> Self {
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
        }
    }

    fn begin_record(&mut self) {
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

    fn scalar(&mut self, node: NodeId, scalar: Scalar<'_>) {
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
    fn container_mismatch(&mut self, node: NodeId, got: &str) {
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
    fn list_at_container(&mut self, node: NodeId) {
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

    fn leaf_wants_list(&self, node: NodeId) -> bool {
        let target = &self.schema.nodes[node];
        target.is_leaf()
            && target
                .fields
                .iter()
                .any(|&id| self.schema.fields[id].kind != FieldKind::Scalar)
    }

    fn list_element(&mut self, node: NodeId, index: usize, scalar: Scalar<'_>) {
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

    fn element_mismatch(&mut self, node: NodeId, index: usize, got: &str) {
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

    fn list_end(&mut self, node: NodeId, count: usize) {
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
    fn finish_record(&mut self, record: usize) -> Result<(), RecordError> {
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

    fn into_columns(self) -> Vec<Column> {
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

/// Reads the value at one trie node.
struct ValueSeed<'b, 's> {
    batch: &'b mut Batch<'s>,
    node: NodeId,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        self.batch.scalar(self.node, Scalar::Bool(value));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.batch.scalar(self.node, Scalar::Int(value));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.batch.scalar(self.node, Scalar::UInt(value));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        self.batch.scalar(self.node, Scalar::Float(value));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.batch.scalar(self.node, Scalar::Str(value));
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.batch.scalar(self.node, Scalar::Null);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let schema = self.batch.schema;
        let node = &schema.nodes[self.node];
        if node.is_leaf() {
            self.batch.container_mismatch(self.node, "an object");
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        while let Some(child) = map.next_key_seed(KeySeed {
            keys: &node.keys,
            hint: &mut self.batch.key_hints[self.node],
        })? {
            match child {
                Some(child) => {
                    // A leaf's value handlers set its fields' state whatever comes; a container
                    // must forget what an earlier occurrence of its key set below it.
                    if !schema.nodes[child].is_leaf() {
                        self.batch.reset(child);
                    }
                    map.next_value_seed(ValueSeed {
                        batch: self.batch,
                        node: child,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let schema = self.batch.schema;
        let node = &schema.nodes[self.node];
        if self.batch.leaf_wants_list(self.node) {
            self.batch.reset(self.node);
            let mut count = 0;
            while seq
                .next_element_seed(ElementSeed {
                    batch: self.batch,
                    node: self.node,
                    index: count,
                })?
                .is_some()
            {
                count += 1;
            }
            self.batch.list_end(self.node, count);
        } else if !node.is_leaf() && !node.indices.is_empty() && self.node != ROOT {
            self.batch.list_at_container(self.node);
            let mut index = 0;
            loop {
                let found = match node.child_by_index(index) {
                    Some(child) => {
                        if !schema.nodes[child].is_leaf() {
                            self.batch.reset(child);
                        }
                        seq.next_element_seed(ValueSeed {
                            batch: self.batch,
                            node: child,
                        })?
                        .is_some()
                    }
                    None => seq.next_element::<IgnoredAny>()?.is_some(),
                };
                if !found {
                    break;
                }
                index += 1;
            }
        } else {
            self.batch.container_mismatch(self.node, "a list");
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        Ok(())
    }
}

/// Resolves an object key to a child node without allocating (keys are borrowed unless they
/// contain escapes), trying the key after the last one found first.
struct KeySeed<'s, 'h> {
    keys: &'s [(Box<str>, NodeId)],
    hint: &'h mut usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = Option<NodeId>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = Option<NodeId>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if let Some((candidate, node)) = self.keys.get(*self.hint) {
            if same_key(candidate, key) {
                *self.hint += 1;
                return Ok(Some(*node));
            }
        }
        let found = self
            .keys
            .iter()
            .position(|(candidate, _)| same_key(candidate, key));
        if let Some(position) = found {
            *self.hint = position + 1;
        }
        Ok(found.map(|position| self.keys[position].1))
    }
}

/// Keys are short: an inline byte loop beats a call to memcmp.
#[inline]
fn same_key(candidate: &str, key: &str) -> bool {
    candidate.len() == key.len()
        && candidate
            .bytes()
            .zip(key.bytes())
            .all(|(left, right)| left == right)
}

/// Reads one element of a list field.
struct ElementSeed<'b, 's> {
    batch: &'b mut Batch<'s>,
    node: NodeId,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for ElementSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ElementSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a list element")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        self.batch
            .list_element(self.node, self.index, Scalar::Bool(value));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.batch
            .list_element(self.node, self.index, Scalar::Int(value));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.batch
            .list_element(self.node, self.index, Scalar::UInt(value));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        self.batch
            .list_element(self.node, self.index, Scalar::Float(value));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.batch
            .list_element(self.node, self.index, Scalar::Str(value));
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.batch.list_element(self.node, self.index, Scalar::Null);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.batch
            .element_mismatch(self.node, self.index, "an object");
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.batch.element_mismatch(self.node, self.index, "a list");
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
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
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut position = start;
            while position < data.len() {
                match data[position] {
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(position + 1);
                        }
                    }
                    b'"' => position = string_end(data, position)? - 1,
                    _ => {}
                }
                position += 1;
            }
            Err(syntax(
                data.len(),
                "unexpected end of input: an object or list is not closed",
            ))
        }
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

fn to_syntax_error(error: &serde_json::Error, data: &[u8], range: &Range<usize>) -> SyntaxError {
    // serde_json reports a 1-based line and column within the record; make it a byte offset.
    let record = &data[range.clone()];
    let line_start = record
        .split_inclusive(|&byte| byte == b'\n')
        .take(error.line().saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    let offset = (range.start + line_start + error.column().saturating_sub(1)).min(data.len());
    let mut message = error.to_string();
    if let Some(cut) = message.find(" at line ") {
        message.truncate(cut);
    }
    SyntaxError { offset, message }
}

fn parse_one(batch: &mut Batch<'_>, record: &str) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(record);
    ValueSeed { batch, node: ROOT }.deserialize(&mut deserializer)?;
    deserializer.end()
}

/// JSON is UTF-8: checked once for the whole input (as `json.loads` does), so that invalid
/// bytes are found wherever they are, and the parser need not check each string again.
fn as_utf8(data: &[u8]) -> Result<&str, SyntaxError> {
    std::str::from_utf8(data).map_err(|error| syntax(error.valid_up_to(), "invalid UTF-8"))
}

/// Parses `ranges` (records numbered from `first_record`). After a record error the rest is
/// still parsed, so that malformed JSON anywhere is reported before a bad record, and found
/// exactly as by the single-threaded path.
fn parse_task<'s>(
    schema: &'s Schema,
    text: &str,
    ranges: &[Range<usize>],
    first_record: usize,
) -> Result<Batch<'s>, ParseError> {
    let mut batch = Batch::new(schema, ranges.len());
    let mut first_error = None;
    for (index, range) in ranges.iter().enumerate() {
        // Records start and end at ASCII bytes, so a range is always on char boundaries.
        let record = text.get(range.clone()).unwrap_or_default();
        batch.begin_record();
        parse_one(&mut batch, record)
            .map_err(|error| ParseError::Syntax(to_syntax_error(&error, text.as_bytes(), range)))?;
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

/// The threaded path of [`parse_json`], whatever the input's size: exposed so that tests and
/// fuzzers can check that both paths agree.
#[doc(hidden)]
pub fn parse_json_threaded(schema: &Schema, data: &[u8]) -> Result<Vec<Column>, ParseError> {
    let text = as_utf8(data).map_err(ParseError::Syntax)?;
    // Threads need the record boundaries first: one structural pass over the bytes.
    let ranges = split_records(data).map_err(ParseError::Syntax)?;
    let per_task = records_per_task(ranges.len());
    let results: Vec<Result<Batch<'_>, ParseError>> = ranges
        .par_chunks(per_task)
        .enumerate()
        .map(|(task, chunk)| parse_task(schema, text, chunk, task * per_task))
        .collect();
    merge(schema, results)
}

/// One pass over the whole document on this thread: an array needs no boundary scan.
fn parse_document(schema: &Schema, text: &str) -> Result<Vec<Column>, ParseError> {
    let data = text.as_bytes();
    let whole = 0..data.len();
    let syntax_error =
        |error: serde_json::Error| ParseError::Syntax(to_syntax_error(&error, data, &whole));
    let start = skip_whitespace(data, 0);
    if start == data.len() {
        return Err(ParseError::Syntax(syntax(start, EMPTY_INPUT)));
    }
    let mut batch = Batch::new(schema, 0);
    let mut first_error = None;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    if data[start] == b'[' {
        let records = RecordsVisitor {
            batch: &mut batch,
            first_error: &mut first_error,
        };
        serde::Deserializer::deserialize_seq(&mut deserializer, records).map_err(syntax_error)?;
        deserializer.end().map_err(syntax_error)?;
    } else {
        // One object, or NDJSON: split at the values' boundaries as the threaded path does, so
        // that values must be apart by whitespace alike ("1true" is malformed).
        let ranges = split_records(data).map_err(ParseError::Syntax)?;
        return Ok(parse_task(schema, text, &ranges, 0)?.into_columns());
    }
    match first_error {
        Some(error) => Err(ParseError::Record(error)),
        None => Ok(batch.into_columns()),
    }
}

const EMPTY_INPUT: &str = "empty input: expected a JSON array of objects, an object, or NDJSON";

/// The elements of a top-level array, each a record.
struct RecordsVisitor<'b, 's> {
    batch: &'b mut Batch<'s>,
    first_error: &'b mut Option<RecordError>,
}

impl<'de> Visitor<'de> for RecordsVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(RecordSeed {
                batch: &mut *self.batch,
                first_error: &mut *self.first_error,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One record. After the first bad record the rest is still parsed (into rows nobody keeps), so
/// that malformed JSON anywhere is reported before a bad record.
struct RecordSeed<'b, 's> {
    batch: &'b mut Batch<'s>,
    first_error: &'b mut Option<RecordError>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.batch.begin_record();
        ValueSeed {
            batch: &mut *self.batch,
            node: ROOT,
        }
        .deserialize(deserializer)?;
        let record = self.batch.records;
        if self.first_error.is_some() {
            return Ok(());
        }
        if let Err(error) = self.batch.finish_record(record) {
            *self.first_error = Some(error);
        }
        Ok(())
    }
}

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

/// Parses the bytes as one JSON document and counts its scalars, building nothing: the cost of
/// the parser alone, for benchmarks.
pub fn count_scalars(data: &[u8]) -> Result<usize, SyntaxError> {
    struct Counter<'c>(&'c mut usize);

    impl<'de> DeserializeSeed<'de> for Counter<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Counter<'_> {
        type Value = ();
        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("any JSON value")
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            *self.0 += 1;
            Ok(())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            *self.0 += 1;
            Ok(())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            *self.0 += 1;
            Ok(())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            *self.0 += 1;
            Ok(())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            *self.0 += 1;
            Ok(())
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            *self.0 += 1;
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_key::<IgnoredAny>()?.is_some() {
                map.next_value_seed(Counter(&mut *self.0))?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Counter(&mut *self.0))?.is_some() {}
            Ok(())
        }
    }

    let mut count = 0;
    let mut deserializer = serde_json::Deserializer::from_str(as_utf8(data)?);
    Counter(&mut count)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|error| to_syntax_error(&error, data, &(0..data.len())))?;
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
    fn count_scalars_counts_every_value() {
        assert_eq!(
            count_scalars(br#"[{"a": 1, "b": [true, null, "x"]}, 2.5]"#).unwrap(),
            5
        );
        assert!(count_scalars(b"[1,").is_err());
    }
}
