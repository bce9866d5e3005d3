//! # closeloop
//!
//! An embeddable low-code form-and-rule runtime. Ops staff describe an app in YAML (forms
//! and typed fields, states and actions, automations, assignment rules, approval chains, SOP
//! task templates, scores, boards, channels, message templates and metrics); closeloop
//! checks it and runs it.
//!
//! This crate is the library; the `closeloop` command is a thin layer over it.
//!
//! ## Loading an app
//!
//! Loading never stops at the first problem: it returns the app (when it has no errors)
//! together with *every* diagnostic, each with a stable code, a message, a help line, the
//! file, line and column, and a JSON pointer.
//!
//! ```
//! use closeloop::{AppFiles, Loader};
//!
//! let loader = Loader::new()?;
//! let files = AppFiles {
//!     app_yaml: "app:\n  id: demo\n  title: {zh: 演示, en: Demo}\nforms:\n  - id: lead\n    fields:\n      - id: customer\n        type: text\n        requried: true\n".into(),
//!     ..AppFiles::default()
//! };
//! let loaded = loader.load(&files);
//! assert!(loaded.app.is_none());
//! let d = &loaded.diagnostics[0];
//! assert_eq!(d.code.as_str(), "UNKNOWN_KEY");
//! assert_eq!((d.line, d.column), (9, 9));
//! assert_eq!(d.help.as_deref(), Some("did you mean `required`?"));
//! # Ok::<(), closeloop::LoaderError>(())
//! ```
//!
//! The bundled templates are embedded; [`templates()`] lists them and
//! [`Template::app_files`] gives their files ready for [`Loader::load`].
//!
//! ## Running records
//!
//! A [`Runtime`] runs installed apps over a [`store::Store`] (one SQLite file, or memory for
//! tests) with an injected [`clock::Clock`]. Every write is one transaction: the record, its
//! new version and its hash-chained audit event, or nothing.
//!
//! ```
//! use std::sync::Arc;
//! use closeloop::{clock::ManualClock, store::Store, template, Runtime};
//! use serde_json::json;
//!
//! let clock = Arc::new(ManualClock::new("2026-11-26T09:00:00+08:00".parse()?));
//! let mut rt = Runtime::open(Store::open_in_memory()?, clock)?;
//! let app = template("lead-followup").expect("bundled");
//! rt.install(&app.app_files(), "system", false)?;
//! rt.import_members(b"id,name,roles,region,manager,active,capacity\nm_li,Li Wei,sales_rep,east,,true,30\n", "system")?;
//!
//! let lead = json!({"source": "expo", "customer": "Mingyuan Tech", "phone": "13800138001",
//!                   "region": "east", "owner": "m_li"});
//! let r = rt.submit("lead", lead.as_object().cloned().unwrap_or_default(), "m_li")?;
//! assert_eq!((r.id.as_str(), r.state.as_deref()), ("LEAD-2026-00001", Some("new")));
//!
//! let note = json!({"summary": "Called, interested", "next_step": "Demo on Monday"});
//! let r = rt.act("lead", &r.id, "contact", "m_li", note.as_object().cloned().unwrap_or_default())?;
//! assert_eq!((r.state.as_deref(), r.version), (Some("contacted"), 2));
//! assert_eq!(rt.history("lead", &r.id)?.len(), 2);
//! assert!(rt.verify_audit()?.problem.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What you name
//! The crate root is the façade: [`Loader`] and its [`Diagnostic`]s, [`Runtime`] with its
//! errors ([`EngineError`], [`ErrorKind`]) and the reports its methods return, the bundled
//! [`templates()`]. Public modules:
//! - `model`: the app language as Rust types, one to one with the JSON Schema.
//! - `store`: the [`store::Store`] handle (one SQLite file, or memory), queries
//!   ([`store::ListQuery`]) and the audit trail's [`store::Checkpoint`]; no SQLite type leaves it.
//! - `clock`: the injected clock ([`clock::SystemClock`], [`clock::ManualClock`]).
//! - `transport`: how messages leave; inject your own [`transport::Transport`] with
//!   [`Runtime::set_transport`].
//! - `http` (feature `http`): the HTTP API over a bounded pool of engine workers.
//! - `qr`: signing links as QR codes. `yaml`: the position-keeping, bomb-proof YAML reader.
//!   `script`: the hardened rhai sandbox rules run in.
//!
//! Everything else (the write gate, the domains, record rules, calendars) is private; the
//! surface is pinned by `tests/public_api.rs`, and ARCHITECTURE.md maps the inside.
//!
//! ## Cargo features
//! - `http` (default): the `http` module, on axum. Without it the library has no HTTP server
//!   code; the CLI's `closeloop serve` needs it.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

// The façade: the modules an embedder names are public (the app language, the clock, the
// store's handle and queries, transports, the HTTP API, QR codes, the position-keeping YAML
// reader and the script sandbox); everything else is private and its types used in the
// public API are re-exported here. `tests/public_api.rs` pins this surface.
mod calendar;
mod check;
pub mod clock;
mod diagnostic;
mod engine;
#[cfg(feature = "http")]
pub mod http;
mod i18n;
mod loader;
pub mod model;
mod pdf;
pub mod qr;
mod schema;
pub mod script;
pub mod store;
mod suggest;
mod templates;
mod timespec;
pub mod transport;
mod values;
pub mod yaml;

pub use diagnostic::{Code, Diagnostic, Location, Severity};
pub use engine::{
    assign, backoff, decode, guard, Absence, Activity, Anchor, ApprovalView, BoardItem, Change, ChannelView, Completed,
    CsvInput, Delivery, DeliveryOutcome, DeliveryReport, EngineError, ErrorKind, EventReport, EventsReport, Evidence,
    ExportOptions, FireOutcome, Fired, Graded, ImportOptions, ImportReport, InstallReport, MembersReport, NewSession,
    Principal, Progress, Record, RowProblem, Run, RunStatus, Runtime, Scored, Shown, SignLink, Signature, StepLog,
    StepView, Task, TickReport, TokenScope, Trial, TrialDetail, Version, Waiting, BACKOFF_BASE, BACKOFF_CAP,
    CHANNEL_BUDGET, LATE_AFTER, MAX_ATTEMPTS, MAX_CSV_BYTES, MAX_IMPORT_BYTES, MAX_IMPORT_ROWS, MAX_ROW_BYTES,
    SYSTEM_ACTORS,
};
pub use i18n::localize;
/// Action penetration and the article's other figures, computed from the event log: see
/// [`Runtime::penetration`] and [`Runtime::figures`].
pub mod reports {
    pub use crate::engine::{
        milestone_name, percent, to_csv, to_html, Breakdown, Falloff, FellOff, Figures, FiguresQuery, Group,
        HealthBucket, HealthDistribution, Instance, LowScore, MetricReport, Outcome, PenetrationReport, Reason,
        ReportQuery, SigningCycle, StepOverdue, SunkGroup, SunkLeads, Tally, TaskCompletion, TaskCounts, TaskLine,
        MIN_DECIDED,
    };
}
pub use loader::{read_app, App, AppFiles, Loaded, Loader, LoaderError};
pub use schema::{SchemaChecker, SCHEMA_JSON};
pub use store::{ApprovalStatus, OutboxStatus, StepStatus, TaskStatus, TimerStatus};
pub use templates::{template, templates, Template};
pub use values::{format_cell, FieldProblem};
