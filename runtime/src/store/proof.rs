//! What the audit chain vouches for beyond records, members and apps: the rows that confer a
//! right. An approval run, its steps and its decisions; a signing link issued and used; a task
//! done; a channel setting. Each such row must be what its events say, so editing the tables
//! in the SQLite file (faking the finance approval, marking a step skipped, pointing a webhook
//! elsewhere) is caught by `verify`, and the engine refuses to issue or use a sign link for a
//! run whose rows its events do not back ([`unbacked_run`]).
//!
//! Runs started before a database was upgraded to these checks have no `approval.started`
//! or step events; the upgrade records their highest id in an `audit.coverage` event, and
//! only their decisions (always audited) are checked.

use serde_json::Value;

use super::approvals::{self, ApprovalRow, ApprovalStatus, StepRow, StepStatus};
use super::audit::{self, chain_hash, sha256_hex, GENESIS};
use super::sql::params;
use super::{Reader, StoreError, Tx};

/// One event about a run, and whether it is sound: its hash recomputes from its columns and
/// it follows the event before it.
struct Ev {
    actor: String,
    kind: String,
    body: Value,
    sound: bool,
}

/// The approval and signing events of a record, oldest first (one indexed query).
fn trail(conn: &Reader, form: &str, record: &str) -> Result<Vec<Ev>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.seq, e.at, e.actor, e.kind, e.form, e.record, e.version, e.body, e.data_hash, e.prev_hash, e.hash,
                p.hash
         FROM events e LEFT JOIN events p ON p.seq = e.seq - 1
         WHERE e.form = ?1 AND e.record = ?2 AND (e.kind LIKE 'approval.%' OR e.kind LIKE 'sign.%')
         ORDER BY e.seq",
    )?;
    let mut rows = stmt.query(params![form, record])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let (at, actor, kind): (String, String, String) = (r.get(1)?, r.get(2)?, r.get(3)?);
        let (f, rec): (Option<String>, Option<String>) = (r.get(4)?, r.get(5)?);
        let version: Option<i64> = r.get(6)?;
        let body: String = r.get(7)?;
        let data_hash: Option<String> = r.get(8)?;
        let (prev_hash, hash): (String, String) = (r.get(9)?, r.get(10)?);
        let before: Option<String> = r.get(11)?;
        let linked = match before {
            Some(b) => b == prev_hash,
            None => seq == 1 && prev_hash == GENESIS,
        };
        let own = chain_hash(
            seq,
            &at,
            &actor,
            &kind,
            f.as_deref(),
            rec.as_deref(),
            version,
            &body,
            data_hash.as_deref(),
            &prev_hash,
        ) == hash;
        let body = serde_json::from_str(&body).unwrap_or(Value::Null);
        out.push(Ev { actor, kind, body, sound: own && linked });
    }
    Ok(out)
}

/// The highest approval run id started before the database had step events (0: none).
fn legacy_runs(conn: &Reader) -> Result<i64, StoreError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM events WHERE kind = 'audit.coverage' ORDER BY seq DESC LIMIT 1")?
        .query_opt([], |r| r.get(0))?;
    Ok(body
        .and_then(|b| serde_json::from_str::<Value>(&b).ok())
        .and_then(|b| b["approvals_before"].as_i64())
        .unwrap_or(0))
}

/// On upgrading a database that already has approval runs: an `audit.coverage` event marking
/// the runs that have no step events. Called in the migration's transaction.
pub(super) fn mark_coverage(tx: &Tx<'_>) -> Result<(), StoreError> {
    let highest: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) FROM approvals", [], |r| r.get(0))?;
    if highest == 0 {
        return Ok(());
    }
    // No clock here: the upgrade happened no earlier than the last event.
    let at: String =
        tx.query_optional("SELECT at FROM events ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))?.unwrap_or_default();
    let body = serde_json::json!({"approvals_before": highest}).to_string();
    audit::append(tx, &audit::NewEvent::note(&at, "system", "audit.coverage", None, &body))?;
    Ok(())
}

fn at_step(e: &Ev, s: &StepRow) -> bool {
    match e.body["index"].as_i64() {
        Some(i) => i == s.step,
        None => e.body["step"].as_str() == Some(s.step_id.as_str()),
    }
}

/// The first row of a run (the run, a step, a decision) that its events do not back, in
/// words; `None` when all are backed. Reads the record's approval events once (indexed by
/// form and record), the run's steps and its decisions.
pub(crate) fn unbacked_run(conn: &Reader, run: &ApprovalRow) -> Result<Option<String>, StoreError> {
    let all = trail(conn, &run.form, &run.record)?;
    let evs: Vec<&Ev> = all.iter().filter(|e| e.sound && e.body["approval"].as_i64() == Some(run.id)).collect();
    let steps = approvals::steps(conn, run.id)?;
    let who = format!("approval run {} of {} {}", run.id, run.form, run.record);
    if let Some(why) = unbacked_decision(conn, run, &evs, &steps, &who)? {
        return Ok(Some(why));
    }
    // Runs from before step events were recorded: only their decisions can be checked.
    if run.id <= legacy_runs(conn)? {
        return Ok(None);
    }
    Ok(unbacked_start(run, &evs, &steps, &who)
        .or_else(|| unbacked_step(&evs, &steps, &who))
        .or_else(|| unbacked_status(run, &evs, &steps, &who)))
}

/// A step's id by its index, or the index when the run has no such step.
fn step_name(steps: &[StepRow], i: i64) -> String {
    steps.iter().find(|s| s.step == i).map(|s| s.step_id.clone()).unwrap_or_else(|| i.to_string())
}

/// The first decision of the run (`who`) with no event of its member deciding so, at its step,
/// for its seat and record version.
fn unbacked_decision(
    conn: &Reader,
    run: &ApprovalRow,
    evs: &[&Ev],
    steps: &[StepRow],
    who: &str,
) -> Result<Option<String>, StoreError> {
    for d in approvals::decisions(conn, run.id)? {
        let kind = if d.decision == "approve" { "approval.approved" } else { "approval.rejected" };
        let step = steps.iter().find(|s| s.step == d.step);
        let backed = evs.iter().any(|e| {
            e.kind == kind
                && e.actor == d.member
                && step.is_some_and(|s| at_step(e, s))
                && e.body["on_behalf_of"].as_str() == d.on_behalf_of.as_deref()
                && e.body["version"].as_i64() == Some(d.version)
        });
        if !backed {
            return Ok(Some(format!(
                "the {} decision of `{}` on step `{}` in {who} has no audit event",
                d.decision,
                d.member,
                step_name(steps, d.step)
            )));
        }
    }
    Ok(None)
}

/// Unless the run's `approval.started` event records its version, chain and steps (numbered
/// from 0 without gaps), why not.
fn unbacked_start(run: &ApprovalRow, evs: &[&Ev], steps: &[StepRow], who: &str) -> Option<String> {
    let Some(started) = evs.iter().find(|e| e.kind == "approval.started") else {
        return Some(format!("{who} has no `approval.started` event"));
    };
    let count = started.body["steps"].as_i64();
    let contiguous = steps.iter().enumerate().all(|(i, s)| s.step == i as i64);
    if started.body["version"].as_i64() != Some(run.version)
        || started.body["chain"].as_str() != Some(run.chain.as_str())
        || count != Some(steps.len() as i64)
        || !contiguous
    {
        return Some(format!("{who} is not the run its `approval.started` event recorded"));
    }
    None
}

/// The first step whose status its events do not say, in words.
fn unbacked_step(evs: &[&Ev], steps: &[StepRow], who: &str) -> Option<String> {
    steps
        .iter()
        .find(|s| !step_backed(evs, s))
        .map(|s| format!("step `{}` of {who} is {} but its events do not say so", s.step_id, s.status))
}

/// Whether the events say what the step's status says: opened with its approvers and count
/// (open), skipped, rejected, or approved (signed, overridden, or by enough seats).
fn step_backed(evs: &[&Ev], s: &StepRow) -> bool {
    let of = |kind: &str| evs.iter().filter(|e| e.kind == kind && at_step(e, s)).count();
    let opened = evs
        .iter()
        .rev()
        .find(|e| (e.kind == "approval.step_opened" || e.kind == "approval.escalated") && at_step(e, s));
    let approvers: Option<Vec<String>> = opened.and_then(|e| serde_json::from_value(e.body["approvers"].clone()).ok());
    let needed = opened.and_then(|e| e.body["needed"].as_i64());
    match s.status {
        StepStatus::Waiting | StepStatus::Cancelled => true,
        StepStatus::Open => approvers.as_ref() == Some(&s.approvers) && needed == Some(s.needed),
        StepStatus::Skipped => of("approval.step_skipped") > 0,
        StepStatus::Rejected => of("approval.rejected") > 0,
        StepStatus::Approved => {
            let signature = opened.is_some_and(|e| e.body["signature"] == Value::Bool(true));
            let mut seats: Vec<&str> = evs
                .iter()
                .filter(|e| e.kind == "approval.approved" && at_step(e, s))
                .filter_map(|e| e.body["on_behalf_of"].as_str().or(Some(e.actor.as_str())))
                .collect();
            seats.sort_unstable();
            seats.dedup();
            (signature && evs.iter().any(|e| e.kind == "sign.signed"))
                || of("approval.override") > 0
                || needed.is_some_and(|n| seats.len() as i64 >= n.max(1))
        }
    }
}

/// Unless the run's status and current step fit its steps (and, once approved or signed, its
/// `approval.finished` event), why not.
fn unbacked_status(run: &ApprovalRow, evs: &[&Ev], steps: &[StepRow], who: &str) -> Option<String> {
    let done = |s: &&StepRow| matches!(s.status, StepStatus::Approved | StepStatus::Skipped);
    let consistent = match run.status {
        ApprovalStatus::Pending => {
            steps.iter().filter(|s| s.step < run.step).all(|s| done(&s))
                && steps.iter().any(|s| s.step == run.step && s.status == StepStatus::Open)
        }
        ApprovalStatus::Approved | ApprovalStatus::Signed => {
            steps.iter().all(|s| done(&s))
                && evs
                    .iter()
                    .any(|e| e.kind == "approval.finished" && e.body["status"].as_str() == Some(run.status.as_str()))
        }
        ApprovalStatus::Rejected | ApprovalStatus::Recalled | ApprovalStatus::Reset => true,
    };
    (!consistent).then(|| {
        format!("{who} is {} at step `{}` but its events do not say so", run.status, step_name(steps, run.step))
    })
}

/// Every run, signing link, task done and channel setting against its events: the first that
/// is not backed, in words.
pub(super) fn verify(conn: &Reader) -> Result<Option<String>, StoreError> {
    for run in approvals::all(conn)? {
        if let Some(why) = unbacked_run(conn, &run)? {
            return Ok(Some(why));
        }
    }
    if let Some(why) = verify_sign_links(conn)? {
        return Ok(Some(why));
    }
    let task: Option<(i64, String, String)> = conn
        .prepare(conn.pick(
            "SELECT t.id, t.form, t.record FROM tasks t WHERE t.status = 'done' AND NOT EXISTS (
                SELECT 1 FROM events e WHERE e.form = t.form AND e.record = t.record AND e.kind = 'task.done'
                AND json_extract(e.body, '$.task') = t.id AND e.actor = t.done_by)
             ORDER BY t.id LIMIT 1",
            "SELECT t.id, t.form, t.record FROM tasks t WHERE t.status = 'done' AND NOT EXISTS (
                SELECT 1 FROM events e WHERE e.form = t.form AND e.record = t.record AND e.kind = 'task.done'
                AND e.body::jsonb -> 'task' = to_jsonb(t.id) AND e.actor = t.done_by)
             ORDER BY t.id LIMIT 1",
        ))?
        .query_opt([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if let Some((id, form, record)) = task {
        return Ok(Some(format!("task {id} of {form} {record} is done but has no `task.done` event")));
    }
    verify_channels(conn)
}

fn verify_sign_links(conn: &Reader) -> Result<Option<String>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT form, record, version, version_hash, expires_at, created_by, used_at, signer FROM sign_links
         ORDER BY created_at, nonce",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (form, record): (String, String) = (r.get(0)?, r.get(1)?);
        let (version, hash, expires, by): (i64, String, String, String) = (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
        let (used, signer): (Option<String>, Option<String>) = (r.get(6)?, r.get(7)?);
        let evs = trail(conn, &form, &record)?;
        let same =
            |e: &Ev| e.body["version"].as_i64() == Some(version) && e.body["version_hash"].as_str() == Some(&hash);
        let issued = evs.iter().any(|e| {
            e.kind == "sign.link" && same(e) && e.actor == by && e.body["expires_at"].as_str() == Some(&expires)
        });
        if !issued {
            return Ok(Some(format!("a signing link for {form} {record} version {version} has no `sign.link` event")));
        }
        if used.is_some() {
            let signed = evs
                .iter()
                .any(|e| e.kind == "sign.signed" && same(e) && e.body["signer"].as_str() == signer.as_deref());
            if !signed {
                return Ok(Some(format!(
                    "the signing link of {form} {record} is marked used but no `sign.signed` event says so"
                )));
            }
        }
    }
    Ok(None)
}

fn verify_channels(conn: &Reader) -> Result<Option<String>, StoreError> {
    let mut stmt = conn.prepare(conn.pick(
        "SELECT c.channel, c.key, c.value,
                (SELECT e.body FROM events e WHERE e.kind = 'channel.set' AND json_extract(e.body, '$.channel') = c.channel
                   AND EXISTS (SELECT 1 FROM json_each(e.body, '$.set') j WHERE j.value = c.key)
                 ORDER BY e.seq DESC LIMIT 1)
         FROM channel_settings c ORDER BY c.channel, c.key",
        "SELECT c.channel, c.key, c.value,
                (SELECT e.body FROM events e WHERE e.kind = 'channel.set' AND e.body::jsonb ->> 'channel' = c.channel
                   AND jsonb_exists(e.body::jsonb -> 'set', c.key)
                 ORDER BY e.seq DESC LIMIT 1)
         FROM channel_settings c ORDER BY c.channel, c.key",
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (channel, key, value): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let body: Option<Value> = r.get::<Option<String>>(3)?.and_then(|b| serde_json::from_str(&b).ok());
        let backed = match &body {
            None => false,
            // Events from before settings were hashed name the key only.
            Some(b) if b.get("hashes").is_none() => true,
            Some(b) => b["hashes"][&key].as_str() == Some(setting_hash(&channel, &key, &value).as_str()),
        };
        if !backed {
            return Ok(Some(format!("channel setting {channel}.{key} differs from its last `channel.set` event")));
        }
    }
    Ok(None)
}

/// What a `channel.set` event records of a value: its hash, never the value (a secret).
pub fn setting_hash(channel: &str, key: &str, value: &str) -> String {
    sha256_hex(format!("{channel}\u{1f}{key}\u{1f}{value}").as_bytes())
}
