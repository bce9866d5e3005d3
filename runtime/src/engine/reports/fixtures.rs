//! The metric fixture corpus: event logs under `tests/data/metrics/` whose answers were worked
//! out by hand from the definition (docs/metrics.md), replayed through a real store.
//!
//! Each file names an app (a bundled template, or a folder under `tests/data/metrics/apps/`),
//! a metric, a period and a report time, the events as the engine writes them and the tasks'
//! rows, and what the report must say. The events go through the store's own append, so the
//! hash chain holds and the report reads them exactly as it reads a live database. Adding a
//! file adds a case; a mismatch names the file and the field.
//!
//! ```yaml
//! about: what it checks, with the hand computation
//! app: lead-followup               # or apps/NAME
//! metric: lead_first_followup
//! from: 2026-11-02                 # the period, in the app's time zone
//! to: 2026-11-08
//! now: 2026-11-10T12:00:00+08:00   # the report time
//! members: |                       # optional: a directory instead of the app's sample
//!   id,name,roles,region,manager,active,capacity
//! events:
//!   - {at: 2026-11-02T09:00:00+08:00, kind: record.created, record: LEAD-2026-00001,
//!      actor: system, body: {state: new, owner: m_li}, data: {region: east}}
//! tasks:
//!   - {record: ACC-00001, sop: after_payment, task: satisfaction_call, created_at: ...,
//!      due_at: ..., done_at: ..., status: done}
//! expect:
//!   population: 3          # and penetrated, decided, pending, rate (null when none decided)
//!   falloff: [{step: contact, reason: late, count: 1}]
//!   breakdowns: {member: [{key: m_li, population: 2, penetrated: 1}]}   # optional
//!   trend: [{key: 2026-W45, population: 3}]                             # optional
//!   instances: [{record: LEAD-2026-00001, outcome: missed, fell_off: {step: contact, reason: late}, member: m_li}]
//! ```
//!
//! Groups and instances are compared on the fields the fixture gives; instants compare as
//! instants whatever their offset, rates to three decimals.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ReportQuery;
use crate::clock::{stamp, ManualClock};
use crate::engine::Runtime;
use crate::store::tasks::{self, TaskRow};
use crate::store::{audit, NewEvent, Store, StoreError, TaskStatus};

/// One fixture file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    about: String,
    app: String,
    metric: String,
    from: String,
    to: String,
    now: String,
    #[serde(default)]
    members: Option<String>,
    events: Vec<Event>,
    #[serde(default)]
    tasks: Vec<Task>,
    expect: Map<String, Value>,
}

/// An event as the engine writes it (its time with any offset; stored in UTC).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    at: String,
    kind: String,
    record: String,
    actor: String,
    body: Map<String, Value>,
    /// The record's data after a record event (where the reports find its `region`).
    #[serde(default)]
    data: Option<Map<String, Value>>,
    /// The form, when not the metric's.
    #[serde(default)]
    form: Option<String>,
}

/// A task's row.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Task {
    record: String,
    sop: String,
    task: String,
    created_at: String,
    #[serde(default)]
    due_at: Option<String>,
    #[serde(default)]
    done_at: Option<String>,
    status: String,
    #[serde(default)]
    assignee: Option<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus() -> Vec<PathBuf> {
    let dir = root().join("tests/data/metrics");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (node, diags) = crate::yaml::parse(&path.display().to_string(), &text, crate::yaml::Limits::default());
    let Some(node) = node else { panic!("{}: not YAML: {diags:?}", path.display()) };
    serde_json::from_value(node.to_json()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn instant(file: &str, text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{file}: `{text}` is not an RFC 3339 instant: {e}"))
}

/// A temporary folder, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fixture's store: a real SQLite file with the app, its members, the events and the tasks.
fn replay(name: &str, fx: &Fixture, dir: &Path) -> Runtime {
    std::fs::create_dir_all(dir).unwrap();
    let clock = Arc::new(ManualClock::new(instant(name, &fx.now)));
    let mut rt = Runtime::open(Store::open(&dir.join("closeloop.db")).unwrap(), clock).unwrap();
    let (files, sample) = match crate::template(&fx.app) {
        Some(t) => {
            let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").map(|(_, text)| text.to_string());
            (t.app_files(), members)
        }
        None => {
            let folder = root().join("tests/data/metrics").join(&fx.app);
            let files = crate::read_app(&folder, 1 << 20).unwrap_or_else(|d| panic!("{name}: {}", d.message));
            (files, std::fs::read_to_string(folder.join("data/members.csv")).ok())
        }
    };
    rt.install(&files, "system", false).unwrap_or_else(|e| panic!("{name}: install: {e}"));
    let app = rt.apps.keys().next().cloned().unwrap();
    if let Some(members) = fx.members.clone().or(sample) {
        rt.import_members(members.as_bytes(), "system").unwrap_or_else(|e| panic!("{name}: members: {e}"));
    }
    let form = rt.apps[&app].app.def.metrics.iter().find(|m| m.id == fx.metric).map(|m| m.form.clone());
    let form = form.unwrap_or_else(|| panic!("{name}: app {app} has no metric {}", fx.metric));
    rt.store
        .write(|tx| {
            let mut versions: std::collections::HashMap<&str, i64> = Default::default();
            for e in &fx.events {
                let at = stamp(instant(name, &e.at));
                let mut body = e.body.clone();
                // Stored like every instant the engine writes: UTC, microseconds.
                if let Some(Value::String(due)) = body.get("due_at") {
                    body.insert("due_at".into(), json!(stamp(instant(name, due))));
                }
                let body = Value::Object(body).to_string();
                let data = e.data.as_ref().map(|d| Value::Object(d.clone()).to_string());
                let hash = data.as_deref().map(|d| crate::store::sha256_hex(d.as_bytes()));
                let version = e.kind.starts_with("record.").then(|| {
                    let v = versions.entry(e.record.as_str()).or_default();
                    *v += 1;
                    *v
                });
                audit::append(
                    tx,
                    &NewEvent {
                        at: &at,
                        actor: &e.actor,
                        kind: &e.kind,
                        form: Some(e.form.as_deref().unwrap_or(&form)),
                        record: Some(&e.record),
                        version,
                        body: &body,
                        data: data.as_deref(),
                        data_hash: hash.as_deref(),
                    },
                )?;
            }
            for t in &fx.tasks {
                let stamped = |s: &Option<String>| s.as_deref().map(|s| stamp(instant(name, s)));
                let row = TaskRow {
                    id: 0,
                    app: app.clone(),
                    form: form.clone(),
                    record: t.record.clone(),
                    sop: t.sop.clone(),
                    task: t.task.clone(),
                    title: t.task.clone(),
                    assignee: t.assignee.clone(),
                    due: stamped(&t.due_at),
                    due_at: stamped(&t.due_at),
                    status: TaskStatus::Open,
                    created_at: stamp(instant(name, &t.created_at)),
                    done_at: None,
                    done_by: None,
                    evidence: None,
                };
                let id = tasks::open(tx, &row)?.unwrap_or_else(|| panic!("{name}: task {} opened twice", t.task));
                let status: TaskStatus = t.status.parse()?;
                if status == TaskStatus::Open {
                    continue;
                }
                let at =
                    stamped(&t.done_at).unwrap_or_else(|| panic!("{name}: task {} closed without done_at", t.task));
                let by = t.assignee.as_deref().unwrap_or("system");
                tasks::close(tx, id, status, &at, by, None)?;
                if status == TaskStatus::Done {
                    let late = row.due_at.as_deref().is_some_and(|d| at.as_str() > d);
                    let body = json!({"task": id, "sop": t.sop, "step": t.task, "title": t.task,
                                      "evidence": {"summary": "fixture"}, "late": late});
                    let about = Some((form.as_str(), t.record.as_str()));
                    audit::append(tx, &NewEvent::note(&at, by, "task.done", about, &body.to_string()))?;
                }
            }
            Ok::<_, StoreError>(())
        })
        .unwrap_or_else(|e| panic!("{name}: writing the log: {e}"));
    rt
}

/// Whether `actual` matches what a fixture `expected`: the fields it gives, instants as
/// instants, numbers to three decimals, a missing field as null.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().all(|(k, v)| matches(v, a.get(k).unwrap_or(&Value::Null))),
        (Value::Number(e), Value::Number(a)) => {
            (e.as_f64().unwrap_or(f64::NAN) - a.as_f64().unwrap_or(f64::NAN)).abs() < 5e-4
        }
        (Value::String(e), Value::String(a)) if e != a => {
            matches!((e.parse::<Timestamp>(), a.parse::<Timestamp>()), (Ok(x), Ok(y)) if x == y)
        }
        (Value::Array(e), Value::Array(a)) => e.len() == a.len() && e.iter().zip(a).all(|(x, y)| matches(x, y)),
        _ => expected == actual,
    }
}

/// Every way the report differs from what the fixture expects.
fn compare(expect: &Map<String, Value>, report: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |field: String, expected: &Value, actual: &Value| {
        if !matches(expected, actual) {
            problems.push(format!("{field}: expected {expected}, got {actual}"));
        }
    };
    for key in ["population", "penetrated", "decided", "pending", "rate"] {
        match expect.get(key) {
            Some(e) => check(key.into(), e, &report[key]),
            None => check(key.into(), &json!("(given)"), &json!("(not given in the fixture)")),
        }
    }
    // Where instances fell off, as a set: the order among equal counts is presentation.
    let as_set = |v: &Value| {
        let mut rows: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| format!("{} {} {}", f["step"], f["reason"], f["count"]))
            .collect();
        rows.sort();
        rows
    };
    let falloff = expect.get("falloff").cloned().unwrap_or(json!([]));
    let (e, a) = (as_set(&falloff), as_set(&report["falloff"]));
    check("falloff".into(), &json!(e), &json!(a));
    if let Some(Value::Object(by)) = expect.get("breakdowns") {
        for (dim, groups) in by {
            let actual = report["breakdowns"]
                .as_array()
                .and_then(|bs| bs.iter().find(|b| b["by"] == json!(dim)))
                .map(|b| b["groups"].clone())
                .unwrap_or(Value::Null);
            check(format!("breakdowns.{dim}"), groups, &actual);
        }
    }
    if let Some(trend) = expect.get("trend") {
        check("trend".into(), trend, &report["trend"]);
    }
    if let Some(Value::Array(wanted)) = expect.get("instances") {
        let got = report["instances"].as_array().cloned().unwrap_or_default();
        // The report lists a record's instances together, in start order; the fixture may
        // list records in any order, each record's instances in start order.
        let mut wanted: Vec<&Value> = wanted.iter().collect();
        wanted.sort_by_key(|i| i["record"].as_str().unwrap_or_default().to_string());
        if wanted.len() != got.len() {
            let ids: Vec<&Value> = got.iter().map(|i| &i["record"]).collect();
            check("instances".into(), &json!(wanted.len()), &json!(format!("{} instances: {ids:?}", got.len())));
        }
        for (e, a) in wanted.iter().zip(&got) {
            check(format!("instances[{}]", e["record"]), e, a);
        }
    }
    problems
}

#[test]
fn every_metric_fixture_gives_its_hand_computed_answer() {
    let mut problems = Vec::new();
    for path in corpus() {
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let fx = read(&path);
        assert!(!fx.about.trim().is_empty(), "{name}: say what the fixture checks in `about`");
        let dir = Scratch(std::env::temp_dir().join(format!(
            "closeloop-metric-{}-{}",
            std::process::id(),
            name.trim_end_matches(".yaml")
        )));
        let rt = replay(&name, &fx, &dir.0);
        let day = |s: &str| s.parse().unwrap_or_else(|e| panic!("{name}: `{s}` is not a date: {e}"));
        let query = ReportQuery {
            metrics: vec![fx.metric.clone()],
            from: day(&fx.from),
            to: day(&fx.to),
            by: Vec::new(),
            instances: true,
        };
        let report = rt.penetration(&query).unwrap_or_else(|e| panic!("{name}: {e}"));
        let metric = serde_json::to_value(&report.metrics[0]).unwrap();
        problems.extend(compare(&fx.expect, &metric).into_iter().map(|p| format!("{name}: {p}")));
    }
    assert!(problems.is_empty(), "the reports differ from the hand-computed answers:\n{}", problems.join("\n"));
}

#[test]
fn the_corpus_holds_at_least_twelve_cases() {
    let n = corpus().len();
    assert!(n >= 12, "tests/data/metrics holds {n} fixtures; the corpus promises at least 12");
}

#[test]
fn the_matcher_fails_on_a_wrong_count_a_missing_instance_and_an_instant_elsewhere() {
    let report = json!({"population": 2, "penetrated": 1, "decided": 2, "pending": 0, "rate": 0.5, "falloff": [],
        "instances": [{"record": "A", "outcome": "missed", "deadline": "2026-11-03T09:00:00+08:00"}]});
    let expect = |v: Value| v.as_object().cloned().unwrap();
    let base = json!({"population": 2, "penetrated": 1, "decided": 2, "pending": 0, "rate": 0.5, "falloff": []});
    assert!(compare(&expect(base.clone()), &report).is_empty());
    let mut wrong = base.clone();
    wrong["penetrated"] = json!(2);
    assert_eq!(compare(&expect(wrong), &report).len(), 1);
    let mut same_instant = base.clone();
    same_instant["instances"] = json!([{"record": "A", "deadline": "2026-11-03T01:00:00Z"}]);
    assert!(compare(&expect(same_instant), &report).is_empty());
    let mut other_instant = base.clone();
    other_instant["instances"] = json!([{"record": "A", "deadline": "2026-11-03T01:01:00Z"}]);
    assert_eq!(compare(&expect(other_instant), &report).len(), 1);
    let mut two = base;
    two["instances"] = json!([{"record": "A"}, {"record": "B"}]);
    assert!(!compare(&expect(two), &report).is_empty());
}
