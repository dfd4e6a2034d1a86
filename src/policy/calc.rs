//! One household's month: whether it is paid, and how much, line item by line item
//! (P1, P4, P5, P7–P11, CONTRACTS §2.2). Pure: every input is an argument, including
//! what earlier runs instructed, so a failed payment can later be put back.

use crate::domain::household::{Decision, DecisionKind, Household};
use crate::domain::ids::AccountKind;
use crate::domain::money::Fen;
use crate::domain::month::Month;
use crate::policy::{flag, FlagAction, Policy, SupplementRule};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use std::collections::HashSet;

/// A line's status (CONTRACTS §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineStatus {
    /// Instructed to the bank.
    Pay,
    /// Computed but not paid this run; the flags say why.
    Hold,
    /// Not paid: stopped, suspended, tapered out or blacklisted.
    Stopped,
    /// Nothing to pay this month.
    Zero,
}

impl LineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LineStatus::Pay => "pay",
            LineStatus::Hold => "hold",
            LineStatus::Stopped => "stopped",
            LineStatus::Zero => "zero",
        }
    }

    pub fn parse(text: &str) -> Option<LineStatus> {
        [
            LineStatus::Pay,
            LineStatus::Hold,
            LineStatus::Stopped,
            LineStatus::Zero,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// What an arrears amount pays for, so it is never paid twice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArrearsSource {
    /// An `arrears` or `resume` decision.
    Decision(String),
    /// A month in which a run of the household's scope left it out or held it.
    Month(Month),
}

impl ArrearsSource {
    pub fn to_text(&self) -> String {
        match self {
            ArrearsSource::Decision(id) => format!("d:{id}"),
            ArrearsSource::Month(month) => format!("m:{month}"),
        }
    }

    pub fn parse(text: &str) -> Option<ArrearsSource> {
        match text.split_once(':')? {
            ("d", id) => Some(ArrearsSource::Decision(id.to_string())),
            ("m", month) => Month::parse(month).ok().map(ArrearsSource::Month),
            _ => None,
        }
    }

    /// `;`-separated, as stored.
    pub fn join(sources: &[ArrearsSource]) -> String {
        sources
            .iter()
            .map(ArrearsSource::to_text)
            .collect::<Vec<_>>()
            .join(";")
    }

    pub fn split(text: &str) -> Vec<ArrearsSource> {
        text.split(';').filter_map(ArrearsSource::parse).collect()
    }
}

/// A line of an earlier, standing run of the same programme for this household.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorLine {
    pub month: Month,
    /// The line's payment id: named when its month is re-issued (`reissue:ID` flag).
    pub end_to_end_id: String,
    pub status: LineStatus,
    pub recovery: Fen,
    pub arrears_sources: Vec<ArrearsSource>,
    /// False once the bank reported the payment failed or returned: its recovery and
    /// arrears did not happen and are computed again.
    pub instructed_ok: bool,
}

impl PriorLine {
    /// Whether the line's arrears and recovery took effect: a `pay` line the bank did
    /// not fail, or a `zero` line (its recovery offset its arrears; nothing was sent).
    fn was_paid(&self) -> bool {
        matches!(self.status, LineStatus::Pay | LineStatus::Zero) && self.instructed_ok
    }
}

/// Everything the calculation of one household-month needs.
#[derive(Clone, Copy, Debug)]
pub struct HouseholdMonth<'a> {
    pub month: Month,
    /// The day households are paid; reviews are overdue relative to it (P3).
    pub pay_date: NaiveDate,
    /// The household's versions with `approved_from` up to `month`, oldest first.
    pub versions: &'a [Household],
    pub decisions: &'a [Decision],
    pub history: &'a [PriorLine],
    /// Months before `month` in which a standing run covered the household's scope.
    pub run_months: &'a [Month],
}

/// The computed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineComputation {
    /// The version in force (P1: the approval the line traces back to).
    pub approved_from: Month,
    pub status: LineStatus,
    pub base: Fen,
    pub supplements: Fen,
    pub arrears: Fen,
    pub reduction: Fen,
    pub recovery: Fen,
    pub payable: Fen,
    pub arrears_sources: Vec<ArrearsSource>,
    pub flags: Vec<String>,
}

/// Why a month is not paid.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Standing {
    Paid { taper: Option<(i64, i64)> },
    Stopped(String),
}

/// The version in force in `month`: the latest `approved_from` not after it.
fn version_at(versions: &[Household], month: Month) -> Option<&Household> {
    versions
        .iter()
        .filter(|v| v.approved_from <= month)
        .max_by_key(|v| v.approved_from)
}

/// A decision that ends payment is lifted by a later approval: a version whose
/// `approved_from` is after the decision's month.
fn still_binding(decision: &Decision, version: &Household) -> bool {
    decision.effective_month >= version.approved_from
}

fn standing(
    policy: &Policy,
    decisions: &[Decision],
    month: Month,
    version: &Household,
) -> Standing {
    let in_effect = |kind: DecisionKind| {
        decisions
            .iter()
            .filter(move |d| d.kind == kind && d.effective_month <= month)
    };
    // P11: a blacklist cannot be lifted before its end, not even by a new approval.
    if in_effect(DecisionKind::Blacklist)
        .any(|d| d.blacklist_last_month().is_some_and(|last| month <= last))
    {
        return Standing::Stopped("blacklisted".into());
    }
    if let Some(stop) = in_effect(DecisionKind::Stop).find(|d| still_binding(d, version)) {
        return Standing::Stopped(format!("stopped:{}", stop.reason));
    }
    let suspended = in_effect(DecisionKind::Suspend)
        .filter(|d| still_binding(d, version))
        .any(|suspend| {
            !in_effect(DecisionKind::Resume)
                .any(|resume| resume.effective_month > suspend.effective_month)
        });
    if suspended {
        return Standing::Stopped("suspended".into());
    }
    let mut taper = None;
    for decision in in_effect(DecisionKind::Taper).filter(|d| still_binding(d, version)) {
        let months = i64::from(decision.months.unwrap_or(policy.taper_months_default));
        let month_number = month.months_since(decision.effective_month) + 1;
        if month_number > months {
            return Standing::Stopped("taper_ended".into());
        }
        taper = Some((month_number, months));
    }
    Standing::Paid { taper }
}

/// Base, supplements and reduction of one month under the version in force then.
#[derive(Clone, Copy, Debug, Default)]
struct Gross {
    base: Fen,
    supplements: Fen,
    reduction: Fen,
    missing_standard: bool,
}

impl Gross {
    fn net(self) -> Fen {
        self.base.plus(self.supplements).minus(self.reduction)
    }
}

fn gross(policy: &Policy, version: &Household, decisions: &[Decision], month: Month) -> Gross {
    let standard = policy.standard_for(version.region_code.as_str(), version.area, month);
    let mut result = Gross {
        base: version.base_amount,
        ..Gross::default()
    };
    let classes = [
        (policy.supplement.elderly, version.elderly),
        (policy.supplement.minors, version.minors),
        (
            policy.supplement.severely_disabled,
            version.severely_disabled,
        ),
        (policy.supplement.seriously_ill, version.seriously_ill),
    ];
    for (rule, members) in classes.into_iter().filter(|(_, members)| *members > 0) {
        let amount = match (rule, standard) {
            (SupplementRule::None, _) => Fen::ZERO,
            (SupplementRule::Fixed(per_member), _) => {
                Fen::new(per_member.as_i64() * i64::from(members))
            }
            (SupplementRule::ShareOfStandard(share), Some(standard)) => policy
                .rounding
                .apply(share * Decimal::from(standard.as_i64()) * Decimal::from(members)),
            (SupplementRule::ShareOfStandard(_), None) => {
                result.missing_standard = true;
                Fen::ZERO
            }
        };
        result.supplements = result.supplements.plus(amount);
    }
    result.reduction = reduction(
        policy,
        decisions,
        month,
        result.base.plus(result.supplements),
    );
    result
}

/// P8: reductions in force this month, by percent of base + supplements or by amount,
/// never more than base + supplements.
fn reduction(
    policy: &Policy,
    decisions: &[Decision],
    month: Month,
    base_and_supplements: Fen,
) -> Fen {
    let total: Fen = decisions
        .iter()
        .filter(|d| d.kind == DecisionKind::Reduce && d.effective_month <= month)
        .filter(|d| d.end_month.is_none_or(|end| month <= end))
        .map(|d| match (d.percent, d.amount) {
            (Some(percent), _) => policy.rounding.apply(
                Decimal::from(base_and_supplements.as_i64()) * percent / Decimal::ONE_HUNDRED,
            ),
            (None, Some(amount)) => amount,
            (None, None) => Fen::ZERO,
        })
        .sum();
    total.min(base_and_supplements)
}

/// Computes the household's line for `input.month`; `None` when no approval is in
/// force (P1: nobody is paid without one, or before `approved_from`).
pub fn compute(policy: &Policy, input: &HouseholdMonth<'_>) -> Option<LineComputation> {
    let version = version_at(input.versions, input.month)?;
    let mut flags = version_flags(policy, version, input.pay_date);
    // Another standing run already paid this household this month (it moved between
    // scopes): never twice.
    if input
        .history
        .iter()
        .any(|line| line.month == input.month && line.was_paid())
    {
        flags.insert(0, "paid_in_other_run".to_string());
        return Some(stopped_line(version, flags));
    }
    match standing(policy, input.decisions, input.month, version) {
        Standing::Stopped(cause) => {
            if cause == "stopped:death" {
                flags.push(flag::DEATH_ON_ROSTER.into());
            }
            flags.insert(0, cause);
            Some(stopped_line(version, flags))
        }
        Standing::Paid { taper } => {
            if let Some((number, months)) = taper {
                flags.push(format!("taper:{number}/{months}"));
            }
            Some(paid_line(policy, input, version, flags))
        }
    }
}

fn stopped_line(version: &Household, flags: Vec<String>) -> LineComputation {
    LineComputation {
        approved_from: version.approved_from,
        status: LineStatus::Stopped,
        base: Fen::ZERO,
        supplements: Fen::ZERO,
        arrears: Fen::ZERO,
        reduction: Fen::ZERO,
        recovery: Fen::ZERO,
        payable: Fen::ZERO,
        arrears_sources: Vec::new(),
        flags,
    }
}

fn paid_line(
    policy: &Policy,
    input: &HouseholdMonth<'_>,
    version: &Household,
    mut flags: Vec<String>,
) -> LineComputation {
    let this_month = gross(policy, version, input.decisions, input.month);
    let (arrears, arrears_sources) = arrears(policy, input);
    flags.extend(reissue_flags(input, &arrears_sources));
    let before_recovery = this_month.net().plus(arrears);
    let recovery = recovery(policy, input, before_recovery);
    let payable = before_recovery.minus(recovery);
    assert!(payable >= Fen::ZERO, "payable is never below zero");
    if this_month.missing_standard {
        flags.push(flag::NO_STANDARD.into());
    }
    let standard = policy.standard_for(version.region_code.as_str(), version.area, input.month);
    if let Some(standard) = standard {
        let limit = Decimal::from(standard.as_i64())
            * Decimal::from(version.members)
            * policy.amount_flag_multiple;
        if Decimal::from(payable.as_i64()) > limit {
            flags.push(flag::AMOUNT_ABOVE_MULTIPLE.into());
        }
    }
    LineComputation {
        approved_from: version.approved_from,
        status: if payable.is_zero() {
            LineStatus::Zero
        } else {
            LineStatus::Pay
        },
        base: this_month.base,
        supplements: this_month.supplements,
        arrears,
        reduction: this_month.reduction,
        recovery,
        payable,
        arrears_sources,
        flags,
    }
}

/// Flags that depend only on the version: review overdue (P3), passbook account.
fn version_flags(policy: &Policy, version: &Household, pay_date: NaiveDate) -> Vec<String> {
    let mut flags = Vec::new();
    let interval = version.review_class.interval_months(version.area);
    let due = version
        .last_review
        .checked_add_months(chrono::Months::new(interval))
        .and_then(|due| {
            due.checked_add_days(chrono::Days::new(u64::from(policy.overdue_grace_days)))
        });
    if due.is_some_and(|due| pay_date > due) {
        flags.push(flag::REVIEW_OVERDUE.to_string());
    }
    if version.account_number.kind() == AccountKind::Passbook {
        flags.push(flag::PASSBOOK_ACCOUNT.to_string());
    }
    flags
}

/// P9: arrears decisions and resume back pay not yet paid, and months in which a run of
/// the household's scope left it out or held it while it was approved and not stopped.
fn arrears(policy: &Policy, input: &HouseholdMonth<'_>) -> (Fen, Vec<ArrearsSource>) {
    let consumed: HashSet<&ArrearsSource> = input
        .history
        .iter()
        .filter(|line| line.was_paid())
        .flat_map(|line| line.arrears_sources.iter())
        .collect();
    let mut total = Fen::ZERO;
    let mut sources = Vec::new();
    let mut add = |source: ArrearsSource, amount: Fen| {
        if !consumed.contains(&source) && !amount.is_zero() && !sources.contains(&source) {
            total = total.plus(amount);
            sources.push(source);
        }
    };
    for decision in input
        .decisions
        .iter()
        .filter(|d| d.effective_month <= input.month)
    {
        let source = ArrearsSource::Decision(decision.decision_id.clone());
        match decision.kind {
            DecisionKind::Arrears => add(source, decision.amount.unwrap_or(Fen::ZERO)),
            DecisionKind::Resume => match decision.amount {
                Some(amount) => add(source, amount),
                None => {
                    for (month, amount) in resume_back_pay(policy, input, decision) {
                        add(ArrearsSource::Month(month), amount);
                    }
                }
            },
            _ => {}
        }
    }
    for &month in input.run_months.iter().filter(|m| **m < input.month) {
        add(
            ArrearsSource::Month(month),
            missed_month(policy, input, month),
        );
    }
    (total, sources)
}

/// A month paid again because its payment failed or came back names the original
/// payment (`reissue:ID`), so the new payment is linked to the one it replaces.
fn reissue_flags(input: &HouseholdMonth<'_>, sources: &[ArrearsSource]) -> Vec<String> {
    sources
        .iter()
        .filter_map(|source| match source {
            ArrearsSource::Month(month) => Some(*month),
            ArrearsSource::Decision(_) => None,
        })
        .flat_map(|month| {
            input
                .history
                .iter()
                .filter(move |line| {
                    line.month == month && line.status == LineStatus::Pay && !line.instructed_ok
                })
                .map(|line| format!("reissue:{}", line.end_to_end_id))
        })
        .collect()
}

/// Back pay of a `resume` with `months`: each of the months before it in which the
/// household was suspended and not paid, as its own `Month` source, so a month paid
/// another way (or blacklisted, or stopped) is never paid again.
fn resume_back_pay(
    policy: &Policy,
    input: &HouseholdMonth<'_>,
    resume: &Decision,
) -> Vec<(Month, Fen)> {
    let months = i64::from(resume.months.unwrap_or(0));
    (1..=months)
        .map(|back| resume.effective_month.plus(-back))
        .filter(|month| {
            !input
                .history
                .iter()
                .any(|line| line.month == *month && line.was_paid())
        })
        .filter_map(|month| version_at(input.versions, month).map(|version| (month, version)))
        .filter(|(month, version)| {
            standing(policy, input.decisions, *month, version)
                == Standing::Stopped("suspended".into())
        })
        .map(|(month, version)| (month, gross(policy, version, input.decisions, month).net()))
        .collect()
}

/// What a run of `month` should have paid but did not (no line, or a held one).
fn missed_month(policy: &Policy, input: &HouseholdMonth<'_>, month: Month) -> Fen {
    let handled = input.history.iter().any(|line| {
        line.month == month
            && line.instructed_ok
            && matches!(
                line.status,
                LineStatus::Pay | LineStatus::Zero | LineStatus::Stopped
            )
    });
    if handled {
        return Fen::ZERO;
    }
    match version_at(input.versions, month) {
        Some(version)
            if matches!(
                standing(policy, input.decisions, month, version),
                Standing::Paid { .. }
            ) =>
        {
            gross(policy, version, input.decisions, month).net()
        }
        _ => Fen::ZERO,
    }
}

/// P10: recovery owed and not yet recovered, at most the cap share of this month's
/// payable before recovery, rounded down so the cap is never exceeded (FAILURES #27:
/// it stops by itself once the debt is cleared).
fn recovery(policy: &Policy, input: &HouseholdMonth<'_>, before_recovery: Fen) -> Fen {
    let owed: Fen = input
        .decisions
        .iter()
        .filter(|d| d.kind == DecisionKind::Recover && d.effective_month <= input.month)
        .filter_map(|d| d.amount)
        .sum();
    let recovered: Fen = input
        .history
        .iter()
        .filter(|line| line.was_paid())
        .map(|line| line.recovery)
        .sum();
    let balance = owed.minus(recovered).max(Fen::ZERO);
    let cap = policy
        .rounding
        .floor_to_unit(Decimal::from(before_recovery.as_i64()) * policy.recovery_cap_share);
    balance.min(cap)
}

/// Applies the flags' actions: a flag that holds turns a `pay` or `zero` line into `hold`.
pub fn apply_holds(policy: &Policy, line: &mut LineComputation) {
    let holds = line
        .flags
        .iter()
        .any(|name| policy.action_of(name) == FlagAction::Hold);
    if holds && matches!(line.status, LineStatus::Pay | LineStatus::Zero) {
        line.status = LineStatus::Hold;
    }
}

#[cfg(test)]
#[path = "calc_tests.rs"]
mod tests;
