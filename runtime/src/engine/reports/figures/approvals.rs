//! The signing cycle and approval steps overdue, from approval runs read back from their events.
//!
//! A run is its `approval.started` event and what followed with its id: steps opened (with
//! their due time and the approvals they need), approvals, rejections, skips, the customer's
//! `sign.signed`, and the run's end (finished, recalled, reset). A step ends when it is decided
//! (enough approvals, or a rejection) or when the run moves past it or ends.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::{instant, share, Span};
use crate::model::{AppDef, ApprovalChain};
use crate::store::metrics::{self, LogRow};
use crate::store::{Reader, StoreError};

/// From submission to the customer's signature, for the runs of one chain started in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SigningCycle {
    /// The app.
    pub app: String,
    /// The chain.
    pub chain: String,
    /// Its form.
    pub form: String,
    /// Runs started in the period (each submission is a run; an edit that resets it makes the
    /// next submission a new one).
    pub started: usize,
    /// Runs the customer signed.
    pub signed: usize,
    /// The median time from the start to the signature, in days (one decimal).
    pub median_days: Option<f64>,
    /// The 90th percentile (nearest rank), in days.
    pub p90_days: Option<f64>,
    /// Runs not signed and not ended: still in approval or waiting for the customer.
    pub unsigned: usize,
    /// Of those, runs waiting at the signature step.
    pub awaiting_signature: usize,
    /// Runs that ended without a signature: rejected, recalled or reset by an edit.
    pub ended: usize,
}

/// How many of one approval step's openings in the period went past their due time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepOverdue {
    /// The app.
    pub app: String,
    /// The chain.
    pub chain: String,
    /// The step.
    pub step: String,
    /// Times the step was opened with a due time in the period.
    pub opened: usize,
    /// Decided (or closed) after its due time, or still open past it.
    pub overdue: usize,
    /// Still open, not yet due.
    pub pending: usize,
    /// Overdue / (opened − pending); none while nothing is settled.
    pub share: Option<f64>,
}

/// One opening of a step.
#[derive(Debug, Clone)]
struct StepLog {
    step: String,
    opened: Timestamp,
    due: Option<Timestamp>,
    needed: i64,
    approvals: i64,
    end: Option<Timestamp>,
}

/// One run, as its events tell it.
#[derive(Debug, Clone, Default)]
struct RunLog {
    chain: String,
    started: Option<Timestamp>,
    signed: Option<Timestamp>,
    ended: Option<Timestamp>,
    waits_for_signature: bool,
    steps: Vec<StepLog>,
}

impl RunLog {
    /// Ends every step still open at `at`: the run moved past them or ended.
    fn close_open(&mut self, at: Timestamp) {
        for s in self.steps.iter_mut().filter(|s| s.end.is_none()) {
            s.end = Some(at);
        }
    }

    fn open_step(&mut self, step: &str) -> Option<&mut StepLog> {
        self.steps.iter_mut().rev().find(|s| s.step == step && s.end.is_none())
    }

    /// Takes in one event of the run.
    fn add(&mut self, row: LogRow) {
        let Some(at) = instant(&row.at) else { return };
        let step = row.step.unwrap_or_default();
        match row.kind.as_str() {
            "approval.started" => {
                self.chain = row.group.unwrap_or_default();
                self.started = Some(at);
            }
            "approval.step_opened" => {
                self.close_open(at);
                self.waits_for_signature |= row.flag;
                let (due, needed) = (row.due_at.as_deref().and_then(instant), row.needed.unwrap_or(1));
                self.steps.push(StepLog { step, opened: at, due, needed, approvals: 0, end: None });
            }
            "approval.approved" => {
                if let Some(s) = self.open_step(&step) {
                    s.approvals += 1;
                    if s.approvals >= s.needed.max(1) {
                        s.end = Some(at);
                    }
                }
            }
            "approval.rejected" => {
                if let Some(s) = self.open_step(&step) {
                    s.end = Some(at);
                }
            }
            "approval.step_skipped" => self.close_open(at),
            "sign.signed" => self.signed = self.signed.or(Some(at)),
            // finished, recalled, reset: the run is over.
            _ => {
                self.close_open(at);
                self.ended = self.ended.or(Some(at));
            }
        }
    }
}

/// Every run on `form`, by id.
fn runs(conn: &Reader, form: &str) -> Result<BTreeMap<i64, RunLog>, StoreError> {
    let mut runs: BTreeMap<i64, RunLog> = BTreeMap::new();
    // A run's events, and the customer's signature that ends it.
    let kinds: Vec<&str> = crate::engine::reports::RUN_KINDS.iter().copied().chain(["sign.signed"]).collect();
    metrics::each_event(conn, form, &kinds, &mut |row| {
        if let Some(run) = row.run {
            runs.entry(run).or_default().add(row);
        }
        Ok(())
    })?;
    Ok(runs)
}

/// The signing cycle of each chain with a signature step, and the overdue steps of every
/// chain, over the span.
pub(super) fn figures(
    conn: &Reader,
    def: &AppDef,
    span: &Span,
) -> Result<(Vec<SigningCycle>, Vec<StepOverdue>), StoreError> {
    let (mut signing, mut overdue) = (Vec::new(), Vec::new());
    let mut forms: Vec<&str> = def.approvals.iter().map(|c| c.form.as_str()).collect();
    forms.sort_unstable();
    forms.dedup();
    for form in forms {
        let runs = runs(conn, form)?;
        for chain in def.approvals.iter().filter(|c| c.form == form) {
            let of_chain: Vec<&RunLog> = runs.values().filter(|r| r.chain == chain.id).collect();
            if chain.steps.iter().any(|s| s.signature.is_some()) {
                signing.push(cycle(&def.app.id, chain, &of_chain, span));
            }
            overdue.extend(steps_overdue(&def.app.id, chain, &of_chain, span));
        }
    }
    Ok((signing, overdue))
}

fn cycle(app: &str, chain: &ApprovalChain, runs: &[&RunLog], span: &Span) -> SigningCycle {
    let mut c = SigningCycle {
        app: app.to_string(),
        chain: chain.id.clone(),
        form: chain.form.clone(),
        started: 0,
        signed: 0,
        median_days: None,
        p90_days: None,
        unsigned: 0,
        awaiting_signature: 0,
        ended: 0,
    };
    let mut days = Vec::new();
    for run in runs {
        let Some(started) = run.started.filter(|t| span.holds(*t)) else { continue };
        c.started += 1;
        match (run.signed, run.ended) {
            (Some(signed), _) => days.push(signed.duration_since(started).as_secs_f64() / 86_400.0),
            (None, Some(_)) => c.ended += 1,
            (None, None) => {
                c.unsigned += 1;
                c.awaiting_signature += usize::from(run.waits_for_signature);
            }
        }
    }
    c.signed = days.len();
    days.sort_by(f64::total_cmp);
    c.median_days = median(&days).map(one_decimal);
    c.p90_days = nearest_rank(&days, 0.9).map(one_decimal);
    c
}

/// The middle value of sorted values (the mean of the two middle ones for an even count).
fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The `p` percentile of sorted values by nearest rank: the smallest value at or above which
/// lie at least `p` of them.
fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

fn one_decimal(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Each step of the chain with a due time, in chain order, then any other step the runs opened
/// with one (a step whose timeout was since removed).
fn steps_overdue(app: &str, chain: &ApprovalChain, runs: &[&RunLog], span: &Span) -> Vec<StepOverdue> {
    let row = |step: &str| StepOverdue {
        app: app.to_string(),
        chain: chain.id.clone(),
        step: step.to_string(),
        opened: 0,
        overdue: 0,
        pending: 0,
        share: None,
    };
    let mut rows: Vec<StepOverdue> = chain.steps.iter().filter(|s| s.timeout.is_some()).map(|s| row(&s.id)).collect();
    for s in runs.iter().flat_map(|r| &r.steps).filter(|s| span.holds(s.opened)) {
        let Some(due) = s.due else { continue };
        let i = match rows.iter().position(|r| r.step == s.step) {
            Some(i) => i,
            None => {
                rows.push(row(&s.step));
                rows.len() - 1
            }
        };
        let r = &mut rows[i];
        r.opened += 1;
        match s.end {
            Some(end) => r.overdue += usize::from(end > due),
            None if span.now > due => r.overdue += 1,
            None => r.pending += 1,
        }
    }
    for r in &mut rows {
        r.share = share(r.overdue, r.opened - r.pending);
    }
    rows
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_median_and_the_90th_percentile_by_nearest_rank() {
        let days = [0.5, 1.0, 1.5, 2.0, 10.0];
        assert_eq!(super::median(&days), Some(1.5));
        assert_eq!(super::median(&days[..4]), Some(1.25));
        // ceil(0.9 × 5) = 5th value; ceil(0.9 × 4) = 4th.
        assert_eq!(super::nearest_rank(&days, 0.9), Some(10.0));
        assert_eq!(super::nearest_rank(&days[..4], 0.9), Some(2.0));
        assert_eq!(super::nearest_rank(&[], 0.9), None);
        assert_eq!(super::one_decimal(1.25), 1.3);
    }
}
