//! The ops page: the installed apps; validate or install an app, its problems located.

use super::*;

/// A diagnostic as the CLI prints it: where, what, the source line with a caret, the help.
pub(super) fn diagnostic_view(d: &crate::Diagnostic, yaml: &str) -> Value {
    let source = yaml.lines().nth(d.line.saturating_sub(1)).map(str::to_string);
    let gutter = d.line.to_string();
    let pad = " ".repeat(gutter.len());
    let caret = format!("{}^", " ".repeat(d.column.saturating_sub(1)));
    json!({"head": format!("{}:{}:{}: {}[{}]: {}", d.file, d.line, d.column,
            if d.severity == crate::Severity::Error { "error" } else { "warning" }, d.code, d.message),
        "source": source, "gutter": gutter, "pad": pad, "caret": caret, "help": d.help})
}

pub(super) fn ops_view(
    rt: &Runtime,
    member: &str,
    csrf: &str,
    lang: Lang,
    yaml: &str,
    outcome: Option<Result<String, Vec<crate::Diagnostic>>>,
) -> Result<Page, EngineError> {
    let me = rt.member(member)?;
    if !me.roles.iter().any(|r| r == crate::engine::records::access::OPS_ROLE) {
        return Err(EngineError::Refused(format!("the ops pages are for the role `ops`; `{member}` does not hold it")));
    }
    let t = words(lang);
    let mut ctx = base(rt, member, csrf, lang, t["apps"].as_str().unwrap_or_default())?;
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
            let shown: Vec<Value> = diagnostics.iter().map(|d| diagnostic_view(d, yaml)).collect();
            ctx.insert("diagnostics".into(), Value::Array(shown));
        }
        None => {}
    }
    Ok(Page::Html(status, render("ops.html", &Value::Object(ctx))?))
}

/// `GET /ops`: the installed apps, and a box to validate or install one (ops only).
pub(super) async fn ops_page(State(api): State<Api>, headers: HeaderMap) -> Response {
    let lang = lang_of(&headers);
    as_member(&api, &headers, None, move |rt, member, csrf| ops_view(rt, member, csrf, lang, "", None)).await
}

/// `POST /ops/apps` with `app_yaml` and `step` (validate or install): the diagnostics located
/// as the CLI shows them, or the installed revision.
pub(super) async fn ops_apps(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let lang = lang_of(&headers);
    let Ok(bytes) = axum::body::to_bytes(body, 2 * 1024 * 1024).await else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, "an app is at most 2 MiB here".into());
    };
    let posted = form_fields(&bytes);
    let yaml = posted.get("app_yaml").and_then(Value::as_str).unwrap_or_default().replace("\r\n", "\n");
    let install = posted.get("step").and_then(Value::as_str) == Some("install");
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf| {
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
