//! The public page of an event declared `public: true`, such as the lead template's
//! `lead.captured`: `/apply/EVENT` is a form anyone may send without an account (link it from
//! the website or a WeChat official account). Each send is the event, as `POST
//! /api/events/EVENT` would raise it, by the actor `web`. It is rate-limited per address, a
//! field only bots fill (hidden from people and screen readers) makes the send a no-op, and the
//! answer never tells whether the phone number was already on file.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};

use super::member::{form_fields, input, problem_text};
use super::{client, html, lang_of, on_worker, templates};
use crate::engine::{EngineError, Runtime};
use crate::http::{Api, ClientAddr};
use crate::model::{EventDef, Field, Lang};

/// The actor public sends are recorded as (one of [`crate::SYSTEM_ACTORS`]).
const WEB_ACTOR: &str = "web";

/// The field only bots fill.
const TRAP: &str = "website";

fn words(lang: Lang) -> Value {
    match lang {
        Lang::Zh => {
            json!({"send": "提交", "thanks": "已收到，我们会尽快与您联系。", "fix": "请修改标出的内容后再提交。",
            "busy": "提交太频繁了，请一小时后再试。", "trap": "请勿填写此项", "gone": "此表单不存在或已关闭。"})
        }
        Lang::En => json!({"send": "Send", "thanks": "Thank you: we will be in touch soon.",
            "fix": "Please correct the marked fields.", "busy": "Too many forms from here; please try again in an hour.",
            "trap": "Leave this empty", "gone": "There is no such form."}),
    }
}

/// The inputs of a public event: each field someone must type (required, or without a
/// default), drawn from the target form's field of the same id when there is one (its
/// choices, its pattern's help), named by the event's field.
fn inputs(
    rt: &Runtime,
    event: &EventDef,
    lang: Lang,
    values: &Map<String, Value>,
    problems: &[crate::values::FieldProblem],
) -> Vec<Value> {
    let target = event.target.as_ref().and_then(|t| rt.form_def(&t.form).ok());
    event
        .fields
        .iter()
        .filter(|f| f.required == Some(true) || f.default.is_none())
        .filter_map(|f| {
            let shown: &Field = target.as_ref().and_then(|t| t.field(&f.id)).unwrap_or(f);
            let error = problems.iter().find(|p| p.field == f.id).map(|p| problem_text(Some(shown), p, lang));
            let mut input = input(shown, lang, values.get(&f.id), error.as_deref(), f.required == Some(true))?;
            // The event's own label (`公司名称`), the form's choices and help.
            input["label"] = json!(crate::values::field_name(f, lang));
            Some(input)
        })
        .collect()
}

fn render(
    lang: Lang,
    event: &EventDef,
    inputs: Vec<Value>,
    said: Option<&str>,
    error: bool,
    status: StatusCode,
) -> Response {
    let t = words(lang);
    let title = event.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| event.id.clone());
    let ctx = json!({"lang": if lang == Lang::Zh { "zh-CN" } else { "en" }, "title": title, "t": t,
        "event": event.id, "inputs": inputs, "said": said, "error": error, "trap": TRAP});
    match templates()
        .get_template("apply.html")
        .and_then(|p| p.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
    {
        Ok(body) => html(status, body),
        Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, "closeloop failed to draw this page".into()),
    }
}

fn gone(lang: Lang) -> Response {
    html(StatusCode::NOT_FOUND, super::escape(words(lang)["gone"].as_str().unwrap_or_default()))
}

/// `GET /apply/{event}`.
pub(super) async fn apply_page(State(api): State<Api>, headers: HeaderMap, Path(event): Path<String>) -> Response {
    let lang = lang_of(&headers);
    let drawn = on_worker(&api, move |rt| {
        Ok(rt.public_event(&event).map(|(e, _)| (inputs(rt, &e, lang, &Map::new(), &[]), e)))
    })
    .await;
    match drawn {
        Ok(Some((inputs, event))) => render(lang, &event, inputs, None, false, StatusCode::OK),
        Ok(None) => gone(lang),
        Err(r) => r,
    }
}

/// What a send came to.
enum Sent {
    Thanks(EventDef),
    Refused(Vec<Value>, EventDef),
    Busy,
    Gone,
}

/// `POST /apply/{event}`: the event raised once the address is under its limit and the trap is
/// empty; a refused field is named under its input, what was typed kept.
pub(super) async fn apply(
    State(api): State<Api>,
    addr: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    Path(event): Path<String>,
    body: Body,
) -> Response {
    let lang = lang_of(&headers);
    if let Some(refused) = super::cross_site(&headers) {
        return refused;
    }
    let Ok(bytes) = axum::body::to_bytes(body, 32 * 1024).await else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, "too large".into());
    };
    let posted = form_fields(&bytes);
    let address = client(addr);
    let sent = on_worker(&api, move |rt| {
        let Some((def, _)) = rt.public_event(&event) else { return Ok(Sent::Gone) };
        match rt.public_send(&address) {
            Err(EngineError::Locked(_)) => return Ok(Sent::Busy),
            other => other?,
        }
        // A bot fills every field it finds; a person never sees this one.
        if posted.get(TRAP).and_then(Value::as_str).is_some_and(|v| !v.trim().is_empty()) {
            return Ok(Sent::Thanks(def));
        }
        let zone = rt.zone_of(None);
        let mut data = Map::new();
        let mut problems = Vec::new();
        for f in &def.fields {
            let text = posted.get(&f.id).and_then(Value::as_str).unwrap_or_default();
            match crate::values::parse_cell(f, text, &zone) {
                Ok(Some(v)) => {
                    data.insert(f.id.clone(), v);
                }
                Ok(None) => {}
                Err(why) => problems.push(crate::values::FieldProblem::new(f.id.clone(), "WRONG_TYPE", why)),
            }
        }
        // The data is checked against the record it would make whether or not one matches, so a
        // known phone and an unknown one get the same answer.
        if problems.is_empty() {
            if let Some(target) = &def.target {
                let mut given: Map<String, Value> = data.clone();
                for f in &def.fields {
                    if let (Some(default), false) = (&f.default, given.contains_key(&f.id)) {
                        given.insert(f.id.clone(), default.clone());
                    }
                }
                for (form_field, event_field) in &target.r#match {
                    if let Some(v) = data.get(event_field) {
                        given.insert(form_field.clone(), v.clone());
                    }
                }
                let form = rt.form_def(&target.form)?;
                given.retain(|k, _| form.field(k).is_some());
                problems = rt.problems_as_new(&target.form, &given, WEB_ACTOR)?;
            }
        }
        if problems.is_empty() {
            match rt.event(&def.id, data, WEB_ACTOR) {
                Ok(_) => return Ok(Sent::Thanks(def)),
                Err(EngineError::Invalid(p)) => problems = p,
                // Whatever else happened, the visitor hears what everyone hears.
                Err(EngineError::Store(e)) => return Err(EngineError::Store(e)),
                Err(_) => return Ok(Sent::Thanks(def)),
            }
        }
        Ok(Sent::Refused(inputs(rt, &def, lang, &posted, &problems), def))
    })
    .await;
    let t = words(lang);
    match sent {
        Ok(Sent::Thanks(def)) => render(lang, &def, Vec::new(), t["thanks"].as_str(), false, StatusCode::OK),
        Ok(Sent::Refused(inputs, def)) => render(lang, &def, inputs, None, true, StatusCode::UNPROCESSABLE_ENTITY),
        Ok(Sent::Busy) => html(StatusCode::TOO_MANY_REQUESTS, super::escape(t["busy"].as_str().unwrap_or_default())),
        Ok(Sent::Gone) => gone(lang),
        Err(r) => r,
    }
}
