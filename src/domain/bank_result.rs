//! What a bank says about our payments, whatever format it came in (R1, R1B, pain.002,
//! camt.054), and the table that turns the banks' Chinese reason texts into ISO codes.

use crate::domain::money::Fen;

/// A payment's outcome as one bank message reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResultStatus {
    /// Accepted or in progress, no final answer yet.
    Pending,
    /// Credited to the household's account.
    Paid,
    /// Refused by the bank; the money was not credited.
    Failed,
    /// Credited, then came back (camt.054 reversal with return information).
    Returned,
}

impl ResultStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Pending => "pending",
            ResultStatus::Paid => "paid",
            ResultStatus::Failed => "failed",
            ResultStatus::Returned => "returned",
        }
    }
}

/// One payment's result as read from a bank file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentResult {
    /// Our `end_to_end_id`, as echoed by the bank. May be unknown to us.
    pub end_to_end_id: String,
    pub status: ResultStatus,
    /// The amount the bank reports, when the message carries one.
    pub amount: Option<Fen>,
    /// ISO 20022 reason code (AC01, AC04, AC06, BE01, MD07, AM05, NARR, or as sent).
    pub reason_code: Option<String>,
    /// The bank's own text, kept as sent.
    pub reason_text: Option<String>,
    pub bank_serial: Option<String>,
    /// 1-based line (tabular formats) or record position (XML) in the file, for errors.
    pub line: u64,
}

/// A whole result file, parsed and with its own control totals already checked
/// against its details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultFile {
    /// Layout name, e.g. `bank-result-pipe-gbk`, `pain.002.001.10`, `camt.054.001.08`.
    pub format: String,
    /// The bank's own id for this file (MsgId, or the batch id of a tabular result).
    pub bank_file_id: Option<String>,
    /// Our batch id the file answers, when the file names it.
    pub original_batch_id: Option<String>,
    pub results: Vec<PaymentResult>,
}

/// Maps a bank's reason text (Chinese or English) to an ISO 20022 reason code
/// (CONTRACTS §3.4). Unknown texts become `NARR`, with the text kept by the caller.
pub fn reason_code_from_text(text: &str) -> &'static str {
    const TABLE: &[(&str, &str)] = &[
        ("账号不存在", "AC01"),
        ("账户不存在", "AC01"),
        ("已销户", "AC04"),
        ("销户", "AC04"),
        ("冻结", "AC06"),
        ("止付", "AC06"),
        ("挂失", "AC06"),
        ("户名不符", "BE01"),
        ("证件号不符", "BE01"),
        ("死亡", "MD07"),
        ("重复", "AM05"),
    ];
    TABLE
        .iter()
        .find(|(needle, _)| text.contains(needle))
        .map(|(_, code)| *code)
        .unwrap_or("NARR")
}

/// A reason code as sent, normalised: a known ISO code is kept, a Chinese text mapped.
pub fn normalise_reason(code: Option<&str>, text: Option<&str>) -> Option<String> {
    const KNOWN: &[&str] = &["AC01", "AC04", "AC06", "BE01", "MD07", "AM05", "NARR"];
    match code.map(str::trim).filter(|code| !code.is_empty()) {
        Some(code) if KNOWN.contains(&code) => Some(code.to_string()),
        Some(code) if code.is_ascii() => Some(code.to_string()),
        Some(code) => Some(reason_code_from_text(code).to_string()),
        None => text
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(|text| reason_code_from_text(text).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_reason_texts_map_to_iso_codes() {
        let cases = [
            ("账号不存在", "AC01"),
            ("该账户已销户", "AC04"),
            ("账户冻结", "AC06"),
            ("止付", "AC06"),
            ("卡已挂失", "AC06"),
            ("户名不符", "BE01"),
            ("证件号不符", "BE01"),
            ("账户人已死亡", "MD07"),
            ("重复交易", "AM05"),
            ("系统繁忙", "NARR"),
        ];
        for (text, code) in cases {
            assert_eq!(reason_code_from_text(text), code, "{text}");
        }
        assert_eq!(
            normalise_reason(Some("AC04"), None).as_deref(),
            Some("AC04")
        );
        assert_eq!(
            normalise_reason(Some(""), Some("已销户")).as_deref(),
            Some("AC04")
        );
        assert_eq!(normalise_reason(None, None), None);
    }
}
