//! Assignment: who gets a record, and why.
//!
//! [`decide`] is a pure function of the rule, the record, the team and the current loads, so it
//! can be tested over random teams and explained to a supervisor. The engine feeds it loads
//! from indexed queries (cached across the rows of one import) and stores each decision, with its
//! explanation, in the record's creation event.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{AssignmentRule, Fallback, Pick, Since, Step, Trigger};
use crate::store::{members, records, MemberRow, Reader, StoreError, Tx};

use crate::engine::FormRef;

/// What assignments within one write share: the team and each rule's loads, read once and
/// kept current as records are assigned.
#[derive(Debug, Default)]
pub struct Cache {
    team: Option<Vec<MemberRow>>,
    loads: BTreeMap<String, Loads>,
    /// Readable-id counters taken in this write: (form, period) → last value used. Nobody else
    /// can write while the transaction is open, so they advance here and are stored once.
    counters: BTreeMap<(String, String), i64>,
}

impl Cache {
    /// The next readable-id number for a form and period.
    pub(crate) fn next_id(&mut self, tx: &Tx<'_>, form: &str, period: &str) -> Result<i64, StoreError> {
        let key = (form.to_string(), period.to_string());
        let next = match self.counters.get(&key) {
            Some(last) => last + 1,
            None => records::counter(tx, form, period)? + 1,
        };
        self.counters.insert(key, next);
        Ok(next)
    }

    /// The member directory, read once per write.
    /// One member, from the directory when this write has read it already, else by id (a
    /// single submit need not read the whole team to know its actor).
    pub(crate) fn member(&mut self, tx: &Tx<'_>, id: &str) -> Result<Option<MemberRow>, StoreError> {
        match &self.team {
            Some(team) => Ok(team.iter().find(|m| m.id == id).cloned()),
            None => members::get(tx, id),
        }
    }

    pub(crate) fn team(&mut self, tx: &Tx<'_>) -> Result<&[MemberRow], StoreError> {
        if self.team.is_none() {
            self.team = Some(members::list(tx)?);
        }
        Ok(self.team.as_deref().unwrap_or_default())
    }

    /// Stores the counters this write advanced. Call before the transaction commits.
    pub(crate) fn finish(&self, tx: &Tx<'_>) -> Result<(), StoreError> {
        for ((form, period), value) in &self.counters {
            records::set_counter(tx, form, period, *value)?;
        }
        Ok(())
    }
}

/// A decision as the creation event records it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Recorded {
    pub(crate) rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) member: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) queue: Option<String>,
    pub(crate) explanation: String,
}

/// The start of a counting window, in the app's time zone, as stored.
pub(crate) fn window_start(window: Since, now: &jiff::Zoned) -> Option<String> {
    let date = now.date();
    let start = match window {
        Since::Ever => return None,
        Since::Today => date,
        Since::ThisWeek => {
            date.checked_sub(jiff::Span::new().days(i64::from(date.weekday().to_monday_zero_offset()))).unwrap_or(date)
        }
        Since::ThisMonth => date.first_of_month(),
    };
    start.to_zoned(now.time_zone().clone()).ok().map(|z| crate::clock::stamp(z.timestamp()))
}

/// Runs the assignment rules that the form's `created` automations name (`do: [assign: RULE]`),
/// for each target field still empty. Automations with an `if` wait for the automations engine.
pub(crate) fn on_create(
    tx: &Tx<'_>,
    f: &FormRef<'_>,
    data: &mut Map<String, Value>,
    creator: &str,
    now: &jiff::Zoned,
    cache: &mut Cache,
    scripts: Option<&rhai::Engine>,
) -> Result<Vec<Recorded>, StoreError> {
    let def = &f.app.app.def;
    let rules: Vec<&AssignmentRule> = def
        .automations
        .iter()
        .filter(|a| a.enabled != Some(false) && a.condition.is_none() && a.when == Trigger::Created(f.form.id.clone()))
        .flat_map(|a| a.steps.iter())
        .filter_map(|s| match s {
            Step::Assign(id) => def.assignment_rules.iter().find(|r| &r.id == id),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for rule in rules {
        out.extend(apply(tx, f, rule, data, creator, now, cache, scripts)?);
    }
    Ok(out)
}

/// Makes a new record's creator its owner when nothing else said who owns it: the form has an
/// owner field, the data leaves it empty, no assignment rule that fills it runs when the form's
/// records are created (whatever that rule decides, a queue included, stands), and the creator
/// is an active member (the system actors `system`, `import` and `api` are not). Returns the
/// decision as the creation event records it.
pub(crate) fn creator_owns(
    tx: &Tx<'_>,
    f: &FormRef<'_>,
    data: &mut Map<String, Value>,
    actor: &str,
    cache: &mut Cache,
) -> Result<Option<Recorded>, StoreError> {
    let Some(field) = f.form.owner_field() else { return Ok(None) };
    if data.get(field).is_some_and(|v| !v.is_null()) || crate::engine::SYSTEM_ACTORS.contains(&actor) {
        return Ok(None);
    }
    let def = &f.app.app.def;
    let ruled = def
        .automations
        .iter()
        .filter(|a| a.enabled != Some(false) && a.when == Trigger::Created(f.form.id.clone()))
        .flat_map(|a| a.steps.iter())
        .filter_map(|s| match s {
            Step::Assign(id) => def.assignment_rules.iter().find(|r| &r.id == id),
            _ => None,
        })
        .any(|r| r.field.as_deref().unwrap_or(field) == field);
    if ruled || !cache.team(tx)?.iter().any(|m| m.id == actor && m.active) {
        return Ok(None);
    }
    data.insert(field.to_string(), Value::String(actor.to_string()));
    let explanation = match f.lang() {
        crate::model::Lang::Zh => format!("创建人 {actor} 为负责人"),
        crate::model::Lang::En => format!("owned by its creator, {actor}"),
    };
    Ok(Some(Recorded { rule: "creator".into(), member: Some(actor.to_string()), queue: None, explanation }))
}

/// Runs one assignment rule on a record's data: fills the rule's field and returns the
/// decision, or `None` when the field already names someone (who still counts as loaded).
/// `creator` is the member who created the record, for `match: {store: created_by.store}`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply(
    tx: &Tx<'_>,
    f: &FormRef<'_>,
    rule: &AssignmentRule,
    data: &mut Map<String, Value>,
    creator: &str,
    now: &jiff::Zoned,
    cache: &mut Cache,
    scripts: Option<&rhai::Engine>,
) -> Result<Option<Recorded>, StoreError> {
    let Some(field) = rule.field.as_deref().or(f.form.owner_field()) else { return Ok(None) };
    if let Some(named) = data.get(field).filter(|v| !v.is_null()) {
        // A row that names its owner (an import) still adds to that member's load.
        if let (Some(member), Some(loads)) = (named.as_str(), cache.loads.get_mut(&rule.id)) {
            loads.count_new(rule, f, member);
        }
        return Ok(None);
    }
    if cache.team.is_none() {
        cache.team = Some(members::list(tx)?);
    }
    if !cache.loads.contains_key(&rule.id) {
        cache.loads.insert(rule.id.clone(), read_loads(tx, f, rule, field, now)?);
    }
    let team = cache.team.as_deref().unwrap_or_default();
    let Some(loads) = cache.loads.get_mut(&rule.id) else { return Ok(None) };
    let seen = with_creator(rule, data, team.iter().find(|m| m.id == creator));
    let mut decision = decide(rule, &seen, team, loads);
    if rule.pick == Pick::Script {
        decision = by_script(f, rule, data, team, decision, scripts);
    }
    if let Some(member) = &decision.member {
        data.insert(field.to_string(), Value::String(member.clone()));
        loads.count_new(rule, f, member);
    }
    Ok(Some(Recorded {
        rule: rule.id.clone(),
        member: decision.member,
        queue: decision.queue,
        explanation: decision.explanation,
    }))
}

/// A rule's loads as stored: open records per member of the field the rule fills, the counts
/// each preference weighs, and (for round robin) whose turn it is. One indexed query each.
pub(crate) fn read_loads(
    conn: &Reader,
    f: &FormRef<'_>,
    rule: &AssignmentRule,
    field: &str,
    now: &jiff::Zoned,
) -> Result<Loads, StoreError> {
    let table = f.table();
    let by = table.assignee(field, f.form.owner_field());
    let load_states = rule.load.as_ref().map(|l| l.states.as_slice()).unwrap_or_default();
    let mut loads = Loads { open: records::count_by_owner(conn, table, &by, load_states, None)?, ..Loads::default() };
    for pref in &rule.prefer {
        let window = window_start(pref.since.unwrap_or(Since::Ever), now);
        loads.preferences.push(records::count_by_owner(conn, table, &by, &pref.states, window.as_deref())?);
    }
    if rule.pick == Pick::RoundRobin {
        loads.turns = records::turns(conn, table, &by)?;
    }
    Ok(loads)
}

/// Loads of the team for one rule: open records per member, and per preference the count of
/// records in that preference's states and window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loads {
    /// Open records per member id (the rule's `load` states).
    pub open: BTreeMap<String, u64>,
    /// For each preference, in order: records per member id.
    pub preferences: Vec<BTreeMap<String, u64>>,
    /// When each member was last given a record of the form, larger being later (for
    /// `round_robin`); members never given one are absent.
    pub turns: BTreeMap<String, u64>,
}

impl Loads {
    /// Counts a new record for its member from now on, in the states it starts in.
    fn count_new(&mut self, rule: &AssignmentRule, f: &FormRef<'_>, member: &str) {
        let initial = f.form.initial_state().map(|s| s.id.as_str());
        let counts = |states: &[String]| states.is_empty() || initial.is_some_and(|s| states.iter().any(|x| x == s));
        if counts(rule.load.as_ref().map(|l| l.states.as_slice()).unwrap_or_default()) {
            *self.open.entry(member.to_string()).or_default() += 1;
        }
        for (i, pref) in rule.prefer.iter().enumerate() {
            if counts(&pref.states) {
                if let Some(c) = self.preferences.get_mut(i) {
                    *c.entry(member.to_string()).or_default() += 1;
                }
            }
        }
        let next = self.turns.values().max().copied().unwrap_or(0) + 1;
        self.turns.insert(member.to_string(), next);
    }
}

/// One candidate as the decision saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Member id.
    pub id: String,
    /// Open records.
    pub load: u64,
    /// Why they were left out, if they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
}

/// An assignment decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Who gets the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The fallback queue, when nobody qualified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Why, in a sentence a supervisor can read.
    pub explanation: String,
    /// Everyone considered.
    pub candidates: Vec<Candidate>,
}

/// What a rule's `match` reads from: the record's fields, and for a value written
/// `created_by.ATTR` that attribute of the member who created the record (the rep's store).
/// Borrowed as is when the rule reads no creator's attribute.
pub(crate) fn with_creator<'d>(
    rule: &AssignmentRule,
    data: &'d Map<String, Value>,
    creator: Option<&MemberRow>,
) -> std::borrow::Cow<'d, Map<String, Value>> {
    let wanted: Vec<&str> =
        rule.candidates.r#match.values().filter_map(|v| v.strip_prefix(crate::model::CREATOR_PREFIX)).collect();
    if wanted.is_empty() {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut seen = data.clone();
    for attr in wanted {
        let value = creator.and_then(|m| attribute(m, attr)).map_or(Value::Null, Value::String);
        seen.insert(format!("{}{attr}", crate::model::CREATOR_PREFIX), value);
    }
    std::borrow::Cow::Owned(seen)
}

/// A member's attribute as text: a built-in one (`region`) or one the app declared (`store`).
pub(crate) fn attribute(m: &MemberRow, name: &str) -> Option<String> {
    match name {
        "id" => Some(m.id.clone()),
        "name" => Some(m.name.clone()),
        "region" => m.region.clone(),
        "manager" => m.manager.clone(),
        "email" => m.email.clone(),
        "phone" => m.phone.clone(),
        "away_from" => m.away_from.clone(),
        "away_until" => m.away_until.clone(),
        "delegate_to" => m.delegate_to.clone(),
        other => m.extra.get(other).and_then(|v| v.as_str().map(str::to_string).or_else(|| Some(v.to_string()))),
    }
}

/// Decides who gets a record. Deterministic: equal loads are broken by member id.
pub fn decide(rule: &AssignmentRule, record: &Map<String, Value>, team: &[MemberRow], loads: &Loads) -> Decision {
    let load = |id: &str| loads.open.get(id).copied().unwrap_or(0);
    let (candidates, mut eligible) = screen(rule, record, team, &load);
    let mut why: Vec<String> = Vec::new();
    if let Some((attr, field)) = rule.candidates.r#match.iter().next() {
        let value = record
            .get(field)
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .unwrap_or_default();
        why.push(format!("{attr} {value}"));
    }
    for (i, pref) in rule.prefer.iter().enumerate() {
        let counts = loads.preferences.get(i);
        let count = |id: &str| counts.and_then(|c| c.get(id)).copied().unwrap_or(0);
        let preferred: Vec<&MemberRow> =
            eligible.iter().copied().filter(|m| count(&m.id) < u64::from(pref.fewer_than)).collect();
        if !preferred.is_empty() && preferred.len() < eligible.len() {
            why.push(format!("fewer than {} in {}", pref.fewer_than, pref.states.join("/")));
            eligible = preferred;
        }
    }
    match pick(rule, record, &eligible, loads, &load) {
        Some(m) => {
            let how = match rule.pick {
                Pick::LeastLoaded | Pick::Script => "least loaded",
                Pick::RoundRobin => "next in turn",
                Pick::Weighted => "lowest load for their weight",
                Pick::ByField => "named on the record",
            };
            why.push(format!("{} open", load(&m.id)));
            why.push(how.to_string());
            Decision {
                member: Some(m.id.clone()),
                queue: None,
                explanation: format!("to {}: {}", m.name, why.join(", ")),
                candidates,
            }
        }
        None => fallback(rule, team, candidates),
    }
}

/// Every member holding the rule's role, in id order, each with why they are left out (if
/// they are); and the ones who are not.
fn screen<'m>(
    rule: &AssignmentRule,
    record: &Map<String, Value>,
    team: &'m [MemberRow],
    load: &dyn Fn(&str) -> u64,
) -> (Vec<Candidate>, Vec<&'m MemberRow>) {
    let mut candidates = Vec::new();
    let mut eligible: Vec<&MemberRow> = Vec::new();
    let mut sorted: Vec<&MemberRow> = team.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for m in sorted.into_iter().filter(|m| m.roles.iter().any(|r| r == &rule.candidates.role)) {
        let excluded = if rule.candidates.active_only != Some(false) && !m.active {
            Some("inactive".to_string())
        } else if let Some((attr, field)) = rule.candidates.r#match.iter().find(|(attr, field)| {
            let want = record
                .get(*field)
                .filter(|v| !v.is_null())
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
            want.is_none() || attribute(m, attr) != want
        }) {
            Some(format!("{attr} differs from the record's {field}"))
        } else if rule.candidates.under_capacity != Some(false)
            && m.capacity.is_some_and(|c| load(&m.id) >= c.max(0) as u64)
        {
            Some(format!("at capacity ({} of {})", load(&m.id), m.capacity.unwrap_or(0)))
        } else {
            None
        };
        if excluded.is_none() {
            eligible.push(m);
        }
        candidates.push(Candidate { id: m.id.clone(), load: load(&m.id), excluded });
    }
    (candidates, eligible)
}

/// The one the rule's `pick` chooses among the eligible; ties go to the lowest id.
fn pick<'m>(
    rule: &AssignmentRule,
    record: &Map<String, Value>,
    eligible: &[&'m MemberRow],
    loads: &Loads,
    load: &dyn Fn(&str) -> u64,
) -> Option<&'m MemberRow> {
    match rule.pick {
        Pick::LeastLoaded | Pick::Script => {
            eligible.iter().copied().min_by(|a, b| load(&a.id).cmp(&load(&b.id)).then(a.id.cmp(&b.id)))
        }
        Pick::RoundRobin => {
            // Whoever among the eligible waited longest (never given one first), so members of
            // one region take turns however other regions' records interleave.
            let turn = |m: &MemberRow| loads.turns.get(&m.id).copied().unwrap_or(0);
            eligible.iter().copied().min_by(|a, b| turn(a).cmp(&turn(b)).then(a.id.cmp(&b.id)))
        }
        Pick::Weighted => {
            let weight = |m: &MemberRow| -> u64 {
                let attr = rule.weight.as_deref().unwrap_or("capacity");
                let w = if attr == "capacity" {
                    m.capacity.unwrap_or(1)
                } else {
                    // Imported extras are text: "3" weighs 3.
                    m.extra
                        .get(attr)
                        .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
                        .unwrap_or(1)
                };
                w.max(1) as u64
            };
            // The lowest load per unit of weight; compare a/wa < b/wb as a*wb < b*wa.
            eligible.iter().copied().min_by(|a, b| {
                (u128::from(load(&a.id)) * u128::from(weight(b)))
                    .cmp(&(u128::from(load(&b.id)) * u128::from(weight(a))))
                    .then(a.id.cmp(&b.id))
            })
        }
        Pick::ByField => {
            let named = rule.by_field.as_deref().and_then(|f| record.get(f)).and_then(Value::as_str);
            eligible.iter().copied().find(|m| Some(m.id.as_str()) == named)
        }
    }
}

/// Nobody qualified: the rule's fallback member or queue, or unassigned, and why.
fn fallback(rule: &AssignmentRule, team: &[MemberRow], candidates: Vec<Candidate>) -> Decision {
    let reason = if candidates.is_empty() { "no member holds the role" } else { "nobody qualified" };
    let (member, queue, explanation) = match &rule.fallback {
        Some(Fallback::Member(id))
            if !team.iter().any(|m| &m.id == id && (m.active || rule.candidates.active_only == Some(false))) =>
        {
            (None, None, format!("unassigned: {reason}, and the fallback {id} is not an active member"))
        }
        Some(Fallback::Member(id)) => (Some(id.clone()), None, format!("to {id} (fallback): {reason}")),
        Some(Fallback::Queue(q)) => (None, Some(q.clone()), format!("to queue {q}: {reason}")),
        None => (None, None, format!("unassigned: {reason}")),
    };
    Decision { member, queue, explanation, candidates }
}

/// `pick: script`: the rule's script gets the record and the eligible candidates (id, name,
/// region, load) and returns the chosen member's id. A script that fails or names someone who is
/// not a candidate leaves the record unassigned, with the failure in the explanation: the record
/// is never lost.
pub(crate) fn by_script(
    f: &FormRef<'_>,
    rule: &AssignmentRule,
    data: &Map<String, Value>,
    team: &[MemberRow],
    decision: Decision,
    scripts: Option<&rhai::Engine>,
) -> Decision {
    let Some(engine) = scripts else { return decision };
    let index = f.app.app.def.assignment_rules.iter().position(|r| r.id == rule.id).unwrap_or(0);
    let key = match rule.script.as_deref().map(crate::model::script_source) {
        Some(crate::model::ScriptSource::File(path)) => path.to_string(),
        _ => format!("/assignment_rules/{index}/script"),
    };
    let Some(ast) = f.app.app.script(&key) else { return decision };
    let eligible: Vec<Value> = decision
        .candidates
        .iter()
        .filter(|c| c.excluded.is_none())
        .filter_map(|c| {
            team.iter()
                .find(|m| m.id == c.id)
                .map(|m| serde_json::json!({"id": m.id, "name": m.name, "region": m.region, "load": c.load}))
        })
        .collect();
    let mut scope = rhai::Scope::new();
    scope.push_dynamic("record", rhai::serde::to_dynamic(data).unwrap_or(rhai::Dynamic::UNIT));
    scope.push_dynamic("candidates", rhai::serde::to_dynamic(&eligible).unwrap_or(rhai::Dynamic::UNIT));
    let context = crate::engine::scoring::score::run_context(f, None);
    let chosen = crate::script::run_in(engine, ast, &mut scope, f.app.deadline, context)
        .map_err(|(fault, _)| fault.to_string())
        .and_then(|o| o.value.into_string().map_err(|t| format!("the script returned a {t}, not a member id")));
    let candidates = decision.candidates;
    match chosen {
        Ok(id) if eligible.iter().any(|c| c["id"] == id.as_str()) => {
            let name = team.iter().find(|m| m.id == id).map(|m| m.name.clone()).unwrap_or_else(|| id.clone());
            Decision {
                member: Some(id),
                queue: None,
                explanation: format!("to {name}: chosen by the rule's script"),
                candidates,
            }
        }
        Ok(id) => Decision {
            member: None,
            queue: None,
            explanation: format!("assignment failed: the script chose `{id}`, who is not a candidate; left unassigned"),
            candidates,
        },
        Err(e) => Decision {
            member: None,
            queue: None,
            explanation: format!("assignment failed: {e}; left unassigned"),
            candidates,
        },
    }
}
