//! Roles, the member directory, assignment rules and recipients.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Label, Script};

/// A role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// What people in the role do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Label>,
}

/// The member attributes every directory has.
pub const BUILTIN_MEMBER_FIELDS: &[&str] = &[
    "id",
    "name",
    "roles",
    "region",
    "manager",
    "active",
    "capacity",
    "email",
    "phone",
    "away_from",
    "away_until",
    "delegate_to",
    WECOM_USERID,
    DINGTALK_USERID,
];

/// The directory column with a member's WeCom userid (`wecom_app` channels send to it).
pub const WECOM_USERID: &str = "wecom_userid";
/// The directory column with a member's DingTalk userid (`dingtalk_work` channels send to it).
pub const DINGTALK_USERID: &str = "dingtalk_userid";

/// The member directory's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Members {
    /// Extra attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<MemberField>,
    /// Sample CSV under `data/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
}

/// An extra member attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberField {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Type.
    #[serde(rename = "type")]
    pub kind: MemberFieldType,
}

/// The type of an extra member attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum MemberFieldType {
    Text,
    Integer,
    Bool,
}

/// A person or group to reach: exactly one way of naming them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    /// The member named by a field of the record.
    Field(String),
    /// Everyone with a role.
    Role(String),
    /// One member by id.
    Member(String),
    /// The manager of the member named by a field.
    ManagerOf(String),
    /// A phone or email field of the record (a customer).
    ContactField(String),
}

/// Who gets a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRule {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// The form.
    pub form: String,
    /// The member field to set; default the form's owner field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Who may get it.
    pub candidates: Candidates,
    /// What counts as load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<Load>,
    /// Preferences, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefer: Vec<Preference>,
    /// How to pick.
    pub pick: Pick,
    /// For `weighted`: the member attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<String>,
    /// For `by_field`: the record field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_field: Option<String>,
    /// For `script`: the script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
    /// Where the record goes when nobody qualifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

/// How a `match` value names an attribute of the record's creator (`created_by.store`).
pub(crate) const CREATOR_PREFIX: &str = "created_by.";

/// Candidate filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidates {
    /// Role.
    pub role: String,
    /// Member attribute -> record field that must be equal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub r#match: BTreeMap<String, String>,
    /// Only active members; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_only: Option<bool>,
    /// Only members under capacity; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_capacity: Option<bool>,
}

/// What counts as load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Open states.
    pub states: Vec<String>,
}

/// Prefer members with fewer than N records in some states since a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preference {
    /// The bound.
    #[serde(deserialize_with = "super::whole_required")]
    pub fewer_than: u32,
    /// States counted.
    pub states: Vec<String>,
    /// Since when; default ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Since>,
}

/// The start of a counting window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Since {
    ThisMonth,
    ThisWeek,
    Today,
    Ever,
}

/// How to pick among candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Pick {
    LeastLoaded,
    RoundRobin,
    Weighted,
    ByField,
    Script,
}

/// Where a record goes when nobody qualifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// A named queue.
    Queue(String),
    /// One member.
    Member(String),
}
