//! Records: form definitions, lists with a cursor, get, create, `PATCH` with `If-Match`,
//! actions, history and activity, each as the member may see and do them.

use super::*;

/// `GET /api/v1/forms/{form}`: what a client needs to render the form, as this member sees it.
pub(super) async fn form_definition(State(api): State<Api>, headers: HeaderMap, Path(form): Path<String>) -> Response {
    as_member(&api, &headers, Method::GET, move |rt, member| Ok((StatusCode::OK, rt.form_as(&form, member)?, None)))
        .await
}

/// `GET /api/v1/records/{form}?state=&owner=&sort=&order=desc&limit=&cursor=&FIELD=VALUE`.
pub(super) async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(form): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = match list_query(raw.as_deref()) {
        Ok(q) => q,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why, Vec::new()),
    };
    as_member(&api, &headers, Method::GET, move |rt, member| {
        let (items, next) = rt.page_as(&form, &query, member)?;
        Ok((StatusCode::OK, json!({"items": items, "next_cursor": next.map(|n| n.to_string())}), None))
    })
    .await
}

/// A list's query string: `state`, `owner`, `sort`, `order`, `limit`, `cursor`, and any other
/// key a field to equal.
pub(super) fn list_query(raw: Option<&str>) -> Result<ListQuery, String> {
    let mut query = ListQuery { limit: Some(50), ..ListQuery::default() };
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = crate::http::reports::decode(value);
        let number =
            |what: &str| value.parse::<u64>().map_err(|_| format!("`{what}` is a whole number, not \"{value}\""));
        match key {
            "state" => query.state = Some(value),
            "owner" => query.owner = Some(value),
            "sort" => query.sort = Some(value),
            "order" => query.order = if value == "desc" { SortOrder::Desc } else { SortOrder::Asc },
            "limit" => query.limit = Some(number("limit")?.clamp(1, MAX_PAGE)),
            "cursor" => query.offset = number("cursor")?,
            field => query.filters.push((crate::http::reports::decode(field), Value::String(value))),
        }
    }
    Ok(query)
}

/// `POST /api/v1/records/{form}`: a new record, as the member.
pub(super) async fn create(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(form): Path<String>,
    body: Body,
) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    as_member(&api, &headers, Method::POST, move |rt, member| {
        let created = rt.submit(&form, data, member)?;
        // Answered as the member may read it (its automations may have moved it on).
        let shown = rt.get_as(&form, &created.id, member).unwrap_or(created);
        let (_, body, version) = record_json(&shown);
        Ok((StatusCode::CREATED, body, version))
    })
    .await
}

/// `GET /api/v1/records/{form}/{id}`.
pub(super) async fn read(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id)): Path<(String, String)>,
) -> Response {
    as_member(&api, &headers, Method::GET, move |rt, member| Ok(record_json(&rt.get_as(&form, &id, member)?))).await
}

/// `PATCH /api/v1/records/{form}/{id}` with `If-Match: "VERSION"`.
pub(super) async fn patch(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id)): Path<(String, String)>,
    body: Body,
) -> Response {
    let Some(version) = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().trim_start_matches("W/").trim_matches('"').parse::<i64>().ok())
    else {
        return problem(
            StatusCode::PRECONDITION_REQUIRED,
            "send `If-Match` with the ETag of the version you read, so a change made meanwhile is not overwritten",
            Vec::new(),
        );
    };
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    as_member(&api, &headers, Method::PATCH, move |rt, member| {
        rt.get_as(&form, &id, member)?;
        rt.update_from(&form, &id, data, member, Some(version))?;
        Ok(record_json(&rt.get_as(&form, &id, member)?))
    })
    .await
}

/// `POST /api/v1/records/{form}/{id}/actions/{action}` with the fields the action needs.
pub(super) async fn act(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id, action)): Path<(String, String, String)>,
    body: Body,
) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    as_member(&api, &headers, Method::POST, move |rt, member| {
        rt.get_as(&form, &id, member)?;
        rt.act(&form, &id, &action, member, data)?;
        Ok(record_json(&rt.get_as(&form, &id, member)?))
    })
    .await
}

/// `GET /api/v1/records/{form}/{id}/history`.
pub(super) async fn history(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id)): Path<(String, String)>,
) -> Response {
    as_member(&api, &headers, Method::GET, move |rt, member| {
        Ok((StatusCode::OK, json!(rt.history_as(&form, &id, member)?), None))
    })
    .await
}

/// `GET /api/v1/records/{form}/{id}/activity`.
pub(super) async fn activity(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id)): Path<(String, String)>,
) -> Response {
    as_member(&api, &headers, Method::GET, move |rt, member| {
        Ok((StatusCode::OK, json!(rt.activity_as(&form, &id, member)?), None))
    })
    .await
}
