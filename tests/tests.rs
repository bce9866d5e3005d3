//! closeloop's end-to-end tests, compiled into one binary (`cargo test` runs them all).
//!
//! - `access`: who may read which records and fields, on every read path (P1, P2).
//! - `api_v1`: `/api/v1` over real HTTP: sign-in, permissions, CSRF, If-Match, tokens, lockout.
//! - `identity`: sessions end on time, at a new password and at a deactivation (clock injected).
//! - `browser`: pages in real Chromium through WebDriver: the customer's signing page.
//! - `assign`: assignment through the lead template, and the pickers' invariants.
//! - `corpus`: the YAML fixtures under `tests/data/`, each with its expected diagnostics.
//! - `templates`: the bundled apps load clean and keep the ids other parts rely on.
//! - `cli`: the real `closeloop` binary, its output formats and exit codes.
//! - `deploy`: the systemd unit verifies; the container's health check asks a real server.
//! - `crashes`: writes killed at random points leave one audit event per committed change (D6).
//! - `roundtrip`: any app definition survives serialize → load unchanged.
//! - `sandbox`: hostile scripts stop with clear errors (RELIABILITY S1-S7).
//! - `host`: the host API, health scores, and what scripts cannot do (S8).
//! - `http`: `closeloop serve` on loopback: tokens, limits, a burst of heavy events (S10).
//! - `import_stream`: CSV import as a stream: bounded memory, caps, rows named, cells verbatim.
//! - `hostile`: bombs, deep nesting and oversized input are refused quickly and cleanly.
//! - `approvals`: approval chains, signing links and the quote PDF.
//! - `audit_chain`: the chain covers what confers a right: approval events, faked rows, checkpoints.
//! - `delegation`: delegates of away approvers, and the audited override (A4).
//! - `docs`: the reliability table names every row and tests that exist.
//! - `duties`: separation of duties under races (a hundred approvers at once, A1) and overlaps (A6).
//! - `quote_logic`: quote pricing, last prices, and what finance sees.
//! - `readme`: the README's walk-through, run as written on a fresh database.
//! - `nodes`: five nodes on one PostgreSQL database under `kill -9` fire every timer once.
//! - `records`: the records engine through the library.
//! - `records_cli`: the engine through the binary and real files: tampering, big imports, crashes.
//! - `signing_key`: the signing key lives outside the database; old databases move it out.
//! - `sensitive`: sensitive fields stay out of exports and group chats.
//! - `outcomes`: what writes lead to, each named after what broke (owners, resets, hooks,
//!   grade scripts).
//! - `independent_schema`: a second JSON Schema implementation agrees the templates are valid.
//! - `write_gate`: final records, read-only cells and who may edit hold on every path that writes.
//! - `public_api`: the crate's public surface, pinned.
//! - `providers`: WeCom and DingTalk to one person, Aliyun and Tencent SMS, against stand-ins.
//! - `penetration`: action penetration from the event log of records written through the engine.
//! - `stories`: the repair-intake and contract-review apps ops staff wrote, end to end.
//! - `figures`: the article's other figures (leads sunk, signing cycle, overdue steps, SOP tasks,
//!   health) from the same log and the audited rows.

// Test helpers fail loudly: a panic with the offending fixture is the report.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod access;
mod api_v1;
mod approvals;
mod assign;
mod audit_chain;
mod automations;
mod browser;
mod cli;
mod corpus;
mod crashes;
mod delegation;
mod deploy;
mod docs;
mod duties;
mod figures;
mod host;
mod hostile;
mod http;
mod identity;
mod import_stream;
mod independent_schema;
mod nodes;
mod notifications;
mod one_flow;
mod outcomes;
mod penetration;
mod providers;
mod public_api;
mod quote_logic;
mod readme;
mod records;
mod records_cli;
mod roundtrip;
mod sandbox;
mod sensitive;
mod signing_key;
mod stories;
mod support;
mod templates;
mod write_gate;
