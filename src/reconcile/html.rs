//! `report.html`: the reconciliation on one printable A4 page an auditor can read and
//! sign (CONTRACTS §6, P14, P16).
//!
//! **Invariants:** a pure function of its input, so the same run gives the same bytes
//! (no clock: every date is handed in); every value is HTML-escaped; every free-text
//! cell (labels, names, details) also goes through `mask_digits_in_text` as a backstop
//! to the caller's masking (P13), so no ID or account number can appear; identifiers
//! we generate (run, batch, end_to_end, voucher, bank code, digests) are shown whole
//! for tracing. No script and no external asset: the file stands alone.

use super::exception::ExceptionRow;
use super::report::SummaryRow;
use crate::domain::mask::mask_digits_in_text;
use crate::domain::money::Fen;
use crate::domain::month::Month;
use crate::run::RunState;
use chrono::NaiveDate;
use std::fmt::Write;

/// One line of a totals table: a label (free text, e.g. `110105 朝阳区`), a count and
/// the money.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotalRow {
    pub label: String,
    pub count: i64,
    pub amount: Fen,
}

/// Who approved the run (P16): the name as the caller chose to show it, the time as
/// recorded, and the id of the signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApproverRow {
    pub name: String,
    pub approved_at: String,
    pub key_id: String,
}

/// One bank file as listed in the manifest (CONTRACTS §3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankFileRow {
    pub file_name: String,
    pub sha256: String,
    pub record_count: i64,
    pub total: Fen,
}

/// Everything on the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportData {
    pub run_id: String,
    pub month: Month,
    pub programme: String,
    pub scope: String,
    pub pay_date: NaiveDate,
    pub run_digest: String,
    pub state: RunState,
    pub by_region: Vec<TotalRow>,
    pub by_area: Vec<TotalRow>,
    pub by_bank: Vec<TotalRow>,
    pub by_batch: Vec<TotalRow>,
    pub approvers: Vec<ApproverRow>,
    pub bank_files: Vec<BankFileRow>,
    pub summary: Vec<SummaryRow>,
    pub exceptions: Vec<ExceptionRow>,
}

/// Escapes the five characters that matter in HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table cell's content, already safe HTML, and whether it is a number.
struct Cell {
    html: String,
    numeric: bool,
}

/// Free text: masked, then escaped.
fn text(value: &str) -> Cell {
    Cell {
        html: escape_html(&mask_digits_in_text(value)),
        numeric: false,
    }
}

/// An identifier we generated: escaped, kept whole (none when empty, as in the run row).
fn ident(value: &str) -> Cell {
    let html = match value {
        "" => String::new(),
        value => format!("<code>{}</code>", escape_html(value)),
    };
    Cell {
        html,
        numeric: false,
    }
}

fn num(value: impl ToString) -> Cell {
    Cell {
        html: escape_html(&value.to_string()),
        numeric: true,
    }
}

const STYLE: &str = "\
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
body { font-family: \"Noto Sans CJK SC\", \"Source Han Sans SC\", \"SimSun\", sans-serif; font-size: 8pt; color: #000; margin: 0 auto; max-width: 186mm; }
h1 { font-size: 13pt; margin: 0 0 2mm; }
h2 { font-size: 9pt; margin: 3mm 0 1mm; border-bottom: 0.3mm solid #000; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1mm; }
th, td { border: 0.2mm solid #666; padding: 0.4mm 1mm; text-align: left; vertical-align: top; }
th { background: #eee; font-weight: bold; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-family: \"DejaVu Sans Mono\", monospace; font-size: 7pt; word-break: break-all; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0 4mm; }
.meta th { width: 22%; }
.sign { display: grid; grid-template-columns: 1fr 1fr; gap: 8mm; margin-top: 8mm; }
.sign div { border-top: 0.3mm solid #000; padding-top: 1mm; }
@media print { body { max-width: none; } h2, table { break-inside: avoid; } th { background: #eee !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; } }
";

fn table(out: &mut String, title: &str, headers: &[&str], rows: Vec<Vec<Cell>>) {
    let _ = write!(out, "<h2>{}</h2>\n<table>\n<tr>", escape_html(title));
    for header in headers {
        let _ = write!(out, "<th>{}</th>", escape_html(header));
    }
    out.push_str("</tr>\n");
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "<tr><td colspan=\"{}\">无 / None</td></tr>",
            headers.len()
        );
    }
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let class = if cell.numeric { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", cell.html);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn meta(out: &mut String, data: &ReportData) {
    let rows = vec![
        ("运行 / Run", ident(&data.run_id)),
        ("月份 / Month", text(&data.month.to_string())),
        ("项目 / Programme", text(&data.programme)),
        ("范围 / Scope", text(&data.scope)),
        ("发放日 / Pay date", text(&data.pay_date.to_string())),
        ("状态 / State", text(data.state.as_str())),
        ("摘要 / Run digest", ident(&data.run_digest)),
    ];
    out.push_str("<table class=\"meta\">\n");
    for (label, cell) in rows {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{}</td></tr>", cell.html);
    }
    out.push_str("</table>\n");
}

fn totals(out: &mut String, title: &str, rows: &[TotalRow]) {
    let cells = rows
        .iter()
        .map(|r| vec![text(&r.label), num(r.count), num(r.amount)])
        .collect();
    table(out, title, &["", "笔数 / Count", "金额 / Amount"], cells);
}

fn approvers(out: &mut String, rows: &[ApproverRow]) {
    let cells = rows
        .iter()
        .map(|a| vec![text(&a.name), text(&a.approved_at), ident(&a.key_id)])
        .collect();
    let headers = ["审批人 / Approver", "时间 / Time", "密钥 / Key id"];
    table(out, "审批 / Approvals", &headers, cells);
}

fn bank_files(out: &mut String, rows: &[BankFileRow]) {
    let cells = rows
        .iter()
        .map(|f| {
            let name = ident(&f.file_name);
            vec![name, ident(&f.sha256), num(f.record_count), num(f.total)]
        })
        .collect();
    let headers = ["文件 / File", "SHA-256", "笔数 / Records", "金额 / Total"];
    table(out, "银行文件 / Bank files", &headers, cells);
}

fn summary(out: &mut String, rows: &[SummaryRow]) {
    let cells = rows
        .iter()
        .map(|row| {
            let f = &row.figures;
            vec![
                text(row.scope.as_str()),
                ident(&f.batch_id),
                ident(&f.bank_code),
                num(format!("{} / {}", f.instructed_count, f.instructed)),
                num(format!("{} / {}", f.paid_count, f.paid)),
                num(format!("{} / {}", f.failed_count, f.failed)),
                num(format!("{} / {}", f.returned_count, f.returned)),
                num(format!("{} / {}", f.pending_count, f.pending)),
                num(f.funded),
                num(f.refunded),
                num(row.difference),
            ]
        })
        .collect();
    let headers = [
        "范围 / Scope",
        "批次 / Batch",
        "银行 / Bank",
        "指令 / Instructed",
        "成功 / Paid",
        "失败 / Failed",
        "退回 / Returned",
        "待定 / Pending",
        "拨付 / Funded",
        "退款 / Refunded",
        "差额 / Difference",
    ];
    table(out, "对账汇总 / Summary (count / amount)", &headers, cells);
}

fn exceptions(out: &mut String, rows: &[ExceptionRow]) {
    let cells = rows
        .iter()
        .map(|e| {
            let amount = e.amount.map(|a| a.to_string()).unwrap_or_default();
            vec![
                text(e.kind.as_str()),
                ident(&e.batch_id),
                ident(&e.end_to_end_id),
                ident(&e.voucher_no),
                num(amount),
                text(&e.detail),
            ]
        })
        .collect();
    let headers = [
        "类型 / Kind",
        "批次 / Batch",
        "支付标识 / End-to-end id",
        "凭证 / Voucher",
        "金额 / Amount",
        "说明 / Detail",
    ];
    table(out, "异常 / Exceptions", &headers, cells);
}

const SIGNATURE: &str =
    "<div class=\"sign\"><div>审核人 / Auditor:</div><div>日期 / Date:</div></div>\n";

/// The whole page.
pub fn render_report_html(data: &ReportData) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let title = "低保金发放对账报告 / Reconciliation report";
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title} {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n",
        escape_html(&data.run_id)
    );
    meta(&mut out, data);
    out.push_str("<div class=\"grid\"><div>\n");
    totals(&mut out, "按区划 / By region", &data.by_region);
    totals(&mut out, "按银行 / By bank", &data.by_bank);
    out.push_str("</div><div>\n");
    totals(&mut out, "按片区 / By area", &data.by_area);
    totals(&mut out, "按批次 / By batch", &data.by_batch);
    out.push_str("</div></div>\n");
    approvers(&mut out, &data.approvers);
    bank_files(&mut out, &data.bank_files);
    summary(&mut out, &data.summary);
    exceptions(&mut out, &data.exceptions);
    out.push_str(SIGNATURE);
    out.push_str("</body>\n</html>\n");
    out
}
