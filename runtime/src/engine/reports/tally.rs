//! Counting judged instances: the totals, where they fell off, the breakdowns and the trend.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::ToSpan;
use serde::Serialize;

use super::judge::{Judged, Outcome, Reason};
use super::{Falloff, Frame, Instance, MetricReport};
use crate::model::{Dimension, Metric};

/// Instances counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Every start event in the period.
    pub population: usize,
    /// Ended within the deadline, along the path.
    pub penetrated: usize,
    /// No longer pending: penetrated or missed.
    pub decided: usize,
    /// Still inside their deadline.
    pub pending: usize,
    /// Penetrated / decided; none while nothing is decided.
    pub rate: Option<f64>,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        self.population += 1;
        match outcome {
            Outcome::Penetrated => {
                self.penetrated += 1;
                self.decided += 1;
            }
            Outcome::Missed => self.decided += 1,
            Outcome::Pending => self.pending += 1,
        }
        self.rate = (self.decided > 0).then(|| self.penetrated as f64 / self.decided as f64);
    }
}

/// The instances of one member, region, team, week or month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The member id, region, team (the manager's id), week (`2026-W45`) or month (`2026-11`);
    /// `-` for instances without one.
    pub key: String,
    /// The totals.
    #[serde(flatten)]
    pub tally: Tally,
    /// How far the rate is below the target (negative when above); none while nothing is decided.
    pub gap: Option<f64>,
}

/// One breakdown of a metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    /// By what.
    pub by: Dimension,
    /// The groups: people and places by key, weeks and months in order.
    pub groups: Vec<Group>,
}

/// The week (`2026-W45`, ISO 8601) or month (`2026-11`) a date is in.
fn period_key(d: Date, by: Dimension) -> String {
    if by == Dimension::Month {
        return format!("{:04}-{:02}", d.year(), d.month());
    }
    let w = d.iso_week_date();
    format!("{:04}-W{:02}", w.year(), w.week())
}

fn key(j: &Judged, by: Dimension, frame: &Frame<'_>) -> String {
    let text = match by {
        Dimension::Member => j.member.clone(),
        Dimension::Region => j.region.clone(),
        Dimension::Team => j.team.clone(),
        Dimension::Week | Dimension::Month => Some(period_key(j.start.to_zoned(frame.tz.clone()).date(), by)),
    };
    text.unwrap_or_else(|| "-".into())
}

/// Every week or month of the period, so that a trend has no holes.
fn empty_periods(by: Dimension, frame: &Frame<'_>) -> BTreeMap<String, Tally> {
    let mut map = BTreeMap::new();
    if matches!(by, Dimension::Week | Dimension::Month) {
        let first = frame.from.to_zoned(frame.tz.clone()).date();
        let last = frame.until.to_zoned(frame.tz.clone()).date().yesterday().unwrap_or(first);
        let mut d = first;
        while d <= last {
            map.entry(period_key(d, by)).or_default();
            let Ok(next) = d.checked_add(1.day()) else { break };
            d = next;
        }
    }
    map
}

/// Counts judged instances one at a time, so a year of them is never held at once (unless
/// the caller asked to see them).
pub(super) struct Counter<'f> {
    frame: &'f Frame<'f>,
    dims: Vec<Dimension>,
    trend_by: Dimension,
    tally: Tally,
    falloff: BTreeMap<(String, Reason), usize>,
    groups: Vec<BTreeMap<String, Tally>>,
    trend: BTreeMap<String, Tally>,
    kept: Option<Vec<Instance>>,
}

impl<'f> Counter<'f> {
    /// A counter for the breakdowns `dims`, keeping every instance when `keep`.
    pub fn new(frame: &'f Frame<'f>, dims: Vec<Dimension>, keep: bool) -> Self {
        let weeks = frame.until.duration_since(frame.from).as_hours() / (24 * 7);
        let trend_by = if weeks > 16 { Dimension::Month } else { Dimension::Week };
        Counter {
            frame,
            groups: dims.iter().map(|&by| empty_periods(by, frame)).collect(),
            dims,
            trend_by,
            tally: Tally::default(),
            falloff: BTreeMap::new(),
            trend: empty_periods(trend_by, frame),
            kept: keep.then(Vec::new),
        }
    }

    /// Counts one instance.
    pub fn add(&mut self, j: Judged) {
        self.tally.add(j.outcome);
        if let Some(f) = &j.fell_off {
            *self.falloff.entry((f.step.clone(), f.reason)).or_default() += 1;
        }
        for (by, map) in self.dims.iter().zip(&mut self.groups) {
            map.entry(key(&j, *by, self.frame)).or_default().add(j.outcome);
        }
        self.trend.entry(key(&j, self.trend_by, self.frame)).or_default().add(j.outcome);
        if let Some(kept) = &mut self.kept {
            kept.push(j.shown(&self.frame.tz));
        }
    }

    /// The metric's report.
    pub fn report(self, app: &str, metric: &Metric, path: Vec<String>) -> MetricReport {
        let target = metric.target;
        let groups = |map: BTreeMap<String, Tally>| -> Vec<Group> {
            map.into_iter().map(|(key, tally)| Group { key, gap: tally.rate.map(|r| target - r), tally }).collect()
        };
        let mut falloff: Vec<Falloff> =
            self.falloff.into_iter().map(|((step, reason), count)| Falloff { step, reason, count }).collect();
        falloff.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.step.cmp(&b.step)));
        MetricReport {
            app: app.to_string(),
            id: metric.id.clone(),
            label: metric.label.clone(),
            form: metric.form.clone(),
            target,
            within: metric.within.clone(),
            path,
            tally: self.tally,
            falloff,
            breakdowns: self
                .dims
                .iter()
                .zip(self.groups)
                .map(|(&by, map)| Breakdown { by, groups: groups(map) })
                .collect(),
            trend: groups(self.trend),
            instances: self.kept.unwrap_or_default(),
        }
    }
}
