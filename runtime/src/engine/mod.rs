//! The records engine: installs apps into a store and runs their forms.
//!
//! [`Runtime`] is the embedding surface: open a [`Store`], give it a [`Clock`], install apps,
//! then submit, update, act on, read, list and trace records, keep the member directory, and
//! move records in and out as CSV. Every write is one transaction: the record, its version and
//! its audit event are stored together or not at all, and invalid input writes nothing.

// The engine by domain. The one loop among them is documented in ARCHITECTURE.md: an
// automation step calls a domain (approvals, sop, scoring, delivery), which writes records
// through `write`, which runs the automations that write set off.
pub(crate) mod approvals;
mod automations;
mod delivery;
mod host;
mod install;
mod people;
pub(crate) mod records;
mod reports;
mod scoring;
mod sop;
mod write;

pub use approvals::{ApprovalView, Shown, SignLink, Signature, StepView, Waiting};
pub use automations::event_csv::EventsReport;
pub use automations::{Activity, EventReport, FireOutcome, Fired, Run, RunStatus, StepLog, TickReport, LATE_AFTER};
pub use delivery::{
    backoff, Anchor, ChannelView, Delivery, DeliveryOutcome, DeliveryReport, Progress, BACKOFF_BASE, BACKOFF_CAP,
    CHANNEL_BUDGET, MAX_ATTEMPTS,
};
pub use install::InstallReport;
pub use people::{assign, Absence, NewSession, Principal, TokenScope};
pub use records::{
    decode, guard, BoardItem, CsvInput, ExportOptions, ImportOptions, ImportReport, MembersReport, RowProblem, Version,
    MAX_CSV_BYTES, MAX_IMPORT_BYTES, MAX_IMPORT_ROWS, MAX_ROW_BYTES,
};
pub use reports::{
    milestone_name, percent, to_csv, to_html, Breakdown, Falloff, FellOff, Figures, FiguresQuery, Group, HealthBucket,
    HealthDistribution, Instance, LowScore, MetricReport, Outcome, PenetrationReport, Reason, ReportQuery,
    SigningCycle, StepOverdue, SunkGroup, SunkLeads, Tally, TaskCompletion, TaskCounts, TaskLine, MIN_DECIDED,
};
pub use scoring::{Graded, Scored, Trial, TrialDetail};
pub use sop::{Completed, Evidence, Task};
pub use write::Change;
// The statuses the views above carry, where their users find them.

use std::collections::BTreeMap;
use std::sync::Arc;

use rhai::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::diagnostic::Diagnostic;
use crate::loader::{App, AppFiles, Loader};
use crate::model::{Form, Lang};
use crate::store::{FormTable, Retryable, Store, StoreError};
use crate::values::FieldProblem;

/// Actors that are not people: imports, other systems over the HTTP API (`api`), visitors of a
/// public page (`web`: a lead left on the website), and closeloop itself. They may create
/// records but hold no roles, so actions that name roles refuse them.
pub const SYSTEM_ACTORS: &[&str] = &["system", "import", "api", "web"];

/// What can go wrong when using the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No installed app has this form.
    #[error("there is no form `{form}`{hint}")]
    UnknownForm {
        /// The form asked for.
        form: String,
        /// " (did you mean ...?)" or the installed forms.
        hint: String,
    },
    /// No record with this id.
    #[error("{form} {id} does not exist")]
    NotFound {
        /// The form.
        form: String,
        /// The id asked for.
        id: String,
    },
    /// The actor is not in the member directory.
    #[error("`{0}` is not a member of the team")]
    UnknownMember(String),
    /// The actor has left.
    #[error("member `{0}` is not active")]
    InactiveMember(String),
    /// The input breaks the form's rules; nothing was written.
    #[error("{} problem(s) with the input; nothing was written", .0.len())]
    Invalid(Vec<FieldProblem>),
    /// An action was refused; nothing was written.
    #[error("{0}")]
    Refused(String),
    /// Someone else changed the record meanwhile.
    #[error("{form} {id} was changed by someone else meanwhile; read it again and retry")]
    Conflict {
        /// The form.
        form: String,
        /// The record.
        id: String,
    },
    /// The app does not load.
    #[error("the app has {} error(s)", .0.iter().filter(|d| d.is_error()).count())]
    InvalidApp(Vec<Diagnostic>),
    /// Installing this version would orphan stored data.
    #[error("installing this version would orphan stored data; fix the app or install with --force")]
    Orphans(Vec<Diagnostic>),
    /// A request that does not make sense (a filter on an unknown field, an unreadable file).
    #[error("{0}")]
    Input(String),
    /// An idempotency key came again with other data.
    #[error(
        "the idempotency key `{0}` was used before for another event or other data; use a new key for a new event"
    )]
    KeyReused(String),
    /// A CSV import found problems and imported nothing.
    #[error("{} problem(s) in the file; nothing was imported", .0.problems.len())]
    Import(Box<ImportReport>),
    /// No valid sign-in: a wrong password, an ended session, a revoked token.
    #[error("{0}")]
    Unauthorized(String),
    /// Too many failed sign-ins: the account or address waits.
    #[error("{0}")]
    Locked(String),
}

/// What kind of failure an [`EngineError`] is, for callers that answer it (the HTTP layer maps
/// them to 404, 403, 422, 400, 409, 503 and 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such form, record or match.
    NotFound,
    /// A rule or a permission says no (a final record, an action from the wrong state, an
    /// unknown or inactive actor, separation of duties).
    Refused,
    /// The data breaks the form's rules; each problem is named.
    Invalid,
    /// The request itself makes no sense (an unknown filter, an unreadable file).
    BadRequest,
    /// Someone else changed it meanwhile, or a key was used for something else.
    Conflict,
    /// The database stayed busy; try again.
    Busy,
    /// closeloop or its database failed.
    Internal,
    /// Nobody valid signed in (401).
    Unauthorized,
    /// Too many failed sign-ins; wait (429).
    Locked,
}

impl EngineError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Store(e) if e.is_busy() => ErrorKind::Busy,
            EngineError::Store(_) => ErrorKind::Internal,
            EngineError::UnknownForm { .. } | EngineError::NotFound { .. } => ErrorKind::NotFound,
            EngineError::UnknownMember(_) | EngineError::InactiveMember(_) | EngineError::Refused(_) => {
                ErrorKind::Refused
            }
            EngineError::Invalid(_) | EngineError::Import(_) | EngineError::InvalidApp(_) => ErrorKind::Invalid,
            EngineError::Input(_) => ErrorKind::BadRequest,
            EngineError::Conflict { .. } | EngineError::Orphans(_) | EngineError::KeyReused(_) => ErrorKind::Conflict,
            EngineError::Unauthorized(_) => ErrorKind::Unauthorized,
            EngineError::Locked(_) => ErrorKind::Locked,
        }
    }
}

impl Retryable for EngineError {
    fn is_busy(&self) -> bool {
        matches!(self, EngineError::Store(e) if e.is_busy())
    }
}

/// A record as the outside world sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// The readable id (`LEAD-2026-00042`).
    pub id: String,
    /// The form.
    pub form: String,
    /// 1 on creation, +1 per change.
    pub version: i64,
    /// The state, for forms with states.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The owner, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The field values.
    pub data: Map<String, Value>,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: String,
    /// Who created it.
    pub created_by: String,
    /// Who changed it last.
    pub updated_by: String,
}

/// An installed app, loaded and compiled.
pub(crate) struct Installed {
    pub app: App,
    pub revision: i64,
    /// How long one script run may take in this app: its own setting, capped store-wide.
    pub deadline: std::time::Duration,
    /// The app's message templates, compiled once: `MESSAGE.zh`, `MESSAGE.en.subject`, ….
    pub messages: minijinja::Environment<'static>,
    /// The app's working calendar, read once.
    pub calendar: crate::calendar::WorkCalendar,
    /// The app's time zone.
    pub zone: jiff::tz::TimeZone,
    /// Each form's table, in form order, worked out once.
    pub tables: Vec<FormTable>,
}

impl std::fmt::Debug for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installed").field("app", &self.app.def.app.id).field("revision", &self.revision).finish()
    }
}

impl Installed {
    pub fn new(app: App, revision: i64, deadline: std::time::Duration) -> Self {
        let mut messages = minijinja::Environment::new();
        messages.set_recursion_limit(16);
        crate::values::add_number_filters(&mut messages);
        for m in &app.def.messages {
            for lang in [Lang::Zh, Lang::En] {
                let code = if lang == Lang::Zh { "zh" } else { "en" };
                // The loader refused templates that do not compile; one missing here makes
                // its `notify` step fail with a clear error instead.
                let _ = messages.add_template_owned(format!("{}.{code}", m.id), m.text.get(lang).to_string());
                if let Some(subject) = &m.subject {
                    let _ =
                        messages.add_template_owned(format!("{}.{code}.subject", m.id), subject.get(lang).to_string());
                }
            }
        }
        approvals::messages::add_built_in(&mut messages, &app.def.messages);
        let calendar = crate::calendar::WorkCalendar::of_app(&app.def);
        let zone = crate::timespec::parse_time_zone(app.def.app.time_zone()).unwrap_or(jiff::tz::TimeZone::UTC);
        let tables = app.def.forms.iter().map(FormTable::of).collect();
        Installed { app, revision, deadline, messages, calendar, zone, tables }
    }
}

/// An app's script deadline: its `script_deadline_ms` (50 ms by default), never above the cap.
pub(crate) fn deadline(app: &App, cap: std::time::Duration) -> std::time::Duration {
    let wanted = app
        .def
        .app
        .script_deadline_ms
        .map(|ms| std::time::Duration::from_millis(u64::from(ms)))
        .unwrap_or(crate::script::DEFAULT_DEADLINE);
    wanted.min(cap)
}

/// The running engine over one store.
pub struct Runtime {
    store: Store,
    clock: Arc<dyn Clock>,
    loader: Loader,
    scripts: Engine,
    apps: BTreeMap<String, Installed>,
    host: Arc<host::Host>,
    deadline_cap: std::time::Duration,
    transport: Arc<dyn crate::transport::Transport>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("apps", &self.apps.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

/// A form of an installed app, with what running it needs.
#[derive(Clone, Copy)]
pub(crate) struct FormRef<'a> {
    pub app: &'a Installed,
    pub form: &'a Form,
    pub index: usize,
}

impl<'a> FormRef<'a> {
    /// The form's table (worked out when the app was admitted).
    pub fn table(&self) -> &'a FormTable {
        &self.app.tables[self.index]
    }

    pub fn lang(&self) -> Lang {
        self.app.app.def.app.language.unwrap_or(Lang::Zh)
    }

    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        self.app.zone.clone()
    }
}

impl Runtime {
    /// Opens the engine over a store, loading every installed app.
    pub fn open(store: Store, clock: Arc<dyn Clock>) -> Result<Self, EngineError> {
        let loader = Loader::new().map_err(|e| EngineError::Input(e.to_string()))?;
        let host = Arc::new(host::Host::new(store.read_only_connection()?, clock.clone()));
        let mut scripts = crate::script::engine(crate::script::ScriptLimits::default());
        host::register(&mut scripts, host.clone());
        let mut rt = Runtime {
            store,
            clock,
            loader,
            scripts,
            apps: BTreeMap::new(),
            host,
            deadline_cap: crate::script::DEFAULT_DEADLINE,
            transport: Arc::new(crate::transport::Network),
        };
        rt.refresh()?;
        // A database from before durable timers: arm the installed apps' schedules and the
        // timers of the records they already hold, once.
        if rt.store.opened_at_version() < crate::store::schema::TIMERS_SINCE && !rt.apps.is_empty() {
            let now = rt.clock.now();
            let at = crate::clock::stamp(now);
            let Runtime { store, apps, .. } = &mut rt;
            store.write(|tx| {
                for installed in apps.values() {
                    automations::arm_app(tx, &installed.app.def, now, &at)?;
                    automations::arm_existing(tx, &installed.app.def, &at)?;
                }
                Ok::<_, StoreError>(())
            })?;
        }
        Ok(rt)
    }

    /// Loads every app installed (or re-installed) since this runtime last looked, so a
    /// long-running scheduler acts on the definitions another process installed.
    pub fn refresh(&mut self) -> Result<(), EngineError> {
        let stored = crate::store::apps::revisions(self.store.reader())?;
        let stale: Vec<(String, i64)> = stored
            .into_iter()
            .filter(|(id, revision)| self.apps.get(id).map(|a| a.revision) != Some(*revision))
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        for stored in crate::store::apps::list(self.store.reader())? {
            if !stale.contains(&(stored.id.clone(), stored.revision)) {
                continue;
            }
            let files: AppFiles = serde_json::from_str(&stored.source).map_err(StoreError::from)?;
            let loaded = self.loader.load_installed(&files);
            let Some(app) = loaded.app else { return Err(EngineError::InvalidApp(loaded.diagnostics)) };
            self.admit(stored.id, app, stored.revision);
        }
        Ok(())
    }

    /// Takes a loaded app into the running set: its forms for host functions, its deadline, its
    /// compiled templates and calendar.
    pub(crate) fn admit(&mut self, id: String, app: App, revision: i64) {
        self.host_forms(&app.def);
        let deadline = deadline(&app, self.deadline_cap);
        self.apps.insert(id, Installed::new(app, revision, deadline));
    }

    /// Lets host functions name an app's forms.
    pub(crate) fn host_forms(&self, def: &crate::model::AppDef) {
        if let Ok(mut forms) = self.host.forms.write() {
            for form in &def.forms {
                let is_sensitive = |f: &&crate::model::Field| f.sensitive == Some(true);
                let sensitive = form.fields.iter().filter(is_sensitive).map(|f| f.id.clone()).collect();
                let sensitive_columns = form
                    .fields
                    .iter()
                    .flat_map(|t| t.columns.iter().flatten().filter(is_sensitive).map(|c| (t.id.clone(), c.id.clone())))
                    .collect();
                let table = FormTable::of(form);
                forms.insert(
                    form.id.clone(),
                    host::HostForm { app: def.app.id.clone(), table, sensitive, sensitive_columns },
                );
            }
        }
    }

    /// Sets the store-wide maximum time one script run may take (50 ms unless set). Apps may
    /// ask for less with `app.script_deadline_ms`, never for more.
    pub fn set_script_deadline_cap(&mut self, cap: std::time::Duration) {
        self.deadline_cap = cap;
        for installed in self.apps.values_mut() {
            installed.deadline = deadline(&installed.app, cap);
        }
    }

    /// Replaces how messages leave (closeloop's own network transports unless set): delivery
    /// hands every message to `transport`, on its delivery threads.
    pub fn set_transport(&mut self, transport: Arc<dyn crate::transport::Transport>) {
        self.transport = transport;
    }

    /// The store underneath, for checks such as `PRAGMA integrity_check`.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// "Now", from the injected clock, in the stored format.
    pub(crate) fn now(&self) -> String {
        crate::clock::stamp(self.clock.now())
    }

    /// The installed apps with their titles and forms (id and label): what a client shows to
    /// choose from.
    pub fn app_index(&self) -> serde_json::Value {
        let apps: Vec<serde_json::Value> = self
            .apps
            .values()
            .map(|a| {
                let def = &a.app.def;
                let forms: Vec<serde_json::Value> =
                    def.forms.iter().map(|f| serde_json::json!({"id": f.id, "label": f.label})).collect();
                serde_json::json!({"id": def.app.id, "title": def.app.title, "revision": a.revision,
                    "language": def.app.language, "forms": forms})
            })
            .collect();
        serde_json::Value::Array(apps)
    }

    /// The ids of the installed forms, app by app.
    pub fn form_ids(&self) -> Vec<String> {
        self.apps.values().flat_map(|a| a.app.def.forms.iter().map(|f| f.id.clone())).collect()
    }

    /// Installed apps: id and revision.
    pub fn apps(&self) -> Vec<(String, i64)> {
        self.apps.iter().map(|(id, a)| (id.clone(), a.revision)).collect()
    }

    /// The time zone people read `form`'s times in: its app's. Without a form (or for one no
    /// installed app has) the first installed app's, else UTC. Stored instants stay UTC; this is
    /// for showing them.
    pub fn zone_of(&self, form: Option<&str>) -> jiff::tz::TimeZone {
        let app =
            form.and_then(|f| records::find_form(&self.apps, f)).map(|f| f.app).or_else(|| self.apps.values().next());
        app.map_or(jiff::tz::TimeZone::UTC, |a| a.zone.clone())
    }

    /// A form by id, across installed apps.
    pub(crate) fn form(&self, id: &str) -> Result<FormRef<'_>, EngineError> {
        records::find_form(&self.apps, id).ok_or_else(|| records::unknown_form(&self.apps, id))
    }

    /// Every installed form's table, for audits.
    pub(crate) fn tables(&self) -> Vec<FormTable> {
        self.apps.values().flat_map(|a| a.app.def.forms.iter().map(FormTable::of)).collect()
    }

    /// Copies this installation (on its SQLite file) into `target`, an empty PostgreSQL
    /// database: apps, members, records, the audit trail, timers, tasks, the outbox and the
    /// settings, in one transaction. See [`Store::move_into`].
    pub fn move_into(&self, target: &mut Store) -> Result<crate::store::Moved, EngineError> {
        Ok(self.store.move_into(target, &self.tables())?)
    }

    /// Checks the audit chain, and every record, member, app, approval run, signing link, task
    /// done and channel setting against it.
    pub fn verify_audit(&self) -> Result<crate::store::Verification, EngineError> {
        Ok(crate::store::audit::verify(self.store.reader(), &self.tables(), None)?)
    }

    /// [`Runtime::verify_audit`], and that the chain still holds the checkpoint's event with its
    /// hash: fails when events after it were deleted below it, or the chain was rewritten.
    pub fn verify_audit_against(
        &self,
        checkpoint: &crate::store::Checkpoint,
    ) -> Result<crate::store::Verification, EngineError> {
        Ok(crate::store::audit::verify(self.store.reader(), &self.tables(), Some(checkpoint))?)
    }

    /// The chain's last event as a checkpoint to keep outside the database (`closeloop audit
    /// head`); [`Runtime::verify_audit_against`] checks the chain against it later.
    pub fn audit_head(&self) -> Result<crate::store::Checkpoint, EngineError> {
        Ok(crate::store::audit::head(self.store.reader())?)
    }

    /// The member directory.
    pub fn members(&self) -> Result<Vec<crate::store::MemberRow>, EngineError> {
        Ok(crate::store::members::list(self.store.reader())?)
    }
}

#[cfg(test)]
mod fuzz_scripts;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{AppFiles, Loader};

    fn app(extra: &str) -> crate::App {
        let yaml = format!("app: {{id: a, title: A{extra}}}\n");
        Loader::new().unwrap().load(&AppFiles { app_yaml: yaml, ..AppFiles::default() }).app.unwrap()
    }

    #[test]
    fn an_app_may_lower_its_script_deadline_but_never_exceed_the_cap() {
        let cap = Duration::from_millis(50);
        assert_eq!(super::deadline(&app(""), cap), Duration::from_millis(50));
        assert_eq!(super::deadline(&app(", script_deadline_ms: 10"), cap), Duration::from_millis(10));
        assert_eq!(super::deadline(&app(", script_deadline_ms: 5000"), cap), cap);
        assert_eq!(super::deadline(&app(""), Duration::from_millis(5)), Duration::from_millis(5));
    }
}
