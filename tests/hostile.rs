//! Hostile and oversized input (RELIABILITY Y1, Y2, Y4, Y5, Y6): refused with a clear code,
//! never a hang, a crash or a stack overflow.

use closeloop::{AppFiles, Code, Loaded, Loader};

fn load(text: &str) -> Loaded {
    Loader::new()
        .unwrap_or_else(|e| panic!("{e}"))
        .load(&AppFiles { app_yaml: text.to_string(), ..AppFiles::default() })
}

fn codes(loaded: &Loaded) -> Vec<Code> {
    loaded.diagnostics.iter().map(|d| d.code).collect()
}

/// The classic nine-level billion laughs: 9^9 strings if expanded.
fn billion_laughs() -> String {
    let mut s = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for w in names.windows(2) {
        s.push_str(&format!("{}: &{} [{}]\n", w[1], w[1], vec![format!("*{}", w[0]); 9].join(",")));
    }
    s
}

#[test]
fn y1_billion_laughs_is_refused_by_the_alias_budget() {
    assert_eq!(codes(&load(&billion_laughs())), [Code::YAML_ALIAS_LIMIT]);
}

#[test]
fn y1_a_one_mebibyte_bomb_is_refused() {
    // Many anchors each expanding the previous one, padded to 1 MiB.
    let mut s = billion_laughs();
    s.push_str(&format!("# {}\n", "x".repeat(1024 * 1024 - s.len())));
    assert!(s.len() >= 1024 * 1024);
    assert_eq!(codes(&load(&s)), [Code::YAML_ALIAS_LIMIT]);
}

#[test]
fn y2_twenty_thousand_deep_flow_nesting_is_refused() {
    let seq = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    assert_eq!(codes(&load(&seq)), [Code::YAML_TOO_DEEP]);
    let map = format!("{}1{}", "{a: ".repeat(20_000), "}".repeat(20_000));
    assert_eq!(codes(&load(&map)), [Code::YAML_TOO_DEEP]);
}

#[test]
fn y2_deep_block_nesting_is_refused() {
    let mut s = String::new();
    for i in 0..1_000 {
        s.push_str(&" ".repeat(i));
        s.push_str("a:\n");
    }
    assert_eq!(codes(&load(&s)), [Code::YAML_TOO_DEEP]);
}

#[test]
fn oversized_definitions_are_refused_before_parsing() {
    let s = format!("app: {{id: x, title: x}}\n# {}\n", "x".repeat(3 * 1024 * 1024));
    assert_eq!(codes(&load(&s)), [Code::FILE_TOO_LARGE]);
}

#[test]
fn y4_nothing_is_activated_from_a_partly_valid_app() {
    // One good form and one bad key: no app comes back at all.
    let loaded = load("app: {id: x, title: x}\nforms:\n  - id: lead\n    fields: [{id: a, type: text}]\nextra: 1\n");
    assert!(loaded.app.is_none());
    assert_eq!(codes(&loaded), [Code::UNKNOWN_KEY]);
}

#[test]
fn y5_field_patterns_use_a_linear_time_engine() {
    // `(a+)+$` against "aaaa…!" takes exponential time in a backtracking engine. The loader
    // accepts the pattern because the linear engine that will check input runs it safely.
    let loaded =
        load("app: {id: x, title: x}\nforms:\n  - id: f\n    fields: [{id: a, type: text, pattern: \"(a+)+$\"}]\n");
    assert!(loaded.app.is_some(), "{:#?}", loaded.diagnostics);
    let re = regex::Regex::new("(a+)+$").unwrap_or_else(|e| panic!("{e}"));
    assert!(!re.is_match(&format!("{}!", "a".repeat(40))));
}

#[test]
fn y6_huge_repetitions_are_load_time_errors() {
    let loaded = load(
        "app: {id: x, title: x}\nforms:\n  - id: f\n    fields: [{id: a, type: text, pattern: \"a{0,1000000}\"}]\n",
    );
    assert_eq!(codes(&loaded), [Code::BAD_PATTERN]);
}

#[test]
fn non_utf8_files_are_named_not_crashed_on() {
    let dir = crate::support::TempDir::new("latin1");
    std::fs::create_dir_all(&dir.0).ok();
    std::fs::write(dir.0.join("app.yaml"), b"app: {id: x, title: \xe9t\xe9}\n").ok();
    let loaded = Loader::new().unwrap_or_else(|e| panic!("{e}")).load_path(&dir.0);
    assert_eq!(codes(&loaded), [Code::NOT_UTF8]);
}
