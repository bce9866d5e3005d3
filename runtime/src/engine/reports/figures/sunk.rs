//! Leads sunk: instances of a lead metric with no end within 72 hours.
//!
//! Every metric whose start is `created` and whose end is an action (the lead template's
//! `contact`) is judged again by the penetration machinery with a 72-hour deadline and no path:
//! an instance missed under that deadline is sunk. It was never contacted, contacted after
//! 72 hours, or closed without a contact. Metrics on the same form and action are one figure.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::share;
use crate::engine::reports::{milestone_name, Frame, Instance, Outcome, Reason};
use crate::engine::{EngineError, Installed, Runtime};
use crate::model::{Metric, Milestone};
use crate::store::members::MemberRow;

/// How long a lead may wait for its contact before it is sunk.
const SUNK_AFTER: &str = "72h";

/// How many members the top list names.
const TOP: usize = 10;

/// Leads sunk on one form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SunkLeads {
    /// The app.
    pub app: String,
    /// The form whose records are the leads.
    pub form: String,
    /// The action that counts as the contact.
    pub action: String,
    /// The metrics that follow these leads (their start and end), whose instances these are.
    pub metrics: Vec<String>,
    /// The deadline a lead sinks after (`72h`).
    pub within: String,
    /// Leads created in the period.
    pub population: usize,
    /// Leads contacted within 72 hours, or past them, or closed: no longer pending.
    pub decided: usize,
    /// Leads still inside their 72 hours, uncontacted.
    pub pending: usize,
    /// Decided leads with no contact within 72 hours.
    pub sunk: usize,
    /// Sunk / decided; none while nothing is decided.
    pub share: Option<f64>,
    /// Sunk leads never contacted.
    pub never_contacted: usize,
    /// Sunk leads contacted after 72 hours.
    pub contacted_late: usize,
    /// Sunk leads closed (lost, qualified) without a contact.
    pub closed: usize,
    /// The members with the most sunk leads, at most ten. A lead counts for its owner when it
    /// sank: at its 72nd hour, or when it was closed before then.
    pub by_member: Vec<SunkGroup>,
    /// The regions with sunk leads, the most first.
    pub by_region: Vec<SunkGroup>,
}

/// Sunk leads of one member or region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SunkGroup {
    /// The member id or region; `-` for leads without one.
    pub key: String,
    /// Sunk leads.
    pub sunk: usize,
    /// Decided leads.
    pub decided: usize,
    /// Sunk / decided.
    pub share: Option<f64>,
}

/// The lead metrics of an app, one per form and contact action: those that start at `created`
/// and end at an action.
fn lead_metrics(app: &Installed) -> Vec<(Metric, Vec<String>)> {
    let mut out: Vec<(Metric, Vec<String>)> = Vec::new();
    for m in &app.app.def.metrics {
        let (Milestone::Created(_), Milestone::Action(action)) = (&m.start, &m.end) else { continue };
        if let Some((_, ids)) = out.iter_mut().find(|(s, _)| s.form == m.form && s.end == m.end) {
            ids.push(m.id.clone());
            continue;
        }
        let sunk = Metric {
            id: format!("{}_sunk", m.form),
            label: None,
            form: m.form.clone(),
            start: m.start.clone(),
            end: Milestone::Action(action.clone()),
            within: Some(SUNK_AFTER.into()),
            path: Vec::new(),
            target: 0.0,
            breakdown: Vec::new(),
        };
        out.push((sunk, vec![m.id.clone()]));
    }
    out
}

impl Runtime {
    /// Leads sunk over the period, for each lead metric of `app`.
    pub(super) fn leads_sunk(
        &self,
        app: &Installed,
        query: &super::FiguresQuery,
        now: Timestamp,
        members: &std::collections::HashMap<&str, &MemberRow>,
    ) -> Result<Vec<SunkLeads>, EngineError> {
        let mut out = Vec::new();
        for (metric, ids) in lead_metrics(app) {
            let frame = Frame::of(&app.app.def, &metric.form, (query.from, query.to), now, members)?;
            let judged = self.judged(&metric, &frame)?;
            out.push(count(&app.app.def.app.id, &metric, ids, &judged));
        }
        Ok(out)
    }
}

/// Sunk or not, and how it sank, for each decided instance.
fn count(app: &str, metric: &Metric, metrics: Vec<String>, judged: &[Instance]) -> SunkLeads {
    let mut s = SunkLeads {
        app: app.to_string(),
        form: metric.form.clone(),
        action: milestone_name(&metric.end),
        metrics,
        within: SUNK_AFTER.into(),
        population: judged.len(),
        decided: 0,
        pending: 0,
        sunk: 0,
        share: None,
        never_contacted: 0,
        contacted_late: 0,
        closed: 0,
        by_member: Vec::new(),
        by_region: Vec::new(),
    };
    let mut members: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut regions: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for i in judged {
        if i.outcome == Outcome::Pending {
            s.pending += 1;
            continue;
        }
        s.decided += 1;
        let sunk = i.outcome == Outcome::Missed;
        for (map, key) in [(&mut members, i.member.as_deref()), (&mut regions, i.region.as_deref())] {
            let entry = map.entry(key.unwrap_or("-")).or_default();
            entry.0 += usize::from(sunk);
            entry.1 += 1;
        }
        if !sunk {
            continue;
        }
        s.sunk += 1;
        match i.fell_off.as_ref().map(|f| f.reason) {
            Some(Reason::Late) => s.contacted_late += 1,
            Some(Reason::Ended) => s.closed += 1,
            _ => s.never_contacted += 1,
        }
    }
    s.share = share(s.sunk, s.decided);
    s.by_member = top(members, Some(TOP));
    s.by_region = top(regions, None);
    s
}

/// The groups with sunk leads, the most first (then by key), at most `limit` of them.
fn top(groups: BTreeMap<&str, (usize, usize)>, limit: Option<usize>) -> Vec<SunkGroup> {
    let mut list: Vec<SunkGroup> = groups
        .into_iter()
        .filter(|(_, (sunk, _))| *sunk > 0)
        .map(|(key, (sunk, decided))| SunkGroup { key: key.to_string(), sunk, decided, share: share(sunk, decided) })
        .collect();
    list.sort_by(|a, b| b.sunk.cmp(&a.sunk).then_with(|| a.key.cmp(&b.key)));
    list.truncate(limit.unwrap_or(usize::MAX));
    list
}
