//! Time, injected. The engine asks a [`Clock`]; only [`SystemClock`] reads the system time, so
//! every timer, SLA and report can be tested without sleeping.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

/// Where the engine gets "now".
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until moved: the CLI's `--now`, and tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: Timestamp) -> Self {
        ManualClock(Mutex::new(at))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: SignedDuration) {
        if let Ok(mut t) = self.0.lock() {
            *t = t.checked_add(by).unwrap_or(*t);
        }
    }

    /// Sets the clock.
    pub fn set(&self, at: Timestamp) {
        if let Ok(mut t) = self.0.lock() {
            *t = at;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.lock().map(|t| *t).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

/// An instant as stored and shown: RFC 3339 in UTC with microseconds, so text order is time
/// order (`2026-11-26T01:00:00.000000Z`).
pub fn stamp(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A stored instant as people read it: in `zone`, to the minute, with the offset
/// (`2026-11-30 09:45 +08:00`). Text that is not an instant comes back as it is.
pub fn shown(stamp: &str, zone: &jiff::tz::TimeZone) -> String {
    match stamp.parse::<Timestamp>() {
        Ok(at) => at.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M %:z").to_string(),
        Err(_) => stamp.to_string(),
    }
}
