//! Installing an app, and installing a new version of it without orphaning stored data.

use serde::Serialize;
use serde_json::json;

use super::{EngineError, Installed, Runtime};
use crate::diagnostic::{Code, Diagnostic, Location};
use crate::loader::AppFiles;
use crate::store::{apps, audit, records, schema, FormTable, NewEvent};

/// What an install did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// The app id.
    pub app: String,
    /// The revision now installed (1 for the first install).
    pub revision: i64,
    /// The app's forms.
    pub forms: Vec<String>,
    /// Whether stored data was orphaned on purpose (`--force`).
    pub forced: bool,
    /// Warnings from loading the app.
    pub warnings: Vec<Diagnostic>,
    /// What `--force` overrode.
    pub orphaned: Vec<String>,
}

impl Runtime {
    /// Installs an app, or a new version of an installed one. Additive changes (new forms, new
    /// fields, new states) apply; removing a form, field or state that records still use is
    /// refused with diagnostics unless `force` is set, and then it is audited. Every revision's
    /// definition is kept.
    pub fn install(&mut self, files: &AppFiles, actor: &str, force: bool) -> Result<InstallReport, EngineError> {
        let loaded = self.loader.load(files);
        let Some(app) = loaded.app else { return Err(EngineError::InvalidApp(loaded.diagnostics)) };
        let id = app.def.app.id.clone();
        let file = files.app_file();
        let at_form = |form: &str| {
            let index = app.def.forms.iter().position(|f| f.id == form);
            Location {
                file: file.clone(),
                line: 1,
                column: 1,
                pointer: index.map(|i| format!("/forms/{i}")).unwrap_or_default(),
            }
        };
        for form in &app.def.forms {
            if let Some(other) =
                self.apps.iter().find(|(other, a)| **other != id && a.app.def.forms.iter().any(|f| f.id == form.id))
            {
                let d = Diagnostic::error(
                    Code::FORM_TAKEN,
                    format!("form `{}` already belongs to the installed app `{}`", form.id, other.0),
                    &at_form(&form.id),
                )
                .with_help("form ids are unique across the apps of one database; rename the form");
                return Err(EngineError::InvalidApp(vec![d]));
            }
        }
        let mut orphans = Vec::new();
        if let Some(previous) = self.apps.get(&id) {
            let conn = self.store.reader();
            for old in &previous.app.def.forms {
                let table = FormTable::of(old);
                if !records::table_exists(conn, &table)? {
                    continue;
                }
                let Some(new) = app.def.forms.iter().find(|f| f.id == old.id) else {
                    let n = self.store.count(&table)?;
                    if n > 0 {
                        orphans.push(Diagnostic::error(
                            Code::ORPHANED_DATA,
                            format!("form `{}` is removed, but it holds {n} record(s)", old.id),
                            &at_form(&old.id),
                        ));
                    }
                    continue;
                };
                for field in &old.fields {
                    let kept = new.fields.iter().find(|f| f.id == field.id);
                    if kept.is_some_and(|k| k.kind == field.kind) {
                        continue;
                    }
                    let n = records::count_with_value(conn, &table, &field.id)?;
                    if n > 0 {
                        let what = if kept.is_some() { "changes type" } else { "is removed" };
                        orphans.push(Diagnostic::error(
                            Code::ORPHANED_DATA,
                            format!("field `{}.{}` {what}, but {n} record(s) hold a value in it", old.id, field.id),
                            &at_form(&old.id),
                        ));
                    }
                }
                for state in &old.states {
                    if new.states.iter().any(|s| s.id == state.id) {
                        continue;
                    }
                    let n = records::count_in_state(conn, &table, &state.id)?;
                    if n > 0 {
                        orphans.push(Diagnostic::error(
                            Code::ORPHANED_DATA,
                            format!("state `{}.{}` is removed, but {n} record(s) are in it", old.id, state.id),
                            &at_form(&old.id),
                        ));
                    }
                }
            }
        }
        if !orphans.is_empty() && !force {
            for d in &mut orphans {
                d.help = Some(
                    "keep it, move the records first, or install with --force to keep their data unreachable".into(),
                );
            }
            return Err(EngineError::Orphans(orphans));
        }
        let at = self.now();
        let source = serde_json::to_string(files).map_err(crate::store::StoreError::from)?;
        let tables: Vec<FormTable> = app.def.forms.iter().map(FormTable::of).collect();
        let orphaned: Vec<String> = orphans.iter().map(|d| d.message.clone()).collect();
        let revision = self.store.write(|tx| {
            for table in &tables {
                schema::sync_form_table(tx, table)?;
            }
            let revision = apps::save(tx, &id, &source, &at, actor, force && !orphaned.is_empty())?;
            let body = json!({"app": id, "revision": revision, "forced": !orphaned.is_empty(), "orphaned": orphaned,
                "source_hash": crate::store::sha256_hex(source.as_bytes())})
            .to_string();
            audit::append(
                tx,
                &NewEvent {
                    at: &at,
                    actor,
                    kind: "app.installed",
                    form: None,
                    record: None,
                    version: None,
                    body: &body,
                    data: None,
                    data_hash: None,
                },
            )?;
            Ok::<_, EngineError>(revision)
        })?;
        let report = InstallReport {
            app: id.clone(),
            revision,
            forms: app.def.forms.iter().map(|f| f.id.clone()).collect(),
            forced: !orphaned.is_empty(),
            warnings: loaded.diagnostics,
            orphaned,
        };
        self.apps.insert(id, Installed { app, revision });
        Ok(report)
    }
}
