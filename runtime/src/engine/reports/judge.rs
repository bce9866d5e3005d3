//! One instance of a metric, judged: penetrated, missed or pending, and where it fell off.

use jiff::Timestamp;
use serde::Serialize;

use super::timeline::{Fact, TaskFact, Timeline, What};
use super::{milestone_name, Frame, Instance};
use crate::calendar::{shift, Anchor};
use crate::model::{Metric, Milestone};
use crate::timespec::Duration;
use jiff::tz::TimeZone;

/// What became of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its end happened within the deadline, along the path.
    Penetrated,
    /// Decided, and not penetrated.
    Missed,
    /// Still inside its deadline.
    Pending,
}

/// Why an instance fell off the path at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The step was never recorded.
    Missing,
    /// The step happened after the instance's deadline.
    Late,
    /// The step was done past its own due time (an approval step's timeout, a task's due date).
    Overdue,
    /// The step was recorded before a step the path puts first.
    OutOfOrder,
    /// The record left the path there: rejected, recalled, reset by an edit, or closed.
    Ended,
}

impl Reason {
    /// The reason in a few words.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Late => "late",
            Reason::Overdue => "overdue",
            Reason::OutOfOrder => "out of order",
            Reason::Ended => "ended",
        }
    }
}

/// Where an instance fell off the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FellOff {
    /// The step (or the end).
    pub step: String,
    /// Why.
    pub reason: Reason,
    /// What happened there, in words.
    pub detail: String,
}

/// An instance judged, before it is counted (and, when asked for, shown as an [`Instance`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Judged {
    pub record: String,
    pub start: Timestamp,
    pub deadline: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub outcome: Outcome,
    pub fell_off: Option<FellOff>,
    pub member: Option<String>,
    pub region: Option<String>,
    pub team: Option<String>,
}

impl Judged {
    /// The instance as reports show it, with times in the app's time zone.
    pub fn shown(self, tz: &TimeZone) -> Instance {
        let local = |ts: Timestamp| ts.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
        Instance {
            record: self.record,
            start: local(self.start),
            deadline: self.deadline.map(local),
            end: self.end.map(local),
            outcome: self.outcome,
            fell_off: self.fell_off,
            member: self.member,
            region: self.region,
            team: self.team,
        }
    }
}

/// A milestone within one instance's window.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    /// Recorded at `at`; `due` is the step's own due time, when it has one.
    Reached { at: Timestamp, seq: i64, due: Option<Timestamp> },
    /// The record left the path before it (`how`: rejected at finance, recalled, lost); `due`
    /// when the step had a due time of its own.
    Ended { at: Timestamp, how: String, due: Option<Timestamp> },
    /// Not (yet) recorded; `due` when the step has a due time of its own.
    NotYet { due: Option<Timestamp> },
}

/// The part of a record's timeline one instance owns: from its start event to the next start.
struct Window<'a> {
    facts: &'a [Fact],
    tasks: Vec<&'a TaskFact>,
    /// The first time the record entered a final state in the window, and that state.
    closed: Option<(Timestamp, String)>,
}

/// The instances of `metric` on one record that started in the period, judged.
pub(super) fn instances(metric: &Metric, line: &Timeline, frame: &Frame<'_>) -> Vec<Judged> {
    let starts: Vec<usize> = line
        .facts
        .iter()
        .enumerate()
        .filter(|(i, f)| is_start(&metric.start, f, i.checked_sub(1).map(|p| &line.facts[p])))
        .map(|(i, _)| i)
        .collect();
    let within = metric.within.as_deref().and_then(|w| w.parse::<Duration>().ok());
    let mut out = Vec::new();
    for (k, &i) in starts.iter().enumerate() {
        let start = &line.facts[i];
        if start.at < frame.from || start.at >= frame.until {
            continue;
        }
        let next = starts.get(k + 1).copied().unwrap_or(line.facts.len());
        let next_at = line.facts.get(next).map(|f| f.at);
        let facts = &line.facts[i..next];
        let tasks: Vec<&TaskFact> =
            line.tasks.iter().filter(|t| t.opened >= start.at && next_at.is_none_or(|n| t.opened < n)).collect();
        let closed = facts
            .iter()
            .skip(1)
            .find(|f| f.state.as_ref().is_some_and(|s| frame.finals.contains(s)))
            .map(|f| (f.at, f.state.clone().unwrap_or_default()));
        let window = Window { facts, tasks, closed };
        out.push(judge(metric, line, &window, within, frame));
    }
    out
}

fn is_start(m: &Milestone, f: &Fact, before: Option<&Fact>) -> bool {
    match (m, &f.what) {
        (Milestone::Created(_), What::Created) => true,
        (Milestone::Action(a), What::Action(b)) | (Milestone::Event(a), What::Event(b)) => a == b,
        (Milestone::State(s), _) => f.state.as_ref() == Some(s) && before.and_then(|b| b.state.as_ref()) != Some(s),
        (Milestone::Approval(c), What::RunStarted { chain, .. }) => c == chain,
        _ => false,
    }
}

fn judge(metric: &Metric, line: &Timeline, w: &Window<'_>, within: Option<Duration>, frame: &Frame<'_>) -> Judged {
    let start = &w.facts[0];
    let end = reach(&metric.end, w);
    let steps: Vec<(String, Reach)> = metric.path.iter().map(|m| (milestone_name(m), reach(m, w))).collect();
    let deadline = match within {
        Some(d) => shift(&frame.cal, &Anchor::Instant(start.at), d, false).and_then(|a| match a {
            Anchor::Instant(ts) => Some(ts),
            Anchor::Date(_) => None,
        }),
        // Without `within`, a path of tasks is due when its last task is.
        None => steps.iter().chain(std::iter::once(&(String::new(), end.clone()))).filter_map(due_of).max(),
    };
    let end_name = milestone_name(&metric.end);
    // The path runs through its steps to the end, so the end must come after them too.
    let mut path = steps;
    if metric.path.last() != Some(&metric.end) {
        path.push((end_name.clone(), end.clone()));
    }
    let problem = || first_problem(&path, deadline);
    let (outcome, fell_off, decided) = match &end {
        Reach::Reached { at, .. } => match (deadline.filter(|d| at > d), problem()) {
            (Some(d), p) => {
                let late = FellOff { step: end_name, reason: Reason::Late, detail: late_by(*at, start.at) };
                (Outcome::Missed, Some(p.unwrap_or(late)), d)
            }
            (None, Some(p)) => (Outcome::Missed, Some(p), *at),
            (None, None) => (Outcome::Penetrated, None, *at),
        },
        Reach::Ended { at, how, .. } => {
            let ended = FellOff { step: end_name, reason: Reason::Ended, detail: how.clone() };
            // Closed after its deadline, it was decided (missed) at the deadline.
            let decided = deadline.map_or(*at, |d| d.min(*at));
            (Outcome::Missed, Some(problem().unwrap_or(ended)), decided)
        }
        Reach::NotYet { .. } => match (deadline, certain_miss(&path, frame.now)) {
            (Some(d), _) if frame.now > d => {
                let missing = FellOff { step: end_name, reason: Reason::Missing, detail: "never recorded".into() };
                (Outcome::Missed, Some(problem().unwrap_or(missing)), d)
            }
            // Inside its deadline, an instance that can no longer penetrate is decided already.
            (_, Some((fell, at))) => (Outcome::Missed, Some(fell), at),
            _ => (Outcome::Pending, None, frame.now),
        },
    };
    let member = line.owner_at(decided).map(str::to_string);
    let row = member.as_deref().and_then(|m| frame.members.get(m));
    let region = row.and_then(|r| r.region.clone()).or_else(|| line.region_at(decided).map(str::to_string));
    Judged {
        record: line.record.clone(),
        start: start.at,
        deadline,
        end: match end {
            Reach::Reached { at, .. } => Some(at),
            _ => None,
        },
        outcome,
        fell_off,
        member,
        region,
        team: row.and_then(|r| r.manager.clone()),
    }
}

fn due_of(step: &(String, Reach)) -> Option<Timestamp> {
    match &step.1 {
        Reach::NotYet { due } | Reach::Reached { due, .. } | Reach::Ended { due, .. } => *due,
    }
}

/// The first step, in path order, that keeps the instance off the path.
fn first_problem(steps: &[(String, Reach)], deadline: Option<Timestamp>) -> Option<FellOff> {
    let mut last: Option<(Timestamp, i64, &str)> = None;
    for (name, r) in steps {
        let fell = |reason, detail: String| Some(FellOff { step: name.clone(), reason, detail });
        match r {
            Reach::NotYet { .. } => return fell(Reason::Missing, "never recorded".into()),
            Reach::Ended { how, .. } => return fell(Reason::Ended, how.clone()),
            Reach::Reached { at, seq, due } => {
                if let Some((t, s, before)) = last {
                    if (*at, *seq) < (t, s) {
                        return fell(Reason::OutOfOrder, format!("recorded before {before}"));
                    }
                }
                if let Some(due) = due.filter(|d| at > d) {
                    return fell(Reason::Overdue, format!("done {} past its due time", span(*at, due)));
                }
                if let Some(d) = deadline.filter(|d| at > d) {
                    return fell(Reason::Late, format!("done {} past the deadline", span(*at, d)));
                }
                last = Some((*at, *seq, name.as_str()));
            }
        }
    }
    None
}

/// The first step, in path order, that already keeps an unfinished instance off the path,
/// and when that became certain: a step done past its own due time or before a step the path
/// puts first, a step left undone past its own due time, or the record leaving the path.
/// Steps not recorded yet and not yet due may still come, so they decide nothing.
fn certain_miss(steps: &[(String, Reach)], now: Timestamp) -> Option<(FellOff, Timestamp)> {
    let mut last: Option<(Timestamp, i64, &str)> = None;
    for (name, r) in steps {
        let fell = |reason, detail: String, at| Some((FellOff { step: name.clone(), reason, detail }, at));
        match r {
            Reach::NotYet { due: Some(due) } if now > *due => {
                return fell(Reason::Overdue, format!("not done, {} past its due time", span(now, *due)), *due);
            }
            Reach::NotYet { .. } => {}
            Reach::Ended { how, at, .. } => return fell(Reason::Ended, how.clone(), *at),
            Reach::Reached { at, seq, due } => {
                if let Some((t, s, before)) = last {
                    if (*at, *seq) < (t, s) {
                        return fell(Reason::OutOfOrder, format!("recorded before {before}"), t);
                    }
                }
                if let Some(due) = due.filter(|d| at > d) {
                    return fell(Reason::Overdue, format!("done {} past its due time", span(*at, due)), due);
                }
                last = Some((*at, *seq, name.as_str()));
            }
        }
    }
    None
}

fn late_by(at: Timestamp, start: Timestamp) -> String {
    format!("recorded {} after the start", span(at, start))
}

/// A length of time in days, hours and minutes (`1d 2h 5m`).
fn span(later: Timestamp, earlier: Timestamp) -> String {
    let seconds = later.duration_since(earlier).as_secs().max(0);
    let minutes = seconds / 60;
    let (d, h, m) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    match (d, h) {
        // Under a minute is still late: say by how much rather than `0m`.
        (0, 0) if m == 0 => format!("{seconds}s"),
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h}h {m:02}m"),
    }
}

fn reach(m: &Milestone, w: &Window<'_>) -> Reach {
    let reached = |f: &Fact| Reach::Reached { at: f.at, seq: f.seq, due: None };
    let found = match m {
        Milestone::Created(_) => w.facts.iter().find(|f| f.what == What::Created).map(reached),
        Milestone::Action(a) => {
            w.facts.iter().skip(1).find(|f| matches!(&f.what, What::Action(b) if b == a)).map(reached)
        }
        Milestone::Event(e) => {
            w.facts.iter().skip(1).find(|f| matches!(&f.what, What::Event(b) if b == e)).map(reached)
        }
        Milestone::State(s) => w.facts.iter().skip(1).find(|f| f.state.as_ref() == Some(s)).map(reached),
        Milestone::Approval(chain) => approval(w, chain, None),
        Milestone::ApprovalStep(path) => {
            let (chain, step) = path.split_once('.').unwrap_or((path.as_str(), ""));
            approval(w, chain, Some(step))
        }
        Milestone::Task(path) => {
            let (sop, step) = path.split_once('.').unwrap_or((path.as_str(), ""));
            return tasks(w.tasks.iter().filter(|t| t.sop == sop && t.step == step).take(1).copied().collect(), w);
        }
        Milestone::Tasks(sop) => return tasks(w.tasks.iter().filter(|t| &t.sop == sop).copied().collect(), w),
    };
    found.unwrap_or_else(|| match &w.closed {
        Some((at, state)) => Reach::Ended { at: *at, how: format!("the record was closed as {state}"), due: None },
        None => Reach::NotYet { due: None },
    })
}

/// A chain approved (its last approver step passed, before any signature), or one step of it
/// passed or skipped, in the first run of the chain the window holds.
fn approval(w: &Window<'_>, chain: &str, step: Option<&str>) -> Option<Reach> {
    let run = w.facts.iter().find_map(|f| match &f.what {
        What::RunStarted { run, chain: c } if c == chain => Some(*run),
        _ => None,
    })?;
    let (mut due, mut needed, mut approvals, mut signature) = (None, 1, 0, false);
    let mut rejected_at: Option<String> = None;
    for f in w.facts.iter().filter(|f| run_of(&f.what) == Some(run)) {
        let here = Reach::Reached { at: f.at, seq: f.seq, due: None };
        match (&f.what, step) {
            (What::StepOpened { signature: true, .. }, None) => return Some(here),
            (What::StepOpened { step: s, due: d, needed: n, signature: sig, .. }, Some(want)) if s == want => {
                (due, needed, signature) = (*d, *n, *sig);
            }
            (What::Approved { step: s, .. }, Some(want)) if s == want => {
                approvals += 1;
                if approvals >= needed && !signature {
                    return Some(Reach::Reached { at: f.at, seq: f.seq, due });
                }
            }
            (What::Skipped { step: s, .. }, Some(want)) if s == want => return Some(here),
            (What::Rejected { step: s, .. }, _) => rejected_at = Some(s.clone()),
            (What::RunEnded { status, .. }, _) => {
                if matches!(status.as_str(), "approved" | "signed") && (step.is_none() || signature) {
                    return Some(here);
                }
                let how = match (status.as_str(), &rejected_at) {
                    ("rejected", Some(s)) => format!("rejected at {s}"),
                    ("reset", _) => "reset by an edit".to_string(),
                    (other, _) => other.to_string(),
                };
                return Some(Reach::Ended { at: f.at, how, due });
            }
            _ => {}
        }
    }
    None
}

fn run_of(what: &What) -> Option<i64> {
    match what {
        What::RunStarted { run, .. }
        | What::StepOpened { run, .. }
        | What::Approved { run, .. }
        | What::Rejected { run, .. }
        | What::Skipped { run, .. }
        | What::RunEnded { run, .. } => Some(*run),
        _ => None,
    }
}

/// Tasks all done (at the last one's time, overdue when any was done past its due), or not yet
/// (due when the last of them is).
fn tasks(list: Vec<&TaskFact>, w: &Window<'_>) -> Reach {
    if list.is_empty() {
        return Reach::NotYet { due: None };
    }
    // Cancelled or not, the set was due when its last task was.
    let due = list.iter().filter_map(|t| t.due).max();
    if let Some((t, at)) = list.iter().find_map(|t| Some((t, t.cancelled?))) {
        return Reach::Ended { at, how: format!("task {} was cancelled", t.step), due };
    }
    let done: Vec<Timestamp> = list.iter().filter_map(|t| t.done).collect();
    if done.len() < list.len() {
        return match &w.closed {
            Some((at, state)) => Reach::Ended { at: *at, how: format!("the record was closed as {state}"), due },
            None => Reach::NotYet { due },
        };
    }
    // The first task done past its due time makes the whole set overdue by it.
    let late = list.iter().filter_map(|t| Some((t.done?, t.due?))).find(|(done, due)| done > due);
    let at = done.into_iter().max().unwrap_or(list[0].opened);
    match late {
        Some((_, due)) => Reach::Reached { at, seq: 0, due: Some(due) },
        None => Reach::Reached { at, seq: 0, due },
    }
}
