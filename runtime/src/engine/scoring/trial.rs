//! Trying a rule before it goes live: `closeloop script test`. Runs an assignment rule or a
//! grade against data (or a stored record) and reports the result, the queries it made, the
//! operations it used and the time it took. Nothing is written.

use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::people::assign::decide;
use crate::engine::records::{actor_roles, find_form};
use crate::engine::write::rules::{Purpose, Rules, Who};
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
        given: Map<String, Value>,
        record: Option<&str>,
        actor: &str,
    ) -> Result<Trial, EngineError> {
        let started = Instant::now();
        let data = given.clone();
        let conn = self.store.reader();
        let def_of = self.apps.values().map(|a| &a.app.def);
        let rule = def_of.clone().flat_map(|d| d.assignment_rules.iter()).find(|r| r.id == id);
        let grade = def_of.clone().flat_map(|d| d.grades.iter()).find(|g| g.id == id);
        let score = def_of.clone().flat_map(|d| d.scores.iter()).find(|s| s.id == id);
        let step = self.step_script(id);
        let form_id = match (rule, grade, score, &step) {
            (Some(r), _, _, _) => r.form.clone(),
            (None, Some(g), _, _) => g.form.clone(),
            (None, None, Some(s), _) => s.form.clone(),
            (None, None, None, Some((form, _))) => form.clone(),
            (None, None, None, None) => {
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
                    "there is no assignment rule, grade, score or step script `{id}`; there are: {} (or a \
                     step's `scripts/NAME.rhai`)",
                    known.join(", ")
                )));
            }
        };
        let f = find_form(&self.apps, &form_id)
            .ok_or_else(|| EngineError::Input(format!("form {form_id} is not installed")))?;
        let stored = match record {
            Some(rid) => Some(
                records::get(conn, f.table(), rid)?
                    .ok_or_else(|| EngineError::NotFound { form: form_id.clone(), id: rid.to_string() })?,
            ),
            None => None,
        };
        // The form's rules run as a submit would run them (lookups, links, computed fields), so
        // the trial judges what would be stored; what a submit would refuse is said, not fatal.
        let roles = actor_roles(conn, actor).unwrap_or_default();
        let (who, state) = self.who(f, record, actor)?;
        let rules = Rules { who: who.clone(), ..Rules::new(f, &self.apps, &self.scripts, state.as_deref(), &roles) };
        let purpose = if stored.is_some() { Purpose::Automation } else { Purpose::Create };
        let (data, problems) = rules.derive(conn, &data, stored.as_ref().map(|r| &r.data), purpose, record);
        let mut filled: Vec<&str> = data
            .keys()
            .filter(|k| !given.contains_key(*k) && stored.as_ref().is_none_or(|r| r.data.get(*k) != data.get(*k)))
            .map(String::as_str)
            .collect();
        filled.sort_unstable();
        let mut prelude = Vec::new();
        if !filled.is_empty() {
            prelude.push(format!("the form's rules filled {}: {}", filled.len(), filled.join(", ")));
        }
        prelude.extend(problems.iter().map(|p| format!("a submit would refuse {}: {}", p.field, p.message)));
        let trial = match (rule, score, grade, step) {
            (Some(rule), _, _, _) => self.try_assignment(rule, f, &data, actor)?,
            (None, Some(score), _, _) => self.try_score(score, f, &data, record)?,
            (None, None, Some(grade), _) => self.try_grade(grade, f, &data, record, actor)?,
            (None, None, None, Some((_, key))) => {
                self.try_step_script(&key, f, &data, &who, state.as_deref(), record)?
            }
            (None, None, None, None) => return Err(EngineError::Input(format!("`{id}` is not a grade"))),
        };
        let host_calls = prelude.into_iter().chain(trial.host_calls).collect();
        Ok(Trial { id: id.to_string(), form: form_id, micros: started.elapsed().as_micros(), host_calls, ..trial })
    }

    /// An assignment rule's decision on `data`, with the host queries it made.
    fn try_assignment(
        &self,
        rule: &crate::model::AssignmentRule,
        f: FormRef<'_>,
        data: &Map<String, Value>,
        actor: &str,
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
        let seen = crate::engine::people::assign::with_creator(rule, data, team.iter().find(|m| m.id == actor));
        let mut decision = decide(rule, &seen, &team, &loads);
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
        let who = self.who(f, record, actor)?;
        let row_state = who.1;
        let rules = Rules { who: who.0, ..Rules::new(f, &self.apps, &self.scripts, row_state.as_deref(), &roles) };
        let index = f.app.app.def.grades.iter().position(|g| g.id == grade.id).unwrap_or(0);
        let graded = grade_with(&rules, grade, data, index, record)?;
        let mut calls = Vec::new();
        if grade.script.is_some() {
            calls.extend(graded.calls.iter().cloned());
            calls.push(format!("the grade's script → {}", level_name(graded.level)));
        } else {
            match (grade.hits, graded.row) {
                (Some(crate::model::Hits::All), Some(_)) => {
                    calls.push(format!("{} rule(s) checked, {} held", grade.rules.len(), graded.reasons.len()))
                }
                (_, row) => calls.push(format!("{} rule(s) checked", row.unwrap_or(grade.rules.len()))),
            }
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

impl Runtime {
    /// A step script named by its file (`scripts/summary.rhai`): the form of the first
    /// automation whose steps run it, and its key among the compiled scripts.
    fn step_script(&self, id: &str) -> Option<(String, String)> {
        let path = id.strip_prefix("./").unwrap_or(id);
        if !path.ends_with(".rhai") {
            return None;
        }
        self.apps.values().map(|a| &a.app.def).find_map(|def| {
            def.automations.iter().find_map(|a| {
                let runs = a.steps.iter().any(|s| {
                    matches!(s, crate::model::Step::Script(src)
                        if matches!(crate::model::script_source(src), crate::model::ScriptSource::File(p) if p == path))
                });
                let form = a.when.form()?;
                runs.then(|| (form.to_string(), path.to_string()))
            })
        })
    }

    /// A step script's result on `data`, with what it printed.
    fn try_step_script(
        &self,
        key: &str,
        f: FormRef<'_>,
        data: &Map<String, Value>,
        who: &Who,
        state: Option<&str>,
        record: Option<&str>,
    ) -> Result<Trial, EngineError> {
        let ast = f.app.app.script(key).ok_or_else(|| EngineError::Input(format!("{key} is not compiled")))?;
        let mut record_map = data.clone();
        who.fill(state, &mut record_map);
        let mut scope = rhai::Scope::new();
        scope.push_dynamic("record", rhai::serde::to_dynamic(&record_map).unwrap_or(rhai::Dynamic::UNIT));
        scope.push_dynamic("event", rhai::Dynamic::from_map(rhai::Map::new()));
        scope.push_dynamic("actor", rhai::serde::to_dynamic(&who.actor).unwrap_or(rhai::Dynamic::UNIT));
        let context = crate::engine::scoring::score::run_context(&f, record);
        let outcome = crate::script::run_in(&self.scripts, ast, &mut scope, f.app.deadline, context)
            .map_err(|(fault, _)| EngineError::Input(format!("{key}: {fault}")))?;
        let value: Value = rhai::serde::from_dynamic(&outcome.value).unwrap_or(Value::Null);
        let result = match &value {
            Value::Object(patch) if !patch.is_empty() => {
                let set: Vec<String> = patch.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("would set {}", set.join(", "))
            }
            _ => format!("returned {value}; only a map of fields changes the record"),
        };
        let printed = outcome.log.iter().map(|l| format!("print: {l}"));
        Ok(Trial {
            kind: "step script",
            result,
            host_calls: outcome.calls.iter().cloned().chain(printed).collect(),
            operations: outcome.operations,
            ..Trial::default()
        })
    }

    /// What a trial's expressions see of the record (when it has one) and of `actor`, and the
    /// record's state.
    pub(crate) fn who(
        &self,
        f: FormRef<'_>,
        record: Option<&str>,
        actor: &str,
    ) -> Result<(crate::engine::write::rules::Who, Option<String>), EngineError> {
        let member = crate::store::members::get(self.store.reader(), actor)?;
        let actor = crate::engine::write::rules::actor_value(actor, member.as_ref());
        let row = match record {
            Some(id) => crate::store::records::get(self.store.reader(), f.table(), id)?,
            None => None,
        };
        Ok(match row {
            Some(row) => (crate::engine::write::rules::Who::of(&row, actor), row.state),
            None => (crate::engine::write::rules::Who { actor, ..Default::default() }, None),
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
    let every = grade.hits == Some(crate::model::Hits::All);
    let mut hit: Option<(Level, usize)> = None;
    let mut reasons = Vec::new();
    for (i, row) in grade.rules.iter().enumerate() {
        if !rules.holds(&row.condition, data, &format!("/grades/{index}/rules/{i}/if")) {
            continue;
        }
        reasons.push(reason_text(rules, row, data, i));
        hit = match hit {
            Some((level, first)) => Some((level.max(row.level), first)),
            None => Some((row.level, i)),
        };
        if !every {
            break;
        }
    }
    if let Some((level, first)) = hit {
        let summary = format!("{}: {}", level_word(level, lang), reasons.join("; "));
        return Ok(Graded { level, reasons, row: Some(first + 1), summary, calls: Vec::new(), operations: 0 });
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

/// A rule's reason in the app's language, its `{{ field }}` placeholders filled from the
/// record (choices as their labels; `money` and `percent` filters as in messages). A reason that
/// cannot be rendered is shown as written: the grade still stands.
fn reason_text(rules: &Rules<'_>, row: &crate::model::GradeRule, data: &Map<String, Value>, i: usize) -> String {
    let lang = rules.f.lang();
    let Some(text) = row.reason.as_ref().map(|r| r.get(lang)) else { return format!("rule {}", i + 1) };
    if !text.contains("{{") && !text.contains("{%") {
        return text.to_string();
    }
    let ctx = Value::Object(crate::engine::delivery::notify::fields_context(&rules.f, data));
    let mut env = minijinja::Environment::new();
    env.set_recursion_limit(16);
    crate::values::add_number_filters(&mut env);
    env.render_str(text, minijinja::Value::from(minijinja::value::Serde(ctx))).unwrap_or_else(|_| text.to_string())
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
    let mut data = data.clone();
    rules.who.fill(rules.state, &mut data);
    scope.push_dynamic("record", rhai::serde::to_dynamic(&data).unwrap_or(rhai::Dynamic::UNIT));
    scope.push_dynamic("actor", rhai::serde::to_dynamic(&rules.who.actor).unwrap_or(rhai::Dynamic::UNIT));
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
