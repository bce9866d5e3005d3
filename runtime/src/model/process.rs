//! Approval chains, SOP templates, scores, grades and metrics: the processes that run on
//! records and the measures taken of them.

use serde::{Deserialize, Serialize};

use super::{Condition, Label, Offset, Recipient, Script, Step};

/// An approval chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ApprovalChain {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    pub form: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_on_edit: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_self_approval: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub override_roles: Vec<String>,
    pub steps: Vec<ApprovalStep>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_approved: Vec<Step>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_rejected: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reset: Option<OnReset>,
}

/// What a reset (an edit of a record in approval) does to the record besides cancelling the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnReset {
    /// The state the record returns to; without it, the form's initial state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// How many approvers a step needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// One suffices.
    Any,
    /// Everyone.
    All,
    /// `n` of them.
    NOfM,
}

/// One approval step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ApprovalStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<Recipient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ApprovalMode>,
    #[serde(default, deserialize_with = "super::whole", skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_if: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<Recipient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_delegation: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub show: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

/// A customer signature step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Signature {
    pub contact_field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf: Option<bool>,
    /// Clauses printed in full on what the customer receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clauses: Option<PrintedClauses>,
}

/// The chosen clauses of a record, printed in full: the multi-choice `field` holds keys of the
/// clause library `form`, whose `text` field is printed under each clause's title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrintedClauses {
    /// The record's multi-choice field of clause keys (`clauses`).
    pub field: String,
    /// The clause library form (`clause`), matched by its key.
    pub form: String,
    /// The library's field holding a clause's text (`body`).
    pub text: String,
}

/// An SOP template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Sop {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    pub form: String,
    pub tasks: Vec<SopTask>,
}

/// Evidence a task needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Evidence {
    Summary,
    Attachment,
}

/// One SOP task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SopTask {
    pub id: String,
    pub title: Label,
    pub due: Offset,
    pub assignee: Recipient,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talk_track: Option<Label>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_complete: Vec<Step>,
}

/// A 0-100 score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Score {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    pub form: String,
    pub field: String,
    pub script: Script,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Threshold>,
}

/// Steps to run below a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Threshold {
    pub below: f64,
    #[serde(rename = "do")]
    pub steps: Vec<Step>,
}

/// A risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Level {
    Low,
    Medium,
    High,
}

/// Risk grading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Grade {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    pub form: String,
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_field: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<GradeRule>,
    /// `first` (the default): the first rule that holds decides; `all`: every rule that holds
    /// gives its reason, and the highest level among them wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits: Option<Hits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
}

/// Which of a grade's rules count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hits {
    /// The first rule that holds.
    First,
    /// Every rule that holds.
    All,
}

/// One decision-table row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct GradeRule {
    #[serde(rename = "if")]
    pub condition: Condition,
    pub level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Label>,
}

/// A point in a record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    /// Created (always `true`).
    Created(bool),
    /// An action done.
    Action(String),
    /// A state entered.
    State(String),
    /// An event arrived.
    Event(String),
    /// A chain approved.
    Approval(String),
    /// `chain.step` decided.
    ApprovalStep(String),
    /// `sop.task` done.
    Task(String),
    /// Every task of an SOP done.
    Tasks(String),
}

/// A breakdown dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Dimension {
    Member,
    Region,
    Team,
    Week,
    Month,
}

/// An action penetration metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Metric {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    pub form: String,
    pub start: Milestone,
    pub end: Milestone,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<Milestone>,
    pub target: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breakdown: Vec<Dimension>,
}
