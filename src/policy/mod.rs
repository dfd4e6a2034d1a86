//! The payout policy (P3–P11, P15) as plain functions over data: the configured
//! standards and supplements, rounding, and the calculation of one household-month.
//!
//! **Invariants:** no IO; money in `Fen`; `rust_decimal` only to apply a share or a
//! percentage, always followed by a named rounding (`Rounding::apply` half up to the fen
//! or yuan, or `floor_to_unit` for a cap that must never be exceeded).

pub mod calc;

use crate::domain::household::Area;
use crate::domain::money::Fen;
use crate::domain::month::Month;
use rust_decimal::{Decimal, RoundingStrategy};

/// Where computed amounts are rounded (CONTRACTS §2.5): half up, to the fen or to the yuan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    Fen,
    Yuan,
}

impl Rounding {
    fn unit_fen(self) -> i64 {
        match self {
            Rounding::Fen => 1,
            Rounding::Yuan => 100,
        }
    }

    /// Rounds an exact amount in fen half up (away from zero) to the unit.
    pub fn apply(self, exact_fen: Decimal) -> Fen {
        self.round_with(exact_fen, RoundingStrategy::MidpointAwayFromZero)
    }

    /// Rounds down to the unit: for caps, which must never be exceeded (P10).
    pub fn floor_to_unit(self, exact_fen: Decimal) -> Fen {
        self.round_with(exact_fen, RoundingStrategy::ToZero)
    }

    fn round_with(self, exact_fen: Decimal, strategy: RoundingStrategy) -> Fen {
        let unit = Decimal::from(self.unit_fen());
        let units = (exact_fen / unit).round_dp_with_strategy(0, strategy);
        let fen = units * unit;
        Fen::new(i64::try_from(fen).expect("a rounded amount of fen fits in i64"))
    }
}

/// What a flag does to a line: shown to the approver, or the line is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagAction {
    Warn,
    Hold,
}

/// A local standard: yuan per person per month for a region prefix and area, from a month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standard {
    pub region_prefix: String,
    pub area: Area,
    pub from: Month,
    pub yuan_per_person: Fen,
}

/// Classified assistance per member in a class (P5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupplementRule {
    None,
    ShareOfStandard(Decimal),
    Fixed(Fen),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Supplement {
    pub elderly: SupplementRule,
    pub minors: SupplementRule,
    pub severely_disabled: SupplementRule,
    pub seriously_ill: SupplementRule,
}

/// The region's policy, validated (see `config`).
#[derive(Clone, Debug)]
pub struct Policy {
    pub taper_months_default: u32,
    pub recovery_cap_share: Decimal,
    pub rounding: Rounding,
    pub overdue_action: FlagAction,
    pub overdue_grace_days: u32,
    pub standards: Vec<Standard>,
    pub supplement: Supplement,
    /// For each flag name, whether it warns or holds the line.
    pub flag_actions: Vec<(&'static str, FlagAction)>,
    /// A payable above this multiple of (standard × members) is flagged.
    pub amount_flag_multiple: Decimal,
}

/// Flag names, as they appear in `run lines` (`;`-separated).
pub mod flag {
    pub const STAFF_RELATIVE: &str = "staff_relative";
    pub const REVIEW_OVERDUE: &str = "review_overdue";
    pub const SHARED_ACCOUNT: &str = "shared_account";
    pub const SHARED_ID_NUMBER: &str = "shared_id_number";
    pub const DEATH_ON_ROSTER: &str = "death_on_roster";
    pub const AMOUNT_ABOVE_MULTIPLE: &str = "amount_above_multiple";
    pub const NO_STANDARD: &str = "no_standard";
    pub const PASSBOOK_ACCOUNT: &str = "passbook_account";
    /// The bank refused the account this line would pay (AC01/AC04/AC06/BE01): held
    /// until civil affairs sends a corrected account (a new roster version).
    pub const ACCOUNT_FAILED: &str = "account_failed";
    /// The bank reported the account holder deceased (MD07).
    pub const BANK_REPORTED_DECEASED: &str = "bank_reported_deceased";
}

impl Policy {
    /// Defaults: P15 staff relatives are shown to auditors (warn); one account or one ID
    /// number in several households holds the lines until someone looks; a death stop
    /// while still on the roster warns (the line is stopped anyway); an amount far above
    /// the standard holds; a missing standard always holds.
    pub fn default_flag_actions(overdue: FlagAction) -> Vec<(&'static str, FlagAction)> {
        vec![
            (flag::STAFF_RELATIVE, FlagAction::Warn),
            (flag::REVIEW_OVERDUE, overdue),
            (flag::SHARED_ACCOUNT, FlagAction::Hold),
            (flag::SHARED_ID_NUMBER, FlagAction::Hold),
            (flag::DEATH_ON_ROSTER, FlagAction::Warn),
            (flag::AMOUNT_ABOVE_MULTIPLE, FlagAction::Hold),
            (flag::NO_STANDARD, FlagAction::Hold),
            (flag::PASSBOOK_ACCOUNT, FlagAction::Warn),
            (flag::ACCOUNT_FAILED, FlagAction::Hold),
            (flag::BANK_REPORTED_DECEASED, FlagAction::Hold),
        ]
    }

    /// What a flag does; flags not in the table (informational ones such as
    /// `taper:2/6`) only warn.
    pub fn action_of(&self, flag_name: &str) -> FlagAction {
        self.flag_actions
            .iter()
            .find(|(name, _)| *name == flag_name)
            .map_or(FlagAction::Warn, |(_, action)| *action)
    }

    /// The standard for a region, area and month: the longest matching region prefix,
    /// then the latest `from` not after the month (CONTRACTS §2.5).
    pub fn standard_for(&self, region_code: &str, area: Area, month: Month) -> Option<Fen> {
        self.standards
            .iter()
            .filter(|s| {
                s.area == area && s.from <= month && region_code.starts_with(&s.region_prefix)
            })
            .max_by_key(|s| (s.region_prefix.len(), s.from))
            .map(|s| s.yuan_per_person)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn standard(prefix: &str, from: &str, yuan: i64) -> Standard {
        Standard {
            region_prefix: prefix.into(),
            area: Area::Urban,
            from: Month::parse(from).unwrap(),
            yuan_per_person: Fen::new(yuan * 100),
        }
    }

    #[test]
    fn rounding_half_up_at_the_fen_and_at_the_yuan() {
        let cases = [
            (Rounding::Fen, "1234.5", 1235),
            (Rounding::Fen, "1234.4999", 1234),
            (Rounding::Fen, "1234.5000", 1235),
            (Rounding::Yuan, "1250", 1300),
            (Rounding::Yuan, "1249.99", 1200),
            (Rounding::Yuan, "1350", 1400),
        ];
        for (rounding, exact, expected) in cases {
            assert_eq!(
                rounding.apply(Decimal::from_str(exact).unwrap()),
                Fen::new(expected),
                "{rounding:?} {exact}"
            );
        }
        assert_eq!(
            Rounding::Fen.floor_to_unit(Decimal::from_str("99.99").unwrap()),
            Fen::new(99)
        );
        assert_eq!(
            Rounding::Yuan.floor_to_unit(Decimal::from_str("199.99").unwrap()),
            Fen::new(100)
        );
    }

    #[test]
    fn longest_prefix_then_latest_from_wins() {
        let policy = Policy {
            standards: vec![
                standard("21", "2026-01", 800),
                standard("2101", "2026-01", 900),
                standard("2101", "2026-07", 950),
                standard("210102", "2027-01", 1000),
            ],
            ..crate::config::Config::builtin().policy
        };
        let month = |text| Month::parse(text).unwrap();
        assert_eq!(
            policy.standard_for("210102", Area::Urban, month("2026-03")),
            Some(Fen::new(90_000))
        );
        assert_eq!(
            policy.standard_for("210102", Area::Urban, month("2026-07")),
            Some(Fen::new(95_000))
        );
        assert_eq!(
            policy.standard_for("210102", Area::Urban, month("2027-01")),
            Some(Fen::new(100_000))
        );
        assert_eq!(
            policy.standard_for("210203", Area::Urban, month("2026-07")),
            Some(Fen::new(80_000))
        );
        assert_eq!(
            policy.standard_for("310101", Area::Urban, month("2026-07")),
            None
        );
        assert_eq!(
            policy.standard_for("210102", Area::Rural, month("2026-07")),
            None
        );
        assert_eq!(
            policy.standard_for("210102", Area::Urban, month("2025-12")),
            None
        );
    }
}
