//! Calendar months (`YYYY-MM`) and strict dates: the units every rule is written in.

use chrono::{Datelike, NaiveDate};
use std::fmt;

/// A calendar month. Ordered; `index` counts months from year 0 so that differences
/// between months are plain integer subtraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

/// Why a month or date text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("not a month: expected YYYY-MM")]
    MalformedMonth,
    #[error("not a date: expected YYYY-MM-DD")]
    MalformedDate,
    #[error("no such day in the calendar")]
    NoSuchDay,
    #[error("year outside 1900..=2199")]
    YearOutOfRange,
}

const YEAR_MIN: i32 = 1900;
const YEAR_MAX: i32 = 2199;

impl Month {
    pub fn new(year: i32, month: u32) -> Result<Month, CalendarError> {
        if !(YEAR_MIN..=YEAR_MAX).contains(&year) {
            return Err(CalendarError::YearOutOfRange);
        }
        if !(1..=12).contains(&month) {
            return Err(CalendarError::MalformedMonth);
        }
        Ok(Month { year, month })
    }

    /// Parses exactly `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Month, CalendarError> {
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 7
            && bytes[4] == b'-'
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[5..].iter().all(u8::is_ascii_digit);
        if !shape_ok {
            return Err(CalendarError::MalformedMonth);
        }
        let year = text[..4]
            .parse()
            .map_err(|_| CalendarError::MalformedMonth)?;
        let month = text[5..]
            .parse()
            .map_err(|_| CalendarError::MalformedMonth)?;
        Month::new(year, month)
    }

    pub fn of_date(date: NaiveDate) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    /// Months since January of year 0.
    pub fn index(self) -> i64 {
        i64::from(self.year) * 12 + i64::from(self.month) - 1
    }

    pub fn from_index(index: i64) -> Month {
        let year = i32::try_from(index.div_euclid(12)).expect("month index within i32 years");
        let month = u32::try_from(index.rem_euclid(12) + 1).expect("month in 1..=12");
        Month { year, month }
    }

    /// This month plus `months` (may be negative).
    pub fn plus(self, months: i64) -> Month {
        Month::from_index(self.index() + months)
    }

    /// Number of months from `earlier` to `self` (negative if `earlier` is later).
    pub fn months_since(self, earlier: Month) -> i64 {
        self.index() - earlier.index()
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("first day of a valid month")
    }

    pub fn last_day(self) -> NaiveDate {
        self.plus(1)
            .first_day()
            .pred_opt()
            .expect("day before a first day exists")
    }

    /// `YYYYMM`, for identifiers.
    pub fn compact(self) -> String {
        format!("{:04}{:02}", self.year, self.month)
    }
}

impl fmt::Display for Month {
    /// `YYYY-MM`, spelt by hand: a month is shown for every household a run hashes and
    /// every line it writes, and `write!` with padded numbers cost several times more.
    /// Arithmetic (`plus`, `from_index`) can step outside `Month::new`'s years; a year
    /// without exactly four digits is shown by `write!`, never refused.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(year @ 1000..=9999) = u32::try_from(self.year) else {
            return write!(formatter, "{:04}-{:02}", self.year, self.month);
        };
        let mut text = *b"0000-00";
        for (position, value) in [(0, year / 100), (2, year % 100), (5, self.month)] {
            let value = u8::try_from(value).expect("two digits");
            assert!(value < 100, "a month's fields are two-digit pairs");
            text[position] = b'0' + value / 10;
            text[position + 1] = b'0' + value % 10;
        }
        formatter.pad(std::str::from_utf8(&text).expect("digits and a hyphen are ASCII"))
    }
}

/// Parses exactly `YYYY-MM-DD` and checks the day exists (2026-02-30 is refused).
pub fn parse_date(text: &str) -> Result<NaiveDate, CalendarError> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return Err(CalendarError::MalformedDate);
    }
    let year: i32 = text[..4]
        .parse()
        .map_err(|_| CalendarError::MalformedDate)?;
    let month: u32 = text[5..7]
        .parse()
        .map_err(|_| CalendarError::MalformedDate)?;
    let day: u32 = text[8..]
        .parse()
        .map_err(|_| CalendarError::MalformedDate)?;
    if !(YEAR_MIN..=YEAR_MAX).contains(&year) {
        return Err(CalendarError::YearOutOfRange);
    }
    NaiveDate::from_ymd_opt(year, month, day).ok_or(CalendarError::NoSuchDay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every month that can exist is shown as `write!` with padding would show it,
    /// and parses back to itself.
    #[test]
    fn every_month_is_shown_as_yyyy_mm_and_parses_back() {
        for year in YEAR_MIN..=YEAR_MAX {
            for number in 1..=12 {
                let month = Month::new(year, number).unwrap();
                let shown = month.to_string();
                assert_eq!(shown, format!("{year:04}-{number:02}"));
                assert_eq!(Month::parse(&shown), Ok(month));
            }
        }
        assert_eq!(
            format!("[{:>9}]", Month::new(2026, 1).unwrap()),
            "[  2026-01]"
        );
        for (year, shown) in [(999, "0999-03"), (10_000, "10000-03"), (-1, "-001-03")] {
            assert_eq!(Month { year, month: 3 }.to_string(), shown);
        }
    }

    #[test]
    fn parses_months_and_dates_strictly() {
        assert_eq!(Month::parse("2026-11").unwrap().to_string(), "2026-11");
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "",
            "2026-11-01",
        ] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_date("2024-02-29").is_ok());
        assert_eq!(parse_date("2026-02-29"), Err(CalendarError::NoSuchDay));
        assert_eq!(parse_date("2026-2-01"), Err(CalendarError::MalformedDate));
    }

    proptest! {
        // FAILURES #16: month arithmetic and month ends are right across 2000..2100.
        #[test]
        fn month_arithmetic_round_trips(year in 2000i32..2100, month in 1u32..=12, delta in -240i64..240) {
            let start = Month::new(year, month).unwrap();
            let moved = start.plus(delta);
            prop_assert_eq!(moved.months_since(start), delta);
            prop_assert_eq!(moved.plus(-delta), start);
            let last = start.last_day();
            prop_assert_eq!(Month::of_date(last), start);
            prop_assert_eq!(Month::of_date(last.succ_opt().unwrap()), start.plus(1));
        }
    }
}
