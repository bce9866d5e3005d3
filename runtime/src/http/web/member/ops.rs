//! The ops pages: the installed apps (validate or install one, its problems located), the
//! members (with CSV import and its row errors), the channels (secrets masked), the outbox
//! with its dead letters (and retry) and the audit chain's verification. All for the role
//! `ops` only.

use super::*;
use crate::store::OutboxStatus;

/// Refuses a member without the role `ops`.
fn ops_only(rt: &Runtime, member: &str) -> Result<(), EngineError> {
    let me = rt.member(member)?;
    if !me.roles.iter().any(|r| r == crate::engine::records::access::OPS_ROLE) {
        return Err(EngineError::Refused(format!("the ops pages are for the role `ops`; `{member}` does not hold it")));
    }
    Ok(())
}

/// An ops page's frame: the check, the layout's context and which ops page is open.
fn ops_base(rt: &Runtime, member: &str, csrf: &str, lang: Lang, key: &str) -> Result<Map<String, Value>, EngineError> {
    ops_only(rt, member)?;
    let t = words(lang);
    let mut ctx = base(rt, member, csrf, lang, t[key].as_str().unwrap_or_default())?;
    ctx.insert("section".into(), json!(key));
    Ok(ctx)
}

/// A diagnostic as the CLI prints it: where, what, the source line with a caret, the help; in
/// the page's language, with the same code and position.
pub(super) fn diagnostic_view(d: &crate::Diagnostic, yaml: &str, lang: Lang) -> Value {
    let source = yaml.lines().nth(d.line.saturating_sub(1)).map(str::to_string);
    let gutter = d.line.to_string();
    let pad = " ".repeat(gutter.len());
    let caret = format!("{}^", " ".repeat(d.column.saturating_sub(1)));
    let severity = match (d.severity == crate::Severity::Error, lang) {
        (true, Lang::Zh) => "错误",
        (true, Lang::En) => "error",
        (false, Lang::Zh) => "警告",
        (false, Lang::En) => "warning",
    };
    json!({"head": format!("{}:{}:{}: {severity}[{}]: {}", d.file, d.line, d.column, d.code, d.message_in(lang)),
        "source": source, "gutter": gutter, "pad": pad, "caret": caret,
        "help": d.help_in(lang).map(|h| format!("{}{h}", if lang == Lang::Zh { "建议：" } else { "help: " }))})
}

pub(super) fn ops_view(
    rt: &Runtime,
    member: &str,
    csrf: &str,
    lang: Lang,
    yaml: &str,
    outcome: Option<Result<String, Vec<crate::Diagnostic>>>,
) -> Result<Page, EngineError> {
    let mut ctx = ops_base(rt, member, csrf, lang, "apps")?;
    let apps: Vec<Value> =
        rt.apps().into_iter().map(|(id, revision)| json!({"id": id, "revision": revision})).collect();
    ctx.insert("apps".into(), Value::Array(apps));
    ctx.insert("yaml".into(), json!(yaml));
    let mut status = StatusCode::OK;
    match outcome {
        Some(Ok(said)) => {
            ctx.insert(
                if said.starts_with('✓') { "valid" } else { "installed" }.into(),
                json!(said.trim_start_matches('✓')),
            );
        }
        Some(Err(diagnostics)) => {
            status = StatusCode::UNPROCESSABLE_ENTITY;
            let shown: Vec<Value> = diagnostics.iter().map(|d| diagnostic_view(d, yaml, lang)).collect();
            ctx.insert("diagnostics".into(), Value::Array(shown));
        }
        None => {}
    }
    Ok(Page::Html(status, render("ops.html", &Value::Object(ctx))?))
}

/// `GET /ops`: the installed apps, and a box to validate or install one (ops only).
pub(super) async fn ops_page(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| ops_view(rt, member, csrf, lang, "", None)).await
}

/// `POST /ops/apps` with `app_yaml` and `step` (validate or install): the diagnostics located
/// as the CLI shows them, or the installed revision.
pub(super) async fn ops_apps(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, 2 * 1024 * 1024).await else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, "an app is at most 2 MiB here".into());
    };
    let posted = form_fields(&bytes);
    let yaml = posted.get("app_yaml").and_then(Value::as_str).unwrap_or_default().replace("\r\n", "\n");
    let install = posted.get("step").and_then(Value::as_str) == Some("install");
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf, lang| {
        // Who may see the page is checked first, by drawing it.
        ops_view(rt, member, csrf, lang, "", None)?;
        let files = crate::AppFiles { app_yaml: yaml.clone(), ..Default::default() };
        let t = words(lang);
        let outcome = if install {
            match rt.install(&files, member, false) {
                Ok(report) => Ok(t["installed"].as_str().unwrap_or("{} {}").replacen("{}", &report.app, 1).replacen(
                    "{}",
                    &report.revision.to_string(),
                    1,
                )),
                Err(EngineError::InvalidApp(d) | EngineError::Orphans(d)) => Err(d),
                Err(e) => return Err(e),
            }
        } else {
            let loaded = rt.check_app(&files);
            if loaded.is_valid() {
                Ok(format!("✓{}", t["valid"].as_str().unwrap_or_default()))
            } else {
                Err(loaded.diagnostics)
            }
        };
        ops_view(rt, member, csrf, lang, &yaml, Some(outcome))
    })
    .await
}

/// The members page, with what an import said.
fn members_view(
    rt: &Runtime,
    member: &str,
    csrf: &str,
    lang: Lang,
    outcome: Option<Result<crate::engine::MembersReport, crate::engine::ImportReport>>,
) -> Result<Page, EngineError> {
    let mut ctx = ops_base(rt, member, csrf, lang, "members")?;
    let team = rt.members()?;
    let name = |id: &str| team.iter().find(|m| m.id == id).map(|m| m.name.clone()).unwrap_or_else(|| id.to_string());
    let rows: Vec<Value> = team
        .iter()
        .map(|m| {
            json!({"id": m.id, "name": m.name, "roles": m.roles.join(", "), "region": m.region,
                "manager": m.manager.as_deref().map(name), "active": m.active,
                "phone": m.phone.is_some(), "email": m.email.is_some()})
        })
        .collect();
    ctx.insert("people".into(), Value::Array(rows));
    let t = words(lang);
    let mut status = StatusCode::OK;
    match outcome {
        Some(Ok(report)) => {
            let said = t["imported"].as_str().unwrap_or("{} {} {}");
            let said = [report.created, report.updated, report.unchanged]
                .iter()
                .fold(said.to_string(), |s, n| s.replacen("{}", &n.to_string(), 1));
            ctx.insert("imported".into(), json!(said));
        }
        Some(Err(report)) => {
            status = StatusCode::UNPROCESSABLE_ENTITY;
            let problems: Vec<Value> = report
                .problems
                .iter()
                .map(|p| {
                    let row = t["row"].as_str().unwrap_or("{}").replace("{}", &p.row.to_string());
                    json!({"row": row, "column": p.column, "code": p.code, "message": p.message})
                })
                .collect();
            ctx.insert("problems".into(), Value::Array(problems));
        }
        None => {}
    }
    Ok(Page::Html(status, render("ops_members.html", &Value::Object(ctx))?))
}

/// `GET /ops/members`.
pub(super) async fn members_page(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| members_view(rt, member, csrf, lang, None)).await
}

/// `POST /ops/members` (`multipart/form-data` with a CSV file, or the CSV pasted): the
/// directory imported all or nothing; a refused file's problems by row and column.
pub(super) async fn members_import(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, 8 * 1024 * 1024).await else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, "a member file is at most 8 MiB here".into());
    };
    let (fields, file) = match super::posted_form(&headers, &bytes) {
        Ok(posted) => posted,
        Err(why) => return html(StatusCode::BAD_REQUEST, why.into()),
    };
    let csv = match file {
        Some(file) => file,
        None => fields.get("csv").and_then(Value::as_str).unwrap_or_default().as_bytes().to_vec(),
    };
    as_member(&api, &headers, Some(&fields), move |rt, member, csrf, lang| {
        ops_only(rt, member)?;
        let outcome = match rt.import_members(&csv, member) {
            Ok(report) => Ok(report),
            Err(EngineError::Import(report)) => Err(*report),
            Err(e @ EngineError::Input(_)) => {
                let problem =
                    crate::engine::RowProblem { row: 1, column: None, code: "BAD_CSV".into(), message: e.to_string() };
                Err(crate::engine::ImportReport { problems: vec![problem], ..Default::default() })
            }
            Err(e) => return Err(e),
        };
        members_view(rt, member, csrf, lang, Some(outcome))
    })
    .await
}

/// `GET /ops/channels`: each channel with its settings, secrets masked, and what it lacks.
pub(super) async fn channels_page(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| {
        let mut ctx = ops_base(rt, member, csrf, lang, "channels")?;
        ctx.insert("channels".into(), json!(rt.channels()?));
        Ok(Page::Html(StatusCode::OK, render("ops_channels.html", &Value::Object(ctx))?))
    })
    .await
}

/// A message as ops may read it: a one-time sign-in or signing link is a credential of the
/// member or customer it is for, so only its start is shown.
fn without_tokens(body: &str) -> String {
    body.split(' ')
        .map(|word| {
            for marker in ["token=", "/sign/"] {
                if let Some(at) = word.find(marker) {
                    return format!("{}…", &word[..at + marker.len()]);
                }
            }
            word.to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Messages shown on the outbox page, newest first.
const OUTBOX_SHOWN: usize = 200;

fn outbox_view(
    rt: &Runtime,
    member: &str,
    csrf: &str,
    lang: Lang,
    status: &str,
    said: Option<String>,
) -> Result<Page, EngineError> {
    let mut ctx = ops_base(rt, member, csrf, lang, "outbox")?;
    let filter = status.parse::<OutboxStatus>().ok();
    let mut messages = rt.outbox(filter)?;
    let total = messages.len();
    messages.reverse();
    messages.truncate(OUTBOX_SHOWN);
    let zone = rt.zone_of(None);
    let t = words(lang);
    let rows: Vec<Value> = messages
        .iter()
        .map(|m| {
            let last = rt.attempts(m.id).ok().and_then(|a| a.into_iter().last());
            let why = last.and_then(|a| a.error.or(a.status));
            let body: String = without_tokens(&m.body).chars().take(160).collect();
            json!({"id": m.id, "channel": m.channel, "to": m.recipient, "address": m.address,
                "status": t[format!("status_{}", m.status.as_str())].as_str().unwrap_or(m.status.as_str()), "attempts": m.attempts, "at": crate::clock::shown(&m.created_at, &zone),
                "body": body, "why": why, "dead": m.status == OutboxStatus::Dead,
                "record": m.form.as_deref().zip(m.record.as_deref()).map(|(f, r)| json!({"form": f, "id": r}))})
        })
        .collect();
    let tabs: Vec<Value> = ["dead", "pending", "sent", "all"]
        .iter()
        .map(|s| json!({"id": s, "current": *s == status || (filter.is_none() && *s == "all")}))
        .collect();
    let shown = rows.len();
    let shown_of = [shown, total]
        .iter()
        .fold(t["shown_of"].as_str().unwrap_or_default().to_string(), |s, n| s.replacen("{}", &n.to_string(), 1));
    ctx.insert("shown_of".into(), json!(shown_of));
    ctx.insert("messages".into(), Value::Array(rows));
    ctx.insert("tabs".into(), Value::Array(tabs));
    ctx.insert("said".into(), json!(said));
    Ok(Page::Html(StatusCode::OK, render("ops_outbox.html", &Value::Object(ctx))?))
}

/// `GET /ops/outbox?status=dead|pending|sent|all`: the messages, dead letters first by default.
pub(super) async fn outbox_page(
    State(api): State<Api>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let status = super::query_value(raw.as_deref(), "status").unwrap_or_else(|| "dead".into());
    as_member(&api, &headers, None, move |rt, member, csrf, lang| outbox_view(rt, member, csrf, lang, &status, None))
        .await
}

/// `POST /ops/outbox/{id}/retry`: a dead letter back in line for the next pass.
pub(super) async fn outbox_retry(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let posted = form_fields(&bytes);
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf, lang| {
        ops_only(rt, member)?;
        let id = id.parse::<i64>().map_err(|_| EngineError::NotFound { form: "message".into(), id: id.clone() })?;
        let said = match rt.retry_message(id, member) {
            Ok(_) => words(lang)["retried"].as_str().unwrap_or("{}").replace("{}", &id.to_string()),
            Err(e @ (EngineError::Input(_) | EngineError::Refused(_))) => e.to_string(),
            Err(e) => return Err(e),
        };
        outbox_view(rt, member, csrf, lang, "dead", Some(said))
    })
    .await
}

fn audit_view(rt: &Runtime, member: &str, csrf: &str, lang: Lang, verify: bool) -> Result<Page, EngineError> {
    let mut ctx = ops_base(rt, member, csrf, lang, "audit")?;
    let head = rt.audit_head()?;
    ctx.insert("head".into(), json!(head));
    if verify {
        let v = rt.verify_audit()?;
        let t = words(lang);
        let said = match &v.problem {
            None => [v.events, v.records as i64]
                .iter()
                .fold(t["chain_ok"].as_str().unwrap_or_default().to_string(), |s, n| {
                    s.replacen("{}", &n.to_string(), 1)
                }),
            Some(p) => format!("{} {p}", t["chain_bad"].as_str().unwrap_or_default()),
        };
        ctx.insert("verified".into(), json!({"ok": v.problem.is_none(), "said": said}));
    }
    Ok(Page::Html(StatusCode::OK, render("ops_audit.html", &Value::Object(ctx))?))
}

/// `GET /ops/audit`: the chain's head.
pub(super) async fn audit_page(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| audit_view(rt, member, csrf, lang, false)).await
}

/// `POST /ops/audit`: `audit verify`: every event's hash recomputed and every record replayed.
pub(super) async fn audit_verify(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let posted = form_fields(&bytes);
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf, lang| audit_view(rt, member, csrf, lang, true))
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_outbox_page_never_shows_a_sign_in_or_signing_token() {
        let shown = super::without_tokens("登录链接：https://crm.example.com/sign-in/link?token=abc123 15 分钟内有效");
        assert_eq!(shown, "登录链接：https://crm.example.com/sign-in/link?token=… 15 分钟内有效");
        let sign = super::without_tokens("请签署 QT-1：https://crm.example.com/sign/n0nce.mac");
        assert!(!sign.contains("n0nce") && sign.ends_with("/sign/…"), "{sign}");
    }
}
