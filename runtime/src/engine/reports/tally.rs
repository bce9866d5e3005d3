//! Counting judged instances: the totals, where they fell off, the breakdowns and the trend.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

use super::judge::{Outcome, Reason};
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

fn day_of(instance: &Instance, frame: &Frame<'_>) -> Option<Date> {
    let ts: Timestamp = instance.start.parse().ok()?;
    Some(ts.to_zoned(frame.tz.clone()).date())
}

fn key(instance: &Instance, by: Dimension, frame: &Frame<'_>) -> String {
    let text = match by {
        Dimension::Member => instance.member.clone(),
        Dimension::Region => instance.region.clone(),
        Dimension::Team => instance.team.clone(),
        Dimension::Week | Dimension::Month => day_of(instance, frame).map(|d| period_key(d, by)),
    };
    text.unwrap_or_else(|| "-".into())
}

fn groups(instances: &[Instance], by: Dimension, frame: &Frame<'_>, target: f64) -> Vec<Group> {
    let mut map: BTreeMap<String, Tally> = BTreeMap::new();
    if matches!(by, Dimension::Week | Dimension::Month) {
        // Every week or month of the period appears, so a trend has no holes.
        let first = frame.from.to_zoned(frame.tz.clone()).date();
        let last = frame.until.to_zoned(frame.tz.clone()).date().yesterday().unwrap_or(first);
        let mut d = first;
        while d <= last {
            map.entry(period_key(d, by)).or_default();
            let Ok(next) = d.checked_add(1.day()) else { break };
            d = next;
        }
    }
    for i in instances {
        map.entry(key(i, by, frame)).or_default().add(i.outcome);
    }
    map.into_iter().map(|(key, tally)| Group { key, gap: tally.rate.map(|r| target - r), tally }).collect()
}

/// A metric's report from its judged instances.
pub(super) fn report(
    app: &str,
    metric: &Metric,
    path: Vec<String>,
    instances: Vec<Instance>,
    dims: &[Dimension],
    frame: &Frame<'_>,
    keep: bool,
) -> MetricReport {
    let mut tally = Tally::default();
    let mut falloff: BTreeMap<(String, Reason), usize> = BTreeMap::new();
    for i in &instances {
        tally.add(i.outcome);
        if let Some(f) = &i.fell_off {
            *falloff.entry((f.step.clone(), f.reason)).or_default() += 1;
        }
    }
    let mut falloff: Vec<Falloff> =
        falloff.into_iter().map(|((step, reason), count)| Falloff { step, reason, count }).collect();
    falloff.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.step.cmp(&b.step)));
    let weeks = frame.until.duration_since(frame.from).as_hours() / (24 * 7);
    let trend_by = if weeks > 16 { Dimension::Month } else { Dimension::Week };
    MetricReport {
        app: app.to_string(),
        id: metric.id.clone(),
        label: metric.label.clone(),
        form: metric.form.clone(),
        target: metric.target,
        within: metric.within.clone(),
        path,
        tally,
        falloff,
        breakdowns: dims
            .iter()
            .map(|&by| Breakdown { by, groups: groups(&instances, by, frame, metric.target) })
            .collect(),
        trend: groups(&instances, trend_by, frame, metric.target),
        instances: if keep { instances } else { Vec::new() },
    }
}
