//! `closeloop run`: the long-running scheduler. It fires due timers and delivers the outbox,
//! then sleeps until the next due item, waking early when another process writes to the
//! database (SQLite's `data_version`, read twice a second: no busy polling), and stops cleanly
//! when asked: the pass in hand finishes (each of its writes is a whole transaction), nothing
//! is left half-written, and a restart carries on where it stopped.

use std::future::Future;
use std::time::Duration;

use crate::engine::{DeliveryReport, EngineError, Runtime, TickReport};

/// The longest the scheduler sleeps without looking again.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// How often it looks whether another process wrote.
const WATCH: Duration = Duration::from_millis(500);

/// How long it waits after a pass failed before it tries again.
const TROUBLE_PAUSE: Duration = Duration::from_secs(5);

/// What the scheduler reports as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A pass fired timers.
    Fired(&'a TickReport),
    /// A pass delivered messages.
    Delivered(&'a DeliveryReport),
    /// It sleeps this long (unless woken).
    Sleeping(Duration),
    /// A pass failed (the database full, or busy past every retry); it tries again shortly.
    Trouble(String),
    /// Something ops should look at, though the pass went well (the write-ahead log has grown
    /// past `WAL_ALERT_BYTES`: a long read holds it).
    Warning(String),
    /// It was asked to stop and has.
    Stopped,
}

impl Runtime {
    /// Runs the scheduler until `stop` completes: each pass fires what is due and delivers
    /// what is waiting; between passes it sleeps until the next due item or new work.
    pub async fn run_scheduler(
        &mut self,
        stop: impl Future<Output = ()>,
        mut progress: impl FnMut(Progress<'_>),
    ) -> Result<(), EngineError> {
        tokio::pin!(stop);
        let mut wal_warned = false;
        loop {
            // Read before the pass, so a write another process makes during it still wakes us.
            let seen = self.data_version().unwrap_or(-1);
            let wait = match self.pass(&mut progress) {
                Ok(wait) => wait,
                Err(e) => {
                    // A full disk or a database busy past every retry: say so and try again
                    // shortly; the scheduler does not give up on its own.
                    progress(Progress::Trouble(e.to_string()));
                    TROUBLE_PAUSE
                }
            };
            // A write-ahead log grown past the alert size is said once, until it shrinks.
            match self.store.wal_alert(crate::store::WAL_ALERT_BYTES) {
                Some(alert) if !wal_warned => {
                    progress(Progress::Warning(alert));
                    wal_warned = true;
                }
                None => wal_warned = false,
                Some(_) => {}
            }
            if wait.is_zero() {
                // More is due already (a full batch): go on, but let a stop request in first.
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    _ = tokio::task::yield_now() => continue,
                }
            }
            progress(Progress::Sleeping(wait));
            let this = &*self;
            let woken = async move {
                loop {
                    tokio::time::sleep(WATCH).await;
                    if this.data_version().map_or(true, |v| v != seen) {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(wait) => {}
                _ = woken => {}
            }
        }
        progress(Progress::Stopped);
        Ok(())
    }

    /// One pass: fire, deliver, and say how long to sleep.
    fn pass(&mut self, progress: &mut impl FnMut(Progress<'_>)) -> Result<Duration, EngineError> {
        let fired = self.tick()?;
        if !fired.timers.is_empty() {
            progress(Progress::Fired(&fired));
        }
        let delivered = self.deliver()?;
        if !delivered.deliveries.is_empty() || !delivered.unconfigured.is_empty() {
            progress(Progress::Delivered(&delivered));
        }
        Ok(match self.next_work()? {
            Some(due) => {
                let due: jiff::Timestamp = due.parse().unwrap_or_else(|_| self.clock.now());
                let left = due.duration_since(self.clock.now());
                Duration::try_from(left).unwrap_or(Duration::ZERO).min(MAX_SLEEP)
            }
            None => MAX_SLEEP,
        })
    }
}
