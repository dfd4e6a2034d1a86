//! Runs, pure: identities (`run_id`, `end_to_end_id`), the state machine, the line as
//! stored, the digest approvals sign, and the approval coverage rule (CONTRACTS §5).
//!
//! **Invariants:** `end_to_end_id`s are derived from the run number and the line's
//! position, both fixed at compute time, so recomputing the same inputs gives the same
//! ids and the same digest; run numbers are never reused, so ids never repeat.

pub mod diff;

use crate::domain::digits::{ascii, fill_padded};
use crate::domain::money::Fen;
use crate::domain::month::Month;
use crate::policy::calc::{ArrearsSource, LineStatus};
use ring::digest::{Context, SHA256};

/// A run's state. `Computed → Approved → Exported → Reconciled`; `Cancelled` from
/// `Computed` or `Approved` only (after export, files may have reached a bank).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Computed,
    Approved,
    Exported,
    Reconciled,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Computed => "computed",
            RunState::Approved => "approved",
            RunState::Exported => "exported",
            RunState::Reconciled => "reconciled",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<RunState> {
        [
            RunState::Computed,
            RunState::Approved,
            RunState::Exported,
            RunState::Reconciled,
            RunState::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

/// What happens to a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEvent {
    /// Enough distinct approvers signed the current digest.
    ApprovalsComplete,
    Export,
    Reconcile,
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a run that is {from} cannot take {event:?}")]
pub struct TransitionError {
    pub from: &'static str,
    pub event: RunEvent,
}

/// The transition table.
pub fn next_state(state: RunState, event: RunEvent) -> Result<RunState, TransitionError> {
    use RunState::*;
    match (state, event) {
        (Computed | Approved, RunEvent::ApprovalsComplete) => Ok(Approved),
        (Approved | Exported, RunEvent::Export) => Ok(Exported),
        (Exported | Reconciled, RunEvent::Reconcile) => Ok(Reconciled),
        (Computed | Approved, RunEvent::Cancel) => Ok(Cancelled),
        (from, event) => Err(TransitionError {
            from: from.as_str(),
            event,
        }),
    }
}

/// `R202611-000001`: the month and the run number.
pub fn run_id(month: Month, run_no: i64) -> String {
    format!("R{}-{run_no:06}", month.compact())
}

/// `DB000001-00000001`: prefix, run number, line number. At most 4 + 6 + 1 + 8 = 19
/// characters of `[A-Za-z0-9-]` (CONTRACTS §3.1).
///
/// Spelt by hand, since every line of a run gets one. A number wider than its field,
/// or negative, is spelt by `format!` as before; the length check refuses only an id
/// longer than 20 characters.
pub fn end_to_end_id(prefix: &str, run_no: i64, line_no: i64) -> String {
    let mut numbers = *b"000000-00000000";
    let spelt = u64::try_from(run_no).is_ok_and(|run| fill_padded(&mut numbers[..6], run))
        && u64::try_from(line_no).is_ok_and(|line| fill_padded(&mut numbers[7..], line));
    let id = if spelt {
        let mut id = String::with_capacity(prefix.len() + numbers.len());
        id.push_str(prefix);
        id.push_str(ascii(&numbers));
        id
    } else {
        format!("{prefix}{run_no:06}-{line_no:08}")
    };
    assert!(
        id.len() <= 20,
        "end_to_end_id {id} longer than 20 characters"
    );
    id
}

/// Largest run number that keeps ids within their widths.
pub const RUN_NO_MAX: i64 = 999_999;
/// Largest number of lines in one run (the line number's width).
pub const RUN_LINES_MAX: i64 = 99_999_999;

/// Line numbers per run number in a payment key: one more than `RUN_LINES_MAX`.
pub const PAYMENT_KEY_LINES: i64 = RUN_LINES_MAX + 1;

/// A payment's key in the store: the two numbers its `end_to_end_id` is made of, as one
/// integer (`run_no * 10^8 + line_no`, at most 99,999,999,999,999). One to one with
/// (run, line), so the key alone keeps a line from being instructed twice, and the
/// store finds a payment by an integer instead of by text (issue #7).
pub fn payment_key(run_no: i64, line_no: i64) -> i64 {
    assert!(
        (1..=RUN_NO_MAX).contains(&run_no) && (1..=RUN_LINES_MAX).contains(&line_no),
        "run {run_no} line {line_no} outside the id's widths"
    );
    run_no * PAYMENT_KEY_LINES + line_no
}

/// The payment key an `end_to_end_id` names, read from its last 15 characters (six
/// digits, `-`, eight digits; the prefix before them is not looked at), or `None` when
/// they are not of that shape. An id from a bank may name no payment at all: the key
/// only says where to look, and the stored id must still equal it.
pub fn payment_key_of(end_to_end_id: &str) -> Option<i64> {
    let bytes = end_to_end_id.as_bytes();
    let suffix = bytes.get(bytes.len().checked_sub(15)?..)?;
    let (run_digits, rest) = suffix.split_at(6);
    let (dash, line_digits) = rest.split_at(1);
    if dash != b"-" {
        return None;
    }
    let number = |digits: &[u8]| -> Option<i64> {
        digits.iter().try_fold(0i64, |value, &byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + i64::from(byte - b'0'))
        })
    };
    let (run_no, line_no) = (number(run_digits)?, number(line_digits)?);
    (run_no >= 1 && line_no >= 1).then(|| run_no * PAYMENT_KEY_LINES + line_no)
}

/// A run's line as stored: the computation plus the snapshot of the account it pays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunLine {
    pub line_no: i64,
    pub household_id: String,
    pub approved_from: Month,
    pub region_code: String,
    pub area: String,
    pub status: LineStatus,
    pub base: Fen,
    pub supplements: Fen,
    pub arrears: Fen,
    pub reduction: Fen,
    pub recovery: Fen,
    pub payable: Fen,
    pub bank_code: String,
    pub account_number: String,
    pub account_name: String,
    pub head_id_number: String,
    pub end_to_end_id: String,
    pub flags: Vec<String>,
    pub arrears_sources: Vec<ArrearsSource>,
}

/// The header of `run lines` (CONTRACTS §4).
pub const LINES_CSV_HEADER: &str = "household_id,region_code,area,status,base,supplements,arrears,reduction,recovery,payable,bank_code,end_to_end_id,flags";

impl RunLine {
    /// The line as a `run lines` CSV record (no newline). Every value is from a closed
    /// alphabet (ids, codes, amounts, flag names), so no quoting or injection guard is
    /// needed; an assertion keeps it that way.
    pub fn to_csv(&self) -> String {
        let mut record = Vec::with_capacity(160);
        self.push_csv(&mut record);
        String::from_utf8(record).expect("run line values are UTF-8")
    }

    /// Appends the `to_csv` record to `out`.
    pub fn push_csv(&self, out: &mut Vec<u8>) {
        let start = out.len();
        for text in [
            self.household_id.as_str(),
            &self.region_code,
            &self.area,
            self.status.as_str(),
        ] {
            out.extend_from_slice(text.as_bytes());
            out.push(b',');
        }
        for amount in [
            self.base,
            self.supplements,
            self.arrears,
            self.reduction,
            self.recovery,
            self.payable,
        ] {
            amount.push_yuan(out);
            out.push(b',');
        }
        for text in [&self.bank_code, &self.end_to_end_id] {
            out.extend_from_slice(text.as_bytes());
            out.push(b',');
        }
        for (position, flag) in self.flags.iter().enumerate() {
            if position > 0 {
                out.push(b';');
            }
            out.extend_from_slice(flag.as_bytes());
        }
        let record = &out[start..];
        assert!(
            !record.iter().any(|b| matches!(b, b'"' | b'\n' | b'\r'))
                && !matches!(record.first(), Some(b'=' | b'+' | b'@' | b'\t')),
            "run line values are from closed alphabets"
        );
    }
}

/// The totals of a run, recomputed from its lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub line_count: i64,
    pub pay_count: i64,
    pub payable: Fen,
    pub hold_count: i64,
    pub hold: Fen,
}

impl RunTotals {
    pub fn add(&mut self, line: &RunLine) {
        self.line_count += 1;
        match line.status {
            LineStatus::Pay => {
                self.pay_count += 1;
                self.payable = self.payable.plus(line.payable);
            }
            LineStatus::Hold => {
                self.hold_count += 1;
                self.hold = self.hold.plus(line.payable);
            }
            LineStatus::Stopped | LineStatus::Zero => {}
        }
    }
}

/// The run's digest: SHA-256 over its header, every line (with the account it pays),
/// its totals and its inputs' hash. Approvals sign this (CONTRACTS §5).
pub struct RunDigest {
    context: Context,
    totals: RunTotals,
    /// Scratch for one line's bytes, kept between lines.
    line_bytes: Vec<u8>,
}

/// What identifies a run's content besides its lines.
pub struct RunHeader<'a> {
    pub run_id: &'a str,
    pub programme: &'a str,
    pub month: Month,
    pub scope: &'a str,
    pub pay_date: &'a str,
}

impl RunDigest {
    pub fn new(header: &RunHeader<'_>) -> RunDigest {
        let mut context = Context::new(&SHA256);
        let text = format!(
            "disburse-run-v1\n{}\n{}\n{}\n{}\n{}\n",
            header.run_id, header.programme, header.month, header.scope, header.pay_date
        );
        context.update(text.as_bytes());
        RunDigest {
            context,
            totals: RunTotals::default(),
            line_bytes: Vec::with_capacity(256),
        }
    }

    pub fn add_line(&mut self, line: &RunLine) {
        // One buffer, reused: the record, then the account snapshot the approval binds.
        let mut bytes = std::mem::take(&mut self.line_bytes);
        bytes.clear();
        line.push_csv(&mut bytes);
        bytes.push(b',');
        line.approved_from
            .with_text(|month| bytes.extend_from_slice(month.as_bytes()));
        for text in [
            &line.account_number,
            &line.account_name,
            &line.head_id_number,
        ] {
            bytes.push(b',');
            bytes.extend_from_slice(text.as_bytes());
        }
        bytes.push(b',');
        for (position, source) in line.arrears_sources.iter().enumerate() {
            if position > 0 {
                bytes.push(b';');
            }
            bytes.extend_from_slice(source.to_text().as_bytes());
        }
        bytes.push(b'\n');
        self.context.update(&bytes);
        self.line_bytes = bytes;
        self.totals.add(line);
    }

    /// The digest, closing over the totals and the hash of the run's frozen inputs.
    pub fn finish(self, input_sha256: &str) -> (String, RunTotals) {
        let mut context = self.context;
        let totals = self.totals;
        let text = format!(
            "totals,{},{},{},{},{}\ninputs,{input_sha256}\n",
            totals.line_count, totals.pay_count, totals.payable, totals.hold_count, totals.hold
        );
        context.update(text.as_bytes());
        (hex::encode(context.finish()), totals)
    }
}

/// The bytes an approver signs: the run, its digest, and the count and money leaving,
/// so an approval binds exactly what it saw (FAILURES #13, security table).
pub fn approval_message(run_id: &str, digest: &str, pay_count: i64, payable: Fen) -> Vec<u8> {
    format!("disburse-approval-v1\nrun {run_id}\ndigest {digest}\npayments {pay_count}\ntotal {payable}\n").into_bytes()
}

/// One stored approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub approver: String,
    pub digest: String,
    pub signature_valid: bool,
}

/// Whether approvals cover the run's current digest: enough distinct approvers, none
/// of them the creator, each with a valid signature over that digest.
pub fn approvals_cover(
    current_digest: &str,
    created_by: &str,
    required: u32,
    approvals: &[ApprovalRecord],
) -> bool {
    let mut approvers: Vec<&str> = approvals
        .iter()
        .filter(|a| a.digest == current_digest && a.signature_valid && a.approver != created_by)
        .map(|a| a.approver.as_str())
        .collect();
    approvers.sort_unstable();
    approvers.dedup();
    approvers.len() >= required as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use RunEvent::{ApprovalsComplete, Cancel, Export, Reconcile};
        use RunState::*;
        let table = [
            (Computed, ApprovalsComplete, Some(Approved)),
            (Computed, Export, None),
            (Approved, Export, Some(Exported)),
            (Exported, Export, Some(Exported)),
            (Exported, Cancel, None),
            (Computed, Cancel, Some(Cancelled)),
            (Approved, Cancel, Some(Cancelled)),
            (Cancelled, ApprovalsComplete, None),
            (Exported, Reconcile, Some(Reconciled)),
            (Reconciled, Cancel, None),
        ];
        for (from, event, to) in table {
            assert_eq!(next_state(from, event).ok(), to, "{from:?} + {event:?}");
        }
    }

    #[test]
    fn identities_fit_the_contract() {
        let id = end_to_end_id("DB", RUN_NO_MAX, RUN_LINES_MAX);
        assert!(
            id.len() <= 20 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{id}"
        );
        assert_eq!(
            run_id(Month::parse("2026-11").unwrap(), 7),
            "R202611-000007"
        );
    }

    /// Spelt by hand, an id is what `format!` with padding spells: at the fields'
    /// edges, past them (wider or negative numbers, spelt by `format!`), and at random.
    #[test]
    fn an_end_to_end_id_is_its_padded_format() {
        let spelt_by_format =
            |prefix: &str, run_no: i64, line_no: i64| format!("{prefix}{run_no:06}-{line_no:08}");
        for (prefix, run_no, line_no) in [
            ("DB", 0, 0),
            ("DB", 1, 1),
            ("", RUN_NO_MAX, RUN_LINES_MAX),
            ("ABCD", RUN_NO_MAX, RUN_LINES_MAX),
            ("DB", RUN_NO_MAX + 1, 1),
            ("DB", 1, RUN_LINES_MAX + 1),
            ("DB", -1, 5),
            ("DB", 5, -1),
        ] {
            assert_eq!(
                end_to_end_id(prefix, run_no, line_no),
                spelt_by_format(prefix, run_no, line_no)
            );
        }
        proptest::proptest!(|(prefix in "[A-Z0-9]{0,4}", run_no in -2i64..2_000_000, line_no in -2i64..200_000_000)| {
            let expected = spelt_by_format(&prefix, run_no, line_no);
            proptest::prop_assume!(expected.len() <= 20);
            proptest::prop_assert_eq!(end_to_end_id(&prefix, run_no, line_no), expected);
        });
    }

    #[test]
    fn a_payment_key_is_the_two_numbers_of_its_id() {
        let table = [
            ("DB", 1, 1, 100_000_001),
            ("DB", 7, 42, 700_000_042),
            ("X", RUN_NO_MAX, RUN_LINES_MAX, 99_999_999_999_999),
            ("A1B2", 123_456, 12_345_678, 12_345_612_345_678),
        ];
        for (prefix, run_no, line_no, key) in table {
            let id = end_to_end_id(prefix, run_no, line_no);
            assert_eq!(payment_key(run_no, line_no), key, "{id}");
            assert_eq!(payment_key_of(&id), Some(key), "{id}");
            assert_eq!(key / PAYMENT_KEY_LINES, run_no, "{id}");
            assert_eq!(key % PAYMENT_KEY_LINES, line_no, "{id}");
        }
    }

    /// Ids a bank may send that are not ours: no key, so no lookup (and no panic).
    #[test]
    fn an_id_not_of_our_shape_names_no_key() {
        for id in [
            "",
            "00000001",
            "DB000001_00000001",
            "DB00000A-00000001",
            "DB000001-0000000１",
            "DB000000-00000001",
            "DB000001-00000000",
            "DB000001-+0000001",
            "中000001-0000000",
        ] {
            assert_eq!(payment_key_of(id), None, "{id:?}");
        }
    }

    proptest::proptest! {
        /// Any id we issue names the key of its run and line, whatever the prefix; two
        /// different (run, line) never share a key.
        #[test]
        fn ids_and_keys_round_trip(
            prefix in "[A-Za-z0-9]{1,4}",
            run_no in 1..=RUN_NO_MAX,
            line_no in 1..=RUN_LINES_MAX,
            other_line in 1..=RUN_LINES_MAX,
        ) {
            let key = payment_key(run_no, line_no);
            proptest::prop_assert_eq!(payment_key_of(&end_to_end_id(&prefix, run_no, line_no)), Some(key));
            proptest::prop_assert_eq!(key % PAYMENT_KEY_LINES, line_no);
            proptest::prop_assert_eq!(key / PAYMENT_KEY_LINES, run_no);
            if other_line != line_no {
                proptest::prop_assert_ne!(payment_key(run_no, other_line), key);
            }
        }

        /// Any text at all: a key or none, never a panic.
        #[test]
        fn any_text_is_read_without_panic(id in "\\PC{0,24}") {
            if let Some(key) = payment_key_of(&id) {
                proptest::prop_assert!(key > PAYMENT_KEY_LINES);
            }
        }
    }

    fn line(line_no: i64, payable: i64, status: LineStatus) -> RunLine {
        RunLine {
            line_no,
            household_id: format!("H{line_no}"),
            approved_from: Month::parse("2026-01").unwrap(),
            region_code: "210102".into(),
            area: "urban".into(),
            status,
            base: Fen::new(payable),
            supplements: Fen::ZERO,
            arrears: Fen::ZERO,
            reduction: Fen::ZERO,
            recovery: Fen::ZERO,
            payable: Fen::new(payable),
            bank_code: "102221000018".into(),
            account_number: "6222021234567890128".into(),
            account_name: "张三".into(),
            head_id_number: "11010519491231002X".into(),
            end_to_end_id: end_to_end_id("DB", 1, line_no),
            flags: Vec::new(),
            arrears_sources: Vec::new(),
        }
    }

    fn digest_of(lines: &[RunLine]) -> (String, RunTotals) {
        let header = RunHeader {
            run_id: "R202611-000001",
            programme: "dibao",
            month: Month::parse("2026-11").unwrap(),
            scope: "",
            pay_date: "2026-11-20",
        };
        let mut digest = RunDigest::new(&header);
        lines.iter().for_each(|line| digest.add_line(line));
        digest.finish("inputs")
    }

    /// Approvals sign the digest and stored runs carry it: its bytes are pinned, so a
    /// faster writer cannot change what an approver signed. Negative money, flags and
    /// arrears sources are covered.
    #[test]
    fn the_digest_bytes_are_pinned() {
        let mut odd = line(3, 123_456_789, LineStatus::Pay);
        odd.recovery = Fen::new(-5);
        odd.flags = vec!["taper".into(), "review_due".into()];
        odd.arrears_sources = vec![
            ArrearsSource::Decision("D0001".into()),
            ArrearsSource::Month(Month::parse("2026-09").unwrap()),
        ];
        let lines = [
            line(1, 0, LineStatus::Zero),
            line(2, 1, LineStatus::Hold),
            odd,
        ];
        let (digest, totals) = digest_of(&lines);
        assert_eq!(totals.line_count, 3);
        assert_eq!(
            digest,
            "c2bb92bc620bf60d8b7486ca90a3b5ef81907887d9ba0c1b961839cb95c57b58"
        );
    }

    proptest::proptest! {
        /// Lines sum to the run's totals; the same lines give the same digest; any
        /// change to one line's money or account changes it (approvals then void).
        #[test]
        fn totals_and_digest_follow_the_lines(
            amounts in proptest::collection::vec((0i64..1_000_000, 0u8..4), 1..60),
            changed in 0usize..60,
        ) {
            let statuses = [LineStatus::Pay, LineStatus::Hold, LineStatus::Stopped, LineStatus::Zero];
            let lines: Vec<RunLine> = amounts
                .iter()
                .enumerate()
                .map(|(i, (fen, s))| line(i as i64 + 1, *fen, statuses[*s as usize]))
                .collect();
            let (digest, totals) = digest_of(&lines);
            let paid: i64 = lines.iter().filter(|l| l.status == LineStatus::Pay).map(|l| l.payable.as_i64()).sum();
            let held: i64 = lines.iter().filter(|l| l.status == LineStatus::Hold).map(|l| l.payable.as_i64()).sum();
            proptest::prop_assert_eq!(totals.payable, Fen::new(paid));
            proptest::prop_assert_eq!(totals.hold, Fen::new(held));
            proptest::prop_assert_eq!(totals.line_count, lines.len() as i64);
            proptest::prop_assert_eq!(&digest_of(&lines).0, &digest);
            let mut edited = lines.clone();
            let index = changed % edited.len();
            edited[index].payable = edited[index].payable.plus(Fen::new(1));
            proptest::prop_assert_ne!(&digest_of(&edited).0, &digest);
            let mut redirected = lines.clone();
            redirected[index].account_number = "6222021234567890136".into();
            proptest::prop_assert_ne!(&digest_of(&redirected).0, &digest);
        }
    }

    #[test]
    fn approvals_need_distinct_non_creators_on_the_current_digest() {
        let approval = |who: &str, digest: &str, valid: bool| ApprovalRecord {
            approver: who.into(),
            digest: digest.into(),
            signature_valid: valid,
        };
        let approvals = [
            approval("li", "d1", true),
            approval("li", "d1", true),
            approval("wang", "d0", true),
        ];
        assert!(approvals_cover("d1", "zhao", 1, &approvals));
        assert!(
            !approvals_cover("d1", "zhao", 2, &approvals),
            "the same person twice is one"
        );
        assert!(
            !approvals_cover("d1", "li", 1, &approvals),
            "the creator cannot approve"
        );
        assert!(
            !approvals_cover("d2", "zhao", 1, &approvals),
            "a changed run voids approvals"
        );
        assert!(!approvals_cover(
            "d1",
            "zhao",
            1,
            &[approval("li", "d1", false)]
        ));
    }
}
