//! Which values occur more than once among many (accounts or ID numbers that several
//! households share), counted exactly in 16 bytes a value instead of a sorted SQL group.
//!
//! PURE. Why: SQLite found the month's shared accounts and shared ID numbers with two
//! grouped scans, each sorting every household's value as text; at a million households
//! that was about a sixth of the run's computation (issue #7). A value made of digits
//! and `X` (every account number and resident ID the import accepts) is packed into a
//! `u128` one to one, and a sort of those numbers finds the repeats; any other value is
//! counted by its text, so the answer is exact for every input.

use std::collections::{HashMap, HashSet};

/// The longest value packed into a number: 35 base-12 digits stay below 2¹²⁸
/// (12³⁵ ≈ 5.9 × 10³⁷). Account numbers have at most 32 digits, ID numbers 18.
const PACKED_CHARS_MAX: usize = 35;

/// The values seen so far, to be asked which occurred more than once.
#[derive(Debug, Default)]
pub struct RepeatedValues {
    packed: Vec<u128>,
    /// Values that do not pack, by text: whether each was seen more than once.
    unpacked: HashMap<String, bool>,
}

impl RepeatedValues {
    /// An empty set with room for `values` packed values, so a known count never
    /// makes the vector double (and briefly hold twice its size).
    pub fn with_capacity(values: usize) -> RepeatedValues {
        RepeatedValues {
            packed: Vec::with_capacity(values),
            unpacked: HashMap::new(),
        }
    }

    /// Counts one more occurrence of `value`.
    pub fn see(&mut self, value: &str) {
        match pack(value) {
            Some(packed) => self.packed.push(packed),
            None => {
                if let Some(repeated) = self.unpacked.get_mut(value) {
                    *repeated = true;
                } else {
                    self.unpacked.insert(value.to_string(), false);
                }
            }
        }
    }

    /// Every value seen more than once.
    pub fn finish(mut self) -> HashSet<String> {
        self.packed.sort_unstable();
        let mut repeated: HashSet<String> = self
            .packed
            .chunk_by(|left, right| left == right)
            .filter(|run| run.len() > 1)
            .map(|run| unpack(run[0]))
            .collect();
        repeated.extend(
            self.unpacked
                .into_iter()
                .filter_map(|(value, seen_again)| seen_again.then_some(value)),
        );
        repeated
    }
}

/// `value` as a base-12 number whose digits are 1 (for `0`) to 10 (for `9`) and 11
/// (for `X`). No digit is 0, so no two strings share a number: `"01"` and `"1"` differ.
fn pack(value: &str) -> Option<u128> {
    if value.is_empty() || value.len() > PACKED_CHARS_MAX {
        return None;
    }
    value.bytes().try_fold(0u128, |packed, byte| {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0' + 1,
            b'X' => 11,
            _ => return None,
        };
        Some(packed * 12 + u128::from(digit))
    })
}

/// The string `pack` made `packed` from.
fn unpack(mut packed: u128) -> String {
    let mut reversed = Vec::with_capacity(PACKED_CHARS_MAX);
    while packed > 0 {
        let digit = u8::try_from(packed % 12).expect("a base-12 digit fits a byte");
        assert!(digit != 0, "a packed value has no zero digit");
        reversed.push(if digit == 11 { b'X' } else { b'0' + digit - 1 });
        packed /= 12;
    }
    reversed.reverse();
    String::from_utf8(reversed).expect("packed values are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn repeated(values: &[&str]) -> Vec<String> {
        let mut seen = RepeatedValues::default();
        for value in values {
            seen.see(value);
        }
        let mut found: Vec<String> = seen.finish().into_iter().collect();
        found.sort();
        found
    }

    #[test]
    fn repeats_are_found_exactly_whether_or_not_a_value_packs() {
        let max_digits = "9".repeat(PACKED_CHARS_MAX);
        let one_too_long = "9".repeat(PACKED_CHARS_MAX + 1);
        let cases: &[(&[&str], &[&str], &str)] = &[
            (&[], &[], "nothing seen"),
            (&["6222021234567890123"], &[], "a value once"),
            (
                &["6222021234567890123", "6222021234567890123"],
                &["6222021234567890123"],
                "an account twice",
            ),
            (&["01", "001", "1"], &[], "leading zeros make values differ"),
            (&["0", "0", "00"], &["0"], "zero itself"),
            (
                &[
                    "11010519491231002X",
                    "11010519491231002X",
                    "110105194912310021",
                ],
                &["11010519491231002X"],
                "an ID number with X",
            ),
            (&["x1", "X1", "x1"], &["x1"], "lower-case x does not pack"),
            (
                &[&max_digits, &max_digits, &one_too_long, &one_too_long],
                &[&max_digits, &one_too_long],
                "the longest packed value and one past it",
            ),
            (
                &["", "", "AC-1", "AC-1", "张三"],
                &["", "AC-1"],
                "values that do not pack",
            ),
            (&["7", "7", "7"], &["7"], "three times is reported once"),
        ];
        for (values, expected, case) in cases {
            let expected: Vec<String> = expected.iter().map(|value| value.to_string()).collect();
            assert_eq!(repeated(values), expected, "{case}");
        }
    }

    #[test]
    fn packing_round_trips_the_longest_value() {
        let longest = "X".repeat(PACKED_CHARS_MAX);
        assert_eq!(unpack(pack(&longest).unwrap()), longest);
        assert_eq!(pack(&"X".repeat(PACKED_CHARS_MAX + 1)), None);
    }

    proptest! {
        /// The same answer as counting every value by its text.
        #[test]
        fn repeats_match_counting_by_text(values in proptest::collection::vec("[0-9X]{0,3}|[0-9aX-]{1,3}|9{34,37}", 0..60)) {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for value in &values {
                *counts.entry(value.as_str()).or_default() += 1;
            }
            let mut expected: Vec<String> = counts
                .into_iter()
                .filter(|(_, count)| *count > 1)
                .map(|(value, _)| value.to_string())
                .collect();
            expected.sort();
            let borrowed: Vec<&str> = values.iter().map(String::as_str).collect();
            prop_assert_eq!(repeated(&borrowed), expected);
        }
    }
}
