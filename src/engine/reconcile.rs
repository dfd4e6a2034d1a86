//! `reconcile RUN --out DIR`: our instructions ↔ bank results ↔ treasury vouchers, per
//! batch and per run (CONTRACTS §6, P14, FAILURES #26). Writes `summary.csv`,
//! `exceptions.csv` and `report.html` atomically; a run whose payments are all final
//! and whose difference is zero everywhere becomes `reconciled`.

use crate::domain::money::Fen;
use crate::domain::month::{parse_date, Month};
use crate::engine::approve::{load_run, Actor};
use crate::engine::Refusal;
use crate::export::files::write_atomically;
use crate::reconcile::exception::{ExceptionKind, ExceptionRow};
use crate::reconcile::html::{render_report_html, ApproverRow, BankFileRow, ReportData, TotalRow};
use crate::reconcile::report::{
    summary_rows, treasury_exceptions, unmatched_vouchers, write_exceptions_csv, write_summary_csv,
    BatchFacts, StateTotal, SummaryRow,
};
use crate::reconcile::state::PaymentState;
use crate::run::{next_state, RunEvent, RunState};
use crate::store::{PlaceTotal, RunRecord, Store, StoredException};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the reconciliation found and wrote.
#[derive(Debug, serde::Serialize)]
pub struct ReconcileOutcome {
    pub run_id: String,
    pub state: String,
    pub instructed: String,
    pub paid: String,
    pub failed: String,
    pub returned: String,
    pub pending: String,
    pub difference: String,
    pub exceptions: usize,
    pub files: Vec<PathBuf>,
}

pub async fn reconcile_run(
    store: &Store,
    actor: &Actor<'_>,
    run_id: &str,
    out: &Path,
) -> anyhow::Result<ReconcileOutcome> {
    let run = load_run(store, run_id).await?;
    let state = run.state()?;
    if !matches!(state, RunState::Exported | RunState::Reconciled) {
        return Err(Refusal::message(format!(
            "run {run_id} is {}: only an exported run can be reconciled",
            state.as_str()
        ))
        .into());
    }
    // The payments' totals and the lines' totals are two scans of different tables:
    // they run side by side, each on a pool connection of its own.
    let (facts, places) = tokio::try_join!(batch_facts(store, &run), async {
        Ok(store.run_pay_totals_by_place(run_id).await?)
    })?;
    let summary = summary_rows(&facts)
        .map_err(|error| anyhow::anyhow!("run {run_id} does not balance: {error}"))?;
    let exceptions = exceptions(store, &run, &facts).await?;
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    // Instructed, pending and disputed payments are all counted as pending.
    let settled = facts.iter().all(|batch| batch.pending_count == 0)
        && summary.iter().all(|row| row.difference.is_zero());
    let state_after = if settled {
        next_state(state, RunEvent::Reconcile)?
    } else {
        state
    };
    let mut report = report_data(store, &run, &facts, &places, &summary, &exceptions).await?;
    report.state = state_after;
    let files = [
        ("summary.csv", write_summary_csv(&summary).into_bytes()),
        (
            "exceptions.csv",
            write_exceptions_csv(&exceptions).into_bytes(),
        ),
        ("report.html", render_report_html(&report).into_bytes()),
    ];
    for (name, bytes) in &files {
        write_atomically(out, name, bytes)?;
    }
    let total = summary
        .last()
        .expect("summary_rows always ends with the run row");
    let mut transaction = store.begin().await?;
    if settled && state == RunState::Exported {
        transaction
            .set_run_state(run_id, state, next_state(state, RunEvent::Reconcile)?)
            .await?;
    }
    let detail = format!(
        "difference={} exceptions={} settled={settled}",
        total.difference,
        exceptions.len()
    );
    transaction
        .append_audit(actor.now_text, actor.user, "run.reconcile", run_id, &detail)
        .await?;
    transaction.commit().await?;
    let run = load_run(store, run_id).await?;
    Ok(ReconcileOutcome {
        run_id: run.run_id.clone(),
        state: run.state.clone(),
        instructed: total.figures.instructed.to_string(),
        paid: total.figures.paid.to_string(),
        failed: total.figures.failed.to_string(),
        returned: total.figures.returned.to_string(),
        pending: total.figures.pending.to_string(),
        difference: total.difference.to_string(),
        exceptions: exceptions.len(),
        files: files.iter().map(|(name, _)| out.join(name)).collect(),
    })
}

/// Each batch's instructions, results and vouchers, from the payments' totals by batch
/// and status; refuses when a payment of the run names a batch the run does not have.
async fn batch_facts(store: &Store, run: &RunRecord) -> anyhow::Result<Vec<BatchFacts>> {
    let vouchers = store.vouchers().await?;
    let mut totals_by_batch: BTreeMap<String, Vec<StateTotal>> = BTreeMap::new();
    let mut payments_counted = 0_i64;
    for total in store.payment_status_totals_of_run(&run.run_id).await? {
        let state = PaymentState::parse(&total.status)
            .ok_or_else(|| anyhow::anyhow!("payment state {:?} unknown", total.status))?;
        payments_counted += total.count;
        totals_by_batch
            .entry(total.batch_id)
            .or_default()
            .push(StateTotal {
                state,
                count: total.count,
                amount: total.amount,
            });
    }
    let mut facts = Vec::new();
    for batch in store.batches_of_run(&run.run_id).await? {
        let state_totals = totals_by_batch.remove(&batch.batch_id).unwrap_or_default();
        let bank = if batch.bank_prefix.is_empty() {
            "*"
        } else {
            batch.bank_prefix.as_str()
        };
        facts.push(BatchFacts::tally_totals(
            &batch.batch_id,
            bank,
            &state_totals,
            &vouchers,
        ));
    }
    let tallied: i64 = facts.iter().map(|batch| batch.instructed_count).sum();
    if let Some(stray) = totals_by_batch.keys().next() {
        anyhow::bail!(
            "run {}: payments name batch {stray}, which is not one of the run's batches",
            run.run_id
        );
    }
    assert_eq!(
        tallied, payments_counted,
        "every payment of the run is tallied in exactly one batch"
    );
    Ok(facts)
}

/// Stored exceptions (from ingestion) and the treasury's differences, itemised.
async fn exceptions(
    store: &Store,
    run: &RunRecord,
    facts: &[BatchFacts],
) -> anyhow::Result<Vec<ExceptionRow>> {
    let mut rows: Vec<ExceptionRow> = store
        .exceptions_for_run(&run.run_id)
        .await?
        .into_iter()
        .map(stored_row)
        .collect();
    for batch in facts {
        rows.extend(treasury_exceptions(batch));
    }
    let vouchers = store.vouchers().await?;
    let known_batches = store.all_batch_ids().await?;
    let stray: Vec<_> = vouchers
        .into_iter()
        .filter(|v| !known_batches.contains(&v.batch_id))
        .collect();
    rows.extend(unmatched_vouchers(&stray, facts));
    Ok(rows)
}

fn stored_row(stored: StoredException) -> ExceptionRow {
    let kind = ExceptionKind::parse(&stored.kind).unwrap_or(ExceptionKind::FailureNeedsReview);
    ExceptionRow {
        kind,
        batch_id: stored.batch_id,
        end_to_end_id: stored.end_to_end_id,
        voucher_no: stored.voucher_no,
        amount: stored.amount,
        detail: stored.detail,
    }
}

async fn report_data(
    store: &Store,
    run: &RunRecord,
    facts: &[BatchFacts],
    places: &[PlaceTotal],
    summary: &[SummaryRow],
    exceptions: &[ExceptionRow],
) -> anyhow::Result<ReportData> {
    let approvers = store
        .approvals(&run.run_id)
        .await?
        .into_iter()
        .filter(|a| a.digest == run.digest)
        // Approver names identify who signed (P16), so they are shown whole.
        .map(|a| ApproverRow {
            name: a.approver,
            approved_at: a.approved_at,
            key_id: a.key_id,
        })
        .collect();
    let bank_files = store
        .batches_of_run(&run.run_id)
        .await?
        .into_iter()
        .map(|b| BankFileRow {
            file_name: b.file_name,
            sha256: b.sha256,
            record_count: b.record_count,
            total: Fen::new(b.total_fen),
        })
        .collect();
    Ok(ReportData {
        run_id: run.run_id.clone(),
        month: Month::parse(&run.month)?,
        programme: run.programme.clone(),
        scope: if run.scope.is_empty() {
            "all".into()
        } else {
            run.scope.clone()
        },
        pay_date: parse_date(&run.pay_date)?,
        run_digest: run.digest.clone(),
        state: run.state()?,
        by_region: totals_by(places, |place| &place.region_code),
        by_area: totals_by(places, |place| &place.area),
        by_bank: totals_by(places, |place| &place.bank_class),
        by_batch: facts
            .iter()
            .map(|f| TotalRow {
                label: f.batch_id.clone(),
                count: f.instructed_count,
                amount: f.instructed,
            })
            .collect(),
        approvers,
        bank_files,
        summary: summary.to_vec(),
        exceptions: exceptions.to_vec(),
    })
}

/// The report's table by one label (region, area or bank class), folded from the
/// totals by place, in label order.
fn totals_by(places: &[PlaceTotal], label_of: impl Fn(&PlaceTotal) -> &str) -> Vec<TotalRow> {
    let mut by_label: BTreeMap<&str, (i64, Fen)> = BTreeMap::new();
    for place in places {
        let (count, amount) = by_label.entry(label_of(place)).or_insert((0, Fen::ZERO));
        *count += place.count;
        *amount = amount.plus(Fen::new(place.payable_fen));
    }
    by_label
        .into_iter()
        .map(|(label, (count, amount))| TotalRow {
            label: label.to_string(),
            count,
            amount,
        })
        .collect()
}
