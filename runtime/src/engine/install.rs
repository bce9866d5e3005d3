//! Installing an app, and installing a new version of it without orphaning stored data.

use serde::Serialize;
use serde_json::json;

use crate::diagnostic::{Code, Diagnostic, Location};
use crate::engine::{EngineError, Runtime};
use crate::loader::AppFiles;
use crate::model::AppDef;
use crate::store::{apps, audit, records, schema, FormTable, NewEvent, Reader, StoreError};

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
    /// Loads an app without installing it: its diagnostics, as `closeloop validate` shows them.
    pub(crate) fn check_app(&self, files: &AppFiles) -> crate::loader::Loaded {
        self.loader.load(files)
    }

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
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        let source = serde_json::to_string(files).map_err(crate::store::StoreError::from)?;
        let tables: Vec<FormTable> = app.def.forms.iter().map(FormTable::of).collect();
        let previous = self.apps.get(&id).map(|p| &p.app.def);
        let Runtime { store, .. } = self;
        // The checks run inside the install's own transaction, so no other process can add the
        // data they look for between the check and the change.
        let (revision, orphaned, team) = store.write(|tx| {
            let mut orphans = orphaned_data(tx, previous, &app.def, &at_form)?;
            let duplicates = new_duplicates(tx, &app.def, &at_form)?;
            if !duplicates.is_empty() {
                return Err(EngineError::InvalidApp(duplicates));
            }
            if !orphans.is_empty() && !force {
                for d in &mut orphans {
                    d.help = Some(
                        "keep it, move the records first, or install with --force to keep their data unreachable"
                            .into(),
                    );
                }
                return Err(EngineError::Orphans(orphans));
            }
            let orphaned: Vec<String> = orphans.iter().map(|d| d.message.clone()).collect();
            for table in &tables {
                schema::sync_form_table(tx, table)?;
            }
            let revision = apps::save(tx, &id, &source, &at, actor, !orphaned.is_empty())?;
            crate::engine::automations::tick::arm_app(tx, &app.def, now, &at)?;
            crate::engine::automations::arm_existing(tx, &app.def, &at)?;
            let body = json!({"app": id, "revision": revision, "forced": !orphaned.is_empty(), "orphaned": orphaned,
                "source_hash": crate::store::sha256_hex(source.as_bytes())})
            .to_string();
            audit::append(tx, &NewEvent::note(&at, actor, "app.installed", None, &body))?;
            // The team is read in the same transaction: once the install commits, nothing left
            // to do can fail and leave this runtime without the app the database holds.
            let team = crate::store::members::list(tx)?;
            Ok::<_, EngineError>((revision, orphaned, team))
        })?;
        let mut warnings = loaded.diagnostics;
        warnings.extend(unreachable(&team, &app.def, &file));
        let report = InstallReport {
            app: id.clone(),
            revision,
            forms: app.def.forms.iter().map(|f| f.id.clone()).collect(),
            forced: !orphaned.is_empty(),
            warnings,
            orphaned,
        };
        self.admit(id, app, revision);
        Ok(report)
    }
}

/// Warnings for the active members each channel of the app cannot reach: no phone for an
/// SMS channel, no WeCom userid for a `wecom_app` one. The app's people are the members holding
/// one of its roles (everyone, when it declares none).
pub(crate) fn unreachable(team: &[crate::store::MemberRow], def: &crate::model::AppDef, file: &str) -> Vec<Diagnostic> {
    let roles: Vec<&str> = def.roles.iter().map(|r| r.id.as_str()).collect();
    let people: Vec<&crate::store::MemberRow> = team
        .iter()
        .filter(|m| m.active && (roles.is_empty() || m.roles.iter().any(|r| roles.contains(&r.as_str()))))
        .collect();
    def.channels
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let column = crate::engine::delivery::notify::address_column(c.kind)?;
            let missing: Vec<&str> = people
                .iter()
                .filter(|m| crate::engine::delivery::notify::address_for(m, c.kind).is_none())
                .map(|m| m.id.as_str())
                .collect();
            if missing.is_empty() {
                return None;
            }
            let shown = missing.iter().take(5).copied().collect::<Vec<_>>().join(", ");
            let more = if missing.len() > 5 { format!(" and {} more", missing.len() - 5) } else { String::new() };
            let at = Location { file: file.to_string(), line: 1, column: 1, pointer: format!("/channels/{i}") };
            Some(
                Diagnostic::warning(
                    Code::MEMBER_UNREACHABLE,
                    format!(
                        "channel `{}` ({}) reaches members by their {column}; {} active member(s) have none: {shown}{more}",
                        c.id,
                        c.kind.as_str(),
                        missing.len()
                    ),
                    &at,
                )
                .with_help(format!("add a `{column}` column to the member CSV and import it again (closeloop members import)")),
            )
        })
        .collect()
}

/// Forms, fields (removed or retyped) and states of the installed version that stored records
/// still use but the new version drops.
fn orphaned_data(
    conn: &Reader,
    previous: Option<&AppDef>,
    new: &AppDef,
    at_form: &dyn Fn(&str) -> Location,
) -> Result<Vec<Diagnostic>, StoreError> {
    let mut out = Vec::new();
    for old in previous.map(|p| p.forms.as_slice()).unwrap_or_default() {
        let table = FormTable::of(old);
        if !records::table_exists(conn, &table)? {
            continue;
        }
        let Some(form) = new.forms.iter().find(|f| f.id == old.id) else {
            let n = records::count(conn, &table)?;
            if n > 0 {
                out.push(Diagnostic::error(
                    Code::ORPHANED_DATA,
                    format!("form `{}` is removed, but it holds {n} record(s)", old.id),
                    &at_form(&old.id),
                ));
            }
            continue;
        };
        for field in &old.fields {
            let kept = form.fields.iter().find(|f| f.id == field.id);
            if kept.is_some_and(|k| k.kind == field.kind) {
                continue;
            }
            let n = records::count_with_value(conn, &table, &field.id)?;
            if n > 0 {
                let what = if kept.is_some() { "changes type" } else { "is removed" };
                out.push(Diagnostic::error(
                    Code::ORPHANED_DATA,
                    format!("field `{}.{}` {what}, but {n} record(s) hold a value in it", old.id, field.id),
                    &at_form(&old.id),
                ));
            }
        }
        for state in old.states.iter().filter(|s| !form.states.iter().any(|n| n.id == s.id)) {
            let n = records::count_in_state(conn, &table, &state.id)?;
            if n > 0 {
                out.push(Diagnostic::error(
                    Code::ORPHANED_DATA,
                    format!("state `{}.{}` is removed, but {n} record(s) are in it", old.id, state.id),
                    &at_form(&old.id),
                ));
            }
        }
    }
    Ok(out)
}

/// Unique fields (and keys) whose stored records share values. Checked for every unique
/// field, not only those that become unique: older versions could lose a unique index to an
/// index name that collided, and such a database is answered with this diagnostic rather than
/// an SQL error.
fn new_duplicates(
    conn: &Reader,
    new: &AppDef,
    at_form: &dyn Fn(&str) -> Location,
) -> Result<Vec<Diagnostic>, StoreError> {
    let mut out = Vec::new();
    for form in &new.forms {
        let table = FormTable::of(form);
        if !records::table_exists(conn, &table)? {
            continue;
        }
        let mut groups: Vec<Vec<String>> =
            form.fields.iter().filter(|f| f.unique == Some(true)).map(|f| vec![f.id.clone()]).collect();
        if !form.key.is_empty() {
            groups.push(form.key.clone());
        }
        for group in groups {
            let fields: Vec<&str> = group.iter().map(String::as_str).collect();
            if let Some(example) = records::first_duplicate(conn, &table, &fields)? {
                out.push(
                    Diagnostic::error(
                        Code::CONFLICT,
                        format!("`{}` would have to be unique, but stored records share {example}", fields.join("+")),
                        &at_form(&form.id),
                    )
                    .with_help("make the stored values distinct first"),
                );
            }
        }
    }
    Ok(out)
}
