//! Tests for the formats module: golden files, schema validation, round trips, rare
//! names, layout validation, result files, truncation and fuzzing.

use super::*;
use crate::domain::bank_result::ResultStatus;
use crate::domain::money::Fen;
use crate::domain::payment::{PaymentBatch, PaymentInstruction};
use crate::formats::render::{RecordWriter, Value};
use crate::formats::spec::{find, RecordRole, Source};
use chrono::NaiveDate;
use proptest::prelude::*;
use std::path::PathBuf;

fn layout(name: &str) -> Layout {
    find(&load_builtin(), name)
        .expect("built-in layout")
        .clone()
}

fn payment(seq: u32, household: &str, name: &str, fen: i64, bank_code: &str) -> PaymentInstruction {
    PaymentInstruction {
        seq,
        end_to_end_id: format!("E2026110000{seq:02}").into(),
        household_id: household.to_string().into(),
        account_number: format!("6222020200112233{seq:03}").into(),
        account_name: name.to_string().into(),
        id_number: format!("11010519491231{seq:03}X").into(),
        amount: Fen::new(fen),
        bank_code: bank_code.to_string().into(),
        memo: "2026-11低保金".to_string().into(),
    }
}

/// The fixed sample: an urban pair, a rural household at a cooperative, a 5-fen top-up.
fn sample_batch() -> PaymentBatch {
    PaymentBatch {
        batch_id: "B20261100001".into(),
        payer_account: "110060149018001234567".into(),
        payer_name: "某市财政局社会保障资金专户".into(),
        payer_bank_code: "102100099996".into(),
        pay_date: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
        created_at: NaiveDate::from_ymd_opt(2026, 11, 20)
            .unwrap()
            .and_hms_opt(9, 30, 0)
            .unwrap(),
        memo: "2026-11低保金".into(),
        payments: vec![
            payment(1, "H0001", "张三丰", 52_340, "102100000012"),
            payment(2, "H0002", "李秀英", 5, "402331000011"),
            payment(3, "H0003", "欧阳娜娜", 120_000, "402331000011"),
            payment(4, "H0004", "王小明", 8_765, "103100000026"),
        ],
    }
}

fn golden_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(file)
}

/// Compares with the golden file, or rewrites it when `UPDATE_GOLDEN=1`.
fn check_golden(file: &str, bytes: &[u8]) {
    let path = golden_path(file);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    let expected = std::fs::read(&path)
        .unwrap_or_else(|error| panic!("{}: {error}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == bytes,
        "{file} differs from its golden file; run with UPDATE_GOLDEN=1 to inspect"
    );
}

#[test]
fn builtin_layouts_load() {
    let names: Vec<String> = load_builtin()
        .iter()
        .map(|l| l.name().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "bank-pipe-gbk",
            "rcc-fixed-gbk",
            "iso20022-pain001",
            "bank-result-pipe-gbk",
            "rcc-result-fixed-gbk"
        ]
    );
}

#[test]
fn sample_batch_matches_golden_files() {
    let batch = sample_batch();
    for (name, file) in [
        ("bank-pipe-gbk", "bank-pipe-gbk.txt"),
        ("rcc-fixed-gbk", "rcc-fixed-gbk.txt"),
        ("iso20022-pain001", "iso20022-pain001.xml"),
    ] {
        let rendered = render_payment_file(&layout(name), &batch).unwrap();
        assert_eq!(rendered.record_count, 4);
        assert_eq!(rendered.total, Fen::new(181_110));
        check_golden(file, &rendered.bytes);
    }
}

#[test]
fn pain001_is_valid_against_the_official_schema() {
    for batch in [sample_batch(), edge_batch()] {
        check_pain001_schema(&batch);
    }
}

fn check_pain001_schema(batch: &PaymentBatch) {
    let rendered = render_payment_file(&layout("iso20022-pain001"), batch).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("pain001.xml");
    std::fs::write(&file, &rendered.bytes).unwrap();
    let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/standards/iso20022/pain.001.001.09.xsd");
    assert!(schema.exists(), "schema missing at {}", schema.display());
    let output = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("xmllint is required (apt-get install libxml2-utils)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The buffer is reserved once at about the file's size: never short without escapes,
/// never more than the amounts' slack above.
#[test]
fn pain001_capacity_estimate_is_close_above_the_file() {
    for batch in [sample_batch(), edge_batch()] {
        let rendered = render_payment_file(&layout("iso20022-pain001"), &batch).unwrap();
        let estimate = xml::capacity_estimate(&batch);
        let escapes = 200;
        assert!(
            estimate + escapes >= rendered.bytes.len(),
            "{estimate} for {}",
            rendered.bytes.len()
        );
        assert!(estimate <= rendered.bytes.len() + 1024 + 20 * batch.payments.len());
    }
}

/// Our pain.001 reads back to its count, total, ids and batch id, escapes undone.
#[test]
fn pain001_reads_back_to_its_figures() {
    for batch in [sample_batch(), edge_batch()] {
        let rendered = render_payment_file(&layout("iso20022-pain001"), &batch).unwrap();
        let read = xml_read::read_pain001(&rendered.bytes).unwrap();
        assert_eq!(read.batch_id, batch.batch_id);
        assert_eq!((read.record_count, read.total), (4, batch.total()));
        let ids: Vec<&str> = batch
            .payments
            .iter()
            .map(|p| p.end_to_end_id.as_str())
            .collect();
        assert_eq!(read.end_to_end_ids, ids);
    }
}

/// A total or count that disagrees with the transactions, an unknown escape, anything
/// after the document, or a file cut at any byte: refused, never a panic.
#[test]
fn pain001_read_refuses_what_our_writer_did_not_write() {
    let bytes = render_payment_file(&layout("iso20022-pain001"), &edge_batch())
        .unwrap()
        .bytes;
    let text = String::from_utf8(bytes.clone()).unwrap();
    let edits = [
        ("<InstdAmt Ccy=\"CNY\">0.01<", "<InstdAmt Ccy=\"CNY\">0.02<"),
        (
            "<NbOfTxs>4</NbOfTxs>\n<CtrlSum>1000100000000.00</CtrlSum>\n<ReqdExctnDt>",
            "<NbOfTxs>3</NbOfTxs>\n<CtrlSum>1000100000000.00</CtrlSum>\n<ReqdExctnDt>",
        ),
        (
            "<CtrlSum>1000100000000.00</CtrlSum>\n<InitgPty>",
            "<CtrlSum>1000100000000.01</CtrlSum>\n<InitgPty>",
        ),
        ("&amp;B", "&amp B"),
        ("&amp;B", "&#38;B"),
        ("<MsgId>B20261100001<", "<MsgId>B20261100002<"),
        ("0.01</InstdAmt>", "0.1</InstdAmt>"),
        ("</Document>\n", "</Document>\n<!-- -->"),
        ("<CdtTrfTxInf>\n<PmtId>", "<CdtTrfTxInf>\n <PmtId>"),
    ];
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        let edited = text.replacen(from, to, 1);
        assert!(xml_read::read_pain001(edited.as_bytes()).is_err(), "{to}");
    }
    for cut in 0..bytes.len() {
        assert!(
            xml_read::read_pain001(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn pain001_refuses_schema_facet_violations() {
    let mut batch = sample_batch();
    batch.payments[1].account_name = "李".repeat(141).into();
    let error = render_payment_file(&layout("iso20022-pain001"), &batch).unwrap_err();
    assert!(
        error.to_string().starts_with("household H0002: Nm"),
        "{error}"
    );
    let mut batch = sample_batch();
    batch.payments[0].end_to_end_id = String::new().into();
    assert!(render_payment_file(&layout("iso20022-pain001"), &batch).is_err());
}

#[test]
fn rendered_tabular_files_parse_back_with_the_same_controls() {
    let batch = sample_batch();
    for name in ["bank-pipe-gbk", "rcc-fixed-gbk"] {
        let layout = layout(name);
        let rendered = render_payment_file(&layout, &batch).unwrap();
        let parsed = parse_payment_file(&layout, &rendered.bytes).unwrap();
        assert_eq!(parsed.record_count, rendered.record_count, "{name}");
        assert_eq!(parsed.total, rendered.total, "{name}");
        assert_eq!(parsed.batch_id.as_deref(), Some("B20261100001"));
        assert_eq!(parsed.pay_date, Some(batch.pay_date));
        let names: Vec<_> = parsed
            .payments
            .iter()
            .map(|p| p.account_name.clone().unwrap())
            .collect();
        assert_eq!(names, ["张三丰", "李秀英", "欧阳娜娜", "王小明"]);
        let ids: Vec<_> = parsed
            .payments
            .iter()
            .map(|p| p.end_to_end_id.as_ref())
            .collect();
        let expected: Vec<_> = batch
            .payments
            .iter()
            .map(|p| p.end_to_end_id.as_str())
            .collect();
        assert_eq!(ids, expected);
    }
    let fixed = render_payment_file(&layout("rcc-fixed-gbk"), &batch)
        .unwrap()
        .bytes;
    assert_eq!(fixed.len(), 6 * 202);
    for record in fixed.chunks(202) {
        assert_eq!(&record[200..], b"\r\n");
        assert!(!record[..200].contains(&b'\n'));
    }
}

#[test]
fn names_outside_gbk_are_refused_naming_the_household() {
    let cases = [("王𬌗", '𬌗'), ("王\u{20000}", '\u{20000}')];
    for (name, character) in cases {
        let mut batch = sample_batch();
        batch.payments[2].account_name = name.to_string().into();
        for layout_name in ["bank-pipe-gbk", "rcc-fixed-gbk"] {
            let error = render_payment_file(&layout(layout_name), &batch).unwrap_err();
            let expected = format!(
                "household H0003: account_name contains {character} (U+{:04X}), which GBK cannot encode",
                u32::from(character)
            );
            assert_eq!(error.to_string(), expected);
        }
    }
}

/// 䶮 (U+4DAE) is in GBK as encoding_rs implements it (0xFE9F, the GB18030 two-byte
/// mapping), so it renders; banks on older GB2312-era systems lack it, which is a
/// bank-route question, not a format one.
#[test]
fn yan_u4dae_is_in_encoding_rs_gbk() {
    let bytes = TargetEncoding::Gbk.encode_to_vec("王䶮").unwrap();
    assert_eq!(TargetEncoding::Gbk.decode_strict(&bytes).unwrap(), "王䶮");
}

fn gb18030_pipe_layout() -> Layout {
    let text = include_str!("../../bank-formats/bank-pipe-gbk.toml")
        .replace("name = \"bank-pipe-gbk\"", "name = \"bank-pipe-gb18030\"")
        .replace("encoding = \"gbk\"", "encoding = \"gb18030\"");
    Layout::from_toml_str(&text).unwrap()
}

#[test]
fn rare_names_round_trip_byte_exact_in_gb18030() {
    let layout = gb18030_pipe_layout();
    let mut batch = sample_batch();
    let names = ["王𬌗", "王䶮", "王\u{20000}", "李秀英"];
    for (payment, name) in batch.payments.iter_mut().zip(names) {
        payment.account_name = name.to_string().into();
    }
    let rendered = render_payment_file(&layout, &batch).unwrap();
    let parsed = parse_payment_file(&layout, &rendered.bytes).unwrap();
    let read: Vec<_> = parsed
        .payments
        .iter()
        .map(|p| p.account_name.clone().unwrap())
        .collect();
    assert_eq!(read, names);
    let mut again = batch.clone();
    for (payment, name) in again.payments.iter_mut().zip(read) {
        payment.account_name = name.into_owned().into();
    }
    assert_eq!(
        render_payment_file(&layout, &again).unwrap().bytes,
        rendered.bytes
    );
    // The same bytes read as GBK are refused: a four-byte sequence is not GBK.
    let gbk = self::layout("bank-pipe-gbk");
    let error = parse_payment_file(&gbk, &rendered.bytes).unwrap_err();
    assert!(
        matches!(error.reason, parse::ParseReason::Malformed { .. }),
        "{error}"
    );
}

const FEN_END_LAYOUT: &str = r#"
name = "test-pipe-fen-end"
kind = "delimited"
encoding = "gb18030"
line_ending = "LF"
delimiter = "|"
trailing_delimiter = false
amount_unit = "fen"
date_format = "yyyy-MM-dd"
records = [
  { role = "header", fields = [ { literal = "HDR" }, { source = "batch_id" }, { source = "pay_date" }, { source = "count", type = "N" }, { source = "total" } ] },
  { role = "detail", fields = [ { source = "seq", type = "N", width = 4 }, { source = "end_to_end_id" }, { source = "account_number" }, { source = "account_name" }, { source = "amount", type = "N" } ] },
  { role = "trailer", fields = [ { literal = "TRL" }, { source = "count", type = "N" }, { source = "total" } ] },
  { role = "end", fields = [ { literal = "END" } ] },
]
"#;

#[test]
fn a_layout_written_only_as_toml_renders_without_code_changes() {
    let layout = Layout::from_toml_str(FEN_END_LAYOUT).unwrap();
    let rendered = render_payment_file(&layout, &sample_batch()).unwrap();
    let text = String::from_utf8(
        encoding_rs::GB18030
            .decode(&rendered.bytes)
            .0
            .into_owned()
            .into_bytes(),
    )
    .unwrap();
    let expected = "HDR|B20261100001|2026-11-25|4|181110\n\
        0001|E202611000001|6222020200112233001|张三丰|52340\n\
        0002|E202611000002|6222020200112233002|李秀英|5\n\
        0003|E202611000003|6222020200112233003|欧阳娜娜|120000\n\
        0004|E202611000004|6222020200112233004|王小明|8765\n\
        TRL|4|181110\nEND\n";
    assert_eq!(text, expected);
    let parsed = parse_payment_file(&layout, &rendered.bytes).unwrap();
    assert_eq!((parsed.record_count, parsed.total), (4, Fen::new(181_110)));
    let without_end = &rendered.bytes[..rendered.bytes.len() - 4];
    assert!(parse_payment_file(&layout, without_end).is_err());
}

#[test]
fn values_that_do_not_fit_are_errors_never_cut() {
    let mut batch = sample_batch();
    batch.payments[1].account_name = "李".repeat(31).into(); // 62 GBK bytes in a 60-byte field
    let error = render_payment_file(&layout("rcc-fixed-gbk"), &batch).unwrap_err();
    assert_eq!(
        error.to_string(),
        "household H0002: account_name is 62 bytes, longer than its 60-byte field"
    );
    let mut batch = sample_batch();
    batch.payments[3].memo = "低保|补发".into();
    let error = render_payment_file(&layout("bank-pipe-gbk"), &batch).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("household H0004: memo contains the character '|'"),
        "{error}"
    );
    let mut batch = sample_batch();
    batch.payments[0].account_name = "张\r\n三".into();
    assert!(render_payment_file(&layout("bank-pipe-gbk"), &batch).is_err());
    let mut batch = sample_batch();
    batch.batch_id = "B".repeat(21);
    let error = render_payment_file(&layout("bank-pipe-gbk"), &batch).unwrap_err();
    assert!(error.to_string().starts_with("batch BBBB"), "{error}");
    let mut batch = sample_batch();
    batch.payments.clear();
    assert!(render_payment_file(&layout("bank-pipe-gbk"), &batch).is_err());
}

/// One table: a broken layout and the key its error must name.
#[test]
fn invalid_layouts_are_refused_naming_the_key() {
    let fixed = include_str!("../../bank-formats/rcc-fixed-gbk.toml");
    let pipe = include_str!("../../bank-formats/bank-pipe-gbk.toml");
    let cases: &[(String, &str)] = &[
        (
            fixed.replace("start = 4,   width = 20", "start = 3,   width = 20"),
            "records[0].fields[2].start",
        ),
        (
            fixed.replace("start = 4,   width = 20", "start = 5,   width = 20"),
            "records[0].fields[2].start",
        ),
        (
            fixed.replace("start = 150, width = 51", "start = 150, width = 50"),
            "records[0].fields",
        ),
        (
            fixed.replace("start = 150, width = 51", "start = 150, width = 52"),
            "records[0].fields[9].start",
        ),
        (
            fixed.replace("record_width = 200", "record_width = 0"),
            "record_width",
        ),
        (
            fixed.replace("source = \"payer_name\"", "source = \"payer_nmae\""),
            "records[0].fields[4].source",
        ),
        (
            fixed.replace("source = \"seq\"", "source = \"ok_count\""),
            "records[1].fields[1].source",
        ),
        (
            fixed.replace(
                "width = 15, source = \"amount\", type = \"N\", unit = \"fen\"",
                "width = 15, source = \"amount\", type = \"N\", unit = \"yuan\"",
            ),
            "records[1].fields[6].unit",
        ),
        (
            pipe.replace("role = \"header\"", "role = \"trailer\""),
            "records[1]",
        ),
        (
            pipe.replace("role = \"detail\"", "role = \"detial\""),
            "records[1].role",
        ),
        (
            pipe.replace("kind = \"delimited\"", "kind = \"csv\""),
            "kind",
        ),
        (
            pipe.replace("encoding = \"gbk\"", "encoding = \"big5\""),
            "encoding",
        ),
        (
            pipe.replace("delimiter = \"|\"", "delimiter = \"ab\""),
            "delimiter",
        ),
        (
            pipe.replace("{ source = \"end_to_end_id\", width = 20 },", ""),
            "records[1].fields",
        ),
        (
            pipe.replace("{ literal = \"CNY\" }", "{ literal = \"C|Y\" }"),
            "records[0].fields[8].literal",
        ),
        (
            pipe.replace(
                "{ literal = \"CNY\" }",
                "{ literal = \"CNY\", source = \"memo\" }",
            ),
            "records[0].fields[8]",
        ),
    ];
    for (text, key) in cases {
        let error = Layout::from_toml_str(text).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!("{key}:")),
            "want {key}, got {error}"
        );
    }
    let no_detail = "name = \"x\"\nkind = \"delimited\"\nencoding = \"gbk\"\ndelimiter = \"|\"\n\
        records = [ { role = \"header\", fields = [ { literal = \"H\" } ] } ]\n";
    assert_eq!(
        Layout::from_toml_str(no_detail).unwrap_err(),
        LayoutError::MissingDetail
    );
    let typo = pipe.replace("trailing_delimiter", "trailing_delimeter");
    let error = Layout::from_toml_str(&typo).unwrap_err();
    assert!(error.to_string().contains("trailing_delimeter"), "{error}");
}

/// R1 written by hand (not by our renderer), encoded to GBK.
pub(super) fn r1_sample(trailer: &str) -> Vec<u8> {
    r1_sample_with("1|0.05|3|1811.05", trailer)
}

fn r1_sample_with(splits: &str, trailer: &str) -> Vec<u8> {
    let text = format!(
        "H|01|B20261100001|20261126|4|1811.10|{splits}|\r\n\
         D|1|6222020200112233001|张三丰|523.40|F||AC01|账号不存在|E202611000001|\r\n\
         D|2|6222020200112233002|李秀英|0.05|S|SN0002|||E202611000002|\r\n\
         D|3|6222020200112233003|欧阳娜娜|1200.00|F|SN0003||该账户已销户|E202611000003|\r\n\
         D|4|6222020200112233004|王小明|87.65|F|SN0004||户主死亡|E202611000004|\r\n\
         {trailer}\r\n"
    );
    TargetEncoding::Gbk.encode_to_vec(&text).unwrap()
}

fn check_sample_results(file: &crate::domain::bank_result::ResultFile) {
    let seen: Vec<_> = file
        .results
        .iter()
        .map(|r| {
            (
                r.end_to_end_id.as_str(),
                r.status,
                r.reason_code.as_deref(),
                r.amount,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "E202611000001",
                ResultStatus::Failed,
                Some("AC01"),
                Some(Fen::new(52_340))
            ),
            ("E202611000002", ResultStatus::Paid, None, Some(Fen::new(5))),
            (
                "E202611000003",
                ResultStatus::Failed,
                Some("AC04"),
                Some(Fen::new(120_000))
            ),
            (
                "E202611000004",
                ResultStatus::Failed,
                Some("MD07"),
                Some(Fen::new(8_765))
            ),
        ]
    );
    assert_eq!(file.original_batch_id.as_deref(), Some("B20261100001"));
    assert_eq!(file.results[2].reason_text.as_deref(), Some("该账户已销户"));
}

#[test]
fn r1_result_file_parses_and_checks_its_controls() {
    let layout = layout("bank-result-pipe-gbk");
    let file = parse_result_file(&layout, &r1_sample("T|4|1811.10|")).unwrap();
    check_sample_results(&file);
    assert_eq!(file.results[1].bank_serial.as_deref(), Some("SN0002"));
    assert_eq!(file.results[3].line, 5);
    let error = parse_result_file(&layout, &r1_sample("T|4|1811.11|")).unwrap_err();
    assert_eq!(
        (error.line, error.column, error.field.as_str()),
        (6, 3, "total")
    );
    let wrong_split = r1_sample_with("2|0.05|2|1811.05", "T|4|1811.10|");
    let error = parse_result_file(&layout, &wrong_split).unwrap_err();
    assert_eq!(
        (error.line, error.field.as_str()),
        (1, "ok_count"),
        "{error}"
    );
}

/// R1B records built by the layout engine from result values (a bank simulator would
/// do the same).
pub(super) fn r1b_sample(ok_count_override: Option<u64>) -> Vec<u8> {
    let layout = layout("rcc-result-fixed-gbk");
    let batch = sample_batch();
    let statuses = [
        ("F", "AC01", "账号不存在"),
        ("S", "", ""),
        ("F", "", "该账户已销户"),
        ("F", "", "户主死亡"),
    ];
    let mut writer = RecordWriter::new(&layout, 4096);
    let owner = || "test".to_string();
    let batch_value = |source| match source {
        Source::BatchId => Value::Text("B20261100001"),
        Source::PayerAccount => Value::Text(&batch.payer_account),
        Source::PayerName => Value::Text(&batch.payer_name),
        Source::ProcessedDate => Value::Date(NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()),
        Source::Count => Value::Number(4),
        Source::Total => Value::Money(Fen::new(181_110)),
        Source::OkCount => Value::Number(ok_count_override.unwrap_or(1)),
        Source::OkTotal => Value::Money(Fen::new(5)),
        Source::FailedCount => Value::Number(3),
        Source::FailedTotal => Value::Money(Fen::new(181_105)),
        _ => Value::Missing,
    };
    writer
        .write_record(
            layout.record(RecordRole::Header).unwrap(),
            &owner,
            batch_value,
        )
        .unwrap();
    for (payment, (status, code, text)) in batch.payments.iter().zip(statuses) {
        let value = |source| match source {
            Source::Status => Value::Text(status),
            Source::ReasonCode => Value::Text(code),
            Source::ReasonText => Value::Text(text),
            Source::BankSerial => Value::Text("SN"),
            Source::Seq => Value::Number(u64::from(payment.seq)),
            Source::EndToEndId => Value::Text(&payment.end_to_end_id),
            Source::AccountNumber => Value::Text(&payment.account_number),
            Source::AccountName => Value::Text(&payment.account_name),
            Source::IdNumber => Value::Text(&payment.id_number),
            Source::Amount => Value::Money(payment.amount),
            Source::BankCode => Value::Text(&payment.bank_code),
            Source::Memo => Value::Text(&payment.memo),
            _ => Value::Missing,
        };
        writer
            .write_record(layout.record(RecordRole::Detail).unwrap(), &owner, value)
            .unwrap();
    }
    writer
        .write_record(
            layout.record(RecordRole::Trailer).unwrap(),
            &owner,
            batch_value,
        )
        .unwrap();
    writer.finish()
}

#[test]
fn r1b_result_file_parses_and_checks_its_controls() {
    let layout = layout("rcc-result-fixed-gbk");
    let bytes = r1b_sample(None);
    assert_eq!(bytes.len(), 6 * 267);
    assert_eq!(bytes[267 + 200], b'F');
    check_sample_results(&parse_result_file(&layout, &bytes).unwrap());
    let error = parse_result_file(&layout, &r1b_sample(Some(2))).unwrap_err();
    assert_eq!(
        (error.line, error.column, error.field.as_str()),
        (6, 2, "ok_count"),
        "{error}"
    );
}

/// FAILURES #5: a file cut at any byte offset is refused whole.
#[test]
fn truncated_files_are_refused_at_every_offset() {
    let pipe = render_payment_file(&layout("bank-pipe-gbk"), &sample_batch())
        .unwrap()
        .bytes;
    let fixed = render_payment_file(&layout("rcc-fixed-gbk"), &sample_batch())
        .unwrap()
        .bytes;
    let payment_cases = [
        (layout("bank-pipe-gbk"), pipe),
        (layout("rcc-fixed-gbk"), fixed),
    ];
    for (layout, bytes) in &payment_cases {
        for cut in 0..bytes.len() {
            assert!(
                parse_payment_file(layout, &bytes[..cut]).is_err(),
                "{} cut at {cut}",
                layout.name()
            );
        }
    }
    let result_cases = [
        (layout("bank-result-pipe-gbk"), r1_sample("T|4|1811.10|")),
        (layout("rcc-result-fixed-gbk"), r1b_sample(None)),
    ];
    for (layout, bytes) in &result_cases {
        for cut in 0..bytes.len() {
            assert!(
                parse_result_file(layout, &bytes[..cut]).is_err(),
                "{} cut at {cut}",
                layout.name()
            );
        }
        // Dropping the whole trailer line leaves well-formed lines: still refused.
        let trailer_start = bytes[..bytes.len() - 2]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap()
            + 1;
        let error = parse_result_file(layout, &bytes[..trailer_start]).unwrap_err();
        assert_eq!(error.line, 5, "{error}");
    }
}

#[test]
fn parse_errors_carry_line_column_and_offset() {
    let layout = layout("rcc-fixed-gbk");
    let mut bytes = render_payment_file(&layout, &sample_batch()).unwrap().bytes;
    bytes[202 + 41] = 0xFF; // first byte of line 2's name field
    let error = parse_payment_file(&layout, &bytes).unwrap_err();
    assert_eq!(
        (error.line, error.column, error.field.as_str()),
        (2, 42, "account_name")
    );
    assert_eq!(
        error.reason,
        parse::ParseReason::Malformed {
            encoding: "GBK",
            offset: 243
        }
    );
    let pipe = render_payment_file(&self::layout("bank-pipe-gbk"), &sample_batch())
        .unwrap()
        .bytes;
    let as_utf8 = parse_payment_file(&gb18030_as_utf8(), &pipe).unwrap_err();
    assert!(
        matches!(as_utf8.reason, parse::ParseReason::Malformed { .. }),
        "{as_utf8}"
    );
    let lf_only: Vec<u8> = pipe.iter().copied().filter(|byte| *byte != b'\r').collect();
    let error = parse_payment_file(&self::layout("bank-pipe-gbk"), &lf_only).unwrap_err();
    assert_eq!(error.reason, parse::ParseReason::BareLineFeed);
}

#[test]
fn repeated_identities_and_broken_sequences_are_refused() {
    let layout = layout("bank-pipe-gbk");
    let mut batch = sample_batch();
    batch.payments[2].end_to_end_id = batch.payments[0].end_to_end_id.clone();
    let bytes = render_payment_file(&layout, &batch).unwrap().bytes;
    let error = parse_payment_file(&layout, &bytes).unwrap_err();
    assert_eq!(
        (error.line, error.field.as_str()),
        (4, "end_to_end_id"),
        "{error}"
    );
    let mut batch = sample_batch();
    batch.payments[3].seq = 9;
    let bytes = render_payment_file(&layout, &batch).unwrap().bytes;
    let error = parse_payment_file(&layout, &bytes).unwrap_err();
    assert_eq!((error.line, error.field.as_str()), (5, "seq"), "{error}");
}

fn gb18030_as_utf8() -> Layout {
    let text = include_str!("../../bank-formats/bank-pipe-gbk.toml")
        .replace("encoding = \"gbk\"", "encoding = \"utf-8\"");
    Layout::from_toml_str(&text).unwrap()
}

fn arbitrary_payment() -> impl Strategy<Value = (String, i64, String)> {
    let names = prop::sample::select(vec![
        "张三",
        "李秀英",
        "欧阳娜娜",
        "王小明",
        "A&B<C>",
        "赵 钱",
    ]);
    (names, 0i64..=1_000_000_000, "[A-Za-z0-9-]{1,20}")
        .prop_map(|(name, fen, id)| (name.to_string(), fen, id))
}

proptest! {
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        for layout in load_builtin() {
            let _refused_or_read = parse_payment_file(&layout, &bytes);
            let _refused_or_read = parse_result_file(&layout, &bytes);
        }
        let _refused_or_read = xml_read::read_pain001(&bytes);
    }

    #[test]
    fn pain001_read_never_panics_on_mutated_files(position in 0usize..4000, byte in any::<u8>()) {
        let mut bytes = render_payment_file(&layout("iso20022-pain001"), &edge_batch()).unwrap().bytes;
        let index = position % bytes.len();
        bytes[index] = byte;
        let _refused_or_read = xml_read::read_pain001(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_mutated_files(position in 0usize..1212, byte in any::<u8>()) {
        for name in ["bank-pipe-gbk", "rcc-fixed-gbk"] {
            let layout = layout(name);
            let mut bytes = render_payment_file(&layout, &sample_batch()).unwrap().bytes;
            let index = position % bytes.len();
            bytes[index] = byte;
            let _refused_or_read = parse_payment_file(&layout, &bytes);
        }
    }

    #[test]
    fn render_then_parse_keeps_count_total_and_ids(payments in prop::collection::vec(arbitrary_payment(), 1..30)) {
        let mut batch = sample_batch();
        batch.payments = payments
            .iter()
            .enumerate()
            .map(|(index, (name, fen, id))| {
                let mut p = payment(index as u32 + 1, &format!("H{index}"), name, *fen, "102100000012");
                // Unique, as CONTRACTS §3.1 guarantees: the parser refuses repeats.
                p.end_to_end_id = format!("{id:.15}{index:04}").into();
                p
            })
            .collect();
        for name in ["bank-pipe-gbk", "rcc-fixed-gbk"] {
            let layout = layout(name);
            let rendered = render_payment_file(&layout, &batch).unwrap();
            let parsed = parse_payment_file(&layout, &rendered.bytes).unwrap();
            prop_assert_eq!(parsed.record_count, batch.payments.len() as u64);
            prop_assert_eq!(parsed.total, batch.total());
            let ids: Vec<_> = parsed.payments.iter().map(|p| p.end_to_end_id.to_string()).collect();
            let expected: Vec<_> = batch.payments.iter().map(|p| p.end_to_end_id.clone()).collect();
            prop_assert_eq!(ids, expected);
            let mut again = batch.clone();
            for (payment, read) in again.payments.iter_mut().zip(&parsed.payments) {
                payment.account_name = read.account_name.clone().unwrap_or_default().into_owned().into();
                payment.account_number = read.account_number.clone().unwrap_or_default().into_owned().into();
                payment.end_to_end_id = read.end_to_end_id.to_string().into();
                payment.amount = read.amount;
            }
            prop_assert_eq!(render_payment_file(&layout, &again).unwrap().bytes, rendered.bytes);
        }
        let rendered = render_payment_file(&layout("iso20022-pain001"), &batch).unwrap();
        let read = xml_read::read_pain001(&rendered.bytes).unwrap();
        prop_assert_eq!(read.record_count, batch.payments.len() as u64);
        prop_assert_eq!(read.total, batch.total());
        let expected: Vec<_> = batch.payments.iter().map(|p| p.end_to_end_id.as_str()).collect();
        prop_assert_eq!(read.end_to_end_ids, expected);
    }
}

/// A batch at the edges of what the renderers accept: XML specials, a name that fills
/// its fixed field exactly, the euro sign (one byte in GBK), an empty memo (pain.001
/// leaves out `RmtInf`), zero and very large amounts, spaces inside and around values.
pub(super) fn edge_batch() -> PaymentBatch {
    let mut batch = sample_batch();
    let names = [
        "A&B<C>'\"D",
        "欧阳娜娜欧阳娜娜欧阳娜娜欧阳娜娜欧阳娜娜欧阳娜娜欧阳娜娜欧阳",
        " 赵 钱 ",
        "x",
    ];
    let memos = ["€5 补发", "", "2026-11低保金&补", "  "];
    let amounts = [0, 1, 99_999_999_999_999, 10_000_000_000];
    for (index, payment) in batch.payments.iter_mut().enumerate() {
        payment.account_name = names[index].to_string().into();
        payment.memo = memos[index].to_string().into();
        payment.amount = Fen::new(amounts[index]);
    }
    batch.payer_name = "某市财政局 <社保> & \"专户\"".into();
    batch.memo = "€".into();
    batch
}

/// Pinned before the renderers were made faster: every byte and every refusal must stay.
#[test]
fn edge_batch_matches_golden_files() {
    let batch = edge_batch();
    let gb18030 = gb18030_pipe_layout();
    let mut rare = batch.clone();
    rare.payments[3].account_name = "王𬌗\u{20000}䶮".into();
    let cases = [
        (layout("bank-pipe-gbk"), &batch, "edge-bank-pipe-gbk.txt"),
        (layout("rcc-fixed-gbk"), &batch, "edge-rcc-fixed-gbk.txt"),
        (
            layout("iso20022-pain001"),
            &batch,
            "edge-iso20022-pain001.xml",
        ),
        (gb18030, &rare, "edge-bank-pipe-gb18030.txt"),
        (
            Layout::from_toml_str(FEN_END_LAYOUT).unwrap(),
            &rare,
            "edge-fen-end-gb18030.txt",
        ),
    ];
    for (layout, batch, file) in cases {
        let rendered = render_payment_file(&layout, batch).unwrap();
        check_golden(file, &rendered.bytes);
        if layout.kind() != spec::LayoutKind::Iso20022Pain001 {
            let parsed = parse_payment_file(&layout, &rendered.bytes).unwrap();
            assert_eq!(parsed.total, batch.total(), "{file}");
        }
    }
}

/// Pinned before the renderers were made faster: which value is refused, and how.
#[test]
fn edge_refusals_are_pinned() {
    let numeric_account = include_str!("../../bank-formats/rcc-fixed-gbk.toml").replace(
        "source = \"account_number\", type = \"C\"",
        "source = \"account_number\", type = \"N\"",
    );
    let numeric_account = Layout::from_toml_str(&numeric_account).unwrap();
    type Edit = fn(&mut PaymentBatch);
    let cases: &[(&str, Edit, &str)] = &[
        ("bank-pipe-gbk", |b| b.payments[1].account_name = "张\u{85}三".into(), "household H0002: account_name contains the character '\\u{85}', which this format cannot carry"),
        ("rcc-fixed-gbk", |b| b.payments[1].account_name = "张\u{7f}".into(), "household H0002: account_name contains the character '\\u{7f}', which this format cannot carry"),
        ("rcc-fixed-gbk", |b| b.payments[1].account_name = "张|三".into(), "ok"),
        ("bank-pipe-gbk", |b| b.payments[1].id_number = "1|2".into(), "household H0002: id_number contains the character '|', which this format cannot carry"),
        ("bank-pipe-gbk", |b| b.payments[2].memo = "低保\u{2028}".into(), "household H0003: memo contains \u{2028} (U+2028), which GBK cannot encode"),
        ("rcc-fixed-gbk", |b| b.payments[0].memo = "低保金低保金低保金低保金低保金低".into(), "household H0001: memo is 32 bytes, longer than its 30-byte field"),
        ("rcc-fixed-gbk", |b| b.payments[0].memo = "低保金低保金低保金低保金低保金".into(), "ok"),
        ("rcc-fixed-gbk", |b| b.payments[0].account_number = "1".repeat(33).into(), "household H0001: account_number is 33 bytes, longer than its 32-byte field"),
        ("rcc-fixed-gbk", |b| b.payments[0].amount = Fen::new(1_000_000_000_000_000), "batch B20261100001: total is 16 bytes, longer than its 15-byte field"),
        ("rcc-fixed-gbk", |b| b.payments[0].amount = Fen::new(-1), "household H0001: amount -0.01 is negative"),
        ("bank-pipe-gbk", |b| b.payer_name = "财政\t局".into(), "batch B20261100001: payer_name contains the character '\\t', which this format cannot carry"),
        ("bank-pipe-gbk", |b| b.payments[3].end_to_end_id = "E".repeat(21).into(), "household H0004: end_to_end_id is 21 bytes, longer than its 20-byte field"),
        ("iso20022-pain001", |b| b.payments[1].account_name = "张\u{9f}".into(), "household H0002: Nm \"张*\" breaks the ISO 20022 schema: contains a control character"),
        ("iso20022-pain001", |b| b.payments[1].id_number = String::new().into(), "household H0002: Id \"\" breaks the ISO 20022 schema: must not be empty"),
        ("iso20022-pain001", |b| b.payments[2].memo = "补".repeat(141).into(), "household H0003: Ustrd \"补补…补补\" breaks the ISO 20022 schema: longer than the schema allows"),
        ("iso20022-pain001", |b| b.payments[2].memo = "补".repeat(140).into(), "ok"),
        ("iso20022-pain001", |b| b.payments[0].account_number = "6".repeat(35).into(), "household H0001: Id \"****6666\" breaks the ISO 20022 schema: longer than the schema allows"),
        ("iso20022-pain001", |b| b.payments[0].bank_code = "1".repeat(36).into(), "household H0001: MmbId \"111111111111111111111111111111111111\" breaks the ISO 20022 schema: longer than the schema allows"),
        ("iso20022-pain001", |b| b.payer_bank_code = String::new(), "batch B20261100001: MmbId \"\" breaks the ISO 20022 schema: must not be empty"),
        ("iso20022-pain001", |b| b.payments[0].end_to_end_id = "E\r1".into(), "household H0001: EndToEndId \"E\\r1\" breaks the ISO 20022 schema: contains a control character"),
        ("iso20022-pain001", |b| b.payments[0].amount = Fen::new(1_000_000_000_000_000_000), "batch B20261100001: CtrlSum \"10000000000001287.70\" breaks the ISO 20022 schema: outside 0 to 18 digits"),
        ("numeric-account", |b| b.payments[2].account_number = "62220X".into(), "household H0003: account_number must be digits only for an N field"),
        ("numeric-account", |b| b.payments[2].account_number = "６２".into(), "household H0003: account_number must be digits only for an N field"),
        ("numeric-account", |b| b.payments[2].account_number = "6\u{20000}".into(), "household H0003: account_number contains \u{20000} (U+20000), which GBK cannot encode"),
        ("numeric-account", |b| b.payments[2].account_number = "1".repeat(33).into(), "household H0003: account_number is 33 bytes, longer than its 32-byte field"),
    ];
    let mut mismatches = Vec::new();
    for (layout_name, edit, expected) in cases {
        let mut batch = sample_batch();
        edit(&mut batch);
        let chosen = match *layout_name {
            "numeric-account" => numeric_account.clone(),
            name => layout(name),
        };
        let outcome = match render_payment_file(&chosen, &batch) {
            Ok(_) => "ok".to_string(),
            Err(error) => error.to_string(),
        };
        // `…` stands for a long middle part of the value.
        let matches = match expected.split_once('…') {
            Some((head, tail)) => outcome.starts_with(head) && outcome.ends_with(tail),
            None => outcome == *expected,
        };
        if !matches {
            mismatches.push(format!("{layout_name}: {outcome:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}
