//! Bank results, treasury vouchers and reconciliation through the real binary, on both
//! databases (CONTRACTS §3.4, §6; FAILURES #6–#9, #11, #26): a month with one failure
//! per bank reconciles to 0.00; files ingested twice change nothing; duplicates,
//! conflicts and unknown payments become exceptions; a failed payment holds the
//! household until its account is corrected, then is re-issued under a new id.

use crate::imports::{roster_csv, roster_row, with};
use crate::support::*;
use disburse::demo::generate::RosterGenerator;
use std::path::{Path, PathBuf};

const ONE_APPROVER: &str = "[approval]\napprovers_required = 1\napprovers_required_above = 1\n";

struct Month {
    run_id: String,
    results: Vec<PathBuf>,
    roster: String,
}

fn run_json(db: &TestDb, args: &[&str]) -> serde_json::Value {
    run_json_as(db, "tester", args)
}

fn run_json_as(db: &TestDb, user: &str, args: &[&str]) -> serde_json::Value {
    let output = db.run_as(user, &[&["--json"], args].concat());
    assert_exit(&output, 0);
    serde_json::from_str(stdout(&output).trim()).expect("json")
}

fn store_blocking<T>(db: &TestDb, work: impl AsyncFnOnce(&disburse::store::Store) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = disburse::store::Store::connect(&db.url).await.unwrap();
        let result = work(&store).await;
        store.close().await;
        result
    })
}

/// Imports 40 generated households, computes, approves and exports November, and has
/// the simulated banks answer every file with one failure each.
fn exported_month(db: &TestDb) -> Month {
    let mut roster = Vec::new();
    RosterGenerator::new(11)
        .write_roster(&mut roster, 40, "2026-01")
        .unwrap();
    let roster = String::from_utf8(roster).unwrap();
    let file = db.write("roster.csv", &roster);
    assert_exit(&db.run(&["import", "roster", file.to_str().unwrap()]), 0);
    let config = db.write("disburse.toml", ONE_APPROVER);
    let created = run_json_as(
        db,
        "operator",
        &[
            "--config",
            config.to_str().unwrap(),
            "run",
            "create",
            "--month",
            "2026-11",
        ],
    );
    let run_id = created["run_id"].as_str().unwrap().to_string();
    let key = register_approver(db, "li");
    assert_exit(
        &db.run_as(
            "li",
            &["run", "approve", &run_id, "--key", key.to_str().unwrap()],
        ),
        0,
    );
    let signing = generate_key(db, "bank");
    let files = db.path("bank-files");
    assert_exit(
        &db.run(&[
            "run",
            "export",
            &run_id,
            "--out",
            files.to_str().unwrap(),
            "--key",
            signing.to_str().unwrap(),
        ]),
        0,
    );
    let results_dir = db.path("results");
    std::fs::create_dir_all(&results_dir).unwrap();
    let answers = store_blocking(db, async |store| {
        disburse::demo::bank::answer_batches(store, &run_id, &results_dir, "2026-11-20")
            .await
            .unwrap()
    });
    db.write("treasury.csv", &answers.treasury_csv);
    Month {
        run_id,
        results: answers.files,
        roster,
    }
}

fn ingest(db: &TestDb, files: &[PathBuf]) -> String {
    let paths: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let output = db.run(&[&["returns", "ingest"], paths.as_slice()].concat());
    assert_exit(&output, 0);
    stdout(&output)
}

fn reconcile(db: &TestDb, run_id: &str, out: &Path) -> (String, String, String) {
    assert_exit(
        &db.run(&["reconcile", run_id, "--out", out.to_str().unwrap()]),
        0,
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    (
        read("summary.csv"),
        read("exceptions.csv"),
        read("report.html"),
    )
}

fn run_row(summary: &str) -> Vec<String> {
    let line = summary
        .lines()
        .find(|l| l.starts_with("run,"))
        .expect("run row");
    line.split(',').map(str::to_string).collect()
}

#[test]
fn a_month_with_one_failure_per_bank_reconciles_to_zero() {
    for db in TestDb::both() {
        let month = exported_month(&db);
        ingest(&db, &month.results);
        let treasury = db.path("treasury.csv");
        assert_exit(
            &db.run(&["import", "treasury", treasury.to_str().unwrap()]),
            0,
        );
        let (summary, exceptions, report) =
            reconcile(&db, &month.run_id, &db.path("reconciliation"));
        assert!(summary.starts_with("scope,batch_id,bank_code,instructed_count,instructed,paid_count,paid,failed_count,failed,returned_count,returned,pending_count,pending,funded,refunded,difference\n"), "{summary}");
        let row = run_row(&summary);
        assert_eq!(
            row[7],
            month.results.len().to_string(),
            "{}: one failure per bank file",
            db.backend
        );
        assert_eq!(row[11], "0", "{}: nothing pending", db.backend);
        assert_eq!(row[15], "0.00", "{}: difference", db.backend);
        assert_eq!(
            exceptions.lines().count(),
            1,
            "{}: only the header: {exceptions}",
            db.backend
        );
        let state = run_json(&db, &["run", "show", &month.run_id]);
        assert_eq!(state["run"]["state"], "reconciled", "{}", db.backend);
        // P13: no ID or account number of the roster appears in the report.
        for line in month.roster.lines().skip(1) {
            let cells: Vec<&str> = line.split(',').collect();
            for secret in [cells[4], cells[18]] {
                assert!(
                    !report.contains(secret) && !exceptions.contains(secret),
                    "{}: {secret} leaked",
                    db.backend
                );
            }
        }
        // FAILURES #6: the same files again change nothing.
        let again = ingest(&db, &month.results);
        assert_eq!(
            again.matches("already ingested").count(),
            month.results.len(),
            "{again}"
        );
        let (summary_again, _, _) = reconcile(&db, &month.run_id, &db.path("reconciliation-2"));
        assert_eq!(summary, summary_again, "{}", db.backend);
        assert_exit(&db.run(&["audit", "verify"]), 0);
    }
}

/// A copy of an R1 result file with its bytes changed but the same answers, or with
/// one answer turned around, or naming a payment we never made.
fn variant(original: &Path, dir: &Path, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let raw = std::fs::read(original).unwrap();
    let (text, _, _) = encoding_rs::GBK.decode(&raw);
    let edited = edit(&text);
    let (bytes, _, _) = encoding_rs::GBK.encode(&edited);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn duplicates_conflicts_and_unknown_payments_become_exceptions() {
    for db in TestDb::both() {
        let month = exported_month(&db);
        ingest(&db, &month.results);
        let r1 = month
            .results
            .iter()
            .find(|p| p.to_string_lossy().ends_with(".result.txt"))
            .expect("an R1 file")
            .clone();
        let dir = db.path("results");
        // Same answers, other bytes (a re-sent file with new serials): duplicates.
        let resent = variant(&r1, &dir, "resent.txt", |t| t.replace("|SIM", "|RESENT"));
        let output = ingest(&db, &[resent]);
        assert!(output.contains("exceptions"), "{output}");
        // The failed payment now reported paid: a conflict, held as disputed.
        let flipped = variant(&r1, &dir, "flipped.txt", |t| {
            let header: Vec<&str> = t.lines().next().unwrap().split('|').collect();
            let failed_line = t.lines().find(|l| l.contains("|F|")).unwrap();
            let amount = failed_line.split('|').nth(4).unwrap();
            let paid = failed_line.replace("|F|", "|S|").replace("|SIM", "|FLIP");
            format!(
                "H|01|{}|{}|1|{amount}|1|{amount}|0|0.00|\r\n{paid}\r\nT|1|{amount}|\r\n",
                header[2], header[3]
            )
        });
        let flipped_text = std::fs::read(&flipped).unwrap();
        assert!(!flipped_text.is_empty());
        ingest(&db, &[flipped]);
        // A result for a payment we never instructed.
        let stranger = variant(&r1, &dir, "stranger.txt", |t| {
            let first = t.lines().find(|l| l.starts_with("D|")).unwrap();
            let id = first
                .trim_end_matches('|')
                .rsplit('|')
                .next()
                .unwrap()
                .to_string();
            t.replace(&id, "ZZ999999-99999999")
        });
        ingest(&db, &[stranger]);
        let treasury = db.path("treasury.csv");
        assert_exit(
            &db.run(&["import", "treasury", treasury.to_str().unwrap()]),
            0,
        );
        let (summary, exceptions, _) = reconcile(&db, &month.run_id, &db.path("reconciliation"));
        for kind in ["duplicate_result", "conflicting_result", "unknown_payment"] {
            assert!(
                exceptions.contains(kind),
                "{}: {kind} missing from\n{exceptions}",
                db.backend
            );
        }
        let row = run_row(&summary);
        assert_eq!(
            row[11], "1",
            "{}: the disputed payment is pending",
            db.backend
        );
        let state = run_json(&db, &["run", "show", &month.run_id]);
        assert_eq!(
            state["run"]["state"], "exported",
            "{}: not settled while disputed",
            db.backend
        );
    }
}

/// `returns ingest A B C` reads B while A is applied (issue #7), yet still applies
/// the files in order and stops at the first one refused: C is not applied.
#[test]
fn files_ingested_together_apply_in_order_up_to_the_first_refused() {
    for db in TestDb::both() {
        let month = exported_month(&db);
        assert!(month.results.len() >= 2, "{:?}", month.results);
        let broken = db.write("broken.txt", "H|not a result file\r\n");
        let (first, second) = (&month.results[0], &month.results[1]);
        let output = db.run(&[
            "returns",
            "ingest",
            first.to_str().unwrap(),
            broken.to_str().unwrap(),
            second.to_str().unwrap(),
        ]);
        assert_exit(&output, 1);
        assert!(
            stdout(&output).contains(&format!("{} (", first.display())),
            "{}: {}",
            db.backend,
            stdout(&output)
        );
        assert!(
            stderr(&output).contains("broken.txt")
                && stderr(&output).contains("nothing was applied"),
            "{}: {}",
            db.backend,
            stderr(&output)
        );
        assert_eq!(db.count("result_file"), 1, "{}: only the first", db.backend);
        let again = ingest(&db, &month.results);
        assert!(
            again.contains(&format!("{}: already ingested", first.display())),
            "{}: {again}",
            db.backend
        );
        assert_eq!(
            db.count("result_file"),
            month.results.len() as i64,
            "{}",
            db.backend
        );
    }
}

#[test]
fn a_failed_account_is_held_then_reissued_after_correction() {
    for db in TestDb::both() {
        let roster = roster_csv(&[
            with(roster_row("H1"), "base_amount", "1000.00"),
            with(
                with(
                    with(
                        roster_row("H2"),
                        "head_id_number",
                        &crate::imports::id_number("21010219700101001"),
                    ),
                    "account_number",
                    &crate::imports::card("622202999456789012"),
                ),
                "base_amount",
                "800.00",
            ),
        ]);
        let file = db.write("roster.csv", &roster);
        assert_exit(&db.run(&["import", "roster", file.to_str().unwrap()]), 0);
        let config = db.write("disburse.toml", ONE_APPROVER);
        let config = config.to_str().unwrap();
        let key = register_approver(&db, "li");
        let signing = generate_key(&db, "bank");
        let month = |m: &str| -> String {
            let created = run_json_as(
                &db,
                "operator",
                &["--config", config, "run", "create", "--month", m],
            );
            created["run_id"].as_str().unwrap().to_string()
        };
        let november = month("2026-11");
        assert_exit(
            &db.run_as(
                "li",
                &["run", "approve", &november, "--key", key.to_str().unwrap()],
            ),
            0,
        );
        let out = db.path("nov");
        assert_exit(
            &db.run(&[
                "run",
                "export",
                &november,
                "--out",
                out.to_str().unwrap(),
                "--key",
                signing.to_str().unwrap(),
            ]),
            0,
        );
        let lines = stdout(&db.run(&["run", "lines", &november]));
        let h1 = lines.lines().find(|l| l.starts_with("H1,")).unwrap();
        let h1_id = h1.split(',').nth(11).unwrap().to_string();
        let batch = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "txt"))
            .unwrap();
        let batch_id = batch.file_stem().unwrap().to_string_lossy().to_string();
        let h2_id = lines
            .lines()
            .find(|l| l.starts_with("H2,"))
            .unwrap()
            .split(',')
            .nth(11)
            .unwrap()
            .to_string();
        let payable = |line: &str| line.split(',').nth(9).unwrap().to_string();
        let (h1_pay, h2_pay) = (
            payable(h1),
            payable(lines.lines().find(|l| l.starts_with("H2,")).unwrap()),
        );
        let cents = |yuan: &str| yuan.replace('.', "").parse::<i64>().unwrap();
        let total = cents(&h1_pay) + cents(&h2_pay);
        let total = format!("{}.{:02}", total / 100, total % 100);
        let r1 = format!(
            "H|01|{batch_id}|20261120|2|{total}|1|{h2_pay}|1|{h1_pay}|\r\nD|000001|x|x|{h1_pay}|F|S1|AC04|已销户|{h1_id}|\r\nD|000002|x|x|{h2_pay}|S|S2|||{h2_id}|\r\nT|2|{total}|\r\n"
        );
        let (bytes, _, _) = encoding_rs::GBK.encode(&r1);
        let result = db.write("result.txt", &bytes[..]);
        let output = ingest(&db, &[result]);
        assert!(
            output.contains("1 households held"),
            "{}: {output}",
            db.backend
        );
        // December: H1's account was closed, so its line is held (not paid to it again).
        let december = month("2026-12");
        let lines = stdout(&db.run(&["run", "lines", &december]));
        let h1 = lines.lines().find(|l| l.starts_with("H1,")).unwrap();
        assert!(
            h1.contains(",hold,") && h1.contains("account_failed"),
            "{}: {h1}",
            db.backend
        );
        // Civil affairs sends the corrected account: December is recomputed and pays
        // December plus the failed November, linked to the original payment.
        assert_exit(
            &db.run(&[
                "run",
                "cancel",
                &december,
                "--reason",
                "corrected account for H1",
            ]),
            0,
        );
        let corrected = roster_csv(&[with(
            with(roster_row("H1"), "base_amount", "1000.00"),
            "approved_from",
            "2026-12",
        )
        .into_iter()
        .map(|(c, v)| {
            if c == "account_number" {
                (c, crate::imports::card("622202777456789012"))
            } else {
                (c, v)
            }
        })
        .collect()]);
        let file = db.write("corrected.csv", &corrected);
        assert_exit(&db.run(&["import", "roster", file.to_str().unwrap()]), 0);
        let december = month("2026-12");
        let lines = stdout(&db.run(&["run", "lines", &december]));
        let h1 = lines.lines().find(|l| l.starts_with("H1,")).unwrap();
        let cells: Vec<&str> = h1.split(',').collect();
        let doubled = format!(
            "{}.{:02}",
            2 * cents(&h1_pay) / 100,
            2 * cents(&h1_pay) % 100
        );
        assert_eq!(
            (cells[3], cells[6], cells[9]),
            ("pay", h1_pay.as_str(), doubled.as_str()),
            "{}: {h1}",
            db.backend
        );
        assert!(
            cells[12].contains(&format!("reissue:{h1_id}")),
            "{}: {h1}",
            db.backend
        );
        assert_ne!(cells[11], h1_id, "a re-issue gets a new end_to_end_id");
    }
}

#[test]
fn real_world_samples_become_exceptions_never_crashes() {
    let db = TestDb::sqlite();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples/real-world");
    for name in [
        "nordea_pain.002.001.03_txn_reject.xml",
        "fffs_camt.054.001.02_sample.xml",
        "genkgo_camt.054.001.08.xml",
    ] {
        let output = db.run(&["returns", "ingest", samples.join(name).to_str().unwrap()]);
        assert_exit(&output, 0);
        assert!(
            stdout(&output).contains("exceptions"),
            "{name}: {}",
            stdout(&output)
        );
    }
    for name in [
        "abnamro_mt940.sta",
        "nordea_camt.053.001.02_example.xml",
        "six_musterfile_pain.001.001.03.ch.02.xml",
    ] {
        let output = db.run(&["returns", "ingest", samples.join(name).to_str().unwrap()]);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("nothing was applied"),
            "{name}: {}",
            stderr(&output)
        );
    }
}

/// A camt.054 return of one of our payments (CONTRACTS §3.4 R3).
fn camt054_return(end_to_end_id: &str, amount: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><BkToCstmrDbtCdtNtfctn>
<GrpHdr><MsgId>RTN-{end_to_end_id}</MsgId><CreDtTm>2026-11-25T18:00:00+08:00</CreDtTm></GrpHdr>
<Ntfctn><Id>N1</Id><Acct><Id><Othr><Id>110060149018001234567</Id></Othr></Id></Acct>
<Ntry><Amt Ccy="CNY">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><RvslInd>true</RvslInd><Sts><Cd>BOOK</Cd></Sts>
<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>RRTN</SubFmlyCd></Fmly></Domn></BkTxCd>
<NtryDtls><TxDtls><Refs><EndToEndId>{end_to_end_id}</EndToEndId></Refs><Amt Ccy="CNY">{amount}</Amt>
<RtrInf><Rsn><Cd>AC04</Cd></Rsn><AddtlInf>收款人账户已销户，款项退回</AddtlInf></RtrInf></TxDtls></NtryDtls></Ntry>
</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>
"#
    )
}

/// (amount, end_to_end_id, batch_id) of the first payment an R1 answer reports paid.
fn first_paid_result(month: &Month) -> (String, String, String) {
    let r1 = month
        .results
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".result.txt"))
        .expect("an R1 file");
    let raw = std::fs::read(r1).unwrap();
    let (text, _, _) = encoding_rs::GBK.decode(&raw);
    let paid: Vec<&str> = text
        .lines()
        .find(|l| l.contains("|S|"))
        .unwrap()
        .split('|')
        .collect();
    let batch_id = text.split('|').nth(2).unwrap().to_string();
    (paid[4].to_string(), paid[9].to_string(), batch_id)
}

#[test]
fn a_camt054_return_after_payment_makes_it_returned_and_reconciles() {
    for db in TestDb::both() {
        let month = exported_month(&db);
        ingest(&db, &month.results);
        let (amount, end_to_end_id, batch_id) = first_paid_result(&month);
        let returned = db.write("return.xml", camt054_return(&end_to_end_id, &amount));
        let output = ingest(&db, std::slice::from_ref(&returned));
        assert!(output.contains("1 applied"), "{}: {output}", db.backend);
        // The treasury takes the returned money back with a refund naming the funding.
        let mut vouchers = std::fs::read_to_string(db.path("treasury.csv")).unwrap();
        let funding = vouchers
            .lines()
            .find(|l| l.contains(",5201,") && l.contains(&batch_id))
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string();
        let bank_code = vouchers
            .lines()
            .find(|l| l.contains(&batch_id))
            .unwrap()
            .split(',')
            .nth(4)
            .unwrap()
            .to_string();
        vouchers.push_str(&format!(
            "RTN0001,2302,{funding},{batch_id},{bank_code},{amount},2026-11-26\n"
        ));
        let treasury = db.write("treasury.csv", vouchers);
        assert_exit(
            &db.run(&["import", "treasury", treasury.to_str().unwrap()]),
            0,
        );
        let (summary, _, _) = reconcile(&db, &month.run_id, &db.path("reconciliation"));
        let row = run_row(&summary);
        assert_eq!(
            (row[9].as_str(), row[10].as_str()),
            ("1", amount.as_str()),
            "{}: returned",
            db.backend
        );
        assert_eq!(row[15], "0.00", "{}: {summary}", db.backend);
        // An older "paid" arriving again after the return changes nothing (FAILURES #8).
        let again = ingest(&db, &[returned]);
        assert!(again.contains("already ingested"), "{again}");
    }
}

/// FAILURES #10: a return that arrives after the month was reconciled is an exception
/// for a second person, not applied by itself.
#[test]
fn a_late_return_after_reconciliation_is_an_exception_not_applied() {
    for db in TestDb::both() {
        let month = exported_month(&db);
        ingest(&db, &month.results);
        let treasury = db.path("treasury.csv");
        assert_exit(
            &db.run(&["import", "treasury", treasury.to_str().unwrap()]),
            0,
        );
        let (before, _, _) = reconcile(&db, &month.run_id, &db.path("closed"));
        let (amount, end_to_end_id, _) = first_paid_result(&month);
        let late = db.write("late.xml", camt054_return(&end_to_end_id, &amount));
        let output = ingest(&db, &[late]);
        assert!(
            output.contains("0 applied") && output.contains("1 exceptions"),
            "{}: {output}",
            db.backend
        );
        let (after, exceptions, _) = reconcile(&db, &month.run_id, &db.path("after"));
        assert_eq!(
            run_row(&before),
            run_row(&after),
            "{}: the closed month's figures stand",
            db.backend
        );
        assert!(
            exceptions.contains("late_return"),
            "{}: {exceptions}",
            db.backend
        );
    }
}
