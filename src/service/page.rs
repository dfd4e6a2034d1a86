//! The web page for finance staff (低保金发放): months and their runs, one run's
//! totals, flags and holds, approvals, bank files and their hashes, reconciliation and
//! exceptions; and approval, signed in the browser (WebCrypto) or pasted from `run
//! approve --offline`. Plain server-rendered HTML, one inline style and one small
//! inline script, no external assets.
//!
//! **Invariants:** every value is HTML-escaped; login is `/login?token=…` (or its
//! form), which sets the token as an HttpOnly, SameSite=Strict cookie and redirects to
//! a local path only; the page's approval POST goes to the same API, with the CSRF
//! header derived from the token; the private key a browser signs with never leaves it.

use crate::domain::money::Fen;
use crate::reconcile::html::escape_html as esc;
use crate::service::api::{authenticate, detail_json, AppState};
use crate::service::auth::{self, Principal, Role};
use crate::service::error::ApiError;
use crate::service::Shared;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/logout", get(logout))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/approve", get(run_page))
}

const STYLE: &str = "body{font-family:\"Noto Sans CJK SC\",\"Source Han Sans SC\",\"PingFang SC\",\"Microsoft YaHei\",sans-serif;margin:0;color:#1d2733;background:#f5f6f8}
header{background:#8b1a1a;color:#fff;padding:14px 32px;display:flex;justify-content:space-between;align-items:baseline}
header h1{font-size:20px;margin:0;font-weight:600;letter-spacing:2px}header a{color:#fff}
main{max-width:1100px;margin:24px auto;padding:0 24px}
section{background:#fff;border:1px solid #d9dde3;border-radius:4px;padding:16px 20px;margin-bottom:18px}
h2{font-size:16px;margin:0 0 12px;border-left:4px solid #8b1a1a;padding-left:8px}
table{border-collapse:collapse;width:100%;font-size:14px}th,td{border-bottom:1px solid #e4e7eb;padding:6px 8px;text-align:left}
th{background:#f0f2f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.state{padding:1px 8px;border-radius:10px;background:#e8edf3}.state.approved,.state.reconciled{background:#dff3e4}.state.computed{background:#fff3d6}.state.cancelled{background:#eee;color:#777}
.big{font-size:22px;font-weight:600}.ok{color:#1c6b34}.bad{color:#a11}dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dt{color:#5b6672}
textarea{width:100%;font-family:monospace}button{background:#8b1a1a;color:#fff;border:0;padding:6px 16px;border-radius:3px;cursor:pointer}";

fn shell(title: &str, who: Option<&Principal>, body: &str, data_attrs: &str) -> Html<String> {
    let user = who.map_or(String::new(), |p| {
        format!(
            "{}（{}） · <a href=\"/logout\">退出</a>",
            esc(&p.user),
            role_label(p.role)
        )
    });
    Html(format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{} · 低保金发放</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head>\
         <body{data_attrs}><header><h1><a href=\"/\" style=\"text-decoration:none\">低保金发放</a></h1><span>{user}</span></header>\
         <main>{body}</main></body></html>\n",
        esc(title)
    ))
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::Operator => "经办",
        Role::Approver => "审批",
        Role::Auditor => "审计",
    }
}

fn state_label(state: &str) -> &'static str {
    match state {
        "computed" => "待审批",
        "approved" => "已审批",
        "exported" => "已出银行文件",
        "reconciled" => "已对账",
        "cancelled" => "已撤销",
        _ => "未知",
    }
}

fn yuan(fen: i64) -> String {
    Fen::new(fen).to_string()
}

/// The signed-in person, or a redirect to the login form.
async fn signed_in(
    state: &Shared,
    headers: &HeaderMap,
    next: &str,
) -> Result<(Principal, String), Response> {
    authenticate(state, headers, &Method::GET)
        .await
        .map_err(|_| Redirect::to(&format!("/login?next={}", url_encode(next))).into_response())
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn login(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let next = query
        .get("next")
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .map_or("/", String::as_str);
    let Some(token) = query.get("token") else {
        let form = format!(
            "<section><h2>登录</h2><form method=\"get\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
             <p>请输入发给您的令牌（disburse token create）：</p><p><input name=\"token\" type=\"password\" size=\"72\" autocomplete=\"off\"></p>\
             <button type=\"submit\">登录</button></form></section>",
            esc(next)
        );
        return shell("登录", None, &form, "").into_response();
    };
    match state.store.api_token(&auth::token_sha256(token)).await {
        Ok(Some(_)) => {
            let cookie = format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict",
                auth::COOKIE_NAME
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
        }
        _ => ApiError::unauthenticated().into_response(),
    }
}

async fn logout() -> Response {
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        auth::COOKIE_NAME
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (who, _) = match signed_in(&state, &headers, "/").await {
        Ok(found) => found,
        Err(redirect) => return redirect,
    };
    match home_body(&state).await {
        Ok(body) => shell("月份与批次", Some(&who), &body, "").into_response(),
        Err(error) => error.into_response(),
    }
}

async fn home_body(state: &Shared) -> Result<String, ApiError> {
    let mut months: BTreeMap<String, Vec<crate::store::RunRecord>> = BTreeMap::new();
    for run in state.store.all_runs().await? {
        months.entry(run.month.clone()).or_default().push(run);
    }
    let mut out = String::new();
    for (month, runs) in months.iter().rev() {
        let _ = write!(out, "<section class=\"month\"><h2>月份 {}</h2><table><tr><th>批次</th><th>范围</th><th>状态</th><th>笔数</th><th>合计（元）</th><th>暂停（笔 / 元）</th><th>审批</th></tr>", esc(month));
        for run in runs {
            let current = state
                .store
                .approvals(&run.run_id)
                .await?
                .iter()
                .filter(|a| a.digest == run.digest)
                .count();
            let _ = write!(
                out,
                "<tr><td><a href=\"/runs/{id}\">{id}</a></td><td>{}</td><td><span class=\"state {st}\">{}</span></td><td class=\"n\">{}</td><td class=\"n total\">{}</td><td class=\"n\">{} / {}</td><td>{current} / {}</td></tr>",
                esc(crate::engine::create_run::scope_label(&run.scope)), state_label(&run.state), run.pay_count, yuan(run.payable_fen),
                run.hold_count, yuan(run.hold_fen), run.approvals_required, id = esc(&run.run_id), st = esc(&run.state)
            );
        }
        out.push_str("</table></section>");
    }
    if months.is_empty() {
        out.push_str("<section><h2>月份</h2><p>尚无批次。</p></section>");
    }
    out.push_str("<section><h2>银行回执文件</h2><table><tr><th>文件</th><th>格式</th><th>条数</th><th>收到时间</th><th>SHA-256</th></tr>");
    for file in state.store.recent_result_files(50).await? {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&file.file_name), esc(&file.format), file.result_count, esc(&file.ingested_at), esc(&file.sha256));
    }
    out.push_str("</table></section>");
    Ok(out)
}

async fn run_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (who, token) = match signed_in(&state, &headers, &format!("/runs/{id}")).await {
        Ok(found) => found,
        Err(redirect) => return redirect,
    };
    let detail = match detail_json(&state, &id).await {
        Ok(detail) => detail,
        Err(error) => return error.into_response(),
    };
    let prefilled = query.get("signature").map(String::as_str);
    let body = run_body(&detail, &who, prefilled);
    let attrs = format!(
        " data-csrf=\"{}\" data-run=\"{}\" data-auto=\"{}\"",
        auth::csrf_for(&token),
        esc(&id),
        u8::from(prefilled.is_some())
    );
    shell(&format!("批次 {id}"), Some(&who), &body, &attrs).into_response()
}

fn run_body(detail: &Value, who: &Principal, prefilled: Option<&str>) -> String {
    let run = &detail["run"];
    let s = |v: &Value| esc(v.as_str().unwrap_or_default());
    let mut out = format!(
        "<section><h2>批次 {id}</h2><dl><dt>月份</dt><dd class=\"big\">{}</dd><dt>状态</dt><dd><span class=\"state {st}\">{}</span></dd>\
         <dt>笔数</dt><dd id=\"pay-count\">{}</dd><dt>合计</dt><dd class=\"big\" id=\"total\">{} 元</dd><dt>暂停发放</dt><dd>{} 笔 / {} 元</dd>\
         <dt>发放日</dt><dd>{}</dd><dt>经办人</dt><dd>{}</dd><dt>摘要（digest）</dt><dd><code id=\"digest\">{}</code></dd></dl></section>",
        s(&run["month"]), state_label(run["state"].as_str().unwrap_or_default()), run["pay_count"], s(&run["payable"]),
        run["hold_count"], s(&run["hold"]), s(&run["pay_date"]), s(&run["created_by"]), s(&run["digest"]),
        id = s(&run["run_id"]), st = s(&run["state"])
    );
    totals_table(&mut out, "按区划合计", &detail["by_region"]);
    totals_table(&mut out, "按银行合计", &detail["by_bank"]);
    flags_table(&mut out, &detail["flags"]);
    approvals_section(&mut out, detail, who, prefilled);
    files_section(&mut out, detail);
    exceptions_section(&mut out, &detail["exceptions"]);
    out
}

fn totals_table(out: &mut String, title: &str, rows: &Value) {
    let _ = write!(out, "<section><h2>{title}</h2><table><tr><th>分组</th><th>状态</th><th>笔数</th><th>基本</th><th>分类施保</th><th>补发</th><th>扣减</th><th>追回</th><th>合计（元）</th></tr>");
    for row in rows.as_array().into_iter().flatten() {
        let fen = |key: &str| yuan(row[key].as_i64().unwrap_or_default());
        let _ = write!(out, "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(row["group"].as_str().unwrap_or_default()), esc(row["status"].as_str().unwrap_or_default()), row["count"],
            fen("base_fen"), fen("supplements_fen"), fen("arrears_fen"), fen("reduction_fen"), fen("recovery_fen"), fen("payable_fen"));
    }
    out.push_str("</table></section>");
}

fn flags_table(out: &mut String, flags: &Value) {
    out.push_str("<section><h2>标记与暂停</h2><table><tr><th>标记</th><th>户数</th></tr>");
    for pair in flags.as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(pair[0].as_str().unwrap_or_default()),
            pair[1]
        );
    }
    out.push_str("</table></section>");
}

fn approvals_section(out: &mut String, detail: &Value, who: &Principal, prefilled: Option<&str>) {
    let run = &detail["run"];
    let complete = detail["approvals_complete"].as_bool().unwrap_or(false);
    let _ = write!(out, "<section id=\"approvals\"><h2>审批（{} / {}，{}）</h2><table><tr><th>审批人</th><th>时间</th><th>密钥</th><th>是否有效</th></tr>",
        detail["approvals_current"], run["approvals_required"], if complete { "已齐" } else { "待审批" });
    for approval in detail["approvals"].as_array().into_iter().flatten() {
        let current = approval["digest"] == run["digest"];
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(approval["approver"].as_str().unwrap_or_default()),
            esc(approval["approved_at"].as_str().unwrap_or_default()),
            esc(approval["key_id"].as_str().unwrap_or_default()),
            if current {
                "有效"
            } else {
                "已失效：批次已变更"
            }
        );
    }
    out.push_str("</table>");
    let open = matches!(run["state"].as_str(), Some("computed" | "approved"));
    if who.role == Role::Approver && open {
        approval_form(out, run, prefilled);
    }
    out.push_str("</section>");
}

fn approval_form(out: &mut String, run: &Value, prefilled: Option<&str>) {
    let message = crate::run::approval_message(
        run["run_id"].as_str().unwrap_or_default(),
        run["digest"].as_str().unwrap_or_default(),
        run["pay_count"].as_i64().unwrap_or_default(),
        Fen::new(run["payable_fen"].as_i64().unwrap_or_default()),
    );
    let _ = write!(
        out,
        "<h3>签署审批</h3><p>您签署的是以下内容（批次、摘要、笔数、合计）：</p><pre id=\"message\" data-b64=\"{}\">{}</pre>\
         <p>方式一：选择您的私钥文件（PKCS#8 PEM，Ed25519 或 ECDSA P-256），在浏览器内签名，私钥不上传：\
         <input type=\"file\" id=\"keyfile\"> <button type=\"button\" id=\"sign\">签名并审批</button></p>\
         <p>方式二：粘贴 <code>disburse run approve {} --key 私钥 --offline</code> 输出的签名：</p>\
         <textarea id=\"signature\" rows=\"3\">{}</textarea><p><button type=\"button\" id=\"send\">提交审批</button></p>\
         <p id=\"result\" role=\"status\"></p><script>{SCRIPT}</script>",
        crate::service::signature::encode(&message),
        esc(&String::from_utf8_lossy(&message)),
        esc(run["run_id"].as_str().unwrap_or_default()),
        esc(prefilled.unwrap_or_default())
    );
}

const SCRIPT: &str = r#"
(function(){
const body=document.body, out=document.getElementById('result');
const b64=s=>btoa(String.fromCharCode(...new Uint8Array(s)));
const unb64=t=>Uint8Array.from(atob(t),c=>c.charCodeAt(0));
async function send(sig){
  out.textContent='提交中…';
  const r=await fetch('/api/v1/runs/'+encodeURIComponent(body.dataset.run)+'/approvals',{method:'POST',credentials:'same-origin',
    headers:{'Content-Type':'application/json','X-Disburse-CSRF':body.dataset.csrf},body:JSON.stringify({signature_base64:sig.trim()})});
  const j=await r.json();
  if(r.ok){out.className='ok';out.dataset.result='approved';out.textContent='审批已记录：'+j.approvals+' / '+j.approvals_required+'，状态 '+j.state;}
  else{out.className='bad';out.dataset.result='refused';out.textContent='未通过：'+j.error.message;}
}
async function signWithFile(){
  const f=document.getElementById('keyfile').files[0]; if(!f){out.textContent='请先选择私钥文件';return;}
  const pem=await f.text(); const der=unb64(pem.replace(/-----[^-]+-----/g,'').replace(/\s+/g,''));
  const msg=unb64(document.getElementById('message').dataset.b64);
  let sig;
  try{const k=await crypto.subtle.importKey('pkcs8',der,{name:'Ed25519'},false,['sign']);sig=await crypto.subtle.sign({name:'Ed25519'},k,msg);}
  catch(e){const k=await crypto.subtle.importKey('pkcs8',der,{name:'ECDSA',namedCurve:'P-256'},false,['sign']);sig=await crypto.subtle.sign({name:'ECDSA',hash:'SHA-256'},k,msg);}
  await send(b64(sig));
}
document.getElementById('sign').onclick=()=>signWithFile().catch(e=>{out.className='bad';out.textContent='签名失败：'+e;});
document.getElementById('send').onclick=()=>send(document.getElementById('signature').value);
if(body.dataset.auto==='1'){send(document.getElementById('signature').value);}
})();
"#;

fn files_section(out: &mut String, detail: &Value) {
    let run_id = esc(detail["run"]["run_id"].as_str().unwrap_or_default());
    out.push_str("<section><h2>银行文件</h2><table><tr><th>批次号</th><th>文件</th><th>格式</th><th>笔数</th><th>金额（元）</th><th>SHA-256</th></tr>");
    for batch in detail["batches"].as_array().into_iter().flatten() {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><code>{}</code></td></tr>",
            esc(batch["batch_id"].as_str().unwrap_or_default()), esc(batch["file_name"].as_str().unwrap_or_default()),
            esc(batch["layout"].as_str().unwrap_or_default()), batch["record_count"], yuan(batch["total_fen"].as_i64().unwrap_or_default()),
            esc(batch["sha256"].as_str().unwrap_or_default()));
    }
    out.push_str("</table></section><section><h2>对账</h2>");
    let files = detail["reconciliation_files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if files.is_empty() {
        out.push_str("<p>尚未对账。</p>");
    }
    for file in &files {
        let name = esc(file.as_str().unwrap_or_default());
        let _ = write!(
            out,
            "<a href=\"/api/v1/runs/{run_id}/reconciliation/{name}\">{name}</a> "
        );
    }
    out.push_str("</section>");
}

fn exceptions_section(out: &mut String, rows: &Value) {
    out.push_str("<section><h2>异常</h2><table><tr><th>类型</th><th>批次号</th><th>支付编号</th><th>凭证号</th><th>金额</th><th>说明</th></tr>");
    for row in rows.as_array().into_iter().flatten() {
        let text = |key: &str| esc(row[key].as_str().unwrap_or_default());
        let _ = write!(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            text("kind"), text("batch_id"), text("end_to_end_id"), text("voucher_no"), text("amount"), text("detail"));
    }
    out.push_str("</table></section>");
}
