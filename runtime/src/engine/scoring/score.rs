//! Scores: a script computes 0-100 from a record (and its tasks and history, through the host
//! API); each change is stored with the script's reasons and the host calls it made, so a score
//! can be explained, and with the thresholds it crossed, for automations to act on.

use crate::engine::automations::StepError;
use rhai::{Array, Dynamic};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::engine::automations::{Cause, Steps};
use crate::engine::records::{actor_roles, find_form, not_found, unknown_form};
use crate::engine::write::{Edit, Writer};
use crate::engine::{EngineError, FormRef, Record, Runtime};
use crate::model::{FieldType, Score};
use crate::script::RunContext;
use crate::store::records;

/// What a score run found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// The score's id.
    pub score: String,
    /// 0-100.
    pub value: i64,
    /// Why, as the script said.
    pub reasons: Vec<String>,
    /// Thresholds the value fell below (it was at or above them before).
    pub crossed_below: Vec<f64>,
    /// Host calls the script made.
    pub calls: Vec<String>,
    /// Operations it used.
    pub operations: u64,
}

/// The run context for scripts about a form's record: the app's time zone and calendar.
pub(crate) fn run_context(f: &FormRef<'_>, record: Option<&str>) -> RunContext {
    let def = &f.app.app.def;
    let calendar =
        def.app.calendar.as_ref().and_then(|c| def.calendars.iter().find(|x| &x.id == c)).or(def.calendars.first());
    let weekday = |w: &crate::model::Weekday| -> i8 {
        use crate::model::Weekday::*;
        match w {
            Mon => 1,
            Tue => 2,
            Wed => 3,
            Thu => 4,
            Fri => 5,
            Sat => 6,
            Sun => 7,
        }
    };
    RunContext {
        time_zone: def.app.time_zone().to_string(),
        working_days: calendar
            .and_then(|c| c.working_days.as_ref())
            .map(|d| d.iter().map(weekday).collect())
            .unwrap_or_default(),
        holidays: calendar.map(|c| c.holidays.clone()).unwrap_or_default(),
        extra_working_days: calendar.map(|c| c.extra_working_days.clone()).unwrap_or_default(),
        app: Some(def.app.id.clone()),
        form: Some(f.form.id.clone()),
        record: record.map(str::to_string),
    }
}

/// Runs a score's script over a record's data; a value outside 0-100 is clamped.
pub(crate) fn evaluate(
    scripts: &rhai::Engine,
    f: &FormRef<'_>,
    score: &Score,
    data: &Map<String, Value>,
    record: Option<&str>,
    tasks: &[Value],
) -> Result<Scored, EngineError> {
    let key = match crate::model::script_source(&score.script) {
        crate::model::ScriptSource::File(path) => path.to_string(),
        crate::model::ScriptSource::Inline(_) => {
            let i = f.app.app.def.scores.iter().position(|s| s.id == score.id).unwrap_or(0);
            format!("/scores/{i}/script")
        }
    };
    let ast = f
        .app
        .app
        .script(&key)
        .ok_or_else(|| EngineError::Input(format!("score {} has no compiled script", score.id)))?;
    let mut scope = rhai::Scope::new();
    scope.push_dynamic("record", rhai::serde::to_dynamic(data).unwrap_or(Dynamic::UNIT));
    let tasks: Array = tasks.iter().map(|t| rhai::serde::to_dynamic(t).unwrap_or(Dynamic::UNIT)).collect();
    scope.push("tasks", tasks);
    let outcome = crate::script::run_in(scripts, ast, &mut scope, f.app.deadline, run_context(f, record)).map_err(
        |(fault, _)| {
            // A runtime error points into the script file (or says which inline script).
            let place = match (&fault, crate::model::script_source(&score.script)) {
                (
                    crate::script::ScriptFault::Runtime { message, line, column },
                    crate::model::ScriptSource::File(path),
                ) => {
                    format!("{path}:{line}:{column}: {message}")
                }
                _ => fault.to_string(),
            };
            EngineError::Input(format!("score {}: {place}", score.id))
        },
    )?;
    let value: Value = rhai::serde::from_dynamic(&outcome.value).unwrap_or(Value::Null);
    let (number, reasons) = match &value {
        Value::Object(m) => (
            m.get("score").and_then(Value::as_f64),
            m.get("reasons")
                .and_then(Value::as_array)
                .map(|r| r.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect())
                .unwrap_or_default(),
        ),
        other => (other.as_f64(), Vec::new()),
    };
    let Some(number) = number else {
        return Err(EngineError::Input(format!(
            "score {}: the script must return a number or #{{score: N, reasons: [...]}}, not {value}",
            score.id
        )));
    };
    let value = number.round().clamp(0.0, 100.0) as i64;
    let before = data.get(&score.field).and_then(Value::as_f64);
    let crossed_below = score
        .thresholds
        .iter()
        .map(|t| t.below)
        .filter(|below| (value as f64) < *below && before.is_none_or(|b| b >= *below))
        .collect();
    Ok(Scored {
        score: score.id.clone(),
        value,
        reasons,
        crossed_below,
        calls: outcome.calls,
        operations: outcome.operations,
    })
}

impl Runtime {
    /// Recomputes a score for a record and stores it as a new version whose event holds the
    /// reasons, the host calls and the thresholds crossed; a threshold crossed runs its steps in
    /// the same transaction. An unchanged score writes no version.
    pub fn score(
        &mut self,
        form: &str,
        id: &str,
        score_id: &str,
        actor: &str,
    ) -> Result<(Record, Scored), EngineError> {
        let (row, scored) = self.write(|session, tx| {
            let f = session.form(form)?;
            if !f.app.app.def.scores.iter().any(|s| s.id == score_id && s.form == form) {
                return Err(EngineError::Input(format!("form {form} has no score `{score_id}`")));
            }
            session.roles(tx, actor)?;
            let w = Writer::new(session, tx, &f, actor);
            let scored = score_record(&w, score_id, id)?;
            let row = w.current(id)?.ok_or_else(|| not_found(form, id))?;
            Ok((row, scored))
        })?;
        Ok((crate::engine::records::record_of(form, row), scored))
    }
}

/// Scores one record inside a write: runs the script over the record and its tasks, stores the
/// value (with the reasons and host calls in the version's event), and runs the steps of every
/// threshold the value fell below.
pub(crate) fn score_record(w: &Writer<'_, '_>, score_id: &str, id: &str) -> Result<Scored, EngineError> {
    let def = &w.f.app.app.def;
    let Some((si, score)) = def.scores.iter().enumerate().find(|(_, s)| s.id == score_id) else {
        return Err(EngineError::Input(format!("there is no score `{score_id}`")));
    };
    let before = w.current(id)?.ok_or_else(|| not_found(&w.f.form.id, id))?;
    let tasks = crate::store::tasks::of_record(w.tx, &w.f.form.id, id)?;
    let tasks = crate::engine::sop::for_scripts(&tasks, w.at);
    let scored = evaluate(w.session.scripts, w.f, score, &before.data, Some(id), &tasks)?;
    let integer = w.f.form.field(&score.field).is_some_and(|fd| fd.kind == FieldType::Integer);
    let value = if integer { json!(scored.value) } else { json!(scored.value as f64) };
    let mut patch = Map::new();
    patch.insert(score.field.clone(), value);
    let detail = serde_json::to_value(&scored).unwrap_or(Value::Null);
    w.as_actor(crate::engine::automations::ACTOR).change(before, Edit::by_closeloop(&patch, ("score", detail)))?;
    for (ti, t) in score.thresholds.iter().enumerate() {
        if !scored.crossed_below.contains(&t.below) {
            continue;
        }
        let steps = Steps {
            name: format!("{}.below_{}", score.id, t.below),
            list: &t.steps,
            pointer: format!("/scores/{si}/thresholds/{ti}/do"),
            automation: None,
        };
        let cause = Cause {
            key: format!("{id}/score/{}/{}", score.id, w.at),
            trigger: format!("{} fell to {} (below {})", score.id, scored.value, t.below),
            ..Cause::default()
        };
        crate::engine::automations::run_steps(w, &steps, Some(id), &cause, 0)?;
    }
    Ok(scored)
}

/// The `score` step: one record, or (from a schedule) every record of the score's form.
pub(crate) fn score_step(w: &Writer<'_, '_>, score_id: &str, record: Option<&str>) -> Result<String, StepError> {
    let def = &w.f.app.app.def;
    let Some(score) = def.scores.iter().find(|s| s.id == score_id) else {
        return Err(StepError::Failed(format!("there is no score `{score_id}`")));
    };
    let Some(f) = crate::engine::automations::form_of(w.f.app, &score.form) else {
        return Err(StepError::Failed(format!("there is no form `{}`", score.form)));
    };
    let table = f.table();
    let sw = w.on(&f);
    let ids: Vec<String> = match record {
        Some(id) if score.form == w.f.form.id => vec![id.to_string()],
        _ => records::list(w.tx, table, &crate::store::ListQuery::default())?.into_iter().map(|r| r.id).collect(),
    };
    let mut shown = Vec::new();
    for id in &ids {
        match score_record(&sw, score_id, id) {
            Ok(s) => shown.push(format!("{id}: {} = {}", score.field, s.value)),
            Err(EngineError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(StepError::Failed(format!("{id}: {e}"))),
        }
    }
    Ok(match shown.len() {
        0 => "no records to score".to_string(),
        1..=5 => shown.join("; "),
        n => format!("{n} records scored"),
    })
}

impl Runtime {
    /// Runs a grade on a record and stores the level in the grade's field (and the summary in
    /// its `summary_field`), as a version whose event says which row decided and why.
    pub fn grade(
        &mut self,
        form: &str,
        id: &str,
        grade_id: &str,
        actor: &str,
    ) -> Result<(Record, crate::engine::Graded), EngineError> {
        let f = find_form(&self.apps, form).ok_or_else(|| unknown_form(&self.apps, form))?;
        let Some(index) = f.app.app.def.grades.iter().position(|g| g.id == grade_id && g.form == form) else {
            return Err(EngineError::Input(format!("form {form} has no grade `{grade_id}`")));
        };
        let grade = &f.app.app.def.grades[index];
        let roles = actor_roles(self.store.reader(), actor)?;
        let table = f.table();
        let before = records::get(self.store.reader(), table, id)?.ok_or_else(|| not_found(form, id))?;
        let member = crate::store::members::get(self.store.reader(), actor)?;
        let who = crate::engine::write::rules::Who::of(
            &before,
            crate::engine::write::rules::actor_value(actor, member.as_ref()),
        );
        let rules = crate::engine::write::rules::Rules {
            who,
            ..crate::engine::write::rules::Rules::new(f, &self.apps, &self.scripts, before.state.as_deref(), &roles)
        };
        let graded = crate::engine::scoring::trial::grade_with(&rules, grade, &before.data, index, Some(id))?;
        let mut patch = Map::new();
        patch.insert(grade.field.clone(), serde_json::to_value(graded.level).unwrap_or(Value::Null));
        if let Some(summary) = &grade.summary_field {
            patch.insert(summary.clone(), Value::String(graded.summary.clone()));
        }
        let detail = serde_json::to_value(&graded).unwrap_or(Value::Null);
        let record = self.store_derived(form, id, before.version, &patch, actor, ("grade", detail))?;
        Ok((record, graded))
    }

    /// Stores what a grade derived from version `version` of a record, as a new version whose
    /// event carries `detail`; a record changed meanwhile is a conflict.
    fn store_derived(
        &mut self,
        form: &str,
        id: &str,
        version: i64,
        patch: &Map<String, Value>,
        actor: &str,
        detail: (&'static str, Value),
    ) -> Result<Record, EngineError> {
        let row = self.write(|session, tx| {
            let f = session.form(form)?;
            let w = Writer::new(session, tx, &f, actor);
            let current = w.current(id)?.ok_or_else(|| not_found(form, id))?;
            if current.version != version {
                return Err(EngineError::Conflict { form: form.to_string(), id: id.to_string() });
            }
            w.change(current, Edit::by_closeloop(patch, (detail.0, detail.1.clone())))
        })?;
        Ok(crate::engine::records::record_of(form, row))
    }
}
