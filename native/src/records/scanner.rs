//! The schema-driven JSON scanner: one pass over the bytes, walking the path trie as it reads.

use std::ops::Range;

use crate::schema::{NodeId, Scalar, ROOT};

use super::columns::Batch;
use super::keys::{short_key_len, KeyTable};
use super::SyntaxError;

/// The place in an object after unknown members that no known one preceded: it has no lead.
const NO_SLOT: usize = usize::MAX;
/// The longest [`Lead`], in bytes, and in words.
const LEAD_BYTES: usize = 32;
const LEAD_WORDS: usize = LEAD_BYTES / 8;

use crate::schema::DEFAULT_MAX_DEPTH;

/// Where a decoded string lives: in the input (no escapes) or in the scanner's scratch buffer.
pub(super) enum Text {
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
pub(super) fn key_word(key: &str) -> Option<(u64, u64)> {
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
pub(super) fn text_at(data: &[u8], range: Range<usize>) -> &str {
    data.get(range)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .unwrap_or_default()
}

/// The bytes from the end of one member's value (or from just after an object's `{`) to the
/// start of the next member's value, exactly as the input had them once: separator, quoted key,
/// colon and whitespace (`, "f1": `), up to [`LEAD_BYTES`] bytes: a key of up to 26 bytes as
/// `json.dumps` writes it (at 16 bytes, an 11-byte key such as `feature_001` never had a lead).
/// Records of one batch are mostly written alike, so the next member usually begins with the
/// same bytes as the last record's did there. If it does, byte for byte, it is the same key,
/// spelt the same way, in syntax that was checked when the lead was learnt; one comparison of
/// two words (four for a long lead) then stands for the comma, whitespace, key lookup and colon
/// steps. Any difference falls back to those steps.
#[derive(Clone, Copy)]
pub(super) struct Lead {
    words: [u64; LEAD_WORDS],
    masks: [u64; LEAD_WORDS],
    len: usize,
    /// The key's index in its node's key list.
    key: usize,
    /// The key's trie node, and whether fields end there.
    child: NodeId,
    leaf: bool,
    /// Misses in a row since this place's lead last matched. Keys in a new order every record
    /// would learn a new lead at every member, to no use: a lead is learnt again only when the
    /// misses reach 1, 2, 4, 8... (and every 512th), and a match halves them: a batch whose
    /// order changes once relearns at once, one in a new order every record seldom does.
    misses: u16,
}

impl Lead {
    fn new(bytes: &[u8], key: usize, child: NodeId, leaf: bool) -> Option<Self> {
        if bytes.len() > LEAD_BYTES {
            return None;
        }
        let mut padded = [0u8; LEAD_BYTES];
        padded[..bytes.len()].copy_from_slice(bytes);
        let mut words = [0u64; LEAD_WORDS];
        let mut masks = [0u64; LEAD_WORDS];
        for (index, (word, mask)) in words.iter_mut().zip(&mut masks).enumerate() {
            *word = u64::from_le_bytes(
                padded[8 * index..8 * index + 8]
                    .try_into()
                    .unwrap_or_default(),
            );
            let used = bytes.len().saturating_sub(8 * index).min(8);
            *mask = if used == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * used)) - 1
            };
        }
        Some(Self {
            words,
            masks,
            len: bytes.len(),
            key,
            child,
            leaf,
            misses: 0,
        })
    }

    /// Whether `data` holds this lead at `position`: 16 bytes compared in two words, and 16
    /// more for a lead longer than that (false too where fewer remain than are compared: the
    /// steps handle the input's last bytes).
    #[inline(always)]
    fn matches(&self, data: &[u8], position: usize) -> bool {
        let half = |at: usize, index: usize| -> Option<u64> {
            let chunk = data.get(at..at + 16)?;
            let low = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
            let high = u64::from_le_bytes(chunk[8..].try_into().unwrap_or_default());
            Some(
                ((low ^ self.words[index]) & self.masks[index])
                    | ((high ^ self.words[index + 1]) & self.masks[index + 1]),
            )
        };
        if half(position, 0) != Some(0) {
            return false;
        }
        self.len <= 16 || half(position + 16, 2) == Some(0)
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
pub(super) struct Scanner<'a> {
    /// The input up to the end of the part being read; offsets are into the whole input.
    pub(super) data: &'a [u8],
    pub(super) position: usize,
    pub(super) depth: usize,
    /// Deepest nesting accepted (the schema's `max_depth`): deeper is malformed rather than
    /// a stack overflow, in values read ([`Self::enter`]) and skipped alike.
    pub(super) max_depth: usize,
    pub(super) max_skipped_depth: usize,
    pub(super) scratch: String,
    /// The closing brackets of the containers being skipped.
    pub(super) stack: Vec<u8>,
}

/// The scanner's results. Its error is boxed: a result of one word moves in registers
/// through the scanner's many small steps, where the error itself is the rare case.
pub(super) type Scan<T> = Result<T, Box<SyntaxError>>;

impl<'a> Scanner<'a> {
    pub(super) fn new(data: &'a [u8], position: usize, depth: usize) -> Self {
        Self {
            data,
            position,
            depth,
            max_depth: DEFAULT_MAX_DEPTH,
            max_skipped_depth: usize::MAX,
            scratch: String::new(),
            stack: Vec::new(),
        }
    }

    #[cold]
    pub(super) fn error(&self, offset: usize, message: &str) -> Box<SyntaxError> {
        Box::new(syntax(offset.min(self.data.len()), message))
    }

    #[cold]
    pub(super) fn too_deep(&self, offset: usize, limit: usize) -> Box<SyntaxError> {
        self.error(offset, &format!("nested deeper than {limit} levels"))
    }

    /// The schema's depth limits.
    pub(super) fn limited(mut self, schema: &crate::schema::Schema) -> Self {
        self.max_depth = schema.max_depth;
        self.max_skipped_depth = schema.max_skipped_depth;
        self
    }

    #[cold]
    pub(super) fn eof(&self, what: &str) -> Box<SyntaxError> {
        Box::new(syntax(
            self.data.len(),
            &format!("unexpected end of input while parsing {what}"),
        ))
    }

    /// The next byte that is not whitespace (the position is left on it).
    #[inline(always)]
    pub(super) fn peek(&mut self) -> Option<u8> {
        loop {
            let byte = *self.data.get(self.position)?;
            if !matches!(byte, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(byte);
            }
            self.position += 1;
        }
    }

    #[inline]
    pub(super) fn enter(&mut self) -> Scan<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(self.too_deep(self.position, self.max_depth));
        }
        self.position += 1;
        Ok(())
    }

    #[inline]
    pub(super) fn colon(&mut self) -> Scan<()> {
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
    pub(super) fn next_item(&mut self, close: u8) -> Scan<bool> {
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
    pub(super) fn expect_key(&mut self) -> Scan<()> {
        match self.peek() {
            Some(b'"') => Ok(()),
            Some(b'}') => Err(self.error(self.position, "trailing comma")),
            Some(_) => Err(self.error(self.position, "expected a key")),
            None => Err(self.eof("an object")),
        }
    }

    /// Just after an opening bracket: true if the container is empty (and now closed).
    #[inline(always)]
    pub(super) fn empty(&mut self, close: u8) -> bool {
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
    pub(super) fn expect_element(&mut self) -> Scan<()> {
        match self.peek() {
            Some(b']') => Err(self.error(self.position, "trailing comma")),
            _ => Ok(()),
        }
    }

    /// Scans a string (the position on its opening quote) up to its end or its first escape:
    /// returns the end of the plain part and whether an escape follows.
    #[inline(always)]
    pub(super) fn plain_string(&mut self) -> Scan<(usize, bool)> {
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
    pub(super) fn string(&mut self) -> Scan<Text> {
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
    pub(super) fn escaped_rest(&mut self, decode: bool) -> Scan<()> {
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

    /// The 8 input bytes from `start` as a little-endian word (none where fewer remain): a
    /// short key's or category's bytes and closing quote, read in one load.
    #[inline(always)]
    fn word_at(&self, start: usize) -> Option<u64> {
        self.data
            .get(start..start + 8)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map(u64::from_le_bytes)
    }

    pub(super) fn text_of(&self, text: &Text) -> &str {
        match text {
            Text::Input(range) => text_at(self.data, range.clone()),
            Text::Scratch => &self.scratch,
        }
    }

    /// Reads an object key (the position on its quote) and finds its child among `keys`, trying
    /// the key after the last one found first: records of a batch usually share a key order.
    /// `words` are the keys' [`key_word`]s. After the last key, the first is expected next:
    /// the next record's (or nested object's) first key. Any other key is found in `table`, in
    /// constant time whatever the order of the keys.
    #[inline(always)]
    fn key(
        &mut self,
        keys: &[(Box<str>, NodeId)],
        words: &[Option<(u64, u64)>],
        table: &KeyTable,
        hint: &mut usize,
    ) -> Scan<Option<usize>> {
        let start = self.position + 1;
        if *hint >= keys.len() {
            *hint = 0;
        }
        // The expected key, compared in place: a key that JSON writes as it is (no quote,
        // backslash or control character) matches exactly when its bytes and a closing quote
        // follow the opening one. A short key is compared in one step.
        let word = self.word_at(start);
        if let Some((candidate, _)) = keys.get(*hint) {
            let candidate = candidate.as_bytes();
            let end = start + candidate.len();
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
        // Not the expected key. A short one (the commonest) is measured and looked up from the
        // word already loaded: no byte loop.
        if let Some(len) = word.and_then(short_key_len) {
            let found = word.and_then(|word| table.find_short(word, len));
            self.position = start + len + 1;
            if let Some(position) = found {
                *hint = position + 1;
            }
            return Ok(found);
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
        let found = table.find(raw);
        if let Some(position) = found {
            *hint = position + 1;
        }
        Ok(found)
    }

    pub(super) fn literal(&mut self, word: &'static [u8]) -> Scan<()> {
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
    /// Reads the value at `node` into the batch.
    pub(super) fn value(&mut self, batch: &mut Batch<'_>, node: NodeId) -> Scan<()> {
        match self.peek() {
            Some(b'{') => self.object(batch, node),
            Some(b'[') => self.list(batch, node),
            Some(b'"') => {
                if let Some(field_id) = batch.lookup.categorical[node] {
                    // A short word that JSON writes as it is, found from one 8-byte load (no
                    // scan of the string, no hash of it); anything else takes the steps below.
                    let start = self.position + 1;
                    let found = self.word_at(start).and_then(|word| {
                        let len = short_key_len(word)?;
                        let vocabulary = batch.schema.fields[field_id].vocabulary.as_ref()?;
                        Some((vocabulary.find_short(word, len)?, len))
                    });
                    if let Some((index, len)) = found {
                        if batch.category(field_id, index) {
                            self.position = start + len + 1;
                            return Ok(());
                        }
                    }
                }
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
                .map(|lead| (lead.len, lead.key, lead.child, lead.leaf, lead.misses));
            let found = match matched {
                Some((len, key, child, leaf, misses)) => {
                    if misses != 0 {
                        if let Some(Some(lead)) = batch.leads[node].get_mut(slot) {
                            lead.misses = misses / 2;
                        }
                    }
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
                        &batch.lookup.key_words[node],
                        &batch.lookup.key_tables[node],
                        &mut batch.key_hints[node],
                    )?;
                    self.colon()?;
                    let found = found.map(|index| {
                        let child = target.keys[index].1;
                        (index, child, schema.nodes[child].is_leaf())
                    });
                    // Leads are learnt from the second record on: the first would learn
                    // one at every member, of no use to a request of one record.
                    if let Some((index, child, leaf)) = found.filter(|_| batch.records > 0) {
                        if slot != NO_SLOT && self.peek().is_some() {
                            let place = &mut batch.leads[node][slot];
                            match place {
                                Some(lead) => {
                                    let misses = lead.misses.saturating_add(1);
                                    lead.misses = misses;
                                    if misses.is_power_of_two() || misses % 512 == 0 {
                                        *place = Lead::new(
                                            &self.data[start..self.position],
                                            index,
                                            child,
                                            leaf,
                                        )
                                        .map(|lead| Lead { misses, ..lead });
                                    }
                                }
                                None => {
                                    *place = Lead::new(
                                        &self.data[start..self.position],
                                        index,
                                        child,
                                        leaf,
                                    );
                                }
                            }
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

    /// After a top-level value: only whitespace may follow.
    pub(super) fn end(&mut self) -> Scan<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error(self.position, "trailing characters")),
        }
    }
}

/// Keys are short: an inline byte loop beats a call to memcmp.
#[inline(always)]
fn same_key(candidate: &[u8], key: &[u8]) -> bool {
    candidate.len() == key.len() && candidate.iter().zip(key).all(|(left, right)| left == right)
}

pub(super) const WHITESPACE: [u8; 4] = [b' ', b'\t', b'\n', b'\r'];

pub(super) fn skip_whitespace(data: &[u8], mut position: usize) -> usize {
    while position < data.len() && WHITESPACE.contains(&data[position]) {
        position += 1;
    }
    position
}

pub(super) fn syntax(offset: usize, message: &str) -> SyntaxError {
    SyntaxError {
        offset,
        message: message.to_owned(),
    }
}
