//! Record rules, the part that reads other records: lookups from catalog forms (for the form's
//! fields and row by row for its tables, carrying what closeloop derived for a row across
//! edits), links named by the target's key, and members and linked records that must exist.

use serde_json::{Map, Value};

use super::rules::{GivenCell, Purpose, Rules};
use crate::model::{Field, FieldType, Lang};
use crate::store::{records, FormTable, Reader};
use crate::values::{check_value, field_name, is_empty, FieldProblem};

impl Rules<'_> {
    /// Checks each row of a table field; returns the normalised rows. A person's values for
    /// read-only columns are set aside in `given_readonly` (path, table, row, column, value).
    pub(super) fn rows(
        &self,
        table: &Field,
        value: &Value,
        purpose: Purpose,
        given_readonly: &mut Vec<GivenCell>,
        problems: &mut Vec<FieldProblem>,
    ) -> Option<Value> {
        let lang = self.lang();
        let columns = table.columns.as_deref().unwrap_or_default();
        let mut out = Vec::new();
        let before = problems.len();
        for (i, row) in value.as_array().into_iter().flatten().enumerate() {
            let path = format!("{}[{i}]", table.id);
            let Some(row) = row.as_object() else {
                problems.push(FieldProblem::new(
                    path,
                    "WRONG_TYPE",
                    format!("{}: each row is an object of columns", field_name(table, lang)),
                ));
                continue;
            };
            let mut clean = Map::new();
            for column in columns {
                if let (Some(default), false) = (&column.default, row.contains_key(&column.id)) {
                    clean.insert(column.id.clone(), default.clone());
                }
            }
            for (key, v) in row {
                let Some(column) = columns.iter().find(|c| &c.id == key) else {
                    problems.push(FieldProblem::new(
                        format!("{path}.{key}"),
                        "UNKNOWN_FIELD",
                        format!("{} has no column `{key}`", field_name(table, lang)),
                    ));
                    continue;
                };
                if v.is_null() || column.kind == FieldType::Computed {
                    continue;
                }
                if column.readonly == Some(true) && purpose != Purpose::Automation {
                    given_readonly.push((format!("{path}.{key}"), table.id.clone(), i, key.clone(), v.clone()));
                    continue;
                }
                match check_value(column, v, &format!("{path}.{key}"), lang) {
                    Ok(v) => {
                        clean.insert(key.clone(), v);
                    }
                    Err(p) => problems.push(p),
                }
            }
            out.push(Value::Object(clean));
        }
        (problems.len() == before).then_some(Value::Array(out))
    }

    pub(super) fn source_form(&self, id: &str) -> Option<&crate::model::Form> {
        self.apps.values().flat_map(|a| a.app.def.forms.iter()).find(|f| f.id == id)
    }

    /// Fills fields from catalog records found by key (a product's list price from its SKU).
    /// A lookup runs only when its key is new or changed: a stored quote keeps the prices it
    /// was made with when the catalog changes later.
    pub(super) fn lookups(
        &self,
        conn: &Reader,
        data: &mut Map<String, Value>,
        base: Option<&Map<String, Value>>,
        problems: &mut Vec<FieldProblem>,
    ) {
        let lang = self.lang();
        let fields = &self.f.form.fields;
        fill(self, conn, fields, data, base, "", lang, problems);
        for table in fields.iter().filter(|f| f.kind == FieldType::Table) {
            let columns = table.columns.as_deref().unwrap_or_default();
            let before: Vec<Value> =
                base.and_then(|b| b.get(&table.id)).and_then(Value::as_array).cloned().unwrap_or_default();
            let keys: Vec<&str> = columns.iter().filter(|c| c.lookup.is_some()).map(|c| c.id.as_str()).collect();
            let mut used = vec![false; before.len()];
            if let Some(Value::Array(rows)) = data.get_mut(&table.id) {
                for (i, row) in rows.iter_mut().enumerate() {
                    let Value::Object(row) = row else { continue };
                    let old = continued(&before, &mut used, i, row, &keys);
                    // A row that goes on from a stored one keeps what closeloop derived for
                    // it (a product's name and floor price): edits never drop it.
                    if let Some(old) = old {
                        for column in
                            columns.iter().filter(|c| c.readonly == Some(true) && c.kind != FieldType::Computed)
                        {
                            if let (None, Some(v)) = (row.get(&column.id), old.get(&column.id)) {
                                row.insert(column.id.clone(), v.clone());
                            }
                        }
                    }
                    fill(self, conn, columns, row, old, &format!("{}[{i}].", table.id), lang, problems);
                }
            }
        }
    }

    /// A link may name its record by the target form's key (a customer code) instead of the
    /// record id; it is stored as the id.
    pub(crate) fn resolve_links(&self, conn: &Reader, data: &mut Map<String, Value>) {
        for field in self.f.form.fields.iter().filter(|f| f.kind == FieldType::Link) {
            let Some(Value::String(given)) = data.get(&field.id).cloned() else { continue };
            let Some(target) = field.form.as_deref().and_then(|f| self.source_form(f)) else { continue };
            let table = FormTable::of(target);
            if records::get(conn, &table, &given).ok().flatten().is_some() {
                continue;
            }
            let key = match target.key.as_slice() {
                [one] => Some(one.as_str()),
                _ => target.fields.iter().find(|f| f.unique == Some(true)).map(|f| f.id.as_str()),
            };
            if let Some(found) =
                key.and_then(|k| records::find_by(conn, &table, &[(k, &Value::String(given.clone()))]).ok().flatten())
            {
                data.insert(field.id.clone(), Value::String(found.id));
            }
        }
    }

    /// Members and linked records must exist.
    pub(super) fn exists(
        &self,
        conn: &Reader,
        field: &Field,
        value: &Value,
        path: &str,
        problems: &mut Vec<FieldProblem>,
    ) {
        let name = field_name(field, self.lang());
        let Some(id) = value.as_str() else { return };
        match field.kind {
            FieldType::Member => match crate::store::members::get(conn, id).ok().flatten() {
                None => {
                    problems.push(FieldProblem::new(path, "NOT_FOUND", format!("{name}: there is no member `{id}`")))
                }
                Some(m) if !m.active => {
                    problems.push(FieldProblem::new(path, "NOT_FOUND", format!("{name}: member `{id}` is not active")))
                }
                Some(_) => {}
            },
            FieldType::Link => {
                let Some(target) = field.form.as_deref().and_then(|f| self.source_form(f)) else { return };
                if records::get(conn, &FormTable::of(target), id).ok().flatten().is_none() {
                    problems.push(FieldProblem::new(
                        path,
                        "NOT_FOUND",
                        format!("{name}: there is no {} {id}", target.id),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// The stored row a new row goes on from: the one at the same place with the same
/// lookup keys, else the first unclaimed one with the same keys; none for a new row.
fn continued<'b>(
    before: &'b [Value],
    used: &mut [bool],
    i: usize,
    row: &Map<String, Value>,
    keys: &[&str],
) -> Option<&'b Map<String, Value>> {
    let same = |old: &Map<String, Value>| keys.iter().all(|k| old.get(*k) == row.get(*k));
    let at = before.get(i).and_then(Value::as_object).filter(|o| !used[i] && same(o)).map(|_| i);
    let found = at.or_else(|| {
        before.iter().enumerate().find(|(j, o)| !used[*j] && o.as_object().is_some_and(same)).map(|(j, _)| j)
    })?;
    used[found] = true;
    before.get(found).and_then(Value::as_object)
}

#[allow(clippy::too_many_arguments)]
/// Fills fields from the catalog record each lookup key names; a key no record has is a
/// `NOT_FOUND` problem at `prefix` + the field.
fn fill(
    rules: &Rules<'_>,
    conn: &Reader,
    fields: &[Field],
    data: &mut Map<String, Value>,
    base: Option<&Map<String, Value>>,
    prefix: &str,
    lang: Lang,
    problems: &mut Vec<FieldProblem>,
) {
    for field in fields {
        let (Some(lookup), Some(value)) = (&field.lookup, data.get(&field.id).cloned()) else { continue };
        if base.and_then(|b| b.get(&field.id)) == Some(&value) {
            continue;
        }
        let Some(source) = rules.source_form(&lookup.form) else { continue };
        let table = FormTable::of(source);
        let found = records::find_by(conn, &table, &[(lookup.key.as_str(), &value)]).ok().flatten();
        match found {
            None if lookup.on_missing == Some(crate::model::OnMissing::Keep) => {
                // Kept for someone to fix: what this lookup fills stays empty, not stale.
                for here in lookup.fill.keys() {
                    data.remove(here);
                }
            }
            None => {
                let shown = crate::values::format_cell(Some(&value));
                let closest = value.as_str().and_then(|v| closest_key(conn, &table, &lookup.key, v));
                let hint = closest.map(|c| format!("; did you mean \"{c}\"?")).unwrap_or_default();
                problems.push(FieldProblem::new(
                    format!("{prefix}{}", field.id),
                    "NOT_FOUND",
                    format!("{}: no {} has {} {shown}{hint}", field_name(field, lang), source.id, lookup.key),
                ));
            }
            Some(src) => {
                for (here, there) in &lookup.fill {
                    let readonly = fields.iter().any(|f| &f.id == here && f.readonly == Some(true));
                    if readonly || is_empty(data.get(here)) {
                        if let Some(v) = src.data.get(there) {
                            data.insert(here.clone(), v.clone());
                        }
                    }
                }
            }
        }
    }
}

/// The catalog entry a person most likely meant: the same text once spaces, full-width
/// characters and case are set aside (`卡罗拉2019` for `卡罗拉 2019`), else the closest by
/// spelling. Looks at most at the first 10,000 entries.
fn closest_key(conn: &Reader, table: &FormTable, key: &str, given: &str) -> Option<String> {
    let values = records::values_of(conn, table, key, 10_000).ok()?;
    let plain = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| match c {
                '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
                c => c,
            })
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = plain(given);
    if let Some(same) = values.iter().find(|v| plain(v) == wanted) {
        return Some(same.clone());
    }
    crate::suggest::closest(given, values.iter().map(String::as_str)).map(str::to_string)
}
