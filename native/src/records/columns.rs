//! The column buffers that records are read into, and the per-record state of a batch.

use rayon::prelude::*;

use crate::schema::{
    convert_number, render_scalar, Cell, Dtype, FieldKind, Mismatch, NodeId, Scalar, Schema, ROOT,
};

use super::keys::KeyTable;
use super::scanner::{key_word, Lead};
use super::RecordError;

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

    /// [`convert_number`] and [`Self::set`] in one step for the commonest columns (float32,
    /// float64, int64): false where that does not apply (another dtype, not a number, or a
    /// number the column cannot hold), for the general path to decide.
    #[inline(always)]
    fn set_plain(&mut self, index: usize, scalar: Scalar<'_>) -> bool {
        match (self, scalar) {
            (Self::Float32(values), Scalar::Float(value)) => {
                let narrow = value as f32;
                if !narrow.is_finite() {
                    return false;
                }
                values[index] = narrow;
            }
            // Through float64, as convert_number (and numpy from Python ints) rounds.
            (Self::Float32(values), Scalar::Int(value)) => values[index] = value as f64 as f32,
            (Self::Float64(values), Scalar::Float(value)) => values[index] = value,
            (Self::Float64(values), Scalar::Int(value)) => values[index] = value as f64,
            (Self::Int64(values), Scalar::Int(value)) => values[index] = value,
            _ => return false,
        }
        true
    }

    /// [`Self::set_plain`] for a list of any length: the value pushed.
    #[inline(always)]
    fn push_plain(&mut self, scalar: Scalar<'_>) -> bool {
        match (self, scalar) {
            (Self::Float32(values), Scalar::Float(value)) => {
                let narrow = value as f32;
                if !narrow.is_finite() {
                    return false;
                }
                values.push(narrow);
            }
            (Self::Float32(values), Scalar::Int(value)) => values.push(value as f64 as f32),
            (Self::Float64(values), Scalar::Float(value)) => values.push(value),
            (Self::Float64(values), Scalar::Int(value)) => values.push(value as f64),
            (Self::Int64(values), Scalar::Int(value)) => values.push(value),
            _ => return false,
        }
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
    pub(super) schema: &'s Schema,
    pub(super) records: usize,
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
    pub(super) key_hints: Vec<usize>,
    /// What the schema alone decides about reading its trie, made once per schema.
    pub(super) lookup: &'s Lookup,
    /// Per trie node, per place in an object (0: its start; `i + 1`: after the member of key
    /// `i`): the [`Lead`] the input last had there, to be matched in one step next time.
    pub(super) leads: Vec<Vec<Option<Lead>>>,
}

/// What the schema alone decides about reading its trie: made once per schema, on first use
/// ([`Schema::lookup`]), not once per batch: a one-record request made all of it anew on
/// every call (a key table per trie node, with its search for a multiplier without
/// collisions). With the arrays made in their shape at once and small inputs read with the
/// GIL held, a one-record call went from 4.2-4.8 to 1.5-2.2 us (benches/README.md).
#[derive(Clone, Debug)]
pub struct Lookup {
    /// Per trie node, its keys' [`key_word`]s, in the order of its keys.
    pub(super) key_words: Vec<Vec<Option<(u64, u64)>>>,
    /// Per trie node, its keys in a [`KeyTable`]: any key out of the expected order is found
    /// in constant time.
    pub(super) key_tables: Vec<KeyTable>,
    /// Per trie node: its one field, when that is the only field there and a plain number
    /// (no vocabulary): the common case, written without the general dispatch.
    plain: Vec<Option<usize>>,
    /// Per trie node: its one field, when that is the only field there and a categorical
    /// scalar: a short word is then found from the 8 bytes after its quote, as keys are.
    pub(super) categorical: Vec<Option<usize>>,
}

impl Lookup {
    pub fn new(schema: &Schema) -> Self {
        // Per node, its field when it has exactly one, and whether that one has a vocabulary.
        let sole: Vec<Option<(usize, bool)>> = schema
            .nodes
            .iter()
            .map(|node| match node.fields[..] {
                [field_id] => Some((field_id, schema.fields[field_id].vocabulary.is_some())),
                _ => None,
            })
            .collect();
        Self {
            key_words: schema
                .nodes
                .iter()
                .map(|node| node.keys.iter().map(|(key, _)| key_word(key)).collect())
                .collect(),
            key_tables: schema.nodes.iter().map(node_table).collect(),
            plain: sole
                .iter()
                .map(|sole| sole.filter(|&(_, vocabulary)| !vocabulary).map(|(id, _)| id))
                .collect(),
            categorical: sole
                .iter()
                .map(|sole| {
                    sole.filter(|&(id, vocabulary)| {
                        vocabulary && schema.fields[id].kind == FieldKind::Scalar
                    })
                    .map(|(id, _)| id)
                })
                .collect(),
        }
    }
}

/// A trie node's keys in a [`KeyTable`], in the node's key order.
pub fn node_table(node: &crate::schema::Node) -> KeyTable {
    KeyTable::new(node.keys.iter().map(|(key, _)| &**key))
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
            lookup: schema.lookup(),
            leads: schema
                .nodes
                .iter()
                // None for a node without keys: no object is read there.
                .map(|node| match node.keys.len() {
                    0 => Vec::new(),
                    keys => vec![None; keys + 1],
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
    pub(super) fn reset(&mut self, node: NodeId) {
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

    /// A categorical field's value found in its vocabulary at `index` (see
    /// [`Lookup::categorical`]); false where the index does not fit its dtype (the general
    /// path then says why).
    #[inline(always)]
    pub fn category(&mut self, field_id: usize, index: usize) -> bool {
        let field = &self.schema.fields[field_id];
        match convert_number(field.dtype, Scalar::Int(index as i64)) {
            Some(cell) => {
                self.buffers[field.tensor].set(self.row_starts[field.tensor] + field.column, cell);
                self.states[field_id] = FieldState::Set;
                true
            }
            None => false,
        }
    }

    #[inline(always)]
    pub fn scalar(&mut self, node: NodeId, scalar: Scalar<'_>) {
        if let Some(field_id) = self.lookup.plain[node] {
            let field = &self.schema.fields[field_id];
            if field.kind == FieldKind::Scalar && scalar != Scalar::Null {
                let index = self.row_starts[field.tensor] + field.column;
                if self.buffers[field.tensor].set_plain(index, scalar) {
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
        if let Some(field_id) = self.lookup.plain[node] {
            let field = &self.schema.fields[field_id];
            if scalar != Scalar::Null && self.states[field_id] != FieldState::Invalid {
                match field.kind {
                    FieldKind::FixedList(length) if index < length => {
                        let at = self.row_starts[field.tensor] + field.column + index;
                        if self.buffers[field.tensor].set_plain(at, scalar) {
                            return;
                        }
                        if let Some(cell) = convert_number(field.dtype, scalar) {
                            self.buffers[field.tensor].set(at, cell);
                            return;
                        }
                    }
                    // A ragged list's values are pushed (list_end checks its length).
                    FieldKind::VariableList { max_length }
                        if max_length.is_none_or(|max| index < max)
                            && self.buffers[field.tensor].push_plain(scalar) =>
                    {
                        return;
                    }
                    _ => {}
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
    pub(super) fn concat(schema: &'s Schema, batches: Vec<Self>) -> Self {
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
