//! Action penetration through the real engine: records written by submit, act, approve and
//! tasks on a real database (a SQLite file, or PostgreSQL), then the report read back from the
//! event log.

use std::sync::Arc;

use closeloop::clock::{Clock, ManualClock};
use closeloop::reports::{Outcome, Reason, ReportQuery};
use closeloop::{template, Runtime};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map, Value};

use crate::support::TempDir;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn day(text: &str) -> jiff::civil::Date {
    text.parse().unwrap()
}

/// The lead template on a file, Monday 2026-11-02 09:00 in Shanghai.
fn leads(dir: &TempDir) -> (Runtime, Arc<ManualClock>) {
    std::fs::create_dir_all(&dir.0).unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-02T09:00:00+08:00")));
    let store = crate::support::store_in(dir);
    let mut rt = Runtime::open(store, clock.clone()).unwrap();
    let t = template("lead-followup").unwrap();
    rt.install(&t.app_files(), "system", false).unwrap();
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1;
    rt.import_members(members.as_bytes(), "system").unwrap();
    (rt, clock)
}

fn submit(rt: &mut Runtime, phone: &str) -> String {
    let data = json!({"source": "expo", "customer": "上海明远科技", "phone": phone, "region": "east", "owner": "m_li"});
    rt.submit("lead", obj(data), "m_li").unwrap().id
}

fn contact(rt: &mut Runtime, id: &str) {
    rt.act("lead", id, "contact", "m_li", obj(json!({"summary": "电话沟通", "next_step": "演示"}))).unwrap();
}

fn week(metric: &str) -> ReportQuery {
    ReportQuery {
        metrics: vec![metric.into()],
        from: day("2026-11-02"),
        to: day("2026-11-08"),
        by: Vec::new(),
        instances: true,
    }
}

#[test]
fn a_lead_contacted_at_24h00m_penetrates_and_one_at_24h01m_does_not() {
    let dir = TempDir::new("penetration-24h");
    let (mut rt, clock) = leads(&dir);
    let on_time = submit(&mut rt, "13800138001");
    let late = submit(&mut rt, "13800138002");
    let never = submit(&mut rt, "13800138003");
    clock.advance(SignedDuration::from_hours(24));
    contact(&mut rt, &on_time);
    clock.advance(SignedDuration::from_mins(1));
    contact(&mut rt, &late);
    // A lead that arrives now is still inside its 24 hours when the report runs.
    let pending = submit(&mut rt, "13800138004");
    clock.advance(SignedDuration::from_hours(1));
    let report = rt.penetration(&week("lead_first_followup")).unwrap();
    let m = &report.metrics[0];
    assert_eq!((m.tally.population, m.tally.penetrated, m.tally.decided, m.tally.pending), (4, 1, 3, 1));
    let outcome = |id: &str| m.instances.iter().find(|i| i.record == id).unwrap().clone();
    assert_eq!(outcome(&on_time).outcome, Outcome::Penetrated);
    assert_eq!(outcome(&late).outcome, Outcome::Missed);
    assert_eq!(outcome(&late).fell_off.unwrap().reason, Reason::Late);
    assert_eq!(outcome(&never).fell_off.unwrap().reason, Reason::Missing);
    assert_eq!(outcome(&pending).outcome, Outcome::Pending);
    assert_eq!(outcome(&on_time).member.as_deref(), Some("m_li"));
    assert_eq!(outcome(&on_time).region.as_deref(), Some("east"));
    // The period is by start: the same leads are not in the next week's population.
    let next = ReportQuery { from: day("2026-11-09"), to: day("2026-11-15"), ..week("lead_first_followup") };
    assert_eq!(rt.penetration(&next).unwrap().metrics[0].tally.population, 0);
}

#[test]
fn an_unknown_metric_or_a_backwards_period_is_refused_with_what_to_do() {
    let dir = TempDir::new("penetration-unknown");
    let (rt, _) = leads(&dir);
    let e = rt.penetration(&week("lead_first_folowup")).unwrap_err().to_string();
    assert!(e.contains("did you mean `lead_first_followup`"), "{e}");
    let backwards = ReportQuery { from: day("2026-11-08"), to: day("2026-11-02"), ..week("lead_first_followup") };
    let e = rt.penetration(&backwards).unwrap_err().to_string();
    assert!(e.contains("its first day must not come after its last"), "{e}");
}

#[test]
fn a_report_over_nineteen_centuries_is_refused_at_once_instead_of_holding_a_worker() {
    // Found by the HTTP fuzz target: `from=0112-11-01&to=2020-10-30&by=member,week` built a
    // trend of 99,000 weeks and took over five seconds.
    let dir = TempDir::new("penetration-centuries");
    let (rt, _) = leads(&dir);
    let started = std::time::Instant::now();
    let long = ReportQuery { from: day("0112-11-01"), to: day("2020-10-30"), ..week("lead_first_followup") };
    let e = rt.penetration(&long).unwrap_err().to_string();
    assert!(e.contains("at most 3660 days") && e.contains("ask for a shorter one"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let ten_years = ReportQuery { from: day("2016-11-01"), to: day("2026-10-30"), ..week("lead_first_followup") };
    assert!(rt.penetration(&ten_years).is_ok());
}

/// Two weeks of leads on the lead template's team, written through the engine on the file the
/// binary reads: each rep answers at their own pace, so members and regions differ.
fn two_weeks(cli: &crate::support::Cli) {
    let clock = Arc::new(ManualClock::new(at("2026-11-02T09:00:00+08:00")));
    let mut rt = Runtime::open(cli.store(), clock.clone()).unwrap();
    let t = template("lead-followup").unwrap();
    rt.install(&t.app_files(), "system", false).unwrap();
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1;
    rt.import_members(members.as_bytes(), "system").unwrap();
    // (rep, region, hours to the first contact by lead; 0 = never).
    let reps =
        [("m_li", "east", [2, 5, 23, 30]), ("m_wang", "east", [1, 26, 40, 0]), ("m_zhou", "south", [3, 4, 6, 8])];
    let mut open: Vec<(Timestamp, String, String)> = Vec::new();
    for day in 0..14 {
        for (n, (rep, region, delays)) in reps.iter().enumerate() {
            let data = json!({"source": "expo", "customer": format!("客户{day}-{n}"), "phone": format!("1380000{day:02}{n:02}"),
                              "region": region, "owner": rep});
            let id = rt.submit("lead", obj(data), rep).unwrap().id;
            let hours = delays[day % 4];
            if hours > 0 {
                open.push((clock.now() + SignedDuration::from_hours(hours), id, rep.to_string()));
            }
        }
        clock.advance(SignedDuration::from_hours(24));
        open.sort();
        while open.first().is_some_and(|(due, _, _)| *due <= clock.now()) {
            let (due, id, rep) = open.remove(0);
            let now = clock.now();
            clock.set(due);
            rt.act("lead", &id, "contact", &rep, obj(json!({"summary": "电话沟通", "next_step": "演示"}))).unwrap();
            clock.set(now);
        }
    }
}

#[test]
fn report_penetration_through_the_binary_in_json_csv_and_html_that_chromium_draws() {
    let cli = crate::support::Cli::new("penetration-cli", "2026-11-20T09:00:00+08:00");
    two_weeks(&cli);
    let period = ["--from", "2026-11-02", "--to", "2026-11-15"];
    let args = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec!["report", "penetration", "lead_first_followup"];
        a.extend(period);
        a.extend_from_slice(extra);
        a
    };
    let json = cli.json(&args(&["--by", "member,region"]));
    let m = &json["metrics"][0];
    // 42 leads, 14 a rep. Days 0-13 take the 4-day cycle's delays 4, 4, 3 and 3 times: m_li is
    // in time at 2h, 5h and 23h (4 + 4 + 3 = 11), m_wang at 1h only (4), m_zhou always (14).
    // 29 of 42 penetrated; the last deadline (11-16 09:00) is before the report: none pending.
    assert_eq!(m["population"], 42, "{m}");
    assert_eq!((m["penetrated"].as_u64(), m["decided"].as_u64(), m["pending"].as_u64()), (Some(29), Some(42), Some(0)));
    let members = &m["breakdowns"][0]["groups"];
    let zhou = members.as_array().unwrap().iter().find(|g| g["key"] == "m_zhou").unwrap();
    assert_eq!(zhou["rate"], 1.0);
    let csv = cli.ok(&args(&["--format", "csv"]));
    assert!(csv.lines().any(|l| l.starts_with("lead_first_followup,total,,42,29,42,0,")), "{csv}");
    let html = cli.path("penetration.html");
    let html_arg = html.to_str().unwrap().to_string();
    let mut a: Vec<&str> = args(&["--format", "html", "--by", "member,region", "--out"]);
    a.push(&html_arg);
    cli.ok(&a);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("24 小时跟进率"), "{page}");
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
    // A real browser draws it: the SVG survives parsing and the screenshot is not blank.
    let shot = cli.path("penetration.png");
    let chromium = |extra: &[&str]| {
        std::process::Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,1800"])
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .output()
            .unwrap_or_else(|e| panic!("chromium is needed (apt-get install chromium): {e}"))
    };
    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom"]).stdout).into_owned();
    assert!(dom.contains("<svg") && dom.contains("<rect"), "{dom}");
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.len() > 10_000, "a screenshot of {} bytes is blank", png.len());
    // Kept for a person to look at.
    let _ = std::fs::copy(&shot, std::env::temp_dir().join("closeloop-penetration.png"));
    let _ = std::fs::copy(&html, std::env::temp_dir().join("closeloop-penetration.html"));
}

#[test]
fn bench_report_counts_what_sql_counts_on_a_year_that_verifies_and_that_report_penetration_reads_alike() {
    let cli = crate::support::Cli::new("penetration-bench", "2026-01-01T00:00:00+08:00");
    let bench = cli.json(&["bench", "report", "--leads", "1500", "--reps", "12", "--keep"]);
    assert_eq!(bench["agree"], true, "{bench}");
    assert_eq!(bench["population"], 1500, "{bench}");
    let (penetrated, decided, pending) =
        (bench["penetrated"].as_u64().unwrap(), bench["decided"].as_u64().unwrap(), bench["pending"].as_u64().unwrap());
    // Some leads are missed (late, never contacted) and the last hours' are still pending.
    assert!(penetrated > 0 && penetrated < decided && pending > 0 && decided + pending == 1500, "{bench}");
    let db = bench["db"].as_str().unwrap().to_string();
    let at_db = |args: &[&str]| {
        let mut full = vec!["--db", &db, "--now", "2026-01-01T00:00:00+08:00", "--format", "json"];
        full.extend_from_slice(args);
        crate::support::closeloop(&full)
    };
    // The raw year is the write gate's own rows: the chain verifies and the CLI reads the same.
    let verify = at_db(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", crate::support::stdout(&verify));
    let report = at_db(&["report", "penetration", "lead_first_followup", "--from", "2025-01-01", "--to", "2025-12-31"]);
    let report: Value = serde_json::from_str(&crate::support::stdout(&report)).unwrap();
    let m = &report["metrics"][0];
    assert_eq!((m["penetrated"].as_u64(), m["decided"].as_u64()), (Some(penetrated), Some(decided)), "{m}");
    let _ = std::fs::remove_dir_all(std::path::Path::new(&db).parent().unwrap());
}
