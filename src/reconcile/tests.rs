//! Tests for reconciliation: the state machine's table and order-independence, the
//! reason-code table, the summary's invariants, a worked example, CSV injection and
//! masking, and the `report.html` golden file.

use super::exception::{ExceptionKind, ExceptionRow};
use super::html::{render_report_html, ApproverRow, BankFileRow, ReportData, TotalRow};
use super::next_step::{follow_up, next_step, NextStep};
use super::report::*;
use super::state::{apply_all, apply_result, PaymentState, ResultsSeen, Transition};
use crate::domain::bank_result::{PaymentResult, ResultStatus};
use crate::domain::household::{TreasuryVoucher, VoucherType};
use crate::domain::ids::BankCode;
use crate::domain::money::Fen;
use crate::domain::month::Month;
use crate::run::RunState;
use chrono::NaiveDate;
use proptest::prelude::*;
use std::path::PathBuf;

use ExceptionKind::{ConflictingResult, DuplicateResult};
use ResultStatus::{Failed, Paid, Pending, Returned};

// ---------- state ----------

#[test]
fn state_machine_table() {
    use PaymentState as S;
    use Transition::{Applied, Exception, Unchanged};
    let table: &[(&[ResultStatus], ResultStatus, Transition, S)] = &[
        (&[], Pending, Applied(S::Pending), S::Pending),
        (&[], Paid, Applied(S::Paid), S::Paid),
        (&[], Failed, Applied(S::Failed), S::Failed),
        (&[Pending], Pending, Unchanged, S::Pending),
        (&[Pending], Paid, Applied(S::Paid), S::Paid),
        (&[Paid], Pending, Unchanged, S::Paid),
        (&[Failed], Pending, Unchanged, S::Failed),
        (&[Paid], Returned, Applied(S::Returned), S::Returned),
        (&[Returned], Paid, Unchanged, S::Returned),
        (&[Returned], Pending, Unchanged, S::Returned),
        (&[Paid], Paid, Exception(DuplicateResult), S::Paid),
        (&[Failed], Failed, Exception(DuplicateResult), S::Failed),
        (
            &[Paid, Returned],
            Returned,
            Exception(DuplicateResult),
            S::Returned,
        ),
        (&[Paid], Failed, Exception(ConflictingResult), S::Disputed),
        (&[Failed], Paid, Exception(ConflictingResult), S::Disputed),
        (
            &[Failed],
            Returned,
            Exception(ConflictingResult),
            S::Disputed,
        ),
        (&[Paid, Failed], Returned, Unchanged, S::Disputed),
        (
            &[Paid, Failed],
            Failed,
            Exception(DuplicateResult),
            S::Disputed,
        ),
        (&[Paid, Failed], Pending, Unchanged, S::Disputed),
    ];
    for (history, incoming, transition, state) in table {
        let step = apply_result(ResultsSeen::of(history.iter().copied()), *incoming);
        assert_eq!(step.transition, *transition, "{history:?} + {incoming:?}");
        assert_eq!(step.state, *state, "{history:?} + {incoming:?}");
        assert_eq!(step.seen.state(), *state);
    }
}

fn status() -> impl Strategy<Value = ResultStatus> {
    prop_oneof![Just(Pending), Just(Paid), Just(Failed), Just(Returned)]
}

fn sorted(mut kinds: Vec<ExceptionKind>) -> Vec<ExceptionKind> {
    kinds.sort();
    kinds
}

/// The exceptions the module doc promises, computed from the multiset alone.
fn expected_exceptions(results: &[ResultStatus]) -> Vec<ExceptionKind> {
    let mut kinds = Vec::new();
    for terminal in [Paid, Failed, Returned] {
        let repeats = results.iter().filter(|s| **s == terminal).count();
        kinds.extend(std::iter::repeat_n(
            DuplicateResult,
            repeats.saturating_sub(1),
        ));
    }
    if ResultsSeen::of(results.iter().copied()).state() == PaymentState::Disputed {
        kinds.push(ConflictingResult);
    }
    sorted(kinds)
}

proptest! {
    /// FAILURES #8: any order of the same results gives one final state and the same
    /// exceptions (as a multiset, which is stronger than as a set).
    #[test]
    fn any_order_gives_the_same_outcome(
        (original, shuffled) in proptest::collection::vec(status(), 0..10)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
    ) {
        let (state_a, kinds_a) = apply_all(original.iter().copied());
        let (state_b, kinds_b) = apply_all(shuffled.iter().copied());
        prop_assert_eq!(state_a, state_b);
        prop_assert_eq!(state_a, ResultsSeen::of(original.iter().copied()).state());
        prop_assert_eq!(sorted(kinds_a.clone()), sorted(kinds_b));
        prop_assert_eq!(sorted(kinds_a), expected_exceptions(&original));
    }

    /// A state never goes backwards: every change raises its rank.
    #[test]
    fn state_never_goes_backwards(results in proptest::collection::vec(status(), 0..10)) {
        let mut seen = ResultsSeen::NONE;
        for status in results {
            let step = apply_result(seen, status);
            let before = seen.state();
            prop_assert!(step.state == before || step.state.rank() > before.rank(),
                "{:?} -> {:?} on {:?}", before, step.state, status);
            seen = step.seen;
        }
    }
}

// ---------- next step ----------

#[test]
fn reason_codes_lead_to_next_steps() {
    let table = [
        ("AC01", NextStep::HoldUntilCorrectedAccount),
        ("AC04", NextStep::HoldUntilCorrectedAccount),
        ("AC06", NextStep::HoldUntilCorrectedAccount),
        ("BE01", NextStep::HoldUntilCorrectedAccount),
        ("MD07", NextStep::StopHouseholdAndFlag),
        ("AM05", NextStep::Exception),
        ("NARR", NextStep::Exception),
        ("XX99", NextStep::Exception),
        ("", NextStep::Exception),
    ];
    for (code, step) in table {
        assert_eq!(next_step(code), step, "{code}");
    }
}

fn result(status: ResultStatus, code: Option<&str>, text: Option<&str>) -> PaymentResult {
    PaymentResult {
        end_to_end_id: "DB000001-00000007".into(),
        status,
        amount: None,
        reason_code: code.map(String::from),
        reason_text: text.map(String::from),
        bank_serial: None,
        line: 3,
    }
}

#[test]
fn follow_up_maps_chinese_text_and_keeps_masked_text() {
    let deceased = follow_up(&result(Failed, None, Some("账户人已死亡"))).unwrap();
    assert_eq!(deceased.step, NextStep::StopHouseholdAndFlag);
    assert_eq!(deceased.reason_code, "MD07");
    let narr = follow_up(&result(
        Failed,
        Some("NARR"),
        Some("请核对 6222020200001234567"),
    ))
    .unwrap();
    assert_eq!(narr.step, NextStep::Exception);
    assert_eq!(narr.reason_text.as_deref(), Some("请核对 ****4567"));
    let closed_return = follow_up(&result(Returned, Some("AC04"), None)).unwrap();
    assert_eq!(closed_return.step, NextStep::HoldUntilCorrectedAccount);
    let bare = follow_up(&result(Failed, None, None)).unwrap();
    assert_eq!(
        (bare.reason_code.as_str(), bare.step),
        ("NARR", NextStep::Exception)
    );
    assert_eq!(follow_up(&result(Paid, None, None)), None);
    assert_eq!(follow_up(&result(Pending, None, None)), None);
}

// ---------- summary ----------

const BANKS: [&str; 3] = ["102100099996", "402331000011", "103100000026"];

fn voucher(
    no: &str,
    kind: VoucherType,
    original: Option<&str>,
    batch: &str,
    bank: &str,
    fen: i64,
) -> TreasuryVoucher {
    TreasuryVoucher {
        voucher_no: no.into(),
        voucher_type: kind,
        original_voucher_no: original.map(String::from),
        batch_id: batch.into(),
        bank_code: BankCode::parse(bank).unwrap(),
        amount: Fen::new(fen),
        date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    }
}

fn payment_state() -> impl Strategy<Value = PaymentState> {
    use PaymentState::*;
    prop_oneof![
        Just(Instructed),
        Just(Pending),
        Just(Paid),
        Just(Failed),
        Just(Returned),
        Just(Disputed)
    ]
}

fn batch_input() -> impl Strategy<Value = (Vec<(PaymentState, Fen)>, i64, i64)> {
    let payment = (payment_state(), 1i64..200_000).prop_map(|(s, fen)| (s, Fen::new(fen)));
    (
        proptest::collection::vec(payment, 0..30),
        0i64..5_000_000,
        0i64..1_000_000,
    )
}

proptest! {
    #[test]
    fn summary_rows_keep_their_invariants(batches in proptest::collection::vec(batch_input(), 1..5)) {
        let mut vouchers = Vec::new();
        let mut facts = Vec::new();
        for (index, (payments, funded, refunded)) in batches.iter().enumerate() {
            let batch = format!("B{index:03}");
            let bank = BANKS[index % BANKS.len()];
            let funding = format!("F{index}");
            vouchers.push(voucher(&funding, VoucherType::DirectPayment, None, &batch, bank, *funded));
            vouchers.push(voucher(&format!("R{index}"), VoucherType::Refund2302, Some(&funding), &batch, bank, *refunded));
            facts.push(BatchFacts::tally(&batch, bank, payments, &vouchers));
        }
        let rows = summary_rows(&facts).unwrap();
        prop_assert_eq!(rows.len(), facts.len() + 1);
        for row in &rows {
            let f = &row.figures;
            prop_assert_eq!(f.instructed_count, f.paid_count + f.failed_count + f.returned_count + f.pending_count);
            prop_assert_eq!(f.instructed, f.paid.plus(f.failed).plus(f.returned).plus(f.pending));
            prop_assert_eq!(row.difference, f.funded.minus(f.refunded).minus(f.paid));
        }
        let (run, batch_rows) = rows.split_last().unwrap();
        prop_assert_eq!(run.scope, Scope::Run);
        prop_assert!(run.figures.batch_id.is_empty() && run.figures.bank_code.is_empty());
        let sum = |get: fn(&SummaryRow) -> Fen| batch_rows.iter().map(get).sum::<Fen>();
        prop_assert_eq!(run.figures.instructed, sum(|r| r.figures.instructed));
        prop_assert_eq!(run.figures.paid, sum(|r| r.figures.paid));
        prop_assert_eq!(run.figures.pending, sum(|r| r.figures.pending));
        prop_assert_eq!(run.figures.funded, sum(|r| r.figures.funded));
        prop_assert_eq!(run.difference, sum(|r| r.difference));
        prop_assert_eq!(run.figures.instructed_count, batch_rows.iter().map(|r| r.figures.instructed_count).sum::<i64>());
        for (facts, (payments, _, _)) in facts.iter().zip(&batches) {
            let total: Fen = payments.iter().map(|(_, fen)| *fen).sum();
            prop_assert_eq!(facts.instructed, total);
        }
    }
}

proptest! {
    /// Reconcile tallies from the store's totals by status; those must give the figures
    /// that counting each payment gives, for any mix of states and amounts.
    #[test]
    fn tallies_from_totals_by_state_equal_tallies_payment_by_payment((payments, funded, refunded) in batch_input()) {
        let vouchers = vec![
            voucher("F0", VoucherType::DirectPayment, None, "B000", BANKS[0], funded),
            voucher("R0", VoucherType::Refund2302, Some("F0"), "B000", BANKS[0], refunded),
        ];
        let mut by_state: std::collections::BTreeMap<&str, StateTotal> = Default::default();
        for &(state, amount) in &payments {
            let total = by_state.entry(state.as_str()).or_insert(StateTotal { state, count: 0, amount: Fen::ZERO });
            total.count += 1;
            total.amount = total.amount.plus(amount);
        }
        let totals: Vec<StateTotal> = by_state.into_values().collect();
        prop_assert_eq!(
            BatchFacts::tally_totals("B000", BANKS[0], &totals, &vouchers),
            BatchFacts::tally("B000", BANKS[0], &payments, &vouchers)
        );
    }
}

/// Three banks, three payments each, one failure per bank; the treasury funded what
/// was instructed, took back what failed, and each bank cleared what it paid.
fn worked_example() -> (Vec<BatchFacts>, Vec<TreasuryVoucher>) {
    let mut facts = Vec::new();
    let mut vouchers = Vec::new();
    for (index, bank) in BANKS.iter().enumerate() {
        let batch = format!("B202611-{:02}", index + 1);
        let payments = [
            (PaymentState::Paid, Fen::new(52_340)),
            (PaymentState::Paid, Fen::new(31_000)),
            (PaymentState::Failed, Fen::new(12_000 + index as i64)),
        ];
        let instructed: Fen = payments.iter().map(|p| p.1).sum();
        let funding = format!("5201-{}", index + 1);
        vouchers.extend([
            voucher(
                &funding,
                VoucherType::DirectPayment,
                None,
                &batch,
                bank,
                instructed.as_i64(),
            ),
            voucher(
                &format!("2302-{}", index + 1),
                VoucherType::Refund2302,
                Some(&funding),
                &batch,
                bank,
                12_000 + index as i64,
            ),
            voucher(
                &format!("2301-{}", index + 1),
                VoucherType::ClearingRequest,
                None,
                &batch,
                bank,
                83_340,
            ),
        ]);
        facts.push(BatchFacts::tally(&batch, bank, &payments, &vouchers));
    }
    (facts, vouchers)
}

#[test]
fn worked_example_reconciles_to_zero() {
    let (facts, vouchers) = worked_example();
    for batch in &facts {
        assert_eq!(treasury_exceptions(batch), vec![], "{}", batch.batch_id);
    }
    assert_eq!(unmatched_vouchers(&vouchers, &facts), vec![]);
    let csv = write_summary_csv(&summary_rows(&facts).unwrap());
    let expected = "\
scope,batch_id,bank_code,instructed_count,instructed,paid_count,paid,failed_count,failed,returned_count,returned,pending_count,pending,funded,refunded,difference
batch,B202611-01,102100099996,3,953.40,2,833.40,1,120.00,0,0.00,0,0.00,953.40,120.00,0.00
batch,B202611-02,402331000011,3,953.41,2,833.40,1,120.01,0,0.00,0,0.00,953.41,120.01,0.00
batch,B202611-03,103100000026,3,953.42,2,833.40,1,120.02,0,0.00,0,0.00,953.42,120.02,0.00
run,,,9,2860.23,6,2500.20,3,360.03,0,0.00,0,0.00,2860.23,360.03,0.00
";
    assert_eq!(csv, expected);
}

#[test]
fn unbalanced_or_repeated_batches_are_refused() {
    let (mut facts, _) = worked_example();
    facts[1].pending_count += 1;
    assert!(matches!(
        summary_rows(&facts),
        Err(ReconcileError::Unbalanced { .. })
    ));
    let (mut facts, _) = worked_example();
    facts[2].batch_id = facts[0].batch_id.clone();
    assert!(matches!(
        summary_rows(&facts),
        Err(ReconcileError::DuplicateBatch { .. })
    ));
}

#[test]
fn every_treasury_difference_is_itemised() {
    let (facts, _) = worked_example();
    let mut batch = facts[0].clone();
    batch.funded = batch.funded.plus(Fen::new(500)); // over-funded by 5.00
    batch.refunded = Fen::ZERO; // the failed 120.00 never went back
    batch.clearing = Some(batch.paid.minus(Fen::new(1)));
    let rows = treasury_exceptions(&batch);
    let kinds: Vec<(ExceptionKind, Option<Fen>)> =
        rows.iter().map(|r| (r.kind, r.amount)).collect();
    assert_eq!(
        kinds,
        vec![
            (ExceptionKind::FundingMismatch, Some(Fen::new(500))),
            (ExceptionKind::RefundMismatch, Some(Fen::new(-12_000))),
            (ExceptionKind::ClearingMismatch, Some(Fen::new(-1))),
            (ExceptionKind::TreasuryDifference, Some(Fen::new(12_500))),
        ]
    );
    assert!(rows.iter().all(|r| r.batch_id == "B202611-01"));
    let mut no_clearing = facts[0].clone();
    no_clearing.clearing = None;
    assert_eq!(treasury_exceptions(&no_clearing), vec![]);
}

#[test]
fn stray_vouchers_and_unlinked_refunds_are_exceptions() {
    let (facts, mut vouchers) = worked_example();
    vouchers.push(voucher(
        "5201-9",
        VoucherType::DirectPayment,
        None,
        "B999",
        BANKS[0],
        100,
    ));
    vouchers.push(voucher(
        "2203-9",
        VoucherType::Refund2203,
        Some("5201-404"),
        "B202611-01",
        BANKS[0],
        5,
    ));
    let rows = unmatched_vouchers(&vouchers, &facts);
    let found: Vec<(&str, ExceptionKind)> = rows
        .iter()
        .map(|r| (r.voucher_no.as_str(), r.kind))
        .collect();
    assert_eq!(
        found,
        vec![
            ("5201-9", ExceptionKind::UnmatchedVoucher),
            ("2203-9", ExceptionKind::UnmatchedVoucher)
        ]
    );
}

// ---------- CSV ----------

#[test]
fn csv_injection_is_guarded_and_amounts_stay_numeric() {
    let cases = [
        (
            "=HYPERLINK(\"http://x\",\"y\")",
            "'=HYPERLINK(\"http://x\",\"y\")",
        ),
        ("+1", "'+1"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("张*", "张*"),
    ];
    for (input, expected) in cases {
        assert_eq!(guard_cell(input), expected);
    }
    let row = ExceptionRow {
        end_to_end_id: "=cmd|' /C calc'!A0".into(),
        amount: Some(Fen::new(-1200)),
        ..ExceptionRow::new(
            ExceptionKind::AmountMismatch,
            "@B1",
            "=HYPERLINK(\"http://x\")".into(),
        )
    };
    let csv = write_exceptions_csv(&[row]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let record = reader.records().next().unwrap().unwrap();
    assert_eq!(&record[1], "'@B1");
    assert_eq!(&record[2], "'=cmd|' /C calc'!A0");
    assert_eq!(&record[4], "-12.00", "amounts are not guarded");
    assert_eq!(&record[5], "'=HYPERLINK(\"http://x\")");
    assert!(csv.starts_with(&format!("{EXCEPTIONS_CSV_HEADER}\n")));
}

/// Length of the longest run of ASCII digits (an `X` check character counts, as in IDs).
fn longest_digit_run(text: &str) -> usize {
    let (mut longest, mut current) = (0, 0);
    for c in text.chars() {
        current = if c.is_ascii_digit() || (current > 0 && c == 'X') {
            current + 1
        } else {
            0
        };
        longest = longest.max(current);
    }
    longest
}

const RAW_ID: &str = "11010519491231002X";
const RAW_ACCOUNT: &str = "6222020200001234567";

#[test]
fn exceptions_csv_leaks_no_id_or_account() {
    let rows = vec![
        ExceptionRow {
            end_to_end_id: "DB000001-00000009".into(),
            ..ExceptionRow::new(
                ExceptionKind::UnknownPayment,
                "B202611-01",
                format!("bank says account {RAW_ACCOUNT} of {RAW_ID} unknown"),
            )
        },
        ExceptionRow::new(
            ExceptionKind::FailureNeedsReview,
            "B202611-02",
            format!("NARR:{RAW_ID}"),
        ),
    ];
    let csv = write_exceptions_csv(&rows);
    assert!(!csv.contains(RAW_ID) && !csv.contains(RAW_ACCOUNT), "{csv}");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    for record in reader.records() {
        let detail = record.unwrap()[5].to_string();
        assert!(longest_digit_run(&detail) < 8, "{detail}");
    }
    // Our own identifiers never hold an ID-length run either.
    assert!(longest_digit_run(&csv) < 18);
}

// ---------- report.html ----------

fn totals(rows: &[(&str, i64, i64)]) -> Vec<TotalRow> {
    rows.iter()
        .map(|(label, count, fen)| TotalRow {
            label: label.to_string(),
            count: *count,
            amount: Fen::new(*fen),
        })
        .collect()
}

fn report_data() -> ReportData {
    let (facts, _) = worked_example();
    let mut exceptions: Vec<ExceptionRow> = Vec::new();
    exceptions.push(ExceptionRow {
        end_to_end_id: "DB000001-00000003".into(),
        amount: Some(Fen::new(12_000)),
        ..ExceptionRow::new(
            ExceptionKind::FailureNeedsReview,
            "B202611-01",
            format!("NARR 户名 <张*> 账号 {RAW_ACCOUNT}"),
        )
    });
    exceptions.push(ExceptionRow {
        end_to_end_id: "XX999999-00000001".into(),
        ..ExceptionRow::new(
            ExceptionKind::UnknownPayment,
            "B202611-02",
            format!("证件 {RAW_ID}"),
        )
    });
    ReportData {
        run_id: "R202611-000001".into(),
        month: Month::parse("2026-11").unwrap(),
        programme: "dibao 城市低保".into(),
        scope: "110105 朝阳区".into(),
        pay_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        run_digest: "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f".into(),
        state: RunState::Reconciled,
        by_region: totals(&[("110105 朝阳区", 6, 190_682), ("110108 海淀区", 3, 95_341)]),
        by_area: totals(&[("urban 城镇", 7, 200_000), ("rural 农村", 2, 86_023)]),
        by_bank: totals(&[
            ("工商银行 ICBC", 3, 95_340),
            ("农信社 RCC", 3, 95_341),
            ("农业银行 ABC", 3, 95_342),
        ]),
        by_batch: totals(&[
            ("B202611-01", 3, 95_340),
            ("B202611-02", 3, 95_341),
            ("B202611-03", 3, 95_342),
        ]),
        approvers: vec![
            ApproverRow {
                name: "李*".into(),
                approved_at: "2026-11-18 09:30 +08:00".into(),
                key_id: "k-li-2026".into(),
            },
            ApproverRow {
                name: "王* (acct 6222020200001234567)".into(),
                approved_at: "2026-11-18 10:05 +08:00".into(),
                key_id: "k-wang-2026".into(),
            },
        ],
        bank_files: vec![BankFileRow {
            file_name: "B202611-01.txt".into(),
            sha256: "3b7e0a9c2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f9f2c4e6a8b0d1f3e5a7c9b1d3f".into(),
            record_count: 3,
            total: Fen::new(95_340),
        }],
        summary: summary_rows(&facts).unwrap(),
        exceptions,
    }
}

fn golden_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(file)
}

#[test]
fn report_html_matches_golden_file() {
    let html = render_report_html(&report_data());
    let path = golden_path("report.html");
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, &html).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == html,
        "report.html differs from its golden file; run with UPDATE_GOLDEN=1 to inspect"
    );
}

#[test]
fn report_html_is_escaped_masked_and_self_contained() {
    let html = render_report_html(&report_data());
    assert!(!html.contains(RAW_ID) && !html.contains(RAW_ACCOUNT));
    assert!(html.contains("****4567") && html.contains("****002X"));
    assert!(html.contains("&lt;张*&gt;") && !html.contains("<张*>"));
    assert!(longest_digit_run(&html) < 18, "no ID-length digit run");
    for forbidden in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(forbidden), "{forbidden}");
    }
    assert!(html.contains("@media print") && html.contains("低保金发放对账报告"));
    assert!(html.contains("审核人") && html.contains("k-wang-2026"));
    assert_eq!(html, render_report_html(&report_data()), "deterministic");
}
