//! A household as civil affairs approved it (roster, CONTRACTS §2.1), the decisions that
//! change its payments (§2.2), and registered staff relatives (§2.3, P15).

use crate::domain::ids::{AccountNumber, BankCode, HouseholdId, RegionCode, ResidentId};
use crate::domain::money::Fen;
use crate::domain::month::Month;
use chrono::NaiveDate;
use rust_decimal::Decimal;

/// Urban or rural: standards, review cycles (P3) and routes differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Area {
    Urban,
    Rural,
}

impl Area {
    pub fn parse(text: &str) -> Option<Area> {
        match text {
            "urban" => Some(Area::Urban),
            "rural" => Some(Area::Rural),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Area::Urban => "urban",
            Area::Rural => "rural",
        }
    }
}

/// The review cycle a household is on (P3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReviewClass {
    /// 三无人员: reviewed yearly.
    ThreeNo,
    /// Income barely changes: every six months.
    Stable,
    /// Unstable income, members able to work: monthly in cities, quarterly in the countryside.
    Unstable,
}

impl ReviewClass {
    pub fn parse(text: &str) -> Option<ReviewClass> {
        match text {
            "three_no" => Some(ReviewClass::ThreeNo),
            "stable" => Some(ReviewClass::Stable),
            "unstable" => Some(ReviewClass::Unstable),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewClass::ThreeNo => "three_no",
            ReviewClass::Stable => "stable",
            ReviewClass::Unstable => "unstable",
        }
    }

    /// Months between reviews (P3).
    pub fn interval_months(self, area: Area) -> u32 {
        match (self, area) {
            (ReviewClass::ThreeNo, _) => 12,
            (ReviewClass::Stable, _) => 6,
            (ReviewClass::Unstable, Area::Urban) => 1,
            (ReviewClass::Unstable, Area::Rural) => 3,
        }
    }
}

/// One version of a household's approval: the roster row, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Household {
    pub household_id: HouseholdId,
    pub region_code: RegionCode,
    pub area: Area,
    pub head_name: String,
    pub head_id_number: ResidentId,
    pub members: u32,
    pub elderly: u32,
    pub minors: u32,
    pub severely_disabled: u32,
    pub seriously_ill: u32,
    pub review_class: ReviewClass,
    pub last_review: NaiveDate,
    pub base_amount: Fen,
    pub employment_cost_deduction: Option<Fen>,
    pub approved_from: Month,
    pub approval_ref: String,
    pub approved_by: String,
    pub bank_code: BankCode,
    pub account_number: AccountNumber,
    pub account_name: String,
}

/// What a decision does (CONTRACTS §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecisionKind {
    Stop,
    Suspend,
    Resume,
    Reduce,
    Taper,
    Arrears,
    Recover,
    Blacklist,
}

impl DecisionKind {
    pub const ALL: [DecisionKind; 8] = [
        DecisionKind::Stop,
        DecisionKind::Suspend,
        DecisionKind::Resume,
        DecisionKind::Reduce,
        DecisionKind::Taper,
        DecisionKind::Arrears,
        DecisionKind::Recover,
        DecisionKind::Blacklist,
    ];

    pub fn parse(text: &str) -> Option<DecisionKind> {
        DecisionKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Stop => "stop",
            DecisionKind::Suspend => "suspend",
            DecisionKind::Resume => "resume",
            DecisionKind::Reduce => "reduce",
            DecisionKind::Taper => "taper",
            DecisionKind::Arrears => "arrears",
            DecisionKind::Recover => "recover",
            DecisionKind::Blacklist => "blacklist",
        }
    }
}

/// The reason codes CONTRACTS §2.2 names; free text is kept as it is.
pub const REASON_CODES: [&str; 7] = [
    "death",
    "income",
    "moved",
    "refused_work",
    "false_report",
    "voluntary",
    "review_failed",
];

/// A blacklist lasts twelve months from its effective month (P11).
pub const BLACKLIST_MONTHS: i64 = 12;

/// A decision by civil affairs about one household, validated for its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub decision_id: String,
    pub household_id: HouseholdId,
    pub kind: DecisionKind,
    pub effective_month: Month,
    pub end_month: Option<Month>,
    pub amount: Option<Fen>,
    /// A percentage in (0, 100], for `reduce`.
    pub percent: Option<Decimal>,
    pub months: Option<u32>,
    pub reason: String,
    pub reference: String,
    pub decided_by: String,
    pub decided_on: NaiveDate,
}

impl Decision {
    /// The last month a blacklist stops payment (inclusive).
    pub fn blacklist_last_month(&self) -> Option<Month> {
        (self.kind == DecisionKind::Blacklist)
            .then(|| self.effective_month.plus(BLACKLIST_MONTHS - 1))
    }
}

/// A registered staff member whose close relative may receive dibao (P15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffRelative {
    pub staff_id: String,
    pub staff_name: String,
    pub relative_id_number: ResidentId,
    pub relation: String,
}

/// Treasury voucher types (CONTRACTS §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoucherType {
    /// 5201 直接支付凭证: funds a batch.
    DirectPayment,
    /// 2203 / 2302 退款: money that could not be paid goes back.
    Refund2203,
    Refund2302,
    /// 2301 申请划款: the agent bank's clearing request.
    ClearingRequest,
}

impl VoucherType {
    pub fn parse(text: &str) -> Option<VoucherType> {
        match text {
            "5201" => Some(VoucherType::DirectPayment),
            "2203" => Some(VoucherType::Refund2203),
            "2302" => Some(VoucherType::Refund2302),
            "2301" => Some(VoucherType::ClearingRequest),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            VoucherType::DirectPayment => "5201",
            VoucherType::Refund2203 => "2203",
            VoucherType::Refund2302 => "2302",
            VoucherType::ClearingRequest => "2301",
        }
    }

    pub fn is_refund(self) -> bool {
        matches!(self, VoucherType::Refund2203 | VoucherType::Refund2302)
    }
}

/// One treasury voucher (CONTRACTS §2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreasuryVoucher {
    pub voucher_no: String,
    pub voucher_type: VoucherType,
    pub original_voucher_no: Option<String>,
    pub batch_id: String,
    pub bank_code: BankCode,
    pub amount: Fen,
    pub date: NaiveDate,
}
