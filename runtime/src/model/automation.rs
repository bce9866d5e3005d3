//! Conditions, triggers, steps, approvals, SOPs, scores, grades and metrics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Label, Recipient};

/// A script: `scripts/NAME.rhai` in the app folder, or inline rhai text.
pub type Script = String;

/// Where a script comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptSource<'a> {
    /// A file in the app's `scripts/` folder (the path as written).
    File(&'a str),
    /// Text written in the YAML.
    Inline(&'a str),
}

/// Tells a script file reference from inline text. A single line that starts with `scripts/`,
/// `./` or ends in `.rhai` is meant as a file (rhai code never looks like that); whether it is
/// a valid name (`scripts/NAME.rhai`, see [`valid_script_path`]) is checked separately, so a
/// mistyped path is reported as a path and not compiled as a division.
pub fn script_source(script: &str) -> ScriptSource<'_> {
    let line = script.trim();
    let is_file =
        !line.contains('\n') && (line.starts_with("scripts/") || line.starts_with("./") || line.ends_with(".rhai"));
    if is_file {
        ScriptSource::File(script)
    } else {
        ScriptSource::Inline(script)
    }
}

/// True for `scripts/NAME.rhai` with NAME of ASCII letters, digits, `_` and `-`.
pub fn valid_script_path(path: &str) -> bool {
    path.strip_prefix("scripts/")
        .and_then(|rest| rest.strip_suffix(".rhai"))
        .is_some_and(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

/// A condition, written as one object. Which keys may go together (a `field` with exactly
/// one operator; otherwise exactly one of the others) is checked after the schema, so the
/// author is told precisely which key is out of place; [`Condition::kind`] gives the shape.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, deserialize_with = "super::present", skip_serializing_if = "Option::is_none")]
    pub eq: Option<Value>,
    #[serde(default, deserialize_with = "super::present", skip_serializing_if = "Option::is_none")]
    pub ne: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<Value>,
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub in_: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_in: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// A table field whose rows `where` tests: it holds when any row satisfies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
    /// With `rows`: the test for one row, on its columns.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<Box<Condition>>,
}

/// A comparison operator of a field condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    NotIn,
    Empty,
}

impl CompareOp {
    /// The key as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Gt => "gt",
            CompareOp::Gte => "gte",
            CompareOp::Lt => "lt",
            CompareOp::Lte => "lte",
            CompareOp::In => "in",
            CompareOp::NotIn => "not_in",
            CompareOp::Empty => "empty",
        }
    }
}

/// The shape of a well-formed condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConditionKind<'a> {
    /// Every one holds.
    All(&'a [Condition]),
    /// At least one holds.
    Any(&'a [Condition]),
    /// Does not hold.
    Not(&'a Condition),
    /// A field compared with an operator.
    Compare(&'a str, CompareOp),
    /// The record is in one of these states.
    State(&'a [String]),
    /// The actor holds a role.
    Role(&'a str),
    /// A rhai expression.
    Expr(&'a str),
    /// Some row of a table field satisfies the condition (on the row's columns).
    Rows(&'a str, &'a Condition),
}

/// Why a condition object is not well formed: the keys involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionShapeError {
    /// A comparison operator without `field`.
    OperatorWithoutField(&'static str),
    /// `field` without an operator.
    FieldWithoutOperator,
    /// Two keys that cannot go together; the second is reported.
    TooMany(&'static str, &'static str),
    /// `rows` without `where`, or `where` without `rows`: the key that is there.
    RowsWithoutWhere(&'static str),
}

impl Condition {
    fn operators(&self) -> Vec<CompareOp> {
        let mut ops = Vec::new();
        let pairs = [
            (self.eq.is_some(), CompareOp::Eq),
            (self.ne.is_some(), CompareOp::Ne),
            (self.gt.is_some(), CompareOp::Gt),
            (self.gte.is_some(), CompareOp::Gte),
            (self.lt.is_some(), CompareOp::Lt),
            (self.lte.is_some(), CompareOp::Lte),
            (self.in_.is_some(), CompareOp::In),
            (self.not_in.is_some(), CompareOp::NotIn),
            (self.empty.is_some(), CompareOp::Empty),
        ];
        for (present, op) in pairs {
            if present {
                ops.push(op);
            }
        }
        ops
    }

    /// The condition's shape, or which keys conflict.
    pub fn kind(&self) -> Result<ConditionKind<'_>, ConditionShapeError> {
        let ops = self.operators();
        let mut heads: Vec<(&'static str, ConditionKind<'_>)> = Vec::new();
        if let Some(c) = &self.all {
            heads.push(("all", ConditionKind::All(c)));
        }
        if let Some(c) = &self.any {
            heads.push(("any", ConditionKind::Any(c)));
        }
        if let Some(c) = &self.not {
            heads.push(("not", ConditionKind::Not(c)));
        }
        if let Some(s) = &self.state {
            heads.push(("state", ConditionKind::State(s)));
        }
        if let Some(r) = &self.role {
            heads.push(("role", ConditionKind::Role(r)));
        }
        if let Some(e) = &self.expr {
            heads.push(("expr", ConditionKind::Expr(e)));
        }
        match (&self.rows, &self.where_) {
            (Some(table), Some(test)) => heads.push(("rows", ConditionKind::Rows(table, test))),
            (Some(_), None) => return Err(ConditionShapeError::RowsWithoutWhere("rows")),
            (None, Some(_)) => return Err(ConditionShapeError::RowsWithoutWhere("where")),
            (None, None) => {}
        }
        match &self.field {
            Some(field) => {
                if let Some((key, _)) = heads.first() {
                    return Err(ConditionShapeError::TooMany("field", key));
                }
                match ops.as_slice() {
                    [] => Err(ConditionShapeError::FieldWithoutOperator),
                    [op] => Ok(ConditionKind::Compare(field, *op)),
                    [first, second, ..] => Err(ConditionShapeError::TooMany(first.as_str(), second.as_str())),
                }
            }
            None => {
                if let Some(op) = ops.first() {
                    return Err(ConditionShapeError::OperatorWithoutField(op.as_str()));
                }
                match heads.as_slice() {
                    [(_, kind)] => Ok(*kind),
                    [(first, _), (second, _), ..] => Err(ConditionShapeError::TooMany(first, second)),
                    // The schema's minProperties rules out an empty object.
                    [] => Err(ConditionShapeError::FieldWithoutOperator),
                }
            }
        }
    }
}

/// A moment relative to a date field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offset {
    /// How long after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// How long before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The anchor field.
    pub from: String,
}

/// What starts an automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A record of the form is created.
    Created(String),
    /// A record of the form is updated.
    Updated(String),
    /// A field changes.
    Changed(ChangedTrigger),
    /// An action is done.
    Action(ActionTrigger),
    /// A state is entered.
    Entered(EnteredTrigger),
    /// An external event arrives.
    Event(String),
    /// A cron schedule.
    Cron(CronTrigger),
    /// A timer relative to a date field.
    Timer(TimerTrigger),
}

impl Trigger {
    /// The form whose records start it, when one does (not an external event or a schedule).
    pub fn form(&self) -> Option<&str> {
        match self {
            Trigger::Created(f) | Trigger::Updated(f) => Some(f),
            Trigger::Changed(c) => Some(&c.form),
            Trigger::Action(a) => Some(&a.form),
            Trigger::Entered(e) => Some(&e.form),
            Trigger::Timer(t) => Some(&t.form),
            Trigger::Event(_) | Trigger::Cron(_) => None,
        }
    }
}

/// A field change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ChangedTrigger {
    pub form: String,
    pub field: String,
    #[serde(default, deserialize_with = "super::present", skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    #[serde(default, deserialize_with = "super::present", skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

/// An action done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ActionTrigger {
    pub form: String,
    pub action: String,
}

/// A state entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EnteredTrigger {
    pub form: String,
    pub state: String,
}

/// A cron schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    /// 5-field cron.
    pub schedule: String,
    /// Time zone; default the app's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A timer relative to each record's date field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerTrigger {
    /// The form.
    pub form: String,
    /// How long after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// How long before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The anchor field.
    pub from: String,
    /// What to do when the moment passed during downtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<LatePolicy>,
}

/// What a timer does when its moment passed while closeloop was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatePolicy {
    /// Fire once, marked late.
    Fire,
    /// Record it as skipped.
    Skip,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Set fields.
    Set(BTreeMap<String, Value>),
    /// Run an assignment rule.
    Assign(String),
    /// Open an SOP's tasks.
    CreateTasks(String),
    /// Cancel an SOP's open tasks.
    CancelTasks(String),
    /// Start an approval chain.
    StartApproval(String),
    /// Send a message.
    Notify(Notify),
    /// Flag on a board.
    Flag(Flag),
    /// Take off a board.
    Unflag(String),
    /// Raise an event.
    Emit(Emit),
    /// Run a script.
    Script(Script),
    /// Recompute a score.
    Score(String),
    /// Run a grade.
    Grade(String),
}

/// A notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Notify {
    pub channel: String,
    pub message: String,
    pub to: Recipient,
}

/// A board flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Flag {
    pub board: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Label>,
}

/// An emitted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Emit {
    pub event: String,
    /// Another installed app that declares the event: the hand-over from one loop to the next
    /// (a qualified lead to the quote app). The step is skipped when that app is not installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, Value>,
    /// Event field -> where its value comes from: a field of this record, `id` (the record's
    /// id), `LINK.FIELD` (a field of the record a link points to) or `event.FIELD` (the event
    /// that set this run off).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub with: BTreeMap<String, String>,
}

/// When / if / do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Automation {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    pub when: Trigger,
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    #[serde(rename = "do")]
    pub steps: Vec<Step>,
}
