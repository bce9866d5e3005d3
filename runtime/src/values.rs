//! Field values: checking a value against its field's type and options, and reading CSV cells.
//!
//! A problem is named by field path (`phone`, `lines[2].qty`) with a stable code and a message
//! that uses the field's label, so an ops person recognises the field from the form.

use serde::Serialize;
use serde_json::{Number, Value};

use crate::model::{Field, FieldType, Label, Lang};

/// One thing wrong with one field of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// The field path: `phone`, `lines[2].qty`.
    pub field: String,
    /// A stable code: `REQUIRED`, `WRONG_TYPE`, `NOT_AN_OPTION`, `TOO_SMALL`, `TOO_LARGE`,
    /// `TOO_SHORT`, `TOO_LONG`, `PATTERN_MISMATCH`, `NOT_UNIQUE`, `UNKNOWN_FIELD`, `READONLY`,
    /// `NOT_FOUND`, `REQUIRED_FOR_ACTION`.
    pub code: &'static str,
    /// What is wrong, using the field's label.
    pub message: String,
}

impl FieldProblem {
    /// A problem with a field.
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FieldProblem { field: field.into(), code, message: message.into() }
    }
}

/// The name people know a field by: its label in the app's language, else its id.
pub fn field_name(field: &Field, lang: Lang) -> String {
    match &field.label {
        Some(label) => label_text(label, lang),
        None => field.id.clone(),
    }
}

fn label_text(label: &Label, lang: Lang) -> String {
    label.get(lang).to_string()
}

/// A field's label, computed only when a message needs it: checking a valid value costs no
/// allocation.
pub struct FieldName<'a>(pub &'a Field, pub Lang);

impl std::fmt::Display for FieldName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.label {
            Some(label) => f.write_str(label.get(self.1)),
            None => f.write_str(&self.0.id),
        }
    }
}

thread_local! {
    /// Compiled field patterns. Patterns come from loaded apps, so there are few; the cache is
    /// cleared if it ever grows past a bound.
    static PATTERNS: std::cell::RefCell<std::collections::HashMap<String, Option<regex::Regex>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Does `text` match the pattern? A pattern that does not compile matches nothing (the loader
/// refuses such apps, so this does not happen in practice).
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    PATTERNS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(pattern) {
            if cache.len() >= 256 {
                cache.clear();
            }
            let re = regex::RegexBuilder::new(pattern).size_limit(1 << 20).dfa_size_limit(1 << 20).build().ok();
            cache.insert(pattern.to_string(), re);
        }
        cache.get(pattern).and_then(Option::as_ref).is_some_and(|re| re.is_match(text))
    })
}

/// True when a value counts as "not filled in".
pub fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

/// Checks a present value against its field's type and options; returns the normalised value.
/// Table fields are checked row by row by the caller.
pub fn check_value(field: &Field, value: &Value, path: &str, lang: Lang) -> Result<Value, FieldProblem> {
    let name = FieldName(field, lang);
    let wrong =
        |what: &str| FieldProblem::new(path, "WRONG_TYPE", format!("{name}: expected {what}, got {}", show(value)));
    let v = match field.kind {
        FieldType::Text | FieldType::LongText | FieldType::File => text(value).ok_or_else(|| wrong("a text"))?,
        FieldType::Phone => {
            let s = text(value).ok_or_else(|| wrong("a phone number"))?;
            let digits = s.as_str().unwrap_or_default().chars().filter(char::is_ascii_digit).count();
            let ok = s.as_str().unwrap_or_default().chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
            if !ok || !(5..=20).contains(&digits) {
                return Err(FieldProblem::new(
                    path,
                    "WRONG_TYPE",
                    format!("{name}: \"{}\" is not a phone number", s.as_str().unwrap_or_default()),
                ));
            }
            s
        }
        FieldType::Email => {
            let s = text(value).ok_or_else(|| wrong("an email address"))?;
            let t = s.as_str().unwrap_or_default();
            let valid = t.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty() && host.contains('.') && !host.starts_with('.') && !host.ends_with('.')
            }) && !t.contains(char::is_whitespace);
            if !valid {
                return Err(FieldProblem::new(path, "WRONG_TYPE", format!("{name}: \"{t}\" is not an email address")));
            }
            s
        }
        FieldType::Url => {
            let s = text(value).ok_or_else(|| wrong("a web address"))?;
            let t = s.as_str().unwrap_or_default();
            if !(t.starts_with("https://") || t.starts_with("http://")) || t.contains(char::is_whitespace) {
                return Err(FieldProblem::new(
                    path,
                    "WRONG_TYPE",
                    format!("{name}: \"{t}\" is not a web address (http:// or https://)"),
                ));
            }
            s
        }
        FieldType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => value.clone(),
            Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15) => {
                Value::from(n.as_f64().unwrap_or_default() as i64)
            }
            _ => return Err(wrong("a whole number")),
        },
        FieldType::Decimal | FieldType::Money | FieldType::Percent => match value {
            Value::Number(n) => {
                let scale = field.scale.or(if field.kind == FieldType::Money { Some(2) } else { None });
                if let (Some(scale), Some(f)) = (scale, n.as_f64()) {
                    if decimals(n) > usize::from(scale) {
                        return Err(FieldProblem::new(
                            path,
                            "WRONG_TYPE",
                            format!("{name}: {f} has more than {scale} digits after the point"),
                        ));
                    }
                }
                // One representation however the number arrived (`10` in JSON, `10.00` in a CSV),
                // so comparisons, diffs and re-imports see equal values as equal.
                float(n)
            }
            _ => return Err(wrong("a number")),
        },
        FieldType::Bool => match value {
            Value::Bool(_) => value.clone(),
            _ => return Err(wrong("true or false")),
        },
        FieldType::Date => {
            let s = value.as_str().ok_or_else(|| wrong("a date (YYYY-MM-DD)"))?;
            let date = crate::timespec::parse_date(s).map_err(|_| {
                FieldProblem::new(path, "WRONG_TYPE", format!("{name}: \"{s}\" is not a date (YYYY-MM-DD)"))
            })?;
            Value::String(date.to_string())
        }
        FieldType::Datetime => {
            let s = value.as_str().ok_or_else(|| wrong("a date and time"))?;
            let ts = s.parse::<jiff::Timestamp>().map_err(|_| {
                FieldProblem::new(
                    path,
                    "WRONG_TYPE",
                    format!("{name}: \"{s}\" is not a date and time with an offset (2026-11-26T09:00:00+08:00)"),
                )
            })?;
            Value::String(crate::clock::stamp(ts))
        }
        FieldType::Choice => {
            let s = value.as_str().ok_or_else(|| wrong("one of the options"))?;
            option(field, s, path, &name)?
        }
        FieldType::MultiChoice => {
            let items = value.as_array().ok_or_else(|| wrong("a list of options"))?;
            let mut out = Vec::new();
            for item in items {
                let s = item.as_str().ok_or_else(|| wrong("a list of options"))?;
                out.push(option(field, s, path, &name)?);
            }
            Value::Array(out)
        }
        FieldType::Member | FieldType::Link => text(value).ok_or_else(|| wrong("an id"))?,
        FieldType::Range => {
            let o = value.as_object().ok_or_else(|| wrong("a range {min, max}"))?;
            let lo = o.get("min").and_then(Value::as_f64);
            let hi = o.get("max").and_then(Value::as_f64);
            let extra = o.keys().any(|k| k != "min" && k != "max");
            match (lo, hi) {
                (Some(lo), Some(hi)) if !extra && lo <= hi => serde_json::json!({"min": lo, "max": hi}),
                (Some(_), Some(_)) if !extra => {
                    return Err(FieldProblem::new(
                        path,
                        "WRONG_TYPE",
                        format!("{name}: the lower bound is above the upper bound"),
                    ));
                }
                _ => return Err(wrong("a range {min, max} of two numbers")),
            }
        }
        FieldType::Table => match value {
            Value::Array(_) => value.clone(),
            _ => return Err(wrong("a list of rows")),
        },
        FieldType::Computed => value.clone(),
    };
    bounds(field, &v, path, &name)?;
    Ok(v)
}

fn float(n: &Number) -> Value {
    n.as_f64().and_then(Number::from_f64).map(Value::Number).unwrap_or(Value::Number(n.clone()))
}

fn text(v: &Value) -> Option<Value> {
    v.as_str().map(|s| Value::String(s.to_string()))
}

fn decimals(n: &Number) -> usize {
    let s = n.to_string();
    if s.contains(['e', 'E']) {
        return 0;
    }
    s.split_once('.').map(|(_, f)| f.trim_end_matches('0').len()).unwrap_or(0)
}

fn option(field: &Field, s: &str, path: &str, name: &FieldName<'_>) -> Result<Value, FieldProblem> {
    let options = field.options.as_deref().unwrap_or_default();
    if options.iter().any(|o| o.value == s) {
        return Ok(Value::String(s.to_string()));
    }
    let values: Vec<&str> = options.iter().map(|o| o.value.as_str()).collect();
    Err(FieldProblem::new(path, "NOT_AN_OPTION", format!("{name}: \"{s}\" is not one of {}", values.join(", "))))
}

/// The most characters a field of a type takes when the app sets no `max_length`: far more
/// than a form ever holds (a name, an address, a page of notes), and little enough that one
/// record cannot carry megabytes into every read, export and script.
pub fn default_max_length(kind: FieldType) -> Option<u32> {
    match kind {
        FieldType::Text | FieldType::File => Some(1_000),
        FieldType::LongText => Some(100_000),
        FieldType::Phone => Some(64),
        FieldType::Email => Some(254),
        FieldType::Url => Some(2_048),
        _ => None,
    }
}

/// min/max, lengths (the app's, or the type's default) and pattern.
fn bounds(field: &Field, v: &Value, path: &str, name: &FieldName<'_>) -> Result<(), FieldProblem> {
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = field.min_length {
            if len < u64::from(min) {
                return Err(FieldProblem::new(
                    path,
                    "TOO_SHORT",
                    format!("{name}: at least {min} characters, got {len}"),
                ));
            }
        }
        if let Some(max) = field.max_length {
            if len > u64::from(max) {
                return Err(FieldProblem::new(
                    path,
                    "TOO_LONG",
                    format!("{name}: at most {max} characters, got {len}"),
                ));
            }
        } else if let Some(max) = default_max_length(field.kind).filter(|max| len > u64::from(*max)) {
            return Err(FieldProblem::new(
                path,
                "TOO_LONG",
                format!(
                    "{name}: at most {max} characters (the default for a {} field), got {len}",
                    field.kind.as_str()
                ),
            ));
        }
        if let Some(pattern) = &field.pattern {
            if !pattern_matches(pattern, s) {
                return Err(FieldProblem::new(
                    path,
                    "PATTERN_MISMATCH",
                    format!("{name}: \"{s}\" does not have the required form"),
                ));
            }
        }
    }
    let number = |x: &Value| x.as_f64();
    let (lo, hi) = match v {
        Value::Object(o) if field.kind == FieldType::Range => {
            (o.get("min").and_then(Value::as_f64), o.get("max").and_then(Value::as_f64))
        }
        Value::Number(_) => (number(v), number(v)),
        _ => (None, None),
    };
    if let (Some(Value::Number(min)), Some(lo)) = (&field.min, lo) {
        if lo < min.as_f64().unwrap_or(f64::MIN) {
            return Err(FieldProblem::new(path, "TOO_SMALL", format!("{name}: at least {min}")));
        }
    }
    if let (Some(Value::Number(max)), Some(hi)) = (&field.max, hi) {
        if hi > max.as_f64().unwrap_or(f64::MAX) {
            return Err(FieldProblem::new(path, "TOO_LARGE", format!("{name}: at most {max}")));
        }
    }
    if field.kind.is_temporal() {
        if let (Some(s), Some(Value::String(min))) = (v.as_str(), &field.min) {
            if s < min.as_str() {
                return Err(FieldProblem::new(path, "TOO_SMALL", format!("{name}: not before {min}")));
            }
        }
        if let (Some(s), Some(Value::String(max))) = (v.as_str(), &field.max) {
            if s > max.as_str() {
                return Err(FieldProblem::new(path, "TOO_LARGE", format!("{name}: not after {max}")));
            }
        }
    }
    Ok(())
}

/// A value as a person reads it: choices as their labels, lists joined, nothing as "".
pub fn display(field: &Field, value: &Value, lang: Lang) -> String {
    let option = |s: &str| {
        field
            .options
            .iter()
            .flatten()
            .find(|o| o.value == s)
            .and_then(|o| o.label.as_ref().map(|l| l.get(lang).to_string()))
            .unwrap_or_else(|| s.to_string())
    };
    match value {
        Value::Null => String::new(),
        // Money, or a computed amount that names its currency.
        Value::Number(n) if field.kind == FieldType::Money || field.currency.is_some() => {
            let places = field.scale.map(|s| s as usize).unwrap_or(2);
            n.as_f64().map(|x| money_text(x, places)).unwrap_or_else(|| n.to_string())
        }
        Value::Number(n) if field.kind == FieldType::Percent => {
            n.as_f64().map(|x| format!("{}%", plain_number(x))).unwrap_or_else(|| format!("{n}%"))
        }
        Value::String(s) => option(s),
        // A table's rows, each as `column: value` of its columns that are not sensitive.
        Value::Array(rows) if field.kind == FieldType::Table => rows
            .iter()
            .map(|row| {
                field
                    .columns
                    .iter()
                    .flatten()
                    .filter(|c| c.sensitive != Some(true))
                    .filter_map(|c| row.get(&c.id).filter(|v| !v.is_null()).map(|v| (c, v)))
                    .map(|(c, v)| format!("{}: {}", c.id, display(c, v, lang)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::Array(items) => {
            items.iter().map(|i| i.as_str().map(option).unwrap_or_else(|| i.to_string())).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// An amount as people write money: `places` decimals and thousands separators
/// (`59,000.00`, `-1,234.50`).
pub fn money_text(x: f64, places: usize) -> String {
    let fixed = format!("{:.places$}", x.abs());
    let (whole, fraction) = fixed.split_once('.').map_or((fixed.as_str(), None), |(w, f)| (w, Some(f)));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3 + places + 2);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if x < 0.0 && fixed.chars().any(|c| c.is_ascii_digit() && c != '0') { "-" } else { "" };
    match fraction {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A number as people write it: no trailing `.0` (`60`, `12.5`), at most four decimals.
pub fn plain_number(x: f64) -> String {
    let text = format!("{:.4}", x);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// The `money` and `percent` filters message templates use: `{{ total | money }}` gives
/// `59,000.00`, `{{ prepay_pct | percent }}` gives `60%`.
pub fn add_number_filters(env: &mut minijinja::Environment<'_>) {
    env.add_filter("money", |v: f64| money_text(v, 2));
    env.add_filter("percent", |v: f64| format!("{}%", plain_number(v)));
    env.add_filter("number", |v: f64| plain_number(v));
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Null => "nothing".into(),
        other => other.to_string(),
    }
}

/// Reads a CSV cell as a value of the field's type. Empty cells are "not given".
/// Choices accept the option's value or its label in either language; booleans accept
/// true/false, yes/no, 1/0, 是/否; multi-choices split on `;`; ranges read `10-50` or `10~50`.
pub fn parse_cell(field: &Field, cell: &str, tz: &jiff::tz::TimeZone) -> Result<Option<Value>, String> {
    // Text keeps what it holds but the spaces around it: a leading tab, carriage return or NUL
    // is part of the cell (RELIABILITY C1: stored verbatim; an export guards it again).
    let raw = cell.trim_matches(' ');
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(None);
    }
    let value = match field.kind {
        FieldType::Integer => cell
            .replace(',', "")
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("\"{cell}\" is not a whole number"))?,
        FieldType::Decimal | FieldType::Money | FieldType::Percent => {
            let t = cell.trim_start_matches(['¥', '￥', '$']).trim_end_matches('%').replace(',', "");
            let f: f64 = t.parse().map_err(|_| format!("\"{cell}\" is not a number"))?;
            Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("\"{cell}\" is not a number"))?
        }
        FieldType::Bool => match cell.to_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "是" | "对" => Value::Bool(true),
            "false" | "no" | "n" | "0" | "否" | "不" => Value::Bool(false),
            _ => return Err(format!("\"{cell}\" is not yes or no")),
        },
        FieldType::Choice => Value::String(choice_value(field, cell).ok_or_else(|| not_option(field, cell))?),
        FieldType::MultiChoice => {
            let mut out = Vec::new();
            for part in cell.split([';', '；', '|']).map(str::trim).filter(|p| !p.is_empty()) {
                out.push(Value::String(choice_value(field, part).ok_or_else(|| not_option(field, part))?));
            }
            Value::Array(out)
        }
        FieldType::Datetime => {
            if let Ok(ts) = cell.parse::<jiff::Timestamp>() {
                Value::String(crate::clock::stamp(ts))
            } else {
                let civil = cell
                    .replace('/', "-")
                    .parse::<jiff::civil::DateTime>()
                    .map_err(|_| format!("\"{cell}\" is not a date and time (2026-11-26 09:00)"))?;
                let ts = civil.to_zoned(tz.clone()).map_err(|e| e.to_string())?.timestamp();
                Value::String(crate::clock::stamp(ts))
            }
        }
        FieldType::Date => {
            // Excel writes 2026/1/5 and 2026.1.5; store the ISO date.
            let parts: Vec<&str> = cell.split(['/', '-', '.']).collect();
            match parts.as_slice() {
                [y, m, d] if y.len() == 4 => match (y.parse::<i16>(), m.parse::<i8>(), d.parse::<i8>()) {
                    (Ok(y), Ok(m), Ok(d)) => jiff::civil::Date::new(y, m, d)
                        .map(|date| Value::String(date.to_string()))
                        .map_err(|_| format!("\"{cell}\" is not a date that exists"))?,
                    _ => return Err(format!("\"{cell}\" is not a date (2026-01-05)")),
                },
                _ => Value::String(cell.to_string()),
            }
        }
        FieldType::Range => {
            // `10~50` (as exports write it), or `10-50`; a leading minus belongs to the number.
            let (lo, hi) = match cell.split_once(['~', '～']) {
                Some(pair) => pair,
                None => cell
                    .char_indices()
                    .skip(1)
                    .find(|(_, c)| *c == '-')
                    .map(|(i, _)| (&cell[..i], &cell[i + 1..]))
                    .ok_or_else(|| format!("\"{cell}\" is not a range such as 10-50"))?,
            };
            let lo: f64 = lo.trim().parse().map_err(|_| format!("\"{cell}\" is not a range such as 10-50"))?;
            let hi: f64 = hi.trim().parse().map_err(|_| format!("\"{cell}\" is not a range such as 10-50"))?;
            serde_json::json!({"min": lo, "max": hi})
        }
        FieldType::Table => {
            serde_json::from_str(cell).map_err(|_| "a table cell must hold its rows as JSON".to_string())?
        }
        _ => Value::String(raw.to_string()),
    };
    Ok(Some(value))
}

fn choice_value(field: &Field, cell: &str) -> Option<String> {
    let options = field.options.as_deref().unwrap_or_default();
    options
        .iter()
        .find(|o| {
            o.value == cell
                || match &o.label {
                    Some(Label::Text(t)) => t == cell,
                    Some(Label::Langs(l)) => {
                        l.zh.as_deref() == Some(cell) || l.en.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(cell))
                    }
                    None => false,
                }
        })
        .map(|o| o.value.clone())
}

fn not_option(field: &Field, cell: &str) -> String {
    let values: Vec<&str> = field.options.as_deref().unwrap_or_default().iter().map(|o| o.value.as_str()).collect();
    format!("\"{cell}\" is not one of {}", values.join(", "))
}

/// A field's value as a CSV cell (what the CSV import reads back).
pub fn format_cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(";")
        }
        Some(Value::Object(o)) if o.len() == 2 && o.contains_key("min") && o.contains_key("max") => {
            format!("{}~{}", format_cell(o.get("min")), format_cell(o.get("max")))
        }
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(super::money_text(59000.0, 2), "59,000.00");
        assert_eq!(super::money_text(1234567.891, 2), "1,234,567.89");
        assert_eq!(super::money_text(-1234.5, 2), "-1,234.50");
        assert_eq!(super::money_text(999.0, 0), "999");
        assert_eq!(super::money_text(-0.001, 2), "0.00");
        assert_eq!(super::plain_number(60.0), "60");
        assert_eq!(super::plain_number(12.5), "12.5");
        assert_eq!(super::plain_number(-0.00001), "0");
    }

    use super::*;
    use crate::model::FieldType;

    fn field(kind: FieldType) -> Field {
        serde_json::from_value(serde_json::json!({"id": "f", "type": "text"}))
            .map(|mut f: Field| {
                f.kind = kind;
                f
            })
            .unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn cells_read_the_way_spreadsheets_write_them() {
        let tz = jiff::tz::TimeZone::UTC;
        let date = field(FieldType::Date);
        assert_eq!(parse_cell(&date, "2026/1/5", &tz), Ok(Some(Value::from("2026-01-05"))));
        assert!(parse_cell(&date, "2026/2/30", &tz).is_err());
        let range = field(FieldType::Range);
        assert_eq!(parse_cell(&range, "-10~5", &tz), Ok(Some(serde_json::json!({"min": -10.0, "max": 5.0}))));
        assert_eq!(parse_cell(&range, "-10-5", &tz), Ok(Some(serde_json::json!({"min": -10.0, "max": 5.0}))));
        assert_eq!(format_cell(Some(&serde_json::json!({"min": -10.0, "max": 5.0}))), "-10.0~5.0");
    }

    #[test]
    fn a_table_reads_row_by_row_without_its_sensitive_columns() {
        let lines: Field = serde_json::from_value(serde_json::json!({"id": "lines", "type": "table", "columns": [
            {"id": "sku", "type": "text"},
            {"id": "unit_price", "type": "money"},
            {"id": "floor_price", "type": "money", "sensitive": true}]}))
        .unwrap_or_else(|_| unreachable!());
        let rows = serde_json::json!([{"sku": "A", "unit_price": 1800.0, "floor_price": 2000.0}, {"sku": "B"}]);
        assert_eq!(display(&lines, &rows, Lang::Zh), "sku: A, unit_price: 1,800.00; sku: B");
    }
}
