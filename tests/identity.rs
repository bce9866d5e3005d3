//! Sessions end when they should, on an injected clock: after 12 idle hours, 7 days after
//! sign-in, at a new password, and at once when the member is deactivated.

use std::sync::Arc;

use closeloop::clock::ManualClock;
use closeloop::{ErrorKind, Runtime};
use jiff::SignedDuration;

const PASSWORD: &str = "长城 long enough";

fn team() -> (Runtime, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new("2026-11-30T09:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock.clone()).unwrap();
    rt.install(&closeloop::template("lead-followup").unwrap().app_files(), "system", false).unwrap();
    rt.import_members(&std::fs::read("../app-templates/lead-followup/data/members.csv").unwrap(), "system").unwrap();
    rt.set_password("m_li", PASSWORD, None, "m_ops").unwrap();
    (rt, clock)
}

#[test]
fn a_session_ends_after_twelve_idle_hours_or_seven_days_whatever_its_use() {
    let (mut rt, clock) = team();
    let s = rt.sign_in("m_li", PASSWORD, "127.0.0.1").unwrap();
    clock.advance(SignedDuration::from_hours(11));
    assert_eq!(rt.session(&s.id).unwrap().member, "m_li", "used within 12 hours, it lasts");
    clock.advance(SignedDuration::from_hours(11));
    assert_eq!(rt.session(&s.id).unwrap().member, "m_li", "each use moves the idle limit");
    clock.advance(SignedDuration::from_hours(12));
    assert_eq!(rt.session(&s.id).unwrap_err().kind(), ErrorKind::Unauthorized, "12 idle hours end it");
    // Used every 10 hours, a session still ends 7 days after sign-in.
    let s = rt.sign_in("m_li", PASSWORD, "127.0.0.1").unwrap();
    for _ in 0..16 {
        clock.advance(SignedDuration::from_hours(10));
        assert!(rt.session(&s.id).is_ok());
    }
    clock.advance(SignedDuration::from_hours(10));
    assert!(rt.session(&s.id).is_err(), "170 hours after sign-in");
}

#[test]
fn a_new_password_or_a_deactivation_ends_sessions_at_once() {
    let (mut rt, _) = team();
    let first = rt.sign_in("m_li", PASSWORD, "127.0.0.1").unwrap();
    let second = rt.sign_in("m_li", PASSWORD, "127.0.0.2").unwrap();
    assert_ne!(first.id, second.id, "each sign-in is a new session id");
    // The member changes their own password with the current one; a wrong current is refused.
    assert!(rt.set_password("m_li", "another long one", Some("not it at all"), "m_li").is_err());
    rt.set_password("m_li", "another long one", Some(PASSWORD), "m_li").unwrap();
    assert!(rt.session(&first.id).is_err() && rt.session(&second.id).is_err());
    assert!(rt.set_password("m_li", "short", None, "m_ops").unwrap_err().to_string().contains("10"));
    let s = rt.sign_in("m_li", "another long one", "127.0.0.1").unwrap();
    let csv = "id,name,roles,region,manager,active,capacity\nm_li,李伟,sales_rep,east,m_zhao,false,30\n";
    rt.import_members(csv.as_bytes(), "system").unwrap();
    assert_eq!(rt.session(&s.id).unwrap_err().kind(), ErrorKind::Unauthorized);
    assert!(rt.sign_in("m_li", "another long one", "127.0.0.1").is_err(), "an inactive member cannot sign in");
}

#[test]
fn a_sign_in_link_goes_by_sms_works_once_within_fifteen_minutes_and_tells_nobody_who_exists() {
    let (mut rt, clock) = team();
    let csv =
        "id,name,roles,region,manager,active,capacity,phone\nm_li,李伟,sales_rep,east,m_zhao,true,30,13800138000\n";
    rt.import_members(csv.as_bytes(), "system").unwrap();
    rt.send_sign_in_link("m_li", "https://crm.example.com/").unwrap();
    let sent: Vec<_> = rt.outbox(None).unwrap().into_iter().filter(|m| m.message == "sign_in_link").collect();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].channel.as_str(), sent[0].address.as_deref()), ("sms", Some("13800138000")));
    let token = sent[0].body.split("?token=").nth(1).unwrap().trim().to_string();
    assert!(sent[0].body.contains("https://crm.example.com/sign-in/link?token="), "{}", sent[0].body);
    let session = rt.redeem_sign_in_link(&token, "127.0.0.1").unwrap();
    assert_eq!(rt.session(&session.id).unwrap().member, "m_li");
    assert_eq!(rt.redeem_sign_in_link(&token, "127.0.0.1").unwrap_err().kind(), ErrorKind::Unauthorized, "once");
    // A second link, used after its 15 minutes, is refused.
    rt.send_sign_in_link("m_li", "https://crm.example.com").unwrap();
    let body = rt.outbox(None).unwrap().into_iter().rfind(|m| m.message == "sign_in_link").unwrap().body;
    let late = body.split("?token=").nth(1).unwrap().trim().to_string();
    clock.advance(SignedDuration::from_mins(15));
    assert!(rt.redeem_sign_in_link(&late, "127.0.0.1").is_err());
    // Unknown members, members with no phone or email, and a sixth request in 15 minutes all
    // answer the same, and send nothing.
    let before = rt.outbox(None).unwrap().len();
    rt.send_sign_in_link("nobody", "https://crm.example.com").unwrap();
    let no_phone = "id,name,roles,region,manager,active,capacity\nm_new,新人,sales_rep,east,m_zhao,true,30\n";
    rt.import_members(no_phone.as_bytes(), "system").unwrap();
    rt.send_sign_in_link("m_new", "https://crm.example.com").unwrap();
    for _ in 0..5 {
        rt.send_sign_in_link("m_li", "https://crm.example.com").unwrap();
    }
    assert_eq!(
        rt.outbox(None).unwrap().len(),
        before + 3,
        "five links per 15 minutes: the two of 15 minutes ago still count"
    );
}

#[test]
fn audit_verify_still_holds_after_passwords_sign_ins_lockouts_and_sign_outs() {
    let (mut rt, _) = team();
    let s = rt.sign_in("m_li", PASSWORD, "127.0.0.1").unwrap();
    for _ in 0..6 {
        let _ = rt.sign_in("m_li", "wrong password!", "127.0.0.9");
    }
    rt.sign_out(&s.id).unwrap();
    rt.set_password("m_zhao", PASSWORD, None, "m_ops").unwrap();
    let v = rt.verify_audit().unwrap();
    assert_eq!(v.problem, None, "events about a member that do not carry the row are not its last state");
    // A directory change after them is the member's new last state.
    let csv = "id,name,roles,region,manager,active,capacity\nm_li,李伟,sales_rep,east,m_zhao,true,31\n";
    rt.import_members(csv.as_bytes(), "m_ops").unwrap();
    assert_eq!(rt.verify_audit().unwrap().problem, None);
}
