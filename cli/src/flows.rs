//! The commands that move work along by themselves: `tick`, `run`, `event`, `tasks`, `task done`,
//! `board`, `activity`, `outbox` and `channels`. Each turns flags into one library call.

use std::process::ExitCode;

use clap::Subcommand;
use closeloop::{DeliveryOutcome, Evidence, FireOutcome, OutboxStatus, Run, RunStatus, TimerStatus};
use serde_json::{Map, Value};

use crate::context::{data, show};
use crate::render::local;
use crate::{Context, UserError};

/// The automation commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// What automations, timers, events and tasks did to a record, step by step.
    Activity {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// As this member may see it.
        #[arg(long = "as")]
        member: Option<String>,
    },
    /// List a board: the records flagged for attention, why, and since when.
    Board {
        /// The board's id (`supervisor`, `director`).
        name: String,
        /// As this member sees it: their roles and the board's scope apply.
        #[arg(long = "as")]
        member: Option<String>,
    },
    /// Receive an external event (`payment.received`) and run its automations.
    Event {
        /// The event's id.
        name: String,
        /// Its data as JSON, or @file.json.
        #[arg(long)]
        data: String,
        /// Who sends it.
        #[arg(long = "as", default_value = "system")]
        actor: String,
        /// The sender's idempotency key: the same event sent again with it is received once.
        #[arg(long)]
        key: Option<String>,
    },
    /// Fire every timer due at --now (or the system clock) and say what each did. Run it from
    /// cron every minute, or use `closeloop run`; several may run against one database.
    Tick,
    /// SOP tasks: open ones by default, soonest due first.
    Tasks {
        /// Only this member's.
        #[arg(long = "as")]
        member: Option<String>,
        /// Only those past their due time.
        #[arg(long)]
        overdue: bool,
        /// Done and cancelled ones too.
        #[arg(long)]
        all: bool,
    },
    /// Work on one SOP task.
    Task {
        #[command(subcommand)]
        what: TaskWhat,
    },
    /// Messages written by automations: list them, deliver them once, or replay a dead letter.
    Outbox {
        #[command(subcommand)]
        what: Option<OutboxWhat>,
        /// Only messages with this status (`pending`, `sending`, `sent`, `dead`).
        #[arg(long)]
        status: Option<String>,
    },
    /// Where each channel sends: list (secrets masked), or `channels set NAME key=value…`.
    Channels {
        #[command(subcommand)]
        what: Option<ChannelsWhat>,
    },
    /// The scheduler: fire timers and deliver the outbox until SIGINT/SIGTERM.
    Run,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OutboxWhat {
    /// One delivery pass: send everything due now (for cron-style deployments).
    Deliver,
    /// Put a dead letter back in line; the next pass sends it.
    Retry {
        /// The message's id.
        id: i64,
        /// Who replays it.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// A message's delivery attempts.
    Attempts {
        /// The message's id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChannelsWhat {
    /// Set a channel's settings: `url=…`, `secret=…`, `timeout_ms=…`; for email `host=…`,
    /// `port=…`, `tls=none|starttls|tls`, `username=…`, `password=…`, `from=…`. `key=` removes one.
    Set {
        /// The channel's id (from the app).
        name: String,
        /// key=value pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Who changes it.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TaskWhat {
    /// Complete a task with its evidence; runs the task's effects (the health score).
    Done {
        /// The task's number (see `closeloop tasks`).
        id: i64,
        /// The member who did it.
        #[arg(long = "as")]
        actor: String,
        /// `summary=TEXT` or `attachment=PATH` (repeatable); a bare text is the summary.
        #[arg(long)]
        evidence: Vec<String>,
    },
}

/// Runs one automation command.
pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    match cmd {
        Command::Activity { form, id, member } => activity(ctx, form, id, member.as_deref()),
        Command::Board { name, member } => board(ctx, name, member.as_deref()),
        Command::Event { name, data: given, actor, key } => {
            data(Some(given)).and_then(|d| event(ctx, name, d, actor, key.as_deref()))
        }
        Command::Tick => tick(ctx),
        Command::Tasks { member, overdue, all } => tasks(ctx, member.as_deref(), *overdue, *all),
        Command::Task { what: TaskWhat::Done { id, actor, evidence } } => task_done(ctx, *id, actor, evidence),
        Command::Outbox { what: None, status } => outbox(ctx, status.as_deref()),
        Command::Outbox { what: Some(OutboxWhat::Deliver), .. } => deliver(ctx),
        Command::Outbox { what: Some(OutboxWhat::Retry { id, actor }), .. } => retry(ctx, *id, actor),
        Command::Outbox { what: Some(OutboxWhat::Attempts { id }), .. } => attempts(ctx, *id),
        Command::Channels { what: None } => channels(ctx),
        Command::Channels { what: Some(ChannelsWhat::Set { name, pairs, actor }) } => {
            channels_set(ctx, name, pairs, actor)
        }
        Command::Run => scheduler(ctx),
    }
}

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
            let due = local(&t.due, &rt.zone_of(t.form.as_deref()));
            let late = if t.late { format!(" LATE (was due {due})") } else { format!(" (due {due})") };
            let missed = if t.missed > 0 { format!(", {} missed run(s) coalesced", t.missed) } else { String::new() };
            let why = t.why.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
            lines.push(format!("{:<9} {}{on}{late}{missed}{why}", t.outcome, t.automation));
        }
        let fired = report.timers.iter().filter(|t| t.outcome == FireOutcome::Settled(TimerStatus::Fired)).count();
        let late = report.timers.iter().filter(|t| t.late).count();
        let skipped = report.timers.iter().filter(|t| t.outcome == FireOutcome::Settled(TimerStatus::Skipped)).count();
        lines.push(format!(
            "tick at {}: {} timer(s) due; {fired} fired ({late} late), {skipped} skipped",
            local(&report.now, &rt.zone_of(None)),
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
                    "#{:<5} {:<18} {:<12} due {:<23} {:<10} {}{flag}",
                    t.id,
                    t.record,
                    t.status,
                    t.due.as_deref().map_or("-".into(), |d| local(d, &rt.zone_of(Some(&t.form)))),
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
pub fn activity(ctx: &Context, form: &str, id: &str, member: Option<&str>) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let entries = match member {
        Some(m) => rt.activity_as(form, id, m),
        None => rt.activity(form, id),
    }
    .map_err(|e| ctx.engine_error(e))?;
    let zone = rt.zone_of(Some(form));
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
            lines.push(format!("{}  {:<8} {head}", local(&e.at, &zone), e.actor));
            if !d["why"].is_null() && e.kind == "automation.run" {
                lines.push(format!("      why: {}", text("why")));
            }
            for step in d["steps"].as_array().into_iter().flatten() {
                let said = step["outcome"].as_str().or(step["error"].as_str()).unwrap_or_default();
                let mark = if step["error"].is_null() { "" } else { "error: " };
                // A script's printed lines follow its outcome, indented under it.
                let said = said.replace('\n', "\n        ");
                lines.push(format!("      {}: {mark}{said}", step["step"].as_str().unwrap_or_default()));
            }
        }
        lines.push(format!("{} entr(ies)", entries.len()));
        lines.join("\n")
    })
}

fn delivery_lines(report: &closeloop::DeliveryReport, zone: &jiff::tz::TimeZone) -> Vec<String> {
    let mut lines: Vec<String> = report
        .deliveries
        .iter()
        .map(|d| {
            let detail = match d.outcome {
                DeliveryOutcome::Sent => d.status.clone().unwrap_or_default(),
                DeliveryOutcome::Retry => format!(
                    "{}; again at {}",
                    d.error.as_deref().unwrap_or("failed"),
                    d.next_at.as_deref().map_or("-".into(), |at| local(at, zone))
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
        let zone = rt.zone_of(None);
        let mut lines = delivery_lines(&report, &zone);
        let sent = report.deliveries.iter().filter(|d| d.outcome == DeliveryOutcome::Sent).count();
        let at = local(&report.now, &zone);
        lines.push(format!("delivery at {at}: {} message(s), {sent} sent", report.deliveries.len()));
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
    let zone = rt.zone_of(None);
    show(ctx, &attempts, || {
        let mut lines: Vec<String> = attempts
            .iter()
            .map(|a| {
                let what =
                    if a.ok { a.status.clone().unwrap_or_default() } else { a.error.clone().unwrap_or_default() };
                format!("{} {:<4} {:>6} ms  {what}", local(&a.at, &zone), if a.ok { "ok" } else { "fail" }, a.millis)
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

/// One flagged record: its id, how long it has waited and since when, and why.
fn board_line(i: &closeloop::BoardItem, since: &str) -> String {
    format!("{:<18} {:>5}h since {since}  {}", i.record, i.age_hours, i.reason)
}

/// `closeloop board NAME [--as MEMBER]`.
pub fn board(ctx: &Context, name: &str, member: Option<&str>) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let items = match member {
        Some(m) => rt.board_as(name, m),
        None => rt.board(name),
    }
    .map_err(|e| ctx.engine_error(e))?;
    show(ctx, &items, || {
        let mut s: Vec<String> =
            items.iter().map(|i| board_line(i, &local(&i.since, &rt.zone_of(Some(&i.form))))).collect();
        s.push(format!("{} record(s) on board {name}", items.len()));
        s.join("\n")
    })
}

/// Prints what the scheduler does, as `closeloop run` (and `serve`, which runs it too) shows it.
pub(crate) fn say_progress(json: bool, zone: jiff::tz::TimeZone) -> impl FnMut(closeloop::Progress<'_>) {
    use closeloop::Progress;
    let say = |line: String| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    move |p| match p {
        Progress::Fired(t) if json => say(serde_json::to_string(t).unwrap_or_default()),
        Progress::Delivered(d) if json => say(serde_json::to_string(d).unwrap_or_default()),
        Progress::Fired(t) => {
            for f in &t.timers {
                let on = f.record.as_deref().map(|r| format!(" on {r}")).unwrap_or_default();
                let late = if f.late { " (late)" } else { "" };
                say(format!("{} {} {}{on}{late}", local(&t.now, &zone), f.outcome, f.automation));
            }
        }
        Progress::Delivered(d) => {
            for line in delivery_lines(d, &zone) {
                say(format!("{} {line}", local(&d.now, &zone)));
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
        Progress::Trouble(e) => eprintln!("closeloop: a scheduler pass failed, trying again in 5 s: {e}"),
        Progress::Warning(w) => eprintln!("closeloop: WARNING: {w}"),
        Progress::Stopped if json => say(r#"{"stopped":true}"#.to_string()),
        Progress::Stopped => say("closeloop: scheduler stopped cleanly".to_string()),
    }
}

/// `closeloop run`: the scheduler, until SIGTERM/SIGINT.
fn scheduler(ctx: &Context) -> Result<ExitCode, UserError> {
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
    runtime
        .block_on(async {
            // The handlers are in place before the first pass: a SIGTERM during it waits for it
            // to finish instead of killing the process mid-transaction.
            let stop = crate::serve::stop_signal();
            println!("{}", if json { r#"{"started":true}"# } else { "closeloop run: scheduler started" });
            let zone = rt.zone_of(None);
            rt.run_scheduler(stop, say_progress(json, zone)).await
        })
        .map_err(|e| ctx.engine_error(e))?;
    Ok(ExitCode::SUCCESS)
}
