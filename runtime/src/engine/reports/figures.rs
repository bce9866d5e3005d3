//! The article's other figures, each computed from the event log and the audited rows (tasks,
//! scores stored on records through the write gate), never from what people report about
//! themselves:
//!
//! - leads sunk ([`sunk`]): instances of a lead metric (start `created`, end an action) with
//!   no end within 72 hours, judged by the penetration machinery with a 72-hour deadline;
//! - signing cycle and approval steps overdue ([`approvals`]): approval runs read back from
//!   their `approval.*` and `sign.signed` events;
//! - SOP task completion ([`sop`]): the task rows, by their due time;
//! - health distribution ([`health`]): each score's current values on its form's records.
//!
//! Periods are days in each app's time zone, like the penetration report's.

mod approvals;
mod health;
mod sop;
mod sunk;

use jiff::civil::Date;
use jiff::Timestamp;
use serde::Serialize;

pub use approvals::{SigningCycle, StepOverdue};
pub use health::{HealthBucket, HealthDistribution, LowScore};
pub use sop::{TaskCompletion, TaskCounts, TaskLine};
pub use sunk::{SunkGroup, SunkLeads};

use super::{bounds, check_period};
use crate::engine::{EngineError, Installed, Runtime};

/// What to compute the figures over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiguresQuery {
    /// The first day of the period (in each app's time zone).
    pub from: Date,
    /// The last day of the period, included.
    pub to: Date,
}

/// The article's figures over a period, for every installed app they apply to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// The first day of the period.
    pub from: String,
    /// The last day of the period, included.
    pub to: String,
    /// When they were computed (RFC 3339): what is still inside its deadline then is pending.
    pub at: String,
    /// Leads with no contact within 72 hours, per lead form.
    pub leads_sunk: Vec<SunkLeads>,
    /// From submission to the customer's signature, per chain with a signature step.
    pub signing: Vec<SigningCycle>,
    /// Approval steps decided (or still open) past their due time, per chain and step.
    pub steps_overdue: Vec<StepOverdue>,
    /// SOP tasks done on time, late or not at all, per SOP and per task.
    pub tasks: Vec<TaskCompletion>,
    /// Each score's current values, bucketed, and the records below its threshold.
    pub health: Vec<HealthDistribution>,
}

/// One app's period (its days in the app's time zone) and the report's time: what each
/// figure needs.
pub(super) struct Span {
    /// The first and last day.
    pub days: (Date, Date),
    pub from: Timestamp,
    pub until: Timestamp,
    pub now: Timestamp,
}

impl Span {
    fn of(app: &Installed, query: &FiguresQuery, now: Timestamp) -> Result<Span, EngineError> {
        let (from, until) = bounds(&app.zone, (query.from, query.to))?;
        Ok(Span { days: (query.from, query.to), from, until, now })
    }

    /// Whether `at` is in the period.
    pub fn holds(&self, at: Timestamp) -> bool {
        at >= self.from && at < self.until
    }
}

/// `part / whole`, none when the whole is nothing.
pub(super) fn share(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// A stored time, or none when it cannot be read.
pub(super) fn instant(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

impl Runtime {
    /// The article's figures over a period: leads sunk, the signing cycle, approval steps
    /// overdue, SOP task completion and the health distribution, for each installed app where
    /// they apply (an app with none of them adds nothing).
    pub fn figures(&self, query: &FiguresQuery) -> Result<Figures, EngineError> {
        check_period(query.from, query.to)?;
        let directory = crate::store::members::list(self.store.reader())?;
        let members: std::collections::HashMap<&str, &crate::store::members::MemberRow> =
            directory.iter().map(|m| (m.id.as_str(), m)).collect();
        let now = self.clock.now();
        let mut out = Figures {
            from: query.from.to_string(),
            to: query.to.to_string(),
            at: crate::clock::stamp(now),
            leads_sunk: Vec::new(),
            signing: Vec::new(),
            steps_overdue: Vec::new(),
            tasks: Vec::new(),
            health: Vec::new(),
        };
        for app in self.apps.values() {
            let span = Span::of(app, query, now)?;
            out.leads_sunk.extend(self.leads_sunk(app, query, now, &members)?);
            let (signing, steps) = approvals::figures(self.store.reader(), &app.app.def, &span)?;
            out.signing.extend(signing);
            out.steps_overdue.extend(steps);
            out.tasks.extend(sop::figures(self.store.reader(), &app.app.def, &span)?);
            out.health.extend(health::figures(self.store.reader(), app)?);
        }
        Ok(out)
    }
}
