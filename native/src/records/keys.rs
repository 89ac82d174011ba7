//! Key lookup in constant time, whatever the order of an object's keys: a small open-addressing
//! table per trie node, built once from the schema's keys.
//!
//! The table is searched for a key that is not the one expected next (the scanner tries that
//! one first, in place): JSON from different clients lists keys in different orders, and a
//! linear search over a node's keys made a shuffled record 4-8 times slower than the same bytes
//! in a fixed order. The hash reads the key's length and its first and last 8 bytes (two loads
//! up to 16 bytes; a longer key's middle too); the multiplier is chosen, when the table is
//! built, among a few so that no two of the node's keys share a slot where one can be found: a
//! lookup is then one hash, one slot and one comparison, and a key no field asks for usually
//! stops at an empty slot.
//! Categorical fields find their vocabulary's words in one too.

/// Multipliers tried in turn for a table without collisions (odd 64-bit constants).
const MULTIPLIERS: [u64; 8] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xD6E8_FEB8_6659_FD93,
    0xFF51_AFD7_ED55_8CCD,
    0xC4CE_B9FE_1A85_EC53,
    0x8CB9_2BA7_2F3D_8DD7,
    0xA076_1D64_78BD_642F,
];

/// No key in this slot.
const EMPTY: u32 = u32::MAX;

/// The first and last (up to) 8 bytes of `key`, as little-endian words (zero-padded).
#[inline(always)]
fn ends(key: &[u8]) -> (u64, u64) {
    let len = key.len();
    if len >= 8 {
        let first = u64::from_le_bytes(key[..8].try_into().unwrap_or_default());
        let last = u64::from_le_bytes(key[len - 8..].try_into().unwrap_or_default());
        (first, last)
    } else {
        let mut padded = [0u8; 8];
        padded[..len].copy_from_slice(key);
        (u64::from_le_bytes(padded), 0)
    }
}

#[inline(always)]
fn hash(key: &[u8], multiplier: u64) -> u64 {
    let (first, last) = ends(key);
    let mut mixed =
        first ^ last.rotate_left(31) ^ (key.len() as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
    if key.len() > 16 {
        // The middle too: long keys alike at both ends (a vocabulary of codes with a common
        // prefix and suffix) would otherwise all share one slot and its probe chain.
        for chunk in key[8..key.len() - 8].chunks(8) {
            let mut padded = [0u8; 8];
            padded[..chunk.len()].copy_from_slice(chunk);
            mixed = (mixed ^ u64::from_le_bytes(padded))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(29);
        }
    }
    mixed.wrapping_mul(multiplier)
}

/// One node's keys, findable in any order. A node without keys (where fields end) has an
/// empty table, made without allocating: a batch makes one per trie node.
#[derive(Clone, Debug, Default)]
pub struct KeyTable {
    /// Per slot: the index of a key in the node's key list, or [`EMPTY`].
    slots: Box<[u32]>,
    /// The keys' bytes end to end, in the node's order.
    bytes: Box<[u8]>,
    /// Per key: where its bytes start in `bytes`, its length, and (under 8 bytes) its bytes
    /// zero-padded in a little-endian word (else `u64::MAX`), compared in one step.
    spans: Box<[(u32, u32, u64)]>,
    multiplier: u64,
    /// `64 - log2(slots)`: the hash's top bits pick the slot.
    shift: u32,
}

impl KeyTable {
    /// The table of `keys` (distinct, as a trie node's are).
    pub fn new<'k>(keys: impl IntoIterator<Item = &'k str> + Clone) -> Self {
        let count = keys.clone().into_iter().count();
        if count == 0 {
            return Self::default();
        }
        let mut bytes = Vec::new();
        let mut spans = Vec::with_capacity(count);
        for key in keys {
            let key = key.as_bytes();
            let short = if key.len() < 8 { ends(key).0 } else { u64::MAX };
            spans.push((bytes.len() as u32, key.len() as u32, short));
            bytes.extend_from_slice(key);
        }
        let key_at =
            |&(start, len, _): &(u32, u32, u64)| &bytes[start as usize..(start + len) as usize];
        // At most half full, so that a key that is not there soon meets an empty slot.
        let size = (2 * count).next_power_of_two().max(4);
        let shift = 64 - size.trailing_zeros();
        let mut best: Option<(usize, u64, Vec<u32>)> = None;
        for &multiplier in &MULTIPLIERS {
            let mut slots = vec![EMPTY; size];
            let mut displaced = 0;
            for (index, span) in spans.iter().enumerate() {
                let mut slot = (hash(key_at(span), multiplier) >> shift) as usize;
                while slots[slot] != EMPTY {
                    displaced += 1;
                    slot = (slot + 1) & (size - 1);
                }
                slots[slot] = index as u32;
            }
            if best.as_ref().is_none_or(|(least, _, _)| displaced < *least) {
                best = Some((displaced, multiplier, slots));
            }
            if displaced == 0 {
                break;
            }
        }
        let (_, multiplier, slots) = best.unwrap_or((0, MULTIPLIERS[0], vec![EMPTY; size]));
        Self {
            slots: slots.into(),
            bytes: bytes.into(),
            spans: spans.into(),
            multiplier,
            shift,
        }
    }

    /// The index of `key` in the node's key list, if it is one of them.
    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = (hash(key, self.multiplier) >> self.shift) as usize;
        loop {
            let index = *self.slots.get(slot)?;
            if index == EMPTY {
                return None;
            }
            let &(start, len, _) = self.spans.get(index as usize)?;
            let candidate = self.bytes.get(start as usize..(start + len) as usize)?;
            if candidate.len() == key.len() && candidate.iter().zip(key).all(|(a, b)| a == b) {
                return Some(index as usize);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// [`Self::find`] for a key of `len` (under 8) bytes, given as the low bytes of `word`
    /// (what follows them is ignored): no copy of the key.
    #[inline]
    pub fn find_short(&self, word: u64, len: usize) -> Option<usize> {
        debug_assert!(len < 8);
        if self.slots.is_empty() {
            return None;
        }
        let word = word & ((1u64 << (8 * len)) - 1);
        let hash =
            (word ^ (len as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)).wrapping_mul(self.multiplier);
        let mask = self.slots.len() - 1;
        let mut slot = (hash >> self.shift) as usize;
        loop {
            let index = *self.slots.get(slot)?;
            if index == EMPTY {
                return None;
            }
            if let Some(&(_, key_len, short)) = self.spans.get(index as usize) {
                if short == word && key_len as usize == len {
                    return Some(index as usize);
                }
            }
            slot = (slot + 1) & mask;
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// The most slots a lookup of one of the keys visits.
    #[cfg(test)]
    fn longest_probe(&self) -> usize {
        let mask = self.slots.len().saturating_sub(1);
        (0..self.spans.len())
            .map(|index| {
                let (start, len, _) = self.spans[index];
                let key = &self.bytes[start as usize..(start + len) as usize];
                let home = (hash(key, self.multiplier) >> self.shift) as usize;
                let at = self.slots.iter().position(|&slot| slot as usize == index).unwrap();
                ((at + self.slots.len() - home) & mask) + 1
            })
            .max()
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` below `limit` (exact for the lowest such byte, which is
/// all that is read: a borrow can only mark bytes above a true one).
#[inline(always)]
fn below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(LOW * u64::from(limit)) & !word & HIGH
}

#[inline(always)]
fn equal(word: u64, byte: u8) -> u64 {
    below(word ^ (LOW * u64::from(byte)), 1)
}

/// If the 8 bytes of `word` (little-endian, just after a key's opening quote) hold a whole key
/// that JSON writes as it is, in ASCII (no escape, control or non-ASCII byte before the closing
/// quote): the key's length (under 8). One step instead of a byte loop over the key.
#[inline(always)]
pub fn short_key_len(word: u64) -> Option<usize> {
    let quote = equal(word, b'"');
    if quote == 0 {
        return None;
    }
    let special = (word & HIGH) | equal(word, b'\\') | below(word, 0x20);
    let len = (quote.trailing_zeros() / 8) as usize;
    let special_at = if special == 0 {
        8
    } else {
        (special.trailing_zeros() / 8) as usize
    };
    (len < special_at).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::{short_key_len, KeyTable};

    #[test]
    fn short_keys_are_measured_in_one_step() {
        let word = |bytes: &[u8]| {
            let mut padded = [b'x'; 8];
            padded[..bytes.len()].copy_from_slice(bytes);
            u64::from_le_bytes(padded)
        };
        assert_eq!(short_key_len(word(b"\"abcdefg")), Some(0));
        assert_eq!(short_key_len(word(b"f1\":1.0")), Some(2));
        assert_eq!(short_key_len(word(b"abcdefg\"")), Some(7));
        assert_eq!(short_key_len(word(b"abcdefgh")), None);
        assert_eq!(short_key_len(word(b"a\\\"b\"")), None);
        assert_eq!(short_key_len(word(b"a\n\"")), None);
        assert_eq!(short_key_len(word(&[b'a', 0xC3, 0xA9, b'"'])), None);
        assert_eq!(short_key_len(word(b"ab\"\\")), Some(2));
        assert_eq!(short_key_len(word(&[b'a', b'"', 0x01, 0xFF])), Some(1));
        // Every byte before the quote, and every position of it.
        for len in 0..8 {
            for byte in 0u8..=255 {
                let mut bytes = vec![b'k'; len];
                bytes.push(b'"');
                if len > 0 {
                    bytes[len - 1] = byte;
                }
                let plain =
                    len == 0 || ((0x20..0x80).contains(&byte) && byte != b'\\' && byte != b'"');
                let expected = if len > 0 && byte == b'"' {
                    Some(len - 1)
                } else if plain {
                    Some(len)
                } else {
                    None
                };
                assert_eq!(short_key_len(word(&bytes)), expected, "{bytes:?}");
            }
        }
    }

    #[test]
    fn long_keys_alike_at_both_ends_spread_out() {
        // A vocabulary of codes: the same first and last 8 bytes and length, all of them.
        let words: Vec<String> = (0..2000)
            .map(|index| format!("catalog-item-{index:05}-of-the-season"))
            .collect();
        let table = KeyTable::new(words.iter().map(String::as_str));
        for (index, word) in words.iter().enumerate() {
            assert_eq!(table.find(word.as_bytes()), Some(index), "{word:?}");
        }
        assert_eq!(table.find(b"catalog-item-02000-of-the-season"), None);
        // On their ends alone they would all hash alike, and the last probe 2000 slots.
        assert!(table.longest_probe() <= 16, "{}", table.longest_probe());
    }

    #[test]
    fn finds_every_key_and_nothing_else() {
        for count in [0usize, 1, 2, 3, 7, 8, 9, 31, 32, 33, 127, 128, 129, 500] {
            let keys: Vec<String> = (0..count)
                .map(|index| match index % 4 {
                    0 => format!("f{index}"),
                    1 => format!("a_rather_long_feature_name_{index}"),
                    2 => "x".repeat(index % 20),
                    _ => format!("ключ{index}"),
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let table = KeyTable::new(keys.iter().map(String::as_str));
            assert_eq!(table.len(), keys.len());
            for (index, key) in keys.iter().enumerate() {
                assert_eq!(table.find(key.as_bytes()), Some(index), "{key:?}");
            }
            for absent in ["", "f", "zz", "f1x", "a_rather_long_feature_name_", "ключ"] {
                let expected = keys.iter().position(|key| key == absent);
                assert_eq!(table.find(absent.as_bytes()), expected, "{absent:?}");
            }
        }
    }

    #[test]
    fn keys_sharing_their_ends_are_told_apart() {
        // Same length, same first and last 8 bytes: only the middle differs.
        let keys = [
            "prefix__AAAA__suffix",
            "prefix__BBBB__suffix",
            "prefix__CCCC__suffix",
        ];
        let table = KeyTable::new(keys);
        for (index, key) in keys.iter().enumerate() {
            assert_eq!(table.find(key.as_bytes()), Some(index));
        }
        assert_eq!(table.find(b"prefix__DDDD__suffix"), None);
    }
}
