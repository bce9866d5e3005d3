//! CSV import of leads on any bytes, all or nothing: no panic, and an import that fails leaves
//! every stored lead exactly as it was (the export before and after is byte for byte the same).
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use closeloop::clock::ManualClock;
use closeloop::store::Store;
use closeloop::{template, ImportOptions, Runtime};
use libfuzzer_sys::fuzz_target;

/// Past this many leads the database starts afresh, so each run stays fast.
const FRESH_AFTER: usize = 2_000;

fn fresh() -> Runtime {
    let dir = std::env::temp_dir().join(format!("closeloop-fuzz-csv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("temp folder: {e}"));
    let clock = Arc::new(ManualClock::new("2026-11-02T09:00:00+08:00".parse().unwrap_or_default()));
    let store = Store::open(&dir.join("fuzz.db")).unwrap_or_else(|e| panic!("store: {e}"));
    let mut rt = Runtime::open(store, clock).unwrap_or_else(|e| panic!("runtime: {e}"));
    let Some(t) = template("lead-followup") else { panic!("no lead-followup template") };
    rt.install(&t.app_files(), "system", false).unwrap_or_else(|e| panic!("install: {e}"));
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").map(|(_, text)| *text).unwrap_or_default();
    rt.import_members(members.as_bytes(), "system").unwrap_or_else(|e| panic!("members: {e}"));
    rt
}

fn runtime() -> &'static Mutex<Runtime> {
    static RT: OnceLock<Mutex<Runtime>> = OnceLock::new();
    RT.get_or_init(|| Mutex::new(fresh()))
}

fn export(rt: &Runtime) -> (usize, Vec<u8>) {
    let mut out = Vec::new();
    let rows = rt.export_csv("lead", &mut out).unwrap_or_else(|e| panic!("export: {e}"));
    (rows, out)
}

fuzz_target!(|data: &[u8]| {
    let mut rt = runtime().lock().unwrap_or_else(|e| e.into_inner());
    let (rows, before) = export(&rt);
    if rows > FRESH_AFTER {
        *rt = fresh();
    }
    let (_, before) = if rows > FRESH_AFTER { export(&rt) } else { (rows, before) };
    let imported = rt.import_csv("lead", data, &ImportOptions::default(), &mut |_| {});
    if imported.is_err() {
        let (_, after) = export(&rt);
        assert!(before == after, "a failed import changed what was stored");
    }
});
