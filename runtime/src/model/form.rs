//! Forms, fields, states, actions and events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Condition, Label};

/// A form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Form {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// What it records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Label>,
    /// Readable id pattern, `LEAD-{yyyy}-{seq:5}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pattern: Option<String>,
    /// The field that names a record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_field: Option<String>,
    /// The member field naming the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_field: Option<String>,
    /// Import key fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// Fields.
    pub fields: Vec<Field>,
    /// States.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<State>,
    /// Actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
    /// Who may change a record's fields with an update (actions say their own who). Empty:
    /// any active member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edit: Vec<EditRule>,
    /// Who may read its records, as rules of which any one suffices. Empty: every member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<ReadRule>,
}

/// One way a member may read a form's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadRule {
    /// Roles it is for; empty means any member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Only records the member owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_only: Option<bool>,
    /// Records owned by the member or by anyone who reports to them, however many levels down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<bool>,
    /// Member attribute → record field that must be equal (`{region: region}`: the member's
    /// region's records).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub same: BTreeMap<String, String>,
}

/// One way a person may change a record: by role, as its owner, in some states, some fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRule {
    /// Roles allowed; empty means any member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Only the record's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_only: Option<bool>,
    /// The states in which; empty means every state that is not final.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<String>,
    /// The fields it lets change; empty means every field a person may enter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// Fields every record has without declaring them.
pub const SYSTEM_FIELDS: &[&str] = &["id", "version", "state", "created_at", "updated_at", "created_by", "updated_by"];

/// System fields that hold a datetime, usable as timer anchors.
pub const SYSTEM_DATE_FIELDS: &[&str] = &["created_at", "updated_at"];

impl Form {
    /// The field with an id.
    pub fn field(&self, id: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// The owner field: the declared one, else a field named `owner`.
    pub fn owner_field(&self) -> Option<&str> {
        match &self.owner_field {
            Some(f) => Some(f),
            None => self.field("owner").map(|f| f.id.as_str()),
        }
    }

    /// The initial state: the one marked `initial`, else the first.
    pub fn initial_state(&self) -> Option<&State> {
        self.states.iter().find(|s| s.initial == Some(true)).or(self.states.first())
    }
}

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum FieldType {
    Text,
    LongText,
    Integer,
    Decimal,
    Money,
    Percent,
    Bool,
    Date,
    Datetime,
    Choice,
    MultiChoice,
    Phone,
    Email,
    Url,
    Member,
    Link,
    Table,
    File,
    Computed,
    Range,
}

impl FieldType {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::LongText => "long_text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Money => "money",
            FieldType::Percent => "percent",
            FieldType::Bool => "bool",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Choice => "choice",
            FieldType::MultiChoice => "multi_choice",
            FieldType::Phone => "phone",
            FieldType::Email => "email",
            FieldType::Url => "url",
            FieldType::Member => "member",
            FieldType::Link => "link",
            FieldType::Table => "table",
            FieldType::File => "file",
            FieldType::Computed => "computed",
            FieldType::Range => "range",
        }
    }

    /// Numbers: min/max, scale and comparisons apply.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Integer | FieldType::Decimal | FieldType::Money | FieldType::Percent | FieldType::Range
        )
    }

    /// Texts: length and pattern apply.
    pub fn is_textual(self) -> bool {
        matches!(self, FieldType::Text | FieldType::LongText | FieldType::Phone | FieldType::Email | FieldType::Url)
    }

    /// Dates and datetimes: timers and due dates can anchor on them.
    pub fn is_temporal(self) -> bool {
        matches!(self, FieldType::Date | FieldType::Datetime)
    }
}

/// A field of a form, or a column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Id.
    pub id: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<Label>,
    /// Must have a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Must have a value when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_if: Option<Condition>,
    /// Shown only when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_if: Option<Condition>,
    /// Value for new records.
    #[serde(default, deserialize_with = "super::present", skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Smallest number or earliest date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Value>,
    /// Largest number or latest date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Value>,
    /// Fewest characters.
    #[serde(default, deserialize_with = "super::whole", skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    /// Most characters.
    #[serde(default, deserialize_with = "super::whole", skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// Regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// No two records share the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<bool>,
    /// People cannot edit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<bool>,
    /// Choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<ChoiceOption>>,
    /// Linked form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
    /// Table columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<Field>>,
    /// Computed expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Lookup from a catalog form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<Lookup>,
    /// ISO currency code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Digits after the point.
    #[serde(default, deserialize_with = "super::whole", skip_serializing_if = "Option::is_none")]
    pub scale: Option<u8>,
    /// Accepted file extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Vec<String>>,
    /// Masked in exports and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<bool>,
    /// Only members with one of these roles see it (a floor price, a risk grade); it never
    /// reaches what a customer receives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_roles: Vec<String>,
}

/// One choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOption {
    /// Stored value.
    pub value: String,
    /// Shown text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Badge color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
}

/// A badge color.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Color {
    Red,
    Yellow,
    Green,
    Blue,
    Gray,
}

/// Fill fields from a catalog record found by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// Source form.
    pub form: String,
    /// Source form's key field.
    pub key: String,
    /// Field here -> field there.
    pub fill: BTreeMap<String, String>,
    /// What happens when no record matches: refuse the write (the default) or keep it with
    /// the filled fields empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_missing: Option<OnMissing>,
}

/// What a lookup does when no record of its catalog matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// The write is refused, naming the field (and the closest catalog entry).
    Refuse,
    /// The record is stored with the filled fields empty.
    Keep,
}

/// A state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// New records start here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<bool>,
    /// No action leaves it.
    #[serde(default, rename = "final", skip_serializing_if = "Option::is_none")]
    pub is_final: Option<bool>,
}

/// A state transition people perform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Id.
    pub id: String,
    /// Button text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Allowed starting states.
    pub from: Vec<String>,
    /// Resulting state.
    pub to: String,
    /// Roles allowed; empty means anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Only the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_only: Option<bool>,
    /// Fields that must have a value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
}

/// An external event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDef {
    /// Dotted name.
    pub id: String,
    /// Meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Payload fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// The record it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<EventTarget>,
    /// Anyone may send it from closeloop's public page `/apply/EVENT` (a lead form for the
    /// website), without an account: rate-limited per address, with a trap for bots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
}

/// How an event finds its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTarget {
    /// The form.
    pub form: String,
    /// Form field -> payload field.
    pub r#match: BTreeMap<String, String>,
    /// When no record matches, create one from the payload (fields of the same id, and the
    /// match); otherwise the event is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
    /// When a record matches, write the payload's fields of the same id to it (a signed quote
    /// updating the account that already exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<bool>,
}
