//! Calendar months (`YYYY-MM`) and strict dates: the units every rule is written in.

use crate::domain::digits::{ascii, fill_padded};
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

    /// `YYYY-MM` for a year of 0..=9999 (zero-padded, as `{:04}` pads it); `None` for a
    /// negative year or one of five digits (arithmetic, `plus` and `from_index`, can
    /// step outside `Month::new`'s years).
    fn fixed_text(self) -> Option<[u8; 7]> {
        let mut text = *b"0000-00";
        let spelt = u32::try_from(self.year)
            .is_ok_and(|year| fill_padded(&mut text[..4], year.into()))
            && fill_padded(&mut text[5..], self.month.into());
        spelt.then_some(text)
    }

    /// Calls `use_text` with the month as `Display` shows it, on the stack where the
    /// year has at most four digits: a month goes into every household a run hashes,
    /// every roster row stored and every run line written and digested, and a `String`
    /// or a formatter for each cost more.
    pub fn with_text<R>(self, use_text: impl FnOnce(&str) -> R) -> R {
        match self.fixed_text() {
            Some(text) => use_text(ascii(&text)),
            None => use_text(&self.to_string()),
        }
    }
}

impl fmt::Display for Month {
    /// `YYYY-MM`, spelt by hand: a month is shown for every household a run hashes and
    /// every line it writes, and `write!` with padded numbers cost several times more.
    /// A negative year or one of five digits is shown by `write!`, never refused.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fixed_text() {
            Some(text) => formatter.pad(ascii(&text)),
            None => write!(formatter, "{:04}-{:02}", self.year, self.month),
        }
    }
}

/// Calls `use_text` with `date` as chrono's `Display` shows it (`YYYY-MM-DD`, the year
/// zero-padded to four digits), spelt on the stack for a year of 0..=9999 and by
/// `Display` for any other. chrono's `Display` writes through a formatter a character
/// at a time, and a roster row's last review date goes through here whenever the row
/// is stored or hashed.
pub fn with_date_text<R>(date: NaiveDate, use_text: impl FnOnce(&str) -> R) -> R {
    let mut text = *b"0000-00-00";
    let spelt = u32::try_from(date.year())
        .is_ok_and(|year| fill_padded(&mut text[..4], year.into()))
        && fill_padded(&mut text[5..7], date.month().into())
        && fill_padded(&mut text[8..], date.day().into());
    if spelt {
        use_text(ascii(&text))
    } else {
        use_text(&date.to_string())
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

    /// `with_text` and `Display` hand over what `write!` with padding spells (the text
    /// every stored month was written in before they were spelt by hand): every month
    /// of `Month::new`'s years, and years outside them.
    #[test]
    fn a_month_text_is_its_padded_format() {
        let months = (YEAR_MIN..=YEAR_MAX)
            .flat_map(|year| (1..=12).map(move |number| Month::new(year, number).unwrap()))
            .chain([999, 1000, 9999, 10_000, -1, 0].map(|year| Month { year, month: 7 }));
        for month in months {
            let padded = format!("{:04}-{:02}", month.year, month.month);
            assert_eq!(month.with_text(str::to_string), padded);
            assert_eq!(month.to_string(), padded);
        }
    }

    /// `with_date_text` hands over chrono's `Display` text (what every stored date was
    /// written as before it was spelt on the stack): every day of 1900..=2199, years 0,
    /// 999 and 9999 (on the stack), and -1, 10000 and chrono's own limits, which take
    /// `Display` itself.
    #[test]
    fn a_date_text_is_chronos_display() {
        let mut day = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(2199, 12, 31).unwrap();
        while day <= last {
            assert_eq!(with_date_text(day, str::to_string), day.to_string());
            day = day.succ_opt().unwrap();
        }
        for (year, month, day) in [
            (999, 12, 31),
            (1000, 1, 1),
            (9999, 12, 31),
            (10_000, 1, 1),
            (-1, 6, 5),
            (0, 2, 29),
        ] {
            let date = NaiveDate::from_ymd_opt(year, month, day).unwrap();
            assert_eq!(
                with_date_text(date, str::to_string),
                date.to_string(),
                "{year}"
            );
        }
        for date in [NaiveDate::MIN, NaiveDate::MAX] {
            assert_eq!(with_date_text(date, str::to_string), date.to_string());
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
