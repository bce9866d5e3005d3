//! The JSON Schema of the app language, and the check of a document against it.
//!
//! The schema file `schemas/app.schema.json` is the single source: it is embedded here, printed
//! by `closeloop schema`, and used by editors. Validation errors are turned into diagnostics
//! that point at the offending key or value, with a did-you-mean taken from the schema itself.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, PatternOptions, ValidationError, Validator};
use serde_json::Value;

use crate::diagnostic::{Code, Diagnostic, Location};
use crate::suggest;
use crate::yaml::{escape_segment, segments, Node};

/// The schema text, exactly as in `schemas/app.schema.json`.
pub const SCHEMA_JSON: &str = include_str!("../../schemas/app.schema.json");

/// Why the embedded schema could not be prepared. Only a broken build can cause this.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema file is not JSON.
    #[error("the embedded app schema is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The schema does not compile.
    #[error("the embedded app schema does not compile: {0}")]
    Compile(String),
}

/// The compiled app schema.
pub struct SchemaChecker {
    schema: Value,
    validator: Validator,
}

impl std::fmt::Debug for SchemaChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaChecker").finish_non_exhaustive()
    }
}

/// Validator options shared by the app schema and any schema closeloop compiles: draft-07,
/// the linear-time `regex` engine (no catastrophic backtracking), bounded regex sizes, and no
/// remote references.
pub fn validator_options() -> jsonschema::ValidationOptions<'static> {
    jsonschema::options()
        .with_draft(Draft::Draft7)
        .with_pattern_options(PatternOptions::regex().size_limit(1 << 20).dfa_size_limit(1 << 20))
        .should_validate_formats(false)
}

impl SchemaChecker {
    /// Compiles the embedded schema.
    pub fn new() -> Result<Self, SchemaError> {
        let schema: Value = serde_json::from_str(SCHEMA_JSON)?;
        let validator = validator_options().build(&schema).map_err(|e| SchemaError::Compile(e.to_string()))?;
        Ok(SchemaChecker { schema, validator })
    }

    /// Checks a document; every violation becomes a diagnostic.
    pub fn check(&self, file: &str, root: &Node, doc: &Value) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for error in self.validator.iter_errors(doc) {
            self.convert(file, root, &error, &mut out);
        }
        drop_echoes(&mut out);
        out
    }

    fn convert(&self, file: &str, root: &Node, error: &ValidationError<'_>, out: &mut Vec<Diagnostic>) {
        let pointer = error.instance_path().as_str().to_string();
        let schema_path = error.schema_path().as_str().to_string();
        // The schema node that holds the failing keyword.
        let owner = parent_pointer(&schema_path);
        let node_schema = self.schema.pointer(&owner);
        let at = |pointer: &str, at_key: bool| {
            let pos = root.position(pointer, at_key);
            Location { file: file.to_string(), line: pos.line, column: pos.column, pointer: pointer.to_string() }
        };
        let described = || node_schema.and_then(describe);
        let name = last_key(&pointer);
        let d = match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known = node_schema.map(property_names).unwrap_or_default();
                for key in unexpected {
                    let p = format!("{pointer}/{}", escape_segment(key));
                    let help = if key == "<<" {
                        Some("YAML merge keys (`<<: *anchor`) are not supported; write the keys out".to_string())
                    } else if key == "on" && known.iter().any(|k| k == "when") {
                        // YAML 1.1 tools read a bare `on` as `true`, which is why the language says `when`.
                        Some("did you mean `when`? closeloop writes triggers as `when:`, since some YAML tools read `on` as true".to_string())
                    } else {
                        suggest::did_you_mean(key, known.iter().map(String::as_str))
                    };
                    let place = if pointer.is_empty() {
                        "at the top level".to_string()
                    } else {
                        format!("in `{}`", pretty(&pointer))
                    };
                    out.push(
                        Diagnostic::error(Code::UNKNOWN_KEY, format!("unknown key \"{key}\" {place}"), &at(&p, true))
                            .with_help_opt(help),
                    );
                }
                return;
            }
            ValidationErrorKind::Required { property } => {
                let key = property.as_str().unwrap_or_default();
                let what = if pointer.is_empty() { "the app".to_string() } else { format!("`{}`", pretty(&pointer)) };
                let help = node_schema
                    .and_then(|s| s.pointer(&format!("/properties/{}", escape_segment(key))))
                    .and_then(describe)
                    .map(|d| format!("add `{key}:` ({d})"));
                Diagnostic::error(Code::MISSING_KEY, format!("{what} needs the key `{key}`"), &at(&pointer, true))
                    .with_help_opt(help)
            }
            ValidationErrorKind::Type { .. } => {
                let expected = node_schema.map(type_words).unwrap_or_else(|| "another type".into());
                let instead = node_schema.and_then(|s| typed_instead(s, error.instance()));
                Diagnostic::error(
                    Code::WRONG_TYPE,
                    format!("{} should be {expected}, not {}", subject(&name), value_words(error.instance())),
                    &at(&pointer, false),
                )
                .with_help_opt(instead.or_else(described))
            }
            ValidationErrorKind::Enum { options } => {
                let allowed: Vec<&str> =
                    options.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                let got = error.instance().as_str().unwrap_or_default().to_string();
                let help = synonym(&got, &allowed).or_else(|| suggest::did_you_mean(&got, allowed.iter().copied()));
                Diagnostic::error(
                    Code::BAD_VALUE,
                    format!("{} cannot be {}", subject(&name), value_words(error.instance())),
                    &at(&pointer, false),
                )
                .with_help_opt(help)
            }
            ValidationErrorKind::Constant { expected_value } => Diagnostic::error(
                Code::BAD_VALUE,
                format!("{} must be {expected_value}", subject(&name)),
                &at(&pointer, false),
            ),
            ValidationErrorKind::Pattern { .. } => Diagnostic::error(
                Code::BAD_FORMAT,
                format!("{} {} is not in the expected form", subject(&name), value_words(error.instance())),
                &at(&pointer, false),
            )
            .with_help_opt(described()),
            ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
                Diagnostic::error(
                    Code::OUT_OF_RANGE,
                    format!("{} is below the minimum {limit}", subject(&name)),
                    &at(&pointer, false),
                )
                .with_help_opt(described())
            }
            ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
                Diagnostic::error(
                    Code::OUT_OF_RANGE,
                    format!("{} is above the maximum {limit}", subject(&name)),
                    &at(&pointer, false),
                )
                .with_help_opt(described())
            }
            ValidationErrorKind::MinLength { limit } => Diagnostic::error(
                Code::BAD_LENGTH,
                format!("{} must have at least {limit} character(s)", subject(&name)),
                &at(&pointer, false),
            ),
            ValidationErrorKind::MaxLength { limit } => Diagnostic::error(
                Code::BAD_LENGTH,
                format!("{} must have at most {limit} characters", subject(&name)),
                &at(&pointer, false),
            ),
            ValidationErrorKind::MinItems { limit } => Diagnostic::error(
                Code::BAD_LENGTH,
                format!("{} needs at least {limit} item(s)", subject(&name)),
                &at(&pointer, false),
            )
            .with_help_opt(described().map(|d| format!("add at least {limit}: {d}"))),
            ValidationErrorKind::MaxItems { limit } => Diagnostic::error(
                Code::BAD_LENGTH,
                format!("{} takes at most {limit} item(s)", subject(&name)),
                &at(&pointer, false),
            ),
            ValidationErrorKind::UniqueItems => Diagnostic::error(
                Code::DUPLICATE_ITEM,
                format!("{} lists the same item twice", subject(&name)),
                &at(&pointer, false),
            )
            .with_help("delete the repeated one"),
            ValidationErrorKind::MinProperties { .. }
                if node_schema.and_then(|s| s.get("maxProperties")).and_then(Value::as_u64) != Some(1) =>
            {
                // A map of entries (`set: {}`, `fill: {}`) that must not be empty.
                Diagnostic::error(
                    Code::BAD_LENGTH,
                    format!("{} needs at least one entry", subject(&name)),
                    &at(&pointer, false),
                )
                .with_help_opt(described())
            }
            ValidationErrorKind::MinProperties { .. } | ValidationErrorKind::MaxProperties { .. } => {
                let keys = node_schema.map(property_names).unwrap_or_default();
                let list = suggest::quoted_list(&keys.iter().map(String::as_str).collect::<Vec<_>>());
                // Point at the second key when there are too many, else at the object.
                let second = root
                    .at(&pointer)
                    .and_then(|n| match &n.value {
                        crate::yaml::Value::Map(entries) => entries.get(1).map(|(k, _)| k.text.clone()),
                        _ => None,
                    })
                    .filter(|_| matches!(error.kind(), ValidationErrorKind::MaxProperties { .. }));
                let loc = match &second {
                    Some(k) => at(&format!("{pointer}/{}", escape_segment(k)), true),
                    None => at(&pointer, true),
                };
                let what =
                    node_schema.and_then(|s| s.get("title")).and_then(Value::as_str).unwrap_or("entry").to_lowercase();
                let message = match &second {
                    Some(k) => format!("a {what} takes exactly one key; `{k}` is one too many"),
                    None => format!("a {what} needs one key"),
                };
                Diagnostic::error(Code::ONE_KEY_EXPECTED, message, &loc)
                    .with_help(format!("use exactly one of: {list}"))
            }
            ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
                // Follow the branch whose type fits the value, so `{zh: .., enn: ..}` is told about
                // `enn` and not "matches no alternative".
                let fitting: Vec<&Vec<ValidationError<'static>>> = context
                    .iter()
                    .filter(|branch| {
                        !branch.iter().any(|e| {
                            matches!(e.kind(), ValidationErrorKind::Type { .. })
                                && e.instance_path().as_str() == pointer
                        })
                    })
                    .collect();
                if let [branch] = fitting.as_slice() {
                    for e in branch.iter() {
                        self.convert(file, root, e, out);
                    }
                    return;
                }
                Diagnostic::error(
                    Code::WRONG_TYPE,
                    format!(
                        "{} should be {}, not {}",
                        subject(&name),
                        node_schema.map(type_words).unwrap_or_else(|| "another form".into()),
                        value_words(error.instance())
                    ),
                    &at(&pointer, false),
                )
                .with_help_opt(described())
            }
            ValidationErrorKind::PropertyNames { error: inner } => {
                let key = inner.instance().as_str().unwrap_or_default().to_string();
                let p = format!("{pointer}/{}", escape_segment(&key));
                Diagnostic::error(Code::BAD_FORMAT, format!("key \"{key}\" is not a valid id"), &at(&p, true))
                    .with_help("ids are lowercase letters, digits and underscores, starting with a letter")
            }
            _ => Diagnostic::error(Code::SCHEMA_VIOLATION, error.to_string(), &at(&pointer, false)),
        };
        out.push(d);
    }
}

/// A misspelt key produces both UNKNOWN_KEY and MISSING_KEY for the key it was meant to be;
/// keep the one that names the typo.
fn drop_echoes(out: &mut Vec<Diagnostic>) {
    let meant: Vec<(String, String)> = out
        .iter()
        .filter(|d| d.code == Code::UNKNOWN_KEY)
        .filter_map(|d| {
            let help = d.help.as_deref()?;
            let key = help.strip_prefix("did you mean `")?.split('`').next()?;
            Some((parent_pointer(&d.pointer), key.to_string()))
        })
        .collect();
    out.retain(|d| {
        if d.code != Code::MISSING_KEY && d.code != Code::ONE_KEY_EXPECTED {
            return true;
        }
        !meant.iter().any(|(obj, key)| {
            *obj == d.pointer && (d.code == Code::ONE_KEY_EXPECTED || d.message.ends_with(&format!("the key `{key}`")))
        })
    });
}

/// Words people bring from spreadsheets, databases and other form builders, and the value the
/// app language uses for them.
fn synonym(word: &str, allowed: &[&str]) -> Option<String> {
    const SYNONYMS: &[(&str, &str)] = &[
        ("number", "`decimal` (or `integer` for whole numbers)"),
        ("float", "`decimal`"),
        ("double", "`decimal`"),
        ("int", "`integer`"),
        ("string", "`text`"),
        ("str", "`text`"),
        ("textarea", "`long_text`"),
        ("boolean", "`bool`"),
        ("checkbox", "`bool`"),
        ("select", "`choice`"),
        ("enum", "`choice`"),
        ("radio", "`choice`"),
        ("multiselect", "`multi_choice`"),
        ("user", "`member`"),
        ("person", "`member`"),
        ("reference", "`link`"),
        ("relation", "`link`"),
        ("currency", "`money`"),
        ("timestamp", "`datetime`"),
        ("attachment", "`file`"),
        ("formula", "`computed`"),
    ];
    let lower = word.to_lowercase();
    SYNONYMS
        .iter()
        .find(|(w, target)| *w == lower && allowed.iter().any(|a| target.contains(&format!("`{a}`"))))
        .map(|(_, target)| format!("closeloop calls this {target}"))
}

fn parent_pointer(pointer: &str) -> String {
    match pointer.rfind('/') {
        Some(i) => pointer[..i].to_string(),
        None => String::new(),
    }
}

fn last_key(pointer: &str) -> String {
    segments(pointer).last().unwrap_or_default()
}

/// `/forms/0/fields/2` as `forms[0].fields[2]`.
fn pretty(pointer: &str) -> String {
    let mut s = String::new();
    for seg in segments(pointer) {
        if seg.chars().all(|c| c.is_ascii_digit()) {
            s.push_str(&format!("[{seg}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(&seg);
        }
    }
    s
}

fn subject(name: &str) -> String {
    if name.is_empty() {
        "the app".to_string()
    } else if name.chars().all(|c| c.is_ascii_digit()) {
        format!("item {name}")
    } else {
        format!("`{name}`")
    }
}

fn property_names(schema: &Value) -> Vec<String> {
    schema.get("properties").and_then(Value::as_object).map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

fn describe(schema: &Value) -> Option<String> {
    schema.get("description").and_then(Value::as_str).map(str::to_string)
}

/// What to type instead of a text where a yes/no or a number belongs, when the text says it:
/// `required: 是` → `true`, `n: 两个` → no guess, `max: "１０"` → `10`.
fn typed_instead(schema: &Value, instance: &Value) -> Option<String> {
    const YES: &[&str] = &["是", "对", "要", "需要", "必填", "必须", "真", "yes", "y", "on", "√", "✓"];
    const NO: &[&str] = &["否", "不", "不是", "不要", "不需要", "非必填", "选填", "假", "no", "n", "off", "×", "✗"];
    let text = instance.as_str()?.trim();
    let types: Vec<&str> = match schema.get("type")? {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let lower = text.to_lowercase();
    if types.contains(&"boolean") {
        if YES.contains(&lower.as_str()) {
            return Some(format!("write `true` for \"{text}\" (and `false` for no), without quotes"));
        }
        if NO.contains(&lower.as_str()) {
            return Some(format!("write `false` for \"{text}\" (and `true` for yes), without quotes"));
        }
        if lower == "true" || lower == "false" {
            return Some(format!("write `{lower}` without quotes"));
        }
    }
    if types.contains(&"integer") || types.contains(&"number") {
        // Full-width digits and a trailing unit (`１０`, `10个`, `5元`) are a number in disguise.
        let digits: String = text
            .chars()
            .map(|c| match c {
                '０'..='９' => char::from_u32(u32::from(c) - u32::from('０') + u32::from('0')).unwrap_or(c),
                '．' => '.',
                c => c,
            })
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
            .collect();
        if !digits.is_empty() && digits.parse::<f64>().is_ok() {
            return Some(format!("write `{digits}`: digits only, without quotes or units"));
        }
    }
    None
}

fn type_words(schema: &Value) -> String {
    let word = |t: &str| match t {
        "string" => "a text",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        "array" => "a list",
        "object" => "a mapping (key: value)",
        "null" => "empty",
        _ => "a value",
    };
    if let Some(t) = schema.get("type") {
        return match t {
            Value::String(s) => word(s).to_string(),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).map(word).collect::<Vec<_>>().join(" or "),
            _ => "a value".to_string(),
        };
    }
    if schema.get("anyOf").is_some() || schema.get("oneOf").is_some() {
        return schema
            .get("title")
            .and_then(Value::as_str)
            .map(|t| format!("a {}", t.to_lowercase()))
            .unwrap_or_else(|| "another form".into());
    }
    "a value".to_string()
}

fn value_words(v: &Value) -> String {
    match v {
        Value::Null => "empty".to_string(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("\"{s}\""),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_compiles_and_pointers_prettify() {
        assert!(SchemaChecker::new().is_ok());
        assert_eq!(pretty("/forms/0/fields/2"), "forms[0].fields[2]");
    }

    #[test]
    fn backtracking_patterns_run_in_linear_time() {
        // RELIABILITY Y5: the classic catastrophic pattern must not hang validation.
        let schema = serde_json::json!({"type": "string", "pattern": "(a+)+$"});
        let v = validator_options().build(&schema);
        assert!(v.is_ok());
        if let Ok(v) = v {
            let input = Value::String("a".repeat(40) + "!");
            let started = std::time::Instant::now();
            let _ = v.is_valid(&input);
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
    }
}
