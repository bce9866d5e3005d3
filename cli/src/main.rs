//! The `closeloop` command: turns flags into library calls and results into text or JSON.
//! No product logic lives here.

mod bench;
mod flows;
mod records;
mod render;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use closeloop::{Loaded, Loader};

/// closeloop: forms, rules, timers and approvals that close the loops sales teams lose deals in.
#[derive(Debug, Parser)]
#[command(name = "closeloop", version, about, max_term_width = 100)]
struct Args {
    /// The database file.
    #[arg(long, global = true, env = "CLOSELOOP_DB", default_value = "./closeloop.db")]
    db: PathBuf,
    /// The time to act at, RFC 3339 (e.g. 2026-11-26T09:00:00+08:00); default: the system clock.
    #[arg(long, global = true, env = "CLOSELOOP_NOW")]
    now: Option<String>,
    /// Output for people or for programs.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check apps: an app folder or an app.yaml, several at once. Exit 1 when any has an error.
    Validate {
        /// App folders or app.yaml files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the app language.
    Schema,
    /// List the bundled app templates.
    Templates,
    /// Copy a bundled template into a new folder, to edit.
    Init {
        /// The folder to create.
        dir: PathBuf,
        /// The template's name (see `closeloop templates`).
        #[arg(long)]
        template: String,
    },
    /// Load every bundled template, summarise it, and walk through the lead loop in memory.
    Demo,
    /// Install an app (a folder, an app.yaml, or a bundled template's name) into the database.
    Install {
        /// App folder, app.yaml, or template name.
        target: String,
        /// Install even if stored records would be orphaned (audited).
        #[arg(long)]
        force: bool,
        /// Who installs.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// The member directory: list it, or `members import FILE.csv`.
    Members {
        #[command(subcommand)]
        what: Option<MembersWhat>,
    },
    /// Create a record.
    Submit {
        /// The form.
        form: String,
        /// The fields as JSON, or @file.json (one object, or one object per line: a record each).
        #[arg(long)]
        data: String,
        /// The member doing it.
        #[arg(long = "as")]
        actor: String,
    },
    /// Change fields of a record (a partial patch; null clears a field).
    Update {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The changed fields as JSON, or @file.json.
        #[arg(long)]
        data: String,
        /// The member doing it.
        #[arg(long = "as")]
        actor: String,
    },
    /// Perform an action on a record (a state transition such as `contact`).
    Act {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The action.
        action: String,
        /// The member doing it.
        #[arg(long = "as")]
        actor: String,
        /// Fields the action needs, as JSON or @file.json.
        #[arg(long)]
        data: Option<String>,
    },
    /// Show a record.
    Get {
        /// The form.
        form: String,
        /// The record id.
        id: String,
    },
    /// List records (all, unless --limit/--offset).
    List {
        /// The form.
        form: String,
        /// Only records whose FIELD equals VALUE (repeatable).
        #[arg(long = "where", value_name = "FIELD=VALUE")]
        filters: Vec<String>,
        /// Only records in this state.
        #[arg(long)]
        state: Option<String>,
        /// Only records owned by this member.
        #[arg(long)]
        owner: Option<String>,
        /// Sort by a field, `created_at` (default), `updated_at` or `id`.
        #[arg(long)]
        sort: Option<String>,
        /// Largest first.
        #[arg(long)]
        desc: bool,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
        /// Skip this many.
        #[arg(long)]
        offset: Option<u64>,
    },
    /// Every version of a record with what changed.
    History {
        /// The form.
        form: String,
        /// The record id.
        id: String,
    },
    /// What automations, timers, events and tasks did to a record, step by step.
    Activity {
        /// The form.
        form: String,
        /// The record id.
        id: String,
    },
    /// Import a CSV file (UTF-8 or GB18030; headers are field ids or labels).
    Import {
        /// The form.
        form: String,
        /// The CSV file.
        file: PathBuf,
        /// Import the good rows; write the bad ones with their errors to a rejects file.
        #[arg(long)]
        skip_invalid: bool,
        /// Where to write rejected rows (default FILE.rejects.csv).
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// Who imports.
        #[arg(long = "as", default_value = "import")]
        actor: String,
    },
    /// Export a form's records as CSV (stdout unless --out).
    Export {
        /// The form.
        form: String,
        /// The file to write.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        what: AuditWhat,
    },
    /// Recompute a score for a record (the customer's health) and store it with its reasons.
    Score {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The score's id.
        score: String,
        /// Who asks.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// Run a grade on a record (the quote's risk) and store the level and summary.
    Grade {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The grade's id.
        grade: String,
        /// Who asks.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// List a board: the records flagged for attention, why, and since when.
    Board {
        /// The board's id (`supervisor`, `director`).
        name: String,
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
    /// The HTTP API (POST /api/events/NAME, GET /healthz) until SIGINT/SIGTERM.
    Serve {
        /// Where to listen (port 0: any free port, printed when ready).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Engine workers (each with its own database connection).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Requests that may wait for a worker; past that they get 503 and Retry-After.
        #[arg(long, default_value_t = 64)]
        queue: usize,
        /// The bearer token clients must send.
        #[arg(long, env = "CLOSELOOP_API_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Approval steps waiting for someone (for one member with --as).
    Approvals {
        /// Only what waits for this member.
        #[arg(long = "as")]
        member: Option<String>,
    },
    /// Approve the step in hand of a record in approval.
    Approve {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The approver.
        #[arg(long = "as")]
        actor: String,
        /// A comment for the trail.
        #[arg(long)]
        comment: Option<String>,
        /// Break-glass, for a member of the chain's override_roles: push the step through,
        /// setting aside the separation of duties, with this reason (audited).
        #[arg(long = "override", value_name = "REASON")]
        override_reason: Option<String>,
    },
    /// Reject a record in approval, with a comment saying why.
    Reject {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The approver.
        #[arg(long = "as")]
        actor: String,
        /// Why.
        #[arg(long)]
        comment: String,
    },
    /// Make a single-use link for the customer to sign an approved record (prints the URL).
    SignLink {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// Where the signing page is served.
        #[arg(long, env = "CLOSELOOP_PUBLIC_URL", default_value = "http://localhost:8080")]
        base: String,
        /// The folder for the QR code of the link (ID-sign.svg and ID-sign.png).
        #[arg(long, default_value = ".")]
        qr_dir: PathBuf,
        /// Also print the QR code in the terminal.
        #[arg(long)]
        terminal: bool,
        /// Who makes it.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// Sign with a link's token (or its URL), as the customer.
    Sign {
        /// The token, or the whole URL.
        token: String,
        /// The signer's name.
        #[arg(long)]
        name: String,
    },
    /// Write a record (a quote) as a PDF: fields, lines, totals, the serial number as a
    /// watermark, and the signature block once signed.
    Pdf {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// A font that covers Chinese (TrueType/OpenType, or a .ttc collection).
        #[arg(long, env = "CLOSELOOP_CJK_FONT")]
        font: Option<PathBuf>,
        /// Which face of a font collection.
        #[arg(long, default_value_t = 0)]
        font_index: u32,
    },
    /// Withdraw a record from approval (its submitter or owner).
    Recall {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// Who recalls it.
        #[arg(long = "as")]
        actor: String,
    },
    /// Try an app's rules before they go live.
    Script {
        #[command(subcommand)]
        what: ScriptWhat,
    },
    /// Measure closeloop against a baseline in the same run (build with --release).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Debug, Subcommand)]
enum MembersWhat {
    /// Load or update members from a CSV (id,name,roles,region,manager,active,capacity).
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Who imports.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// Mark a member away; their delegate decides their approvals meanwhile.
    Away {
        /// The member.
        member: String,
        /// The last day away (YYYY-MM-DD).
        #[arg(long)]
        until: String,
        /// The first day away; default: now.
        #[arg(long)]
        from: Option<String>,
        /// Who decides in their place (sharing one of their roles).
        #[arg(long)]
        delegate: Option<String>,
        /// Who says so: the member, their manager, or system.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// End a member's absence.
    Back {
        /// The member.
        member: String,
        /// Who says so: the member, their manager, or system.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
}

#[derive(Debug, Subcommand)]
enum OutboxWhat {
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
enum ChannelsWhat {
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
enum TaskWhat {
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

#[derive(Debug, Subcommand)]
enum ScriptWhat {
    /// Run an assignment rule or a grade against a record, without writing anything.
    Test {
        /// The assignment rule or grade id (`lead_by_region`, `quote_risk`).
        id: String,
        /// The record's fields as JSON, or @file.json.
        #[arg(long)]
        data: Option<String>,
        /// A stored record's id (its fields, overridden by --data).
        #[arg(long)]
        record: Option<String>,
        /// Who is acting (for conditions on roles).
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditWhat {
    /// Check the hash chain and every record, member, app, approval, signing link, task and
    /// channel setting against it; exit 1 naming the first problem.
    Verify {
        /// A checkpoint printed earlier by `audit head` (SEQ:HASH): fail unless the chain still
        /// holds that event with that hash (catches deleted newest events and a re-hashed chain).
        #[arg(long)]
        expect: Option<String>,
    },
    /// Print the chain's head as a checkpoint (SEQ:HASH) to keep outside the database.
    Head,
    /// Write the head's checkpoint as a message to a channel's outbox (then `outbox deliver`);
    /// run it from cron. Nothing is queued when the head has not moved since the last anchor.
    Anchor {
        /// The channel (an installed app's channel id).
        #[arg(long)]
        channel: String,
        /// Whom to send it to (an email address, a phone number; a webhook needs none).
        #[arg(long)]
        to: Option<String>,
        /// Who is anchoring.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Loading the largest template, stage by stage, against a bare YAML parse of it.
    Load {
        /// Runs per stage.
        #[arg(long, default_value_t = 300)]
        runs: usize,
    },
    /// Importing leads through closeloop against a raw SQLite insert of the same rows, and
    /// single-submit latency through the library.
    Import {
        /// Rows to import.
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
        /// Single submits to time.
        #[arg(long, default_value_t = 1_000)]
        submits: usize,
    },
    /// One `tick` firing the due timers of a large backlog, against a raw select-and-mark of
    /// the same rows.
    Timers {
        /// Pending timers in the table.
        #[arg(long, default_value_t = 1_000_000)]
        pending: usize,
        /// The share of them due, in percent (at most 50).
        #[arg(long, default_value_t = 1.0)]
        due_percent: f64,
    },
}

/// What a command reports when it fails for a reason the user can fix (exit 1).
pub(crate) struct UserError(pub(crate) String);

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(now) = &args.now {
        if now.parse::<jiff::Timestamp>().is_err() {
            eprintln!("error: --now \"{now}\" is not an RFC 3339 time such as 2026-11-26T09:00:00+08:00");
            return ExitCode::from(2);
        }
    }
    let ctx = records::Context {
        db: args.db.clone(),
        now: args.now.as_deref().and_then(|n| n.parse().ok()),
        format: args.format,
    };
    let result = match &args.command {
        Command::Install { target, force, actor } => records::install(&ctx, target, *force, actor),
        Command::Members { what: None } => records::members_list(&ctx),
        Command::Members { what: Some(MembersWhat::Away { member, until, from, delegate, actor }) } => {
            let absence = closeloop::Absence { from: from.clone(), until: until.clone(), delegate: delegate.clone() };
            records::members_away(&ctx, member, Some(&absence), actor)
        }
        Command::Members { what: Some(MembersWhat::Back { member, actor }) } => {
            records::members_away(&ctx, member, None, actor)
        }
        Command::Members { what: Some(MembersWhat::Import { file, actor }) } => {
            records::members_import(&ctx, file, actor)
        }
        Command::Submit { form, data, actor } => records::submit(&ctx, form, data, actor),
        Command::Update { form, id, data, actor } => {
            records::data(Some(data)).and_then(|d| records::update(&ctx, form, id, d, actor))
        }
        Command::Act { form, id, action, actor, data } => {
            records::data(data.as_deref()).and_then(|d| records::act(&ctx, form, id, action, d, actor))
        }
        Command::Get { form, id } => records::get(&ctx, form, id),
        Command::List { form, filters, state, owner, sort, desc, limit, offset } => records::list(
            &ctx,
            form,
            records::ListArgs {
                filters: filters.clone(),
                state: state.clone(),
                owner: owner.clone(),
                sort: sort.clone(),
                desc: *desc,
                limit: *limit,
                offset: *offset,
            },
        ),
        Command::History { form, id } => records::history(&ctx, form, id),
        Command::Activity { form, id } => flows::activity(&ctx, form, id),
        Command::Import { form, file, skip_invalid, rejects, actor } => {
            records::import(&ctx, form, file, *skip_invalid, rejects.as_deref(), actor)
        }
        Command::Export { form, out } => records::export(&ctx, form, out.as_deref()),
        Command::Audit { what: AuditWhat::Verify { expect } } => records::audit_verify(&ctx, expect.as_deref()),
        Command::Audit { what: AuditWhat::Head } => records::audit_head(&ctx),
        Command::Audit { what: AuditWhat::Anchor { channel, to, actor } } => {
            records::audit_anchor(&ctx, channel, to.as_deref(), actor)
        }
        Command::Board { name } => records::board(&ctx, name),
        Command::Event { name, data, actor, key } => {
            records::data(Some(data)).and_then(|d| flows::event(&ctx, name, d, actor, key.as_deref()))
        }
        Command::Tick => flows::tick(&ctx),
        Command::Tasks { member, overdue, all } => flows::tasks(&ctx, member.as_deref(), *overdue, *all),
        Command::Task { what: TaskWhat::Done { id, actor, evidence } } => flows::task_done(&ctx, *id, actor, evidence),
        Command::Outbox { what: None, status } => flows::outbox(&ctx, status.as_deref()),
        Command::Outbox { what: Some(OutboxWhat::Deliver), .. } => flows::deliver(&ctx),
        Command::Outbox { what: Some(OutboxWhat::Retry { id, actor }), .. } => flows::retry(&ctx, *id, actor),
        Command::Outbox { what: Some(OutboxWhat::Attempts { id }), .. } => flows::attempts(&ctx, *id),
        Command::Channels { what: None } => flows::channels(&ctx),
        Command::Channels { what: Some(ChannelsWhat::Set { name, pairs, actor }) } => {
            flows::channels_set(&ctx, name, pairs, actor)
        }
        Command::Run => flows::run(&ctx),
        Command::Serve { listen, workers, queue, token } => flows::serve(&ctx, listen, *workers, *queue, token),
        Command::Approvals { member } => flows::approvals(&ctx, member.as_deref()),
        Command::Approve { form, id, actor, comment, override_reason } => {
            flows::decide(&ctx, form, id, actor, "approve", comment.as_deref(), override_reason.as_deref())
        }
        Command::Reject { form, id, actor, comment } => {
            flows::decide(&ctx, form, id, actor, "reject", Some(comment), None)
        }
        Command::Recall { form, id, actor } => flows::decide(&ctx, form, id, actor, "recall", None, None),
        Command::SignLink { form, id, base, qr_dir, terminal, actor } => {
            flows::sign_link(&ctx, form, id, base, qr_dir, *terminal, actor)
        }
        Command::Sign { token, name } => flows::sign(&ctx, token, name),
        Command::Pdf { form, id, out, font, font_index } => {
            flows::pdf(&ctx, form, id, out, font.as_deref(), *font_index)
        }
        Command::Score { form, id, score, actor } => records::score(&ctx, form, id, score, actor),
        Command::Grade { form, id, grade, actor } => records::grade(&ctx, form, id, grade, actor),
        Command::Script { what: ScriptWhat::Test { id, data, record, actor } } => {
            records::data(data.as_deref()).and_then(|d| records::script_test(&ctx, id, d, record.as_deref(), actor))
        }
        Command::Validate { paths } => validate(paths, args.format),
        Command::Schema => print(closeloop::SCHEMA_JSON.trim_end()),
        Command::Templates => templates(args.format),
        Command::Init { dir, template } => init(dir, template),
        Command::Demo => demo(args.format),
        Command::Bench { what: BenchWhat::Import { rows, submits } } => {
            bench::import((*rows).max(1), (*submits).max(1), args.format == Format::Json)
                .map_err(UserError)
                .and_then(|t| print(&t))
        }
        Command::Bench { what: BenchWhat::Timers { pending, due_percent } } => {
            bench::timers(*pending, *due_percent, args.format == Format::Json)
                .map_err(UserError)
                .and_then(|t| print(&t))
        }
        Command::Bench { what: BenchWhat::Load { runs } } => {
            bench::load((*runs).max(1), args.format == Format::Json).map_err(UserError).and_then(|t| print(&t))
        }
    };
    match result {
        Ok(code) => code,
        Err(UserError(message)) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            ExitCode::from(1)
        }
    }
}

pub(crate) fn print(text: &str) -> Result<ExitCode, UserError> {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`closeloop schema | head`) is not an error worth reporting.
    let _ = writeln!(out, "{text}");
    Ok(ExitCode::SUCCESS)
}

fn loader() -> Result<Loader, UserError> {
    Loader::new().map_err(|e| UserError(e.to_string()))
}

fn validate(paths: &[PathBuf], format: Format) -> Result<ExitCode, UserError> {
    let loader = loader()?;
    let results: Vec<(String, Loaded)> = paths.iter().map(|p| (p.display().to_string(), loader.load_path(p))).collect();
    let valid = results.iter().all(|(_, l)| l.is_valid());
    match format {
        Format::Json => {
            let all: Vec<&closeloop::Diagnostic> = results.iter().flat_map(|(_, l)| &l.diagnostics).collect();
            print(&serde_json::to_string_pretty(&all).unwrap_or_default())?;
        }
        Format::Human => {
            let mut out = String::new();
            for (shown, loaded) in &results {
                for d in &loaded.diagnostics {
                    out.push_str(&render::diagnostic(d, loaded.sources.get(&d.file).map(String::as_str)));
                }
                out.push_str(&render::verdict(shown, loaded));
            }
            let _ = write!(std::io::stdout().lock(), "{out}");
        }
    }
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn templates(format: Format) -> Result<ExitCode, UserError> {
    let loader = loader()?;
    let rows: Vec<serde_json::Value> = closeloop::templates()
        .iter()
        .map(|t| {
            let loaded = loader.load(&t.app_files());
            let (title, description) = match &loaded.app {
                Some(app) => {
                    (render::label_json(Some(&app.def.app.title)), render::label_json(app.def.app.description.as_ref()))
                }
                None => (serde_json::Value::Null, serde_json::Value::Null),
            };
            serde_json::json!({"name": t.name, "title": title, "description": description})
        })
        .collect();
    match format {
        Format::Json => print(&serde_json::to_string_pretty(&rows).unwrap_or_default()),
        Format::Human => print(&render::template_list(&rows)),
    }
}

fn init(dir: &Path, name: &str) -> Result<ExitCode, UserError> {
    let Some(template) = closeloop::template(name) else {
        let names: Vec<&str> = closeloop::templates().iter().map(|t| t.name).collect();
        return Err(UserError(format!("there is no template \"{name}\"; the templates are: {}", names.join(", "))));
    };
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(UserError(format!("{} already exists and is not empty; choose a new folder", dir.display())));
    }
    for (path, text) in template.files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| UserError(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&target, text).map_err(|e| UserError(format!("cannot write {}: {e}", target.display())))?;
    }
    print(&format!(
        "created {} from template {name} ({} files)\nnext: edit {}/app.yaml, then run `closeloop validate {}`",
        dir.display(),
        template.files.len(),
        dir.display(),
        dir.display()
    ))
}

fn demo(format: Format) -> Result<ExitCode, UserError> {
    let loader = loader()?;
    let mut summaries = Vec::new();
    let mut valid = true;
    for t in closeloop::templates() {
        let loaded = loader.load(&t.app_files());
        valid &= loaded.is_valid();
        summaries.push((t.name, loaded));
    }
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> =
                summaries.iter().map(|(name, l)| render::summary_json(name, l)).collect();
            let walk = render::walkthrough().map_err(UserError)?;
            print(
                &serde_json::to_string_pretty(&serde_json::json!({"templates": rows, "walkthrough": walk}))
                    .unwrap_or_default(),
            )?;
        }
        Format::Human => {
            let mut out = String::from("closeloop: the bundled templates\n\n");
            for (name, loaded) in &summaries {
                for d in &loaded.diagnostics {
                    out.push_str(&render::diagnostic(d, loaded.sources.get(&d.file).map(String::as_str)));
                }
                out.push_str(&render::summary(name, loaded));
            }
            out.push_str(&render::walkthrough().map_err(UserError)?.join("\n"));
            print(out.trim_end())?;
        }
    }
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
