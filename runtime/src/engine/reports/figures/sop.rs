//! SOP task completion: the tasks due in the period, from their rows (which `audit verify`
//! checks against the `task.done` events), done on time, done late, open past due, cancelled.
//! A task due on a date is due in the period when the date is in it (it is overdue only from
//! the next midnight); a task due at an instant, when the instant is.

use jiff::civil::Date;
use serde::Serialize;

use super::{instant, share, Span};
use crate::model::AppDef;
use crate::store::{tasks, Reader, StoreError, TaskRow, TaskStatus};

/// Tasks due in the period, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TaskCounts {
    /// Tasks whose due time falls in the period.
    pub due: usize,
    /// Done at or before their due time.
    pub on_time: usize,
    /// Done after it.
    pub late: usize,
    /// Still open past it.
    pub open_overdue: usize,
    /// Still open, not yet due.
    pub open: usize,
    /// Closed without being done (the record churned, the SOP was cancelled).
    pub cancelled: usize,
    /// On time / (on time + late + open overdue): the tasks whose outcome is known; none
    /// while there are none.
    pub rate: Option<f64>,
}

impl TaskCounts {
    fn add(&mut self, t: &TaskRow, span: &Span) {
        let (Some(due), done) = (t.due_at.as_deref().and_then(instant), t.done_at.as_deref().and_then(instant)) else {
            return;
        };
        self.due += 1;
        match t.status {
            TaskStatus::Cancelled => self.cancelled += 1,
            TaskStatus::Done if done.is_some_and(|d| d > due) => self.late += 1,
            TaskStatus::Done => self.on_time += 1,
            TaskStatus::Open if span.now > due => self.open_overdue += 1,
            TaskStatus::Open => self.open += 1,
        }
        self.rate = share(self.on_time, self.on_time + self.late + self.open_overdue);
    }
}

/// One task of an SOP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskLine {
    /// The task's id in the SOP.
    pub task: String,
    /// Its counts.
    #[serde(flatten)]
    pub counts: TaskCounts,
}

/// One SOP's tasks due in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskCompletion {
    /// The app.
    pub app: String,
    /// The SOP.
    pub sop: String,
    /// The form its tasks are opened on.
    pub form: String,
    /// All its tasks together.
    #[serde(flatten)]
    pub counts: TaskCounts,
    /// Each task of the SOP, in the SOP's order.
    pub tasks: Vec<TaskLine>,
}

/// Whether the task is due in the span: its due date in the span's days, or its due instant in
/// the span.
fn due_in(t: &TaskRow, span: &Span) -> bool {
    match t.due.as_deref().filter(|d| d.len() == 10).and_then(|d| d.parse::<Date>().ok()) {
        Some(day) => span.days.0 <= day && day <= span.days.1,
        None => t.due_at.as_deref().and_then(instant).is_some_and(|d| span.holds(d)),
    }
}

/// Each SOP of the app, with its tasks due in the span.
pub(super) fn figures(conn: &Reader, def: &AppDef, span: &Span) -> Result<Vec<TaskCompletion>, StoreError> {
    let mut out = Vec::new();
    let mut forms: Vec<&str> = def.sops.iter().map(|s| s.form.as_str()).collect();
    forms.sort_unstable();
    forms.dedup();
    for form in forms {
        let rows = tasks::of_form(conn, form)?;
        for sop in def.sops.iter().filter(|s| s.form == form) {
            let mut c = TaskCompletion {
                app: def.app.id.clone(),
                sop: sop.id.clone(),
                form: sop.form.clone(),
                counts: TaskCounts::default(),
                tasks: sop
                    .tasks
                    .iter()
                    .map(|t| TaskLine { task: t.id.clone(), counts: TaskCounts::default() })
                    .collect(),
            };
            for t in rows.iter().filter(|t| t.app == def.app.id && t.sop == sop.id && due_in(t, span)) {
                c.counts.add(t, span);
                match c.tasks.iter_mut().find(|l| l.task == t.task) {
                    Some(line) => line.counts.add(t, span),
                    // A task since removed from the SOP still counts.
                    None => {
                        let mut line = TaskLine { task: t.task.clone(), counts: TaskCounts::default() };
                        line.counts.add(t, span);
                        c.tasks.push(line);
                    }
                }
            }
            out.push(c);
        }
    }
    Ok(out)
}
