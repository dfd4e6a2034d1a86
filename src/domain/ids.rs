//! Identifiers with their preconditions in the type: resident ID numbers (GB 11643),
//! bank account numbers (Luhn for cards), CNAPS bank codes, region codes, household ids.
//!
//! Each `parse` is the only way to build the type, so a value that exists is valid.

use std::fmt;

/// Why an identifier was refused. Messages never echo the whole value (P13): the
/// caller shows a masked value beside the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("resident ID must be 18 characters: 17 digits and a digit or X")]
    IdNumberShape,
    #[error("resident ID check digit is wrong (GB 11643)")]
    IdNumberCheckDigit,
    #[error("resident ID birth date is not a real date")]
    IdNumberBirthDate,
    #[error("account number must be 8 to 32 digits")]
    AccountShape,
    #[error("card number fails the Luhn check")]
    AccountLuhn,
    #[error("bank code must be a 12-digit CNAPS participant code")]
    BankCodeShape,
    #[error("region code must be 6 digits (GB/T 2260)")]
    RegionCodeShape,
    #[error("household id must be 1 to 32 characters of letters, digits, '-' or '_'")]
    HouseholdIdShape,
}

/// An 18-character resident identity number whose check digit is right.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResidentId(String);

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK_CHARS: [u8; 11] = *b"10X98765432";

impl ResidentId {
    /// Parses and verifies: 17 digits, a check character (`x` is read as `X`), a real
    /// birth date in positions 7–14, and the GB 11643 MOD 11-2 check digit.
    pub fn parse(text: &str) -> Result<ResidentId, IdError> {
        let upper = text.trim().to_ascii_uppercase();
        let bytes = upper.as_bytes();
        if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
            return Err(IdError::IdNumberShape);
        }
        if !(bytes[17].is_ascii_digit() || bytes[17] == b'X') {
            return Err(IdError::IdNumberShape);
        }
        if !is_calendar_date(&bytes[6..14]) {
            return Err(IdError::IdNumberBirthDate);
        }
        if bytes[17] != resident_id_check_char(&bytes[..17]) {
            return Err(IdError::IdNumberCheckDigit);
        }
        Ok(ResidentId(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether eight ASCII digits `YYYYMMDD` are a real date. By hand, not by chrono's
/// `parse_from_str` with `%Y%m%d`, which walks its format items for every ID number
/// read (issue #7: 1% of a run's computation); the same dates pass.
fn is_calendar_date(digits: &[u8]) -> bool {
    assert!(
        digits.len() == 8 && digits.iter().all(u8::is_ascii_digit),
        "a birth date is eight digits"
    );
    let number = |range: std::ops::Range<usize>| {
        digits[range]
            .iter()
            .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'))
    };
    let year = i32::try_from(number(0..4)).expect("four digits fit an i32");
    chrono::NaiveDate::from_ymd_opt(year, number(4..6), number(6..8)).is_some()
}

/// The GB 11643 check character for the first 17 digits.
pub fn resident_id_check_char(first_seventeen: &[u8]) -> u8 {
    assert_eq!(
        first_seventeen.len(),
        17,
        "GB 11643 checks exactly 17 digits"
    );
    let sum: u32 = first_seventeen
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(digit, weight)| u32::from(digit - b'0') * weight)
        .sum();
    ID_CHECK_CHARS[(sum % 11) as usize]
}

/// Whether an account number is a bank card (Luhn-checked) or a passbook/legacy
/// account (accepted with a warning, CONTRACTS §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountKind {
    Card,
    Passbook,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Card => "card",
            AccountKind::Passbook => "passbook",
        }
    }
}

/// A household's account number: digits only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountNumber {
    digits: String,
    kind: AccountKind,
}

impl AccountNumber {
    /// Card numbers (16–19 digits starting 62, 4, 5 or 3) must pass Luhn; any other
    /// 8–32 digit number is a passbook or legacy account.
    pub fn parse(text: &str) -> Result<AccountNumber, IdError> {
        let digits = text.trim();
        if !(8..=32).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::AccountShape);
        }
        let looks_like_card = (16..=19).contains(&digits.len())
            && (digits.starts_with("62") || digits.starts_with(['3', '4', '5']));
        if !looks_like_card {
            return Ok(AccountNumber {
                digits: digits.to_string(),
                kind: AccountKind::Passbook,
            });
        }
        if !luhn_valid(digits) {
            return Err(IdError::AccountLuhn);
        }
        Ok(AccountNumber {
            digits: digits.to_string(),
            kind: AccountKind::Card,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.digits
    }

    pub fn kind(&self) -> AccountKind {
        self.kind
    }
}

/// The Luhn (mod 10) check over a string of ASCII digits.
pub fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, byte)| {
            let digit = u32::from(byte - b'0');
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                digit
            }
        })
        .sum();
    sum % 10 == 0
}

/// The Luhn check digit that completes `digits_without_check`.
pub fn luhn_check_digit(digits_without_check: &str) -> char {
    (b'0'..=b'9')
        .map(char::from)
        .find(|candidate| luhn_valid(&format!("{digits_without_check}{candidate}")))
        .expect("one of ten digits completes any Luhn number")
}

macro_rules! digit_code {
    ($name:ident, $len:expr, $error:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<$name, IdError> {
                let text = text.trim();
                if text.len() != $len || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err($error);
                }
                Ok($name(text.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
    };
}

digit_code!(
    BankCode,
    12,
    IdError::BankCodeShape,
    "A 12-digit CNAPS participant code; its first three digits are the bank class."
);
digit_code!(
    RegionCode,
    6,
    IdError::RegionCodeShape,
    "A 6-digit GB/T 2260 region code."
);

impl BankCode {
    /// The bank class: `102` ICBC, `402` rural credit cooperative, `314` rural commercial…
    pub fn class(&self) -> &str {
        &self.0[..3]
    }
}

/// Civil affairs' household id: 1–32 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HouseholdId(String);

impl HouseholdId {
    pub fn parse(text: &str) -> Result<HouseholdId, IdError> {
        let text = text.trim();
        let ok = (1..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(IdError::HouseholdIdShape);
        }
        Ok(HouseholdId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written date check accepts exactly what chrono's `%Y%m%d` accepted:
    /// every day, month 00 to 14 and year of a set that covers leap rules and the
    /// ends of the four-digit range.
    #[test]
    fn birth_dates_are_the_dates_chrono_accepted() {
        let mut checked = 0;
        for year in [
            0, 1, 4, 100, 400, 1900, 1949, 1996, 2000, 2023, 2024, 2100, 9999,
        ] {
            for month in 0..=14 {
                for day in 0..=33 {
                    let text = format!("{year:04}{month:02}{day:02}");
                    let chrono_says = chrono::NaiveDate::parse_from_str(&text, "%Y%m%d").is_ok();
                    assert_eq!(is_calendar_date(text.as_bytes()), chrono_says, "{text}");
                    checked += usize::from(chrono_says);
                }
            }
        }
        assert_eq!(checked, 13 * 365 + 6, "thirteen years, six of them leap");
    }

    #[test]
    fn resident_id_numbers() {
        let cases: &[(&str, Result<(), IdError>)] = &[
            ("11010519491231002X", Ok(())),
            ("11010519491231002x", Ok(())),
            ("110105194912310021", Err(IdError::IdNumberCheckDigit)),
            ("11010519491331002X", Err(IdError::IdNumberBirthDate)),
            ("1101051949123100", Err(IdError::IdNumberShape)),
            ("11010519491231002Y", Err(IdError::IdNumberShape)),
        ];
        for (text, expected) in cases {
            assert_eq!(ResidentId::parse(text).map(|_| ()), *expected, "{text}");
        }
    }

    #[test]
    fn account_numbers() {
        assert_eq!(
            AccountNumber::parse("6222020200001234567").map(|a| a.kind()),
            Err(IdError::AccountLuhn)
        );
        let valid = format!(
            "622202020000123456{}",
            luhn_check_digit("622202020000123456")
        );
        assert_eq!(
            AccountNumber::parse(&valid).unwrap().kind(),
            AccountKind::Card
        );
        assert_eq!(
            AccountNumber::parse("12345678901").unwrap().kind(),
            AccountKind::Passbook
        );
        assert_eq!(AccountNumber::parse("1234567"), Err(IdError::AccountShape));
        assert_eq!(
            AccountNumber::parse("6222-0202"),
            Err(IdError::AccountShape)
        );
        assert!(luhn_valid("79927398713"));
    }

    #[test]
    fn codes() {
        assert_eq!(BankCode::parse("402221000015").unwrap().class(), "402");
        assert!(BankCode::parse("40222100001").is_err());
        assert!(RegionCode::parse("210102").is_ok());
        assert!(RegionCode::parse("21010A").is_err());
        assert!(HouseholdId::parse("H-0001_a").is_ok());
        assert!(HouseholdId::parse("H 1").is_err());
        assert!(HouseholdId::parse(&"a".repeat(33)).is_err());
    }
}
