//! `GET /api/reports/penetration`: the report `closeloop report penetration` prints, for a
//! dashboard or a spreadsheet: `?from=2026-11-01&to=2026-11-30` (both required), optional
//! `metric=` (repeatable or comma-separated), `by=member,region`, `instances=true`,
//! `format=json|csv|html` (default json) and `lang=zh|en` for the page.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{answer_error, busy, problem, unauthorized, Api, Busy, ANSWER_TIME};
use crate::engine::{to_csv, to_html, ReportQuery};
use crate::model::{Dimension, Lang};

/// What the page asked for, in what form.
struct Asked {
    query: ReportQuery,
    format: &'static str,
    lang: Lang,
}

/// `%XX` and `+` undone, for the few characters a query here may carry.
pub(super) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(text.get(i + 1..i + 3).unwrap_or(""), 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parameter that cannot be used, and why.
struct Bad {
    parameter: String,
    message: String,
}

fn bad(parameter: &str, message: String) -> Bad {
    Bad { parameter: parameter.to_string(), message }
}

fn asked(raw: Option<&str>) -> Result<Asked, Bad> {
    let (mut from, mut to, mut metrics, mut by) = (None, None, Vec::new(), Vec::new());
    let (mut format, mut lang, mut instances) = ("json", Lang::Zh, false);
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value);
        let list = || value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        match key {
            "from" | "to" => {
                let date = value
                    .parse::<jiff::civil::Date>()
                    .map_err(|_| bad(key, format!("`{key}` is \"{value}\", not a date; write it as 2026-11-01")))?;
                if key == "from" {
                    from = Some(date);
                } else {
                    to = Some(date);
                }
            }
            "metric" => metrics.extend(list()),
            "by" => {
                for d in list() {
                    by.push(serde_json::from_value::<Dimension>(json!(d)).map_err(|_| {
                        bad("by", format!("`by` \"{d}\" is not a breakdown; use member, region, team, week or month"))
                    })?);
                }
            }
            "format" => {
                format = match value.as_str() {
                    "json" => "json",
                    "csv" => "csv",
                    "html" => "html",
                    _ => return Err(bad("format", format!("`format` \"{value}\" is not json, csv or html"))),
                }
            }
            "lang" => lang = if value == "en" { Lang::En } else { Lang::Zh },
            "instances" => instances = value == "true" || value == "1",
            other => return Err(bad(other, format!("`{other}` is not a parameter of this report"))),
        }
    }
    let from = from.ok_or_else(|| bad("from", "`from` is required: the period's first day, 2026-11-01".into()))?;
    let to = to.ok_or_else(|| bad("to", "`to` is required: the period's last day, 2026-11-30".into()))?;
    Ok(Asked { query: ReportQuery { metrics, from, to, by, instances }, format, lang })
}

/// `GET /api/reports/penetration`.
pub(super) async fn penetration(State(api): State<Api>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    if !api.allows(&headers) {
        return unauthorized();
    }
    let Ok(_admitted) = api.admitted.clone().try_acquire_owned() else { return busy() };
    let asked = match asked(raw.as_deref()) {
        Ok(a) => a,
        Err(Bad { parameter, message }) => {
            return problem(StatusCode::UNPROCESSABLE_ENTITY, message, vec![json!({"parameter": parameter})])
        }
    };
    let query = asked.query.clone();
    // Apps installed since the server started count too.
    let answer = match api.pool.submit(move |rt| rt.refresh().and_then(|()| rt.penetration(&query))) {
        Ok(answer) => answer,
        Err(Busy) => return busy(),
    };
    let report = match tokio::time::timeout(ANSWER_TIME, answer).await {
        Err(_) => {
            return problem(
                StatusCode::GATEWAY_TIMEOUT,
                "the report took too long; ask for a shorter period",
                Vec::new(),
            )
        }
        Ok(Err(_)) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the engine worker failed while handling the request",
                Vec::new(),
            )
        }
        Ok(Ok(Err(e))) => return answer_error(e),
        Ok(Ok(Ok(report))) => report,
    };
    let (body, kind) = match asked.format {
        "csv" => (to_csv(&report), "text/csv; charset=utf-8"),
        "html" => (to_html(&report, asked.lang), "text/html; charset=utf-8"),
        _ => return (StatusCode::OK, Json(json!(report))).into_response(),
    };
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}
