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
//! ## Modules
//! - `yaml`: a position-keeping, bomb-proof YAML reader.
//! - `schema`: the JSON Schema check, with errors mapped to the offending key or value.
//! - `model`: the app language as Rust types.
//! - `check`: semantic checks (references, ids, durations, cron, cycles, scripts, templates).
//! - `script`: the hardened rhai engine.
//! - `timespec`: durations, cron schedules, time zones and dates.
//! - `templates`: the three bundled apps.
//! - `engine`: the [`Runtime`]: install, record rules, submit/update/act, history, CSV, members.
//! - `store`: every SQL statement: tables, records, the audit chain, members, checkpoints.
//! - `values`: what a field's value may be; CSV cells in and out.
//! - `clock`: the injected clock.
//! - `http`: the HTTP API (events from other systems) over a bounded pool of engine workers.
//!
//! ## Cargo features
//! - `http` (default): the `http` module, on axum. Without it the library has no HTTP server
//!   code; the CLI's `closeloop serve` needs it.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod calendar;
mod check;
pub mod clock;
pub mod diagnostic;
pub mod engine;
#[cfg(feature = "http")]
pub mod http;
mod loader;
pub mod model;
pub mod pdf;
pub mod qr;
pub mod schema;
pub mod script;
pub mod store;
mod suggest;
pub mod templates;
pub mod timespec;
pub mod transport;
pub mod values;
pub mod yaml;

pub use diagnostic::{Code, Diagnostic, Location, Severity};
pub use engine::{EngineError, ErrorKind, Record, Runtime};
pub use loader::{read_app, App, AppFiles, Loaded, Loader, LoaderError};
pub use schema::SCHEMA_JSON;
pub use templates::{template, templates, Template};
