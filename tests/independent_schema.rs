//! A second, independent JSON Schema implementation (Python's `jsonschema`, with PyYAML)
//! validates every template against `schemas/app.schema.json`, so the schema is honest
//! standard draft-07 and not only what our validator accepts.

use std::process::Command;

use crate::support::root;

#[test]
fn python_jsonschema_accepts_every_template_and_rejects_a_broken_one() {
    let out = Command::new("python3")
        .arg("tests/schema_check.py")
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed for this test ({e}); `.ci/run` installs it"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tests/schema_check.py failed:\n{text}");
    for name in ["lead-followup", "quote-approval", "customer-success"] {
        assert!(text.contains(&format!("valid: app-templates/{name}/app.yaml")), "{text}");
    }
    assert!(text.contains("rejected as expected"), "{text}");
}
