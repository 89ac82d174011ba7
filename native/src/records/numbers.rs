//! Numbers: the scanner's number reader, and the word-at-a-time and correctly rounded steps
//! it is made of.

use crate::schema::Scalar;

use super::scanner::{text_at, Scan, Scanner};
use super::SyntaxError;

/// 10^0 to 10^22: the powers of ten that a float64 holds exactly.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl<'a> Scanner<'a> {
    /// Reads a number (the position on its first byte) as JSON's grammar has it. Integers that
    /// fit 64 bits stay integers (as in `json.loads`); others, and all numbers with a fraction
    /// or exponent, become the correctly rounded float64. The commonest short numbers take
    /// [`short_number`]; the rest, the general reader ([`Self::number_or_skip`]).
    #[inline(always)]
    pub(super) fn number(&mut self) -> Scan<Scalar<'a>> {
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
    pub(super) fn number_or_skip<const DECODE: bool>(&mut self) -> Scan<Scalar<'a>> {
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
            return Some((
                Scalar::Int(if negative { -value } else { value }),
                start + after,
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

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
            "0",
            "-0",
            "-0.0",
            "0.5",
            "00",
            "01",
            "-01.5",
            "00.5",
            "1.",
            "-",
            "-.5",
            ".5",
            "1.e5",
            "1.5e3",
            "1E5",
            "7e",
            "1234567",
            "12345678",
            "-1234567.1234567",
            "1234567.12345678",
            "12345678.5",
            "0.1234567",
            "0.12345678",
            "9999999.9999999",
            "1.5x",
            "12a",
            "1-2",
            "1..2",
            "1.2.3",
            "-x",
            "1.5E-3",
            "+1",
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
}
