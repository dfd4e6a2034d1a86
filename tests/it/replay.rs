//! Replays and order (FAILURES #6, #7, #9, and #2 for ingest) on both databases, through
//! `disburse::engine::ingest::ingest_file` (the `returns ingest` verb is being wired in
//! main; these tests move to the binary when it is): the same R1 file twice is a
//! reported no-op; a second file answering a paid payment is a `duplicate_result`
//! exception and the payment stays paid; a result for an unknown end_to_end_id is an
//! `unknown_payment` exception, never dropped; an ingest aborted before its commit
//! (`ingest.before_commit`, in a child process) leaves nothing and the retry applies
//! the file once. The order-independence property is `src/reconcile/tests.rs`.

use crate::crash_matrix::{Scenario, STEPS};
use crate::support::*;
use disburse::engine::approve::Actor;
use disburse::engine::ingest::{ingest_file, IngestSummary};
use disburse::formats::{load_builtin, parse_payment_file, TargetEncoding};
use disburse::store::Store;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;

/// An exported run on `db`, and its bank-pipe-gbk batch: (batch_id, payments as
/// (end_to_end_id, account, name, amount)).
struct Exported {
    scenario: Scenario,
    batch_id: String,
    payments: Vec<(String, String, String, String)>,
}

fn exported(db: TestDb) -> Exported {
    let scenario = Scenario::new(db);
    for step in STEPS {
        assert_exit(&scenario.step(step, None), 0);
    }
    let out = scenario.out();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let entry = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["layout"] == "bank-pipe-gbk")
        .expect("an A-route file")
        .clone();
    let layouts = load_builtin();
    let layout = disburse::formats::spec::find(&layouts, "bank-pipe-gbk").unwrap();
    let bytes = std::fs::read(out.join(entry["file"].as_str().unwrap())).unwrap();
    let parsed = parse_payment_file(layout, &bytes).unwrap();
    assert!(parsed.payments.len() >= 2);
    let payments = parsed
        .payments
        .into_iter()
        .map(|p| {
            (
                p.end_to_end_id.into_owned(),
                p.account_number.unwrap().into_owned(),
                p.account_name.unwrap().into_owned(),
                p.amount.to_yuan_string(),
            )
        })
        .collect();
    Exported {
        scenario,
        batch_id: entry["batch_id"].as_str().unwrap().to_string(),
        payments,
    }
}

/// An R1 result file (CONTRACTS §3.4) answering every payment `S`, GBK-encoded.
fn r1_all_paid(batch_id: &str, payments: &[(String, String, String, String)]) -> Vec<u8> {
    let total: i64 = payments
        .iter()
        .map(|p| {
            disburse::domain::money::Fen::parse_yuan(&p.3)
                .unwrap()
                .as_i64()
        })
        .sum();
    let total = disburse::domain::money::Fen::new(total).to_yuan_string();
    let count = payments.len();
    let mut text = format!("H|01|{batch_id}|20261126|{count}|{total}|{count}|{total}|0|0.00|\r\n");
    for (seq, (id, account, name, amount)) in payments.iter().enumerate() {
        text.push_str(&format!(
            "D|{}|{account}|{name}|{amount}|S|SN{:04}|||{id}|\r\n",
            seq + 1,
            seq + 1
        ));
    }
    text.push_str(&format!("T|{count}|{total}|\r\n"));
    TargetEncoding::Gbk.encode_to_vec(&text).unwrap()
}

/// A pain.002 status report answering one payment as settled (ACSC).
fn pain002_paid(message_id: &str, batch_id: &str, id: &str, amount: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
  <CstmrPmtStsRpt>
    <GrpHdr><MsgId>{message_id}</MsgId><CreDtTm>2026-11-27T10:00:00+08:00</CreDtTm></GrpHdr>
    <OrgnlGrpInfAndSts><OrgnlMsgId>{batch_id}</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId></OrgnlGrpInfAndSts>
    <OrgnlPmtInfAndSts>
      <OrgnlPmtInfId>{batch_id}-P1</OrgnlPmtInfId>
      <TxInfAndSts>
        <OrgnlEndToEndId>{id}</OrgnlEndToEndId>
        <TxSts>ACSC</TxSts>
        <OrgnlTxRef><Amt><InstdAmt Ccy="CNY">{amount}</InstdAmt></Amt></OrgnlTxRef>
      </TxInfAndSts>
    </OrgnlPmtInfAndSts>
  </CstmrPmtStsRpt>
</Document>
"#
    )
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn ingest(url: &str, path: &Path) -> IngestSummary {
    block_on(async {
        let store = Store::connect(url).await.unwrap();
        let actor = Actor {
            user: "clerk",
            now_text: "2026-11-27T02:00:00Z",
        };
        let summary = ingest_file(&store, &actor, path, None).await.unwrap();
        store.close().await;
        summary
    })
}

/// Rows of two text columns, sorted, straight from the database.
fn pairs(url: &str, sql: &str) -> Vec<(String, String)> {
    block_on(async {
        use sqlx::Connection;
        let mut rows: Vec<(String, String)> = if url.starts_with("sqlite:") {
            let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_as(sql)
                .fetch_all(&mut connection)
                .await
                .unwrap()
        } else {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_as(sql)
                .fetch_all(&mut connection)
                .await
                .unwrap()
        };
        rows.sort();
        rows
    })
}

/// Rows in a table the store's counter does not list.
fn rows(url: &str, table: &str) -> usize {
    pairs(url, &format!("SELECT '', '' FROM {table}")).len()
}

const STATES: &str = "SELECT end_to_end_id, status FROM payment";
const EXCEPTIONS: &str = "SELECT kind, end_to_end_id FROM exception";

#[test]
fn replayed_duplicate_and_unknown_results_on_both_databases() {
    for db in TestDb::both() {
        let run = exported(db);
        let db = &run.scenario.db;
        let backend = db.backend;
        let first = db.write("r1.txt", r1_all_paid(&run.batch_id, &run.payments));
        let summary = ingest(&db.url, &first);
        assert_eq!(summary.duplicate_of, None, "{backend}");
        assert_eq!(summary.applied, run.payments.len() as u64, "{backend}");
        assert_eq!(summary.exceptions, 0, "{backend}");
        let paid = pairs(&db.url, STATES);
        for (id, _, _, _) in &run.payments {
            assert!(
                paid.contains(&(id.clone(), "paid".into())),
                "{backend} {id}"
            );
        }

        // FAILURES #6: the same file again is a reported no-op.
        let again = db.write("r1-again.txt", std::fs::read(&first).unwrap());
        let replay = ingest(&db.url, &again);
        assert!(
            replay
                .duplicate_of
                .as_deref()
                .is_some_and(|d| d.contains("SHA-256")),
            "{backend}: {:?}",
            replay.duplicate_of
        );
        assert_eq!((replay.applied, replay.exceptions), (0, 0), "{backend}");
        assert_eq!(pairs(&db.url, STATES), paid, "{backend}");
        assert_eq!(rows(&db.url, "result_file"), 1, "{backend}");

        // FAILURES #7: another file answering a paid payment is flagged, not applied.
        let (id, _, _, amount) = &run.payments[0];
        let second = db.write(
            "pain002.xml",
            pain002_paid("BANK-RPT-2", &run.batch_id, id, amount),
        );
        let duplicate = ingest(&db.url, &second);
        assert_eq!(duplicate.duplicate_of, None, "{backend}");
        assert_eq!(duplicate.applied, 0, "{backend}");
        assert_eq!(pairs(&db.url, STATES), paid, "{backend}: nothing reversed");
        let exceptions = pairs(&db.url, EXCEPTIONS);
        assert!(
            exceptions.contains(&("duplicate_result".into(), id.clone())),
            "{backend}: {exceptions:?}"
        );

        // FAILURES #9: an unknown payment goes to the exceptions, never dropped.
        let unknown_id = "DB999999-00000001";
        let third = db.write(
            "pain002-unknown.xml",
            pain002_paid("BANK-RPT-3", &run.batch_id, unknown_id, "10.00"),
        );
        let unknown = ingest(&db.url, &third);
        assert_eq!((unknown.applied, unknown.results), (0, 1), "{backend}");
        let exceptions = pairs(&db.url, EXCEPTIONS);
        assert!(
            exceptions.contains(&("unknown_payment".into(), unknown_id.into())),
            "{backend}: {exceptions:?}"
        );
        assert_eq!(pairs(&db.url, STATES), paid, "{backend}");
        assert_exit(&db.run(&["audit", "verify"]), 0);
    }
}

/// Environment variables of the ingest child (below): database URL and file.
const CHILD_DB: &str = "DISBURSE_TEST_CHILD_DB";
const CHILD_FILE: &str = "DISBURSE_TEST_CHILD_FILE";

/// Not a test on its own: the child process `an_ingest_aborted_before_commit…` starts
/// (this test binary, filtered to this test) to ingest with a fail point armed. Without
/// its environment it does nothing.
#[test]
fn ingest_child_process() {
    let (Ok(url), Ok(file)) = (std::env::var(CHILD_DB), std::env::var(CHILD_FILE)) else {
        return;
    };
    ingest(&url, Path::new(&file));
}

#[test]
fn an_ingest_aborted_before_commit_leaves_nothing_and_the_retry_applies_once() {
    for db in TestDb::both() {
        let run = exported(db);
        let db = &run.scenario.db;
        let backend = db.backend;
        let file = db.write("r1.txt", r1_all_paid(&run.batch_id, &run.payments));
        let before = pairs(&db.url, STATES);
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "replay::ingest_child_process", "--nocapture"])
            .env(CHILD_DB, &db.url)
            .env(CHILD_FILE, &file)
            .env("DISBURSE_FAILPOINT", "ingest.before_commit")
            .output()
            .unwrap();
        assert_eq!(
            child.status.signal(),
            Some(6),
            "{backend}: the child must abort\n{}",
            stderr(&child)
        );
        assert_eq!(pairs(&db.url, STATES), before, "{backend}: nothing applied");
        assert_eq!(rows(&db.url, "result_file"), 0, "{backend}");
        assert_eq!(rows(&db.url, "payment_result"), 0, "{backend}");
        let retry = ingest(&db.url, &file);
        assert_eq!(retry.applied, run.payments.len() as u64, "{backend}");
        assert_eq!(rows(&db.url, "result_file"), 1, "{backend}");
        assert_exit(&db.run(&["audit", "verify"]), 0);
    }
}

/// An R1 result file from explicit lines (id, account, name, amount, status, serial,
/// code, reason), with its header's counts and totals computed from them.
fn r1_lines(batch_id: &str, lines: &[[&str; 8]]) -> Vec<u8> {
    use disburse::domain::money::Fen;
    let fen = |amount: &str| Fen::parse_yuan(amount).unwrap().as_i64();
    let sum = |status: &str| -> (usize, String) {
        let chosen: Vec<&[&str; 8]> = lines.iter().filter(|l| l[4] == status).collect();
        let total = chosen.iter().map(|l| fen(l[3])).sum();
        (chosen.len(), Fen::new(total).to_yuan_string())
    };
    let total = Fen::new(lines.iter().map(|l| fen(l[3])).sum()).to_yuan_string();
    let ((paid, paid_total), (failed, failed_total)) = (sum("S"), sum("F"));
    let count = lines.len();
    let mut text = format!(
        "H|01|{batch_id}|20261126|{count}|{total}|{paid}|{paid_total}|{failed}|{failed_total}|\r\n"
    );
    for (seq, [id, account, name, amount, status, serial, code, reason]) in lines.iter().enumerate()
    {
        text.push_str(&format!(
            "D|{}|{account}|{name}|{amount}|{status}|{serial}|{code}|{reason}|{id}|\r\n",
            seq + 1
        ));
    }
    text.push_str(&format!("T|{count}|{total}|\r\n"));
    TargetEncoding::Gbk.encode_to_vec(&text).unwrap()
}

/// A file naming its batch is read from that batch's payments in one pass; results it
/// carries for another batch's payment, for no payment, twice for one payment, or with
/// another amount still meet the same checks as when every id was looked up alone:
/// each line's outcome, the exceptions, the hold (with the household and account of
/// the held payment's line), and each payment's state and last serial.
#[test]
fn a_file_mixing_its_batch_other_batches_and_unknown_ids_on_both_databases() {
    for db in TestDb::both() {
        let run = exported(db);
        let db = &run.scenario.db;
        let backend = db.backend;
        assert!(run.payments.len() >= 3, "{backend}: a batch of three");
        let batches = pairs(&db.url, "SELECT end_to_end_id, batch_id FROM payment");
        let other = batches
            .iter()
            .find(|(_, batch)| *batch != run.batch_id)
            .map(|(id, _)| id.clone())
            .expect("a payment of another batch");
        let unknown = "ZZ999999-99999999";
        let p = |k: usize| &run.payments[k];
        let file = db.write(
            "mixed.txt",
            r1_lines(
                &run.batch_id,
                &[
                    [&p(0).0, &p(0).1, &p(0).2, &p(0).3, "S", "SN-A", "", ""],
                    [&other, &p(0).1, &p(0).2, "1.00", "S", "SN-B", "", ""],
                    [unknown, &p(0).1, &p(0).2, "2.00", "S", "SN-C", "", ""],
                    [
                        &p(1).0,
                        &p(1).1,
                        &p(1).2,
                        &p(1).3,
                        "F",
                        "SN-D",
                        "AC01",
                        "账号不存在",
                    ],
                    [&p(0).0, &p(0).1, &p(0).2, &p(0).3, "S", "SN-E", "", ""],
                    [&p(2).0, &p(2).1, &p(2).2, "0.01", "S", "SN-F", "", ""],
                ],
            ),
        );
        let before = pairs(&db.url, STATES);
        let summary = ingest(&db.url, &file);
        assert_eq!(
            (
                summary.results,
                summary.applied,
                summary.unchanged,
                summary.exceptions,
                summary.holds
            ),
            (6, 2, 0, 5, 1),
            "{backend}: {summary:?}"
        );
        let mut expected_outcomes = vec![
            (p(0).0.clone(), "applied".to_string()),
            (other.clone(), "exception".into()),
            (unknown.to_string(), "exception".into()),
            (p(1).0.clone(), "applied".into()),
            (p(0).0.clone(), "exception".into()),
            (p(2).0.clone(), "exception".into()),
        ];
        expected_outcomes.sort();
        assert_eq!(
            pairs(&db.url, "SELECT end_to_end_id, outcome FROM payment_result"),
            expected_outcomes,
            "{backend}"
        );
        let mut expected_exceptions = vec![
            // Six results and their total are not the batch's count and total.
            ("result_file_mismatch".to_string(), String::new()),
            ("wrong_batch".into(), other.clone()),
            ("unknown_payment".into(), unknown.to_string()),
            ("duplicate_result".into(), p(0).0.clone()),
            ("amount_mismatch".into(), p(2).0.clone()),
        ];
        expected_exceptions.sort();
        assert_eq!(pairs(&db.url, EXCEPTIONS), expected_exceptions, "{backend}");
        let line_of_held = pairs(
            &db.url,
            &format!(
                "SELECT household_id, account_number FROM run_line WHERE end_to_end_id = '{}'",
                p(1).0
            ),
        );
        assert_eq!(line_of_held.len(), 1, "{backend}");
        assert_eq!(
            pairs(
                &db.url,
                "SELECT household_id, account_number FROM household_hold"
            ),
            line_of_held,
            "{backend}"
        );
        let expected_states: Vec<(String, String)> = before
            .iter()
            .map(|(id, status)| {
                let now = if *id == p(0).0 {
                    "paid"
                } else if *id == p(1).0 {
                    "failed"
                } else {
                    status.as_str()
                };
                (id.clone(), now.to_string())
            })
            .collect();
        assert_eq!(pairs(&db.url, STATES), expected_states, "{backend}");
        // The last result of a payment sets its serial and reason beside its state.
        let mut expected_serials = vec![
            (p(0).0.clone(), "SN-E".to_string()),
            (p(1).0.clone(), "SN-D AC01".into()),
        ];
        expected_serials.sort();
        assert_eq!(
            pairs(
                &db.url,
                "SELECT end_to_end_id, bank_serial || COALESCE(' ' || reason_code, '') \
                 FROM payment WHERE result_file_id IS NOT NULL"
            ),
            expected_serials,
            "{backend}"
        );
        assert_exit(&db.run(&["audit", "verify"]), 0);
    }
}
