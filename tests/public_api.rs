//! The public surface of the `closeloop` crate, pinned: what an embedder can name is the
//! façade in `runtime/src/lib.rs` (its public modules and its re-exports) and the re-exports of
//! the public `store` module. A change to either must change `tests/data/public_api.txt` in the
//! same commit, so the surface only moves on purpose. No public item names a rusqlite type.

use std::collections::BTreeSet;

use crate::support::root;

/// Every name the façade offers, compiled: a name that disappears breaks this file.
#[allow(unused_imports)]
mod names {
    pub use closeloop::clock::{stamp, Clock, ManualClock, SystemClock};
    pub use closeloop::store::{Checkpoint, DbErrorKind, ListQuery, Reader, SortOrder, Store, StoreError, Tx};
    pub use closeloop::transport::{Failure, Network, Outgoing, Settings, Transport};
    pub use closeloop::{
        assign, template, templates, App, AppFiles, ApprovalView, Code, Diagnostic, EngineError, ErrorKind,
        FieldProblem, ImportOptions, ImportReport, Loaded, Loader, Record, Runtime, Severity, TickReport,
    };
}

/// The `pub mod` and `pub use` lines of a Rust file, each as the names it makes public.
fn surface(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let mut out = BTreeSet::new();
    let mut statement = String::new();
    for raw in text.lines() {
        // Items defined at the top of the file: `pub struct Store`, `pub enum StoreError`, ….
        for kind in ["struct", "enum", "trait", "type", "const", "fn"] {
            if let Some(rest) = raw.strip_prefix(&format!("pub {kind} ")) {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.insert(format!("{path}: {kind} {name}"));
            }
        }
        let line = raw.trim();
        // An inline module (`pub mod reports {`): its name, then its `pub use` lines as any.
        if let Some(name) = line.strip_prefix("pub mod ").and_then(|l| l.strip_suffix('{')) {
            out.insert(format!("{path}: mod {}", name.trim()));
            continue;
        }
        if statement.is_empty() && !(line.starts_with("pub mod ") || line.starts_with("pub use ")) {
            continue;
        }
        statement.push_str(line);
        statement.push(' ');
        if !line.ends_with(';') {
            continue;
        }
        let s = std::mem::take(&mut statement);
        if let Some(name) = s.strip_prefix("pub mod ") {
            out.insert(format!("{path}: mod {}", name.trim().trim_end_matches(';')));
            continue;
        }
        let body = s.trim_start_matches("pub use ").trim().trim_end_matches(';');
        let (base, names) = match body.split_once('{') {
            Some((base, rest)) => (base.trim_end_matches("::"), rest.trim_end().trim_end_matches('}').to_string()),
            None => {
                let (base, name) = body.rsplit_once("::").unwrap_or(("", body));
                (base, name.to_string())
            }
        };
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            out.insert(format!("{path}: {base}::{name}"));
        }
    }
    out
}

#[test]
fn the_public_surface_changes_only_on_purpose() {
    let mut now: BTreeSet<String> = surface("runtime/src/lib.rs");
    now.extend(surface("runtime/src/store/mod.rs"));
    let pinned_path = root().join("tests/data/public_api.txt");
    let pinned: BTreeSet<String> = std::fs::read_to_string(&pinned_path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let added: Vec<&String> = now.difference(&pinned).collect();
    let removed: Vec<&String> = pinned.difference(&now).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "the public surface moved; if on purpose, update tests/data/public_api.txt\n  added: {added:?}\n  removed: {removed:?}"
    );
}

#[test]
fn no_public_item_names_a_rusqlite_type() {
    for entry in std::fs::read_dir(root().join("runtime/src/store")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let public = line.trim_start().starts_with("pub ") && !line.trim_start().starts_with("pub(");
            assert!(
                !(public && line.contains("rusqlite")),
                "{}:{}: a public item names rusqlite: {line}",
                path.display(),
                n + 1
            );
        }
    }
}

/// A store module speaks the store's own statement vocabulary (`store/sql.rs`), so the same
/// function runs on any backend: the database library is named only where connections are
/// opened (`mod.rs`) and where values cross into it (`sql.rs`).
#[test]
fn only_the_connection_and_the_statement_vocabulary_name_rusqlite() {
    let mut named = Vec::new();
    let mut stack = vec![root().join("runtime/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read_to_string(&path).unwrap().contains("rusqlite") {
                named.push(path.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    named.sort();
    assert_eq!(named, ["runtime/src/store/mod.rs", "runtime/src/store/sql.rs"]);
}
