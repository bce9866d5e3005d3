//! The real `closeloop` binary: output formats, exit codes, and the template commands.

use serde_json::Value;

use crate::support::{closeloop, root, stdout, TempDir};

#[test]
fn validate_accepts_the_templates_with_exit_0() {
    let out = closeloop(&[
        "validate",
        "app-templates/lead-followup",
        "app-templates/quote-approval/app.yaml",
        "app-templates/customer-success",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out).matches(": valid (").count(), 3);
}

#[test]
fn validate_points_at_the_token_with_a_caret_and_help_and_exits_1() {
    let out = closeloop(&["validate", "tests/data/invalid/misspelt-field-key.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let expected = "tests/data/invalid/misspelt-field-key.yaml:10:9: error[UNKNOWN_KEY]: unknown key \"requried\" in `forms[0].fields[0]`\n   |\n10 |         requried: true\n   |         ^^^^^^^^\n   = help: did you mean `required`?\n";
    assert!(text.starts_with(expected), "{text}");
    assert!(text.contains("invalid, 1 error"), "{text}");
}

#[test]
fn validate_speaks_chinese_under_a_chinese_locale_with_the_same_codes_and_positions() {
    let run = |locale: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_closeloop"))
            .args(["validate", "tests/data/invalid/misspelt-field-key.yaml", "tests/data/invalid/unknown-sop.yaml"])
            .current_dir(crate::support::root())
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env("LANG", locale)
            .output()
            .unwrap();
        (out.status.code(), stdout(&out))
    };
    let (en_code, en) = run("C.UTF-8");
    let (zh_code, zh) = run("zh_CN.UTF-8");
    assert_eq!((en_code, zh_code), (Some(1), Some(1)));
    // file:line:col and [CODE] of each diagnostic, as the two languages print them.
    let heads = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| {
                let (at, rest) = l.split_once(": ")?;
                let code = rest.split_once('[')?.1.split_once(']')?.0;
                Some((at.to_string(), code.to_string()))
            })
            .collect()
    };
    assert_eq!(heads(&zh), heads(&en));
    assert_eq!(heads(&zh).len(), 2, "{zh}");
    assert!(zh.contains("10:9: 错误[UNKNOWN_KEY]: `forms[0].fields[0]` 里有未知的键 \"requried\""), "{zh}");
    assert!(zh.contains("= 建议：是不是 `required`？") && zh.contains("未知的SOP `folow`"), "{zh}");
    assert!(zh.contains("misspelt-field-key.yaml：无效，1 个错误"), "{zh}");
    assert!(en.contains("error[UNKNOWN_KEY]: unknown key \"requried\"") && !en.contains("错误"), "{en}");
}

#[test]
fn a_refused_record_is_explained_in_chinese_field_by_field_under_a_chinese_locale() {
    let cli = crate::support::Cli::new("zh-refused", "2026-11-23T10:00:00+08:00");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    let data = r#"{"source":"expo","customer":"A","phone":"123","region":"mars"}"#;
    let out =
        cli.command(&["submit", "lead", "--as", "m_ops", "--data", data]).env("LANG", "zh_CN.UTF-8").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(said.starts_with("错误：输入有 2 个问题，什么都没有写入"), "{said}");
    assert!(said.contains("phone：联系人电话：\"123\" 不是有效的电话号码 [WRONG_TYPE]"), "{said}");
    assert!(said.contains("[NOT_AN_OPTION]"), "{said}");
    // Programs asking for JSON get it as before, in English.
    let json = cli
        .command(&["--format", "json", "submit", "lead", "--as", "m_ops", "--data", data])
        .env("LANG", "zh_CN.UTF-8")
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&json.stdout);
    assert!(json.contains("is not a phone number") && !json.contains("输入有"), "{json}");
    assert_eq!(cli.json(&["list", "lead"]).as_array().map(Vec::len), Some(0), "nothing was written");
}

#[test]
fn a_file_with_old_mac_line_breaks_shows_the_line_the_caret_is_under() {
    // Found by fuzzing: YAML counts a lone CR as a line break, so the diagnostic said line 10,
    // and the CLI, splitting on LF, printed no source line at all (or the wrong one).
    let text = std::fs::read_to_string(crate::support::root().join("tests/data/invalid/misspelt-field-key.yaml"))
        .unwrap()
        .replace('\n', "\r");
    let dir = std::env::temp_dir().join(format!("closeloop-cr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.yaml");
    std::fs::write(&file, text).unwrap();
    let out = closeloop(&["validate", file.to_str().unwrap()]);
    let said = stdout(&out);
    assert!(
        said.contains(":10:9: error[UNKNOWN_KEY]")
            && said.contains("10 |         requried: true\n   |         ^^^^^^^^"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn carets_line_up_under_chinese_text() {
    let out = closeloop(&["validate", "tests/data/invalid/bad-message-template.yaml"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let source = lines.iter().position(|l| l.starts_with("7 |")).unwrap_or_else(|| panic!("{text}"));
    let caret = lines[source + 1];
    // The offending `}` is character 34; the 33 before it include 新线索, two columns each.
    assert_eq!(caret.find('^'), Some("  | ".len() + 33 + 3), "{text}");
}

#[test]
fn validate_reports_every_path_and_fails_if_any_is_invalid() {
    let out = closeloop(&["validate", "app-templates/lead-followup", "tests/data/invalid/unknown-channel.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("app-templates/lead-followup: valid"), "{text}");
    assert!(text.contains("error[UNKNOWN_CHANNEL]"), "{text}");
}

#[test]
fn validate_json_is_an_array_of_diagnostics() {
    let out = closeloop(&["--format", "json", "validate", "tests/data/invalid/schema-and-semantic-together.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    let items = json.as_array().unwrap_or_else(|| panic!("not an array"));
    assert_eq!(items.len(), 2);
    for key in ["code", "severity", "message", "help", "file", "line", "column", "pointer"] {
        assert!(items.iter().all(|d| d.get(key).is_some()), "missing {key}: {json}");
    }
    assert_eq!(items[0]["code"], "UNKNOWN_KEY");
    assert_eq!(items[0]["pointer"], "/forms/0/fields/0/requried");
    assert_eq!(items[1]["code"], "UNKNOWN_FORM");
    assert_eq!((items[1]["line"].as_u64(), items[1]["column"].as_u64()), (Some(12), Some(35)));
    assert_eq!(items[1]["help"], "expected one of: `lead`");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(closeloop(&["validate"]).status.code(), Some(2));
    assert_eq!(closeloop(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(closeloop(&["--now", "yesterday", "schema"]).status.code(), Some(2));
}

#[test]
fn schema_prints_the_schema_file() {
    let out = closeloop(&["schema"]);
    let file = std::fs::read_to_string(root().join("schemas/app.schema.json")).unwrap_or_default();
    assert_eq!(stdout(&out), file);
    let written = std::env::temp_dir().join(format!("closeloop-schema-{}.json", std::process::id()));
    let out = closeloop(&["schema", "--out", written.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&written).unwrap(), file);
    let _ = std::fs::remove_file(&written);
}

#[test]
fn templates_lists_names_titles_and_descriptions() {
    let human = stdout(&closeloop(&["templates"]));
    for needle in ["lead-followup", "线索跟进 / Lead follow-up", "quote-approval", "customer-success"] {
        assert!(human.contains(needle), "{human}");
    }
    let json: Value = serde_json::from_str(&stdout(&closeloop(&["templates", "--format", "json"]))).unwrap_or_default();
    assert_eq!(json[0]["name"], "lead-followup");
    assert_eq!(json[2]["title"]["zh"], "客户成功");
    assert!(json[1]["description"]["en"].as_str().is_some_and(|d| d.contains("signed")));
}

#[test]
fn init_copies_a_template_that_then_validates() {
    let dir = TempDir::new("init");
    let target = dir.0.to_string_lossy().into_owned();
    let out = closeloop(&["init", &target, "--template", "quote-approval"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(dir.0.join("scripts/price_lines.rhai").is_file());
    assert!(dir.0.join("data/products.csv").is_file());
    assert_eq!(closeloop(&["validate", &target]).status.code(), Some(0));
    // An editor finds the schema the copy names, beside it.
    let yaml = std::fs::read_to_string(format!("{target}/app.yaml")).unwrap();
    assert!(yaml.starts_with("# yaml-language-server: $schema=app.schema.json\n"), "{yaml}");
    let schema = std::fs::read_to_string(format!("{target}/app.schema.json")).unwrap();
    assert_eq!(schema, std::fs::read_to_string(root().join("schemas/app.schema.json")).unwrap());
    // A second init into the same folder refuses rather than overwriting edits.
    let again = closeloop(&["init", &target, "--template", "quote-approval"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let unknown = closeloop(&["init", &format!("{target}-x"), "--template", "leads"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("lead-followup"));
}

#[test]
fn demo_simulates_a_month_on_a_file_that_verifies_and_the_same_seed_gives_the_same_month() {
    let dir = TempDir::new("demo");
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = dir.0.join("demo.db");
    let db_arg = db.to_str().unwrap();
    let run = || {
        let out = closeloop(&["--format", "json", "demo", "--out", db_arg, "--reps", "20", "--days", "10"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str::<Value>(&stdout(&out)).unwrap()
    };
    let first = run();
    let done = &first["simulated"];
    assert_eq!(done["reps"], 20);
    assert!(done["leads"].as_u64().unwrap() > 100 && done["quotes"].as_u64().unwrap() > 5, "{done}");
    assert!(done["signed"].as_u64().unwrap() > 0 && done["payments"].as_u64().unwrap() > 0, "{done}");
    // The report covers the three loops, from the log the month wrote.
    let metrics: Vec<&str> =
        first["report"]["metrics"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    for id in ["lead_first_followup", "quote_approval", "after_payment_touch"] {
        assert!(metrics.contains(&id), "{metrics:?}");
    }
    let lead =
        first["report"]["metrics"].as_array().unwrap().iter().find(|m| m["id"] == "lead_first_followup").unwrap();
    assert_eq!(lead["population"], done["leads"]);
    assert!(std::fs::read_to_string(db.with_extension("html")).unwrap().contains("<svg"));
    // The database stays to look around in, and its audit chain holds.
    let verify = closeloop(&["--db", db_arg, "audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
    // A second run replaces the demo's own file and draws the same month.
    let second = run();
    assert_eq!(first["simulated"], second["simulated"]);
    assert_eq!(first["report"]["metrics"], second["report"]["metrics"]);
    // Any other database is left alone.
    let other = dir.0.join("team.db");
    let other_arg = other.to_str().unwrap();
    closeloop(&["--db", other_arg, "install", "lead-followup"]);
    closeloop(&["--db", other_arg, "members", "import", "app-templates/lead-followup/data/members.csv"]);
    let refused = closeloop(&["demo", "--out", other_arg, "--reps", "5", "--days", "1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("left alone"));
}

#[test]
fn times_people_read_are_in_the_apps_zone_and_json_keeps_the_instant() {
    // A lead at 10:00 Beijing time is due for its first contact at 10:00 the next day; the
    // rep and the supervisor read 10:00 +08:00, not 02:00:00Z.
    let cli = crate::support::Cli::new("local-times", "2026-11-23T10:00:00+08:00");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    let lead = r#"{"source":"expo","customer":"上海明远科技","phone":"13800138001","region":"east","owner":"m_li"}"#;
    let id = cli.json(&["submit", "lead", "--data", lead, "--as", "m_li"])["id"].as_str().unwrap().to_string();
    let later = Some("2026-11-24T11:00:00+08:00");
    let tick = cli.ok_at(later, &["tick"]);
    assert!(tick.contains("due 2026-11-24 10:00 +08:00") && tick.contains("tick at 2026-11-24 11:00 +08:00"), "{tick}");
    assert!(!tick.contains("02:00:00"), "{tick}");
    let activity = cli.ok_at(later, &["activity", "lead", &id]);
    assert!(activity.lines().any(|l| l.starts_with("2026-11-2") && l.contains(" +08:00  ")), "{activity}");
    let board = cli.ok_at(later, &["board", "supervisor"]);
    assert!(board.contains(&id) && board.contains("since 2026-11-24 1"), "{board}");
    // JSON keeps the stored instant (RFC 3339) for programs.
    let json = cli.json_at(later, &["activity", "lead", &id]);
    assert!(json.to_string().contains("\"2026-11-24T03:00:00"), "{json}");
}

#[test]
fn install_with_sample_data_loads_the_team_and_each_seed_file_and_again_changes_nothing() {
    let cli = crate::support::Cli::new("sample-data", "2026-11-23T10:00:00+08:00");
    let first = cli.json(&["install", "quote-approval", "--with-sample-data"]);
    let files: Vec<&str> =
        first["sample_data"].as_array().unwrap().iter().map(|f| f["file"].as_str().unwrap()).collect();
    assert_eq!(
        files,
        ["data/members.csv", "data/products.csv", "data/customers.csv", "data/price_history.csv", "data/clauses.csv"]
    );
    let products = cli.query(r#"SELECT COUNT(*) FROM "rec_product""#, &[]);
    assert!(products > 0);
    // A second run finds everything in place: no record is added twice.
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    assert_eq!(cli.query(r#"SELECT COUNT(*) FROM "rec_product""#, &[]), products);
    // Without the flag nothing but the app is installed.
    let plain = crate::support::Cli::new("sample-data-none", "2026-11-23T10:00:00+08:00");
    let report = plain.json(&["install", "customer-success"]);
    assert!(report.get("sample_data").is_none(), "{report}");
    assert_eq!(plain.query(r#"SELECT COUNT(*) FROM "rec_account""#, &[]), 0);
}

#[test]
fn reimporting_a_file_whose_key_holds_a_link_matches_its_records_instead_of_failing_on_the_database() {
    // price_history is keyed by (customer, sku, date), customer a link written as the
    // customer's code. The second import looked the key up by the code, found nothing, and hit
    // the unique index: "database error: UNIQUE constraint failed".
    let cli = crate::support::Cli::new("link-key-reimport", "2026-11-23T10:00:00+08:00");
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    let file = crate::support::root().join("app-templates/quote-approval/data/price_history.csv");
    let again = cli.json(&["import", "price_history", file.to_str().unwrap()]);
    let report = &again["report"];
    assert_eq!((report["created"].as_u64(), report["rejected"].as_u64()), (Some(0), Some(0)), "{again}");
    assert_eq!(report["unchanged"], report["rows"], "{again}");
}

#[test]
fn a_two_working_hour_alert_waits_out_the_lunch_break_and_a_holiday() {
    let cli = crate::support::Cli::new("lunch-break", "2026-11-30T11:30:00+08:00");
    let app = r#"
app: {id: repairs, title: 维修接单, time_zone: Asia/Shanghai}
calendars:
  - id: store
    working_days: [mon, tue, wed, thu, fri]
    working_hours: [{start: "08:30", end: "12:00"}, {start: "13:30", end: "18:00"}]
    holidays: [2026-12-01]
forms:
  - id: job
    fields:
      - {id: car, type: text}
      - {id: urgency, type: text}
automations:
  - id: chase
    when: {timer: {form: job, after: 2 business hours, from: created_at}}
    do:
      - set: {urgency: red}
"#;
    std::fs::create_dir_all(cli.path("app")).unwrap();
    std::fs::write(cli.path("app/app.yaml"), app).unwrap();
    cli.ok(&["install", cli.path("app").to_str().unwrap()]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    // Monday 11:30: half an hour before lunch and an hour and a half after it: 15:00.
    cli.ok(&["submit", "job", "--data", r#"{"car":"卡罗拉 2019"}"#, "--as", "m_li"]);
    let early = cli.json_at(Some("2026-11-30T14:59:00+08:00"), &["tick"]);
    assert_eq!(early["timers"].as_array().unwrap().len(), 0, "{early}");
    let due = cli.ok_at(Some("2026-11-30T15:00:00+08:00"), &["tick"]);
    assert!(due.contains("fired") && due.contains("due 2026-11-30 15:00 +08:00"), "{due}");
    // Monday 17:00: an hour to close, Tuesday a holiday, so Wednesday 09:30.
    cli.ok_at(Some("2026-11-30T17:00:00+08:00"), &["submit", "job", "--data", r#"{"car":"帕萨特"}"#, "--as", "m_li"]);
    let tuesday = cli.json_at(Some("2026-12-01T17:00:00+08:00"), &["tick"]);
    assert_eq!(tuesday["timers"].as_array().unwrap().len(), 0, "{tuesday}");
    let wednesday = cli.ok_at(Some("2026-12-02T09:30:00+08:00"), &["tick"]);
    assert!(wednesday.contains("due 2026-12-02 09:30 +08:00"), "{wednesday}");
}

#[test]
fn a_car_model_missing_from_the_catalog_is_kept_and_flagged_or_refused_with_the_closest_model() {
    let cli = crate::support::Cli::new("lookup-miss", "2026-11-30T10:00:00+08:00");
    let app = |on_missing: &str| {
        format!(
            r#"
app: {{id: repairs, title: 维修接单, time_zone: Asia/Shanghai}}
boards: [{{id: service_desk}}]
forms:
  - id: car_model
    key: [name]
    fields:
      - {{id: name, type: text, required: true, unique: true}}
      - {{id: labour_rate, type: money}}
  - id: job
    fields:
      - id: model
        type: text
        lookup: {{form: car_model, key: name, fill: {{rate: labour_rate}}, on_missing: {on_missing}}}
      - {{id: rate, type: money}}
automations:
  - id: unknown_model
    when: {{created: job}}
    if: {{field: rate, empty: true}}
    do:
      - flag: {{board: service_desk, reason: 车型不在目录中}}
"#
        )
    };
    std::fs::create_dir_all(cli.path("app")).unwrap();
    std::fs::write(cli.path("app/app.yaml"), app("refuse")).unwrap();
    let dir = cli.path("app").display().to_string();
    cli.ok(&["install", &dir]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    cli.ok(&["submit", "car_model", "--data", r#"{"name":"卡罗拉 2019","labour_rate":180}"#, "--as", "m_ops"]);
    // Refused, with the catalog entry the rep meant.
    let (_, said) = cli.fails(&["submit", "job", "--data", r#"{"model":"卡罗拉2019"}"#, "--as", "m_li"]);
    assert!(said.contains(r#"did you mean "卡罗拉 2019""#), "{said}");
    // Kept: the intake is stored with the rate empty, and the service desk sees why.
    std::fs::write(cli.path("app/app.yaml"), app("keep")).unwrap();
    cli.ok(&["install", &dir]);
    let kept = cli.json(&["submit", "job", "--data", r#"{"model":"思域 2031"}"#, "--as", "m_li"]);
    assert!(kept["data"].get("rate").is_none(), "{kept}");
    let board = cli.ok(&["board", "service_desk"]);
    assert!(board.contains(kept["id"].as_str().unwrap()) && board.contains("车型不在目录中"), "{board}");
    // A model the catalog has still fills in.
    let known = cli.json(&["submit", "job", "--data", r#"{"model":"卡罗拉 2019"}"#, "--as", "m_li"]);
    assert_eq!(known["data"]["rate"].as_f64(), Some(180.0), "{known}");
}
