//! `closeloop bench`: speed measured against a baseline in the same run, never as a timed test.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use closeloop::yaml::{self, Limits};
use closeloop::{template, Loader};
use serde_json::json;

use crate::{print, Context, Format, UserError};

mod http;
mod pages;
mod report;

/// The bench command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Measure closeloop against a baseline in the same run (build with --release).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchWhat {
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
    /// The penetration report over a year of a lead team (about a million events), against
    /// one hand-written SQL aggregate of the same 24h follow-up rate; fails if they disagree.
    Report {
        /// Leads in the year: each created, most contacted, the late ones escalated.
        #[arg(long, default_value_t = 500_000)]
        leads: usize,
        /// Sales reps, spread over four regions.
        #[arg(long, default_value_t = 236)]
        reps: usize,
        /// Keep the database (its path is printed) instead of removing it.
        #[arg(long)]
        keep: bool,
    },
    /// The list page and the record page under concurrent clients on loopback, beside the JSON
    /// API's answers for the same data: answers per second, p50 and p99.
    Pages {
        /// Records in the form.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// Concurrent clients, each with its own connection.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Rounds per client (each: a list page and a record, as HTML and as JSON).
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// Create-and-act over /api/v1 with concurrent clients on loopback, against the same
    /// operations called on the library: throughput, p50 and p99 of both, and their ratio.
    Http {
        /// Operations in all (each: create a record, then do an action on it).
        #[arg(long, default_value_t = 4_000)]
        operations: usize,
        /// Concurrent clients, each with its own connection and token.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// The server's engine workers.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

/// Runs one benchmark and prints what it measured.
pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    let Command::Bench { what } = cmd;
    let json_output = ctx.format == Format::Json;
    let measured = match what {
        BenchWhat::Load { runs } => load((*runs).max(1), json_output),
        BenchWhat::Import { rows, submits } => {
            Scratch::new(&ctx.db, "import").and_then(|s| import(s, (*rows).max(1), (*submits).max(1), json_output))
        }
        BenchWhat::Timers { pending, due_percent } => {
            Scratch::new(&ctx.db, "timers").and_then(|s| timers(s, *pending, *due_percent, json_output))
        }
        BenchWhat::Report { leads, reps, keep } => report::run((*leads).max(1), *reps, *keep, json_output),
        BenchWhat::Pages { records, clients, rounds } => {
            pages::run((*records).max(1), (*clients).max(1), (*rounds).max(1), json_output)
        }
        BenchWhat::Http { operations, clients, workers } => Scratch::new(&ctx.db, "http")
            .and_then(|s| http::run(s, (*operations).max(1), (*clients).max(1), (*workers).max(1), json_output)),
    };
    measured.map_err(UserError).and_then(|text| print(&text))
}

/// Where a bench keeps its databases: SQLite files in a temporary folder (the default), or fresh
/// databases on the PostgreSQL server `--db` names (`closeloop --db postgres://…/postgres bench
/// timers`), so each backend is compared with raw work on itself in the same run.
pub(crate) enum Scratch {
    Files(std::path::PathBuf),
    Server(closeloop::store::ScratchServer),
}

impl Scratch {
    fn new(db: &std::path::Path, bench: &str) -> Result<Scratch, String> {
        let db = db.to_string_lossy();
        if closeloop::store::is_postgres_url(&db) {
            return Ok(Scratch::Server(closeloop::store::ScratchServer::new(&db)));
        }
        let dir = std::env::temp_dir().join(format!("closeloop-bench-{bench}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(Scratch::Files(dir))
    }

    /// The location of a new, empty database called `name` (`raw0`).
    pub(crate) fn fresh(&mut self, name: &str) -> Result<String, String> {
        match self {
            Scratch::Files(dir) => Ok(dir.join(format!("{name}.db")).display().to_string()),
            Scratch::Server(server) => server.fresh(&Self::db_name(name)).map_err(|e| e.to_string()),
        }
    }

    /// A copy of the closed database `from`, called `to`; its location.
    pub(crate) fn copy(&mut self, from: &str, to: &str) -> Result<String, String> {
        match self {
            Scratch::Files(dir) => {
                let (from, to) = (dir.join(format!("{from}.db")), dir.join(format!("{to}.db")));
                std::fs::copy(&from, &to).map_err(|e| e.to_string())?;
                let wal = |db: &std::path::Path| db.with_extension("db-wal");
                if wal(&from).exists() {
                    std::fs::copy(wal(&from), wal(&to)).map_err(|e| e.to_string())?;
                }
                Ok(to.display().to_string())
            }
            Scratch::Server(server) => server.copy(&Self::db_name(from), &Self::db_name(to)).map_err(|e| e.to_string()),
        }
    }

    fn db_name(name: &str) -> String {
        format!("bench_{}_{name}", std::process::id())
    }

    /// What the databases are, for the report's first line.
    pub(crate) fn describe(&self) -> String {
        match self {
            Scratch::Files(_) => "SQLite file databases (WAL) in a temp folder".into(),
            Scratch::Server(server) => format!("PostgreSQL databases on {}", server.shown()),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Scratch::Files(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Opens a bench database by location.
pub(crate) fn open(location: &str) -> Result<closeloop::store::Store, String> {
    closeloop::store::Store::connect(location).map_err(|e| e.to_string())
}

/// Times `f` over `runs` runs after a warm-up; returns the sorted durations.
fn sample(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..runs.min(10) {
        f();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

pub(crate) fn percentile(times: &[Duration], p: f64) -> Duration {
    let i = ((times.len() as f64 - 1.0) * p).round() as usize;
    times.get(i).copied().unwrap_or_default()
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Loads the largest bundled template (quote-approval) and compares each stage with the bare
/// YAML event parse of the same text.
pub fn load(runs: usize, json_output: bool) -> Result<String, String> {
    let loader = Loader::new().map_err(|e| e.to_string())?;
    let files = template("quote-approval").ok_or("the quote-approval template is missing")?.app_files();
    let text = files.app_yaml.clone();
    let limits = Limits::default();
    let bare = sample(runs, || {
        let _ = std::hint::black_box(yaml::count_events(&text));
    });
    let tree = sample(runs, || {
        let _ = std::hint::black_box(yaml::parse("app.yaml", &text, limits));
    });
    let full = sample(runs, || {
        let loaded = loader.load(&files);
        std::hint::black_box(loaded.app.is_some());
    });
    let loaded = loader.load(&files);
    if !loaded.is_valid() {
        return Err(
            "the quote-approval template does not load; run `closeloop validate app-templates/quote-approval`".into()
        );
    }
    let bomb = hostile_bomb();
    let bomb_times = sample(runs.min(50), || {
        std::hint::black_box(loader.load(&closeloop::AppFiles { app_yaml: bomb.clone(), ..Default::default() }));
    });
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let deep_times = sample(runs.min(50), || {
        std::hint::black_box(loader.load(&closeloop::AppFiles { app_yaml: deep.clone(), ..Default::default() }));
    });
    let rows = [
        ("bare YAML parse (saphyr events, nothing built)", &bare),
        ("YAML tree with positions and limits", &tree),
        ("full load: tree, schema, model, checks, scripts", &full),
        ("billion-laughs bomb refused", &bomb_times),
        ("20,000-deep nesting refused", &deep_times),
    ];
    let base = ms(percentile(&bare, 0.5)).max(f64::EPSILON);
    if json_output {
        let items: Vec<_> = rows
            .iter()
            .map(|(name, t)| json!({"stage": name, "median_ms": ms(percentile(t, 0.5)), "p95_ms": ms(percentile(t, 0.95)), "x_bare": ms(percentile(t, 0.5)) / base}))
            .collect();
        let out = json!({"file": "app-templates/quote-approval/app.yaml", "bytes": text.len(), "runs": runs, "scripts": loaded.app.map(|a| a.script_count()), "stages": items});
        return Ok(serde_json::to_string_pretty(&out).unwrap_or_default());
    }
    let mut out = format!(
        "bench load: app-templates/quote-approval/app.yaml ({} bytes), {runs} runs per stage\n\n{:<50} {:>10} {:>10} {:>9}\n",
        text.len(),
        "stage",
        "median ms",
        "p95 ms",
        "x bare"
    );
    for (name, t) in rows {
        let median = ms(percentile(t, 0.5));
        out.push_str(&format!("{name:<50} {median:>10.3} {:>10.3} {:>9.1}\n", ms(percentile(t, 0.95)), median / base));
    }
    out.push_str(&format!("\nratio full load / bare parse: {:.1}", ms(percentile(&full, 0.5)) / base));
    Ok(out)
}

fn hostile_bomb() -> String {
    let mut s = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for w in names.windows(2) {
        s.push_str(&format!("{}: &{} [{}]\n", w[1], w[1], vec![format!("*{}", w[0]); 9].join(",")));
    }
    s
}

/// Imports generated leads through closeloop and compares with a raw insert of the same JSON
/// rows into a table with the same indexes; then times single submits through the library.
pub fn import(mut scratch: Scratch, rows: usize, submits: usize, json_output: bool) -> Result<String, String> {
    use std::sync::Arc;

    use closeloop::clock::SystemClock;
    use closeloop::store::FormTable;
    use closeloop::ImportOptions;
    use closeloop::Runtime;

    let t = template("lead-followup").ok_or("the lead-followup template is missing")?;
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").map(|(_, c)| *c).unwrap_or_default();
    let fresh = |location: &str| -> Result<Runtime, String> {
        let store = open(location)?;
        let mut rt = Runtime::open(store, Arc::new(SystemClock)).map_err(|e| e.to_string())?;
        rt.install(&t.app_files(), "system", false).map_err(|e| e.to_string())?;
        rt.import_members(members.as_bytes(), "system").map_err(|e| e.to_string())?;
        Ok(rt)
    };
    let regions = ["east", "south", "north", "west", "central"];
    let mut csv = String::from("source,customer,phone,urgency,region,owner,summary\n");
    // The same rows with no owner: every row is assigned by the template's rule.
    let mut unowned = String::from("source,customer,phone,urgency,region,summary\n");
    let mut raw = Vec::with_capacity(rows);
    for i in 0..rows {
        let region = regions[i % regions.len()];
        let (customer, phone, summary) =
            (format!("客户{i:06}有限公司"), format!("139{i:08}"), format!("第{i}次展会登记，预算待确认"));
        csv.push_str(&format!("expo,{customer},{phone},yellow,{region},m_li,{summary}\n"));
        unowned.push_str(&format!("expo,{customer},{phone},yellow,{region},{summary}\n"));
        let data = json!({"customer": customer, "owner": "m_li", "phone": phone, "region": region, "source": "expo", "summary": summary, "urgency": "yellow"});
        raw.push((format!("LEAD-2026-{i:06}"), data.to_string()));
    }
    // (a) the raw baseline.
    let form = t.app_files();
    let loader = Loader::new().map_err(|e| e.to_string())?;
    let def = loader.load(&form).app.ok_or("the lead-followup template does not load")?.def;
    let lead = def.forms.iter().find(|f| f.id == "lead").ok_or("no lead form")?;
    // Each side runs three times on a fresh database; the medians are compared.
    let mut raw_times = Vec::new();
    let mut pipeline_times = Vec::new();
    let mut assigned_times = Vec::new();
    let mut replay_times = Vec::new();
    let mut rows_written = 0;
    for round in 0..3 {
        let mut store = open(&scratch.fresh(&format!("raw{round}"))?)?;
        let started = Instant::now();
        store.bench_raw_insert(&FormTable::of(lead), &raw).map_err(|e| e.to_string())?;
        raw_times.push(started.elapsed());
        drop(store);
        // (b) the full pipeline.
        let mut rt = fresh(&scratch.fresh(&format!("pipeline{round}"))?)?;
        let started = Instant::now();
        let report =
            rt.import_csv("lead", csv.as_bytes(), &ImportOptions::default(), &mut |_| {}).map_err(|e| e.to_string())?;
        pipeline_times.push(started.elapsed());
        if report.created != rows {
            return Err(format!("the import created {} of {rows} rows", report.created));
        }
        // (c) the full pipeline with an assignment decision per row.
        let location = scratch.fresh(&format!("assigned{round}"))?;
        let mut rt = fresh(&location)?;
        let probe = open(&location)?;
        let marks = probe.bench_marks().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let report = rt
            .import_csv("lead", unowned.as_bytes(), &ImportOptions::default(), &mut |_| {})
            .map_err(|e| e.to_string())?;
        assigned_times.push(started.elapsed());
        if report.created != rows {
            return Err(format!("the assigned import created {} of {rows} rows", report.created));
        }
        // (d) every row (c) wrote, inserted raw into tables of the same shape and indexes.
        let written = probe.bench_rows_since(&marks, None).map_err(|e| e.to_string())?;
        let mut replay = open(&scratch.fresh(&format!("replay{round}"))?)?;
        let started = Instant::now();
        rows_written = replay.bench_raw_replay(&[FormTable::of(lead)], &written).map_err(|e| e.to_string())?;
        replay_times.push(started.elapsed());
    }
    assigned_times.sort();
    let assigned_time = assigned_times[1];
    replay_times.sort();
    let replay_rate = rows as f64 / replay_times[1].as_secs_f64().max(f64::EPSILON);
    let per_lead = rows_written as f64 / rows as f64;
    raw_times.sort();
    pipeline_times.sort();
    let (raw_time, pipeline_time) = (raw_times[1], pipeline_times[1]);
    // Single submits.
    let mut rt = fresh(&scratch.fresh("submit")?)?;
    let mut latencies = Vec::with_capacity(submits);
    for i in 0..submits {
        let data = json!({"source": "wechat_oa", "customer": format!("单条客户{i}"), "phone": format!("138{i:08}"), "region": "east", "owner": "m_li"});
        let data = data.as_object().cloned().unwrap_or_default();
        let started = Instant::now();
        rt.submit("lead", data, "m_li").map_err(|e| e.to_string())?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    drop(rt);
    let place = scratch.describe();
    drop(scratch);
    let raw_rate = rows as f64 / raw_time.as_secs_f64().max(f64::EPSILON);
    let pipeline_rate = rows as f64 / pipeline_time.as_secs_f64().max(f64::EPSILON);
    let ratio = pipeline_rate / raw_rate;
    let assigned_rate = rows as f64 / assigned_time.as_secs_f64().max(f64::EPSILON);
    let assigned_ratio = assigned_rate / raw_rate;
    let same_rows_ratio = assigned_rate / replay_rate;
    let per_decision_us = (assigned_time.as_secs_f64() - pipeline_time.as_secs_f64()).max(0.0) * 1e6 / rows as f64;
    let (p50, p99) = (ms(percentile(&latencies, 0.5)), ms(percentile(&latencies, 0.99)));
    if json_output {
        return Ok(serde_json::to_string_pretty(&json!({
            "databases": place, "rows": rows, "raw_rows_per_s": raw_rate, "pipeline_rows_per_s": pipeline_rate, "ratio": ratio,
            "assigned_rows_per_s": assigned_rate, "assigned_ratio": assigned_ratio, "assignment_us_per_decision": per_decision_us,
            "rows_written_per_lead": per_lead, "same_rows_raw_leads_per_s": replay_rate, "same_rows_ratio": same_rows_ratio,
            "submits": submits, "submit_p50_ms": p50, "submit_p99_ms": p99,
        }))
        .unwrap_or_default());
    }
    Ok(format!(
        "bench import: {rows} lead rows, {place}, median of 3 runs each\n\
         (a) raw batched insert on the same backend, same JSON rows, same indexes: {raw_rate:>10.0} rows/s\n\
         (b) closeloop import (CSV parse, validate, compute, store with version and audit event): {pipeline_rate:>10.0} rows/s\n\
                  ratio: {ratio:.2}\n\
         (c) the same import with every row assigned by the lead template's rule: {assigned_rate:>10.0} rows/s\n\
         ratio with assignment: {assigned_ratio:.2}; assignment costs {per_decision_us:.1} µs per decision\n\
         (d) raw insert of every row (c) wrote ({per_lead:.1} rows per lead: record, events, timers, outbox…), same tables and indexes: {replay_rate:>10.0} leads/s\n\
         ratio of (c) to the same rows inserted raw: {same_rows_ratio:.2}\n\
         submit through the library, {submits} single submits: p50 {p50:.3} ms, p99 {p99:.3} ms"
    ))
}

/// When `bench timers` submits its leads ("T"): a Tuesday, 10:00 in Shanghai, so 24h and 25h
/// later are working hours too.
const TIMERS_START: &str = "2026-03-03T02:00:00Z";

/// Fires the due timers of a large backlog with one `tick` and compares with two raw baselines
/// on copies of the same file: a select and mark of the due rows, and that marking together
/// with every row the tick wrote, inserted raw. `due_percent` of `pending` are lead-followup
/// leads submitted through the library (each arms a 24h timer, due, and a 72h one, not due);
/// the rest are raw rows due weeks later.
pub fn timers(mut scratch: Scratch, pending: usize, due_percent: f64, json_output: bool) -> Result<String, String> {
    let due = (pending as f64 * due_percent / 100.0).round() as usize;
    // Each due lead also arms a timer that is not due: at most half the backlog can be due.
    let future = pending.checked_sub(2 * due).filter(|_| due > 0 && due_percent.is_finite());
    let Some(future) = future else {
        return Err(format!(
            "--due-percent {due_percent} of --pending {pending} gives {due} due timers; it must give at least one and at most half"
        ));
    };
    let measured = fire_backlog(&mut scratch, pending, due, future);
    let place = scratch.describe();
    drop(scratch);
    let TimerTimes { submit, tick, raw, same_rows, fired, rows_written } = measured?;
    let tick_s = tick.as_secs_f64().max(f64::EPSILON);
    let ratio = raw.as_secs_f64() / tick_s;
    // 1.0 would mean the tick costs no more than writing the rows it wrote.
    let same_rows_ratio = same_rows.as_secs_f64() / tick_s;
    let per_timer = |d: Duration| d.as_secs_f64() * 1e6 / due as f64;
    let (tick_us, raw_us, same_rows_us) = (per_timer(tick), per_timer(raw), per_timer(same_rows));
    let rows_per_timer = rows_written as f64 / fired.max(1) as f64;
    if json_output {
        return Ok(serde_json::to_string_pretty(&json!({
            "databases": place, "pending": pending, "due": due, "due_percent": due_percent, "future": future, "fired": fired,
            "setup_submit_s": submit.as_secs_f64(), "tick_ms": ms(tick), "raw_ms": ms(raw), "ratio": ratio,
            "tick_us_per_timer": tick_us, "raw_us_per_timer": raw_us,
            "same_rows_ms": ms(same_rows), "same_rows_us_per_timer": same_rows_us, "same_rows_ratio": same_rows_ratio,
            "rows_written": rows_written, "rows_written_per_timer": rows_per_timer,
        }))
        .unwrap_or_default());
    }
    Ok(format!(
        "bench timers: {pending} pending timers, {due} due ({due_percent}%), {place}\n\
         setup (not timed): {due} lead-followup leads submitted through the library at T = {TIMERS_START} in {:.1} s (a 24h and a 72h timer each), {future} timers due weeks later inserted raw\n\
         (a) raw: select the due rows and mark each fired, one transaction: {:>10.1} ms, {raw_us:>8.2} µs per timer\n\
         (b) closeloop tick at T+25h, {fired} fired (claim, re-check the condition, set, flag, notify, audit; 200 per transaction): {:>10.1} ms, {tick_us:>8.2} µs per timer\n\
         ratio: {ratio:.3}\n\
         (c) raw: (a) and every row (b) wrote ({rows_per_timer:.1} rows per fired timer: the timer, the lead, its events, flag, message…) inserted raw, one transaction: {:>10.1} ms, {same_rows_us:>8.2} µs per timer\n\
         ratio of (c) to (b), the same rows written raw: {same_rows_ratio:.3}",
        submit.as_secs_f64(),
        ms(raw),
        ms(tick),
        ms(same_rows),
    ))
}

/// What `bench timers` measured.
struct TimerTimes {
    submit: Duration,
    tick: Duration,
    raw: Duration,
    /// The raw marking with every row the tick wrote, replayed raw.
    same_rows: Duration,
    fired: usize,
    /// Rows the tick wrote: the timers it marked, and its new and changed rows.
    rows_written: usize,
}

/// Builds the backlog in `dir`, copies it twice, then times a tick on one copy and the raw
/// baselines on the others.
fn fire_backlog(scratch: &mut Scratch, pending: usize, due: usize, future: usize) -> Result<TimerTimes, String> {
    use closeloop::clock::{stamp, ManualClock};

    let start: jiff::Timestamp = TIMERS_START.parse().map_err(|e: jiff::Error| e.to_string())?;
    let fire_at = start + jiff::SignedDuration::from_hours(25);
    let now = stamp(fire_at);
    let clock = std::sync::Arc::new(ManualClock::new(start));
    let tick_db = scratch.fresh("tick")?;
    let submit = fill_backlog(&tick_db, &clock, start, due, future)?;
    let raw_db = scratch.copy("tick", "raw")?;
    let replay_db = scratch.copy("tick", "replay")?;

    let (tick, fired, written) = time_tick(&tick_db, &clock, fire_at, pending, due)?;

    let mut store = open(&raw_db)?;
    let started = Instant::now();
    let marked = store.bench_raw_fire(&now).map_err(|e| e.to_string())?;
    let raw = started.elapsed();
    if marked != due {
        return Err(format!("the raw baseline marked {marked} timers; {due} were expected"));
    }

    let mut store = open(&replay_db)?;
    let started = Instant::now();
    let (marked, replayed) = store.bench_raw_fire_replay(&now, &written).map_err(|e| e.to_string())?;
    let same_rows = started.elapsed();
    if marked != due {
        return Err(format!("the same-rows baseline marked {marked} timers; {due} were expected"));
    }
    Ok(TimerTimes { submit, tick, raw, same_rows, fired, rows_written: marked + replayed })
}

/// Makes the backlog in `db` (closed on return): `due` leads submitted through the library at
/// `start`, and `future` raw timers due weeks later. Returns how long the submits took.
fn fill_backlog(
    db: &str,
    clock: &std::sync::Arc<closeloop::clock::ManualClock>,
    start: jiff::Timestamp,
    due: usize,
    future: usize,
) -> Result<Duration, String> {
    use closeloop::Runtime;

    let t = template("lead-followup").ok_or("the lead-followup template is missing")?;
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").map(|(_, c)| *c).unwrap_or_default();
    let err = |e: closeloop::EngineError| e.to_string();
    let mut rt = Runtime::open(open(db)?, clock.clone()).map_err(err)?;
    rt.install(&t.app_files(), "system", false).map_err(err)?;
    rt.import_members(members.as_bytes(), "system").map_err(err)?;
    let regions = ["east", "south", "north", "west", "central"];
    let started = Instant::now();
    for i in 0..due {
        let data = json!({"source": "expo", "customer": format!("客户{i:06}有限公司"), "phone": format!("139{i:08}"), "region": regions[i % regions.len()], "owner": "m_li"});
        rt.submit("lead", data.as_object().cloned().unwrap_or_default(), "m_li").map_err(err)?;
    }
    let submit = started.elapsed();
    drop(rt);
    let mut store = open(db)?;
    let weeks_later = start + jiff::SignedDuration::from_hours(24 * 14);
    store
        .bench_pending_timers("lead-followup", "escalate_uncontacted", "lead", future, weeks_later)
        .map_err(|e| e.to_string())?;
    Ok(submit)
}

/// Times one tick at `fire_at` on `db`; returns its duration, the timers fired, and every row
/// it added or changed (records whose `updated_at` is the tick's time), read back through a
/// second connection for the same-rows baseline.
fn time_tick(
    db: &str,
    clock: &std::sync::Arc<closeloop::clock::ManualClock>,
    fire_at: jiff::Timestamp,
    pending: usize,
    due: usize,
) -> Result<(Duration, usize, Vec<closeloop::store::TableRows>), String> {
    use closeloop::Runtime;

    let err = |e: closeloop::EngineError| e.to_string();
    let mut rt = Runtime::open(open(db)?, clock.clone()).map_err(err)?;
    let counts = rt.timer_counts().map_err(err)?;
    let in_table = counts.iter().find(|(s, _)| *s == closeloop::TimerStatus::Pending).map_or(0, |(_, n)| *n as usize);
    if in_table != pending {
        return Err(format!("the setup left {in_table} pending timers, not {pending}"));
    }
    let probe = open(db)?;
    let marks = probe.bench_marks().map_err(|e| e.to_string())?;
    clock.set(fire_at);
    let started = Instant::now();
    let report = rt.tick().map_err(err)?;
    let tick = started.elapsed();
    let fired = report
        .timers
        .iter()
        .filter(|f| f.outcome == closeloop::FireOutcome::Settled(closeloop::TimerStatus::Fired))
        .count();
    if fired != due || report.timers.len() != due {
        return Err(format!("the tick fired {fired} of {} due timers; {due} were expected", report.timers.len()));
    }
    drop(rt);
    let now = closeloop::clock::stamp(fire_at);
    let written = probe.bench_rows_since(&marks, Some(&now)).map_err(|e| e.to_string())?;
    // Each fired timer sets a field on its lead: fewer changed records means the replay would
    // miss rows (the records' `updated_at` is not the tick's time).
    let records: usize = written.iter().filter(|t| t.table().starts_with("rec_")).map(|t| t.len()).sum();
    if records < fired {
        return Err(format!("the tick changed {records} records at {now} but fired {fired} timers"));
    }
    Ok((tick, fired, written))
}

#[cfg(test)]
mod tests {
    #[test]
    fn timers_bench_fires_exactly_the_due_timers() {
        let out = super::timers(
            super::Scratch::new(std::path::Path::new("closeloop.db"), "timers-test").unwrap(),
            20_000,
            1.0,
            true,
        )
        .unwrap();
        let out: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(out["fired"], 200);
        // (c): every fired timer wrote its timer, its lead and more; the replay took some time.
        let per_timer = out["rows_written_per_timer"].as_f64().unwrap();
        assert!((3.0..50.0).contains(&per_timer), "{out}");
        assert!(out["rows_written"].as_u64().unwrap() >= 600, "{out}");
        let same_rows_ratio = out["same_rows_ratio"].as_f64().unwrap();
        assert!(same_rows_ratio.is_finite() && same_rows_ratio > 0.0, "{out}");
        assert!(out["same_rows_ms"].as_f64().unwrap() > 0.0, "{out}");
        assert!(out["ratio"].as_f64().unwrap() > 0.0, "{out}");
    }
}
