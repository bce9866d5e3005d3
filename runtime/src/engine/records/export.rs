//! CSV export: a form's records as a file that imports back. Sensitive fields (a phone number,
//! a floor price) and sensitive columns of table fields stay out unless the caller asks for
//! them by name of who is exporting, and that export is on the audit trail.

use std::io::Write;

use serde_json::{json, Map, Value};

use super::csv::guard;
use crate::engine::{EngineError, Runtime};
use crate::model::{Field, FieldType};
use crate::store::{audit, records, NewEvent};
use crate::values::format_cell;

/// What an export writes.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Include sensitive fields and columns. The export is then recorded as a
    /// `records.exported` event naming `actor` and the fields.
    pub include_sensitive: bool,
    /// Who exports (a member, or `system`).
    pub actor: String,
    /// Add the system columns after `id` and `state`: `owner` (unless a field is named so),
    /// `created_at`, `updated_at`, and `ACTION_at` per action of the form (when it was first
    /// taken), times in the app's zone as `2026-11-23 10:00:00`. An import ignores them.
    pub system_columns: bool,
}

/// The fields an export writes, and the columns of each table field it leaves out.
fn shown(fields: &[Field], include_sensitive: bool) -> Vec<(&Field, Vec<&str>)> {
    fields
        .iter()
        .filter(|f| include_sensitive || f.sensitive != Some(true))
        .map(|f| {
            let hidden = f
                .columns
                .iter()
                .flatten()
                .filter(|c| !include_sensitive && c.sensitive == Some(true))
                .map(|c| c.id.as_str())
                .collect();
            (f, hidden)
        })
        .collect()
}

/// A table field's rows without the columns left out.
fn without(value: Option<&Value>, hidden: &[&str]) -> Option<Value> {
    let Some(Value::Array(rows)) = value else { return value.cloned() };
    let rows = rows
        .iter()
        .map(|row| match row {
            Value::Object(cells) => Value::Object(
                cells
                    .iter()
                    .filter(|(k, _)| !hidden.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Map<_, _>>(),
            ),
            other => other.clone(),
        })
        .collect();
    Some(Value::Array(rows))
}

/// The names of the sensitive fields and columns of a form (`phone`, `lines.floor_price`).
fn sensitive_names(fields: &[Field]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fields {
        if f.sensitive == Some(true) {
            out.push(f.id.clone());
        }
        for c in f.columns.iter().flatten().filter(|c| c.sensitive == Some(true)) {
            out.push(format!("{}.{}", f.id, c.id));
        }
    }
    out
}

impl Runtime {
    /// Writes a form's records as CSV: `id`, `state` (for forms with states), then every field
    /// by id, so the file imports back. Sensitive fields, and sensitive columns of table
    /// fields, are left out. Text that a spreadsheet would run as a formula (starting with `=`,
    /// `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'`; numbers stay numbers.
    pub fn export_csv(&self, form: &str, out: &mut dyn Write) -> Result<usize, EngineError> {
        self.write_csv(form, out, false, false, None)
    }

    /// [`Runtime::export_csv`] as `member` may see it: only the records the form's `read` rules
    /// let them read, without the fields their roles may not see (and never sensitive ones).
    pub fn export_csv_as(&self, form: &str, out: &mut dyn Write, member: &str) -> Result<usize, EngineError> {
        self.export_csv_as_with(form, out, member, &ExportOptions::default())
    }

    /// [`Runtime::export_csv_as`] with the system columns when `options` asks for them
    /// (`include_sensitive` does not apply: a member's view never has sensitive fields).
    pub fn export_csv_as_with(
        &self,
        form: &str,
        out: &mut dyn Write,
        member: &str,
        options: &ExportOptions,
    ) -> Result<usize, EngineError> {
        let viewer = super::access::Viewer::load(self.store.reader(), member)?;
        self.write_csv(form, out, false, options.system_columns, Some(&viewer))
    }

    /// [`Runtime::export_csv`], with sensitive fields when `options` asks for them: that
    /// export is recorded first, as a `records.exported` event naming who and which fields.
    pub fn export_csv_with(
        &mut self,
        form: &str,
        out: &mut dyn Write,
        options: &ExportOptions,
    ) -> Result<usize, EngineError> {
        if options.include_sensitive {
            let f = self.form(form)?;
            let fields = sensitive_names(&f.form.fields);
            let actor = options.actor.trim();
            if actor.is_empty() {
                return Err(EngineError::Refused("an export with sensitive fields names who exports it".into()));
            }
            let at = self.now();
            let body = json!({"form": form, "sensitive": fields}).to_string();
            self.store.write(|tx| audit::append(tx, &NewEvent::note(&at, actor, "records.exported", None, &body)))?;
        }
        self.write_csv(form, out, options.include_sensitive, options.system_columns, None)
    }

    fn write_csv(
        &self,
        form: &str,
        out: &mut dyn Write,
        include_sensitive: bool,
        system: bool,
        viewer: Option<&super::access::Viewer>,
    ) -> Result<usize, EngineError> {
        let f = self.form(form)?;
        let mut rows = records::list(self.store.reader(), f.table(), &crate::store::ListQuery::default())?;
        let mut fields = shown(&f.form.fields, include_sensitive);
        if let Some(v) = viewer {
            rows.retain(|r| v.may_read(f.form, r.owner.as_deref(), &r.data));
            fields.retain(|(fd, _)| v.sees(fd));
            for (fd, hidden) in &mut fields {
                hidden.extend(fd.columns.iter().flatten().filter(|c| !v.sees(c)).map(|c| c.id.as_str()));
            }
        }
        let mut w = ::csv::Writer::from_writer(out);
        let has_states = !f.form.states.is_empty();
        let mut header = vec!["id".to_string()];
        if has_states {
            header.push("state".into());
        }
        let system = system.then(|| SystemColumns::of(self, f.form)).transpose()?;
        if let Some(sys) = &system {
            header.extend(sys.header());
        }
        header.extend(fields.iter().map(|(fd, _)| fd.id.clone()));
        w.write_record(&header).map_err(|e| EngineError::Input(e.to_string()))?;
        for row in &rows {
            let mut cells = vec![guard(&row.id)];
            if has_states {
                cells.push(row.state.clone().unwrap_or_default());
            }
            if let Some(sys) = &system {
                cells.extend(sys.cells(row));
            }
            for (field, hidden) in &fields {
                let value = without(row.data.get(&field.id), hidden);
                let cell = format_cell(value.as_ref());
                let numeric = field.kind.is_numeric() || field.kind == FieldType::Bool;
                cells.push(if numeric && value.as_ref().is_some_and(Value::is_number) { cell } else { guard(&cell) });
            }
            w.write_record(&cells).map_err(|e| EngineError::Input(e.to_string()))?;
        }
        w.flush().map_err(|e| EngineError::Input(e.to_string()))?;
        Ok(rows.len())
    }
}

/// The system columns of an export: who owns a record, when it was created and last changed,
/// and when each of the form's actions was first taken (from the event log).
struct SystemColumns {
    owner: bool,
    actions: Vec<String>,
    /// (record, action) → when it was first taken.
    taken: std::collections::HashMap<(String, String), String>,
    zone: jiff::tz::TimeZone,
}

impl SystemColumns {
    fn of(rt: &Runtime, form: &crate::model::Form) -> Result<SystemColumns, EngineError> {
        let taken = audit::first_actions(rt.store.reader(), &form.id)?
            .into_iter()
            .map(|(record, action, at)| ((record, action), at))
            .collect();
        Ok(SystemColumns {
            owner: form.field("owner").is_none(),
            actions: form.actions.iter().map(|a| a.id.clone()).collect(),
            taken,
            zone: rt.zone_of(Some(&form.id)),
        })
    }

    fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = if self.owner { vec!["owner".into()] } else { Vec::new() };
        h.extend(["created_at".to_string(), "updated_at".to_string()]);
        h.extend(self.actions.iter().map(|a| format!("{a}_at")));
        h
    }

    /// A stored time as a spreadsheet reads it, in the app's zone.
    fn local(&self, at: &str) -> String {
        at.parse::<jiff::Timestamp>()
            .map(|t| t.to_zoned(self.zone.clone()).strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    }

    fn cells(&self, row: &crate::store::RecordRow) -> Vec<String> {
        let mut c: Vec<String> =
            if self.owner { vec![guard(row.owner.as_deref().unwrap_or_default())] } else { Vec::new() };
        c.push(self.local(&row.created_at));
        c.push(self.local(&row.updated_at));
        for a in &self.actions {
            c.push(self.taken.get(&(row.id.clone(), a.clone())).map(|at| self.local(at)).unwrap_or_default());
        }
        c
    }
}
