//! RELIABILITY Y8: any valid app definition survives serialize → load unchanged. JSON is YAML
//! 1.2, so a definition serialized as JSON goes through the very same reader, schema check
//! and model as a hand-written app.

use std::collections::BTreeMap;

use closeloop::model::*;
use closeloop::{AppFiles, Loader};
use proptest::prelude::*;
use serde_json::Value;

fn reload(def: &AppDef) -> Result<AppDef, String> {
    let text = serde_json::to_string_pretty(def).map_err(|e| e.to_string())?;
    let loader = Loader::new().map_err(|e| e.to_string())?;
    let loaded = loader.load(&AppFiles { app_yaml: text.clone(), ..AppFiles::default() });
    loaded.app.map(|a| a.def).ok_or_else(|| format!("{:#?}\n{text}", loaded.diagnostics))
}

#[test]
fn bundled_templates_round_trip() {
    let loader = Loader::new().unwrap_or_else(|e| panic!("{e}"));
    for t in closeloop::templates() {
        let def = loader.load(&t.app_files()).app.map(|a| a.def).unwrap_or_else(|| panic!("{}", t.name));
        // Scripts live in files; reload without them but keep the inline ones.
        let mut files = AppFiles { app_yaml: serde_json::to_string(&def).unwrap_or_default(), ..t.app_files() };
        files.dir = format!("roundtrip/{}", t.name);
        let again = loader.load(&files);
        assert_eq!(again.app.map(|a| a.def).as_ref(), Some(&def), "{}: {:#?}", t.name, again.diagnostics);
    }
}

fn id() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,10}"
}

fn text() -> impl Strategy<Value = String> {
    // Chinese, quotes, backslashes, colons, `#` and newlines: everything a label may hold.
    prop_oneof!["[a-zA-Z0-9 ]{1,12}", "[\u{4e00}-\u{9fa5}]{1,8}", "[ -~]{1,16}", "[a-z\"'\\\\:#\n\t]{1,10}"]
}

fn label() -> impl Strategy<Value = Label> {
    prop_oneof![
        text().prop_map(Label::Text),
        (proptest::option::of(text()), text()).prop_map(|(zh, en)| Label::Langs(Langs { zh, en: Some(en) })),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        (-1.0e6f64..1.0e6).prop_map(Value::from),
        text().prop_map(Value::String),
        Just(Value::Null),
    ]
}

fn field_type() -> impl Strategy<Value = FieldType> {
    use FieldType::*;
    proptest::sample::select(vec![
        Text,
        LongText,
        Integer,
        Decimal,
        Money,
        Percent,
        Bool,
        Date,
        Datetime,
        Choice,
        MultiChoice,
        Phone,
        Email,
        Url,
        Member,
        Link,
        Table,
        File,
        Computed,
        Range,
    ])
}

fn field() -> impl Strategy<Value = Field> {
    (
        id(),
        field_type(),
        proptest::option::of(label()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(scalar()),
        proptest::option::of(1u32..500),
    )
        .prop_map(|(id, kind, label, required, default, max_length)| Field {
            id,
            kind,
            label,
            help: None,
            required,
            required_if: None,
            visible_if: None,
            default,
            min: None,
            max: None,
            min_length: None,
            max_length,
            pattern: None,
            unique: None,
            readonly: None,
            options: None,
            form: None,
            columns: None,
            expression: None,
            lookup: None,
            currency: None,
            scale: None,
            accept: None,
            sensitive: None,
            read_roles: Vec::new(),
        })
}

fn condition() -> impl Strategy<Value = Condition> {
    let leaf = prop_oneof![
        (id(), scalar()).prop_map(|(f, v)| Condition { field: Some(f), eq: Some(v), ..Condition::default() }),
        (id(), any::<bool>()).prop_map(|(f, e)| Condition { field: Some(f), empty: Some(e), ..Condition::default() }),
        proptest::collection::vec(id(), 1..3).prop_map(|s| Condition { state: Some(s), ..Condition::default() }),
        "[a-z]{1,5} > [0-9]{1,3}".prop_map(|e| Condition { expr: Some(e), ..Condition::default() }),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..3)
                .prop_map(|c| Condition { all: Some(c), ..Condition::default() }),
            proptest::collection::vec(inner.clone(), 1..3)
                .prop_map(|c| Condition { any: Some(c), ..Condition::default() }),
            inner.prop_map(|c| Condition { not: Some(Box::new(c)), ..Condition::default() }),
        ]
    })
}

fn trigger() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        id().prop_map(Trigger::Created),
        id().prop_map(Trigger::Updated),
        (id(), id(), proptest::option::of(scalar())).prop_map(|(form, field, to)| Trigger::Changed(ChangedTrigger {
            form,
            field,
            from: None,
            to
        })),
        (id(), id()).prop_map(|(form, action)| Trigger::Action(ActionTrigger { form, action })),
        "[a-z]{1,6}\\.[a-z]{1,6}".prop_map(Trigger::Event),
        (id(), "[0-9]{1,2}[hd]", id()).prop_map(|(form, after, from)| Trigger::Timer(TimerTrigger {
            form,
            after: Some(after),
            before: None,
            from,
            late: Some(LatePolicy::Fire)
        })),
        "[0-5]?[0-9] [0-9] \\* \\* [1-5]".prop_map(|schedule| Trigger::Cron(CronTrigger { schedule, time_zone: None })),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        proptest::collection::btree_map(id(), scalar(), 1..3).prop_map(Step::Set),
        id().prop_map(Step::Assign),
        id().prop_map(Step::CreateTasks),
        id().prop_map(Step::StartApproval),
        (id(), id(), id()).prop_map(|(channel, message, f)| Step::Notify(Notify {
            channel,
            message,
            to: Recipient::Field(f)
        })),
        (id(), proptest::option::of(label())).prop_map(|(board, reason)| Step::Flag(Flag { board, reason })),
        ("[a-z]{1,6}\\.[a-z]{1,6}", proptest::collection::btree_map(id(), scalar(), 0..2))
            .prop_map(|(event, data)| Step::Emit(Emit { event, app: None, data, with: Default::default() })),
        "let x = [0-9]{1,3};\nx".prop_map(Step::Script),
    ]
}

fn automation() -> impl Strategy<Value = Automation> {
    (
        id(),
        proptest::option::of(label()),
        trigger(),
        proptest::option::of(condition()),
        proptest::collection::vec(step(), 1..4),
    )
        .prop_map(|(id, label, when, condition, steps)| Automation {
            id,
            label,
            enabled: None,
            when,
            condition,
            steps,
        })
}

fn form() -> impl Strategy<Value = Form> {
    (
        id(),
        proptest::option::of(label()),
        proptest::collection::vec(field(), 1..6),
        proptest::collection::vec(id(), 0..4),
    )
        .prop_map(|(id, label, fields, states)| Form {
            id,
            label,
            description: None,
            id_pattern: Some("X-{yyyy}-{seq:4}".into()),
            title_field: None,
            owner_field: None,
            key: Vec::new(),
            fields,
            states: states.into_iter().map(|s| State { id: s, label: None, initial: None, is_final: None }).collect(),
            actions: Vec::new(),
            edit: Vec::new(),
            read: Vec::new(),
        })
}

fn app() -> impl Strategy<Value = AppDef> {
    (label(), proptest::collection::vec(form(), 0..3), proptest::collection::vec(automation(), 0..4), 0.0f64..=1.0)
        .prop_map(|(title, forms, automations, target)| AppDef {
            app: AppMeta {
                id: "generated".into(),
                title,
                description: None,
                version: Some(3),
                time_zone: None,
                language: Some(Lang::Zh),
                calendar: None,
                script_deadline_ms: Some(20),
            },
            calendars: Vec::new(),
            roles: Vec::new(),
            members: None,
            forms,
            events: Vec::new(),
            automations,
            assignment_rules: Vec::new(),
            approvals: Vec::new(),
            sops: Vec::new(),
            scores: Vec::new(),
            grades: Vec::new(),
            boards: Vec::new(),
            channels: Vec::new(),
            messages: Vec::new(),
            metrics: vec![Metric {
                id: "m".into(),
                label: None,
                form: "f".into(),
                start: Milestone::Created(true),
                end: Milestone::Action("a".into()),
                within: Some("24h".into()),
                path: Vec::new(),
                target,
                breakdown: vec![Dimension::Week],
            }],
            seed: Vec::new(),
        })
}

/// The model layer only: generated apps reference forms and fields at random, so semantic
/// checks would rightly fail; what must hold is reader + schema + model agreeing exactly.
fn reload_model(def: &AppDef) -> Result<AppDef, String> {
    let text = serde_json::to_string_pretty(def).map_err(|e| e.to_string())?;
    let (root, diags) = closeloop::yaml::parse("gen.json", &text, closeloop::yaml::Limits::default());
    let root = root.ok_or_else(|| format!("{diags:#?}"))?;
    let checker = closeloop::SchemaChecker::new().map_err(|e| e.to_string())?;
    let json = root.to_json();
    let errors = checker.check("gen.json", &root, &json);
    if !errors.is_empty() {
        return Err(format!("{errors:#?}\n{text}"));
    }
    serde_json::from_value(json).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn generated_apps_round_trip_through_reader_schema_and_model(def in app()) {
        prop_assert_eq!(reload_model(&def), Ok(def));
    }
}

#[test]
fn a_consistent_generated_app_round_trips_through_the_whole_loader() {
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    fields.insert("urgency".into(), Value::from("red"));
    let def = AppDef {
        app: AppMeta {
            id: "rt".into(),
            title: Label::Text("往返 \"round\" trip: #1".into()),
            description: None,
            version: None,
            time_zone: Some("Europe/Berlin".into()),
            language: None,
            calendar: None,
            script_deadline_ms: None,
        },
        calendars: Vec::new(),
        roles: Vec::new(),
        members: None,
        forms: vec![Form {
            id: "lead".into(),
            label: Some(Label::Langs(Langs { zh: Some("线索".into()), en: Some("Lead".into()) })),
            description: None,
            id_pattern: None,
            title_field: None,
            owner_field: None,
            key: Vec::new(),
            fields: vec![Field {
                id: "urgency".into(),
                kind: FieldType::Choice,
                label: None,
                help: None,
                required: Some(true),
                required_if: None,
                visible_if: None,
                default: Some(Value::from("green")),
                min: None,
                max: None,
                min_length: None,
                max_length: None,
                pattern: None,
                unique: None,
                readonly: None,
                options: Some(vec![
                    ChoiceOption { value: "red".into(), label: None, color: Some(Color::Red) },
                    ChoiceOption { value: "green".into(), label: None, color: None },
                ]),
                form: None,
                columns: None,
                expression: None,
                lookup: None,
                currency: None,
                scale: None,
                accept: None,
                sensitive: None,
                read_roles: Vec::new(),
            }],
            states: Vec::new(),
            actions: Vec::new(),
            edit: Vec::new(),
            read: Vec::new(),
        }],
        events: Vec::new(),
        automations: vec![Automation {
            id: "a".into(),
            label: None,
            enabled: Some(true),
            when: Trigger::Timer(TimerTrigger {
                form: "lead".into(),
                after: Some("1d12h".into()),
                before: None,
                from: "created_at".into(),
                late: None,
            }),
            condition: Some(Condition {
                field: Some("urgency".into()),
                ne: Some(Value::from("red")),
                ..Condition::default()
            }),
            steps: vec![Step::Set(fields)],
        }],
        assignment_rules: Vec::new(),
        approvals: Vec::new(),
        sops: Vec::new(),
        scores: Vec::new(),
        grades: Vec::new(),
        boards: Vec::new(),
        channels: Vec::new(),
        messages: Vec::new(),
        metrics: Vec::new(),
        seed: Vec::new(),
    };
    assert_eq!(reload(&def), Ok(def));
}
