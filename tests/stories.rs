//! The two field stories of issue 17, as apps an ops person wrote, run end to end through the
//! real binary on a real SQLite file: a car-parts chain's repair intake and a building-materials
//! contract review (`tests/data/stories/`).

use crate::support::Cli;

const REPAIR: &str = "tests/data/stories/repair-intake";
const CONTRACT: &str = "tests/data/stories/contract-review";

fn repair_shop(name: &str, now: &str) -> Cli {
    let cli = Cli::new(name, now);
    let said = cli.ok(&["install", REPAIR, "--with-sample-data"]);
    assert!(said.contains("data/car_models.csv: 4 rows"), "{said}");
    cli
}

fn intake(cli: &Cli, rep: &str, data: serde_json::Value) -> serde_json::Value {
    cli.json(&["submit", "repair", "--data", &data.to_string(), "--as", rep])
}

#[test]
fn five_typed_inputs_become_twelve_filled_fields_and_a_technician_of_the_rep_s_store() {
    let cli = repair_shop("story-intake", "2026-11-30T10:00:00+08:00");
    let typed = serde_json::json!({"plate": "沪A12345", "model": "卡罗拉 2019", "mileage": 29500,
        "complaint": "brake", "phone": "13800001111"});
    let order = intake(&cli, "r_xu", typed.clone());
    let data = order["data"].as_object().unwrap();
    let filled: Vec<&String> = data.keys().filter(|k| !typed.as_object().unwrap().contains_key(*k)).collect();
    assert!(filled.len() >= 11, "only {} filled: {filled:?}", filled.len());
    assert_eq!(data["brand"], "丰田");
    assert_eq!(data["estimate"].as_f64(), Some(270.0), "180/h × 1.5 h");
    assert_eq!(data["service_due"], true, "29,500 km is within 1,000 km of the 30,000 km service");
    assert_eq!(data["plate_area"], "沪");
    assert_eq!(data["store"], "xuhui", "the store is the submitting rep's");
    assert_eq!(data["technician"], "t_xu1", "a technician of the rep's store");
    // The other store's rep gets the other store's technician, though t_pd1 has more load.
    let pudong = intake(
        &cli,
        "r_pd",
        serde_json::json!({"plate": "沪B1", "model": "思域 2022", "mileage": 100,
        "complaint": "engine", "phone": "13800002222"}),
    );
    assert_eq!(pudong["data"]["technician"], "t_pd1");
    assert_eq!(pudong["data"]["store"], "pudong");
    // A third Xuhui order goes to the Xuhui technician with less load.
    let third = intake(
        &cli,
        "r_xu",
        serde_json::json!({"plate": "沪C2", "model": "思域 2022", "mileage": 100,
        "complaint": "service", "phone": "13800003333"}),
    );
    assert_eq!(third["data"]["technician"], "t_xu2");
    // The intake script's print() is in the activity log, under the step that ran it.
    let activity = cli.ok(&["activity", "repair", order["id"].as_str().unwrap()]);
    assert!(activity.contains("print: 接单人 许前台，门店 xuhui，车型 卡罗拉 2019"), "{activity}");
}

#[test]
fn an_unknown_car_model_is_kept_with_its_catalog_fields_empty_and_flagged_for_the_service_desk() {
    let cli = repair_shop("story-unknown-model", "2026-11-30T10:00:00+08:00");
    let order = intake(
        &cli,
        "r_xu",
        serde_json::json!({"plate": "沪A9", "model": "卡罗拉2019", "mileage": 5000,
        "complaint": "brake", "phone": "13800001111"}),
    );
    let data = &order["data"];
    assert!(data.get("brand").is_none() && data.get("estimate").is_none(), "{order}");
    assert_eq!(data["technician"], "t_xu1", "the intake is still assigned");
    assert_eq!(data["priority"], "紧急", "fields that do not need the catalog are still filled");
    let desk = cli.ok(&["board", "service_desk", "--as", "ops1"]);
    assert!(desk.contains(order["id"].as_str().unwrap()) && desk.contains("车型不在目录中"), "{desk}");
}

#[test]
fn the_two_working_hour_alert_skips_the_lunch_break_and_a_holiday_and_reaches_only_that_store_s_board() {
    // Monday 11:30: half an hour before lunch, then 1.5 h after it: due 14:30.
    let cli = repair_shop("story-alert", "2026-11-30T11:30:00+08:00");
    let xuhui = intake(
        &cli,
        "r_xu",
        serde_json::json!({"plate": "沪A1", "model": "卡罗拉 2019", "mileage": 100,
        "complaint": "brake", "phone": "13800001111"}),
    );
    let pudong = intake(
        &cli,
        "r_pd",
        serde_json::json!({"plate": "沪B1", "model": "卡罗拉 2019", "mileage": 100,
        "complaint": "brake", "phone": "13800002222"}),
    );
    let early = cli.ok_at(Some("2026-11-30T14:29:00+08:00"), &["tick"]);
    assert!(early.contains("0 timer(s) due"), "{early}");
    let due = cli.ok_at(Some("2026-11-30T14:30:00+08:00"), &["tick"]);
    assert!(due.contains("2 个工作小时未开工"), "{due}");
    let board = |who: &str| cli.ok_at(Some("2026-11-30T15:00:00+08:00"), &["board", "store_watch", "--as", who]);
    let xu = board("mgr_xu");
    assert!(xu.contains(xuhui["id"].as_str().unwrap()) && !xu.contains(pudong["id"].as_str().unwrap()), "{xu}");
    let pd = board("mgr_pd");
    assert!(pd.contains(pudong["id"].as_str().unwrap()) && !pd.contains(xuhui["id"].as_str().unwrap()), "{pd}");
    // A front-desk rep holds no role the board is for.
    let (_, said) = cli.fails(&["board", "store_watch", "--as", "r_xu"]);
    assert!(said.contains("store_manager"), "{said}");
    // The operator holding the database sees every store's.
    let all = cli.ok_at(Some("2026-11-30T15:00:00+08:00"), &["board", "store_watch"]);
    assert!(all.contains("2 record(s)"), "{all}");

    // Friday 17:00: one hour Friday, Monday 12-07 is a holiday, one hour Tuesday: due 10:00.
    let friday = Cli::new("story-alert-holiday", "2026-12-04T17:00:00+08:00");
    friday.ok(&["install", REPAIR, "--with-sample-data"]);
    let late = intake(
        &friday,
        "r_xu",
        serde_json::json!({"plate": "沪A2", "model": "卡罗拉 2019", "mileage": 1,
        "complaint": "brake", "phone": "13800001111"}),
    );
    let before = friday.ok_at(Some("2026-12-08T09:59:00+08:00"), &["tick"]);
    assert!(before.contains("0 timer(s) due"), "{before}");
    let fired = friday.ok_at(Some("2026-12-08T10:00:00+08:00"), &["tick"]);
    assert!(fired.contains(late["id"].as_str().unwrap()) && fired.contains("2 个工作小时未开工"), "{fired}");
}

#[test]
fn a_prepaid_contract_goes_to_legal_with_a_summary_naming_the_share_and_the_risky_clauses() {
    let cli = Cli::new("story-contract", "2026-11-30T10:00:00+08:00");
    cli.ok(&["install", CONTRACT, "--with-sample-data"]);
    let contract = cli.json(&["submit", "contract", "--as", "rep_wang", "--data", r#"{"customer":"华东建工",
        "amount":1200000,"payment_terms":"prepay","prepay_pct":60,"clauses":[
        {"title":"逾期交货违约金","risk":"high"},{"title":"质保一年","risk":"low"},{"title":"独家供货","risk":"high"}]}"#]);
    let id = contract["id"].as_str().unwrap();
    // The dry run grades what a submit stores: every rule that held, with the contract's figures.
    let trial = cli.ok(&["script", "test", "contract_risk", "--record", id, "--as", "rep_wang"]);
    let summary = "高风险: 预付 60%（72 万元）; 高风险条款：逾期交货违约金、独家供货";
    assert!(trial.contains(summary) && trial.contains("3 rule(s) checked, 2 held"), "{trial}");
    let submitted = cli.json(&["act", "contract", id, "submit", "--as", "rep_wang"]);
    assert_eq!(submitted["data"]["risk"], "high");
    assert_eq!(submitted["data"]["risk_summary"], summary);
    cli.ok(&["approve", "contract", id, "--as", "mgr_chen"]);
    let outbox = cli.json(&["outbox"]);
    let legal: Vec<&serde_json::Value> = outbox.as_array().unwrap().iter().filter(|m| m["to"] == "legal_he").collect();
    assert_eq!(legal.len(), 1, "{outbox}");
    let body = legal[0]["body"].as_str().unwrap();
    // The app's own approval message, with money as people write it.
    assert!(body.starts_with("【法务审核】华东建工 合同"), "{body}");
    assert!(body.contains("金额 1,200,000.00 元") && body.contains(summary), "{body}");
}

#[test]
fn a_cash_on_delivery_contract_skips_legal() {
    let cli = Cli::new("story-cod", "2026-11-30T10:00:00+08:00");
    cli.ok(&["install", CONTRACT, "--with-sample-data"]);
    let contract = cli.json(&[
        "submit",
        "contract",
        "--as",
        "rep_wang",
        "--data",
        r#"{"customer":"浦江装饰","amount":50000,"payment_terms":"cod"}"#,
    ]);
    let id = contract["id"].as_str().unwrap();
    let submitted = cli.json(&["act", "contract", id, "submit", "--as", "rep_wang"]);
    assert_eq!(submitted["data"]["risk_summary"], "低风险: 货到付款");
    let decided = cli.ok(&["approve", "contract", id, "--as", "mgr_chen"]);
    assert!(decided.contains("approved") && decided.contains("legal          skipped"), "{decided}");
    assert_eq!(cli.json(&["get", "contract", id])["state"], "approved");
    let outbox = cli.json(&["outbox"]);
    assert!(outbox.as_array().unwrap().iter().all(|m| m["to"] != "legal_he"), "{outbox}");
}

#[test]
fn script_test_runs_the_form_s_lookups_and_computed_fields_first_and_tries_a_step_script() {
    let cli = repair_shop("story-script-test", "2026-11-30T10:00:00+08:00");
    // The step script, tried as the Xuhui rep: the lookup filled the catalog fields before it ran.
    let tried = cli.ok(&[
        "script",
        "test",
        "scripts/intake.rhai",
        "--as",
        "r_xu",
        "--data",
        r#"{"plate":"沪A1","model":"凯美瑞 2021","mileage":100,"complaint":"brake","phone":"13800001111"}"#,
    ]);
    assert!(tried.contains("step script scripts/intake.rhai on repair"), "{tried}");
    assert!(tried.contains(r#"would set store = "xuhui""#), "{tried}");
    assert!(tried.contains("print: 接单人 许前台，门店 xuhui，车型 凯美瑞 2021"), "{tried}");
    assert!(tried.contains("the form's rules filled") && tried.contains("brand"), "{tried}");
    // What a submit would refuse is said, not fatal.
    let partial =
        cli.ok(&["script", "test", "scripts/intake.rhai", "--as", "r_pd", "--data", r#"{"model":"思域 2022"}"#]);
    assert!(partial.contains("a submit would refuse plate") && partial.contains(r#"store = "pudong""#), "{partial}");
    assert_eq!(cli.query("SELECT count(*) FROM events WHERE kind = 'record.created' AND form = 'repair'", &[]), 0);

    // A grade on a computed field: the dry run computes it as a submit does.
    let contracts = Cli::new("story-script-test-grade", "2026-11-30T10:00:00+08:00");
    contracts.ok(&["install", CONTRACT, "--with-sample-data"]);
    let graded = contracts.ok(&[
        "script",
        "test",
        "contract_risk",
        "--as",
        "rep_wang",
        "--data",
        r#"{"customer":"华东建工","amount":1200000,"payment_terms":"prepay","prepay_pct":60}"#,
    ]);
    assert!(graded.contains("result: 高风险: 预付 60%（72 万元）"), "{graded}");
}
