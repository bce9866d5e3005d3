//! Hostile scripts (RELIABILITY S1-S7): each stops with a clear error, within its budget, and the
//! process carries on. Scripts run through `closeloop::script::run`, the only way closeloop
//! evaluates one.

use std::time::{Duration, Instant};

use closeloop::script::{self, ScriptFault, ScriptLimits};
use rhai::Scope;

fn run(source: &str) -> Result<script::RunOutcome, ScriptFault> {
    let engine = script::engine(ScriptLimits::default());
    let ast = script::compile(&engine, source).unwrap_or_else(|e| panic!("{source}: {e:?}"));
    let started = Instant::now();
    let result = script::run(&engine, &ast, &mut Scope::new(), script::DEFAULT_DEADLINE).map_err(|(f, _)| f);
    // A hang guard, not a speed measurement: every hostile script stops in milliseconds.
    assert!(started.elapsed() < Duration::from_secs(5), "{source} ran for {:?}", started.elapsed());
    result
}

fn refused_at_compile(source: &str) -> bool {
    script::compile(&script::engine(ScriptLimits::default()), source).is_err()
}

#[test]
fn s1_endless_loops_stop_on_the_operation_budget_or_the_deadline() {
    for source in
        ["loop {}", "while true {}", "let i = 0; loop { i += 1; }", "for x in 0..1000000000 { let y = x * 2; }"]
    {
        let fault = run(source).map(|o| panic!("{source} finished: {o:?}")).unwrap_err();
        assert!(matches!(fault, ScriptFault::TooManyOperations | ScriptFault::Deadline(_)), "{source}: {fault:?}");
    }
}

#[test]
fn s2_sleep_does_not_exist() {
    for source in ["sleep(100000)", "sleep(1e9)"] {
        match run(source).unwrap_err() {
            ScriptFault::Runtime { message, .. } => assert!(message.contains("sleep"), "{message}"),
            other => panic!("{source}: {other:?}"),
        }
    }
}

#[test]
fn s3_endless_recursion_hits_the_call_depth() {
    assert_eq!(run("fn f() { f() } f()").unwrap_err(), ScriptFault::TooDeep);
    let closure = run("let f = |g| g.call(g); f.call(f)").unwrap_err();
    assert!(matches!(closure, ScriptFault::TooDeep | ScriptFault::TooManyOperations), "{closure:?}");
}

#[test]
fn s4_deep_nesting_is_a_parse_error_not_a_stack_overflow() {
    assert!(refused_at_compile(&format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000))));
    assert!(refused_at_compile(&format!("{}{}", "|| {".repeat(10_000), "}".repeat(10_000))));
    assert!(refused_at_compile(&format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000))));
}

#[test]
fn s5_huge_strings_arrays_and_variables_hit_their_limits() {
    for source in
        ["let s = \"x\"; loop { s += s; }", "let a = [1]; loop { a += a; }", "let a = [1]; loop { a = [a, a]; }"]
    {
        assert!(matches!(run(source).unwrap_err(), ScriptFault::TooLarge(_)), "{source}");
    }
    // One item at a time may run out of operations or time first.
    for source in ["let a = []; loop { a.push(1); }", "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }"] {
        let fault = run(source).unwrap_err();
        let stopped =
            matches!(fault, ScriptFault::TooLarge(_) | ScriptFault::TooManyOperations | ScriptFault::Deadline(_));
        assert!(stopped, "{source}: {fault:?}");
    }
    let many: String = (0..10_000).map(|i| format!("let v{i} = {i};\n")).collect();
    assert!(matches!(run(&many).unwrap_err(), ScriptFault::TooLarge(_)));
}

#[test]
fn s5_doubling_costs_no_more_than_an_endless_loop() {
    // RELIABILITY S5: the data-size error comes before the memory. Each bomb runs in a process
    // of its own beside `loop {}` (stopped by the operation budget or the deadline), measured
    // the same way in the same test: no more time, and a peak under 64 MiB above where it began.
    const TEST: &str = "sandbox::s5_doubling_costs_no_more_than_an_endless_loop";
    let compiled = |source: &'static str| {
        move || {
            let engine = script::engine(ScriptLimits::default());
            let ast = script::compile(&engine, source).unwrap();
            (engine, ast)
        }
    };
    let go = |(engine, ast): (rhai::Engine, rhai::AST)| {
        std::hint::black_box(script::run(&engine, &ast, &mut Scope::new(), script::DEFAULT_DEADLINE).is_err());
    };
    let endless = crate::support::cost_alone(TEST, "loop", compiled("loop {}"), go);
    for (label, source) in [
        ("string", "let s = \"x\"; loop { s += s; }"),
        ("array", "let a = [1]; loop { a += a; }"),
        ("nested", "let a = [1]; loop { a = [a, a]; }"),
    ] {
        let bomb = crate::support::cost_alone(TEST, label, compiled(source), go);
        assert!(bomb.micros <= endless.micros + endless.micros / 2, "{source}: {bomb:?}; loop {{}}: {endless:?}");
        if let Some(kib) = bomb.peak_above_kib {
            assert!(kib < 64 * 1024, "{source} raised the peak by {kib} KiB");
        }
    }
}

#[test]
fn s6_s7_import_and_eval_are_refused_before_running() {
    for source in [
        "import \"/etc/passwd\" as p;",
        "import \"../../secrets\" as s; s::x",
        "eval(\"1 + 1\")",
        "let e = eval; e(\"1\")",
    ] {
        assert!(refused_at_compile(source), "{source}");
    }
}

#[test]
fn print_goes_to_the_run_log_and_errors_point_into_the_script() {
    let engine = script::engine(ScriptLimits::default());
    let ast = script::compile(&engine, "print(\"hello\");\ndebug(42);\n40 + 2").unwrap();
    let outcome = script::run(&engine, &ast, &mut Scope::new(), script::DEFAULT_DEADLINE).unwrap();
    assert_eq!(outcome.value.as_int().unwrap(), 42);
    assert_eq!(outcome.log[0], "hello");
    assert!(outcome.log[1].ends_with("42"), "{:?}", outcome.log);
    assert!(outcome.operations > 0);
    let ast = script::compile(&engine, "let x = 1;\nlet y = x.no_such_method();\n").unwrap();
    match script::run(&engine, &ast, &mut Scope::new(), script::DEFAULT_DEADLINE).unwrap_err().0 {
        ScriptFault::Runtime { line, .. } => assert_eq!(line, 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failing_computed_field_leaves_the_record_stored_and_the_process_alive() {
    use std::sync::Arc;

    let yaml = "app: {id: t, title: T}\nforms:\n  - id: f\n    fields:\n      - {id: a, type: integer}\n      - {id: spin, type: computed, expression: \"\\\"x\\\".pad(100000000, \\\"y\\\")\"}\n";
    let files = closeloop::AppFiles { app_yaml: yaml.into(), ..closeloop::AppFiles::default() };
    let store = crate::support::fresh_store();
    let clock = Arc::new(closeloop::clock::ManualClock::new("2026-11-26T09:00:00Z".parse().unwrap()));
    let mut rt = closeloop::Runtime::open(store, clock).unwrap();
    rt.install(&files, "system", false).unwrap();
    let started = Instant::now();
    let r = rt.submit("f", serde_json::json!({"a": 1}).as_object().cloned().unwrap(), "system").unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!r.data.contains_key("spin"), "the failed value is left empty, the record kept");
}

// RELIABILITY S9 runs in the library, where the runtime's own engine with the host API is at
// hand: `runtime/src/engine/fuzz_scripts.rs`.
