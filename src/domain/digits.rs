//! Fixed-width decimal digits spelt by hand, for the texts made once per row (months,
//! dates, end-to-end ids): `write!` with zero padding costs several times more there.

/// Writes `value` into `field` as decimal digits, zero-padded on the left to the
/// field's width. Returns `false`, and leaves `field` as it was, when `value` has more
/// digits than the field holds (every value has at least one, so an empty field holds
/// none).
pub fn fill_padded(field: &mut [u8], value: u64) -> bool {
    // By hand rather than through `itoa` and a copy: `itoa` cost import 0.7% more
    // instructions (callgrind, 20k roster).
    let fits = !field.is_empty()
        && u32::try_from(field.len())
            .ok()
            .and_then(|width| 10u64.checked_pow(width))
            .is_none_or(|limit| value < limit);
    if !fits {
        return false;
    }
    let mut rest = value;
    for place in field.iter_mut().rev() {
        *place = b'0' + u8::try_from(rest % 10).expect("a decimal digit");
        rest /= 10;
    }
    assert_eq!(rest, 0, "a value that fits leaves no digit over");
    true
}

/// The text of a fixed-width field: digits and separators, so always UTF-8.
pub fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("digits and separators are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_a_field_with_padded_digits_or_leaves_it_alone() {
        for (width, value, expected) in [
            (1, 0, Some("0")),
            (1, 9, Some("9")),
            (1, 10, None),
            (2, 7, Some("07")),
            (4, 2026, Some("2026")),
            (6, 999_999, Some("999999")),
            (6, 1_000_000, None),
            (8, 1, Some("00000001")),
            (8, 99_999_999, Some("99999999")),
            (8, 100_000_000, None),
            (0, 0, None),
            (19, 9_999_999_999_999_999_999, Some("9999999999999999999")),
            (19, 10_000_000_000_000_000_000, None),
            (20, 0, Some("00000000000000000000")),
            (20, u64::MAX, Some("18446744073709551615")),
            (21, 5, Some("000000000000000000005")),
        ] {
            let mut field = vec![b'x'; width];
            let filled = fill_padded(&mut field, value);
            match expected {
                Some(text) => {
                    assert!(filled, "{value} in {width}");
                    assert_eq!(ascii(&field), text);
                    assert_eq!(ascii(&field), format!("{value:0width$}"));
                }
                None => {
                    assert!(!filled, "{value} in {width}");
                    assert!(field.iter().all(|&b| b == b'x'), "left as it was");
                }
            }
        }
    }
}
