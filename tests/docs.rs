//! The docs name what exists: every row of the reliability table names tests that are there.

use crate::support::root;

/// Every `fn name(` in the Rust files under `dir`.
fn functions(dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            functions(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.extend(
                text.split("fn ").skip(1).filter_map(|rest| rest.split('(').next()).map(|n| n.trim().to_string()),
            );
        }
    }
}

#[test]
fn every_reliability_row_is_in_the_table_and_names_tests_that_exist() {
    let doc = std::fs::read_to_string(root().join("docs/reliability.md")).unwrap();
    let mut known = Vec::new();
    functions(&root().join("tests"), &mut known);
    functions(&root().join("runtime/src"), &mut known);
    let expected: Vec<String> =
        [("S", 10), ("Y", 9), ("D", 8), ("T", 8), ("A", 6), ("P", 4), ("L", 5), ("C", 2), ("U", 1), ("O", 2)]
            .iter()
            .flat_map(|(p, n)| (1..=*n).map(move |i| format!("{p}{i}")))
            .collect();
    let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| id ")).collect();
    let ids: Vec<String> = rows.iter().filter_map(|l| l.split('|').nth(1)).map(|c| c.trim().to_string()).collect();
    assert_eq!(ids, expected, "one row per RELIABILITY id, in order");
    for row in rows {
        let tests = row.split('|').nth(2).unwrap_or_default();
        for name in tests.split('`').skip(1).step_by(2).filter(|n| n.contains("::")) {
            let last = name.rsplit("::").next().unwrap_or_default();
            assert!(known.iter().any(|k| k == last), "docs/reliability.md names `{name}`, which is no test");
        }
    }
}
