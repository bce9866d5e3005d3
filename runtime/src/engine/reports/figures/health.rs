//! The health distribution: each score's current values on its form's records (stored there
//! through the write gate by the score runs), in buckets of twenty, and the records below the
//! score's threshold.

use serde::Serialize;

use crate::engine::Installed;
use crate::model::{Form, Score};
use crate::store::figures::{score_values, ScoreRow};
use crate::store::StoreError;

/// The threshold the low list uses when the score declares none.
const DEFAULT_BELOW: f64 = 60.0;

/// The buckets, as (lowest, highest) values; a value past 100 counts in the last, below 0 in
/// the first.
const BUCKETS: [(i64, i64); 5] = [(0, 19), (20, 39), (40, 59), (60, 79), (80, 100)];

/// Records whose score falls in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthBucket {
    /// The lowest value of the bucket.
    pub from: i64,
    /// The highest value, included.
    pub to: i64,
    /// How many records.
    pub count: usize,
}

/// A record below the threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LowScore {
    /// The record.
    pub record: String,
    /// What the record is called (its title field, or a `customer` or `name` field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its score.
    pub value: f64,
}

/// One score's current values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthDistribution {
    /// The app.
    pub app: String,
    /// The score.
    pub score: String,
    /// The form it scores.
    pub form: String,
    /// The field that holds it.
    pub field: String,
    /// Records counted: those not in a final state (a churned account is no longer watched).
    pub records: usize,
    /// Of those, records with no value yet.
    pub unscored: usize,
    /// Records left out for being in a final state.
    pub closed: usize,
    /// Values 0–19, 20–39, 40–59, 60–79 and 80–100.
    pub buckets: Vec<HealthBucket>,
    /// The threshold: the highest `below` of the score's thresholds, else 60.
    pub below: f64,
    /// The records under it, the lowest first.
    pub under: Vec<LowScore>,
}

/// The field that names a form's records: its title field, else `customer` or `name`.
fn name_field(form: &Form) -> Option<&str> {
    form.title_field.as_deref().or_else(|| ["customer", "name"].into_iter().find(|n| form.field(n).is_some()))
}

/// The distribution of each score of the app.
pub(super) fn figures(conn: &crate::store::Reader, app: &Installed) -> Result<Vec<HealthDistribution>, StoreError> {
    let mut out = Vec::new();
    for score in &app.app.def.scores {
        let Some((i, form)) = app.app.def.forms.iter().enumerate().find(|(_, f)| f.id == score.form) else {
            continue;
        };
        let Some(table) = app.tables.get(i) else { continue };
        let rows = score_values(conn, table, &score.field, name_field(form))?;
        out.push(distribution(&app.app.def.app.id, score, form, rows));
    }
    Ok(out)
}

fn distribution(app: &str, score: &Score, form: &Form, rows: Vec<ScoreRow>) -> HealthDistribution {
    let below = score.thresholds.iter().map(|t| t.below).reduce(f64::max).unwrap_or(DEFAULT_BELOW);
    let finals: Vec<&str> = form.states.iter().filter(|s| s.is_final == Some(true)).map(|s| s.id.as_str()).collect();
    let mut d = HealthDistribution {
        app: app.to_string(),
        score: score.id.clone(),
        form: form.id.clone(),
        field: score.field.clone(),
        records: 0,
        unscored: 0,
        closed: 0,
        buckets: BUCKETS.iter().map(|&(from, to)| HealthBucket { from, to, count: 0 }).collect(),
        below,
        under: Vec::new(),
    };
    for row in rows {
        if row.state.as_deref().is_some_and(|s| finals.contains(&s)) {
            d.closed += 1;
            continue;
        }
        d.records += 1;
        let Some(value) = row.value else {
            d.unscored += 1;
            continue;
        };
        let bucket = (value.max(0.0) / 20.0).floor().min(4.0) as usize;
        if let Some(b) = d.buckets.get_mut(bucket) {
            b.count += 1;
        }
        if value < below {
            d.under.push(LowScore { record: row.id, name: row.name, owner: row.owner, value });
        }
    }
    d.under.sort_by(|a, b| a.value.total_cmp(&b.value).then_with(|| a.record.cmp(&b.record)));
    d
}
