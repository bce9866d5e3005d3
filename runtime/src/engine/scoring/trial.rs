//! Trying a rule before it goes live: `closeloop script test`. Runs an assignment rule or a
//! grade against data (or a stored record) and reports the result, the queries it made, the
//! operations it used and the time it took. Nothing is written.

use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::people::assign::decide;
use crate::engine::records::{actor_roles, find_form};
use crate::engine::write::rules::Rules;
use crate::engine::{EngineError, FormRef, Runtime};
use crate::model::{Level, Since};
use crate::store::{members, records};

/// What a trial found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trial {
    /// `assignment rule`, `score` or `grade`.
    pub kind: &'static str,
    /// The rule's id.
    pub id: String,
    /// The form it runs on.
    pub form: String,
    /// The outcome in words.
    pub result: String,
    /// The outcome as data: the decision, the score or the grade.
    pub detail: TrialDetail,
    /// The queries and host calls it made, in order.
    pub host_calls: Vec<String>,
    /// Script operations used (0 for rules closeloop evaluates natively).
    pub operations: u64,
    /// Wall-clock microseconds.
    pub micros: u128,
}

/// What a trial decided, by kind of rule (serialised as the decision, score or grade itself).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(untagged)]
pub enum TrialDetail {
    /// An assignment rule's decision, with every candidate and why they were left out.
    Assignment(crate::engine::people::assign::Decision),
    /// A score's value and reasons.
    Score(super::score::Scored),
    /// A grade's level and the rule (or script) that decided it.
    Grade(Graded),
    /// Nothing yet.
    #[default]
    None,
}

/// A grade's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graded {
    /// low, medium or high.
    pub level: Level,
    /// Why: the reason of the row that matched, or that none did.
    pub reasons: Vec<String>,
    /// The row that matched (1-based), if one did.
    pub row: Option<usize>,
    /// A short text for legal.
    pub summary: String,
    /// The host calls a grade script made (none for a decision table).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// The operations a grade script used (0 for a decision table).
    #[serde(skip_serializing_if = "is_zero")]
    pub operations: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Runtime {
    /// Runs an assignment rule or a grade against `data` (or the stored record `record`)
    /// without writing anything.
    pub fn try_rule(
        &self,
        id: &str,
        data: Map<String, Value>,
        record: Option<&str>,
        actor: &str,
    ) -> Result<Trial, EngineError> {
        let started = Instant::now();
        let conn = self.store.reader();
        let def_of = self.apps.values().map(|a| &a.app.def);
        let rule = def_of.clone().flat_map(|d| d.assignment_rules.iter()).find(|r| r.id == id);
        let grade = def_of.clone().flat_map(|d| d.grades.iter()).find(|g| g.id == id);
        let score = def_of.clone().flat_map(|d| d.scores.iter()).find(|s| s.id == id);
        let form_id = match (rule, grade, score) {
            (Some(r), _, _) => r.form.clone(),
            (None, Some(g), _) => g.form.clone(),
            (None, None, Some(s)) => s.form.clone(),
            (None, None, None) => {
                let known: Vec<String> = def_of
                    .flat_map(|d| {
                        d.assignment_rules
                            .iter()
                            .map(|r| r.id.clone())
                            .chain(d.grades.iter().map(|g| g.id.clone()))
                            .chain(d.scores.iter().map(|s| s.id.clone()))
                    })
                    .collect();
                return Err(EngineError::Input(format!(
                    "there is no assignment rule, grade or score `{id}`; there are: {}",
                    known.join(", ")
                )));
            }
        };
        let f = find_form(&self.apps, &form_id)
            .ok_or_else(|| EngineError::Input(format!("form {form_id} is not installed")))?;
        let table = f.table();
        let mut data = data;
        if let Some(rid) = record {
            let stored = records::get(conn, table, rid)?
                .ok_or_else(|| EngineError::NotFound { form: form_id.clone(), id: rid.to_string() })?;
            for (k, v) in stored.data {
                data.entry(k).or_insert(v);
            }
        }
        let trial = match (rule, score, grade) {
            (Some(rule), _, _) => self.try_assignment(rule, f, &data)?,
            (None, Some(score), _) => self.try_score(score, f, &data, record)?,
            (None, None, Some(grade)) => self.try_grade(grade, f, &data, record, actor)?,
            (None, None, None) => return Err(EngineError::Input(format!("`{id}` is not a grade"))),
        };
        Ok(Trial { id: id.to_string(), form: form_id, micros: started.elapsed().as_micros(), ..trial })
    }

    /// An assignment rule's decision on `data`, with the host queries it made.
    fn try_assignment(
        &self,
        rule: &crate::model::AssignmentRule,
        f: FormRef<'_>,
        data: &Map<String, Value>,
    ) -> Result<Trial, EngineError> {
        let conn = self.store.reader();
        let form_id = &f.form.id;
        let mut calls = Vec::new();
        let team = members::list(conn)?;
        calls.push(format!("members() → {} members", team.len()));
        let field = rule.field.as_deref().or(f.form.owner_field()).unwrap_or("owner");
        let now = self.clock.now().to_zoned(f.time_zone());
        let loads = crate::engine::people::assign::read_loads(conn, &f, rule, field, &now)?;
        let load_states = rule.load.as_ref().map(|l| l.states.as_slice()).unwrap_or_default();
        calls.push(format!("open_count({}, states {:?}) → {} owners", form_id, load_states, loads.open.len()));
        for (pref, counts) in rule.prefer.iter().zip(&loads.preferences) {
            let since = crate::engine::people::assign::window_start(pref.since.unwrap_or(Since::Ever), &now);
            calls.push(format!(
                "open_count({form_id}, states {:?}, since {}) → {} owners",
                pref.states,
                since.as_deref().unwrap_or("ever"),
                counts.len()
            ));
        }
        let mut decision = decide(rule, data, &team, &loads);
        if rule.pick == crate::model::Pick::Script {
            decision = crate::engine::people::assign::by_script(&f, rule, data, &team, decision, Some(&self.scripts));
            calls.push(format!("the rule's script → {}", decision.member.as_deref().unwrap_or("nobody")));
        }
        Ok(Trial {
            kind: "assignment rule",
            result: decision.explanation.clone(),
            detail: TrialDetail::Assignment(decision),
            host_calls: calls,
            ..Trial::default()
        })
    }

    /// A score's value on `data` (and the record's tasks), with its reasons.
    fn try_score(
        &self,
        score: &crate::model::Score,
        f: FormRef<'_>,
        data: &Map<String, Value>,
        record: Option<&str>,
    ) -> Result<Trial, EngineError> {
        let tasks = match record {
            Some(id) => crate::store::tasks::of_record(self.store.reader(), &f.form.id, id)?,
            None => Vec::new(),
        };
        let tasks = crate::engine::sop::for_scripts(&tasks, &self.now());
        let scored = crate::engine::scoring::score::evaluate(&self.scripts, &f, score, data, record, &tasks)?;
        let reasons =
            if scored.reasons.is_empty() { String::new() } else { format!(" ({})", scored.reasons.join("; ")) };
        Ok(Trial {
            kind: "score",
            result: format!("{} = {}{reasons}", score.field, scored.value),
            host_calls: scored.calls.clone(),
            operations: scored.operations,
            detail: TrialDetail::Score(scored),
            ..Trial::default()
        })
    }

    /// A grade's level on `data`: its rules, or its script.
    fn try_grade(
        &self,
        grade: &crate::model::Grade,
        f: FormRef<'_>,
        data: &Map<String, Value>,
        record: Option<&str>,
        actor: &str,
    ) -> Result<Trial, EngineError> {
        let roles = actor_roles(self.store.reader(), actor).unwrap_or_default();
        let rules = Rules::new(f, &self.apps, &self.scripts, None, &roles);
        let index = f.app.app.def.grades.iter().position(|g| g.id == grade.id).unwrap_or(0);
        let graded = grade_with(&rules, grade, data, index, record)?;
        let mut calls = Vec::new();
        if grade.script.is_some() {
            calls.extend(graded.calls.iter().cloned());
            calls.push(format!("the grade's script → {}", level_name(graded.level)));
        } else {
            calls.push(format!("{} rule(s) checked", graded.row.unwrap_or(grade.rules.len())));
        }
        Ok(Trial {
            kind: "grade",
            result: graded.summary.clone(),
            operations: graded.operations,
            detail: TrialDetail::Grade(graded),
            host_calls: calls,
            ..Trial::default()
        })
    }
}

/// Grades a record's data (`record`: its id, for the host API): runs the grade's script when it
/// has one, else its decision table, where the first row whose condition holds gives the level.
pub(crate) fn grade_with(
    rules: &Rules<'_>,
    grade: &crate::model::Grade,
    data: &Map<String, Value>,
    index: usize,
    record: Option<&str>,
) -> Result<Graded, EngineError> {
    let lang = rules.f.lang();
    if let Some(script) = &grade.script {
        return grade_script(rules, grade, script, data, index, record);
    }
    for (i, row) in grade.rules.iter().enumerate() {
        if rules.holds(&row.condition, data, &format!("/grades/{index}/rules/{i}/if")) {
            let reason =
                row.reason.as_ref().map(|r| r.get(lang).to_string()).unwrap_or_else(|| format!("rule {}", i + 1));
            let summary = format!("{}: {reason}", level_word(row.level, lang));
            return Ok(Graded {
                level: row.level,
                reasons: vec![reason],
                row: Some(i + 1),
                summary,
                calls: Vec::new(),
                operations: 0,
            });
        }
    }
    let level = grade.default.unwrap_or(Level::Medium);
    let reason = match lang {
        crate::model::Lang::Zh => "无规则命中，按默认等级".to_string(),
        crate::model::Lang::En => "no rule matched; the default level".to_string(),
    };
    Ok(Graded {
        level,
        summary: format!("{}: {reason}", level_word(level, lang)),
        reasons: vec![reason],
        row: None,
        calls: Vec::new(),
        operations: 0,
    })
}

/// Runs a grade's script over `record` (the fields). It returns a level (`"high"`), or
/// `#{level: "high", reasons: [...], summary: "..."}`; `()` gives the grade's `default`. Without
/// a summary the summary is the level's word and the reasons (`高风险: 预付比例超过 50%`).
fn grade_script(
    rules: &Rules<'_>,
    grade: &crate::model::Grade,
    script: &crate::model::Script,
    data: &Map<String, Value>,
    index: usize,
    record: Option<&str>,
) -> Result<Graded, EngineError> {
    let f = &rules.f;
    let lang = f.lang();
    let source = crate::model::script_source(script);
    let key = match source {
        crate::model::ScriptSource::File(path) => path.to_string(),
        crate::model::ScriptSource::Inline(_) => format!("/grades/{index}/script"),
    };
    let ast = f
        .app
        .app
        .script(&key)
        .ok_or_else(|| EngineError::Input(format!("grade {} has no compiled script", grade.id)))?;
    let mut scope = rhai::Scope::new();
    scope.push_dynamic("record", rhai::serde::to_dynamic(data).unwrap_or(rhai::Dynamic::UNIT));
    let context = crate::engine::scoring::score::run_context(f, record);
    let outcome =
        crate::script::run_in(rules.scripts, ast, &mut scope, f.app.deadline, context).map_err(|(fault, _)| {
            let place = match (&fault, source) {
                (
                    crate::script::ScriptFault::Runtime { message, line, column },
                    crate::model::ScriptSource::File(path),
                ) => format!("{path}:{line}:{column}: {message}"),
                _ => fault.to_string(),
            };
            EngineError::Input(format!("grade {}: {place}", grade.id))
        })?;
    let value: Value = rhai::serde::from_dynamic(&outcome.value).unwrap_or(Value::Null);
    let bad = || {
        EngineError::Input(format!(
            "grade {}: the script must return \"low\", \"medium\" or \"high\", or #{{level: ..., reasons: [...], summary: \"...\"}}, not {value}",
            grade.id
        ))
    };
    let level_of = |v: &Value| v.as_str().and_then(|t| serde_json::from_value::<Level>(Value::String(t.into())).ok());
    let (level, reasons, summary) = match &value {
        Value::Null => {
            let reason = match lang {
                crate::model::Lang::Zh => "脚本未给出等级，按默认等级".to_string(),
                crate::model::Lang::En => "the script gave no level; the default level".to_string(),
            };
            (grade.default.unwrap_or(Level::Medium), vec![reason], None)
        }
        Value::String(_) => (level_of(&value).ok_or_else(bad)?, Vec::new(), None),
        Value::Object(m) => {
            let level = m.get("level").and_then(level_of).ok_or_else(bad)?;
            let reasons: Vec<String> = match m.get("reasons") {
                Some(Value::Array(r)) => {
                    r.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect()
                }
                Some(Value::String(r)) => vec![r.clone()],
                _ => Vec::new(),
            };
            let summary = m.get("summary").and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty());
            (level, reasons, summary)
        }
        _ => return Err(bad()),
    };
    let summary = summary.unwrap_or_else(|| match reasons.is_empty() {
        true => level_word(level, lang).to_string(),
        false => format!("{}: {}", level_word(level, lang), reasons.join("; ")),
    });
    Ok(Graded { level, reasons, row: None, summary, calls: outcome.calls, operations: outcome.operations })
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Low => "low",
        Level::Medium => "medium",
        Level::High => "high",
    }
}

fn level_word(level: Level, lang: crate::model::Lang) -> &'static str {
    match (lang, level) {
        (crate::model::Lang::Zh, Level::Low) => "低风险",
        (crate::model::Lang::Zh, Level::Medium) => "中风险",
        (crate::model::Lang::Zh, Level::High) => "高风险",
        (crate::model::Lang::En, Level::Low) => "low risk",
        (crate::model::Lang::En, Level::Medium) => "medium risk",
        (crate::model::Lang::En, Level::High) => "high risk",
    }
}
