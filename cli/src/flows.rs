//! The commands that move work along by themselves: `event`, `tick`, `tasks`, `task done` and
//! `outbox`. Each turns flags into one library call.

use std::process::ExitCode;

use closeloop::engine::{DeliveryOutcome, Evidence, FireOutcome, OutboxStatus, Run, RunStatus, TimerStatus};
use serde_json::{Map, Value};

use crate::records::{show, Context};
use crate::UserError;

fn run_lines(runs: &[Run]) -> Vec<String> {
    runs.iter()
        .map(|r| {
            let on = r.record.as_deref().map(|id| format!(" on {id}")).unwrap_or_default();
            let status = match r.status {
                RunStatus::Done => "done",
                RunStatus::Skipped => "skipped",
                RunStatus::Failed => "FAILED",
            };
            let mut s = format!("  {status:<7} {}{on} ({})", r.automation, r.trigger);
            if let Some(why) = &r.why {
                s.push_str(&format!("\n          why: {why}"));
            }
            for step in &r.steps {
                match (&step.outcome, &step.error) {
                    (_, Some(e)) => s.push_str(&format!("\n          {}: error: {e}", step.step)),
                    (Some(o), None) => s.push_str(&format!("\n          {}: {o}", step.step)),
                    (None, None) => {}
                }
            }
            s
        })
        .collect()
}

/// `closeloop event NAME --data JSON`.
pub fn event(
    ctx: &Context,
    name: &str,
    data: Map<String, Value>,
    actor: &str,
    key: Option<&str>,
) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let report = rt.event_once(name, data, actor, key).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &report, || {
        let on = report.record.as_deref().map(|r| format!(" for {r}")).unwrap_or_default();
        let again = if report.replayed { " (received before with this key; nothing ran now)" } else { "" };
        let mut lines = vec![format!("event {}{on}: {} automation run(s){again}", report.event, report.runs.len())];
        lines.extend(run_lines(&report.runs));
        lines.join("\n")
    })
}

/// `closeloop tick`: fire what is due at `--now`.
pub fn tick(ctx: &Context) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let report = rt.tick().map_err(|e| ctx.engine_error(e))?;
    show(ctx, &report, || {
        let mut lines = Vec::new();
        for t in &report.timers {
            let on = t.record.as_deref().map(|r| format!(" on {r}")).unwrap_or_default();
            let late = if t.late { format!(" LATE (was due {})", t.due) } else { format!(" (due {})", t.due) };
            let missed = if t.missed > 0 { format!(", {} missed run(s) coalesced", t.missed) } else { String::new() };
            let why = t.why.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
            lines.push(format!("{:<9} {}{on}{late}{missed}{why}", t.outcome, t.automation));
        }
        let fired = report.timers.iter().filter(|t| t.outcome == FireOutcome::Settled(TimerStatus::Fired)).count();
        let late = report.timers.iter().filter(|t| t.late).count();
        let skipped = report.timers.iter().filter(|t| t.outcome == FireOutcome::Settled(TimerStatus::Skipped)).count();
        lines.push(format!(
            "tick at {}: {} timer(s) due; {fired} fired ({late} late), {skipped} skipped",
            report.now,
            report.timers.len()
        ));
        if !report.runs.is_empty() {
            lines.push("runs:".into());
            lines.extend(run_lines(&report.runs));
        }
        lines.join("\n")
    })
}

/// `closeloop tasks [--as MEMBER] [--overdue] [--all]`.
pub fn tasks(ctx: &Context, member: Option<&str>, overdue: bool, all: bool) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let tasks = rt.tasks(member, overdue, all).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &tasks, || {
        let mut lines: Vec<String> = tasks
            .iter()
            .map(|t| {
                let flag = if t.overdue { " OVERDUE" } else { "" };
                format!(
                    "#{:<5} {:<18} {:<12} due {:<12} {:<10} {}{flag}",
                    t.id,
                    t.record,
                    t.status,
                    t.due.as_deref().unwrap_or("-"),
                    t.assignee.as_deref().unwrap_or("-"),
                    t.title
                )
            })
            .collect();
        lines.push(format!("{} task(s)", tasks.len()));
        lines.join("\n")
    })
}

/// `closeloop task done ID --as MEMBER --evidence summary=TEXT --evidence attachment=PATH`.
pub fn task_done(ctx: &Context, id: i64, actor: &str, evidence: &[String]) -> Result<ExitCode, UserError> {
    let mut given = Evidence::default();
    for item in evidence {
        match item.split_once('=') {
            Some(("summary", text)) => given.summary = Some(text.to_string()),
            Some(("attachment", path)) => given.attachment = Some(path.to_string()),
            Some((key, _)) => {
                return Err(UserError(format!(
                    "--evidence {key}=… is not known; give `summary=TEXT` or `attachment=PATH`"
                )))
            }
            // A bare text is the summary: `--evidence "客户满意，下月扩容"`.
            None => given.summary = Some(item.clone()),
        }
    }
    let mut rt = ctx.runtime()?;
    let done = rt.complete_task(id, actor, given).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &done, || {
        let mut lines =
            vec![format!("task #{} {} on {} done by {actor}", done.task.id, done.task.title, done.task.record)];
        lines.extend(run_lines(&done.runs));
        lines.join("\n")
    })
}

/// `closeloop outbox [--status S]`.
pub fn outbox(ctx: &Context, status: Option<&str>) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    // A status closeloop does not know matches no message (as when the filter was text).
    let messages = match status.map(str::parse::<OutboxStatus>) {
        Some(Err(_)) => Vec::new(),
        Some(Ok(status)) => rt.outbox(Some(status)).map_err(|e| ctx.engine_error(e))?,
        None => rt.outbox(None).map_err(|e| ctx.engine_error(e))?,
    };
    show(ctx, &messages, || {
        let mut lines: Vec<String> = messages
            .iter()
            .map(|m| {
                let to = m.address.as_deref().map(|a| format!("{} ({a})", m.recipient)).unwrap_or(m.recipient.clone());
                format!("#{:<5} {:<8} {:<7} {to}: {}", m.id, m.channel, m.status, m.body)
            })
            .collect();
        lines.push(format!("{} message(s)", messages.len()));
        lines.join("\n")
    })
}

/// `closeloop activity FORM ID`: what automations, timers, events and tasks did to a record.
pub fn activity(ctx: &Context, form: &str, id: &str) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let entries = rt.activity(form, id).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &entries, || {
        let mut lines = Vec::new();
        for e in &entries {
            let d = &e.detail;
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            let head = match e.kind.as_str() {
                "automation.run" => format!("{} {} ({})", text("status"), text("automation"), text("trigger")),
                "event.received" => format!("event {} {}", text("event"), d["data"]),
                "task.done" => format!("task #{} {} done", d["task"], text("title")),
                k if k.starts_with("approval.") => {
                    let mut said = k.to_string();
                    for key in ["step", "status", "on_behalf_of", "delegate", "reason", "comment", "why"] {
                        if let Some(v) = d[key].as_str() {
                            said.push_str(&format!(" {key}={v}"));
                        }
                    }
                    said
                }
                _ => format!("{} {}: {}", e.kind, text("automation"), text("why")),
            };
            lines.push(format!("{}  {:<8} {head}", e.at, e.actor));
            if !d["why"].is_null() && e.kind == "automation.run" {
                lines.push(format!("      why: {}", text("why")));
            }
            for step in d["steps"].as_array().into_iter().flatten() {
                let said = step["outcome"].as_str().or(step["error"].as_str()).unwrap_or_default();
                let mark = if step["error"].is_null() { "" } else { "error: " };
                lines.push(format!("      {}: {mark}{said}", step["step"].as_str().unwrap_or_default()));
            }
        }
        lines.push(format!("{} entr(ies)", entries.len()));
        lines.join("\n")
    })
}

fn delivery_lines(report: &closeloop::engine::DeliveryReport) -> Vec<String> {
    let mut lines: Vec<String> = report
        .deliveries
        .iter()
        .map(|d| {
            let detail = match d.outcome {
                DeliveryOutcome::Sent => d.status.clone().unwrap_or_default(),
                DeliveryOutcome::Retry => format!(
                    "{}; again at {}",
                    d.error.as_deref().unwrap_or("failed"),
                    d.next_at.as_deref().unwrap_or("-")
                ),
                _ => d.error.clone().unwrap_or_default(),
            };
            format!("{:<6} #{:<5} {:<8} {} (attempt {}): {detail}", d.outcome, d.id, d.channel, d.to, d.attempts)
        })
        .collect();
    for u in &report.unconfigured {
        lines.push(format!("waiting {u} (`closeloop channels set CHANNEL KEY=VALUE`)"));
    }
    lines
}

/// `closeloop outbox deliver`: one delivery pass.
pub fn deliver(ctx: &Context) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let report = rt.deliver().map_err(|e| ctx.engine_error(e))?;
    show(ctx, &report, || {
        let mut lines = delivery_lines(&report);
        let sent = report.deliveries.iter().filter(|d| d.outcome == DeliveryOutcome::Sent).count();
        lines.push(format!("delivery at {}: {} message(s), {sent} sent", report.now, report.deliveries.len()));
        lines.join("\n")
    })
}

/// `closeloop outbox retry ID`.
pub fn retry(ctx: &Context, id: i64, actor: &str) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let m = rt.retry_message(id, actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &m, || format!("message #{} is {} again; the next delivery pass sends it", m.id, m.status))
}

/// `closeloop outbox attempts ID`.
pub fn attempts(ctx: &Context, id: i64) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let attempts = rt.attempts(id).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &attempts, || {
        let mut lines: Vec<String> = attempts
            .iter()
            .map(|a| {
                let what =
                    if a.ok { a.status.clone().unwrap_or_default() } else { a.error.clone().unwrap_or_default() };
                format!("{} {:<4} {:>6} ms  {what}", a.at, if a.ok { "ok" } else { "fail" }, a.millis)
            })
            .collect();
        lines.push(format!("{} attempt(s)", attempts.len()));
        lines.join("\n")
    })
}

/// `closeloop channels`.
pub fn channels(ctx: &Context) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let list = rt.channels().map_err(|e| ctx.engine_error(e))?;
    show(ctx, &list, || {
        let mut lines = Vec::new();
        for c in &list {
            let missing =
                if c.missing.is_empty() { String::new() } else { format!("  (needs {})", c.missing.join(", ")) };
            lines.push(format!("{} [{}]{missing}", c.channel, c.kind));
            for (k, v) in &c.settings {
                lines.push(format!("  {k} = {v}"));
            }
        }
        lines.join("\n")
    })
}

/// `closeloop channels set NAME key=value…`.
pub fn channels_set(ctx: &Context, name: &str, pairs: &[String], actor: &str) -> Result<ExitCode, UserError> {
    let mut parsed = Vec::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(UserError(format!("`{p}` is not KEY=VALUE (for example url=https://example.com/hook)")));
        };
        parsed.push((k.trim().to_string(), v.to_string()));
    }
    let mut rt = ctx.runtime()?;
    let view = rt.set_channel(name, &parsed, actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &view, || {
        let mut lines = vec![format!("channel {} [{}] set", view.channel, view.kind)];
        for (k, v) in &view.settings {
            lines.push(format!("  {k} = {v}"));
        }
        lines.join("\n")
    })
}

/// Completes on SIGTERM or SIGINT; the handlers are installed when this is called.
fn stop_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `closeloop serve`: the HTTP API over a pool of engine workers, until SIGTERM/SIGINT.
pub fn serve(ctx: &Context, listen: &str, workers: usize, queue: usize, token: &str) -> Result<ExitCode, UserError> {
    if ctx.now.is_some() {
        return Err(UserError("`serve` keeps real time; --now (and CLOSELOOP_NOW) is for one-off commands".into()));
    }
    let db = ctx.db.clone();
    let open = move || {
        let store = closeloop::store::Store::open(&db)?;
        closeloop::Runtime::open(store, std::sync::Arc::new(closeloop::clock::SystemClock))
    };
    let pool = closeloop::http::Pool::start(workers, queue, open).map_err(|e| ctx.engine_error(e))?;
    let pool = std::sync::Arc::new(pool);
    let api = closeloop::http::Api::new(pool.clone(), token).map_err(|e| ctx.engine_error(e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UserError(format!("cannot start the server: {e}")))?;
    runtime.block_on(async {
        let stop = stop_signal();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| UserError(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| UserError(e.to_string()))?;
        let said = if ctx.json() {
            serde_json::json!({"listening": format!("http://{addr}"), "workers": workers.max(1), "queue": queue}).to_string()
        } else {
            format!(
                "closeloop serve: listening on http://{addr} ({} worker(s), queue {queue}): POST /api/events/NAME, GET /healthz",
                workers.max(1)
            )
        };
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{said}");
            let _ = out.flush();
        }
        closeloop::http::serve(listener, closeloop::http::router(api), stop)
            .await
            .map_err(|e| UserError(format!("the server stopped: {e}")))
    })?;
    // The workers finish what they hold, so their databases close cleanly.
    if !pool.close(closeloop::http::SHUTDOWN_GRACE) {
        return Err(UserError("the engine workers did not stop in time; their transactions roll back".into()));
    }
    Ok(ExitCode::SUCCESS)
}

/// `closeloop run`: the scheduler, until SIGTERM/SIGINT.
pub fn run(ctx: &Context) -> Result<ExitCode, UserError> {
    use closeloop::engine::Progress;
    if ctx.now.is_some() {
        return Err(UserError(
            "`run` keeps real time; --now (and CLOSELOOP_NOW) is for one-off commands such as `tick`".into(),
        ));
    }
    let mut rt = ctx.runtime()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UserError(format!("cannot start the scheduler: {e}")))?;
    let json = ctx.json();
    let say = |line: String| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    runtime
        .block_on(async {
            // The handlers are in place before the first pass: a SIGTERM during it waits for it
            // to finish instead of killing the process mid-transaction.
            let stop = stop_signal();
            say(if json { r#"{"started":true}"#.to_string() } else { "closeloop run: scheduler started".to_string() });
            rt.run_scheduler(stop, |p| match p {
                Progress::Fired(t) if json => say(serde_json::to_string(t).unwrap_or_default()),
                Progress::Delivered(d) if json => say(serde_json::to_string(d).unwrap_or_default()),
                Progress::Fired(t) => {
                    for f in &t.timers {
                        let on = f.record.as_deref().map(|r| format!(" on {r}")).unwrap_or_default();
                        let late = if f.late { " (late)" } else { "" };
                        say(format!("{} {} {}{on}{late}", t.now, f.outcome, f.automation));
                    }
                }
                Progress::Delivered(d) => {
                    for line in delivery_lines(d) {
                        say(format!("{} {line}", d.now));
                    }
                    for dead in d.deliveries.iter().filter(|x| x.outcome == DeliveryOutcome::Dead) {
                        eprintln!(
                            "ALERT: message #{} on {} is a dead letter: {}; replay it with `closeloop outbox retry {}`",
                            dead.id,
                            dead.channel,
                            dead.error.as_deref().unwrap_or("failed"),
                            dead.id
                        );
                    }
                }
                Progress::Sleeping(_) => {}
                Progress::Trouble(e) => eprintln!("closeloop run: a pass failed, trying again in 5 s: {e}"),
                Progress::Stopped if json => say(r#"{"stopped":true}"#.to_string()),
                Progress::Stopped => say("closeloop run: stopped cleanly".to_string()),
            })
            .await
        })
        .map_err(|e| ctx.engine_error(e))?;
    Ok(ExitCode::SUCCESS)
}

/// `closeloop approvals [--as MEMBER]`.
pub fn approvals(ctx: &Context, member: Option<&str>) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let waiting = rt.approvals(member).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &waiting, || {
        let mut lines: Vec<String> = waiting
            .iter()
            .map(|w| {
                let mut line = format!(
                    "{:<18} {} / {}: {} of {} approvals; approvers {}{}{}",
                    w.record,
                    w.chain,
                    w.step,
                    w.approved_by.len(),
                    w.needed,
                    w.approvers.join(", "),
                    w.due_at.as_deref().map(|d| format!("; due {d}")).unwrap_or_default(),
                    w.on_behalf_of.as_deref().map(|a| format!("; you decide for {a}, who is away")).unwrap_or_default()
                );
                for s in &w.show {
                    line.push_str(&format!("\n    {}: {}", s.label, if s.text.is_empty() { "—" } else { &s.text }));
                }
                line
            })
            .collect();
        lines.push(format!("{} step(s) waiting", waiting.len()));
        lines.join("\n")
    })
}

/// `closeloop approve|reject|recall FORM ID --as MEMBER`, and `approve --override REASON`
/// (break-glass).
pub fn decide(
    ctx: &Context,
    form: &str,
    id: &str,
    actor: &str,
    decision: &str,
    comment: Option<&str>,
    override_reason: Option<&str>,
) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let view = match (decision, override_reason) {
        ("approve", Some(reason)) => rt.approve_override(form, id, actor, reason, comment),
        ("approve", None) => rt.approve(form, id, actor, comment),
        ("reject", _) => rt.reject(form, id, actor, comment.unwrap_or_default()),
        _ => rt.recall(form, id, actor),
    }
    .map_err(|e| ctx.engine_error(e))?;
    show(ctx, &view, || {
        let mut lines = vec![format!("{id}: {} {} (version {})", view.chain, view.status, view.version)];
        for s in &view.steps {
            let note = s["note"].as_str().map(|n| format!(" — {n}")).unwrap_or_default();
            lines.push(format!(
                "  {:<14} {:<9}{note}",
                s["step"].as_str().unwrap_or(""),
                s["status"].as_str().unwrap_or("")
            ));
        }
        lines.join("\n")
    })
}

/// `closeloop sign-link FORM ID`: the URL, and its QR code as SVG and PNG (and in the terminal).
pub fn sign_link(
    ctx: &Context,
    form: &str,
    id: &str,
    base: &str,
    qr_dir: &std::path::Path,
    terminal: bool,
    actor: &str,
) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let link = rt.sign_link(form, id, base, actor).map_err(|e| ctx.engine_error(e))?;
    let svg = closeloop::qr::svg(&link.url).map_err(|e| UserError(e.to_string()))?;
    let png = closeloop::qr::png(&link.url, 8).map_err(|e| UserError(e.to_string()))?;
    std::fs::create_dir_all(qr_dir).map_err(|e| UserError(format!("cannot create {}: {e}", qr_dir.display())))?;
    let (svg_path, png_path) = (qr_dir.join(format!("{id}-sign.svg")), qr_dir.join(format!("{id}-sign.png")));
    std::fs::write(&svg_path, svg).map_err(|e| UserError(format!("cannot write {}: {e}", svg_path.display())))?;
    std::fs::write(&png_path, png).map_err(|e| UserError(format!("cannot write {}: {e}", png_path.display())))?;
    let art = if terminal {
        closeloop::qr::terminal(&link.url).map_err(|e| UserError(e.to_string()))?
    } else {
        String::new()
    };
    let value = serde_json::json!({"link": link, "qr": {"svg": svg_path, "png": png_path}});
    show(ctx, &value, || {
        let mut text = format!(
            "{}\n  signs {} version {} (hash {}…), once, until {}\n  QR code: {} and {}",
            link.url,
            link.record,
            link.version,
            link.version_hash.get(..12).unwrap_or(&link.version_hash),
            link.expires_at,
            svg_path.display(),
            png_path.display()
        );
        if terminal {
            text.push('\n');
            text.push_str(&art);
        }
        text
    })
}

/// `closeloop sign TOKEN --name NAME`.
pub fn sign(ctx: &Context, token: &str, name: &str) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let signed = rt.sign(token, name).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &signed, || {
        format!(
            "{} version {} signed by {} at {} (hash {})",
            signed.record, signed.version, signed.signer, signed.at, signed.version_hash
        )
    })
}

/// Where CJK fonts usually are (Debian's fonts-wqy-microhei, fonts-noto-cjk, fonts-droid-fallback).
const CJK_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
];

/// `closeloop pdf FORM ID --out FILE`.
pub fn pdf(
    ctx: &Context,
    form: &str,
    id: &str,
    out: &std::path::Path,
    font: Option<&std::path::Path>,
    index: u32,
) -> Result<ExitCode, UserError> {
    let path = match font {
        Some(p) => p.to_path_buf(),
        None => CJK_FONTS.iter().map(std::path::PathBuf::from).find(|p| p.is_file()).ok_or_else(|| {
            UserError(
                "no font that covers Chinese was found: install one (`apt-get install fonts-wqy-microhei`) or pass --font PATH".into(),
            )
        })?,
    };
    let bytes = std::fs::read(&path).map_err(|e| UserError(format!("cannot read the font {}: {e}", path.display())))?;
    let rt = ctx.runtime()?;
    let pdf = rt.record_pdf(form, id, bytes, index).map_err(|e| ctx.engine_error(e))?;
    std::fs::write(out, &pdf).map_err(|e| UserError(format!("cannot write {}: {e}", out.display())))?;
    let report = serde_json::json!({"record": id, "out": out, "bytes": pdf.len(), "font": path});
    show(ctx, &report, || format!("wrote {} ({} bytes, font {})", out.display(), pdf.len(), path.display()))
}
