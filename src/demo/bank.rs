//! The demo's stand-in for the banks and the treasury: answers each exported batch with
//! a result file in the bank's own format (R1 for commercial banks and cooperatives,
//! pain.002 for ISO 20022 routes), failing one payment per file with a different
//! reason, and writes the treasury's vouchers: a 5201 funding each batch and a 2302
//! refunding what could not be paid.

use crate::domain::money::Fen;
use crate::formats::TargetEncoding;
use crate::run::RunLine;
use crate::store::{BatchRecord, Store};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The reasons the simulated banks give, in the banks' own words, one per file.
const FAILURES: &[(&str, &str)] = &[
    ("AC04", "已销户"),
    ("AC01", "账号不存在"),
    ("MD07", "账户人已死亡"),
    ("BE01", "户名不符"),
];

/// What the simulated banks did.
pub struct BankAnswers {
    pub files: Vec<PathBuf>,
    pub failed: Vec<(String, Fen)>,
    pub treasury_csv: String,
}

/// Writes a result file per batch into `dir`, and the treasury's vouchers.
pub async fn answer_batches(
    store: &Store,
    run_id: &str,
    dir: &Path,
    processed: &str,
) -> anyhow::Result<BankAnswers> {
    let mut answers = BankAnswers {
        files: Vec::new(),
        failed: Vec::new(),
        treasury_csv: String::new(),
    };
    answers
        .treasury_csv
        .push_str("voucher_no,voucher_type,original_voucher_no,batch_id,bank_code,amount,date\n");
    for (index, batch) in store.batches_of_run(run_id).await?.into_iter().enumerate() {
        let lines = store.batch_lines(&batch.batch_id).await?;
        let failing = if lines.len() > 1 { Some(1) } else { None };
        let reason = FAILURES[index % FAILURES.len()];
        let (name, bytes) = if batch.layout.starts_with("iso20022") {
            (
                format!("{}.pain002.xml", batch.batch_id),
                pain002(&batch, &lines, failing, reason, processed),
            )
        } else {
            (
                format!("{}.result.txt", batch.batch_id),
                r1(&batch, &lines, failing, reason, processed)?,
            )
        };
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        answers.files.push(path);
        let failed_amount = failing.map_or(Fen::ZERO, |i| lines[i].payable);
        vouchers(
            &mut answers.treasury_csv,
            &batch,
            &lines,
            failed_amount,
            index,
            processed,
        );
        answers.failed.push((batch.batch_id.clone(), failed_amount));
    }
    Ok(answers)
}

fn r1(
    batch: &BatchRecord,
    lines: &[RunLine],
    failing: Option<usize>,
    reason: (&str, &str),
    processed: &str,
) -> anyhow::Result<Vec<u8>> {
    let compact = processed.replace('-', "");
    let failed = failing.map_or(Fen::ZERO, |i| lines[i].payable);
    let total: Fen = lines.iter().map(|l| l.payable).sum();
    let failed_count = usize::from(failing.is_some());
    let mut text = format!(
        "H|01|{}|{compact}|{}|{}|{}|{}|{failed_count}|{}|\r\n",
        batch.batch_id,
        lines.len(),
        total,
        lines.len() - failed_count,
        total.minus(failed),
        failed
    );
    for (index, line) in lines.iter().enumerate() {
        let (status, code, why) = if Some(index) == failing {
            ("F", reason.0, reason.1)
        } else {
            ("S", "", "")
        };
        let _ = write!(
            text,
            "D|{:06}|{}|{}|{}|{status}|SIM{compact}{:06}|{code}|{why}|{}|\r\n",
            index + 1,
            line.account_number,
            line.account_name,
            line.payable,
            index + 1,
            line.end_to_end_id
        );
    }
    let _ = write!(text, "T|{}|{}|\r\n", lines.len(), total);
    TargetEncoding::Gbk
        .encode_to_vec(&text)
        .map_err(|e| anyhow::anyhow!("simulated bank file: {e}"))
}

fn pain002(
    batch: &BatchRecord,
    lines: &[RunLine],
    failing: Option<usize>,
    reason: (&str, &str),
    processed: &str,
) -> Vec<u8> {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.002.001.10\"><CstmrPmtStsRpt>\
         <GrpHdr><MsgId>SIM-{id}</MsgId><CreDtTm>{processed}T18:00:00</CreDtTm></GrpHdr>\
         <OrgnlGrpInfAndSts><OrgnlMsgId>{id}</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId></OrgnlGrpInfAndSts>\
         <OrgnlPmtInfAndSts><OrgnlPmtInfId>{id}</OrgnlPmtInfId>",
        id = batch.batch_id
    );
    for (index, line) in lines.iter().enumerate() {
        let status = if Some(index) == failing {
            format!("<TxSts>RJCT</TxSts><StsRsnInf><Rsn><Cd>{}</Cd></Rsn><AddtlInf>{}</AddtlInf></StsRsnInf>", reason.0, reason.1)
        } else {
            "<TxSts>ACSC</TxSts>".to_string()
        };
        let _ = write!(
            xml,
            "<TxInfAndSts><OrgnlEndToEndId>{}</OrgnlEndToEndId>{status}<OrgnlTxRef><Amt><InstdAmt Ccy=\"CNY\">{}</InstdAmt></Amt></OrgnlTxRef></TxInfAndSts>",
            line.end_to_end_id, line.payable
        );
    }
    xml.push_str("</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>\n");
    xml.into_bytes()
}

fn vouchers(
    csv: &mut String,
    batch: &BatchRecord,
    lines: &[RunLine],
    failed: Fen,
    index: usize,
    date: &str,
) {
    let bank_code = lines
        .first()
        .map_or("102100099996", |l| l.bank_code.as_str());
    let funding = format!("GK{:04}5201", index + 1);
    let _ = writeln!(
        csv,
        "{funding},5201,,{},{bank_code},{},{date}",
        batch.batch_id,
        Fen::new(batch.total_fen)
    );
    if !failed.is_zero() {
        let _ = writeln!(
            csv,
            "GK{:04}2302,2302,{funding},{},{bank_code},{failed},{date}",
            index + 1,
            batch.batch_id
        );
    }
}
