//! Assignment through the lead template, and the pickers' invariants over random teams.

use std::collections::BTreeMap;

use closeloop::assign::{decide, Loads};
use closeloop::model::{AssignmentRule, Candidates, Pick, Preference};
use closeloop::store::{ListQuery, MemberRow};
use proptest::prelude::*;
use serde_json::json;

use crate::records::{leads, obj};

fn unowned(i: usize, region: &str) -> serde_json::Map<String, serde_json::Value> {
    obj(json!({"source": "expo", "customer": format!("客户{i}"), "phone": format!("137{i:08}"), "region": region}))
}

#[test]
fn fifty_leads_in_one_region_spread_evenly_over_its_active_reps() {
    let mut rt = leads();
    for i in 0..50 {
        let r = rt.submit("lead", unowned(i, "east"), "m_zhao").unwrap();
        assert!(
            ["m_li", "m_wang"].contains(&r.owner.as_deref().unwrap_or("")),
            "east reps only, m_chen is inactive: {r:?}"
        );
    }
    let all = rt.list("lead", &ListQuery::default()).unwrap();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &all {
        *counts.entry(r.owner.clone().unwrap_or_default()).or_default() += 1;
    }
    let (min, max) = (counts.values().min().copied().unwrap_or(0), counts.values().max().copied().unwrap_or(0));
    assert!(max - min <= 1, "{counts:?}");
    let history = rt.history("lead", &all[0].id).unwrap();
    assert!(history[0].notes[0].starts_with("to 李伟: region east"), "{:?}", history[0].notes);
}

#[test]
fn nobody_at_capacity_is_picked_and_a_region_without_reps_goes_to_the_queue() {
    let mut rt = leads();
    rt.import_members(b"id,capacity\nm_he,2\n", "system").unwrap();
    let owners: Vec<Option<String>> =
        (0..3).map(|i| rt.submit("lead", unowned(i, "west"), "m_zhao").unwrap().owner).collect();
    assert_eq!(
        owners,
        [Some("m_he".into()), Some("m_he".into()), None],
        "m_he, the only west rep, takes two and is full"
    );
    let queued = rt.list("lead", &ListQuery::default()).unwrap().pop().unwrap();
    let history = rt.history("lead", &queued.id).unwrap();
    assert!(history[0].notes[0].starts_with("to queue unassigned_leads"), "{:?}", history[0].notes);
    // …and is flagged on the supervisor board, the board that shows leads.
    let board = rt.board("supervisor").unwrap();
    assert_eq!(board.len(), 1);
    assert_eq!((board[0].record.as_str(), board[0].form.as_str()), (queued.id.as_str(), "lead"));
    assert!(board[0].reason.starts_with("to queue unassigned_leads"), "{}", board[0].reason);
    assert!(matches!(rt.board("nosuch"), Err(closeloop::EngineError::Input(_))));
    assert!(rt.verify_audit().unwrap().problem.is_none());
}

fn member(id: usize, role: &str, region: &str, capacity: Option<i64>, active: bool) -> MemberRow {
    MemberRow {
        id: format!("m{id:02}"),
        name: format!("M{id}"),
        roles: vec![role.to_string()],
        region: Some(region.to_string()),
        manager: None,
        active,
        capacity,
        email: None,
        phone: None,
        extra: serde_json::Map::new(),
        ..MemberRow::default()
    }
}

fn rule(pick: Pick, prefer: bool) -> AssignmentRule {
    AssignmentRule {
        id: "r".into(),
        label: None,
        form: "lead".into(),
        field: Some("owner".into()),
        candidates: Candidates {
            role: "rep".into(),
            r#match: [("region".to_string(), "region".to_string())].into_iter().collect(),
            active_only: None,
            under_capacity: None,
        },
        load: None,
        prefer: if prefer {
            vec![Preference { fewer_than: 2, states: vec!["new".into()], since: None }]
        } else {
            Vec::new()
        },
        pick,
        weight: None,
        by_field: None,
        script: None,
        fallback: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn pickers_choose_only_eligible_members_and_least_loaded_picks_a_minimum(
        team in proptest::collection::vec((0usize..3, proptest::option::of(0i64..6), any::<bool>(), 0u64..8), 0..8),
        pick in proptest::sample::select(vec![Pick::LeastLoaded, Pick::RoundRobin, Pick::Weighted]),
        prefer in any::<bool>(),
    ) {
        let regions = ["east", "west", "south"];
        let members: Vec<MemberRow> = team.iter().enumerate().map(|(i, (r, cap, active, _))| member(i, "rep", regions[*r], *cap, *active)).collect();
        let loads = Loads {
            open: team.iter().enumerate().map(|(i, (_, _, _, load))| (format!("m{i:02}"), *load)).collect(),
            preferences: vec![team.iter().enumerate().map(|(i, (_, _, _, load))| (format!("m{i:02}"), load / 2)).collect()],
            turns: BTreeMap::new(),
        };
        let record = obj(json!({"region": "east"}));
        let d = decide(&rule(pick, prefer), &record, &members, &loads);
        let eligible: Vec<&MemberRow> = members.iter().filter(|m| {
            m.active && m.region.as_deref() == Some("east") && m.capacity.is_none_or(|c| loads.open[&m.id] < c as u64)
        }).collect();
        match &d.member {
            None => prop_assert!(eligible.is_empty(), "nobody chosen although {:?} qualified", eligible.iter().map(|m| &m.id).collect::<Vec<_>>()),
            Some(id) => {
                prop_assert!(eligible.iter().any(|m| &m.id == id), "{id} was not eligible");
                if pick == Pick::LeastLoaded && !prefer {
                    let min = eligible.iter().map(|m| loads.open[&m.id]).min().unwrap_or(0);
                    prop_assert_eq!(loads.open[id], min);
                }
            }
        }
        // Deterministic: the same inputs give the same answer.
        prop_assert_eq!(decide(&rule(pick, prefer), &record, &members, &loads), d);
    }
}

#[test]
fn script_test_dry_runs_the_assignment_and_the_risk_grade() {
    let cli = crate::support::Cli::new("scripttest", "2026-11-26T09:00:00+08:00");
    let run = |args: &[&str]| cli.ok(args);
    run(&["install", "lead-followup"]);
    run(&["install", "quote-approval"]);
    run(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    let before = run(&["audit", "verify"]);
    let assign: serde_json::Value = serde_json::from_str(&run(&[
        "--format",
        "json",
        "script",
        "test",
        "lead_by_region",
        "--data",
        r#"{"region":"south"}"#,
    ]))
    .unwrap();
    assert_eq!(assign["detail"]["member"], "m_wu", "south: 周杰 and 吴婷 tie at 0, broken by id");
    assert!(assign["host_calls"].as_array().unwrap().len() >= 2 && assign["micros"].as_u64().is_some());
    let human = run(&["script", "test", "lead_by_region", "--data", r#"{"region":"south"}"#]);
    for needle in ["result: to 吴婷", "host calls:", "operations: 0", "time: "] {
        assert!(human.contains(needle), "{human}");
    }
    let grade: serde_json::Value = serde_json::from_str(&run(&[
        "--format",
        "json",
        "script",
        "test",
        "quote_risk",
        "--data",
        r#"{"payment_terms":"prepay","prepay_percent":60}"#,
    ]))
    .unwrap();
    assert_eq!((grade["detail"]["level"].as_str(), grade["detail"]["row"].as_u64()), (Some("high"), Some(2)));
    assert_eq!(run(&["audit", "verify"]).split(';').next(), before.split(';').next(), "nothing was written");
}

#[test]
fn the_quote_risk_table_grades_as_legal_expects() {
    use closeloop::clock::ManualClock;

    use std::sync::Arc;

    let mut rt = closeloop::Runtime::open(
        crate::support::fresh_store(),
        Arc::new(ManualClock::new("2026-11-26T09:00:00Z".parse().unwrap())),
    )
    .unwrap();
    rt.install(&closeloop::template("quote-approval").unwrap().app_files(), "system", false).unwrap();
    let level = |data: serde_json::Value| {
        let t = rt.try_rule("quote_risk", obj(data), None, "system").unwrap();
        (serde_json::to_value(&t.detail).unwrap()["level"].as_str().unwrap_or_default().to_string(), t.result)
    };
    assert_eq!(level(json!({"payment_terms": "cod"})).0, "low");
    assert_eq!(level(json!({"payment_terms": "prepay", "prepay_percent": 60})).0, "high");
    assert_eq!(level(json!({"payment_terms": "prepay", "prepay_percent": 30, "clauses": ["c_penalty"]})).0, "medium");
    assert_eq!(level(json!({"payment_terms": "net30", "clauses": ["c_exclusive"]})).0, "high");
    let (lvl, summary) = level(json!({"payment_terms": "net30"}));
    assert_eq!(lvl, "low");
    assert!(summary.contains("标准条款"), "{summary}");
}

#[test]
fn the_board_command_lists_flagged_records_as_json() {
    let cli = crate::support::Cli::new("boardcli", "2026-11-26T09:00:00+08:00");
    let dir = &cli.dir;
    let run = |args: &[&str]| cli.ok(args);
    run(&["install", "lead-followup"]);
    run(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    run(&["members", "import", &{
        let p = dir.0.join("away.csv");
        std::fs::write(&p, "id,active\nm_he,false\n").unwrap();
        p.to_string_lossy().into_owned()
    }]);
    let lead: serde_json::Value = serde_json::from_str(&run(&[
        "--format",
        "json",
        "submit",
        "lead",
        "--as",
        "m_zheng",
        "--data",
        r#"{"source":"expo","customer":"成都某公司","phone":"13500135005","region":"west"}"#,
    ]))
    .unwrap();
    assert!(lead.get("owner").is_none(), "nobody active in the west");
    let board: serde_json::Value = serde_json::from_str(&run(&["--format", "json", "board", "supervisor"])).unwrap();
    let item = &board.as_array().unwrap()[0];
    for key in ["record", "form", "reason", "since"] {
        assert!(item.get(key).is_some(), "board JSON lacks {key}: {board}");
    }
    assert_eq!(item["record"], lead["id"]);
    assert!(run(&["audit", "verify"]).starts_with("audit ok"));
}

#[test]
fn an_import_that_names_some_owners_still_spreads_the_rest_evenly() {
    let mut rt = leads();
    let mut csv = String::from("source,customer,phone,region,owner\nexpo,客户0,13700000000,east,\n");
    for i in 1..4 {
        csv.push_str(&format!("expo,客户{i},1370000000{i},east,m_wang\n"));
    }
    for i in 4..8 {
        csv.push_str(&format!("expo,客户{i},1370000000{i},east,\n"));
    }
    rt.import_csv("lead", csv.as_bytes(), &closeloop::ImportOptions::default(), &mut |_| {}).unwrap();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in rt.list("lead", &ListQuery::default()).unwrap() {
        *counts.entry(r.owner.unwrap_or_default()).or_default() += 1;
    }
    // m_wang's three named leads count against him while the other rows are assigned.
    assert_eq!(counts, [("m_li".to_string(), 4), ("m_wang".to_string(), 4)].into_iter().collect());
}

#[test]
fn weights_read_from_imported_text_and_an_inactive_fallback_is_not_used() {
    let mut light = member(1, "rep", "east", None, true);
    light.extra.insert("seats".into(), json!("1"));
    let mut heavy = member(2, "rep", "east", None, true);
    heavy.extra.insert("seats".into(), json!("3"));
    let mut weighted = rule(Pick::Weighted, false);
    weighted.weight = Some("seats".into());
    let loads = Loads { open: [("m01".into(), 1), ("m02".into(), 2)].into_iter().collect(), ..Loads::default() };
    // 2 open for a weight of 3 is lighter than 1 open for a weight of 1.
    let team = [light, heavy];
    assert_eq!(decide(&weighted, &obj(json!({"region": "east"})), &team, &loads).member.as_deref(), Some("m02"));

    let mut fallback = rule(Pick::LeastLoaded, false);
    fallback.fallback = Some(closeloop::model::Fallback::Member("m03".into()));
    let gone = member(3, "supervisor", "east", None, false);
    let d = decide(&fallback, &obj(json!({"region": "west"})), std::slice::from_ref(&gone), &Loads::default());
    assert_eq!(d.member, None);
    assert!(d.explanation.contains("the fallback m03 is not an active member"), "{}", d.explanation);
    // A rule that takes inactive members takes an inactive fallback too.
    let mut lenient = fallback.clone();
    lenient.candidates.active_only = Some(false);
    let d = decide(&lenient, &obj(json!({"region": "west"})), std::slice::from_ref(&gone), &Loads::default());
    assert_eq!(d.member.as_deref(), Some("m03"));
    let d =
        decide(&fallback, &obj(json!({"region": "west"})), &[MemberRow { active: true, ..gone }], &Loads::default());
    assert_eq!(d.member.as_deref(), Some("m03"));
}

/// A runtime with one app installed and a team imported.
fn with_app(app: &str, members: &[u8]) -> closeloop::Runtime {
    let clock = std::sync::Arc::new(closeloop::clock::ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap()));
    let mut rt = closeloop::Runtime::open(crate::support::fresh_store(), clock).unwrap();
    rt.install(&closeloop::AppFiles { app_yaml: app.into(), ..Default::default() }, "system", false).unwrap();
    rt.import_members(members, "system").unwrap();
    rt
}

#[test]
fn round_robin_takes_turns_within_each_region_however_regions_interleave() {
    let app = "app: {id: rr, title: RR}\nroles:\n  - {id: rep}\nforms:\n  - id: lead\n    fields:\n      - {id: region, type: text}\n      - {id: owner, type: member}\nassignment_rules:\n  - id: rr\n    form: lead\n    candidates: {role: rep, match: {region: region}}\n    pick: round_robin\nautomations:\n  - id: assign\n    when: {created: lead}\n    do:\n      - assign: rr\n";
    let mut rt = with_app(app, b"id,name,roles,region\na,Ann,rep,east\nb,Bo,rep,east\nc,Cy,rep,west\n");
    // One write per record: turns come from the store.
    let owners: Vec<String> = ["east", "west"]
        .iter()
        .cycle()
        .take(8)
        .map(|r| rt.submit("lead", obj(json!({"region": r})), "system").unwrap().owner.unwrap())
        .collect();
    assert_eq!(owners, ["a", "c", "b", "c", "a", "c", "b", "c"]);
    // One import: turns are kept current across its rows.
    rt.import_csv("lead", b"region\neast\nwest\neast\nwest\neast\n", &Default::default(), &mut |_| {}).unwrap();
    let imported: Vec<String> =
        rt.list("lead", &ListQuery::default()).unwrap().into_iter().skip(8).map(|r| r.owner.unwrap()).collect();
    assert_eq!(imported, ["a", "c", "b", "c", "a"]);
}

#[test]
fn a_rule_that_fills_another_member_field_weighs_that_fields_load() {
    let app = "app: {id: rv, title: RV}\nroles:\n  - {id: rep}\nforms:\n  - id: quote\n    fields:\n      - {id: owner, type: member}\n      - {id: reviewer, type: member}\nassignment_rules:\n  - id: review\n    form: quote\n    field: reviewer\n    candidates: {role: rep}\n    pick: least_loaded\nautomations:\n  - id: assign\n    when: {created: quote}\n    do:\n      - assign: review\n";
    let mut rt = with_app(app, b"id,name,roles\nr1,Ru,rep\nr2,Rui,rep\n");
    for _ in 0..3 {
        rt.submit("quote", obj(json!({"owner": "r2", "reviewer": "r1"})), "system").unwrap();
    }
    // r1 reviews three quotes; r2 owns them but reviews none.
    let q = rt.submit("quote", obj(json!({"owner": "r2"})), "system").unwrap();
    assert_eq!(q.data["reviewer"], "r2");
    let trial = rt.try_rule("review", obj(json!({"owner": "r2"})), None, "system").unwrap();
    let loads: Vec<u64> = serde_json::to_value(&trial.detail).unwrap()["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["load"].as_u64().unwrap())
        .collect();
    assert_eq!(
        (serde_json::to_value(&trial.detail).unwrap()["member"].as_str(), loads),
        (Some("r2"), vec![3, 1]),
        "reviews, not owned quotes"
    );
}

#[test]
fn a_members_file_that_names_a_region_by_its_label_is_matched_by_its_value() {
    // Ops wrote 华南 (the label lead forms show) where the lead's region stores `south`. Every
    // lead used to go to the fallback queue as "nobody qualified".
    let mut rt = leads();
    // The south's two reps are away; the new one is the only rep there.
    let csv = "id,name,roles,region,manager,active,capacity\nr_new,何静,sales_rep,华南,,true,50\nm_zhou,,,,,false,\nm_wu,,,,,false,\n";
    rt.import_members(csv.as_bytes(), "system").unwrap();
    let new = rt.members().unwrap().into_iter().find(|m| m.id == "r_new").unwrap();
    assert_eq!(new.region.as_deref(), Some("south"));
    let r = rt.submit("lead", unowned(1, "south"), "m_zhao").unwrap();
    assert_eq!(r.owner.as_deref(), Some("r_new"), "{r:?}");
    // A region that is neither a value nor a label refuses the row, naming the column.
    let bad = "id,name,roles,region,manager,active,capacity\nr_bad,徐明,sales_rep,上海,,true,50\n";
    let Err(closeloop::EngineError::Import(report)) = rt.import_members(bad.as_bytes(), "system") else {
        panic!("a member who can never match is refused")
    };
    let problem = &report.problems[0];
    assert_eq!((problem.row, problem.column.as_deref()), (2, Some("region")), "{problem:?}");
    assert!(problem.message.contains("上海"), "{problem:?}");
    assert!(rt.members().unwrap().iter().all(|m| m.id != "r_bad"), "nothing of a refused file is stored");
}
