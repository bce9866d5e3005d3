//! Signing in and out (password, one-time link), the member, the directory and the apps.

use super::*;

/// `POST /api/v1/sign-in` `{"member": "m_li", "password": "…"}`: sets the session cookie and
/// answers the CSRF token writes must carry.
pub(super) async fn sign_in(State(api): State<Api>, addr: Option<Extension<ClientAddr>>, body: Body) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (member, password) = (text("member"), text("password"));
    let address = client(addr);
    session_answer(&api, move |rt| rt.sign_in(&member, &password, &address)).await
}

/// `POST /api/v1/sign-in-link` `{"member": "m_li"}`: 202 whoever asks.
pub(super) async fn sign_in_link(State(api): State<Api>, body: Body) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let member = data.get("member").and_then(Value::as_str).unwrap_or_default().to_string();
    let base = api.public_url.to_string();
    let answer = match api.pool.submit(move |rt| rt.send_sign_in_link(&member, &base)) {
        Ok(a) => a,
        Err(Busy) => return engine_problem(busy()),
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Ok(Ok(Ok(()))) => (
            StatusCode::ACCEPTED,
            Json(json!({"sent": "if this member may sign in and has a phone or email, a link is on its way"})),
        )
            .into_response(),
        Ok(Ok(Err(e))) => engine_problem(e),
        _ => problem(StatusCode::INTERNAL_SERVER_ERROR, "the engine did not answer", Vec::new()),
    }
}

/// `POST /api/v1/sign-in-link/redeem` `{"token": "…"}`: the link's session, once.
pub(super) async fn redeem_link(State(api): State<Api>, addr: Option<Extension<ClientAddr>>, body: Body) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let token = data.get("token").and_then(Value::as_str).unwrap_or_default().to_string();
    let address = client(addr);
    session_answer(&api, move |rt| rt.redeem_sign_in_link(&token, &address)).await
}

pub(super) fn client(addr: Option<Extension<ClientAddr>>) -> String {
    addr.map(|a| a.0 .0.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

/// Runs a sign-in on a worker and answers its session: the cookie and the CSRF token.
pub(super) async fn session_answer(
    api: &Api,
    job: impl FnOnce(&mut Runtime) -> Result<crate::engine::NewSession, EngineError> + Send + 'static,
) -> Response {
    let secure = api.secure_cookies;
    let answer = match api.pool.submit(job) {
        Ok(a) => a,
        Err(Busy) => return engine_problem(busy()),
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Ok(Ok(Ok(session))) => {
            let mut r = Json(json!({"member": session.member, "csrf": session.csrf, "ends_at": session.ends_at}))
                .into_response();
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax{}",
                session.id,
                if secure { "; Secure" } else { "" }
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(Ok(Err(e))) => engine_problem(e),
        _ => problem(StatusCode::INTERNAL_SERVER_ERROR, "the engine did not answer", Vec::new()),
    }
}

/// `POST /api/v1/sign-out`: ends this session.
pub(super) async fn sign_out(State(api): State<Api>, headers: HeaderMap) -> Response {
    let id = cookie(&headers, SESSION_COOKIE);
    let mut r = as_member(&api, &headers, Method::POST, move |rt, _| {
        if let Some(id) = id {
            rt.sign_out(&id)?;
        }
        Ok((StatusCode::OK, json!({"signed_out": true}), None))
    })
    .await;
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("closeloop_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    r
}

/// `POST /api/v1/sign-out-everywhere`: ends every session of the member.
pub(super) async fn sign_out_everywhere(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, Method::POST, |rt, member| {
        let n = rt.sign_out_everywhere(member, member)?;
        Ok((StatusCode::OK, json!({"sessions_ended": n}), None))
    })
    .await
}

/// `GET /api/v1/me`.
pub(super) async fn me(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, Method::GET, |rt, member| {
        let m = rt.member(member)?;
        Ok((StatusCode::OK, json!({"id": m.id, "name": m.name, "roles": m.roles, "region": m.region}), None))
    })
    .await
}

/// `GET /api/v1/members` (ops only).
pub(super) async fn members(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, Method::GET, |rt, member| {
        let all: Vec<Value> = rt
            .members_as(member)?
            .into_iter()
            .map(|m| {
                json!({"id": m.id, "name": m.name, "roles": m.roles, "region": m.region, "manager": m.manager,
                    "active": m.active, "capacity": m.capacity, "email": m.email, "phone": m.phone,
                    "attributes": m.extra, "away_until": m.away_until, "delegate_to": m.delegate_to})
            })
            .collect();
        Ok((StatusCode::OK, Value::Array(all), None))
    })
    .await
}

/// `GET /api/v1/apps`.
pub(super) async fn apps(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, Method::GET, |rt, _| Ok((StatusCode::OK, rt.app_index(), None))).await
}
