//! The bundled templates: they load clean, the embedded copies match the files, and the ids
//! that other parts of closeloop and its users rely on stay put.

use std::collections::BTreeSet;

use closeloop::model::{AppDef, FieldType, Form, Milestone, Recipient, Trigger};
use closeloop::{templates, Loader};

use crate::support::{load, root};

fn def(name: &str) -> AppDef {
    let loaded = load(&root().join("app-templates").join(name));
    assert!(loaded.diagnostics.is_empty(), "{name}: {:#?}", loaded.diagnostics);
    loaded.app.map(|a| a.def).unwrap_or_else(|| panic!("{name} did not load"))
}

fn form<'a>(def: &'a AppDef, id: &str) -> &'a Form {
    def.forms.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no form {id}"))
}

fn field_type(form: &Form, id: &str) -> FieldType {
    form.field(id).unwrap_or_else(|| panic!("form {} has no field {id}", form.id)).kind
}

fn options(form: &Form, id: &str) -> Vec<String> {
    form.field(id).and_then(|f| f.options.clone()).unwrap_or_default().into_iter().map(|o| o.value).collect()
}

#[test]
fn embedded_templates_load_without_any_diagnostic() {
    let loader = Loader::new().unwrap_or_else(|e| panic!("{e}"));
    for t in templates() {
        let loaded = loader.load(&t.app_files());
        assert!(loaded.app.is_some() && loaded.diagnostics.is_empty(), "{}: {:#?}", t.name, loaded.diagnostics);
    }
}

#[test]
fn embedded_files_are_exactly_the_files_on_disk() {
    for t in templates() {
        let dir = root().join("app-templates").join(t.name);
        let mut on_disk = BTreeSet::new();
        for sub in ["", "scripts", "data"] {
            for entry in std::fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
                if entry.path().is_file() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    on_disk.insert(if sub.is_empty() { name } else { format!("{sub}/{name}") });
                }
            }
        }
        let embedded: BTreeSet<String> = t.files.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(embedded, on_disk, "{}: add new files to runtime/src/templates.rs", t.name);
        for (path, text) in t.files {
            let disk = std::fs::read_to_string(dir.join(path)).unwrap_or_default();
            assert_eq!(*text, disk, "{}/{path} is stale", t.name);
        }
    }
}

#[test]
fn every_template_points_editors_at_the_schema_and_has_a_readme() {
    for t in templates() {
        let yaml = t.files.iter().find(|(p, _)| *p == "app.yaml").map(|(_, t)| *t).unwrap_or_default();
        assert!(yaml.starts_with("# yaml-language-server: $schema=../../schemas/app.schema.json\n"), "{}", t.name);
        assert!(t.files.iter().any(|(p, _)| *p == "README.md"), "{}", t.name);
        let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").map(|(_, t)| *t).unwrap_or_default();
        // Every sample member can be reached: by SMS, and in WeCom as one person.
        assert_eq!(
            members.lines().next(),
            Some("id,name,roles,region,manager,active,capacity,phone,wecom_userid"),
            "{}",
            t.name
        );
        assert!(members.lines().skip(1).all(|l| l.split(',').nth(7).is_some_and(|p| p.len() == 11)), "{}", t.name);
    }
}

#[test]
fn lead_followup_keeps_its_contract() {
    let def = def("lead-followup");
    let lead = form(&def, "lead");
    for (id, t) in [
        ("source", FieldType::Choice),
        ("customer", FieldType::Text),
        ("phone", FieldType::Phone),
        ("budget", FieldType::Range),
        ("urgency", FieldType::Choice),
        ("region", FieldType::Choice),
        ("owner", FieldType::Member),
        ("summary", FieldType::LongText),
        ("next_step", FieldType::Text),
    ] {
        assert_eq!(field_type(lead, id), t, "lead.{id}");
    }
    assert_eq!(options(lead, "source"), ["expo", "wechat_oa", "referral", "website"]);
    // A lead left on the website: a public event that creates the lead it does not find.
    let captured = def.events.iter().find(|e| e.id == "lead.captured").unwrap_or_else(|| panic!("no lead.captured"));
    assert_eq!(captured.public, Some(true));
    assert_eq!(captured.target.as_ref().and_then(|t| t.create), Some(true));
    assert_eq!(options(lead, "urgency"), ["red", "yellow", "green"]);
    assert_eq!(lead.field("urgency").and_then(|f| f.default.clone()), Some("green".into()));
    assert_eq!(options(lead, "region"), ["east", "south", "north", "west", "central"]);
    let states: Vec<&str> = lead.states.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(states, ["new", "contacted", "qualified", "lost"]);
    let contact = lead.actions.iter().find(|a| a.id == "contact").unwrap_or_else(|| panic!("no contact action"));
    assert_eq!((contact.from.as_slice(), contact.to.as_str()), (&["new".to_string()][..], "contacted"));
    assert_eq!(contact.requires, ["summary", "next_step"]);
    assert!(def.boards.iter().any(|b| b.id == "supervisor"));
    let metric = def.metrics.iter().find(|m| m.id == "lead_first_followup").unwrap_or_else(|| panic!("no metric"));
    assert_eq!((metric.within.as_deref(), metric.target), (Some("24h"), 0.90));
    assert!(def.automations.iter().any(|a| matches!(&a.when, Trigger::Timer(t) if t.after.as_deref() == Some("24h"))));
}

#[test]
fn quote_approval_keeps_its_contract() {
    let def = def("quote-approval");
    for id in ["product", "customer", "price_history", "clause", "quote"] {
        form(&def, id);
    }
    let quote = form(&def, "quote");
    for id in ["customer", "lines", "payment_terms", "prepay_percent", "valid_until", "total", "risk"] {
        field_type(quote, id);
    }
    assert_eq!(field_type(quote, "lines"), FieldType::Table);
    let columns: Vec<String> =
        quote.field("lines").and_then(|f| f.columns.clone()).unwrap_or_default().into_iter().map(|c| c.id).collect();
    for id in ["sku", "qty", "unit_price", "amount"] {
        assert!(columns.iter().any(|c| c == id), "lines.{id}");
    }
    assert_eq!(options(quote, "payment_terms"), ["cod", "net30", "prepay"]);
    let chain = def.approvals.first().unwrap_or_else(|| panic!("no approval chain"));
    let steps: Vec<&str> = chain.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(steps, ["supervisor", "finance", "legal", "customer_sign"]);
    assert!(chain.steps[2].skip_if.is_some(), "legal is skipped at low risk");
    assert!(chain.steps[3].signature.is_some(), "the customer signs last");
    assert!(def.metrics.iter().any(|m| m.id == "quote_approval"));
}

#[test]
fn customer_success_keeps_its_contract() {
    let def = def("customer-success");
    let account = form(&def, "account");
    for id in ["customer", "region", "owner", "health", "delivered_at", "payment_due", "contract_end"] {
        field_type(account, id);
    }
    assert!(def.events.iter().any(|e| e.id == "payment.received"));
    let sop = def.sops.iter().find(|s| s.id == "after_payment").unwrap_or_else(|| panic!("no SOP"));
    let tasks: Vec<(&str, Option<&str>, Option<&str>, &str)> = sop
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), t.due.after.as_deref(), t.due.before.as_deref(), t.due.from.as_str()))
        .collect();
    assert_eq!(
        tasks,
        [
            ("satisfaction_call", Some("7d"), None, "delivered_at"),
            ("usage_check", None, Some("5d"), "payment_due"),
            ("renewal_talk", None, Some("45d"), "contract_end"),
        ]
    );
    assert!(sop.tasks.iter().all(|t| t.assignee == Recipient::Field("owner".into())));
    assert!(def.boards.iter().any(|b| b.id == "director"));
    let metric = def.metrics.iter().find(|m| m.id == "after_payment_touch").unwrap_or_else(|| panic!("no metric"));
    assert_eq!((metric.target, &metric.start), (0.92, &Milestone::Event("payment.received".into())));
}

/// Walks every schema node, collecting where the schema falls short of its own rules.
fn schema_gaps(node: &serde_json::Value, path: &str, gaps: &mut Vec<String>) {
    use serde_json::Value;
    match node {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                if map.get("additionalProperties") != Some(&Value::Bool(false)) {
                    gaps.push(format!("{path}: fixed keys without additionalProperties: false"));
                }
                for (key, prop) in props {
                    if prop.get("title").is_none() || prop.get("description").is_none() {
                        gaps.push(format!("{path}/properties/{key}: needs a title and a description"));
                    }
                }
            }
            if let (Some(Value::Array(values)), Some(Value::String(desc))) = (map.get("enum"), map.get("description")) {
                for v in values.iter().filter_map(Value::as_str) {
                    if !desc.contains(v) {
                        gaps.push(format!("{path}: description does not explain `{v}`"));
                    }
                }
            }
            for (key, child) in map {
                schema_gaps(child, &format!("{path}/{key}"), gaps);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                schema_gaps(item, &format!("{path}/{i}"), gaps);
            }
        }
        _ => {}
    }
}

#[test]
fn the_schema_documents_every_property_and_enum_and_closes_every_fixed_object() {
    let schema: serde_json::Value = serde_json::from_str(closeloop::SCHEMA_JSON).unwrap_or_default();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let mut gaps = Vec::new();
    schema_gaps(&schema, "", &mut gaps);
    assert!(gaps.is_empty(), "{}", gaps.join("\n"));
}
