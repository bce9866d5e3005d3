//! RELIABILITY S9: random scripts through the runtime's own script engine, with the host API
//! registered over a real database of leads, so host calls with good, odd and hostile arguments
//! are part of the soup. No script may panic or abort the engine; every run ends in a value
//! or a fault. 300 scripts by default; the soak is
//! `CLOSELOOP_FUZZ_CASES=1000000 cargo test --release -p closeloop --lib s9_`.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rhai::Scope;

use crate::clock::ManualClock;
use crate::script::{compile, run_in, RunContext};
use crate::store::Store;
use crate::{template, Runtime};

const TOKENS: &[&str] = &[
    "let",
    "x",
    "=",
    "1",
    "\"客户\"",
    "[]",
    "#{}",
    ";",
    "+",
    "*",
    "-",
    "/",
    "%",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "if",
    "else",
    "while",
    "loop",
    "for",
    "in",
    "break",
    "return",
    "fn",
    "f",
    "|",
    "x.len()",
    "x.push(x)",
    "switch",
    "=>",
    "_",
    "throw",
    "try",
    "catch",
    "?",
    "?.",
    "..",
    "..=",
    "`${x}`",
    "this",
    "now()",
    "today()",
    "days_since(today())",
    "days_since(\"2026-13-45\")",
    "days_between(\"2026-01-01\", x)",
    "start_of_month(now())",
    "add_business_days(today(), 5)",
    "add_business_days(x, 99999999)",
    "members(#{})",
    "members(#{role: \"sales_rep\"})",
    "members(#{region: x})",
    "open_count(\"m_li\", \"lead\", [\"new\"], \"2026-01-01\")",
    "open_count(x, \"nope\", [], x)",
    "lookup(\"lead\", \"phone\", \"13800138001\")",
    "lookup(\"lead\", \"region\", x)",
    "lookup(\"quote\", \"id\", 1)",
    "lookup_latest(\"lead\", #{region: \"east\"}, \"created_at\")",
    "lookup_latest(\"lead\", #{phone: x}, \"x\")",
    "history()",
    "record",
    "record.region",
    "record.phone",
    "record[\"customer\"]",
    "print(x)",
    "debug(record)",
];

/// Expressions that parse, so most scripts run and reach the host functions.
const ATOMS: &[&str] = &[
    "x",
    "1",
    "-1",
    "0",
    "9223372036854775807",
    "1.5",
    "\"\"",
    "\"客户\"",
    "\"2026-11-02\"",
    "()",
    "true",
    "[]",
    "#{}",
    "record",
    "record.region",
    "record.phone",
    "now()",
    "today()",
    "days_since(today())",
    "days_since(\"2026-13-45\")",
    "days_between(\"2026-01-01\", today())",
    "start_of_month(now())",
    "add_business_days(today(), 5)",
    "add_business_days(today(), -4000)",
    "members(#{})",
    "members(#{role: \"sales_rep\"})",
    "members(#{region: \"east\"})",
    "open_count(\"m_li\", \"lead\", [\"new\"], \"2026-01-01\")",
    "open_count(\"m_li\", \"nope\", [], \"x\")",
    "lookup(\"lead\", \"phone\", \"13800138001\")",
    "lookup(\"lead\", \"region\", \"east\")",
    "lookup(\"quote\", \"id\", 1)",
    "lookup_latest(\"lead\", #{region: \"east\"}, \"created_at\")",
    "lookup_latest(\"lead\", #{phone: \"1\"}, \"phone\")",
    "history()",
];
const OPS: &[&str] = &["+", "-", "*", "/", "%", "==", "!=", "<", "&&", "??", "in"];

fn expression() -> impl Strategy<Value = String> {
    let atom = || proptest::sample::select(ATOMS).prop_map(str::to_string);
    prop_oneof![
        atom(),
        (atom(), proptest::sample::select(OPS), atom()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        (atom(), atom()).prop_map(|(a, b)| format!("[{a}, {b}]")),
        atom().prop_map(|a| format!("#{{a: {a}}}")),
        atom().prop_map(|a| format!("{a}.len()")),
        atom().prop_map(|a| format!("{a}[0]")),
        atom().prop_map(|a| format!("`${{{a}}}`")),
    ]
}

fn statement() -> impl Strategy<Value = String> {
    let e = expression;
    prop_oneof![
        e().prop_map(|v| format!("let x = {v};")),
        e().prop_map(|v| format!("x = {v};")),
        (e(), e()).prop_map(|(c, v)| format!("if {c} {{ x = {v}; }} else {{ x = (); }}")),
        (0..50_i64, e()).prop_map(|(n, v)| format!("for i in 0..{n} {{ x = {v}; }}")),
        e().prop_map(|v| format!("print({v});")),
        e().prop_map(|v| format!("try {{ x = {v}; }} catch (err) {{ x = err; }}")),
        e().prop_map(|v| format!("fn f(a) {{ a }} x = f({v});")),
    ]
}

/// Mostly scripts built from statements that parse; a quarter token soup, for the parser.
fn soup() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (proptest::collection::vec(statement(), 1..8), expression())
            .prop_map(|(body, last)| format!("{}\n{last}", body.join("\n"))),
        1 => proptest::collection::vec(proptest::sample::select(TOKENS), 0..48).prop_map(|t| t.join(" ")),
    ]
}

fn cases() -> u32 {
    std::env::var("CLOSELOOP_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(300)
}

/// The lead template on a temporary file, with its team and one lead.
fn runtime() -> (Runtime, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("closeloop-s9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(ManualClock::new("2026-11-02T09:00:00+08:00".parse().unwrap_or_default()));
    let store = Store::open(&dir.join("s9.db")).unwrap_or_else(|e| panic!("{e}"));
    let mut rt = Runtime::open(store, clock).unwrap_or_else(|e| panic!("{e}"));
    let t = template("lead-followup").unwrap_or_else(|| panic!("no lead template"));
    rt.install(&t.app_files(), "system", false).unwrap_or_else(|e| panic!("{e}"));
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").map(|(_, s)| *s).unwrap_or_default();
    rt.import_members(members.as_bytes(), "system").unwrap_or_else(|e| panic!("{e}"));
    let lead =
        serde_json::json!({"source": "expo", "customer": "上海明远科技", "phone": "13800138001", "region": "east"});
    let lead = lead.as_object().cloned().unwrap_or_default();
    rt.submit("lead", lead, "m_li").unwrap_or_else(|e| panic!("{e}"));
    (rt, dir)
}

#[test]
fn s9_random_scripts_through_the_host_api_never_crash_the_engine() {
    let (rt, dir) = runtime();
    let record = rhai::serde::to_dynamic(serde_json::json!({"region": "east", "customer": "客户", "phone": "1"}))
        .unwrap_or_default();
    let context = RunContext {
        time_zone: "Asia/Shanghai".into(),
        app: Some("lead-followup".into()),
        form: Some("lead".into()),
        record: Some("LEAD-2026-00001".into()),
        ..RunContext::default()
    };
    let ran_count = std::cell::Cell::new(0_u32);
    let config = ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() };
    let outcome = proptest::test_runner::TestRunner::new(config).run(&soup(), |source| {
        if let Ok(ast) = compile(&rt.scripts, &source) {
            ran_count.set(ran_count.get() + 1);
            let mut scope = Scope::new();
            scope.push("x", rhai::Dynamic::from(1_i64));
            scope.push("record", record.clone());
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_in(&rt.scripts, &ast, &mut scope, Duration::from_millis(20), context.clone()).map(|_| ())
            }));
            prop_assert!(ran.is_ok(), "the engine panicked on: {source}");
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = outcome {
        panic!("{e}");
    }
    // Most scripts must get past the parser, or the host API was never exercised.
    assert!(ran_count.get() >= cases() / 4, "only {} of {} scripts ran", ran_count.get(), cases());
    eprintln!("s9: {} of {} scripts compiled and ran", ran_count.get(), cases());
}
