//! Money as integer fen (分): the only money type in storage, files and totals.
//!
//! Why a newtype: a bare `i64` can be mistaken for a count or a yuan figure; `Fen`
//! cannot. Arithmetic is checked so an overflow is an error, never a wrap.

use std::fmt;

/// An amount of money in fen (1 yuan = 100 fen). May be negative only where a
/// difference is meant (reconciliation); amounts read from files are never negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fen(i64);

/// The largest single amount any input may carry: 100 million yuan. A household's
/// monthly allowance is a few hundred yuan; anything near this is a typing error,
/// and the limit keeps every total of up to 10^8 lines far from `i64` overflow.
pub const AMOUNT_FEN_MAX: i64 = 10_000_000_000;

/// Why a yuan text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("empty amount")]
    Empty,
    #[error("not a yuan amount (digits with at most 2 decimals, e.g. 523.40)")]
    Malformed,
    #[error("more than 2 decimals")]
    TooManyDecimals,
    #[error("negative amounts are not allowed here")]
    Negative,
    #[error("above the limit of 100000000.00 yuan")]
    TooLarge,
}

impl Fen {
    pub const ZERO: Fen = Fen(0);

    pub const fn new(fen: i64) -> Fen {
        Fen(fen)
    }

    pub const fn as_i64(self) -> i64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses a non-negative yuan amount such as `523.4`, `523.40` or `523`.
    /// No sign, no exponent, no thousands separators, at most two decimals.
    pub fn parse_yuan(text: &str) -> Result<Fen, AmountError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        if text.starts_with('-') {
            return Err(AmountError::Negative);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (text, ""),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Malformed);
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) || (text.ends_with('.')) {
            return Err(AmountError::Malformed);
        }
        if fraction.len() > 2 {
            return Err(AmountError::TooManyDecimals);
        }
        if whole.len() > 12 {
            return Err(AmountError::TooLarge);
        }
        let whole_fen: i64 = whole.parse::<i64>().map_err(|_| AmountError::Malformed)? * 100;
        let fraction_fen: i64 = match fraction.len() {
            0 => 0,
            1 => {
                fraction
                    .parse::<i64>()
                    .map_err(|_| AmountError::Malformed)?
                    * 10
            }
            _ => fraction
                .parse::<i64>()
                .map_err(|_| AmountError::Malformed)?,
        };
        let fen = whole_fen + fraction_fen;
        if fen > AMOUNT_FEN_MAX {
            return Err(AmountError::TooLarge);
        }
        Ok(Fen(fen))
    }

    /// Checked sum; `None` on overflow (callers turn that into a hard error).
    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        self.0.checked_sub(other.0).map(Fen)
    }

    /// Sum that panics on overflow. Used for totals whose parts are each bounded by
    /// `AMOUNT_FEN_MAX` and whose count is bounded, so overflow means a broken invariant.
    pub fn plus(self, other: Fen) -> Fen {
        self.checked_add(other)
            .expect("fen overflow: a total exceeded i64")
    }

    pub fn minus(self, other: Fen) -> Fen {
        self.checked_sub(other)
            .expect("fen overflow: a difference exceeded i64")
    }

    pub fn min(self, other: Fen) -> Fen {
        Fen(self.0.min(other.0))
    }

    pub fn max(self, other: Fen) -> Fen {
        Fen(self.0.max(other.0))
    }

    /// Yuan with exactly two decimals, e.g. `523.40`, `-0.05`.
    pub fn to_yuan_string(self) -> String {
        self.to_string()
    }
}

impl Fen {
    /// Appends the amount as `Display` writes it (`-12.05`), without the formatting
    /// machinery: run digests write several amounts per line, a million lines a run.
    pub fn push_yuan(self, out: &mut Vec<u8>) {
        if self.0 < 0 {
            out.push(b'-');
        }
        let magnitude = self.0.unsigned_abs();
        out.extend_from_slice(itoa::Buffer::new().format(magnitude / 100).as_bytes());
        let cents = (magnitude % 100) as u8;
        out.extend_from_slice(&[b'.', b'0' + cents / 10, b'0' + cents % 10]);
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        write!(
            formatter,
            "{sign}{}.{:02}",
            magnitude / 100,
            magnitude % 100
        )
    }
}

impl std::iter::Sum for Fen {
    fn sum<I: Iterator<Item = Fen>>(iter: I) -> Fen {
        iter.fold(Fen::ZERO, Fen::plus)
    }
}

#[cfg(test)]
mod push_yuan_tests {
    use super::Fen;

    proptest::proptest! {
        #[test]
        fn push_yuan_writes_what_display_writes(fen in proptest::num::i64::ANY) {
            let mut out = Vec::new();
            Fen::new(fen).push_yuan(&mut out);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), Fen::new(fen).to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_yuan() {
        let cases: &[(&str, Result<i64, AmountError>)] = &[
            ("523.40", Ok(52340)),
            ("523.4", Ok(52340)),
            ("523", Ok(52300)),
            ("0.05", Ok(5)),
            ("0", Ok(0)),
            (" 12.00 ", Ok(1200)),
            ("", Err(AmountError::Empty)),
            ("1.234", Err(AmountError::TooManyDecimals)),
            ("-1.00", Err(AmountError::Negative)),
            ("1,000.00", Err(AmountError::Malformed)),
            ("1e3", Err(AmountError::Malformed)),
            ("12.", Err(AmountError::Malformed)),
            (".5", Err(AmountError::Malformed)),
            ("+5", Err(AmountError::Malformed)),
            ("100000000.01", Err(AmountError::TooLarge)),
            ("9999999999999999999", Err(AmountError::TooLarge)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                Fen::parse_yuan(text).map(Fen::as_i64),
                *expected,
                "input {text:?}"
            );
        }
        assert_eq!(Fen::new(-5).to_string(), "-0.05");
        assert_eq!(Fen::new(52340).to_string(), "523.40");
        assert_eq!(Fen::new(0).to_string(), "0.00");
    }
}
