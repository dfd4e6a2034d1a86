//! The HTTP API under `/api/v1` (JSON; CSV and report files where named), `/health`
//! and `/metrics`. Each handler authenticates, checks the role's permission, calls the
//! same engine function as the CLI, and answers.
//!
//! **Invariants:** every request but `/health` and `/metrics` is authenticated; a
//! request that changes anything runs as the token's user, so the engine's audit entry
//! names that person, and a refused attempt to change something is audited too
//! (`api.forbidden`); an approval is a signature made elsewhere, verified here against
//! the approver's registered key (the key never reaches the server).

use crate::domain::money::Fen;
use crate::domain::month::{parse_date, Month};
use crate::engine::approve::{approvals_complete, load_run, record_approval, Actor};
use crate::engine::create_run::{create_run, CreateRunRequest};
use crate::engine::export::{export_run, ExportRequest};
use crate::engine::ingest::{ingest_file, RESULT_FILE_BYTES_MAX};
use crate::engine::reconcile::reconcile_run;
use crate::run::{approval_message, LINES_CSV_HEADER};
use crate::service::auth::{self, Permission, Principal};
use crate::service::error::ApiError;
use crate::service::{page, signature, Shared};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub type AppState = Arc<Shared>;
type ApiResult<T> = Result<T, ApiError>;

/// Lines read per page when streaming or comparing a run's lines.
const LINES_PAGE: i64 = 10_000;
/// Report files a client may download.
pub const REPORT_FILES: [&str; 3] = ["report.html", "summary.csv", "exceptions.csv"];

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/runs", get(list_runs).post(create))
        .route("/runs/{id}", get(run_detail))
        .route("/runs/{id}/lines", get(run_lines))
        .route("/runs/{id}/diff", get(run_diff))
        .route("/runs/{id}/approval-message", get(approval_message_of))
        .route("/runs/{id}/approvals", post(approve))
        .route("/runs/{id}/exports", post(export))
        .route("/runs/{id}/reconciliation", post(reconcile))
        .route("/runs/{id}/reconciliation/{file}", get(report_file))
        .route("/results", post(upload_results))
        .route("/audit", get(audit_log));
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .merge(page::routes())
        .layer(DefaultBodyLimit::max(
            usize::try_from(RESULT_FILE_BYTES_MAX).unwrap_or(usize::MAX),
        ))
        .with_state(state)
}

/// The caller, from `Authorization: Bearer` or the page's cookie (with the CSRF
/// header on a request that changes anything).
pub async fn authenticate(
    state: &Shared,
    headers: &HeaderMap,
    method: &Method,
) -> ApiResult<(Principal, String)> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let token = match text(header::AUTHORIZATION).and_then(auth::bearer) {
        Some(token) => token.to_string(),
        None => {
            let token = text(header::COOKIE)
                .and_then(auth::cookie_token)
                .ok_or_else(ApiError::unauthenticated)?;
            let csrf = headers.get(auth::CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !method.is_safe() && csrf != Some(auth::csrf_for(token).as_str()) {
                return Err(ApiError::forbidden(
                    "a change from the page needs its CSRF header",
                ));
            }
            token.to_string()
        }
    };
    let record = state
        .store
        .api_token(&auth::token_sha256(&token))
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let role = auth::Role::parse(&record.role).map_err(|e| anyhow::anyhow!("stored token: {e}"))?;
    Ok((
        Principal {
            user: record.user_name,
            role,
        },
        token,
    ))
}

/// Authenticates and checks `permission`; a refused change is audited.
async fn authorize(
    state: &Shared,
    headers: &HeaderMap,
    method: Method,
    permission: Permission,
) -> ApiResult<Principal> {
    let (principal, _) = authenticate(state, headers, &method).await?;
    if principal.role.may(permission) {
        return Ok(principal);
    }
    if !method.is_safe() {
        audit_forbidden(state, &principal, &format!("{permission:?}")).await?;
    }
    Err(ApiError::forbidden(format!(
        "role {} may not {permission:?}",
        principal.role.as_str()
    )))
}

async fn audit_forbidden(state: &Shared, principal: &Principal, what: &str) -> ApiResult<()> {
    let now = now_text()?;
    let mut transaction = state.store.begin().await?;
    let detail = format!("role={} refused={what}", principal.role.as_str());
    transaction
        .append_audit(&now, &principal.user, "api.forbidden", what, &detail)
        .await?;
    transaction.commit().await?;
    Ok(())
}

pub fn now_text() -> ApiResult<String> {
    Ok(crate::clock::format_utc(crate::clock::now_utc()?))
}

pub fn run_json(run: &crate::store::RunRecord) -> Value {
    let mut value = serde_json::to_value(run).unwrap_or(Value::Null);
    value["payable"] = json!(Fen::new(run.payable_fen).to_string());
    value["hold"] = json!(Fen::new(run.hold_fen).to_string());
    value
}

async fn list_runs(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    authorize(&state, &headers, Method::GET, Permission::Read).await?;
    let runs: Vec<Value> = state.store.all_runs().await?.iter().map(run_json).collect();
    Ok(Json(json!({ "runs": runs })))
}

#[derive(serde::Deserialize)]
struct CreateBody {
    month: String,
    programme: Option<String>,
    region: Option<String>,
    pay_date: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Option<Json<CreateBody>>,
) -> ApiResult<Response> {
    let who = authorize(&state, &headers, Method::POST, Permission::CreateRun).await?;
    let Json(body) = body.ok_or_else(|| ApiError::bad_request("a JSON body with month"))?;
    let month = Month::parse(&body.month)
        .map_err(|e| ApiError::bad_request(format!("month {:?}: {e}", body.month)))?;
    let pay_date = match &body.pay_date {
        Some(text) => parse_date(text)
            .map_err(|e| ApiError::bad_request(format!("pay_date {text:?}: {e}")))?,
        None => month.first_day() + chrono::Days::new(u64::from(state.config.run.pay_day) - 1),
    };
    let request = CreateRunRequest {
        programme: body.programme.unwrap_or_else(|| "dibao".to_string()),
        month,
        scope: body.region.unwrap_or_default(),
        pay_date,
        user: who.user,
        now_text: now_text()?,
        reserved_run_no: None,
    };
    let run = create_run(&state.store, &state.config, &request).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"run_id": run.run_id, "run": run_json(&run)})),
    )
        .into_response())
}

async fn run_detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    authorize(&state, &headers, Method::GET, Permission::Read).await?;
    Ok(Json(detail_json(&state, &id).await?))
}

/// Everything the page and an auditor see about one run.
pub async fn detail_json(state: &Shared, id: &str) -> ApiResult<Value> {
    let store = &state.store;
    let run = load_run(store, id).await?;
    let mut value = json!({"run": run_json(&run)});
    for grouping in ["region", "area", "bank", "all"] {
        value[format!("by_{grouping}")] =
            serde_json::to_value(store.run_group_totals(id, grouping).await?)
                .map_err(anyhow::Error::from)?;
    }
    value["flags"] = json!(store.run_flag_counts(id).await?);
    value["approvals"] = json!(store.approvals(id).await?);
    value["approvals_current"] = json!(store
        .approvals(id)
        .await?
        .iter()
        .filter(|a| a.digest == run.digest)
        .count());
    value["approvals_complete"] = json!(approvals_complete(store, &run).await?);
    value["batches"] = json!(store.batches_of_run(id).await?);
    let exceptions: Vec<Value> = store.exceptions_for_run(id).await?.iter().map(|e| json!({
        "kind": e.kind, "batch_id": e.batch_id, "end_to_end_id": e.end_to_end_id, "voucher_no": e.voucher_no,
        "amount": e.amount.map(|a| a.to_string()), "detail": e.detail, "source": e.source,
    })).collect();
    value["exceptions"] = json!(exceptions);
    let report_dir = state.report_dir.join(id);
    let present: Vec<&str> = REPORT_FILES
        .iter()
        .copied()
        .filter(|f| report_dir.join(f).is_file())
        .collect();
    value["reconciliation_files"] = json!(present);
    Ok(value)
}

async fn run_lines(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&state, &headers, Method::GET, Permission::Read).await?;
    load_run(&state.store, &id).await?;
    let mut csv = format!("{LINES_CSV_HEADER}\n");
    let mut after = 0;
    loop {
        let page = state.store.run_lines_page(&id, after, LINES_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.line_no;
        for line in &page {
            csv.push_str(&line.to_csv());
            csv.push('\n');
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

async fn run_diff(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    authorize(&state, &headers, Method::GET, Permission::Read).await?;
    let threshold = query.get("threshold").map_or("0.20", String::as_str);
    let threshold = rust_decimal::Decimal::from_str_exact(threshold)
        .ok()
        .filter(|t| !t.is_sign_negative())
        .ok_or_else(|| ApiError::bad_request("threshold: a share such as 0.20"))?;
    let run = load_run(&state.store, &id).await?;
    let Some(previous) = state.store.previous_run(&run).await? else {
        return Ok(Json(json!({"run_id": id, "previous": null, "rows": []})));
    };
    let before = state
        .store
        .pay_amounts_by_household(&previous.run_id)
        .await?;
    let after = state.store.pay_amounts_by_household(&id).await?;
    let rows = crate::run::diff::diff_rows(&before, &after, threshold)
        .iter()
        .map(crate::run::diff::DiffRow::to_json)
        .collect::<Vec<_>>();
    Ok(Json(
        json!({"run_id": id, "previous": previous.run_id, "rows": rows}),
    ))
}

async fn approval_message_of(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    authorize(&state, &headers, Method::GET, Permission::Read).await?;
    let run = load_run(&state.store, &id).await?;
    let message = approval_message(
        &run.run_id,
        &run.digest,
        run.pay_count,
        Fen::new(run.payable_fen),
    );
    Ok(Json(json!({
        "run_id": run.run_id, "digest": run.digest, "pay_count": run.pay_count,
        "total": Fen::new(run.payable_fen).to_string(),
        "message_base64": signature::encode(&message),
        "message_text": String::from_utf8_lossy(&message),
    })))
}

#[derive(serde::Deserialize)]
struct ApproveBody {
    signature_base64: String,
}

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<Json<ApproveBody>>,
) -> ApiResult<Json<Value>> {
    let who = authorize(&state, &headers, Method::POST, Permission::Approve).await?;
    let Json(body) =
        body.ok_or_else(|| ApiError::bad_request("a JSON body with signature_base64"))?;
    let run = load_run(&state.store, &id).await?;
    if run.created_by == who.user {
        audit_forbidden(&state, &who, "Approve own run").await?;
        return Err(ApiError::forbidden(format!(
            "{} created run {id} and cannot approve it (four eyes)",
            who.user
        )));
    }
    let approver = state
        .store
        .approver_by_name(&who.user)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "refused",
                format!(
                    "{} has no registered approval key (disburse approver add)",
                    who.user
                ),
            )
        })?;
    let bytes = signature::decode_signature(&body.signature_base64, &approver.algorithm)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let now = now_text()?;
    let actor = Actor {
        user: &who.user,
        now_text: &now,
    };
    let run = record_approval(&state.store, &actor, &run, &approver, &bytes).await?;
    let current = state
        .store
        .approvals(&id)
        .await?
        .iter()
        .filter(|a| a.digest == run.digest)
        .count();
    Ok(Json(
        json!({"run_id": run.run_id, "state": run.state, "approvals": current, "approvals_required": run.approvals_required}),
    ))
}

async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let who = authorize(&state, &headers, Method::POST, Permission::Export).await?;
    let now = now_text()?;
    let out_dir = state.export_dir.join(&id);
    let request = ExportRequest {
        run_id: &id,
        out_dir: &out_dir,
        key_path: state.export_key.as_deref(),
        user: &who.user,
        now_text: &now,
    };
    let outcome = export_run(&state.store, &state.config, &request).await?;
    Ok(Json(
        json!({"run_id": id, "state": outcome.run.state, "reexport": outcome.reexport, "manifest": outcome.manifest}),
    ))
}

async fn reconcile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let who = authorize(&state, &headers, Method::POST, Permission::Reconcile).await?;
    let now = now_text()?;
    let actor = Actor {
        user: &who.user,
        now_text: &now,
    };
    let outcome = reconcile_run(&state.store, &actor, &id, &state.report_dir.join(&id)).await?;
    Ok(Json(
        serde_json::to_value(&outcome).map_err(anyhow::Error::from)?,
    ))
}

async fn report_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    authorize(&state, &headers, Method::GET, Permission::Read).await?;
    let name = REPORT_FILES
        .iter()
        .find(|f| **f == file)
        .ok_or_else(|| ApiError::not_found(format!("no report file {file:?}")))?;
    load_run(&state.store, &id).await?;
    let bytes = std::fs::read(state.report_dir.join(&id).join(name)).map_err(|_| {
        ApiError::not_found(format!("run {id} has no {name} yet (reconcile it first)"))
    })?;
    let kind = if name.ends_with(".html") {
        "text/html; charset=utf-8"
    } else {
        "text/csv; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, kind)], bytes).into_response())
}

async fn upload_results(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let who = authorize(&state, &headers, Method::POST, Permission::UploadResults).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request("the body is the result file"));
    }
    let name = upload_name(query.get("name").map(String::as_str), &body);
    let spool = state
        .spool_dir
        .join(format!("disburse-upload-{}", &auth::new_token()?[4..20]));
    std::fs::create_dir(&spool).map_err(anyhow::Error::from)?;
    let path = spool.join(&name);
    let ingested = async {
        std::fs::write(&path, &body)?;
        let now = crate::clock::format_utc(crate::clock::now_utc()?);
        let actor = Actor {
            user: &who.user,
            now_text: &now,
        };
        ingest_file(
            &state.store,
            &actor,
            &path,
            query.get("format").map(String::as_str),
        )
        .await
    }
    .await;
    let _ = std::fs::remove_dir_all(&spool);
    let summary = ingested?;
    crate::service::inbox::refresh_reports_in(
        &state.store,
        &who.user,
        &state.report_dir,
        crate::clock::now_utc()?,
    )
    .await?;
    Ok(Json(
        serde_json::to_value(&summary).map_err(anyhow::Error::from)?,
    ))
}

/// A safe file name for an upload: the client's, reduced to `[A-Za-z0-9._-]`, or the
/// body's SHA-256.
fn upload_name(given: Option<&str>, body: &[u8]) -> String {
    let cleaned: String = given
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(100)
        .collect();
    if cleaned.trim_matches('.').is_empty() {
        format!("upload-{}", &crate::sign::sha256_hex(body)[..16])
    } else {
        cleaned
    }
}

async fn audit_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    authorize(&state, &headers, Method::GET, Permission::ReadAuditLog).await?;
    let number = |key: &str, default: i64| {
        query.get(key).map_or(Ok(default), |v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("{key}: a number")))
        })
    };
    let after = number("after", 0)?;
    let limit = number("limit", 100)?.clamp(1, 1000);
    let entries = state.store.audit_entries(after, limit).await?;
    let next = entries.last().map(|e| e.seq);
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "object": e.object,
                "detail": e.detail, "hash": e.hash,
            })
        })
        .collect();
    Ok(Json(json!({"entries": rows, "next_after": next})))
}

async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let runs = state
        .store
        .counts_by(crate::store::CountOf::RunState)
        .await?;
    let payments = state
        .store
        .counts_by(crate::store::CountOf::PaymentStatus)
        .await?;
    let last_tick = state.last_tick.load(std::sync::atomic::Ordering::Relaxed);
    let text = crate::service::diff::metrics_text(&runs, &payments, last_tick);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_are_tamed() {
        assert_eq!(upload_name(Some("../../etc/passwd"), b"x"), "....etcpasswd");
        assert!(upload_name(Some(".."), b"x").starts_with("upload-"));
        assert_eq!(
            upload_name(Some("R1_20261121.txt"), b"x"),
            "R1_20261121.txt"
        );
    }
}
