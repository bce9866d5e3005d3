//! Writes killed at random points (RELIABILITY D6): a seeded sequence of submits, edits and
//! actions through the binary, each process killed after a random delay, must leave exactly one
//! audit event per committed change and a chain that verifies. Sixty writes by default; the soak
//! is `CLOSELOOP_SOAK_ITERATIONS=2000 cargo test --release --test tests d6_`.

use std::time::Duration;

use crate::support::Cli;

/// splitmix64: the same sequence, and the same kill points, every run of a given seed.
struct Numbers(u64);

impl Numbers {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

const REPS: [&str; 3] = ["m_li", "m_wang", "m_zhou"];

/// The arguments of the `i`th write: a new lead, an edit, or a contact of a lead stored so far.
fn write(n: &mut Numbers, i: u64, leads: &[String]) -> Vec<String> {
    let rep = REPS[n.below(3) as usize];
    let pick = |n: &mut Numbers| leads[n.below(leads.len() as u64) as usize].clone();
    let args: Vec<String> = match (n.below(3), leads.is_empty()) {
        (0, _) | (_, true) => {
            let data = format!(
                r#"{{"source":"expo","customer":"客户{i}","phone":"1390000{i:04}","region":"east","owner":"{rep}"}}"#
            );
            vec!["submit".into(), "lead".into(), "--data".into(), data]
        }
        (1, false) => {
            let data = format!(r#"{{"customer":"客户{i} 改"}}"#);
            vec!["update".into(), "lead".into(), pick(n), "--data".into(), data]
        }
        _ => {
            let data = r#"{"summary":"电话沟通","next_step":"演示"}"#.to_string();
            vec!["act".into(), "lead".into(), pick(n), "contact".into(), "--data".into(), data]
        }
    };
    args.into_iter().chain(["--as".to_string(), rep.to_string()]).collect()
}

#[test]
fn d6_writes_killed_at_random_points_leave_one_audit_event_per_committed_change() {
    let iterations: u64 = std::env::var("CLOSELOOP_SOAK_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(60);
    let cli = Cli::new("crashes-d6", "2026-11-02T09:00:00+08:00");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    let mut n = Numbers(0xD6);
    let (mut killed, mut finished) = (0, 0);
    for i in 0..iterations {
        let leads: Vec<String> = cli
            .rows("SELECT DISTINCT record FROM events WHERE form = 'lead'", &[])
            .into_iter()
            .map(|r| r.into_iter().next().flatten().unwrap())
            .collect();
        let args = write(&mut n, i, &leads);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child =
            cli.command(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(n.below(60_000)));
        match child.try_wait().unwrap() {
            Some(_) => finished += 1,
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
            }
        }
    }
    assert!(killed > 0 && finished > 0, "the kills landed at different points: {killed} killed, {finished} finished");
    // Every stored version of every lead is exactly one event, and no event names a version
    // that was never stored.
    let records = cli.query(r#"SELECT COUNT(*) FROM "rec_lead""#, &[]);
    let versions = cli.query(r#"SELECT COALESCE(SUM(version), 0) FROM "rec_lead""#, &[]);
    let events = cli.query("SELECT COUNT(*) FROM events WHERE form = 'lead' AND kind LIKE 'record.%'", &[]);
    let doubled = cli.query(
        "SELECT COUNT(*) FROM (SELECT record, version FROM events WHERE form = 'lead' AND kind LIKE 'record.%'
                               GROUP BY record, version HAVING COUNT(*) > 1) AS doubled",
        &[],
    );
    assert!(records > 0, "some writes committed");
    assert_eq!((events, doubled), (versions, 0), "{records} leads: one event per stored version");
    let verify = cli.ok(&["audit", "verify"]);
    assert!(verify.starts_with("audit ok"), "{verify}");
}
