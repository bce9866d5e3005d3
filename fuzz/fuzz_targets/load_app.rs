//! `Loader::load` on any app: the input is `app.yaml`, then (after each 0xFF byte) a script
//! file, `scripts/s0.rhai`, `scripts/s1.rhai`… The loader must never panic, and every diagnostic
//! it gives points inside the file it names.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use closeloop::{AppFiles, Loader};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn loader() -> &'static Loader {
    static LOADER: OnceLock<Loader> = OnceLock::new();
    LOADER.get_or_init(|| Loader::new().unwrap_or_else(|e| panic!("the embedded schema is broken: {e}")))
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0xFF);
    let app_yaml = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let scripts: BTreeMap<String, String> = parts
        .enumerate()
        .map(|(i, s)| (format!("scripts/s{i}.rhai"), String::from_utf8_lossy(s).into_owned()))
        .collect();
    let files = AppFiles { dir: "fuzz".into(), app_yaml, scripts, ..AppFiles::default() };
    let loaded = loader().load(&files);
    // The caret is drawn under `sources`' line, split as a front end splits it: on LF.
    let file = files.app_file();
    let shown = loaded.sources.get(&file).map_or(1, |text| text.split('\n').count());
    common::assert_located(&loaded.diagnostics, &file, shown);
    if loaded.app.is_some() {
        assert!(loaded.diagnostics.iter().all(|d| d.severity != closeloop::Severity::Error));
    }
});
