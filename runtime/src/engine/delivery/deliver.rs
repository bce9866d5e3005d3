//! Delivering the outbox: at least once, with the message's idempotency key on every attempt,
//! retried with exponential backoff and jitter up to a cap, then parked as a dead letter that
//! an operator can replay.
//!
//! A pass leases the due messages in one short transaction, sends them with no transaction
//! open (one thread per channel, so a slow endpoint holds up only its own channel and never a
//! record write), and records each attempt in a transaction of its own as its send begins and
//! as it ends. A deliverer that dies mid-send leaves its lease to run out; the message is then
//! sent again, with the same key, and the interrupted attempt counts. A message whose send never
//! began (the deliverer died first) spends no attempt: a lease that runs out is not a failure.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{EngineError, Runtime};
use crate::model::ChannelKind;
use crate::store::{outbox, AttemptRow, OutboxRow, OutboxStatus};
use crate::transport::{self, Failure, Outgoing, Settings};

/// How many times a message is tried before it becomes a dead letter.
pub const MAX_ATTEMPTS: i64 = 8;

/// The first retry waits this long; each next one twice as long, up to [`BACKOFF_CAP`].
pub const BACKOFF_BASE: jiff::SignedDuration = jiff::SignedDuration::from_secs(30);

/// The longest wait between two attempts.
pub const BACKOFF_CAP: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// How long a deliverer holds a message it is sending.
const LEASE: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

/// How many messages one pass takes.
const PASS: usize = 500;

/// The most of a pass one channel may use; what it has not sent by then waits for the next
/// pass. With the longest send timeout (120 s) a pass stays well inside its lease.
pub const CHANNEL_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// What one attempt of a pass did to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOutcome {
    /// Delivered.
    Sent,
    /// Failed for now; tried again at `next_at`.
    Retry,
    /// Became a dead letter.
    Dead,
    /// Its lease ran out and another deliverer took it over; this answer was not applied.
    Lost,
}

impl DeliveryOutcome {
    /// The text shown for it (and in JSON).
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::Retry => "retry",
            DeliveryOutcome::Dead => "dead",
            DeliveryOutcome::Lost => "lost",
        }
    }
}

impl std::fmt::Display for DeliveryOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What happened to one message in a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The outbox id.
    pub id: i64,
    /// The channel.
    pub channel: String,
    /// Who it was for.
    pub to: String,
    /// Its idempotency key.
    pub key: String,
    /// `sent`, `retry` (and when), `dead`, or `lost` (another deliverer took it over).
    pub outcome: DeliveryOutcome,
    /// What the other side answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it is tried again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_at: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
}

/// What a delivery pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryReport {
    /// "Now", as the pass saw it.
    pub now: String,
    /// Each message it took.
    pub deliveries: Vec<Delivery>,
    /// Channels with messages waiting that are not configured yet, and what they lack.
    pub unconfigured: Vec<String>,
}

/// The wait before attempt `n + 1` after `n` failed ones: doubling from 30 s, capped at an
/// hour, times a jitter in [0.5, 1) drawn from the message's key, so retries of many messages
/// spread out but each message's schedule is reproducible.
pub fn backoff(key: &str, failed: i64) -> jiff::SignedDuration {
    let exp = u32::try_from(failed.clamp(1, 30) - 1).unwrap_or(0);
    let base = BACKOFF_BASE.as_secs().saturating_mul(1i64 << exp.min(20)).min(BACKOFF_CAP.as_secs());
    let seed = crate::store::sha256_hex(format!("{key}/{failed}").as_bytes());
    let n = u64::from_str_radix(seed.get(..8).unwrap_or("0"), 16).unwrap_or(0);
    let jitter = 0.5 + (n as f64 / f64::from(u32::MAX)) / 2.0;
    jiff::SignedDuration::from_secs((base as f64 * jitter).round() as i64)
}

impl Runtime {
    /// One delivery pass: sends every message due now, each channel on its own thread, and
    /// records each attempt. Messages of channels not configured yet stay pending.
    ///
    /// A channel gets at most [`CHANNEL_BUDGET`] of a pass, and stops at its first failure that
    /// may be temporary: its other messages are given back untried, so a dead or slow endpoint
    /// costs one attempt per pass, never holds up the scheduler, and never outlives the lease.
    pub fn deliver(&mut self) -> Result<DeliveryReport, EngineError> {
        self.refresh()?;
        let pass = Pass::begin(self.clock.now());
        let kinds = self.channel_kinds();
        let settings = self.settings()?;
        let claimed = self.store.write(|tx| outbox::claim_due(tx, &pass.at, &pass.lease, &pass.token, PASS))?;
        let mut report = DeliveryReport { now: pass.at.clone(), ..DeliveryReport::default() };
        let sorted = sort_claimed(claimed, &kinds, &settings, &mut report.unconfigured);
        self.set_aside(&sorted, &pass)?;
        report.deliveries.extend(sorted.doomed.iter().map(|(m, why)| doomed_delivery(m, why)));
        self.send_all(&sorted.groups, &kinds, &settings, &pass, &mut report.deliveries)?;
        report.deliveries.sort_by_key(|d| d.id);
        Ok(report)
    }

    /// In one transaction: the waiting go back and the doomed become dead letters. Nothing is
    /// counted against the messages to send: an attempt counts when its send begins.
    fn set_aside(&mut self, sorted: &Sorted, pass: &Pass) -> Result<(), EngineError> {
        let later = crate::clock::stamp(pass.now.checked_add(jiff::SignedDuration::from_mins(1)).unwrap_or(pass.now));
        self.store.write(|tx| {
            for id in &sorted.waiting {
                outbox::release(tx, *id, &pass.token, &later)?;
            }
            for (m, why) in &sorted.doomed {
                if outbox::settle(tx, m.id, &pass.token, OutboxStatus::Dead, None, Some(why))? {
                    dead_letter(tx, m, &pass.at, why)?;
                }
            }
            Ok::<_, EngineError>(())
        })
    }

    /// Sends each channel's messages on a thread of its own. This thread does the writing: it
    /// records each attempt as its send begins (before the request leaves, so a deliverer that
    /// dies mid-send leaves the trace of what it may have sent) and as it ends, adding what
    /// became of each message to `deliveries`.
    fn send_all(
        &mut self,
        groups: &BTreeMap<String, Vec<OutboxRow>>,
        kinds: &BTreeMap<String, ChannelKind>,
        settings: &BTreeMap<String, Settings>,
        pass: &Pass,
        deliveries: &mut Vec<Delivery>,
    ) -> Result<(), EngineError> {
        let (sender, reports) = std::sync::mpsc::channel::<Report>();
        let store = &mut self.store;
        let sends = self.transport.as_ref();
        std::thread::scope(|scope| -> Result<(), EngineError> {
            for (channel, messages) in groups {
                let (Some(kind), own) =
                    (kinds.get(channel).copied(), settings.get(channel).cloned().unwrap_or_default())
                else {
                    continue;
                };
                let sender = sender.clone();
                scope.spawn(move || send_channel(messages, kind, &own, sends, &sender, pass));
            }
            drop(sender);
            let mut started: BTreeMap<i64, i64> = BTreeMap::new();
            for report in reports {
                match report {
                    Report::Begins { message, at, go } => {
                        let attempt = store.write(|tx| outbox::attempt_started(tx, message, &at))?;
                        started.insert(message, attempt);
                        // A channel whose thread has gone needs no answer.
                        let _ = go.send(());
                    }
                    Report::Ended(ended) => {
                        let (m, done) = *ended;
                        let attempt = started.get(&m.id).copied();
                        let delivery = store.write(|tx| record_attempt(tx, &m, &done, attempt, pass))?;
                        deliveries.extend(delivery);
                    }
                }
            }
            Ok(())
        })
    }

    /// Puts a dead letter back in line, to be sent at the next pass.
    pub fn retry_message(&mut self, id: i64, actor: &str) -> Result<OutboxRow, EngineError> {
        let at = self.now();
        self.store.write(|tx| {
            let Some(m) = outbox::get(tx, id)? else {
                return Err(EngineError::Input(format!("there is no message {id}")));
            };
            if !outbox::replay(tx, id, &at)? {
                return Err(EngineError::Refused(format!(
                    "message {id} is {}; only dead letters are replayed",
                    m.status
                )));
            }
            let body = serde_json::json!({"message": id, "key": m.key}).to_string();
            crate::store::audit::append(
                tx,
                &crate::store::NewEvent::note(
                    &at,
                    actor,
                    "outbox.replayed",
                    m.form.as_deref().zip(m.record.as_deref()),
                    &body,
                ),
            )?;
            Ok(())
        })?;
        outbox::get(self.store.reader(), id)?.ok_or_else(|| EngineError::Input(format!("there is no message {id}")))
    }

    /// The outbox: messages of one status (or every message), oldest first.
    pub fn outbox(&self, status: Option<OutboxStatus>) -> Result<Vec<OutboxRow>, EngineError> {
        Ok(outbox::list(self.store.reader(), status)?)
    }

    /// A message's delivery attempts, oldest first.
    pub fn attempts(&self, id: i64) -> Result<Vec<AttemptRow>, EngineError> {
        Ok(outbox::attempts(self.store.reader(), id)?)
    }

    /// When the scheduler next has work: the earliest due timer or message.
    pub fn next_work(&self) -> Result<Option<String>, EngineError> {
        let timer = crate::store::timers::next_due(self.store.reader())?;
        let message = outbox::next_due(self.store.reader())?;
        Ok([timer, message].into_iter().flatten().min())
    }

    /// SQLite's count of commits by other connections: changes when another process wrote.
    pub fn data_version(&self) -> Result<i64, EngineError> {
        Ok(self.store.data_version()?)
    }
}

/// Stores the alert a dead letter raises: an `outbox.dead` event on its record.
fn dead_letter(tx: &crate::store::Tx<'_>, m: &OutboxRow, at: &str, why: &str) -> Result<(), crate::store::StoreError> {
    let body = serde_json::json!({"message": m.id, "key": m.key, "channel": m.channel, "error": why}).to_string();
    let about = m.form.as_deref().zip(m.record.as_deref());
    crate::store::audit::append(tx, &crate::store::NewEvent::note(at, "system", "outbox.dead", about, &body))?;
    Ok(())
}

/// The fixed facts of one delivery pass, shared by its channel threads and its recording.
struct Pass {
    /// "Now", as the pass saw it.
    now: jiff::Timestamp,
    /// When the pass began, for the channels' budget.
    started: std::time::Instant,
    /// `now`, stamped.
    at: String,
    /// Until when the pass holds the messages it claims.
    lease: String,
    /// The pass's lease token: tells its claims from another deliverer's.
    token: String,
}

impl Pass {
    /// A new pass at `now`, with a token no other pass (of this or another process) shares.
    fn begin(now: jiff::Timestamp) -> Pass {
        static PASSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let started = std::time::Instant::now();
        let at = crate::clock::stamp(now);
        let lease = crate::clock::stamp(now.checked_add(LEASE).unwrap_or(now));
        let pass = PASSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{}-{pass}-{at}", std::process::id());
        Pass { now, started, at, lease, token }
    }
}

/// The messages a pass claimed, sorted by what it does with them.
#[derive(Default)]
struct Sorted {
    /// Messages to send, by channel.
    groups: BTreeMap<String, Vec<OutboxRow>>,
    /// Messages of channels still lacking settings: given back untried.
    waiting: Vec<i64>,
    /// Messages that can never be sent, and why: they become dead letters.
    doomed: Vec<(OutboxRow, String)>,
}

/// Sorts the claimed messages: those of channels no app declares any more, or already tried
/// too often, are doomed; those of unconfigured channels wait (and why goes to
/// `unconfigured`, once per channel); the rest are grouped by channel to be sent.
fn sort_claimed(
    claimed: Vec<OutboxRow>,
    kinds: &BTreeMap<String, ChannelKind>,
    settings: &BTreeMap<String, Settings>,
    unconfigured: &mut Vec<String>,
) -> Sorted {
    let mut sorted = Sorted::default();
    for m in claimed {
        let Some(kind) = kinds.get(&m.channel).copied() else {
            sorted.doomed.push((m, "no installed app declares this channel any more".into()));
            continue;
        };
        let own = settings.get(&m.channel).cloned().unwrap_or_default();
        let missing: Vec<&str> = transport::required(kind).iter().copied().filter(|r| !own.contains_key(*r)).collect();
        if !missing.is_empty() {
            let why = format!("{}: its settings need {}", m.channel, missing.join(", "));
            if !unconfigured.contains(&why) {
                unconfigured.push(why);
            }
            sorted.waiting.push(m.id);
            continue;
        }
        if m.attempts >= MAX_ATTEMPTS {
            // Its earlier attempts were interrupted (a deliverer died each time).
            let why = format!("{} attempts were interrupted before an answer was recorded", m.attempts);
            sorted.doomed.push((m, why));
            continue;
        }
        sorted.groups.entry(m.channel.clone()).or_default().push(m);
    }
    sorted
}

/// How the report shows a message that became a dead letter without being tried.
fn doomed_delivery(m: &OutboxRow, why: &str) -> Delivery {
    Delivery {
        id: m.id,
        channel: m.channel.clone(),
        to: m.recipient.clone(),
        key: m.key.clone(),
        outcome: DeliveryOutcome::Dead,
        status: None,
        error: Some(why.to_string()),
        next_at: None,
        attempts: m.attempts,
    }
}

/// What a channel thread tells the recording thread.
enum Report {
    /// A send is about to begin: record the attempt, then say `go`.
    Begins { message: i64, at: String, go: std::sync::mpsc::SyncSender<()> },
    /// What became of a message.
    Ended(Box<(OutboxRow, Done)>),
}

/// What a channel thread did with one message.
enum Done {
    Tried {
        at: String,
        millis: i64,
        result: Result<String, Failure>,
    },
    /// Not tried in this pass; due again at the time given.
    Held(String),
}

/// A channel thread's body: sends the channel's messages in turn, until the channel's budget
/// is spent or a failure that may be temporary, and hands back the rest as held. Stops when
/// the recording side has gone.
fn send_channel(
    messages: &[OutboxRow],
    kind: ChannelKind,
    own: &Settings,
    sends: &dyn transport::Transport,
    sender: &std::sync::mpsc::Sender<Report>,
    pass: &Pass,
) {
    let now = pass.now;
    let mut hold: Option<String> = None;
    for m in messages {
        if hold.is_none() && pass.started.elapsed() > CHANNEL_BUDGET {
            hold = Some(crate::clock::stamp(now));
        }
        if let Some(until) = &hold {
            if sender.send(Report::Ended(Box::new((m.clone(), Done::Held(until.clone()))))).is_err() {
                return;
            }
            continue;
        }
        // The attempt is on record before the request leaves; no answer means the recording
        // side has gone (its write failed), and nothing more is sent.
        let elapsed = jiff::SignedDuration::try_from(pass.started.elapsed()).unwrap_or_default();
        let sent_at = now.checked_add(elapsed).unwrap_or(now);
        let (go, begun) = std::sync::mpsc::sync_channel(1);
        let begins = Report::Begins { message: m.id, at: crate::clock::stamp(sent_at), go };
        if sender.send(begins).is_err() || begun.recv().is_err() {
            return;
        }
        let started = std::time::Instant::now();
        let outgoing = Outgoing {
            id: m.id,
            key: &m.key,
            channel: &m.channel,
            to: &m.recipient,
            address: m.address.as_deref(),
            subject: m.subject.as_deref(),
            body: &m.body,
            form: m.form.as_deref(),
            record: m.record.as_deref(),
        };
        // `sent_at`, the time of this send, goes into signatures and mail dates.
        let result = sends.send(kind, own, &outgoing, sent_at);
        if matches!(&result, Err(f) if !f.permanent) {
            // The endpoint is down or slow: the rest of this channel waits.
            let retry = now.checked_add(BACKOFF_BASE).unwrap_or(now);
            hold = Some(crate::clock::stamp(retry));
        }
        let millis = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let done = Done::Tried { at: crate::clock::stamp(sent_at), millis, result };
        if sender.send(Report::Ended(Box::new((m.clone(), done)))).is_err() {
            return;
        }
    }
}

/// Records what a channel thread did with message `m` (its attempt `attempt`): a held message
/// goes back untried; a tried one is settled as sent, retried later or dead, unless its lease
/// ran out meanwhile. Returns how the report shows it (nothing for a held message).
fn record_attempt(
    tx: &crate::store::Tx<'_>,
    m: &OutboxRow,
    done: &Done,
    attempt: Option<i64>,
    pass: &Pass,
) -> Result<Option<Delivery>, EngineError> {
    let (attempt_at, millis, result) = match done {
        // Held before its send began: no attempt was made, none is counted.
        Done::Held(until) => {
            outbox::release(tx, m.id, &pass.token, until)?;
            return Ok(None);
        }
        Done::Tried { at, millis, result } => (at, *millis, result),
    };
    let (ok, status, error) = match result {
        Ok(status) => (true, Some(status.clone()), None),
        Err(f) => (false, f.status.clone(), Some(f.error.clone())),
    };
    let tries = m.attempts + 1;
    let (outcome, status_after, next_at) = verdict(result, &m.key, tries, pass.now);
    let held = outbox::settle(tx, m.id, &pass.token, status_after, next_at.as_deref(), error.as_deref())?;
    let (outcome, error) = if held {
        (outcome, error)
    } else {
        // The lease ran out and another deliverer took the message over: its
        // verdict stands; this answer is only kept in the attempt.
        (
            DeliveryOutcome::Lost,
            Some(format!("{}; lease lost, the answer was not applied", error.as_deref().unwrap_or("sent"))),
        )
    };
    if let Some(a) = attempt {
        outbox::attempt_finished(tx, a, ok, status.as_deref(), error.as_deref(), millis)?;
    }
    if held && outcome == DeliveryOutcome::Dead {
        dead_letter(tx, m, attempt_at, error.as_deref().unwrap_or("failed"))?;
    }
    Ok(Some(Delivery {
        id: m.id,
        channel: m.channel.clone(),
        to: m.recipient.clone(),
        key: m.key.clone(),
        outcome,
        status,
        error,
        next_at,
        attempts: tries,
    }))
}

/// What attempt number `tries` of the message keyed `key` leads to: sent; dead when the
/// failure is permanent or the attempts are used up; else a retry, waiting as `pending` until
/// the returned time.
fn verdict(
    result: &Result<String, Failure>,
    key: &str,
    tries: i64,
    now: jiff::Timestamp,
) -> (DeliveryOutcome, OutboxStatus, Option<String>) {
    match result {
        Ok(_) => (DeliveryOutcome::Sent, OutboxStatus::Sent, None),
        Err(f) if f.permanent || tries >= MAX_ATTEMPTS => (DeliveryOutcome::Dead, OutboxStatus::Dead, None),
        Err(_) => {
            let next = now.checked_add(backoff(key, tries)).unwrap_or(now);
            (DeliveryOutcome::Retry, OutboxStatus::Pending, Some(crate::clock::stamp(next)))
        }
    }
}
