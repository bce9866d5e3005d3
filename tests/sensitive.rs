//! Sensitive fields (a customer's phone, a floor price) stay out of what leaves closeloop:
//! exports unless asked for under a name (and then on the audit trail), and messages to a
//! group chat. Regression tests for RELIABILITY fault "sensitive fields leak".

use serde_json::Value;

use crate::support::Cli;

fn leads(name: &str) -> Cli {
    let cli = Cli::new(name, "2026-11-23T10:00:00+08:00");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    let lead = r#"{"source":"expo","customer":"上海明远科技","phone":"13800138001","region":"east","owner":"m_li"}"#;
    cli.ok(&["submit", "lead", "--data", lead, "--as", "m_li"]);
    cli
}

#[test]
fn export_writes_no_phone_number_unless_asked_for_by_name_and_that_export_is_audited() {
    let cli = leads("sensitive-export");
    let plain = cli.ok(&["export", "lead"]);
    let header = plain.lines().next().unwrap_or_default().trim_start_matches('\u{feff}');
    assert!(!header.split(',').any(|c| c == "phone") && !plain.contains("13800138001"), "{plain}");
    assert!(header.split(',').any(|c| c == "customer"), "{header}");
    // Asked for without a name: refused, nothing written.
    let (_, said) = cli.fails(&["export", "lead", "--include-sensitive"]);
    assert!(said.contains("names who exports"), "{said}");
    let full = cli.ok(&["export", "lead", "--include-sensitive", "--as", "m_ops"]);
    assert!(full.contains("13800138001"), "{full}");
    let audited = cli.query(
        "SELECT COUNT(*) FROM events WHERE kind = 'records.exported' AND actor = 'm_ops' AND body LIKE '%phone%'",
        &[],
    );
    assert_eq!(audited, 1);
    assert!(cli.ok(&["audit", "verify"]).starts_with("audit ok"));
}

#[test]
fn a_quote_export_leaves_out_floor_prices_in_its_lines_and_the_below_floor_summary() {
    let cli = Cli::new("sensitive-quote", "2026-11-23T10:00:00+08:00");
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    let quote = r#"{"customer":"C-0001","contact_phone":"13900000000","payment_terms":"cod","valid_until":"2026-12-31","lines":[{"sku":"CL-CRM-STD","qty":10,"unit_price":100}]}"#;
    let made: Value = cli.json(&["submit", "quote", "--data", quote, "--as", "m_li"]);
    let stored = made["data"].to_string();
    assert!(stored.contains("floor_price"), "the quote holds floor prices: {stored}");
    let out = cli.ok(&["export", "quote"]);
    for secret in ["floor_price", "last_price", "below_floor", "13900000000"] {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }
    assert!(out.contains("CL-CRM-STD"), "the lines are there: {out}");
    let catalog = cli.ok(&["export", "product"]);
    assert!(!catalog.lines().next().unwrap_or_default().contains("floor_price"), "{catalog}");
}
