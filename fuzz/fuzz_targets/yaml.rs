//! closeloop's YAML reader on any text: no panic, no stack overflow on deep nesting, every
//! diagnostic inside the text, and a document that parsed can be turned into JSON and each of
//! its positions asked for.
#![no_main]

use closeloop::yaml::{parse, Limits};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (node, diagnostics) = parse("fuzz.yaml", text, Limits::default());
    // YAML's line breaks: CRLF, a lone CR, LF.
    let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
    common::assert_located(&diagnostics, "fuzz.yaml", lines);
    if let Some(node) = node {
        let json = node.to_json();
        if let Some(map) = json.as_object() {
            for key in map.keys().take(8) {
                let pointer = format!("/{}", closeloop::yaml::escape_segment(key));
                let pos = node.position(&pointer, true);
                assert!(pos.line >= 1, "{pointer} has line 0");
            }
        }
    }
});
