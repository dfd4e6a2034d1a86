//! The policy table: one row per rule and per interaction, each citing its rule.

use super::*;
use crate::config::Config;
use crate::domain::household::{Area, ReviewClass};
use crate::domain::ids::{AccountNumber, BankCode, HouseholdId, RegionCode, ResidentId};
use crate::policy::{Rounding, Standard};
use proptest::prelude::*;
use std::str::FromStr;

fn month(text: &str) -> Month {
    Month::parse(text).unwrap()
}

fn yuan(text: &str) -> Fen {
    Fen::parse_yuan(text).unwrap()
}

fn policy() -> Policy {
    Config::builtin().policy
}

fn household(approved_from: &str, base: &str) -> Household {
    Household {
        household_id: HouseholdId::parse("H1").unwrap(),
        region_code: RegionCode::parse("210102").unwrap(),
        area: Area::Urban,
        head_name: "张三".into(),
        head_id_number: ResidentId::parse("11010519491231002X").unwrap(),
        members: 2,
        elderly: 0,
        minors: 0,
        severely_disabled: 0,
        seriously_ill: 0,
        review_class: ReviewClass::ThreeNo,
        last_review: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        base_amount: yuan(base),
        employment_cost_deduction: None,
        approved_from: month(approved_from),
        approval_ref: "沈民〔2026〕1号".into(),
        approved_by: "民政局".into(),
        bank_code: BankCode::parse("102221000018").unwrap(),
        account_number: AccountNumber::parse("6222021234567890128").unwrap(),
        account_name: "张三".into(),
    }
}

fn decision(id: &str, kind: DecisionKind, effective: &str) -> Decision {
    Decision {
        decision_id: id.into(),
        household_id: HouseholdId::parse("H1").unwrap(),
        kind,
        effective_month: month(effective),
        end_month: None,
        amount: None,
        percent: None,
        months: None,
        reason: "income".into(),
        reference: "r".into(),
        decided_by: "d".into(),
        decided_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
    }
}

fn with_amount(mut d: Decision, amount: &str) -> Decision {
    d.amount = Some(yuan(amount));
    d
}

fn with_months(mut d: Decision, months: u32) -> Decision {
    d.months = Some(months);
    d
}

fn paid(month_text: &str, recovery: &str, sources: &[ArrearsSource]) -> PriorLine {
    PriorLine {
        month: month(month_text),
        end_to_end_id: format!("DB000001-{month_text}"),
        status: LineStatus::Pay,
        recovery: yuan(recovery),
        arrears_sources: sources.to_vec(),
        instructed_ok: true,
    }
}

struct Case {
    rule: &'static str,
    month: &'static str,
    policy: Policy,
    versions: Vec<Household>,
    decisions: Vec<Decision>,
    history: Vec<PriorLine>,
    run_months: Vec<Month>,
    /// (status, base, supplements, arrears, reduction, recovery, payable) or None (no line).
    expect: Option<(
        LineStatus,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    )>,
    expect_flag: Option<&'static str>,
}

impl Default for Case {
    fn default() -> Case {
        Case {
            rule: "",
            month: "2026-11",
            policy: policy(),
            versions: vec![household("2026-01", "1000.00")],
            decisions: vec![],
            history: vec![],
            run_months: vec![],
            expect: None,
            expect_flag: None,
        }
    }
}

fn check(case: &Case) {
    let input = HouseholdMonth {
        month: month(case.month),
        pay_date: month(case.month).first_day().with_day0(19).unwrap(),
        versions: &case.versions,
        decisions: &case.decisions,
        history: &case.history,
        run_months: &case.run_months,
    };
    let line = compute(&case.policy, &input);
    let got = line.as_ref().map(|l| {
        (
            l.status,
            l.base,
            l.supplements,
            l.arrears,
            l.reduction,
            l.recovery,
            l.payable,
        )
    });
    let expected = case.expect.map(
        |(status, base, supplements, arrears, reduction, recovery, payable)| {
            (
                status,
                yuan(base),
                yuan(supplements),
                yuan(arrears),
                yuan(reduction),
                yuan(recovery),
                yuan(payable),
            )
        },
    );
    assert_eq!(got, expected, "{}", case.rule);
    if let (Some(flag_name), Some(line)) = (case.expect_flag, &line) {
        assert!(
            line.flags.iter().any(|f| f == flag_name),
            "{}: flags {:?}",
            case.rule,
            line.flags
        );
    }
    if let Some(line) = line {
        let sum = line
            .base
            .plus(line.supplements)
            .plus(line.arrears)
            .minus(line.reduction)
            .minus(line.recovery);
        if line.status != LineStatus::Stopped {
            assert_eq!(
                sum, line.payable,
                "{}: payable = base + supplements + arrears − reduction − recovery",
                case.rule
            );
        }
    }
}

use chrono::Datelike;

fn with_classes(mut h: Household, elderly: u32, ill: u32) -> Household {
    h.elderly = elderly;
    h.seriously_ill = ill;
    h
}

fn standards(rows: &[(&str, &str, &str)]) -> Policy {
    let mut policy = policy();
    policy.standards = rows
        .iter()
        .map(|(prefix, from, yuan_text)| Standard {
            region_prefix: prefix.to_string(),
            area: Area::Urban,
            from: month(from),
            yuan_per_person: yuan(yuan_text),
        })
        .collect();
    policy
}

#[test]
fn policy_table() {
    use DecisionKind::*;
    use LineStatus::*;
    let cases = vec![
        Case { rule: "P4: the approved base amount is paid", expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00")), ..Case::default() },
        Case { rule: "P1: no payment before approved_from", versions: vec![household("2026-12", "1000.00")], expect: None, ..Case::default() },
        Case { rule: "P1: a later version applies from its month", versions: vec![household("2026-01", "1000.00"), household("2026-11", "1100.00")], expect: Some((Pay, "1100.00", "0.00", "0.00", "0.00", "0.00", "1100.00")), ..Case::default() },
        Case { rule: "P5: 10% of the 900.00 standard per elderly member, 100.00 fixed per seriously ill member", versions: vec![with_classes(household("2026-01", "1000.00"), 2, 1)], expect: Some((Pay, "1000.00", "280.00", "0.00", "0.00", "0.00", "1280.00")), ..Case::default() },
        Case { rule: "P5: a standard that rises mid-year (before)", month: "2026-06", policy: standards(&[("2101", "2026-01", "900.00"), ("2101", "2026-07", "950.00")]), versions: vec![with_classes(household("2026-01", "1000.00"), 1, 0)], expect: Some((Pay, "1000.00", "90.00", "0.00", "0.00", "0.00", "1090.00")), ..Case::default() },
        Case { rule: "P5: a standard that rises mid-year (after)", month: "2026-07", policy: standards(&[("2101", "2026-01", "900.00"), ("2101", "2026-07", "950.00")]), versions: vec![with_classes(household("2026-01", "1000.00"), 1, 0)], expect: Some((Pay, "1000.00", "95.00", "0.00", "0.00", "0.00", "1095.00")), ..Case::default() },
        Case { rule: "P5: the longest region prefix wins", policy: standards(&[("21", "2026-01", "500.00"), ("210102", "2026-01", "800.00")]), versions: vec![with_classes(household("2026-01", "1000.00"), 1, 0)], expect: Some((Pay, "1000.00", "80.00", "0.00", "0.00", "0.00", "1080.00")), ..Case::default() },
        Case { rule: "P5: no standard for the region holds the line", policy: standards(&[("3101", "2026-01", "900.00")]), versions: vec![with_classes(household("2026-01", "1000.00"), 1, 0)], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00")), expect_flag: Some("no_standard"), ..Case::default() },
        Case { rule: "rounding: half up at the fen (5% of 903.30 = 45.165 → 45.17)", policy: { let mut p = standards(&[("2101", "2026-01", "903.30")]); p.supplement.elderly = SupplementRule::ShareOfStandard(Decimal::from_str("0.05").unwrap()); p }, versions: vec![with_classes(household("2026-01", "1000.00"), 1, 0)], expect: Some((Pay, "1000.00", "45.17", "0.00", "0.00", "0.00", "1045.17")), ..Case::default() },
        Case { rule: "rounding: half up at the yuan (5% of 910.00 = 45.50 → 46)", policy: { let mut p = standards(&[("2101", "2026-01", "910.00")]); p.supplement.elderly = SupplementRule::ShareOfStandard(Decimal::from_str("0.05").unwrap()); p.rounding = Rounding::Yuan; p }, versions: vec![with_classes(household("2026-01", "1000.00"), 1, 0)], expect: Some((Pay, "1000.00", "46.00", "0.00", "0.00", "0.00", "1046.00")), ..Case::default() },
        Case { rule: "P8: reduce by 20% of base + supplements", versions: vec![with_classes(household("2026-01", "1000.00"), 1, 0)], decisions: vec![{ let mut d = decision("R", Reduce, "2026-10"); d.percent = Some(Decimal::from(20)); d.end_month = Some(month("2026-12")); d }], expect: Some((Pay, "1000.00", "90.00", "0.00", "218.00", "0.00", "872.00")), ..Case::default() },
        Case { rule: "P8: a reduction after its end_month no longer applies", month: "2027-01", decisions: vec![{ let mut d = decision("R", Reduce, "2026-10"); d.amount = Some(yuan("100.00")); d.end_month = Some(month("2026-12")); d }], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00")), ..Case::default() },
        Case { rule: "P8: stop for refusing work", decisions: vec![decision("S", Stop, "2026-10")], expect: Some((Stopped, "0.00", "0.00", "0.00", "0.00", "0.00", "0.00")), expect_flag: Some("stopped:income"), ..Case::default() },
        Case { rule: "P17: a death stop flags a household still on the roster", decisions: vec![{ let mut d = decision("S", Stop, "2026-10"); d.reason = "death".into(); d }], expect: Some((Stopped, "0.00", "0.00", "0.00", "0.00", "0.00", "0.00")), expect_flag: Some("death_on_roster"), ..Case::default() },
        Case { rule: "P1: a new approval after a stop lifts it", versions: vec![household("2026-01", "1000.00"), household("2026-11", "900.00")], decisions: vec![decision("S", Stop, "2026-10")], expect: Some((Pay, "900.00", "0.00", "0.00", "0.00", "0.00", "900.00")), ..Case::default() },
        Case { rule: "P7: gradual exit month 3 of 3 is paid", decisions: vec![with_months(decision("T", Taper, "2026-09"), 3)], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00")), expect_flag: Some("taper:3/3"), ..Case::default() },
        Case { rule: "P7: after gradual exit the household stops without a new decision", month: "2026-12", decisions: vec![with_months(decision("T", Taper, "2026-09"), 3)], expect: Some((Stopped, "0.00", "0.00", "0.00", "0.00", "0.00", "0.00")), expect_flag: Some("taper_ended"), ..Case::default() },
        Case { rule: "P7: empty months take the region's default (6)", month: "2027-02", decisions: vec![decision("T", Taper, "2026-09")], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00")), expect_flag: Some("taper:6/6"), ..Case::default() },
        Case { rule: "P9: arrears paid once in its month, as its own line", decisions: vec![with_amount(decision("A", Arrears, "2026-11"), "300.00")], expect: Some((Pay, "1000.00", "0.00", "300.00", "0.00", "0.00", "1300.00")), ..Case::default() },
        Case { rule: "P9: arrears already paid are not paid again", month: "2026-12", decisions: vec![with_amount(decision("A", Arrears, "2026-11"), "300.00")], history: vec![paid("2026-11", "0.00", &[ArrearsSource::Decision("A".into())])], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00")), ..Case::default() },
        Case { rule: "P9: arrears whose payment failed are paid again", month: "2026-12", decisions: vec![with_amount(decision("A", Arrears, "2026-11"), "300.00")], history: vec![PriorLine { instructed_ok: false, ..paid("2026-11", "0.00", &[ArrearsSource::Decision("A".into())]) }], expect: Some((Pay, "1000.00", "0.00", "300.00", "0.00", "0.00", "1300.00")), ..Case::default() },
        Case { rule: "P9: suspended months are not paid", month: "2026-10", decisions: vec![decision("S", Suspend, "2026-09"), with_months(decision("R", Resume, "2026-11"), 2)], expect: Some((Stopped, "0.00", "0.00", "0.00", "0.00", "0.00", "0.00")), expect_flag: Some("suspended"), ..Case::default() },
        Case { rule: "P9: resume with back pay of the 2 suspended months", decisions: vec![decision("S", Suspend, "2026-09"), with_months(decision("R", Resume, "2026-11"), 2)], expect: Some((Pay, "1000.00", "0.00", "2000.00", "0.00", "0.00", "3000.00")), ..Case::default() },
        Case { rule: "P9: resume back pay skips a suspended month already paid (no double pay)", decisions: vec![decision("S", Suspend, "2026-09"), with_months(decision("R", Resume, "2026-11"), 2)], history: vec![paid("2026-10", "0.00", &[])], expect: Some((Pay, "1000.00", "0.00", "1000.00", "0.00", "0.00", "2000.00")), ..Case::default() },
        Case { rule: "P9 + P11: resume back pay never covers blacklisted months (of 3 months back, only 2027-03 is after the blacklist)", month: "2027-04", decisions: vec![decision("S", Suspend, "2026-02"), decision("B", Blacklist, "2026-03"), with_months(decision("R", Resume, "2027-04"), 3)], expect: Some((Pay, "1000.00", "0.00", "1000.00", "0.00", "0.00", "2000.00")), ..Case::default() },
        Case { rule: "exactly once: a household another standing run paid this month gets nothing here", history: vec![paid("2026-11", "0.00", &[])], expect: Some((Stopped, "0.00", "0.00", "0.00", "0.00", "0.00", "0.00")), expect_flag: Some("paid_in_other_run"), ..Case::default() },
        Case { rule: "P9: resume with a back-pay amount", decisions: vec![decision("S", Suspend, "2026-09"), with_amount(decision("R", Resume, "2026-11"), "1500.00")], policy: { let mut p = policy(); p.recovery_cap_share = Decimal::ZERO; p }, expect: Some((Pay, "1000.00", "0.00", "1500.00", "0.00", "0.00", "2500.00")), ..Case::default() },
        Case { rule: "P9: months a run left out (late import) are paid as arrears", versions: vec![household("2026-09", "1000.00")], run_months: vec![month("2026-08"), month("2026-09"), month("2026-10")], expect: Some((Pay, "1000.00", "0.00", "2000.00", "0.00", "0.00", "3000.00")), ..Case::default() },
        Case { rule: "P9 + #5: a month whose payment failed is re-issued, naming the original", run_months: vec![month("2026-10")], history: vec![PriorLine { instructed_ok: false, ..paid("2026-10", "0.00", &[]) }], expect: Some((Pay, "1000.00", "0.00", "1000.00", "0.00", "0.00", "2000.00")), expect_flag: Some("reissue:DB000001-2026-10"), ..Case::default() },
        Case { rule: "P9: a held month is paid as arrears once released", run_months: vec![month("2026-10")], history: vec![PriorLine { status: LineStatus::Hold, ..paid("2026-10", "0.00", &[]) }], expect: Some((Pay, "1000.00", "0.00", "1000.00", "0.00", "0.00", "2000.00")), ..Case::default() },
        Case { rule: "P9: a month already paid is not arrears", run_months: vec![month("2026-10")], history: vec![paid("2026-10", "0.00", &[])], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00")), ..Case::default() },
        Case { rule: "P10: recovery capped at 30% of the month's payable", decisions: vec![with_amount(decision("C", Recover, "2026-10"), "1200.00")], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "300.00", "700.00")), ..Case::default() },
        Case { rule: "P10: the last instalment takes only what is left", decisions: vec![with_amount(decision("C", Recover, "2026-08"), "1200.00")], history: vec![paid("2026-08", "300.00", &[]), paid("2026-09", "300.00", &[]), paid("2026-10", "300.00", &[])], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "300.00", "700.00")), ..Case::default() },
        Case { rule: "P10 / FAILURES #27: recovery stops by itself once cleared", decisions: vec![with_amount(decision("C", Recover, "2026-07"), "1000.00")], history: vec![paid("2026-07", "300.00", &[]), paid("2026-08", "300.00", &[]), paid("2026-09", "300.00", &[]), paid("2026-10", "100.00", &[])], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00")), ..Case::default() },
        Case { rule: "P10: a failed payment's recovery is put back", decisions: vec![with_amount(decision("C", Recover, "2026-10"), "400.00")], history: vec![PriorLine { instructed_ok: false, ..paid("2026-10", "300.00", &[]) }], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "300.00", "700.00")), ..Case::default() },
        Case { rule: "P10: recovery stops with the household's stop", decisions: vec![with_amount(decision("C", Recover, "2026-10"), "1200.00"), decision("S", Stop, "2026-11")], expect: Some((Stopped, "0.00", "0.00", "0.00", "0.00", "0.00", "0.00")), ..Case::default() },
        Case { rule: "P7 + P10: taper and recovery together", decisions: vec![with_months(decision("T", Taper, "2026-10"), 3), with_amount(decision("C", Recover, "2026-10"), "100.00")], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "100.00", "900.00")), expect_flag: Some("taper:2/3"), ..Case::default() },
        Case { rule: "P9 + P10: arrears count under the recovery cap", decisions: vec![with_amount(decision("A", Arrears, "2026-11"), "1000.00"), with_amount(decision("C", Recover, "2026-10"), "5000.00")], expect: Some((Pay, "1000.00", "0.00", "1000.00", "0.00", "600.00", "1400.00")), ..Case::default() },
        Case { rule: "P8 + P10: a 100% reduction leaves nothing and recovers nothing", decisions: vec![{ let mut d = decision("R", Reduce, "2026-10"); d.percent = Some(Decimal::from(100)); d }, with_amount(decision("C", Recover, "2026-10"), "100.00")], expect: Some((Zero, "1000.00", "0.00", "0.00", "1000.00", "0.00", "0.00")), ..Case::default() },
        Case { rule: "P11: a blacklist stops payment for 12 months, even with a new approval", month: "2027-02", versions: vec![household("2026-01", "1000.00"), household("2026-12", "800.00")], decisions: vec![decision("B", Blacklist, "2026-03")], expect: Some((Stopped, "0.00", "0.00", "0.00", "0.00", "0.00", "0.00")), expect_flag: Some("blacklisted"), ..Case::default() },
        Case { rule: "P11: after 12 months a new approval is paid", month: "2027-03", versions: vec![household("2026-01", "1000.00"), household("2027-03", "800.00")], decisions: vec![decision("B", Blacklist, "2026-03")], expect: Some((Pay, "800.00", "0.00", "0.00", "0.00", "0.00", "800.00")), ..Case::default() },
        Case { rule: "P3: a three-no household reviewed 2025-09-01 is overdue in 2026-11", versions: vec![{ let mut h = household("2026-01", "1000.00"); h.last_review = NaiveDate::from_ymd_opt(2025, 9, 1).unwrap(); h }], expect: Some((Pay, "1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00")), expect_flag: Some("review_overdue"), ..Case::default() },
        Case { rule: "flag: an amount above 3× the standard × members", versions: vec![household("2026-01", "6000.00")], expect: Some((Pay, "6000.00", "0.00", "0.00", "0.00", "0.00", "6000.00")), expect_flag: Some("amount_above_multiple"), ..Case::default() },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn holds_follow_the_policy() {
    let policy = policy();
    let input_versions = vec![household("2026-01", "1000.00")];
    let input = HouseholdMonth {
        month: month("2026-11"),
        pay_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        versions: &input_versions,
        decisions: &[],
        history: &[],
        run_months: &[],
    };
    let mut line = compute(&policy, &input).unwrap();
    line.flags.push(flag::STAFF_RELATIVE.into());
    apply_holds(&policy, &mut line);
    assert_eq!(
        line.status,
        LineStatus::Pay,
        "P15 staff relatives warn by default"
    );
    line.flags.push(flag::SHARED_ACCOUNT.into());
    apply_holds(&policy, &mut line);
    assert_eq!(
        line.status,
        LineStatus::Hold,
        "a shared account holds by default"
    );
}

proptest! {
    /// Over a year of months with random decisions: payable ≥ 0, payable is its parts,
    /// and what is recovered never exceeds what is owed.
    #[test]
    fn money_invariants_over_a_year(
        base in 0i64..300_000,
        owed in 0i64..2_000_000,
        arrears in 0i64..200_000,
        percent in 0u32..=100,
        cap_percent in 0u32..=100,
        elderly in 0u32..=2,
    ) {
        let mut policy = policy();
        policy.recovery_cap_share = Decimal::from(cap_percent) / Decimal::ONE_HUNDRED;
        let versions = vec![with_classes(household("2026-01", &Fen::new(base).to_string()), elderly, 0)];
        let mut decisions = vec![
            with_amount(decision("C", DecisionKind::Recover, "2026-02"), &Fen::new(owed.max(1)).to_string()),
            with_amount(decision("A", DecisionKind::Arrears, "2026-03"), &Fen::new(arrears.max(1)).to_string()),
        ];
        if percent > 0 {
            let mut reduce = decision("R", DecisionKind::Reduce, "2026-04");
            reduce.percent = Some(Decimal::from(percent));
            reduce.end_month = Some(month("2026-06"));
            decisions.push(reduce);
        }
        let mut history = Vec::new();
        let mut recovered = Fen::ZERO;
        for index in 0..12 {
            let this_month = month("2026-01").plus(index);
            let input = HouseholdMonth {
                month: this_month,
                pay_date: this_month.first_day(),
                versions: &versions,
                decisions: &decisions,
                history: &history,
                run_months: &[],
            };
            let line = compute(&policy, &input).unwrap();
            prop_assert!(line.payable >= Fen::ZERO);
            prop_assert_eq!(
                line.base.plus(line.supplements).plus(line.arrears).minus(line.reduction).minus(line.recovery),
                line.payable
            );
            recovered = recovered.plus(line.recovery);
            prop_assert!(recovered <= Fen::new(owed.max(1)), "recovered {} of {}", recovered, owed);
            history.push(PriorLine {
                month: this_month,
                end_to_end_id: String::new(),
                status: line.status,
                recovery: line.recovery,
                arrears_sources: line.arrears_sources.clone(),
                instructed_ok: true,
            });
        }
        let arrears_paid: Fen = history.iter().flat_map(|l| l.arrears_sources.iter()).filter(|s| **s == ArrearsSource::Decision("A".into())).map(|_| Fen::new(1)).sum();
        prop_assert!(arrears_paid <= Fen::new(1), "arrears paid at most once");
    }
}
