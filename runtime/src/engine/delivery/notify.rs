//! Who a message is for and what it says: recipients resolved to members and addresses, the
//! message rendered from its template into the outbox, keyed so a cause never queues it twice.

use crate::engine::automations::StepError;
use serde_json::{Map, Value};

use crate::engine::automations::steps::StepResult;
use crate::engine::automations::{Cause, Steps};
use crate::engine::write::Writer;
use crate::engine::FormRef;
use crate::model::{ChannelKind, Recipient};
use crate::store::{outbox, RecordRow};

/// Where a channel of this kind reaches a member: their phone for SMS, their email, their
/// WeCom or DingTalk userid for messages to one person (the directory's `wecom_userid` and
/// `dingtalk_userid`), their id for a group robot to @-mention; nothing for the log and
/// webhooks.
pub(crate) fn address_for(m: &crate::store::MemberRow, kind: ChannelKind) -> Option<String> {
    let extra = |k: &str| m.extra.get(k).and_then(Value::as_str).filter(|v| !v.trim().is_empty()).map(str::to_string);
    match kind {
        ChannelKind::Sms | ChannelKind::AliyunSms | ChannelKind::TencentSms => m.phone.clone(),
        ChannelKind::Email => m.email.clone(),
        ChannelKind::WecomApp => extra(crate::model::WECOM_USERID),
        ChannelKind::DingtalkWork => extra(crate::model::DINGTALK_USERID),
        ChannelKind::Wecom | ChannelKind::Dingtalk => Some(m.id.clone()),
        ChannelKind::Log | ChannelKind::Webhook => None,
    }
}

/// The directory column a channel kind needs to reach a member, when it needs one.
pub(crate) fn address_column(kind: ChannelKind) -> Option<&'static str> {
    match kind {
        ChannelKind::Sms | ChannelKind::AliyunSms | ChannelKind::TencentSms => Some("phone"),
        ChannelKind::Email => Some("email"),
        ChannelKind::WecomApp => Some(crate::model::WECOM_USERID),
        ChannelKind::DingtalkWork => Some(crate::model::DINGTALK_USERID),
        _ => None,
    }
}

/// Who a recipient names, with the address the channel sends to. `Err` says why nobody.
pub(crate) fn recipients(
    team: &[crate::store::MemberRow],
    to: &Recipient,
    data: &Map<String, Value>,
    kind: ChannelKind,
) -> Result<Vec<(String, Option<String>)>, String> {
    let address = |m: &crate::store::MemberRow| address_for(m, kind);
    let member = |id: &str| team.iter().find(|m| m.id == id);
    let named = |field: &str| data.get(field).and_then(Value::as_str).ok_or_else(|| format!("`{field}` is empty"));
    let one = |id: &str| match member(id) {
        Some(m) if m.active => Ok(vec![(m.id.clone(), address(m))]),
        Some(_) => Err(format!("`{id}` is not active")),
        None => Err(format!("`{id}` is not a member")),
    };
    match to {
        Recipient::Field(f) => one(named(f)?),
        Recipient::Member(m) => one(m),
        Recipient::ManagerOf(f) => {
            let id = named(f)?;
            match member(id).and_then(|m| m.manager.clone()) {
                Some(manager) => one(&manager),
                None => Err(format!("`{id}` has no manager")),
            }
        }
        Recipient::Role(r) => {
            let all: Vec<_> =
                team.iter().filter(|m| m.active && m.roles.contains(r)).map(|m| (m.id.clone(), address(m))).collect();
            if all.is_empty() {
                Err(format!("nobody active has the role `{r}`"))
            } else {
                Ok(all)
            }
        }
        Recipient::ContactField(f) => Ok(vec![("customer".into(), Some(named(f)?.to_string()))]),
    }
}

/// The record's page at the install's public address (`{{ link }}` in messages), once ops set
/// one (`closeloop settings set public-url`).
pub(crate) fn record_link(
    w: &Writer<'_, '_>,
    record: Option<&str>,
) -> Result<Option<String>, crate::store::StoreError> {
    let Some(id) = record else { return Ok(None) };
    Ok(crate::store::identity::setting(w.tx, "public_url")?.map(|base| format!("{base}/r/{}/{id}", w.f.form.id)))
}

/// A record's fields as templates see them: choices as their labels in the app's language.
pub(crate) fn fields_context(f: &FormRef<'_>, data: &Map<String, Value>) -> Map<String, Value> {
    let lang = f.lang();
    data.iter()
        .map(|(k, v)| {
            let label = f.form.field(k).and_then(|field| {
                let value = v.as_str()?;
                let option = field.options.iter().flatten().find(|o| o.value == value)?;
                option.label.as_ref().map(|l| Value::String(l.get(lang).to_string()))
            });
            (k.clone(), label.unwrap_or_else(|| v.clone()))
        })
        .collect()
}

/// The values a message template sees: the record's fields (choices as their labels), its id,
/// the event's data under `event`, and for an approval chain's hooks the decision that ended it
/// (`comment`, `decided_by`, … and all of it under `approval`).
pub(crate) fn message_context(
    f: &FormRef<'_>,
    record: Option<&RecordRow>,
    event: Option<&Map<String, Value>>,
    decision: Option<&Map<String, Value>>,
) -> Value {
    let mut ctx = Map::new();
    if let Some(row) = record {
        ctx = fields_context(f, &row.data);
        ctx.insert("id".into(), Value::String(row.id.clone()));
    }
    if let Some(e) = event {
        ctx.insert("event".into(), Value::Object(e.clone()));
    }
    if let Some(d) = decision {
        ctx.extend(d.iter().map(|(k, v)| (k.clone(), v.clone())));
        ctx.insert("approval".into(), Value::Object(d.clone()));
    }
    Value::Object(ctx)
}

/// A link reads as the linked record's title (the customer's name), not its id.
fn linked_titles(w: &Writer<'_, '_>, fields: &mut Map<String, Value>) -> Result<(), crate::store::StoreError> {
    for field in w.f.form.fields.iter().filter(|f| f.kind == crate::model::FieldType::Link) {
        let Some(id) = fields.get(&field.id).and_then(Value::as_str) else { continue };
        let Some(target) = field.form.as_deref().and_then(|t| crate::engine::automations::form_of(w.f.app, t)) else {
            continue;
        };
        let Some(title_field) = target.form.title_field.as_deref() else { continue };
        // A title only some may read (a sensitive one) stays behind; the id is shown instead.
        let protected =
            target.form.field(title_field).is_some_and(|f| f.sensitive == Some(true) || !f.read_roles.is_empty());
        if protected {
            continue;
        }
        if let Some(title) =
            crate::store::records::get(w.tx, target.table(), id)?.and_then(|r| r.data.get(title_field).cloned())
        {
            fields.insert(field.id.clone(), title);
        }
    }
    Ok(())
}

/// Renders a message for each recipient into the outbox, keyed by cause, step and recipient,
/// so the same cause never queues the same message twice.
pub(crate) fn notify(
    w: &Writer<'_, '_>,
    steps: &Steps<'_>,
    i: usize,
    n: &crate::model::Notify,
    record: Option<&str>,
    cause: &Cause,
) -> StepResult {
    let def = &w.f.app.app.def;
    let Some(channel) = def.channels.iter().find(|c| c.id == n.channel) else {
        return Err(StepError::Failed(format!("there is no channel `{}`", n.channel)));
    };
    let Some(message) = def.messages.iter().find(|m| m.id == n.message) else {
        return Err(StepError::Failed(format!("there is no message `{}`", n.message)));
    };
    let row = match record {
        Some(id) => w.current(id)?,
        None => None,
    };
    let data = row.as_ref().map(|r| r.data.clone()).unwrap_or_default();
    let (to, hidden) = {
        let mut cache = w.session.assign.borrow_mut();
        let team = cache.team(w.tx)?;
        let to = recipients(team, &n.to, &data, channel.kind);
        // A field only some roles see stays out unless every recipient holds one of them (a
        // customer holds none): message templates are a read path like any other.
        let roles_of = |id: &str| team.iter().find(|m| m.id == id).map(|m| m.roles.clone()).unwrap_or_default();
        let hidden: Vec<String> = match &to {
            Ok(to) => {
                w.f.form
                    .fields
                    .iter()
                    .filter(|f| !f.read_roles.is_empty())
                    .filter(|f| to.iter().any(|(r, _)| !roles_of(r).iter().any(|x| f.read_roles.contains(x))))
                    .map(|f| f.id.clone())
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        (to, hidden)
    };
    let to = match to {
        Ok(to) => to,
        Err(why) => return Ok(format!("nobody to notify: {why}")),
    };
    let lang = w.f.lang();
    let code = if lang == crate::model::Lang::Zh { "zh" } else { "en" };
    let mut context = message_context(w.f, row.as_ref(), cause.event.as_ref(), cause.decision.as_ref());
    if let Some(fields) = context.as_object_mut() {
        fields.retain(|k, _| !hidden.contains(k));
        linked_titles(w, fields)?;
        if let Some(link) = record_link(w, record)? {
            fields.insert("link".into(), Value::String(link));
        }
    }
    let ctx = minijinja::Value::from(minijinja::value::Serde(context));
    let render = |name: String| w.f.app.messages.get_template(&name).and_then(|t| t.render(&ctx));
    let body = match render(format!("{}.{code}", message.id)) {
        Ok(b) => b,
        Err(e) => return Err(StepError::Failed(format!("message {} cannot be rendered: {e}", message.id))),
    };
    let subject = match &message.subject {
        Some(_) => match render(format!("{}.{code}.subject", message.id)) {
            Ok(s) => Some(s),
            Err(e) => {
                return Err(StepError::Failed(format!("the subject of message {} cannot be rendered: {e}", message.id)))
            }
        },
        None => None,
    };
    let mut queued = 0;
    for (recipient, address) in &to {
        let m = crate::store::OutboxRow {
            id: 0,
            channel: channel.id.clone(),
            recipient: recipient.clone(),
            address: address.clone(),
            message: message.id.clone(),
            subject: subject.clone(),
            body: body.clone(),
            key: format!("{}/{}/{i}/{recipient}", cause.key, steps.name),
            form: record.map(|_| w.f.form.id.clone()),
            record: record.map(str::to_string),
            status: crate::store::OutboxStatus::Pending,
            attempts: 0,
            created_at: w.at.to_string(),
        };
        if outbox::push(w.tx, &m)?.is_some() {
            queued += 1;
        }
    }
    let names: Vec<&str> = to.iter().map(|(r, _)| r.as_str()).collect();
    Ok(match queued {
        0 => format!("already queued for {} on {}", names.join(", "), channel.id),
        _ => format!("{} message(s) to {} on {}", queued, names.join(", "), channel.id),
    })
}
