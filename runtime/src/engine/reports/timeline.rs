//! One record's history as the reports read it: what happened when, the record's owner and
//! state after each event, and the tasks opened on it.

use jiff::Timestamp;

use crate::store::metrics::LogRow;
use crate::store::tasks::TaskRow;

/// What an event says, for the milestones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum What {
    Created,
    Action(String),
    Updated,
    Event(String),
    RunStarted {
        run: i64,
        chain: String,
    },
    StepOpened {
        run: i64,
        step: String,
        due: Option<Timestamp>,
        needed: i64,
        signature: bool,
    },
    Approved {
        run: i64,
        step: String,
    },
    Rejected {
        run: i64,
        step: String,
    },
    Skipped {
        run: i64,
        step: String,
    },
    /// A run ended: `approved`, `signed`, `rejected`, `recalled` or `reset`.
    RunEnded {
        run: i64,
        status: String,
    },
}

/// One event of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fact {
    pub seq: i64,
    pub at: Timestamp,
    pub what: What,
    /// The record's state after it (carried over from earlier events when it did not say).
    pub state: Option<String>,
    /// The record's owner after it (likewise).
    pub owner: Option<String>,
    /// The record's region after it (likewise).
    pub region: Option<String>,
}

/// A task opened on the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskFact {
    pub sop: String,
    pub step: String,
    pub opened: Timestamp,
    pub due: Option<Timestamp>,
    pub done: Option<Timestamp>,
    /// When it was cancelled, rather than done or left open.
    pub cancelled: Option<Timestamp>,
}

/// A record's facts, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeline {
    pub record: String,
    pub facts: Vec<Fact>,
    pub tasks: Vec<TaskFact>,
}

fn instant(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

impl Timeline {
    /// The timeline of one record from its events (in order) and its tasks. Events whose time
    /// cannot be read are left out.
    pub fn of(rows: Vec<LogRow>, tasks: &[TaskRow]) -> Timeline {
        let record = rows.first().map(|r| r.record.clone()).unwrap_or_default();
        let mut facts: Vec<Fact> = Vec::with_capacity(rows.len());
        let (mut state, mut owner, mut region) = (None, None, None);
        for row in rows {
            let Some(at) = instant(&row.at) else { continue };
            let is_record_event = row.kind.starts_with("record.");
            if is_record_event {
                state = row.state.clone().or(state);
                owner = row.owner.clone().or(owner);
                region = row.region.clone().or(region);
            }
            let seq = row.seq;
            let what = what(row);
            facts.push(Fact { seq, at, what, state: state.clone(), owner: owner.clone(), region: region.clone() });
        }
        let tasks = tasks
            .iter()
            .filter_map(|t| {
                let opened = instant(&t.created_at)?;
                // `done_at` is when the task was closed: done, or cancelled.
                let closed = t.done_at.as_deref().and_then(instant);
                Some(TaskFact {
                    sop: t.sop.clone(),
                    step: t.task.clone(),
                    opened,
                    due: t.due_at.as_deref().and_then(instant),
                    done: closed.filter(|_| t.status.as_str() == "done"),
                    cancelled: (t.status.as_str() == "cancelled").then(|| closed.unwrap_or(opened)),
                })
            })
            .collect();
        Timeline { record, facts, tasks }
    }

    /// The owner at `at`: from the last event at or before it (the first event's when none is).
    pub fn owner_at(&self, at: Timestamp) -> Option<&str> {
        let last = self.facts.iter().take_while(|f| f.at <= at).last().or(self.facts.first());
        last.and_then(|f| f.owner.as_deref())
    }

    /// The record's region at `at`, likewise.
    pub fn region_at(&self, at: Timestamp) -> Option<&str> {
        let last = self.facts.iter().take_while(|f| f.at <= at).last().or(self.facts.first());
        last.and_then(|f| f.region.as_deref())
    }
}

fn what(row: LogRow) -> What {
    let LogRow { kind, name, run, group, step, due_at, needed, status, flag, .. } = row;
    let run = run.unwrap_or_default();
    let step = step.unwrap_or_default();
    match kind.as_str() {
        "record.created" => What::Created,
        "record.action" => What::Action(name.unwrap_or_default()),
        "event.received" => What::Event(name.unwrap_or_default()),
        "approval.started" => What::RunStarted { run, chain: group.unwrap_or_default() },
        "approval.step_opened" => What::StepOpened {
            run,
            step,
            due: due_at.as_deref().and_then(instant),
            needed: needed.unwrap_or(1),
            signature: flag,
        },
        "approval.approved" => What::Approved { run, step },
        "approval.rejected" => What::Rejected { run, step },
        "approval.step_skipped" => What::Skipped { run, step },
        "approval.finished" => What::RunEnded { run, status: status.unwrap_or_default() },
        "approval.recalled" => What::RunEnded { run, status: "recalled".into() },
        "approval.reset" => What::RunEnded { run, status: "reset".into() },
        _ => What::Updated,
    }
}
