//! The quote template's pricing: lines priced from the catalog's tiers and promotions, the
//! customer's last price beside each line, and finance seeing the lines priced below the floor.

use closeloop::clock::ManualClock;
use closeloop::Runtime;
use serde_json::{json, Value};

use crate::approvals::World;

fn priced() -> (World, String) {
    let clock = std::sync::Arc::new(ManualClock::new("2026-11-23T10:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock.clone()).unwrap();
    crate::support::quote_catalog(&mut rt, true);
    // 上海明远科技 (C-0001) bought CRM standard at 11,000 and services at 2,300 last year.
    let data = json!({"customer": "C-0001", "contact_phone": "13800138001", "owner": "m_li", "valid_until": "2026-12-31",
        "payment_terms": "cod", "lines": [
            {"sku": "CL-CRM-STD", "qty": 2},
            {"sku": "CL-CRM-PRO", "qty": 1},
            {"sku": "CL-IMPL-DAY", "qty": 3, "unit_price": 1800.0}]});
    let id = rt.submit("quote", data.as_object().cloned().unwrap(), "m_li").unwrap().id;
    (World { rt, clock }, id)
}

#[test]
fn a_new_quote_is_priced_from_the_catalog_with_the_customer_s_last_price_beside_each_line() {
    let (w, id) = priced();
    let quote = w.rt.get("quote", &id).unwrap();
    let lines = quote.data["lines"].as_array().unwrap();
    let column = |name: &str| lines.iter().map(|l| l[name].clone()).collect::<Vec<Value>>();
    // List price; the running promotion (25,000 until year end); the rep's own lower price kept.
    assert_eq!(column("unit_price"), [json!(12000.0), json!(25000.0), json!(1800.0)]);
    assert_eq!(column("last_price"), [json!(11000.0), Value::Null, json!(2300.0)], "none for a product never bought");
    assert_eq!(column("floor_price"), [json!(10000.0), json!(22000.0), json!(2000.0)]);
    assert_eq!(quote.data["total"], json!(24000.0 + 25000.0 + 5400.0));
    assert_eq!(quote.data["below_floor"], json!(["CL-IMPL-DAY 1,800.00 < 2,000.00"]));
}

#[test]
fn finance_sees_the_lines_below_the_floor_and_the_chat_message_keeps_them_private() {
    let (mut w, id) = priced();
    w.rt.act("quote", &id, "submit", "m_li", Default::default()).unwrap();
    let supervisor = w.rt.approvals(Some("m_zhao")).unwrap();
    assert_eq!(supervisor[0].show.iter().map(|s| s.field.as_str()).collect::<Vec<_>>(), ["total"]);
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();

    let finance = w.rt.approvals(Some("m_qian")).unwrap();
    let below = finance[0].show.iter().find(|s| s.field == "below_floor").unwrap();
    assert_eq!((below.label.as_str(), below.text.as_str()), ("低于底价的明细", "CL-IMPL-DAY 1,800.00 < 2,000.00"));
    let told = w.rt.outbox(None).unwrap().into_iter().find(|m| m.recipient == "m_qian").unwrap();
    assert!(told.body.contains("合计金额：54,400.00"), "{}", told.body);
    assert!(!told.body.contains("CL-IMPL-DAY"), "a sensitive field stays out of chat: {}", told.body);
}
