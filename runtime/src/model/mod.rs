//! The app language as Rust types: what an ops person wrote, after the schema check.
//!
//! These types mirror `schemas/app.schema.json` one to one; a value that passes the schema
//! deserializes here, and any value here serializes back to a document the schema accepts
//! (the round-trip test holds both directions). Optional settings stay `Option` so that
//! "not written" and "written as the default" remain distinguishable and round-trips are exact.
//! Defaults are applied by the code that uses a setting, through the accessor methods.

mod automation;
mod form;
mod people;
mod process;

pub use automation::*;
pub use form::*;
pub use people::*;
pub use process::*;

use serde::{Deserialize, Serialize};

/// Reads an optional value so that a written `null` stays `Some(Null)`: `eq: null` and
/// `default: ~` are things an author wrote, distinct from leaving the key out.
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// Reads a whole number that YAML may have written as `2` or `2.0` (JSON Schema counts both
/// as integers), refusing what does not fit the target type.
pub(crate) fn whole<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    let v = serde_json::Value::deserialize(d)?;
    let n =
        v.as_u64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.0e15).map(|f| f as u64));
    match n.map(T::try_from) {
        Some(Ok(t)) => Ok(Some(t)),
        _ => Err(serde::de::Error::custom(format!("{v} is not a whole number in range"))),
    }
}

/// [`whole`] for a required number.
pub(crate) fn whole_required<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    whole(d).and_then(|v| v.ok_or_else(|| serde::de::Error::custom("a whole number is required")))
}

/// A text shown to people: plain, or one text per language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Label {
    /// The same text in every language.
    Text(String),
    /// One text per language.
    Langs(Langs),
}

/// Texts by language.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Langs {
    /// Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zh: Option<String>,
    /// English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

/// A language closeloop speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Chinese.
    Zh,
    /// English.
    En,
}

impl Label {
    /// The text in a language, falling back to the other language.
    pub fn get(&self, lang: Lang) -> &str {
        match self {
            Label::Text(t) => t,
            Label::Langs(l) => {
                let (first, second) = match lang {
                    Lang::Zh => (&l.zh, &l.en),
                    Lang::En => (&l.en, &l.zh),
                };
                first.as_deref().or(second.as_deref()).unwrap_or_default()
            }
        }
    }
}

/// A whole app definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppDef {
    /// Who the app is.
    pub app: AppMeta,
    /// Working calendars.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calendars: Vec<Calendar>,
    /// Roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// The member directory's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Members>,
    /// Forms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forms: Vec<Form>,
    /// External events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventDef>,
    /// Automations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub automations: Vec<Automation>,
    /// Assignment rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignment_rules: Vec<AssignmentRule>,
    /// Approval chains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalChain>,
    /// SOP templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sops: Vec<Sop>,
    /// Scores.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<Score>,
    /// Grades.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grades: Vec<Grade>,
    /// Boards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boards: Vec<Board>,
    /// Channels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<Channel>,
    /// Message templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    /// Metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Sample data files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed: Vec<Seed>,
}

/// The default time zone when an app names none.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// Who the app is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppMeta {
    /// The app id (`lead-followup`).
    pub id: String,
    /// The app's name.
    pub title: Label,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Label>,
    /// The definition's version.
    #[serde(default, deserialize_with = "whole", skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The app's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The default language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Lang>,
    /// The default calendar's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// Milliseconds a script run may take (capped by the store's maximum).
    #[serde(default, deserialize_with = "whole", skip_serializing_if = "Option::is_none")]
    pub script_deadline_ms: Option<u32>,
}

impl AppMeta {
    /// The time zone name, defaulting to Asia/Shanghai.
    pub fn time_zone(&self) -> &str {
        self.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE)
    }
}

/// A working calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Time zone; default the app's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Worked weekdays; default Monday to Friday.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_days: Option<Vec<Weekday>>,
    /// Working hours; default 09:00-18:00.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_hours: Option<WorkingHours>,
    /// Dates not worked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
    /// Weekend dates that are worked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_working_days: Vec<String>,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// When people work in a day: one span (`{start: "09:00", end: "18:00"}`) or several, in order,
/// for a day with a break (`[{start: "08:30", end: "12:00"}, {start: "13:30", end: "18:00"}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WorkingHours {
    /// One span, from start to end.
    Day(HoursSpan),
    /// Several spans, in order, not overlapping.
    Spans(Vec<HoursSpan>),
}

impl WorkingHours {
    /// The spans, in the order written.
    pub fn spans(&self) -> &[HoursSpan] {
        match self {
            WorkingHours::Day(one) => std::slice::from_ref(one),
            WorkingHours::Spans(many) => many,
        }
    }
}

/// A stretch of working time, `HH:MM` to `HH:MM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursSpan {
    /// When work starts.
    pub start: String,
    /// When work ends.
    pub end: String,
}

/// A channel kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// The run log.
    Log,
    /// A signed JSON POST.
    Webhook,
    /// SMTP email.
    Email,
    /// SMS through a gateway webhook.
    Sms,
    /// 企业微信 group robot: one group, members @-mentioned.
    Wecom,
    /// 钉钉 group robot.
    Dingtalk,
    /// 企业微信 application message to one member's WeCom userid: a text card.
    WecomApp,
    /// 钉钉 work notification to one member's DingTalk userid: an action card.
    DingtalkWork,
    /// Aliyun SMS (阿里云短信): a signed template message.
    AliyunSms,
    /// Tencent Cloud SMS (腾讯云短信): a signed template message.
    TencentSms,
}

impl ChannelKind {
    /// The kind as an app writes it (`wecom_app`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Log => "log",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
            ChannelKind::Sms => "sms",
            ChannelKind::Wecom => "wecom",
            ChannelKind::Dingtalk => "dingtalk",
            ChannelKind::WecomApp => "wecom_app",
            ChannelKind::DingtalkWork => "dingtalk_work",
            ChannelKind::AliyunSms => "aliyun_sms",
            ChannelKind::TencentSms => "tencent_sms",
        }
    }
}

/// A delivery channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Kind.
    pub kind: ChannelKind,
}

/// A message template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Id.
    pub id: String,
    /// Subject line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Label>,
    /// Text with `{{ field }}` placeholders.
    pub text: Label,
}

/// A board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Forms whose records appear.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forms: Vec<String>,
    /// Roles that may see it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Also list overdue records; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_overdue: Option<bool>,
    /// Member attribute → record field: a viewer sees only the records whose field equals
    /// their attribute (a store manager, his store's).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub scope: std::collections::BTreeMap<String, String>,
}

/// A sample data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// The form it fills.
    pub form: String,
    /// `data/NAME.csv`.
    pub file: String,
}
