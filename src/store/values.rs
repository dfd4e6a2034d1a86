//! Domain records as rows of plain SQL values, so one bulk-insert path serves every
//! table on both backends, and each row's content hash is computed the same way.

use crate::domain::household::{Decision, Household, StaffRelative, TreasuryVoucher};
use crate::domain::month::with_date_text;
use compact_str::CompactString;
use ring::digest::{digest, SHA256};

/// A value both backends bind the same way.
///
/// Why text is a `CompactString`: a row per household is built for every bulk write
/// (import, run lines, payments, results), and almost every value (ids, codes, dates,
/// names) is at most 24 bytes, which it keeps inline: a 23-column roster row needs no
/// allocation per value, and the writer frees none (issue #7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlValue {
    Int(i64),
    Text(CompactString),
    NullInt,
    NullText,
}

impl SqlValue {
    /// Appends the value's canonical text: the decimal digits of a number, the text
    /// itself, or NUL for a null.
    fn push_canonical(&self, bytes: &mut Vec<u8>) {
        match self {
            SqlValue::Int(value) => {
                bytes.extend_from_slice(itoa::Buffer::new().format(*value).as_bytes())
            }
            SqlValue::Text(text) => bytes.extend_from_slice(text.as_bytes()),
            SqlValue::NullInt | SqlValue::NullText => bytes.push(0),
        }
    }
}

fn text(value: &str) -> SqlValue {
    SqlValue::Text(CompactString::from(value))
}

fn int(value: impl Into<i64>) -> SqlValue {
    SqlValue::Int(value.into())
}

fn opt_int(value: Option<i64>) -> SqlValue {
    value.map_or(SqlValue::NullInt, SqlValue::Int)
}

fn opt_text(value: Option<&str>) -> SqlValue {
    value.map_or(SqlValue::NullText, text)
}

/// SHA-256 over the values with separators: equal rows have equal hashes, so a
/// re-import of the same row is recognised and a changed row is a conflict.
pub fn content_sha256(values: &[SqlValue]) -> String {
    let mut canonical = CanonicalBytes::default();
    for value in values {
        value.push_canonical(canonical.next_value());
    }
    canonical.sha256_hex()
}

/// A table's insertable columns (before `content_sha256` and `import_id`, which every
/// imported table ends with) and the columns that identify a row.
pub struct TableDef {
    pub table: &'static str,
    pub columns: &'static [&'static str],
    pub key_columns: &'static [&'static str],
}

pub const HOUSEHOLD_TABLE: TableDef = TableDef {
    table: "household_version",
    columns: &[
        "household_id",
        "approved_from",
        "region_code",
        "area",
        "head_name",
        "head_id_number",
        "members",
        "elderly",
        "minors",
        "severely_disabled",
        "seriously_ill",
        "review_class",
        "last_review",
        "base_fen",
        "employment_cost_fen",
        "approval_ref",
        "approved_by",
        "bank_code",
        "account_number",
        "account_kind",
        "account_name",
    ],
    key_columns: &["household_id", "approved_from"],
};

/// Where a record's values go, in column order: a row to bind (`Vec<SqlValue>`) or
/// the canonical bytes its content hash is taken over (`CanonicalBytes`). One list of
/// fields (`household_fields`) feeds both, so the hash of a stored row and the hash run
/// creation takes of the household it read cannot drift apart.
trait ValueSink {
    fn text(&mut self, value: &str);
    fn int(&mut self, value: i64);
    fn opt_int(&mut self, value: Option<i64>);
}

impl ValueSink for Vec<SqlValue> {
    fn text(&mut self, value: &str) {
        self.push(text(value));
    }
    fn int(&mut self, value: i64) {
        self.push(int(value));
    }
    fn opt_int(&mut self, value: Option<i64>) {
        self.push(opt_int(value));
    }
}

/// `content_sha256`'s input in one buffer (not a string per value): each value's
/// canonical text (`SqlValue::push_canonical`), joined by U+001F.
struct CanonicalBytes {
    bytes: Vec<u8>,
    values: usize,
}

impl Default for CanonicalBytes {
    fn default() -> Self {
        CanonicalBytes {
            bytes: Vec::with_capacity(512),
            values: 0,
        }
    }
}

impl CanonicalBytes {
    fn next_value(&mut self) -> &mut Vec<u8> {
        if self.values > 0 {
            self.bytes.push(0x1f);
        }
        self.values += 1;
        &mut self.bytes
    }

    fn sha256_hex(&self) -> String {
        crate::sign::digest_hex(digest(&SHA256, &self.bytes).as_ref())
    }
}

impl ValueSink for CanonicalBytes {
    fn text(&mut self, value: &str) {
        self.next_value().extend_from_slice(value.as_bytes());
    }
    fn int(&mut self, value: i64) {
        SqlValue::Int(value).push_canonical(self.next_value());
    }
    fn opt_int(&mut self, value: Option<i64>) {
        opt_int(value).push_canonical(self.next_value());
    }
}

fn household_fields(household: &Household, sink: &mut impl ValueSink) {
    sink.text(household.household_id.as_str());
    household.approved_from.with_text(|month| sink.text(month));
    sink.text(household.region_code.as_str());
    sink.text(household.area.as_str());
    sink.text(&household.head_name);
    sink.text(household.head_id_number.as_str());
    sink.int(household.members.into());
    sink.int(household.elderly.into());
    sink.int(household.minors.into());
    sink.int(household.severely_disabled.into());
    sink.int(household.seriously_ill.into());
    sink.text(household.review_class.as_str());
    with_date_text(household.last_review, |date| sink.text(date));
    sink.int(household.base_amount.as_i64());
    sink.opt_int(household.employment_cost_deduction.map(|fen| fen.as_i64()));
    sink.text(&household.approval_ref);
    sink.text(&household.approved_by);
    sink.text(household.bank_code.as_str());
    sink.text(household.account_number.as_str());
    sink.text(household.account_number.kind().as_str());
    sink.text(&household.account_name);
}

pub fn household_values(household: &Household) -> Vec<SqlValue> {
    let mut row = Vec::with_capacity(HOUSEHOLD_TABLE.columns.len());
    household_fields(household, &mut row);
    row
}

/// `content_sha256(&household_values(household))`, without building the row (run
/// creation hashes every household version it reads).
pub fn household_sha256(household: &Household) -> String {
    let mut canonical = CanonicalBytes::default();
    household_fields(household, &mut canonical);
    canonical.sha256_hex()
}

/// The key of a household row, as `row_key` spells it from the row's values.
pub fn household_key(household: &Household) -> String {
    let id = household.household_id.as_str();
    household.approved_from.with_text(|month| {
        let mut key = String::with_capacity(id.len() + 1 + month.len());
        key.push_str(id);
        key.push('/');
        key.push_str(month);
        key
    })
}

pub const DECISION_TABLE: TableDef = TableDef {
    table: "decision",
    columns: &[
        "decision_id",
        "household_id",
        "kind",
        "effective_month",
        "end_month",
        "amount_fen",
        "percent",
        "months",
        "reason",
        "ref",
        "decided_by",
        "decided_on",
    ],
    key_columns: &["decision_id"],
};

pub fn decision_values(decision: &Decision) -> Vec<SqlValue> {
    vec![
        text(&decision.decision_id),
        text(decision.household_id.as_str()),
        text(decision.kind.as_str()),
        text(&decision.effective_month.to_string()),
        opt_text(decision.end_month.map(|month| month.to_string()).as_deref()),
        opt_int(decision.amount.map(|fen| fen.as_i64())),
        opt_text(
            decision
                .percent
                .map(|percent| percent.normalize().to_string())
                .as_deref(),
        ),
        opt_int(decision.months.map(i64::from)),
        text(&decision.reason),
        text(&decision.reference),
        text(&decision.decided_by),
        text(&decision.decided_on.to_string()),
    ]
}

/// The key of a decision row, as `row_key` spells it.
pub fn decision_key(decision: &Decision) -> String {
    decision.decision_id.clone()
}

pub const STAFF_RELATIVE_TABLE: TableDef = TableDef {
    table: "staff_relative",
    columns: &["staff_id", "staff_name", "relative_id_number", "relation"],
    key_columns: &["staff_id", "relative_id_number"],
};

pub fn staff_relative_values(record: &StaffRelative) -> Vec<SqlValue> {
    vec![
        text(&record.staff_id),
        text(&record.staff_name),
        text(record.relative_id_number.as_str()),
        text(&record.relation),
    ]
}

/// The key of a staff-relative row, as `row_key` spells it.
pub fn staff_relative_key(record: &StaffRelative) -> String {
    format!("{}/{}", record.staff_id, record.relative_id_number.as_str())
}

/// `staff_relative_key` as an error may show it: the ID number masked (P13).
pub fn staff_relative_key_shown(record: &StaffRelative) -> String {
    format!(
        "{}/{}",
        record.staff_id,
        crate::domain::mask::mask_id_number(record.relative_id_number.as_str())
    )
}

pub const TREASURY_TABLE: TableDef = TableDef {
    table: "treasury_voucher",
    columns: &[
        "voucher_no",
        "voucher_type",
        "original_voucher_no",
        "batch_id",
        "bank_code",
        "amount_fen",
        "voucher_date",
    ],
    key_columns: &["voucher_no"],
};

pub fn treasury_values(voucher: &TreasuryVoucher) -> Vec<SqlValue> {
    vec![
        text(&voucher.voucher_no),
        text(voucher.voucher_type.code()),
        opt_text(voucher.original_voucher_no.as_deref()),
        text(&voucher.batch_id),
        text(voucher.bank_code.as_str()),
        int(voucher.amount.as_i64()),
        text(&voucher.date.to_string()),
    ]
}

/// The key of a treasury voucher row, as `row_key` spells it.
pub fn treasury_key(voucher: &TreasuryVoucher) -> String {
    voucher.voucher_no.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The hash as first defined (values joined by U+001F, then hashed): stored rows
    /// carry it, so the streamed form must give the same bytes or a re-import of an
    /// unchanged row would be taken for a conflict.
    fn joined_sha256(values: &[SqlValue]) -> String {
        let joined = values
            .iter()
            .map(|value| match value {
                SqlValue::Int(number) => number.to_string(),
                SqlValue::Text(text) => text.to_string(),
                SqlValue::NullInt | SqlValue::NullText => "\u{0}".to_string(),
            })
            .collect::<Vec<_>>()
            .join("\u{1f}");
        crate::sign::digest_hex(digest(&SHA256, joined.as_bytes()).as_ref())
    }

    fn any_value() -> impl Strategy<Value = SqlValue> {
        prop_oneof![
            any::<i64>().prop_map(SqlValue::Int),
            ".{0,30}".prop_map(|text| SqlValue::Text(text.into())),
            Just(SqlValue::NullInt),
            Just(SqlValue::NullText),
        ]
    }

    #[test]
    fn a_known_row_keeps_its_stored_hash() {
        let values = [
            text("110101000001"),
            int(2),
            SqlValue::NullInt,
            text("张三"),
        ];
        assert_eq!(content_sha256(&values), joined_sha256(&values));
        assert_eq!(content_sha256(&[]), joined_sha256(&[]));
    }

    /// Run creation hashes each household it reads without building its row; the
    /// hash must be the one the import stored for the same household, with and
    /// without an employment cost (a NULL).
    #[test]
    fn a_household_hashes_as_its_row_does() {
        use crate::imports::{decode::InputEncoding, records, ParsedRow, ParsedRows};
        let mut roster = Vec::new();
        crate::demo::generate::RosterGenerator::new(7)
            .write_roster(&mut roster, 500, "2026-01")
            .expect("roster written to memory");
        let rows = ParsedRows::open(
            roster.as_slice(),
            InputEncoding::Utf8,
            records::ROSTER_COLUMNS,
            records::parse_roster_row,
        )
        .expect("the generated header");
        let households: Vec<Household> = rows
            .map(|parsed| match parsed {
                ParsedRow::Record { record, .. } => record,
                _ => panic!("a generated row did not parse"),
            })
            .collect();
        let costs = |present: bool| {
            households
                .iter()
                .filter(|h| h.employment_cost_deduction.is_some() == present)
                .count()
        };
        assert!(costs(true) > 0 && costs(false) > 0, "both kinds generated");
        for household in &households {
            let row = household_values(household);
            assert_eq!(household_sha256(household), content_sha256(&row));
            assert_eq!(household_sha256(household), joined_sha256(&row));
            // The dates are stored, hashed and keyed in the texts they always had
            // (spelt here by `format!` and chrono, not by the hand-spelt path).
            let month = household.approved_from;
            let month_text = format!("{:04}-{:02}", month.year(), month.month());
            let review_text = household.last_review.format("%Y-%m-%d").to_string();
            for (column, expected) in [
                ("approved_from", &month_text),
                ("last_review", &review_text),
            ] {
                let index = HOUSEHOLD_TABLE
                    .columns
                    .iter()
                    .position(|c| *c == column)
                    .unwrap();
                assert!(
                    matches!(&row[index], SqlValue::Text(text) if text.as_str() == expected.as_str()),
                    "{column}: {:?}",
                    row[index]
                );
            }
            assert_eq!(
                household_key(household),
                format!("{}/{month_text}", household.household_id.as_str())
            );
        }
    }

    proptest! {
        #[test]
        fn the_streamed_hash_is_the_joined_hash(values in prop::collection::vec(any_value(), 0..25)) {
            prop_assert_eq!(content_sha256(&values), joined_sha256(&values));
        }
    }
}
