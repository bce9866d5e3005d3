//! Approval runs: one per submission of a record to a chain, its steps, and each decision.

use super::sql::{params, Row};
use super::{status, Reader, StoreError, Tx};

status_enum! {
    /// Where an approval run is.
    ApprovalStatus("approval") {
        /// Under way: a step is open.
        Pending = "pending",
        /// Every step approved (or skipped).
        Approved = "approved",
        /// Approved, and its signature step signed.
        Signed = "signed",
        /// A step rejected it.
        Rejected = "rejected",
        /// Its submitter took it back.
        Recalled = "recalled",
        /// The record changed under it: the record went back to draft.
        Reset = "reset",
    }
}

status_enum! {
    /// Where one step of an approval run is.
    StepStatus("approval step") {
        /// Not reached yet.
        Waiting = "waiting",
        /// Waiting for its approvers.
        Open = "open",
        /// Approved (or signed).
        Approved = "approved",
        /// Passed over: its condition did not hold, or nobody could approve it.
        Skipped = "skipped",
        /// Rejected.
        Rejected = "rejected",
        /// Ended unreached or undecided: the run was recalled or reset.
        Cancelled = "cancelled",
    }
}

/// One run of a chain on one version of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    /// Its id.
    pub id: i64,
    /// The app.
    pub app: String,
    /// The chain.
    pub chain: String,
    /// The record's form.
    pub form: String,
    /// The record.
    pub record: String,
    /// The version the decisions bind to.
    pub version: i64,
    /// Where it is.
    pub status: ApprovalStatus,
    /// The step in hand (0-based).
    pub step: i64,
    /// Who submitted it.
    pub submitter: String,
    /// When it started.
    pub started_at: String,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    /// The run.
    pub approval: i64,
    /// Its position.
    pub step: i64,
    /// Its id in the chain.
    pub step_id: String,
    /// Where it is.
    pub status: StepStatus,
    /// Who may decide (JSON array of member ids).
    pub approvers: Vec<String>,
    /// How many approvals it needs.
    pub needed: i64,
    /// When it opened.
    pub opened_at: Option<String>,
    /// When it times out.
    pub due_at: Option<String>,
    /// Why it was skipped, escalated, …
    pub note: Option<String>,
}

const RUN: &str = "id, app, chain, form, record, version, status, step, submitter, started_at";

fn run(r: &Row<'_>) -> Result<ApprovalRow, StoreError> {
    Ok(ApprovalRow {
        id: r.get(0)?,
        app: r.get(1)?,
        chain: r.get(2)?,
        form: r.get(3)?,
        record: r.get(4)?,
        version: r.get(5)?,
        status: status(r, 6)?,
        step: r.get(7)?,
        submitter: r.get(8)?,
        started_at: r.get(9)?,
    })
}

fn step(r: &Row<'_>) -> Result<StepRow, StoreError> {
    let approvers: String = r.get(4)?;
    Ok(StepRow {
        approval: r.get(0)?,
        step: r.get(1)?,
        step_id: r.get(2)?,
        status: status(r, 3)?,
        approvers: serde_json::from_str(&approvers).unwrap_or_default(),
        needed: r.get(5)?,
        opened_at: r.get(6)?,
        due_at: r.get(7)?,
        note: r.get(8)?,
    })
}

/// Starts a run; `None` when the record already has one pending.
pub(crate) fn start(tx: &Tx<'_>, a: &ApprovalRow) -> Result<Option<i64>, StoreError> {
    let n = tx
        .prepare_cached(
            "INSERT INTO approvals (app, chain, form, record, version, status, step, submitter, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?7)
             ON CONFLICT (form, record) WHERE status = 'pending' DO NOTHING",
        )?
        .execute(params![a.app, a.chain, a.form, a.record, a.version, a.submitter, a.started_at])?;
    (n == 1).then(|| tx.last_insert_rowid()).transpose()
}

/// Adds a step to a run, `waiting`.
pub(crate) fn add_step(tx: &Tx<'_>, approval: i64, index: i64, step_id: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO approval_steps (approval, step, step_id, status, approvers, needed) VALUES (?1, ?2, ?3, 'waiting', '[]', 0)",
    )?
    .execute(params![approval, index, step_id])?;
    Ok(())
}

/// Sets a step's state.
#[allow(clippy::too_many_arguments)]
pub(crate) fn set_step(
    tx: &Tx<'_>,
    approval: i64,
    index: i64,
    status: StepStatus,
    approvers: &[String],
    needed: i64,
    at: &str,
    due_at: Option<&str>,
    note: Option<&str>,
) -> Result<(), StoreError> {
    let approvers = serde_json::to_string(approvers)?;
    tx.prepare_cached(
        "UPDATE approval_steps SET status = ?3, approvers = ?4, needed = ?5,
                opened_at = COALESCE(opened_at, ?6), due_at = ?7, note = COALESCE(?8, note),
                decided_at = CASE WHEN ?3 IN ('approved', 'skipped', 'rejected', 'cancelled') THEN ?6 END
         WHERE approval = ?1 AND step = ?2",
    )?
    .execute(params![approval, index, status.as_str(), approvers, needed, at, due_at, note])?;
    Ok(())
}

/// Moves a run to another step or status.
pub(crate) fn set_run(
    tx: &Tx<'_>,
    id: i64,
    status: ApprovalStatus,
    step: i64,
    at: Option<&str>,
) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE approvals SET status = ?2, step = ?3, finished_at = ?4 WHERE id = ?1")?
        .execute(params![id, status.as_str(), step, at])?;
    Ok(())
}

/// A record's pending run.
pub(crate) fn pending(conn: &Reader, form: &str, record: &str) -> Result<Option<ApprovalRow>, StoreError> {
    conn.prepare_cached(&format!("SELECT {RUN} FROM approvals WHERE form = ?1 AND record = ?2 AND status = 'pending'"))?
        .query_opt(params![form, record], run)
}

/// A run by id.
pub(crate) fn get(conn: &Reader, id: i64) -> Result<Option<ApprovalRow>, StoreError> {
    conn.prepare_cached(&format!("SELECT {RUN} FROM approvals WHERE id = ?1"))?.query_opt([id], run)
}

/// A run's steps, in order.
pub(crate) fn steps(conn: &Reader, approval: i64) -> Result<Vec<StepRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT approval, step, step_id, status, approvers, needed, opened_at, due_at, note
         FROM approval_steps WHERE approval = ?1 ORDER BY step",
    )?;
    let rows = stmt.query_map([approval], step)?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Every open step of a pending run, with its run: what waits for someone.
pub(crate) fn open_steps(conn: &Reader) -> Result<Vec<(ApprovalRow, StepRow)>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {RUN} FROM approvals WHERE status = 'pending' ORDER BY started_at, id"))?;
    let runs = stmt.query_map([], run)?.collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for r in runs {
        for s in steps(conn, r.id)? {
            if s.status == StepStatus::Open && s.step == r.step {
                out.push((r.clone(), s));
            }
        }
    }
    Ok(out)
}

/// One decision to record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision<'a> {
    /// The run.
    pub approval: i64,
    /// The step.
    pub step: i64,
    /// Who decides.
    pub member: &'a str,
    /// The absent approver a delegate decides for.
    pub on_behalf_of: Option<&'a str>,
    /// `approve` or `reject`.
    pub decision: &'a str,
    /// Their comment.
    pub comment: Option<&'a str>,
    /// The reason of an override (break-glass).
    pub override_reason: Option<&'a str>,
    /// When.
    pub at: &'a str,
    /// The version it binds to.
    pub version: i64,
}

/// Records a decision; false when this member already decided this step, or this approver's
/// seat is already filled (each counts once).
pub(crate) fn decide(tx: &Tx<'_>, d: &Decision<'_>) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "INSERT INTO approval_decisions (approval, step, member, on_behalf_of, decision, comment, at, version, override_reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            d.approval,
            d.step,
            d.member,
            d.on_behalf_of,
            d.decision,
            d.comment,
            d.at,
            d.version,
            d.override_reason
        ])?;
    Ok(n == 1)
}

/// The step and member of a run's override, if it had one.
pub(crate) fn overridden(conn: &Reader, approval: i64) -> Result<Option<(i64, String)>, StoreError> {
    conn.prepare_cached(
        "SELECT step, member FROM approval_decisions WHERE approval = ?1 AND override_reason IS NOT NULL LIMIT 1",
    )?
    .query_opt([approval], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// The approvers whose seats approved a step so far (a delegate's approval fills the absent
/// approver's seat).
pub(crate) fn approvals_of(conn: &Reader, approval: i64, step: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT COALESCE(on_behalf_of, member) FROM approval_decisions
         WHERE approval = ?1 AND step = ?2 AND decision = 'approve' ORDER BY at",
    )?;
    let rows = stmt.query_map(params![approval, step], |r| r.get(0))?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Everyone who decided a step, and everyone on whose behalf someone did.
pub(crate) fn deciders_of(conn: &Reader, approval: i64, step: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT member FROM approval_decisions WHERE approval = ?1 AND step = ?2
         UNION SELECT on_behalf_of FROM approval_decisions WHERE approval = ?1 AND step = ?2 AND on_behalf_of IS NOT NULL",
    )?;
    let rows = stmt.query_map(params![approval, step], |r| r.get(0))?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Everyone who approved any step of a run, in person or through a delegate.
pub(crate) fn approvers_so_far(conn: &Reader, approval: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT member FROM approval_decisions WHERE approval = ?1 AND decision = 'approve'
         UNION SELECT on_behalf_of FROM approval_decisions
         WHERE approval = ?1 AND decision = 'approve' AND on_behalf_of IS NOT NULL",
    )?;
    let rows = stmt.query_map([approval], |r| r.get(0))?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// A record's most recent run, whatever its status.
pub(crate) fn latest(conn: &Reader, form: &str, record: &str) -> Result<Option<ApprovalRow>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {RUN} FROM approvals WHERE form = ?1 AND record = ?2 ORDER BY id DESC LIMIT 1"
    ))?
    .query_opt(params![form, record], run)
}

/// Every run, oldest first (for `audit verify`).
pub(crate) fn all(conn: &Reader) -> Result<Vec<ApprovalRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {RUN} FROM approvals ORDER BY id"))?;
    let rows = stmt.query_map([], run)?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// A stored decision, as the audit cross-check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecisionRow {
    /// The step.
    pub step: i64,
    /// Who decided.
    pub member: String,
    /// The absent approver they decided for.
    pub on_behalf_of: Option<String>,
    /// `approve` or `reject`.
    pub decision: String,
    /// The version it binds to.
    pub version: i64,
}

/// A run's decisions, in the order they were made.
pub(crate) fn decisions(conn: &Reader, approval: i64) -> Result<Vec<DecisionRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT step, member, on_behalf_of, decision, version FROM approval_decisions WHERE approval = ?1
         ORDER BY at, step, member",
    )?;
    let rows = stmt.query_map([approval], |r| {
        Ok(DecisionRow {
            step: r.get(0)?,
            member: r.get(1)?,
            on_behalf_of: r.get(2)?,
            decision: r.get(3)?,
            version: r.get(4)?,
        })
    })?;
    rows.collect::<Result<Vec<_>, _>>()
}
