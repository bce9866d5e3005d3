//! `closeloop bench report`: the penetration report over a year of a large lead team, against
//! one hand-written SQL aggregate of the same 24-hour follow-up rate, on the same file.
//!
//! The year is written raw (the store's `bench_record_events`) because a million events through
//! the library would take far longer than the measurement: the rows are the write gate's own
//! (columns, time format, body and data JSON, the record at each version, the hash chain), so
//! the report reads them as real and `audit verify` holds on them. Automation runs, timers and
//! messages are not generated: the report does not read them.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use closeloop::clock::{stamp, ManualClock};
use closeloop::reports::ReportQuery;
use closeloop::store::{BenchEvent, FormTable, Store};
use closeloop::{template, Runtime};
use jiff::Timestamp;
use serde_json::json;

/// The year: 2025 in Shanghai (no daylight saving, so a local day is 86,400 s).
const YEAR_START: &str = "2025-01-01T00:00:00+08:00";
/// The report's time: the year's end, so the last day's leads are still pending.
const REPORT_AT: &str = "2026-01-01T00:00:00+08:00";
/// The follow-up deadline of `lead_first_followup`.
const DAY: i64 = 86_400;
/// When the template's 24h escalation writes: its timer, claimed by a tick half a minute late.
const ESCALATED_AFTER: i64 = DAY + 30;
const REGIONS: [&str; 4] = ["east", "south", "north", "west"];
const SOURCES: [&str; 3] = ["expo", "wechat_oa", "referral"];

use crate::demo::Rng;

/// One lead of the year: when it came, whose it is, how long until its contact (if any).
struct Lead {
    created: i64,
    rep: usize,
    contact_after: Option<i64>,
}

/// How long a rep takes to press 已联系: mostly within hours, some on the boundary (exactly
/// 24h penetrates, a second more does not), some late, some never.
fn contact_delay(n: &mut Rng) -> Option<i64> {
    match n.next() % 1000 {
        0..=549 => Some(n.within(300, 4 * 3600)),
        550..=809 => Some(n.within(4 * 3600, DAY)),
        810..=814 => Some(DAY),
        815..=819 => Some(DAY + 1),
        820..=909 => Some(n.within(DAY + 2, 3 * DAY)),
        910..=939 => Some(n.within(3 * DAY, 14 * DAY)),
        _ => None,
    }
}

/// The year's leads in order of arrival, each between 08:00 and 21:00 on a day of the year.
fn leads(count: usize, reps: usize, start: i64) -> Vec<Lead> {
    let mut n = Rng(0x5EED_2025);
    let mut out: Vec<Lead> = (0..count)
        .map(|_| {
            let created = start + n.within(0, 365) * DAY + n.within(8 * 3600, 21 * 3600);
            Lead { created, rep: n.within(0, reps as i64) as usize, contact_after: contact_delay(&mut n) }
        })
        .collect();
    out.sort_by_key(|l| l.created);
    out
}

/// What happens to a lead, in time order across the year: (when, lead, 0 created / 1
/// escalated / 2 contacted). Nothing after `until` has happened yet.
fn happenings(leads: &[Lead], until: i64) -> Vec<(i64, u32, u8)> {
    let mut out = Vec::with_capacity(leads.len() * 2 + leads.len() / 4);
    for (i, l) in leads.iter().enumerate() {
        out.push((l.created, i as u32, 0));
        if l.contact_after.is_none_or(|d| d > ESCALATED_AFTER) {
            out.push((l.created + ESCALATED_AFTER, i as u32, 1));
        }
        if let Some(d) = l.contact_after {
            out.push((l.created + d, i as u32, 2));
        }
    }
    out.retain(|(at, _, _)| *at < until);
    out.sort_unstable();
    out
}

/// The team: a supervisor per region and `reps` sales reps spread over the regions, as CSV.
fn team(reps: usize) -> String {
    let mut csv = String::from("id,name,roles,region,manager,active,capacity\n");
    for r in REGIONS {
        csv.push_str(&format!("sup_{r},主管{r},sales_supervisor,{r},,true,0\n"));
    }
    for i in 0..reps {
        let r = REGIONS[i % REGIONS.len()];
        csv.push_str(&format!("{},销售{:03},sales_rep,{r},sup_{r},true,400\n", rep_id(i), i + 1));
    }
    csv
}

fn rep_id(i: usize) -> String {
    format!("r{:03}", i + 1)
}

/// The events of one happening, as the write gate writes them for the lead template:
/// `record.created` with its assignment, the 24h escalation's `record.updated` (by closeloop),
/// the rep's `record.action` contact.
fn event(leads: &[Lead], (at, i, what): (i64, u32, u8), escalated: bool) -> BenchEvent {
    let (l, i) = (&leads[i as usize], i as usize);
    let (rep, region, source) = (rep_id(l.rep), REGIONS[l.rep % REGIONS.len()], SOURCES[i % SOURCES.len()]);
    let (customer, phone) = (format!("客户{i:06}有限公司"), format!("139{i:08}"));
    let urgency = if escalated || what == 1 { "red" } else { "green" };
    let contact = if what == 2 { r#""next_step":"安排产品演示","# } else { "" };
    let summary = if what == 2 { r#""summary":"电话沟通，客户有采购意向","# } else { "" };
    let data = format!(
        r#"{{"customer":"{customer}",{contact}"owner":"{rep}","phone":"{phone}","region":"{region}","source":"{source}",{summary}"urgency":"{urgency}"}}"#
    );
    let (kind, actor, state, version, body) = match what {
        0 => {
            let why = format!("to 销售{:03}: region {region}, {} open, least loaded", l.rep + 1, i % 7);
            let body = format!(
                r#"{{"state":"new","owner":"{rep}","assignment":[{{"explanation":"{why}","member":"{rep}","rule":"lead_by_region"}}]}}"#
            );
            ("record.created", rep.clone(), "new", 1, body)
        }
        1 => {
            let body = format!(
                r#"{{"changes":[{{"field":"urgency","from":"green","to":"red"}}],"state":"new","owner":"{rep}","automation":"escalate_uncontacted"}}"#
            );
            ("record.updated", "system".to_string(), "new", 2, body)
        }
        _ => {
            let body = format!(
                r#"{{"changes":[{{"field":"state","from":"new","to":"contacted"}},{{"field":"next_step","from":null,"to":"安排产品演示"}},{{"field":"summary","from":null,"to":"电话沟通，客户有采购意向"}}],"state":"contacted","owner":"{rep}","action":{{"from":"new","id":"contact","to":"contacted"}}}}"#
            );
            ("record.action", rep.clone(), "contacted", 2 + i64::from(escalated), body)
        }
    };
    BenchEvent {
        at: stamp(Timestamp::from_second(at).unwrap_or_default()),
        actor,
        kind: kind.into(),
        record: format!("LEAD-2025-{:05}", i + 1),
        version,
        state: Some(state.into()),
        owner: Some(rep),
        body,
        data,
    }
}

/// What `bench report` measured.
pub(super) struct Measured {
    pub leads: usize,
    pub events: usize,
    pub generate: Duration,
    pub write: Duration,
    pub engine: Duration,
    pub sql: Duration,
    pub engine_rss: Option<Rss>,
    pub sql_rss: Option<Rss>,
    /// Population, penetrated, decided and pending, as both sides counted them.
    pub counts: (usize, usize, usize, usize),
}

fn instant(text: &str) -> Result<Timestamp, String> {
    text.parse().map_err(|e: jiff::Error| e.to_string())
}

/// Builds the year in `db` (the template installed and the team imported through the
/// library, the leads written raw); returns how many events and how long generating and
/// writing took.
fn build(db: &Path, leads: usize, reps: usize) -> Result<(usize, Duration, Duration), String> {
    let err = |e: closeloop::EngineError| e.to_string();
    let (start, until) = (instant(YEAR_START)?, instant(REPORT_AT)?);
    let started = Instant::now();
    let t = template("lead-followup").ok_or("the lead-followup template is missing")?;
    let clock = Arc::new(ManualClock::new(start));
    let mut rt = Runtime::open(Store::open(db).map_err(|e| e.to_string())?, clock).map_err(err)?;
    rt.install(&t.app_files(), "system", false).map_err(err)?;
    rt.import_members(team(reps).as_bytes(), "system").map_err(err)?;
    drop(rt);
    let year = self::leads(leads, reps, start.as_second());
    let plan = happenings(&year, until.as_second());
    let generate = started.elapsed();
    let def = closeloop::Loader::new().map_err(|e| e.to_string())?.load(&t.app_files()).app;
    let lead = def.as_ref().and_then(|a| a.def.forms.iter().find(|f| f.id == "lead")).ok_or("no lead form")?;
    let mut escalated = vec![false; year.len()];
    let mut events = plan.iter().map(|&(at, i, what)| {
        let e = event(&year, (at, i, what), escalated[i as usize]);
        escalated[i as usize] |= what == 1;
        e
    });
    let started = Instant::now();
    let mut store = Store::open(db).map_err(|e| e.to_string())?;
    let written = store
        .bench_record_events(&FormTable::of(lead), &mut events, ("LEAD-2025-#", year.len() as i64))
        .map_err(|e| e.to_string())?;
    Ok((written, generate, started.elapsed()))
}

/// A line of `/proc/self/status` in KiB (Linux; none elsewhere): `VmHWM` (the peak resident
/// set since the last reset) or `VmRSS` (now).
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory while something ran: the peak, and what the process held when it began.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rss {
    pub peak_kib: u64,
    pub before_kib: u64,
}

/// Times `f` twice (the first run also warms the page cache) and keeps the faster run; with
/// the peak resident set over both, when it can be measured apart from what came before (Linux:
/// `clear_refs` 5 resets the peak).
fn best_of_two<T>(mut f: impl FnMut() -> Result<T, String>) -> Result<(Duration, Option<Rss>, T), String> {
    let apart = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS");
    let (mut best, mut out) = (Duration::MAX, None);
    for _ in 0..2 {
        let started = Instant::now();
        let value = f()?;
        best = best.min(started.elapsed());
        out = Some(value);
    }
    let out = out.ok_or("nothing was timed")?;
    let rss = match (apart, status_kib("VmHWM"), before) {
        (true, Some(peak_kib), Some(before_kib)) => Some(Rss { peak_kib, before_kib }),
        _ => None,
    };
    Ok((best, rss, out))
}

/// Builds the year in `db`, then times the penetration report and the SQL aggregate on it and
/// checks that they counted the same.
pub(super) fn measure(db: &Path, leads: usize, reps: usize) -> Result<Measured, String> {
    let (events, generate, write) = build(db, leads, reps)?;
    let (from, until) = (instant(YEAR_START)?, instant(REPORT_AT)?);
    let store = Store::open(db).map_err(|e| e.to_string())?;
    let (sql, sql_rss, by_sql) = best_of_two(|| {
        store
            .bench_followup_sql("lead", "contact", DAY, (&stamp(from), &stamp(until)), &stamp(until))
            .map_err(|e| e.to_string())
    })?;
    let rt = Runtime::open(Store::open(db).map_err(|e| e.to_string())?, Arc::new(ManualClock::new(until)))
        .map_err(|e| e.to_string())?;
    let query = ReportQuery {
        metrics: vec!["lead_first_followup".into()],
        from: jiff::civil::date(2025, 1, 1),
        to: jiff::civil::date(2025, 12, 31),
        by: Vec::new(),
        instances: false,
    };
    let (engine, engine_rss, report) = best_of_two(|| rt.penetration(&query).map_err(|e| e.to_string()))?;
    let t = report.metrics.first().map(|m| m.tally).ok_or("the report has no lead_first_followup")?;
    if (t.population, t.penetrated, t.decided) != by_sql {
        return Err(format!(
            "the penetration report and the SQL aggregate disagree: report (population, penetrated, decided) = {:?}, SQL = {by_sql:?}",
            (t.population, t.penetrated, t.decided)
        ));
    }
    Ok(Measured {
        leads,
        events,
        generate,
        write,
        engine,
        sql,
        engine_rss,
        sql_rss,
        counts: (t.population, t.penetrated, t.decided, t.pending),
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rss_text(rss: Option<Rss>) -> String {
    match rss {
        Some(r) => format!(
            "peak RSS {:.0} MiB ({:.0} MiB above the {:.0} MiB held before)",
            mib(r.peak_kib),
            mib(r.peak_kib.saturating_sub(r.before_kib)),
            mib(r.before_kib)
        ),
        None => "peak RSS not measured on this system".into(),
    }
}

/// Runs the benchmark in a temporary folder (kept with `keep`) and says what it measured.
pub(super) fn run(leads: usize, reps: usize, keep: bool, json_output: bool) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("closeloop-bench-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let db = dir.join("year.db");
    let measured = measure(&db, leads, reps.max(1));
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let m = measured?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ratio = m.engine.as_secs_f64() / m.sql.as_secs_f64().max(f64::EPSILON);
    let (population, penetrated, decided, pending) = m.counts;
    let rate = penetrated as f64 / decided.max(1) as f64;
    let kept = if keep { format!("\nkept: {}", db.display()) } else { String::new() };
    if json_output {
        let rss = |r: Option<Rss>| r.map(|r| json!({"peak_mib": mib(r.peak_kib), "before_mib": mib(r.before_kib)}));
        return Ok(serde_json::to_string_pretty(&json!({
            "leads": m.leads, "reps": reps, "events": m.events, "generate_s": m.generate.as_secs_f64(),
            "write_s": m.write.as_secs_f64(), "engine_ms": ms(m.engine), "sql_ms": ms(m.sql), "ratio": ratio,
            "engine_rss": rss(m.engine_rss), "sql_rss": rss(m.sql_rss), "population": population,
            "penetrated": penetrated, "decided": decided, "pending": pending, "agree": true,
            "db": keep.then(|| db.display().to_string()),
        }))
        .unwrap_or_default());
    }
    Ok(format!(
        "bench report: lead_first_followup (24h follow-up rate) over 2025, {reps} reps in 4 regions, one file database (WAL, synchronous=NORMAL) in a temp folder\n\
         data: {} leads, {} events (each lead created; the 24h escalation's update when late; the contact), with their records and hash chain\n\
         generated in {:.1} s, written raw in one transaction in {:.1} s ({:.0} events/s); not part of the times below\n\
         (a) closeloop penetration report (read the log, judge each lead, tally by member, region, week, month): {:>9.1} ms, {}\n\
         (b) one hand-written SQL aggregate of the same rate over the events table:                             {:>9.1} ms, {}\n\
         best of 2 runs each; the same counts: population {population}, penetrated {penetrated}, decided {decided}, pending {pending} (rate {:.1}%)\n\
         ratio (a)/(b): {ratio:.2}{kept}",
        m.leads,
        m.events,
        m.generate.as_secs_f64(),
        m.write.as_secs_f64(),
        m.events as f64 / m.write.as_secs_f64().max(f64::EPSILON),
        ms(m.engine),
        rss_text(m.engine_rss),
        ms(m.sql),
        rss_text(m.sql_rss),
        rate * 100.0,
    ))
}
