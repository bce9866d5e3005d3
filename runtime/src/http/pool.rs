//! A fixed set of engine workers behind a bounded queue. The engine is synchronous and its
//! scripts are CPU-bound, so HTTP handlers never run it on the async threads: they hand a job
//! to a worker and await the answer. A full queue is refused at once (the caller answers 503),
//! so a burst of heavy requests costs a bounded amount of memory and never starves the server.
//!
//! Writes are one transaction each and SQLite serialises them, so more workers help reads and
//! the work around a transaction, not the number of events committed per second.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::engine::{EngineError, Runtime};

type Job = Box<dyn FnOnce(&mut Runtime) + Send>;
type Opener = dyn Fn() -> Result<Runtime, EngineError> + Send + Sync;

/// Each worker's stack: deep enough for rhai's nesting limits with room to spare.
const WORKER_STACK: usize = 8 * 1024 * 1024;

/// The engine workers.
pub struct Pool {
    /// `None` once closed.
    jobs: Mutex<Option<SyncSender<Job>>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    workers: usize,
    queue: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("workers", &self.workers).field("queue", &self.queue).finish_non_exhaustive()
    }
}

/// The queue is full (or the pool closed): try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every engine worker is busy and the queue is full; try again shortly")]
pub struct Busy;

impl Pool {
    /// Starts `workers` threads, each with a `Runtime` of its own from `open` (its own
    /// database connection), and a queue of at most `queue` waiting jobs. Fails if any worker
    /// cannot open its runtime.
    pub fn start(
        workers: usize,
        queue: usize,
        open: impl Fn() -> Result<Runtime, EngineError> + Send + Sync + 'static,
    ) -> Result<Pool, EngineError> {
        let workers = workers.max(1);
        let (jobs, inbox) = sync_channel::<Job>(queue);
        let inbox = Arc::new(Mutex::new(inbox));
        let open: Arc<Opener> = Arc::new(open);
        let (ready_tx, ready) = std::sync::mpsc::channel::<Result<(), EngineError>>();
        let mut handles = Vec::new();
        for i in 0..workers {
            let (inbox, open, ready_tx) = (inbox.clone(), open.clone(), ready_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("closeloop-engine-{i}"))
                .stack_size(WORKER_STACK)
                .spawn(move || match open() {
                    Ok(rt) => {
                        let _ = ready_tx.send(Ok(()));
                        work(&inbox, rt, &*open);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                })
                .map_err(|e| EngineError::Input(format!("cannot start an engine worker: {e}")))?;
            handles.push(handle);
        }
        drop(ready_tx);
        for _ in 0..workers {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(EngineError::Input("an engine worker stopped while starting".into())),
            }
        }
        Ok(Pool { jobs: Mutex::new(Some(jobs)), handles: Mutex::new(handles), workers, queue })
    }

    /// How many workers, and how many jobs may wait.
    pub fn size(&self) -> (usize, usize) {
        (self.workers, self.queue)
    }

    /// Queues `f` for a worker; its answer arrives on the returned receiver. Refused at once
    /// when the queue is full. A job whose receiver is gone by the time a worker takes it (its
    /// caller gave up) is skipped, not run.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Runtime) -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, Busy> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |rt| {
            if !tx.is_closed() {
                let _ = tx.send(f(rt));
            }
        });
        let jobs = self.jobs.lock().map_err(|_| Busy)?;
        let Some(jobs) = jobs.as_ref() else { return Err(Busy) };
        match jobs.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }

    /// Takes no more jobs, lets the workers finish what is queued, and waits up to `grace`
    /// for them to stop (so their stores close cleanly). True when all stopped in time.
    pub fn close(&self, grace: Duration) -> bool {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let handles: Vec<JoinHandle<()>> = self.handles.lock().map(|mut h| h.drain(..).collect()).unwrap_or_default();
        let (done, all) = std::sync::mpsc::channel();
        let joiner = std::thread::spawn(move || {
            for h in handles {
                let _ = h.join();
            }
            let _ = done.send(());
        });
        let stopped = all.recv_timeout(grace).is_ok();
        if stopped {
            let _ = joiner.join();
        }
        stopped
    }
}

/// A worker: takes jobs until the pool closes. A job that panics loses its answer (its caller
/// hears its sender dropped); the worker then opens a fresh runtime rather than trust one a panic left
/// half-changed (its transaction rolled back as it unwound).
fn work(inbox: &Mutex<Receiver<Job>>, mut rt: Runtime, open: &Opener) {
    loop {
        let job = match inbox.lock() {
            Ok(inbox) => inbox.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut rt))).is_err() {
            match open() {
                Ok(fresh) => rt = fresh,
                Err(_) => return,
            }
        }
    }
}
