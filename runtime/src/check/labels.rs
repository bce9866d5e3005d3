//! A label where an id belongs: ops staff name things as the app shows them (`维修技师`,
//! `财务`, `按区域分配`), and the app refers to them by id. When a value the schema refused is
//! the label of something the app declares, the help names that thing and its id.

use serde_json::Value;

use crate::diagnostic::{Code, Diagnostic};

/// Something the app declares with a label: what kind it is, and its id.
struct Labelled {
    kind: String,
    id: String,
}

/// The kind of thing an array under `key` holds: `fields` → `field`.
fn kind_of(key: &str) -> String {
    match key {
        "assignment_rules" => "assignment rule".into(),
        "approvals" => "approval chain".into(),
        "sops" => "SOP".into(),
        k => k.strip_suffix('s').unwrap_or(k).replace('_', " "),
    }
}

fn label_texts(label: &Value) -> Vec<&str> {
    match label {
        Value::String(s) => vec![s.as_str()],
        Value::Object(m) => m.values().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Every labelled thing in the document, with each of its label texts.
fn collect<'d>(doc: &'d Value, pointer: &str, key: &str, out: &mut Vec<(&'d str, Labelled)>) {
    match doc {
        Value::Object(map) => {
            if let (Some(Value::String(id)), Some(label)) = (map.get("id"), map.get("label")) {
                for text in label_texts(label) {
                    let thing = Labelled { kind: kind_of(key), id: id.clone() };
                    out.push((text.trim(), thing));
                }
            }
            for (k, v) in map {
                collect(v, &format!("{pointer}/{}", crate::yaml::escape_segment(k)), k, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, &format!("{pointer}/{i}"), key, out);
            }
        }
        _ => {}
    }
}

/// Words in the referring key that say which kind of thing it names.
fn wants(pointer: &str, kind: &str) -> bool {
    let key = pointer.rsplit('/').find(|s| s.parse::<usize>().is_err()).unwrap_or_default();
    let first = kind.split(' ').next().unwrap_or(kind);
    key.contains(first)
        || (kind == "assignment rule" && key.contains("assign"))
        || (kind == "state" && (key == "to" || key == "from"))
}

/// Rewrites the help of each diagnostic about a value that is the label of something the app
/// declares: "`维修技师` is the label of field `technician`: write `technician`".
pub fn explain(diagnostics: &mut [Diagnostic], doc: &Value) {
    let mut labelled = Vec::new();
    collect(doc, "", "", &mut labelled);
    if labelled.is_empty() {
        return;
    }
    for d in diagnostics.iter_mut().filter(|d| matches!(d.code, Code::BAD_FORMAT | Code::BAD_VALUE)) {
        let Some(text) = doc.pointer(&d.pointer).and_then(Value::as_str).map(str::trim) else { continue };
        let matches: Vec<&Labelled> = labelled.iter().filter(|(t, _)| *t == text).map(|(_, l)| l).collect();
        let preferred: Vec<&&Labelled> = matches.iter().filter(|l| wants(&d.pointer, &l.kind)).collect();
        let chosen = match (preferred.as_slice(), matches.as_slice()) {
            ([one], _) => **one,
            (_, [one]) => *one,
            _ => continue,
        };
        d.help = Some(format!(
            "`{text}` is the label of {} `{}`; here the app needs its id: write `{}`",
            chosen.kind, chosen.id, chosen.id
        ));
    }
}
