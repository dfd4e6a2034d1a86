//! Approvers, approvals and cancellation (CONTRACTS §5): an approval is the approver's
//! own signature over the run's digest, count and total; the creator cannot approve; a
//! changed run voids its approvals because they no longer cover its digest.

use crate::domain::money::Fen;
use crate::engine::Refusal;
use crate::run::{
    approval_message, approvals_cover, next_state, ApprovalRecord, RunEvent, RunState,
};
use crate::sign::{SigningKey, VerifyingKey};
use crate::store::{ApproverRecord, CancelWork, RunRecord, Store};
use std::path::Path;

/// Who acts and when.
pub struct Actor<'a> {
    pub user: &'a str,
    pub now_text: &'a str,
}

pub async fn add_approver(
    store: &Store,
    actor: &Actor<'_>,
    name: &str,
    public_key_pem: &str,
) -> anyhow::Result<ApproverRecord> {
    if name.trim().is_empty() || name.len() > 64 {
        return Err(Refusal::message("an approver's name is 1 to 64 characters").into());
    }
    let key = VerifyingKey::from_spki_pem(public_key_pem)
        .map_err(|error| Refusal::message(format!("public key refused: {error}")))?;
    if store.approver_by_name(name).await?.is_some() {
        return Err(Refusal::message(format!("approver {name} is already registered")).into());
    }
    if let Some(owner) = store.approver_by_key_id(&key.key_id()).await? {
        return Err(
            Refusal::message(format!("this key is already registered to {}", owner.name)).into(),
        );
    }
    let record = ApproverRecord {
        name: name.to_string(),
        public_key_pem: key.spki_pem(),
        algorithm: key.algorithm().as_str().to_string(),
        key_id: key.key_id(),
    };
    let mut transaction = store.begin().await?;
    transaction
        .insert_approver(&record, actor.user, actor.now_text)
        .await?;
    let detail = format!("algorithm={} key_id={}", record.algorithm, record.key_id);
    transaction
        .append_audit(actor.now_text, actor.user, "approver.add", name, &detail)
        .await?;
    transaction.commit().await?;
    Ok(record)
}

pub async fn load_run(store: &Store, run_id: &str) -> anyhow::Result<RunRecord> {
    Ok(store
        .run(run_id)
        .await?
        .ok_or_else(|| Refusal::message(format!("no run {run_id}")))?)
}

/// Approves a run with the approver's own key; returns the run afterwards.
pub async fn approve_run(
    store: &Store,
    actor: &Actor<'_>,
    run_id: &str,
    key_path: &Path,
) -> anyhow::Result<RunRecord> {
    let (run, approver, signature) = sign_approval(store, actor, run_id, key_path).await?;
    record_approval(store, actor, &run, &approver, &signature).await
}

/// Signs the run's approval message with the acting approver's own key, after the same
/// checks as `approve_run`, and records nothing (`run approve --offline`).
pub async fn sign_approval(
    store: &Store,
    actor: &Actor<'_>,
    run_id: &str,
    key_path: &Path,
) -> anyhow::Result<(RunRecord, ApproverRecord, Vec<u8>)> {
    let run = load_run(store, run_id).await?;
    approvable_state(run_id, &run)?;
    let key = SigningKey::load(key_path)
        .map_err(|error| Refusal::message(format!("signing key refused: {error}")))?;
    let approver = store
        .approver_by_key_id(&key.key_id())
        .await?
        .ok_or_else(|| {
            Refusal::message(format!(
                "key {} belongs to no registered approver (disburse approver add)",
                key.key_id()
            ))
        })?;
    if approver.name != actor.user {
        return Err(Refusal::message(format!(
            "this key is {}'s; {} cannot approve with it",
            approver.name, actor.user
        ))
        .into());
    }
    let message = approval_message(
        &run.run_id,
        &run.digest,
        run.pay_count,
        Fen::new(run.payable_fen),
    );
    if approver.name == run.created_by {
        return Err(creator_refusal(&approver.name, run_id).into());
    }
    let signature = key.sign(&message)?;
    Ok((run, approver, signature))
}

/// The run's state, if it can still take an approval.
fn approvable_state(run_id: &str, run: &RunRecord) -> anyhow::Result<RunState> {
    let state = run.state()?;
    if !matches!(state, RunState::Computed | RunState::Approved) {
        let reason = format!("run {run_id} is {}: nothing to approve", state.as_str());
        return Err(Refusal::message(reason).into());
    }
    Ok(state)
}

fn creator_refusal(name: &str, run_id: &str) -> Refusal {
    Refusal::message(format!(
        "{name} created run {run_id} and cannot approve it (four eyes)"
    ))
}

/// Records `approver`'s signature over the run's approval message, exactly as `run
/// approve` does, wherever the signature was made (the CLI, or the approver's browser
/// or `--offline` for the HTTP API): verified against the registered key, refused for
/// the creator or a second approval of the same digest, audited, and the run moved to
/// Approved once approvals cover its digest. Returns the run afterwards.
pub async fn record_approval(
    store: &Store,
    actor: &Actor<'_>,
    run: &RunRecord,
    approver: &ApproverRecord,
    signature: &[u8],
) -> anyhow::Result<RunRecord> {
    let run_id = run.run_id.as_str();
    let state = approvable_state(run_id, run)?;
    if approver.name == run.created_by {
        return Err(creator_refusal(&approver.name, run_id).into());
    }
    let message = approval_message(
        &run.run_id,
        &run.digest,
        run.pay_count,
        Fen::new(run.payable_fen),
    );
    VerifyingKey::from_spki_pem(&approver.public_key_pem)?
        .verify(&message, signature)
        .map_err(|_| {
            Refusal::message(format!(
                "the signature does not verify against {}'s registered key",
                approver.name
            ))
        })?;
    let existing = store.approvals(run_id).await?;
    if existing
        .iter()
        .any(|a| a.approver == approver.name && a.digest == run.digest)
    {
        // A crash between the approval's commit and the state change left the run
        // Computed with approvals that cover it: finish the state change now.
        if complete_if_covered(store, actor, run, state).await? {
            return load_run(store, run_id).await;
        }
        return Err(Refusal::message(format!(
            "{} has already approved run {run_id}",
            approver.name
        ))
        .into());
    }
    let mut transaction = store.begin().await?;
    transaction
        .insert_approval(
            run,
            &approver.name,
            &approver.key_id,
            &hex::encode(signature),
            actor.now_text,
        )
        .await?;
    let detail = format!(
        "digest={} payments={} total={}",
        run.digest,
        run.pay_count,
        Fen::new(run.payable_fen)
    );
    transaction
        .append_audit(actor.now_text, actor.user, "run.approve", run_id, &detail)
        .await?;
    crate::failpoint::hit("approve.before_commit");
    transaction.commit().await?;
    crate::failpoint::hit("approve.after_commit");
    complete_if_covered(store, actor, run, state).await?;
    load_run(store, run_id).await
}

/// Moves a Computed run whose approvals cover its digest to Approved, with its audit
/// entry; says whether it did.
async fn complete_if_covered(
    store: &Store,
    actor: &Actor<'_>,
    run: &RunRecord,
    state: RunState,
) -> anyhow::Result<bool> {
    if state != RunState::Computed || !approvals_complete(store, run).await? {
        return Ok(false);
    }
    let mut transaction = store.begin().await?;
    let next = next_state(state, RunEvent::ApprovalsComplete)?;
    transaction.set_run_state(&run.run_id, state, next).await?;
    transaction
        .append_audit(
            actor.now_text,
            actor.user,
            "run.approved",
            &run.run_id,
            "approvals cover the digest",
        )
        .await?;
    transaction.commit().await?;
    Ok(true)
}

/// Whether the run's approvals cover its current digest: each signature is verified
/// again against the approver's registered key (export calls this before anything
/// leaves).
pub async fn approvals_complete(store: &Store, run: &RunRecord) -> anyhow::Result<bool> {
    let mut records = Vec::new();
    for approval in store.approvals(&run.run_id).await? {
        let message = approval_message(
            &run.run_id,
            &approval.digest,
            approval.pay_count,
            Fen::new(approval.payable_fen),
        );
        let valid = match store.approver_by_name(&approval.approver).await? {
            Some(approver) => VerifyingKey::from_spki_pem(&approver.public_key_pem)
                .ok()
                .zip(hex::decode(&approval.signature_hex).ok())
                .is_some_and(|(key, signature)| key.verify(&message, &signature).is_ok()),
            None => false,
        };
        let binds_totals =
            approval.pay_count == run.pay_count && approval.payable_fen == run.payable_fen;
        records.push(ApprovalRecord {
            approver: approval.approver,
            digest: approval.digest,
            signature_valid: valid && binds_totals,
        });
    }
    let required = u32::try_from(run.approvals_required).unwrap_or(u32::MAX);
    Ok(approvals_cover(
        &run.digest,
        &run.created_by,
        required,
        &records,
    ))
}

pub async fn cancel_run(
    store: &Store,
    actor: &Actor<'_>,
    run_id: &str,
    reason: &str,
) -> anyhow::Result<RunRecord> {
    let run = load_run(store, run_id).await?;
    if reason.trim().is_empty() {
        return Err(Refusal::message("a cancellation needs a reason").into());
    }
    next_state(run.state()?, RunEvent::Cancel)
        .map_err(|error| Refusal::message(format!("run {run_id}: {error}")))?;
    let mut transaction = store.begin().await?;
    // Wait for an export in flight (it holds this lock while it writes files), so a
    // run is never cancelled between its files appearing and its export being recorded.
    transaction.lock_run(run.run_no).await?;
    transaction
        .cancel_run(run_id, actor.user, actor.now_text, reason)
        .await?;
    // A planned scope whose run is cancelled is no longer anyone's work (plan it again).
    let why = format!("run {run_id} cancelled: {reason}");
    let of_run = CancelWork::OfRun { run_no: run.run_no };
    transaction
        .cancel_work(of_run, &why, actor.now_text)
        .await?;
    transaction
        .append_audit(actor.now_text, actor.user, "run.cancel", run_id, reason)
        .await?;
    transaction.commit().await?;
    load_run(store, run_id).await
}
