//! Python records (dicts, or any mappings) -> typed column buffers, read while the GIL is held.
//!
//! The reader walks the schema's trie over the Python objects and feeds each value straight into
//! a [`Batch`]: no intermediate Rust value per record. Object keys are looked up with Python
//! strings made once per schema, plain floats and ints are read with one type check, and
//! everything else follows the same rules as the JSON reader (a Python value is described in an
//! error as the JSON value it would be).

use std::cell::RefCell;

use pyo3::exceptions::PyKeyError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PySequence, PyString, PyTuple,
};

use crate::records::{node_table, Batch, Column, KeyTable, ParseError, RecordError};
use crate::schema::{truncate, NodeId, Scalar, Schema, ROOT};

/// Per trie node, its object keys as Python strings, and as a [`KeyTable`] that finds a key by
/// its contents in constant time (both made once, when the schema is built).
pub struct NodeKeys {
    strings: Vec<Vec<(Py<PyString>, NodeId)>>,
    tables: Vec<KeyTable>,
}

pub fn node_keys(py: Python<'_>, schema: &Schema) -> NodeKeys {
    NodeKeys {
        strings: schema
            .nodes
            .iter()
            .map(|node| {
                node.keys
                    .iter()
                    .map(|(key, child)| (PyString::intern(py, key).unbind(), *child))
                    .collect()
            })
            .collect(),
        tables: schema.nodes.iter().map(node_table).collect(),
    }
}

/// Reads one record (a mapping) or an iterable of records into the schema's tensors. Python
/// exceptions (a mapping whose lookup fails) come back as the outer error; after a bad record
/// the rest are still read, so that such an exception anywhere wins, as it did when records
/// were extracted before conversion.
pub fn parse_records(
    schema: &Schema,
    keys: &NodeKeys,
    records: &Bound<'_, PyAny>,
) -> PyResult<Result<Vec<Column>, ParseError>> {
    let reader = Reader {
        schema,
        keys,
        seen: RefCell::new(schema.nodes.iter().map(|_| SeenKeys::default()).collect()),
    };
    let mut first_error: Option<RecordError> = None;
    let mut read = |batch: &mut Batch<'_>, index: usize, record: &Bound<'_, PyAny>| {
        batch.begin_record();
        reader.container(batch, ROOT, record)?;
        if first_error.is_none() {
            first_error = batch.finish_record(index).err();
        }
        PyResult::Ok(())
    };
    let batch = if records.is_instance_of::<PyDict>() || records.cast::<PyMapping>().is_ok() {
        let mut batch = Batch::new(schema, 1);
        read(&mut batch, 0, records)?;
        batch
    } else if let Ok(list) = records.cast::<PyList>() {
        let mut batch = Batch::new(schema, list.len());
        for (index, record) in list.iter().enumerate() {
            read(&mut batch, index, &record)?;
        }
        batch
    } else {
        let mut batch = Batch::new(schema, 0);
        for (index, record) in records.try_iter()?.enumerate() {
            read(&mut batch, index, &record?)?;
        }
        batch
    };
    Ok(match first_error {
        Some(error) => Err(ParseError::Record(error)),
        None => Ok(batch.into_columns()),
    })
}

struct Reader<'a> {
    schema: &'a Schema,
    keys: &'a NodeKeys,
    /// Per trie node, the key objects met in this call's dicts and what they resolved to.
    seen: RefCell<Vec<SeenKeys>>,
}

/// How many key objects a node remembers: past it, keys are matched by content (in constant
/// time too, by the node's [`KeyTable`]). Shared key objects are rarely more than a schema's
/// keys and a few unknown ones; more means fresh strings in every record.
const MAX_SEEN_KEYS: usize = 512;

/// Key objects already resolved at one node. Records of one batch usually share their key
/// objects (json.loads and orjson reuse them, and so do dicts built in a loop), so a key is
/// resolved by its address: the one after the last match is tried first (records that list
/// their keys in one order), then a table of addresses, in constant time whatever the order.
/// The entries hold a reference to their key, so that an address cannot be reused by another
/// string while the call runs.
#[derive(Default)]
struct SeenKeys {
    entries: Vec<(Py<PyAny>, Option<NodeId>)>,
    /// Open addressing over the entries' addresses: an entry's index, or `u32::MAX` for none;
    /// a power of two at most half full (empty until the first entry).
    slots: Vec<u32>,
    hint: usize,
}

impl SeenKeys {
    #[inline(always)]
    fn slot_of(&self, address: *mut ffi::PyObject) -> usize {
        // Objects are 16-byte aligned: the low bits say nothing.
        let hash = ((address as usize as u64) >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (hash >> (64 - self.slots.len().trailing_zeros())) as usize
    }

    /// The entry of the key object at `address`, if it was met.
    #[inline]
    fn find(&self, address: *mut ffi::PyObject) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = self.slot_of(address);
        loop {
            let index = *self.slots.get(slot)?;
            let (candidate, _) = self.entries.get(index as usize)?;
            if candidate.as_ptr() == address {
                return Some(index as usize);
            }
            slot = (slot + 1) & mask;
        }
    }

    fn insert(&mut self, key: Py<PyAny>, child: Option<NodeId>) {
        self.entries.push((key, child));
        if 2 * self.entries.len() > self.slots.len() {
            let size = (4 * self.entries.len()).next_power_of_two().max(16);
            self.slots = vec![u32::MAX; size];
            for index in 0..self.entries.len() {
                self.place(index);
            }
        } else {
            self.place(self.entries.len() - 1);
        }
    }

    fn place(&mut self, index: usize) {
        let mask = self.slots.len() - 1;
        let mut slot = self.slot_of(self.entries[index].0.as_ptr());
        while self.slots[slot] != u32::MAX {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = index as u32;
    }
}

/// A Python scalar as the JSON reader would see it, or the description of something else.
enum Read<'v> {
    Scalar(Scalar<'v>),
    Other(String),
}

impl Reader<'_> {
    /// Reads what the trie wants below `node` from a Python value.
    fn container(
        &self,
        batch: &mut Batch<'_>,
        node: NodeId,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let trie_node = &self.schema.nodes[node];
        if trie_node.is_leaf() {
            return self.leaf(batch, node, value);
        }
        let py = value.py();
        if let Ok(dict) = value.cast_exact::<PyDict>() {
            return self.dict(batch, node, dict);
        }
        if let Ok(dict) = value.cast::<PyDict>() {
            // A dict subclass may override lookups (__missing__ is not called by get_item, but
            // keep to plain lookups anyway).
            for (key, child) in &self.keys.strings[node] {
                if let Some(child_value) = dict.get_item(key.bind(py))? {
                    self.container(batch, *child, &child_value)?;
                }
            }
            return Ok(());
        }
        if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            // Only integer segments read into a list, and never at the record itself.
            if trie_node.indices.is_empty() || node == ROOT {
                batch.container_mismatch(node, "a list");
                return Ok(());
            }
            batch.list_at_container(node);
            let sequence = value.cast::<PySequence>()?;
            let length = sequence.len()?;
            for &(index, child) in &trie_node.indices {
                if index < length {
                    self.container(batch, child, &sequence.get_item(index)?)?;
                }
            }
            return Ok(());
        }
        if let Ok(mapping) = value.cast::<PyMapping>() {
            for (key, child) in &self.keys.strings[node] {
                match mapping.get_item(key.bind(py)) {
                    Ok(child_value) => self.container(batch, *child, &child_value)?,
                    Err(error) if error.is_instance_of::<PyKeyError>(py) => {}
                    Err(error) => return Err(error),
                }
            }
            return Ok(());
        }
        self.scalar(batch, node, value)
    }

    /// An exact dict: its entries are walked in order (no hashing), each key resolved by its
    /// address after the first time it is met.
    fn dict(&self, batch: &mut Batch<'_>, node: NodeId, dict: &Bound<'_, PyDict>) -> PyResult<()> {
        let py = dict.py();
        let mut position: ffi::Py_ssize_t = 0;
        let mut key: *mut ffi::PyObject = std::ptr::null_mut();
        let mut value: *mut ffi::PyObject = std::ptr::null_mut();
        // SAFETY: PyDict_Next is called with the GIL held on a live dict, and checks its
        // position against the dict's current size, so it stays in bounds even if Python code
        // run below (a mapping's __getitem__) changes the dict. It returns borrowed references,
        // used as such only until the next call that could run Python code.
        while unsafe { ffi::PyDict_Next(dict.as_ptr(), &mut position, &mut key, &mut value) } != 0 {
            // SAFETY: key is a valid borrowed reference, just returned; resolving it runs no
            // Python code (a cached address, or an exact-str check and its UTF-8 contents).
            let Some(child) = self.resolve(node, unsafe { Borrowed::from_ptr(py, key) }) else {
                continue;
            };
            // SAFETY: value is a valid borrowed reference: nothing ran since it was returned.
            let borrowed = unsafe { Borrowed::from_ptr(py, value) };
            if self.schema.nodes[child].is_leaf() {
                // Plain numbers are read in place, with no reference taken: reading them runs
                // no Python code, so nothing can free them meanwhile.
                if let Ok(float) = borrowed.cast_exact::<PyFloat>() {
                    batch.scalar(child, Scalar::Float(float.value()));
                    continue;
                }
                if let Some(int) = exact_int(&borrowed) {
                    batch.scalar(child, Scalar::Int(int));
                    continue;
                }
                // So are exact strings (a category's word, most often): their UTF-8 contents
                // are read without Python code (one that is not UTF-8 takes the general path).
                if let Ok(text) = borrowed.cast_exact::<PyString>() {
                    if let Ok(text) = text.to_str() {
                        batch.scalar(child, Scalar::Str(text));
                        continue;
                    }
                }
            }
            // Anything else may run Python code: hold a reference while reading it.
            let owned = borrowed.to_owned();
            self.container(batch, child, &owned)?;
        }
        Ok(())
    }

    /// The child of `node` that a dict key names, if any.
    #[inline]
    fn resolve(&self, node: NodeId, key: Borrowed<'_, '_, PyAny>) -> Option<NodeId> {
        let mut seen = self.seen.borrow_mut();
        let seen = &mut seen[node];
        let address = key.as_ptr();
        // A full table means key objects are not shared between records (dicts built with
        // fresh strings): then the contents are looked up at once, in constant time too.
        let full = seen.entries.len() >= MAX_SEEN_KEYS;
        if !full {
            if let Some((candidate, child)) = seen.entries.get(seen.hint) {
                if candidate.as_ptr() == address {
                    let child = *child;
                    seen.hint += 1;
                    return child;
                }
            }
            if let Some(index) = seen.find(address) {
                seen.hint = index + 1;
                return seen.entries[index].1;
            }
        }
        // First time this key object is met: match it by content. Only strings name keys (a
        // str subclass too, by its contents).
        let node_keys = &self.schema.nodes[node].keys;
        let child = key.cast::<PyString>().ok().and_then(|text| {
            let text = text.to_str().ok()?;
            let index = self.keys.tables[node].find(text.as_bytes())?;
            node_keys.get(index).map(|(_, child)| *child)
        });
        if !full {
            seen.insert(key.to_owned().unbind(), child);
            seen.hint = seen.entries.len();
        }
        child
    }

    /// A value at a node where fields end.
    #[inline]
    fn leaf(&self, batch: &mut Batch<'_>, node: NodeId, value: &Bound<'_, PyAny>) -> PyResult<()> {
        // Plain floats are most leaves: an exact type check is one pointer comparison.
        if let Ok(float) = value.cast_exact::<PyFloat>() {
            batch.scalar(node, Scalar::Float(float.value()));
            return Ok(());
        }
        if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            if !batch.leaf_wants_list(node) {
                batch.container_mismatch(node, "a list");
                return Ok(());
            }
            let mut count = 0;
            if let Ok(list) = value.cast_exact::<PyList>() {
                // An exact list: its items are read in place while they are plain numbers.
                loop {
                    // SAFETY: the list is live (we hold it); PyList_Size and PyList_GetItem
                    // check their argument and bounds, reading the current size each time, so a
                    // list changed by Python code run for an earlier item stays in bounds.
                    let length = unsafe { ffi::PyList_Size(list.as_ptr()) };
                    if count as ffi::Py_ssize_t >= length {
                        break;
                    }
                    let item =
                        unsafe { ffi::PyList_GetItem(list.as_ptr(), count as ffi::Py_ssize_t) };
                    if item.is_null() {
                        return Err(PyErr::fetch(value.py()));
                    }
                    // SAFETY: a valid borrowed reference, just returned.
                    let item = unsafe { Borrowed::from_ptr(value.py(), item) };
                    if let Ok(float) = item.cast_exact::<PyFloat>() {
                        batch.list_element(node, count, Scalar::Float(float.value()));
                    } else if let Some(int) = exact_int(&item) {
                        batch.list_element(node, count, Scalar::Int(int));
                    } else {
                        self.element(batch, node, count, &item.to_owned())?;
                    }
                    count += 1;
                }
                batch.list_end(node, count);
                return Ok(());
            }
            for item in value.try_iter()? {
                self.element(batch, node, count, &item?)?;
                count += 1;
            }
            batch.list_end(node, count);
            return Ok(());
        }
        self.scalar(batch, node, value)
    }

    /// One item of a list at a list field.
    fn element(
        &self,
        batch: &mut Batch<'_>,
        node: NodeId,
        index: usize,
        item: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if let Ok(float) = item.cast_exact::<PyFloat>() {
            batch.list_element(node, index, Scalar::Float(float.value()));
        } else if item.is_instance_of::<PyDict>() {
            batch.element_mismatch(node, index, "an object");
        } else if item.is_instance_of::<PyList>() || item.is_instance_of::<PyTuple>() {
            batch.element_mismatch(node, index, "a list");
        } else {
            match read_scalar(item)? {
                Read::Scalar(scalar) => batch.list_element(node, index, scalar),
                Read::Other(text) => batch.element_mismatch(node, index, &truncate(text)),
            }
        }
        Ok(())
    }

    fn scalar(
        &self,
        batch: &mut Batch<'_>,
        node: NodeId,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        match read_scalar(value)? {
            Read::Scalar(scalar) => batch.scalar(node, scalar),
            Read::Other(text) => batch.container_mismatch(node, &truncate(text)),
        }
        Ok(())
    }
}

/// An exact int that fits 64 bits (no Python code runs to find out).
#[inline]
fn exact_int(value: &Bound<'_, PyAny>) -> Option<i64> {
    if !value.is_exact_instance_of::<PyInt>() {
        return None;
    }
    // SAFETY: an exact int, held by the caller, with the GIL held.
    let int = unsafe { ffi::PyLong_AsLongLong(value.as_ptr()) };
    if int == -1 && unsafe { !ffi::PyErr_Occurred().is_null() } {
        // Beyond 64 bits: the general path reads it (as u64, or a float).
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    Some(int)
}

/// A Python scalar as the JSON parser would see it: ints beyond 64 bits become floats, as a
/// JSON reader reads such literals.
#[inline]
fn read_scalar<'v>(value: &'v Bound<'_, PyAny>) -> PyResult<Read<'v>> {
    if value.is_exact_instance_of::<PyInt>() {
        if let Ok(int) = value.extract::<i64>() {
            return Ok(Read::Scalar(Scalar::Int(int)));
        }
    }
    if let Ok(float) = value.cast::<PyFloat>() {
        return Ok(Read::Scalar(Scalar::Float(float.value())));
    }
    if value.is_none() {
        return Ok(Read::Scalar(Scalar::Null));
    }
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Read::Scalar(Scalar::Bool(flag.is_true())));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(int) = value.extract::<i64>() {
            return Ok(Read::Scalar(Scalar::Int(int)));
        }
        if let Ok(int) = value.extract::<u64>() {
            return Ok(Read::Scalar(Scalar::UInt(int)));
        }
        return Ok(match value.extract::<f64>() {
            Ok(float) => Read::Scalar(Scalar::Float(float)),
            Err(_) => Read::Other(value.str()?.to_string_lossy().into_owned()),
        });
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(match text.to_str() {
            Ok(text) => Read::Scalar(Scalar::Str(text)),
            Err(_) => Read::Other("a string that is not valid UTF-8".into()),
        });
    }
    if value.is_instance_of::<PyDict>() || value.cast::<PyMapping>().is_ok() {
        return Ok(Read::Other("an object".into()));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        return Ok(Read::Other("a list".into()));
    }
    Ok(Read::Other(format!(
        "a value of type {}",
        value.get_type().name()?
    )))
}
