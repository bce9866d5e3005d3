//! Reports: action penetration, the one number closeloop exists to move, computed from the
//! event log alone.
//!
//! For each metric an app declares, every start event in the period is an *instance*. It
//! penetrates when its end happened within the deadline (clock or business time, on the app's
//! calendar) and along the path: each path step recorded, in order, none overdue. Instances
//! still inside their deadline are *pending*; the others are *decided*, and the rate is
//! penetrated / decided. Each decided instance that did not penetrate says where it fell off
//! the path, which is what a supervisor acts on. docs/metrics.md has the definition with a
//! worked example.
//!
//! The log is read form by form in record order ([`timeline`]), each instance is judged on its
//! own ([`judge`]), and the judgements are counted into totals, breakdowns and a trend
//! ([`tally`]).

mod figures;
#[cfg(test)]
mod fixtures;
mod judge;
mod render;
mod tally;
mod timeline;

use std::collections::HashMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::calendar::WorkCalendar;
use crate::engine::{EngineError, Runtime};
use crate::model::{AppDef, Dimension, Label, Metric, Milestone};
use crate::store::members::MemberRow;
use crate::store::{metrics, tasks};

pub use figures::{
    Figures, FiguresQuery, HealthBucket, HealthDistribution, LowScore, SigningCycle, StepOverdue, SunkGroup, SunkLeads,
    TaskCompletion, TaskCounts, TaskLine,
};
pub use judge::{FellOff, Outcome, Reason};
pub use render::{percent, to_csv, to_html, MIN_DECIDED};
pub use tally::{Breakdown, Group, Tally};

/// What to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// Metric ids; empty means every metric of every installed app.
    pub metrics: Vec<String>,
    /// The first day of the period (in each app's time zone).
    pub from: Date,
    /// The last day of the period, included.
    pub to: Date,
    /// Breakdowns to give; empty means each metric's own `breakdown`.
    pub by: Vec<Dimension>,
    /// Also list every instance with its outcome.
    pub instances: bool,
}

/// The penetration report over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PenetrationReport {
    /// The first day of the period.
    pub from: String,
    /// The last day of the period, included.
    pub to: String,
    /// When the report was computed (RFC 3339, in the first app's time zone): instances whose
    /// deadline is later are pending.
    pub at: String,
    /// One entry per metric.
    pub metrics: Vec<MetricReport>,
}

/// One metric over the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricReport {
    /// The app that declares it.
    pub app: String,
    /// Its id.
    pub id: String,
    /// Its name for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// The form whose records it follows.
    pub form: String,
    /// The share it should reach, 0 to 1.
    pub target: f64,
    /// The deadline, as the app writes it (`24h`, `5 business days`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// The standard path's steps, in order, then the end.
    pub path: Vec<String>,
    /// The totals.
    #[serde(flatten)]
    pub tally: Tally,
    /// Where decided instances fell off the path, the most common first.
    pub falloff: Vec<Falloff>,
    /// The breakdowns asked for.
    pub breakdowns: Vec<Breakdown>,
    /// The rate week by week over the period (month by month over a period of more than 16
    /// weeks), by when instances started.
    pub trend: Vec<Group>,
    /// Every instance, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<Instance>,
}

/// How many decided instances fell off at one step for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Falloff {
    /// The step.
    pub step: String,
    /// Why.
    pub reason: Reason,
    /// How many instances.
    pub count: usize,
}

/// One start event and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// The record.
    pub record: String,
    /// When it started (RFC 3339 in the app's time zone).
    pub start: String,
    /// When its end was due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// When its end happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Penetrated, missed or pending.
    pub outcome: Outcome,
    /// Where it fell off the path, when it was missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fell_off: Option<FellOff>,
    /// Whom it counts for: the record's owner when it was decided (at its end, or at its
    /// deadline when that came first); for a pending instance, its owner now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// That member's region, else the record's `region`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// That member's team: the manager they report to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// The name a milestone has in reports: the action, event, chain, step or task it names.
pub fn milestone_name(m: &Milestone) -> String {
    match m {
        Milestone::Created(_) => "created".into(),
        Milestone::State(s) => format!("state {s}"),
        Milestone::Action(s)
        | Milestone::Event(s)
        | Milestone::Approval(s)
        | Milestone::ApprovalStep(s)
        | Milestone::Task(s)
        | Milestone::Tasks(s) => s.clone(),
    }
}

/// The events an approval run is read from.
pub(crate) const RUN_KINDS: &[&str] = &[
    "approval.started",
    "approval.step_opened",
    "approval.approved",
    "approval.rejected",
    "approval.step_skipped",
    "approval.finished",
    "approval.recalled",
    "approval.reset",
];

/// The event kinds a metric's milestones are found in, beside the record events every metric
/// reads for owners and states.
fn kinds_for(metric: &Metric) -> Vec<&'static str> {
    let mut kinds = vec!["record.created", "record.action", "record.updated"];
    for m in std::iter::once(&metric.start).chain(std::iter::once(&metric.end)).chain(&metric.path) {
        match m {
            Milestone::Event(_) => kinds.push("event.received"),
            Milestone::Approval(_) | Milestone::ApprovalStep(_) => kinds.extend(RUN_KINDS),
            // Tasks are read from their rows (opened, due, done), which `audit verify` checks
            // against the `task.done` events.
            Milestone::Created(_)
            | Milestone::Action(_)
            | Milestone::State(_)
            | Milestone::Task(_)
            | Milestone::Tasks(_) => {}
        }
    }
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// What judging a metric needs besides the log: the calendar, the period and the directory.
pub(crate) struct Frame<'a> {
    pub cal: WorkCalendar,
    pub tz: TimeZone,
    pub from: Timestamp,
    pub until: Timestamp,
    pub now: Timestamp,
    pub members: &'a HashMap<&'a str, &'a MemberRow>,
    /// The metric's form's final states: a record that enters one has left the path.
    pub finals: Vec<String>,
}

impl Runtime {
    /// The penetration report: each metric asked for over the period, from the event log.
    pub fn penetration(&self, query: &ReportQuery) -> Result<PenetrationReport, EngineError> {
        check_period(query.from, query.to)?;
        let declared: Vec<(&str, &Metric)> = self
            .apps
            .values()
            .flat_map(|a| a.app.def.metrics.iter().map(move |m| (a.app.def.app.id.as_str(), m)))
            .collect();
        for wanted in &query.metrics {
            if !declared.iter().any(|(_, m)| &m.id == wanted) {
                let known: Vec<&str> = declared.iter().map(|(_, m)| m.id.as_str()).collect();
                let hint = crate::suggest::closest(wanted, known.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| format!("; the metrics are: {}", known.join(", ")));
                return Err(EngineError::Input(format!("there is no metric `{wanted}`{hint}")));
            }
        }
        let directory = crate::store::members::list(self.store.reader())?;
        let members: HashMap<&str, &MemberRow> = directory.iter().map(|m| (m.id.as_str(), m)).collect();
        let now = self.clock.now();
        let mut out = Vec::new();
        // The report's own time reads in the first app's zone (the apps of one team share one).
        let report_tz = declared
            .first()
            .and_then(|(app, _)| self.apps.get(*app))
            .map(|a| WorkCalendar::of_app(&a.app.def).time_zone().clone())
            .unwrap_or(TimeZone::UTC);
        for (app_id, metric) in declared {
            if !query.metrics.is_empty() && !query.metrics.contains(&metric.id) {
                continue;
            }
            let Some(app) = self.apps.get(app_id) else { continue };
            let frame = Frame::of(&app.app.def, &metric.form, (query.from, query.to), now, &members)?;
            out.push(self.metric_report(app_id, metric, &frame, query)?);
        }
        Ok(PenetrationReport {
            from: query.from.to_string(),
            to: query.to.to_string(),
            at: now.to_zoned(report_tz).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            metrics: out,
        })
    }

    fn metric_report(
        &self,
        app: &str,
        metric: &Metric,
        frame: &Frame<'_>,
        query: &ReportQuery,
    ) -> Result<MetricReport, EngineError> {
        let dims = if query.by.is_empty() { metric.breakdown.clone() } else { query.by.clone() };
        let mut counter = tally::Counter::new(frame, dims, query.instances);
        self.each_judged(metric, frame, &mut |j| counter.add(j))?;
        let mut path: Vec<String> = metric.path.iter().map(milestone_name).collect();
        let end = milestone_name(&metric.end);
        if path.last() != Some(&end) {
            path.push(end);
        }
        Ok(counter.report(app, metric, path))
    }

    /// Every instance of `metric` that started in the frame's period, judged and shown. The
    /// figures judge metrics of their own with it (leads sunk is the lead metric judged
    /// against 72 hours).
    pub(super) fn judged(&self, metric: &Metric, frame: &Frame<'_>) -> Result<Vec<Instance>, EngineError> {
        let mut out = Vec::new();
        self.each_judged(metric, frame, &mut |j| out.push(j.shown(&frame.tz)))?;
        Ok(out)
    }

    /// Judges every instance of `metric` that started in the frame's period, handing each to
    /// `visit` as it comes: the log read record by record, each record's timeline judged on
    /// its own, nothing held beyond one record.
    fn each_judged(
        &self,
        metric: &Metric,
        frame: &Frame<'_>,
        visit: &mut dyn FnMut(judge::Judged),
    ) -> Result<(), EngineError> {
        let reader = self.store.reader();
        let uses_tasks = std::iter::once(&metric.end)
            .chain(&metric.path)
            .any(|m| matches!(m, Milestone::Task(_) | Milestone::Tasks(_)));
        let all_tasks = if uses_tasks { tasks::of_form(reader, &metric.form)? } else { Vec::new() };
        let mut tasks = all_tasks.as_slice();
        let mut record: Vec<metrics::LogRow> = Vec::new();
        let mut flush = |rows: &mut Vec<metrics::LogRow>| {
            let Some(first) = rows.first() else { return };
            let id = first.record.clone();
            // Tasks come ordered by record as the log does; skip those of records with no event.
            while tasks.first().is_some_and(|t| t.record < id) {
                tasks = &tasks[1..];
            }
            let n = tasks.iter().take_while(|t| t.record == id).count();
            let line = timeline::Timeline::of(std::mem::take(rows), &tasks[..n]);
            tasks = &tasks[n..];
            for judged in judge::instances(metric, &line, frame) {
                visit(judged);
            }
        };
        metrics::each_event(reader, &metric.form, &kinds_for(metric), &mut |row| {
            if record.last().is_some_and(|r| r.record != row.record) {
                flush(&mut record);
            }
            record.push(row);
            Ok(())
        })?;
        flush(&mut record);
        Ok(())
    }
}

/// Refuses a period that ends before it starts.
/// The longest period a report covers: ten years of weeks is already 520 trend points.
pub const MAX_PERIOD_DAYS: i32 = 3_660;

fn check_period(from: Date, to: Date) -> Result<(), EngineError> {
    if from > to {
        return Err(EngineError::Input(format!(
            "the period starts ({from}) after it ends ({to}); its first day must not come after its last"
        )));
    }
    // Found by fuzzing: a period from the year 112 made a trend of 99,000 weeks and held a
    // server worker for seconds.
    let days = to.since(from).map(|s| s.get_days()).unwrap_or(i32::MAX);
    if days > MAX_PERIOD_DAYS {
        return Err(EngineError::Input(format!(
            "the period from {from} to {to} is {days} days; a report covers at most {MAX_PERIOD_DAYS} days (ten years): ask for a shorter one"
        )));
    }
    Ok(())
}

impl<'a> Frame<'a> {
    /// The frame of a metric of `app` on `form` over the days `period` (first and last, in the
    /// app's time zone), judged at `now`.
    pub(crate) fn of(
        app: &AppDef,
        form: &str,
        period: (Date, Date),
        now: Timestamp,
        members: &'a HashMap<&'a str, &'a MemberRow>,
    ) -> Result<Frame<'a>, EngineError> {
        let cal = WorkCalendar::of_app(app);
        let tz = cal.time_zone().clone();
        let (from, until) = bounds(&tz, period)?;
        let finals = app
            .forms
            .iter()
            .filter(|f| f.id == form)
            .flat_map(|f| f.states.iter().filter(|s| s.is_final == Some(true)).map(|s| s.id.clone()))
            .collect();
        Ok(Frame { cal, tz, from, until, now, members, finals })
    }
}

/// The instants a period of days starts and ends at (its last day included) in `tz`.
pub(crate) fn bounds(tz: &TimeZone, (first, last): (Date, Date)) -> Result<(Timestamp, Timestamp), EngineError> {
    let day = |d: Date| d.to_zoned(tz.clone()).map(|z| z.timestamp());
    match (day(first), day(last.tomorrow().unwrap_or(last))) {
        (Ok(from), Ok(until)) => Ok((from, until)),
        _ => Err(EngineError::Input("the period is out of range".into())),
    }
}
