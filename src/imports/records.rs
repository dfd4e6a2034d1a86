//! The four input tables (CONTRACTS §2.1–2.4): their columns and how one row becomes a
//! domain record.

use crate::domain::household::{
    Area, Decision, DecisionKind, Household, ReviewClass, StaffRelative, TreasuryVoucher,
    VoucherType,
};
use crate::domain::ids::{
    AccountKind, AccountNumber, BankCode, HouseholdId, RegionCode, ResidentId,
};
use crate::domain::money::Fen;
use crate::domain::month::{parse_date, Month};
use crate::imports::table::{ColumnSpec, FieldParser, Row, Sensitivity};
use crate::imports::RowOutcome;
use rust_decimal::Decimal;
use std::str::FromStr;

const fn plain(name: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        sensitivity: Sensitivity::Plain,
    }
}

const fn sensitive(name: &'static str, sensitivity: Sensitivity) -> ColumnSpec {
    ColumnSpec { name, sensitivity }
}

/// Longest free-text value accepted (names, references, reasons).
const TEXT_CHARS_MAX: usize = 100;
/// A household larger than this is a typing error.
const MEMBERS_MAX: u32 = 50;

pub const ROSTER_COLUMNS: &[ColumnSpec] = &[
    plain("household_id"),
    plain("region_code"),
    plain("area"),
    sensitive("head_name", Sensitivity::Name),
    sensitive("head_id_number", Sensitivity::IdNumber),
    plain("members"),
    plain("elderly"),
    plain("minors"),
    plain("severely_disabled"),
    plain("seriously_ill"),
    plain("review_class"),
    plain("last_review"),
    plain("base_amount"),
    plain("employment_cost_deduction"),
    plain("approved_from"),
    plain("approval_ref"),
    plain("approved_by"),
    plain("bank_code"),
    sensitive("account_number", Sensitivity::Account),
    sensitive("account_name", Sensitivity::Name),
];

fn count(text: &str) -> Result<u32, String> {
    let value: u32 = text
        .parse()
        .map_err(|_| "not a whole number ≥ 0".to_string())?;
    if value > MEMBERS_MAX {
        return Err(format!("more than {MEMBERS_MAX}"));
    }
    Ok(value)
}

/// One roster row (§2.1). A passbook or legacy account is accepted with a warning.
pub fn parse_roster_row(row: &Row<'_>) -> RowOutcome<Household> {
    let mut fields = FieldParser::new(row);
    let household_id = fields.required("household_id", HouseholdId::parse);
    let region_code = fields.required("region_code", RegionCode::parse);
    let area = fields.required("area", |v| Area::parse(v).ok_or("must be urban or rural"));
    let head_name = fields.text("head_name", TEXT_CHARS_MAX);
    let head_id_number = fields.required("head_id_number", ResidentId::parse);
    let members = fields.required("members", count);
    let elderly = fields.required("elderly", count);
    let minors = fields.required("minors", count);
    let severely_disabled = fields.required("severely_disabled", count);
    let seriously_ill = fields.required("seriously_ill", count);
    let review_class = fields.required("review_class", |v| {
        ReviewClass::parse(v).ok_or("must be three_no, stable or unstable")
    });
    let last_review = fields.required("last_review", parse_date);
    let base_amount = fields.required("base_amount", Fen::parse_yuan);
    let employment_cost_deduction = fields.optional("employment_cost_deduction", Fen::parse_yuan);
    let approved_from = fields.required("approved_from", Month::parse);
    let approval_ref = fields.text("approval_ref", TEXT_CHARS_MAX);
    let approved_by = fields.text("approved_by", TEXT_CHARS_MAX);
    let bank_code = fields.required("bank_code", BankCode::parse);
    let account_number = fields.required("account_number", AccountNumber::parse);
    let account_name = fields.text("account_name", TEXT_CHARS_MAX);
    if let Some(members) = members {
        for (name, value) in [
            ("elderly", elderly),
            ("minors", minors),
            ("severely_disabled", severely_disabled),
            ("seriously_ill", seriously_ill),
        ] {
            if value.is_some_and(|value| value > members) {
                fields.push(name, format!("more than the household's {members} members"));
            }
        }
        if members == 0 {
            fields.push("members", "must be at least 1");
        }
    }
    fields.finish()?;
    let account_number = account_number.expect("checked by finish");
    let warnings = match account_number.kind() {
        AccountKind::Passbook => {
            vec![row.error(
                "account_number",
                "passbook or legacy account: not Luhn-checked",
            )]
        }
        AccountKind::Card => Vec::new(),
    };
    let household = Household {
        household_id: household_id.expect("checked by finish"),
        region_code: region_code.expect("checked by finish"),
        area: area.expect("checked by finish"),
        head_name: head_name.expect("checked by finish"),
        head_id_number: head_id_number.expect("checked by finish"),
        members: members.expect("checked by finish"),
        elderly: elderly.expect("checked by finish"),
        minors: minors.expect("checked by finish"),
        severely_disabled: severely_disabled.expect("checked by finish"),
        seriously_ill: seriously_ill.expect("checked by finish"),
        review_class: review_class.expect("checked by finish"),
        last_review: last_review.expect("checked by finish"),
        base_amount: base_amount.expect("checked by finish"),
        employment_cost_deduction: employment_cost_deduction.expect("checked by finish"),
        approved_from: approved_from.expect("checked by finish"),
        approval_ref: approval_ref.expect("checked by finish"),
        approved_by: approved_by.expect("checked by finish"),
        bank_code: bank_code.expect("checked by finish"),
        account_number,
        account_name: account_name.expect("checked by finish"),
    };
    Ok((household, warnings))
}

pub const DECISION_COLUMNS: &[ColumnSpec] = &[
    plain("decision_id"),
    plain("household_id"),
    plain("kind"),
    plain("effective_month"),
    plain("end_month"),
    plain("amount"),
    plain("percent"),
    plain("months"),
    plain("reason"),
    plain("ref"),
    plain("decided_by"),
    plain("decided_on"),
];

fn percent(text: &str) -> Result<Decimal, String> {
    let value = Decimal::from_str(text).map_err(|_| "not a number".to_string())?;
    if value <= Decimal::ZERO || value > Decimal::ONE_HUNDRED {
        return Err("must be above 0 and at most 100".into());
    }
    if value.scale() > 2 {
        return Err("more than 2 decimals".into());
    }
    Ok(value)
}

fn whole_months(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .map_err(|_| "not a whole number of months".to_string())
}

/// One decision row (§2.2), checked for what its kind needs. Whether the household
/// exists, and the blacklist rule (P11), are checked against the store by the caller.
pub fn parse_decision_row(row: &Row<'_>) -> RowOutcome<Decision> {
    let mut fields = FieldParser::new(row);
    let decision_id = fields.required("decision_id", |v| {
        HouseholdId::parse(v).map(|id| id.as_str().to_string())
    });
    let household_id = fields.required("household_id", HouseholdId::parse);
    let kind = fields.required("kind", |v| {
        DecisionKind::parse(v)
            .ok_or("must be stop, suspend, resume, reduce, taper, arrears, recover or blacklist")
    });
    let effective_month = fields.required("effective_month", Month::parse);
    let end_month = fields.optional("end_month", Month::parse);
    let amount = fields.optional("amount", Fen::parse_yuan);
    let percent = fields.optional("percent", percent);
    let months = fields.optional("months", whole_months);
    let reason = fields.text("reason", TEXT_CHARS_MAX);
    let reference = fields.text("ref", TEXT_CHARS_MAX);
    let decided_by = fields.text("decided_by", TEXT_CHARS_MAX);
    let decided_on = fields.required("decided_on", parse_date);
    if let (Some(kind), Some(end_month), Some(amount), Some(percent), Some(months)) =
        (kind, end_month, amount, percent, months)
    {
        let shape = DecisionShape {
            kind,
            end_month,
            amount,
            percent,
            months,
            effective_month,
        };
        shape.check(&mut fields);
    }
    fields.finish()?;
    let decision = Decision {
        decision_id: decision_id.expect("checked by finish"),
        household_id: household_id.expect("checked by finish"),
        kind: kind.expect("checked by finish"),
        effective_month: effective_month.expect("checked by finish"),
        end_month: end_month.expect("checked by finish"),
        amount: amount.expect("checked by finish"),
        percent: percent.expect("checked by finish"),
        months: months.expect("checked by finish"),
        reason: reason.expect("checked by finish"),
        reference: reference.expect("checked by finish"),
        decided_by: decided_by.expect("checked by finish"),
        decided_on: decided_on.expect("checked by finish"),
    };
    Ok((decision, Vec::new()))
}

/// The optional columns of a decision, checked against what its kind needs.
struct DecisionShape {
    kind: DecisionKind,
    effective_month: Option<Month>,
    end_month: Option<Month>,
    amount: Option<Fen>,
    percent: Option<Decimal>,
    months: Option<u32>,
}

impl DecisionShape {
    fn check(&self, fields: &mut FieldParser<'_, '_>) {
        use DecisionKind::*;
        let allowed: &[&str] = match self.kind {
            Stop | Suspend | Blacklist => &[],
            Resume => &["amount", "months"],
            Reduce => &["amount", "percent", "end_month"],
            Taper => &["months"],
            Arrears | Recover => &["amount"],
        };
        let present = [
            ("end_month", self.end_month.is_some()),
            ("amount", self.amount.is_some()),
            ("percent", self.percent.is_some()),
            ("months", self.months.is_some()),
        ];
        for (name, is_present) in present {
            if is_present && !allowed.contains(&name) {
                fields.push(
                    name,
                    format!("not used by a {} decision: leave empty", self.kind.as_str()),
                );
            }
        }
        self.check_kind(fields);
    }

    fn check_kind(&self, fields: &mut FieldParser<'_, '_>) {
        use DecisionKind::*;
        let positive_amount = self.amount.is_some_and(|amount| !amount.is_zero());
        match self.kind {
            Arrears | Recover if !positive_amount => fields.push(
                "amount",
                format!("a {} decision needs an amount above 0", self.kind.as_str()),
            ),
            Reduce if self.amount.is_some() == self.percent.is_some() => fields.push(
                "percent",
                "a reduce decision needs exactly one of percent or amount (P8)",
            ),
            Resume if self.amount.is_some() && self.months.is_some() => fields.push(
                "months",
                "a resume decision takes amount or months, not both",
            ),
            Taper
                if self
                    .months
                    .is_some_and(|months| !(3..=12).contains(&months)) =>
            {
                fields.push("months", "gradual exit lasts 3 to 12 months (P7)")
            }
            _ => {}
        }
        if let (Some(end), Some(effective)) = (self.end_month, self.effective_month) {
            if end < effective {
                fields.push("end_month", "before effective_month");
            }
        }
    }
}

pub const STAFF_RELATIVE_COLUMNS: &[ColumnSpec] = &[
    plain("staff_id"),
    sensitive("staff_name", Sensitivity::Name),
    sensitive("relative_id_number", Sensitivity::IdNumber),
    plain("relation"),
];

/// One staff-relative row (§2.3, P15).
pub fn parse_staff_relative_row(row: &Row<'_>) -> RowOutcome<StaffRelative> {
    let mut fields = FieldParser::new(row);
    let staff_id = fields.text("staff_id", 32);
    let staff_name = fields.text("staff_name", TEXT_CHARS_MAX);
    let relative_id_number = fields.required("relative_id_number", ResidentId::parse);
    let relation = fields.text("relation", TEXT_CHARS_MAX);
    fields.finish()?;
    let record = StaffRelative {
        staff_id: staff_id.expect("checked by finish"),
        staff_name: staff_name.expect("checked by finish"),
        relative_id_number: relative_id_number.expect("checked by finish"),
        relation: relation.expect("checked by finish"),
    };
    Ok((record, Vec::new()))
}

pub const TREASURY_COLUMNS: &[ColumnSpec] = &[
    plain("voucher_no"),
    plain("voucher_type"),
    plain("original_voucher_no"),
    plain("batch_id"),
    plain("bank_code"),
    plain("amount"),
    plain("date"),
];

/// One treasury voucher row (§2.4). A refund must name the 5201 it refunds.
pub fn parse_treasury_row(row: &Row<'_>) -> RowOutcome<TreasuryVoucher> {
    let mut fields = FieldParser::new(row);
    let voucher_no = fields.text("voucher_no", 40);
    let voucher_type = fields.required("voucher_type", |v| {
        VoucherType::parse(v).ok_or("must be 5201, 2203, 2302 or 2301")
    });
    let original_voucher_no =
        fields.optional("original_voucher_no", |v| Ok::<_, String>(v.to_string()));
    let batch_id = fields.text("batch_id", 20);
    let bank_code = fields.required("bank_code", BankCode::parse);
    let amount = fields.required("amount", Fen::parse_yuan);
    let date = fields.required("date", parse_date);
    if let (Some(kind), Some(original)) = (voucher_type, &original_voucher_no) {
        if kind.is_refund() && original.is_none() {
            fields.push(
                "original_voucher_no",
                "a refund must name the 5201 voucher it refunds",
            );
        }
    }
    fields.finish()?;
    let voucher = TreasuryVoucher {
        voucher_no: voucher_no.expect("checked by finish"),
        voucher_type: voucher_type.expect("checked by finish"),
        original_voucher_no: original_voucher_no.expect("checked by finish"),
        batch_id: batch_id.expect("checked by finish"),
        bank_code: bank_code.expect("checked by finish"),
        amount: amount.expect("checked by finish"),
        date: date.expect("checked by finish"),
    };
    Ok((voucher, Vec::new()))
}
