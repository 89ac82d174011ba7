//! Field specifications: paths, dtypes, missing-value policy, and the compiled form that the
//! records parser walks.
//!
//! A [`SchemaSpec`] is what a user declares (from Python or TOML, every option still a plain
//! value); [`Schema::compile`] validates it once and produces a [`Schema`]: the output tensors,
//! each field's place in them, and a path trie so that a record is read in one pass.

use std::collections::HashMap;
use std::fmt;

use crate::records::KeyTable;

/// The element type of an output column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Float32,
    Float64,
    Int32,
    Int64,
    Bool,
}

impl Dtype {
    pub fn parse(text: &str) -> Result<Self, SchemaError> {
        match text {
            "float32" => Ok(Self::Float32),
            "float64" => Ok(Self::Float64),
            "int32" => Ok(Self::Int32),
            "int64" => Ok(Self::Int64),
            "bool" => Ok(Self::Bool),
            other => Err(SchemaError::new(format!(
                "unknown dtype {other:?}; expected one of float32, float64, int32, int64, bool"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Float32 => "float32",
            Self::Float64 => "float64",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Self::Float32 | Self::Float64)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// One typed value, already converted to its column's dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    Float32(f32),
    Float64(f64),
    Int32(i32),
    Int64(i64),
    Bool(bool),
}

impl Cell {
    pub fn zero(dtype: Dtype) -> Self {
        match dtype {
            Dtype::Float32 => Self::Float32(0.0),
            Dtype::Float64 => Self::Float64(0.0),
            Dtype::Int32 => Self::Int32(0),
            Dtype::Int64 => Self::Int64(0),
            Dtype::Bool => Self::Bool(false),
        }
    }

    fn nan(dtype: Dtype) -> Option<Self> {
        match dtype {
            Dtype::Float32 => Some(Self::Float32(f32::NAN)),
            Dtype::Float64 => Some(Self::Float64(f64::NAN)),
            _ => None,
        }
    }
}

/// A scalar as it appears in a record (JSON or Python), before conversion to a dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    /// A JSON number beyond every numeric type's range (1e400, a 400-digit integer), as
    /// written: no field takes it, and the error shows it.
    Huge(&'a str),
}

/// A configuration value (a default or pad value) as the user wrote it.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ConfigValue {
    fn as_scalar(&self) -> Scalar<'_> {
        match self {
            Self::Bool(value) => Scalar::Bool(*value),
            Self::Int(value) => Scalar::Int(*value),
            Self::Float(value) => Scalar::Float(*value),
            Self::Str(value) => Scalar::Str(value),
        }
    }
}

/// One field as declared; every option is optional and validated by [`Schema::compile`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSpec {
    pub path: String,
    pub name: Option<String>,
    pub dtype: Option<String>,
    pub missing: Option<String>,
    pub default: Option<ConfigValue>,
    pub vocabulary: Option<Vec<String>>,
    pub unknown: Option<String>,
    pub unknown_index: Option<i64>,
    pub shape: Option<Vec<i64>>,
    pub max_length: Option<i64>,
    pub pad: Option<ConfigValue>,
    pub tensor: Option<String>,
}

impl FieldSpec {
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }
}

/// A whole schema as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaSpec {
    pub fields: Vec<FieldSpec>,
    pub delimiter: String,
    pub dtype: String,
    pub name: String,
}

impl SchemaSpec {
    pub fn new(fields: Vec<FieldSpec>) -> Self {
        Self {
            fields,
            delimiter: ".".into(),
            dtype: "float32".into(),
            name: "input".into(),
        }
    }
}

/// An invalid schema declaration (raised once, when the schema is built).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    pub message: String,
}

impl SchemaError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    fn in_field(path: &str, message: impl fmt::Display) -> Self {
        Self::new(format!("field {path:?}: {message}"))
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for SchemaError {}

/// Why a value does not fit its field: what was expected, and (a short rendering of) what came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: String,
    pub got: String,
}

/// Longest rendering of an offending value kept in an error.
pub const MAX_VALUE_CHARS: usize = 40;

/// Renders a value for an error message, cut to [`MAX_VALUE_CHARS`] characters.
pub fn render_scalar(scalar: Scalar<'_>) -> String {
    let text = match scalar {
        Scalar::Null => "null".to_owned(),
        Scalar::Bool(value) => value.to_string(),
        Scalar::Int(value) => value.to_string(),
        Scalar::UInt(value) => value.to_string(),
        // Debug switches to exponent notation for very large or small numbers (1e308).
        Scalar::Float(value) => format!("{value:?}"),
        Scalar::Str(value) => format!("{value:?}"),
        Scalar::Huge(value) => value.to_owned(),
    };
    truncate(text)
}

pub fn truncate(text: String) -> String {
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// How a categorical field maps strings to indices: its words in a [`KeyTable`], found in
/// one hash of a few loads and one comparison (a `HashMap` and its SipHash made reading
/// records of 12 numbers and 4 categories 1.35 times slower on one thread).
#[derive(Clone, Debug)]
pub struct Vocabulary {
    words: KeyTable,
    /// The index of values outside the vocabulary; `None` makes them an error.
    unknown_index: Option<i64>,
}

impl Vocabulary {
    /// The index of a word of `len` (under 8) bytes given in the low bytes of `word` (as the
    /// input holds it after its opening quote), if it is in the vocabulary.
    #[inline]
    pub fn find_short(&self, word: u64, len: usize) -> Option<usize> {
        self.words.find_short(word, len)
    }
}

/// Whether a field is one value, a fixed-length list, or a variable-length list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Scalar,
    FixedList(usize),
    /// Padded to `max_length` if given, else to the longest list in the batch.
    VariableList {
        max_length: Option<usize>,
    },
}

/// A validated field and its place in the output.
#[derive(Clone, Debug)]
pub struct Field {
    /// The path as declared, for error messages.
    pub path: String,
    pub name: String,
    pub dtype: Dtype,
    pub kind: FieldKind,
    /// What an absent or null value becomes; `None` makes it an error.
    pub fill: Option<Cell>,
    pub pad: Cell,
    pub vocabulary: Option<Vocabulary>,
    pub tensor: usize,
    /// First column of this field in its tensor's rows.
    pub column: usize,
}

impl Field {
    /// Converts one scalar (never null) to this field's dtype.
    #[inline]
    pub fn convert(&self, scalar: Scalar<'_>) -> Result<Cell, Mismatch> {
        let converted = match &self.vocabulary {
            None => convert_number(self.dtype, scalar),
            Some(vocabulary) => match scalar {
                Scalar::Str(text) => vocabulary
                    .words
                    .find(text.as_bytes())
                    .map(|index| index as i64)
                    .or(vocabulary.unknown_index)
                    .and_then(|index| convert_number(self.dtype, Scalar::Int(index))),
                _ => None,
            },
        };
        // Mismatches are rare: describe them only when they happen.
        converted.ok_or_else(|| self.mismatch(scalar))
    }

    #[cold]
    pub fn mismatch(&self, scalar: Scalar<'_>) -> Mismatch {
        let expected = match (&self.vocabulary, scalar) {
            (None, _) => self.dtype.name(),
            (Some(_), Scalar::Str(_)) => "a value in the vocabulary",
            (Some(_), _) => "string",
        };
        Mismatch {
            expected: expected.into(),
            got: render_scalar(scalar),
        }
    }

    /// What this field expected, said as a whole value ("list of 3 float32").
    pub fn expected(&self) -> String {
        let element = if self.vocabulary.is_some() {
            "string"
        } else {
            self.dtype.name()
        };
        match self.kind {
            FieldKind::Scalar => element.to_owned(),
            FieldKind::FixedList(length) => format!("list of {length} {element}"),
            FieldKind::VariableList {
                max_length: Some(max),
            } => {
                format!("list of at most {max} {element}")
            }
            FieldKind::VariableList { max_length: None } => format!("list of {element}"),
        }
    }
}

/// Converts a number to a dtype: `None` when it does not fit.
///
/// Integers reach float columns through float64 (beyond 2**53 they round to the nearest
/// float64, then float32 rounds again); finite floats too large for float32 are refused rather
/// than becoming infinity. Integer columns take integers only, and refuse overflow. Bool columns
/// take true/false and the integers 0 and 1.
#[inline(always)]
pub fn convert_number(dtype: Dtype, scalar: Scalar<'_>) -> Option<Cell> {
    let as_float = match scalar {
        Scalar::Int(value) => Some(value as f64),
        Scalar::UInt(value) => Some(value as f64),
        Scalar::Float(value) => Some(value),
        _ => None,
    };
    match dtype {
        Dtype::Float64 => as_float.map(Cell::Float64),
        Dtype::Float32 => {
            let wide = as_float?;
            let narrow = wide as f32;
            (narrow.is_finite() || !wide.is_finite()).then_some(Cell::Float32(narrow))
        }
        Dtype::Int64 => match scalar {
            Scalar::Int(value) => Some(Cell::Int64(value)),
            Scalar::UInt(value) => i64::try_from(value).ok().map(Cell::Int64),
            _ => None,
        },
        Dtype::Int32 => match scalar {
            Scalar::Int(value) => i32::try_from(value).ok().map(Cell::Int32),
            Scalar::UInt(value) => i32::try_from(value).ok().map(Cell::Int32),
            _ => None,
        },
        Dtype::Bool => match scalar {
            Scalar::Bool(value) => Some(Cell::Bool(value)),
            Scalar::Int(value @ (0 | 1)) => Some(Cell::Bool(value == 1)),
            Scalar::UInt(value @ (0 | 1)) => Some(Cell::Bool(value == 1)),
            _ => None,
        },
    }
}

/// One output tensor: `[records, width]` rows, or `[records, longest]` for a variable list.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub dtype: Dtype,
    /// Columns a record fills (for a variable-length list: 0, decided per batch).
    pub width: usize,
    pub fields: Vec<usize>,
    /// Set for the tensor of a variable-length list: the name of its lengths tensor.
    pub lengths_name: Option<String>,
}

pub type NodeId = usize;

/// A node of the path trie: an object key or list index on the way to one or more fields.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// Children by object key.
    pub keys: Vec<(Box<str>, NodeId)>,
    /// Children by list index (path segments that are canonical non-negative integers).
    pub indices: Vec<(usize, NodeId)>,
    /// Fields whose path ends here (several if one path feeds several outputs).
    pub fields: Vec<usize>,
    /// Every field at or below this node: what a repeated key must reset.
    pub fields_below: Vec<usize>,
    /// The key path to this node, joined by the delimiter, for error messages.
    pub label: String,
}

impl Node {
    pub fn is_leaf(&self) -> bool {
        !self.fields.is_empty()
    }

    pub fn child_by_key(&self, key: &str) -> Option<NodeId> {
        self.keys
            .iter()
            .find(|(candidate, _)| &**candidate == key)
            .map(|(_, node)| *node)
    }

    pub fn child_by_index(&self, index: usize) -> Option<NodeId> {
        self.indices
            .iter()
            .find(|(candidate, _)| *candidate == index)
            .map(|(_, node)| *node)
    }
}

pub const ROOT: NodeId = 0;

/// A validated schema: its fields, its tensors, and the trie that reads them.
/// [`Schema::max_depth`] unless set: as serde_json (and so JSON from most Rust services) allows.
pub const DEFAULT_MAX_DEPTH: usize = 127;

#[derive(Clone, Debug)]
pub struct Schema {
    pub fields: Vec<Field>,
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    /// Deepest nesting of objects and lists accepted in JSON (a top-level list is 1 deep) in
    /// values the fields read, and in values skipped (unbounded unless set: skipping never
    /// recurses); deeper is a syntax error.
    pub max_depth: usize,
    pub max_skipped_depth: usize,
    /// The trie's key tables and the like, made on first use (see [`Schema::lookup`]).
    lookup: std::sync::OnceLock<crate::records::Lookup>,
}

impl Schema {
    /// What reading the trie needs that the schema alone decides, made once (on first use:
    /// the trie is complete by then) and shared by every batch and thread.
    pub fn lookup(&self) -> &crate::records::Lookup {
        self.lookup.get_or_init(|| crate::records::Lookup::new(self))
    }

    pub fn compile(spec: &SchemaSpec) -> Result<Self, SchemaError> {
        if spec.delimiter.is_empty() || spec.delimiter.contains('\\') {
            return Err(SchemaError::new(
                "delimiter must be non-empty and not contain '\\'",
            ));
        }
        if spec.fields.is_empty() {
            return Err(SchemaError::new("a schema needs at least one field"));
        }
        let default_dtype = Dtype::parse(&spec.dtype)?;
        let mut schema = Self {
            fields: Vec::new(),
            tensors: Vec::new(),
            nodes: vec![Node::default()],
            max_depth: DEFAULT_MAX_DEPTH,
            max_skipped_depth: usize::MAX,
            lookup: std::sync::OnceLock::new(),
        };
        let mut tensor_ids: HashMap<String, usize> = HashMap::new();
        let mut output_names: HashMap<String, String> = HashMap::new();
        for field_spec in &spec.fields {
            let segments = split_path(&field_spec.path, &spec.delimiter)
                .map_err(|message| SchemaError::in_field(&field_spec.path, message))?;
            let mut field = compile_field(field_spec, default_dtype)?;
            let tensor_name = match (&field_spec.tensor, field.kind) {
                (Some(tensor), _) => tensor.clone(),
                (None, FieldKind::VariableList { .. }) => field.name.clone(),
                (None, _) => spec.name.clone(),
            };
            let field_id = schema.fields.len();
            let tensor_id = *tensor_ids.entry(tensor_name.clone()).or_insert_with(|| {
                schema.tensors.push(Tensor {
                    name: tensor_name.clone(),
                    dtype: field.dtype,
                    width: 0,
                    fields: Vec::new(),
                    lengths_name: None,
                });
                schema.tensors.len() - 1
            });
            let tensor = &mut schema.tensors[tensor_id];
            if tensor.dtype != field.dtype {
                return Err(SchemaError::in_field(
                    &field.path,
                    format!(
                        "dtype {} differs from dtype {} of tensor {:?}; give the field its own \
                         tensor= or the same dtype",
                        field.dtype, tensor.dtype, tensor.name
                    ),
                ));
            }
            let variable = matches!(field.kind, FieldKind::VariableList { .. });
            if (variable || tensor.lengths_name.is_some()) && !tensor.fields.is_empty() {
                return Err(SchemaError::in_field(
                    &field.path,
                    format!(
                        "a variable-length list needs a tensor of its own, not {:?}",
                        tensor.name
                    ),
                ));
            }
            field.tensor = tensor_id;
            field.column = tensor.width;
            tensor.width += match field.kind {
                FieldKind::Scalar => 1,
                FieldKind::FixedList(length) => length,
                FieldKind::VariableList { .. } => 0,
            };
            if variable {
                tensor.lengths_name = Some(format!("{}_lengths", field.name));
            }
            tensor.fields.push(field_id);
            if let Some(previous) = output_names.insert(field.name.clone(), field.path.clone()) {
                return Err(SchemaError::in_field(
                    &field.path,
                    format!(
                        "output name {:?} is already used by field {previous:?}",
                        field.name
                    ),
                ));
            }
            schema.insert_path(&segments, field_id, &spec.delimiter)?;
            schema.fields.push(field);
        }
        schema.check_tensor_names()?;
        schema.fill_fields_below(ROOT);
        Ok(schema)
    }

    fn insert_path(
        &mut self,
        segments: &[String],
        field_id: usize,
        delimiter: &str,
    ) -> Result<(), SchemaError> {
        let mut node = ROOT;
        for segment in segments {
            if self.nodes[node].is_leaf() {
                return Err(self.prefix_error(field_id, node));
            }
            node = match self.nodes[node].child_by_key(segment) {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    let label = match node {
                        ROOT => escape_segment(segment, delimiter),
                        _ => format!(
                            "{}{delimiter}{}",
                            self.nodes[node].label,
                            escape_segment(segment, delimiter)
                        ),
                    };
                    self.nodes.push(Node {
                        label,
                        ..Node::default()
                    });
                    self.nodes[node].keys.push((segment.as_str().into(), child));
                    if let Some(index) = canonical_index(segment) {
                        self.nodes[node].indices.push((index, child));
                    }
                    child
                }
            };
        }
        let leaf = &self.nodes[node];
        if !leaf.keys.is_empty() {
            return Err(self.prefix_error(field_id, node));
        }
        self.nodes[node].fields.push(field_id);
        Ok(())
    }

    fn prefix_error(&self, field_id: usize, node: NodeId) -> SchemaError {
        SchemaError::new(format!(
            "field {:?} and the path {:?} overlap: one path cannot be both a value and a \
             container of other fields",
            self.fields
                .get(field_id)
                .map_or("?", |field| field.path.as_str()),
            self.nodes[node].label
        ))
    }

    fn check_tensor_names(&self) -> Result<(), SchemaError> {
        let mut seen = std::collections::HashSet::new();
        for name in self.tensor_names() {
            if !seen.insert(name) {
                return Err(SchemaError::new(format!(
                    "two output tensors are named {name:?}"
                )));
            }
        }
        Ok(())
    }

    fn fill_fields_below(&mut self, node: NodeId) -> Vec<usize> {
        let mut below = self.nodes[node].fields.clone();
        let children: Vec<NodeId> = self.nodes[node]
            .keys
            .iter()
            .map(|(_, child)| *child)
            .collect();
        for child in children {
            below.extend(self.fill_fields_below(child));
        }
        self.nodes[node].fields_below = below.clone();
        below
    }

    /// Names of the output tensors, in order; a lengths tensor follows its list's tensor.
    pub fn tensor_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for tensor in &self.tensors {
            names.push(tensor.name.as_str());
            if let Some(lengths) = &tensor.lengths_name {
                names.push(lengths.as_str());
            }
        }
        names
    }

    /// Output names of the fields, in declaration order.
    pub fn column_names(&self) -> Vec<&str> {
        self.fields
            .iter()
            .map(|field| field.name.as_str())
            .collect()
    }
}

fn compile_field(spec: &FieldSpec, default_dtype: Dtype) -> Result<Field, SchemaError> {
    let path = &spec.path;
    let fail = |message: String| SchemaError::in_field(path, message);
    let dtype = match (&spec.dtype, &spec.vocabulary) {
        (Some(text), _) => Dtype::parse(text).map_err(|error| fail(error.message))?,
        (None, Some(_)) => Dtype::Int64,
        (None, None) => default_dtype,
    };
    if let Some(max) = spec.max_length.filter(|max| *max <= 0) {
        return Err(fail(format!("max_length must be positive, got {max}")));
    }
    let kind = match (spec.shape.as_deref(), spec.max_length) {
        (None | Some([]), None) => FieldKind::Scalar,
        (Some([length]), None) if *length > 0 => FieldKind::FixedList(*length as usize),
        (Some([-1]), None) => FieldKind::VariableList { max_length: None },
        (Some([-1]) | None, Some(max)) => FieldKind::VariableList {
            max_length: Some(max as usize),
        },
        (Some(shape), max_length) => {
            return Err(fail(format!(
                "shape {shape:?}{} is not supported: use [N] for a fixed-length list, [-1] or \
                 max_length for a variable-length one",
                max_length
                    .map(|max| format!(" with max_length {max}"))
                    .unwrap_or_default()
            )))
        }
    };
    let vocabulary = match &spec.vocabulary {
        None => {
            if spec.unknown.is_some() || spec.unknown_index.is_some() {
                return Err(fail("unknown and unknown_index need a vocabulary".into()));
            }
            None
        }
        Some(words) => {
            if dtype == Dtype::Bool {
                return Err(fail("a vocabulary field cannot have dtype bool".into()));
            }
            let mut seen = std::collections::HashSet::with_capacity(words.len());
            for word in words {
                if !seen.insert(word) {
                    return Err(fail(format!("vocabulary lists {word:?} twice")));
                }
            }
            let unknown_index = match (spec.unknown.as_deref(), spec.unknown_index) {
                (None | Some("error"), None) => None,
                (Some("error"), Some(_)) => {
                    return Err(fail("unknown_index needs unknown = \"index\"".into()))
                }
                (Some("index") | None, Some(index)) => Some(index),
                (Some("index"), None) => Some(-1),
                (Some(other), _) => {
                    return Err(fail(format!(
                        "unknown must be \"error\" or \"index\", got {other:?}"
                    )))
                }
            };
            Some(Vocabulary {
                words: KeyTable::new(words.iter().map(String::as_str)),
                unknown_index,
            })
        }
    };
    let mut field = Field {
        path: path.clone(),
        name: spec.name.clone().unwrap_or_else(|| path.clone()),
        dtype,
        kind,
        fill: None,
        pad: Cell::zero(dtype),
        vocabulary,
        tensor: 0,
        column: 0,
    };
    if field.name.is_empty() {
        return Err(fail("name must not be empty".into()));
    }
    let variable = matches!(kind, FieldKind::VariableList { .. });
    field.fill = match (spec.missing.as_deref(), &spec.default) {
        (None | Some("error"), None) => None,
        (Some("error"), Some(_)) => {
            return Err(fail("default is given but missing = \"error\"".into()))
        }
        (Some("default") | None, Some(default)) => {
            if variable {
                return Err(fail(
                    "a variable-length list takes no default: missing = \"default\" makes it empty"
                        .into(),
                ));
            }
            let cell = field.convert(default.as_scalar()).map_err(|mismatch| {
                fail(format!(
                    "default: expected {}, got {}",
                    mismatch.expected, mismatch.got
                ))
            })?;
            Some(cell)
        }
        (Some("default"), None) if variable => Some(Cell::zero(dtype)),
        (Some("default"), None) => return Err(fail("missing = \"default\" needs default=".into())),
        (Some("nan"), default) => {
            if default.is_some() {
                return Err(fail("default is given but missing = \"nan\"".into()));
            }
            if variable {
                return Err(fail(
                    "missing = \"nan\" does not apply to a variable-length list".into(),
                ));
            }
            Some(Cell::nan(dtype).ok_or_else(|| {
                fail(format!(
                    "missing = \"nan\" needs a float dtype, not {dtype}"
                ))
            })?)
        }
        (Some(other), _) => {
            return Err(fail(format!(
                "missing must be \"error\", \"default\" or \"nan\", got {other:?}"
            )))
        }
    };
    if let Some(pad) = &spec.pad {
        if kind == FieldKind::Scalar {
            return Err(fail("pad applies to list fields only".into()));
        }
        field.pad = convert_number(dtype, pad.as_scalar()).ok_or_else(|| {
            fail(format!(
                "pad: expected {dtype}, got {}",
                render_scalar(pad.as_scalar())
            ))
        })?;
    }
    Ok(field)
}

/// Splits a path at the delimiter; a backslash escapes the delimiter or a backslash.
pub fn split_path(path: &str, delimiter: &str) -> Result<Vec<String>, String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('\\') {
            if let Some(after_delimiter) = after.strip_prefix(delimiter) {
                current.push_str(delimiter);
                rest = after_delimiter;
            } else if let Some(after_backslash) = after.strip_prefix('\\') {
                current.push('\\');
                rest = after_backslash;
            } else {
                return Err(format!(
                    "a backslash in a path must escape the delimiter {delimiter:?} or a backslash"
                ));
            }
        } else if let Some(after_delimiter) = rest.strip_prefix(delimiter) {
            segments.push(std::mem::take(&mut current));
            rest = after_delimiter;
        } else {
            let mut chars = rest.chars();
            if let Some(next) = chars.next() {
                current.push(next);
            }
            rest = chars.as_str();
        }
    }
    segments.push(current);
    if segments.iter().any(String::is_empty) {
        return Err("a path must not be empty or have an empty segment".into());
    }
    Ok(segments)
}

fn escape_segment(segment: &str, delimiter: &str) -> String {
    segment
        .replace('\\', "\\\\")
        .replace(delimiter, &format!("\\{delimiter}"))
}

/// `"0"`, `"12"`: a list index. `"01"`, `"-1"`, `"+1"`: object keys only.
fn canonical_index(segment: &str) -> Option<usize> {
    let canonical = segment == "0"
        || (!segment.starts_with('0') && segment.bytes().all(|byte| byte.is_ascii_digit()));
    if canonical {
        segment.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(fields: Vec<FieldSpec>) -> Result<Schema, SchemaError> {
        Schema::compile(&SchemaSpec::new(fields))
    }

    #[test]
    fn paths_split_at_the_delimiter_and_honour_escapes() {
        assert_eq!(split_path("a.b.0", ".").unwrap(), ["a", "b", "0"]);
        assert_eq!(split_path(r"a\.b.c", ".").unwrap(), ["a.b", "c"]);
        assert_eq!(split_path(r"a\\.c", ".").unwrap(), ["a\\", "c"]);
        assert_eq!(split_path("a::b", "::").unwrap(), ["a", "b"]);
        assert_eq!(split_path("ключ.é", ".").unwrap(), ["ключ", "é"]);
        assert!(split_path("a..b", ".").is_err());
        assert!(split_path("", ".").is_err());
        assert!(split_path(r"a\b", ".").is_err());
    }

    #[test]
    fn only_canonical_integers_index_lists() {
        assert_eq!(canonical_index("0"), Some(0));
        assert_eq!(canonical_index("17"), Some(17));
        assert_eq!(canonical_index("01"), None);
        assert_eq!(canonical_index("-1"), None);
        assert_eq!(canonical_index("x"), None);
    }

    #[test]
    fn fields_become_columns_of_the_default_tensor_in_order() {
        let mut list = FieldSpec::new("scores");
        list.shape = Some(vec![3]);
        let schema = compile(vec![FieldSpec::new("a"), list, FieldSpec::new("b.c")]).unwrap();
        assert_eq!(schema.tensor_names(), ["input"]);
        assert_eq!(schema.tensors[0].width, 5);
        let columns: Vec<usize> = schema.fields.iter().map(|field| field.column).collect();
        assert_eq!(columns, [0, 1, 4]);
    }

    #[test]
    fn variable_lists_get_their_own_tensor_and_lengths() {
        let mut tokens = FieldSpec::new("tokens");
        tokens.shape = Some(vec![-1]);
        tokens.dtype = Some("int64".into());
        let schema = compile(vec![FieldSpec::new("a"), tokens]).unwrap();
        assert_eq!(schema.tensor_names(), ["input", "tokens", "tokens_lengths"]);
    }

    #[test]
    fn invalid_declarations_are_refused() {
        let refuse = |spec: FieldSpec, needle: &str| {
            let error = compile(vec![spec]).unwrap_err();
            assert!(error.message.contains(needle), "{error}");
        };
        let mut nan_on_int = FieldSpec::new("a");
        nan_on_int.dtype = Some("int32".into());
        nan_on_int.missing = Some("nan".into());
        refuse(nan_on_int, "float dtype");
        let mut bad_dtype = FieldSpec::new("a");
        bad_dtype.dtype = Some("float16".into());
        refuse(bad_dtype, "unknown dtype");
        let mut default_needed = FieldSpec::new("a");
        default_needed.missing = Some("default".into());
        refuse(default_needed, "needs default");
        let mut bad_default = FieldSpec::new("a");
        bad_default.default = Some(ConfigValue::Str("x".into()));
        refuse(bad_default, "default: expected float32");
        let mut bad_shape = FieldSpec::new("a");
        bad_shape.shape = Some(vec![2, 3]);
        refuse(bad_shape, "not supported");
        let mut unknown_without_vocabulary = FieldSpec::new("a");
        unknown_without_vocabulary.unknown = Some("index".into());
        refuse(unknown_without_vocabulary, "need a vocabulary");
    }

    #[test]
    fn overlapping_paths_and_names_are_refused() {
        assert!(compile(vec![FieldSpec::new("a"), FieldSpec::new("a.b")]).is_err());
        assert!(compile(vec![FieldSpec::new("a.b"), FieldSpec::new("a")]).is_err());
        assert!(compile(vec![FieldSpec::new("a"), FieldSpec::new("a")]).is_err());
        let mut renamed = FieldSpec::new("a");
        renamed.name = Some("a2".into());
        assert!(compile(vec![FieldSpec::new("a"), renamed]).is_ok());
    }

    #[test]
    fn mixed_dtypes_in_one_tensor_are_refused() {
        let mut category = FieldSpec::new("color");
        category.vocabulary = Some(vec!["red".into(), "blue".into()]);
        let error = compile(vec![FieldSpec::new("a"), category.clone()]).unwrap_err();
        assert!(error.message.contains("its own"), "{error}");
        category.tensor = Some("color".into());
        assert!(compile(vec![FieldSpec::new("a"), category]).is_ok());
    }

    #[test]
    fn numbers_convert_with_documented_rules() {
        assert_eq!(convert_number(Dtype::Float32, Scalar::Float(1e308)), None);
        assert_eq!(
            convert_number(Dtype::Float64, Scalar::Float(1e308)),
            Some(Cell::Float64(1e308))
        );
        assert_eq!(
            convert_number(Dtype::Float64, Scalar::UInt(u64::MAX)),
            Some(Cell::Float64(18446744073709551615.0))
        );
        assert_eq!(convert_number(Dtype::Int32, Scalar::Int(1 << 31)), None);
        assert_eq!(convert_number(Dtype::Int64, Scalar::UInt(u64::MAX)), None);
        assert_eq!(convert_number(Dtype::Int64, Scalar::Float(1.0)), None);
        assert_eq!(
            convert_number(Dtype::Bool, Scalar::Int(1)),
            Some(Cell::Bool(true))
        );
        assert_eq!(convert_number(Dtype::Bool, Scalar::Int(2)), None);
        assert_eq!(convert_number(Dtype::Float32, Scalar::Bool(true)), None);
    }

    #[test]
    fn rendered_values_are_truncated() {
        let long = "x".repeat(100);
        let rendered = render_scalar(Scalar::Str(&long));
        assert!(rendered.chars().count() <= MAX_VALUE_CHARS + 3);
        assert_eq!(render_scalar(Scalar::Float(1e308)), "1e308");
    }
}
