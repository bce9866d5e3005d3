//! A fixed set of engine workers behind a bounded queue. The engine is synchronous and its
//! scripts are CPU-bound, so HTTP handlers never run it on the async threads: they hand a job
//! to a worker and await the answer. A full queue is refused at once (the caller answers 503),
//! so a burst of heavy requests costs a bounded amount of memory and never starves the server.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::engine::{EngineError, Runtime};

type Job = Box<dyn FnOnce(&mut Runtime) + Send>;

/// Each worker's stack: deep enough for rhai's nesting limits with room to spare.
const WORKER_STACK: usize = 8 * 1024 * 1024;

/// The engine workers; dropping the pool lets them finish their jobs and stop.
#[derive(Debug)]
pub struct Pool {
    jobs: SyncSender<Job>,
    workers: usize,
    queue: usize,
}

/// The queue is full: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every engine worker is busy and the queue is full; try again shortly")]
pub struct Busy;

/// Why a job gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The queue was full.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The job panicked (a bug; the worker carries on) or the pool stopped.
    #[error("the engine worker failed while handling the request")]
    Lost,
}

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
        let open = Arc::new(open);
        let (ready_tx, ready) = std::sync::mpsc::channel::<Result<(), EngineError>>();
        for i in 0..workers {
            let (inbox, open, ready_tx) = (inbox.clone(), open.clone(), ready_tx.clone());
            std::thread::Builder::new()
                .name(format!("closeloop-engine-{i}"))
                .stack_size(WORKER_STACK)
                .spawn(move || match open() {
                    Ok(mut rt) => {
                        let _ = ready_tx.send(Ok(()));
                        work(&inbox, &mut rt);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                })
                .map_err(|e| EngineError::Input(format!("cannot start an engine worker: {e}")))?;
        }
        drop(ready_tx);
        for _ in 0..workers {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(EngineError::Input("an engine worker stopped while starting".into())),
            }
        }
        Ok(Pool { jobs, workers, queue })
    }

    /// How many workers, and how many jobs may wait.
    pub fn size(&self) -> (usize, usize) {
        (self.workers, self.queue)
    }

    /// Queues `f` for a worker; its answer arrives on the returned receiver. Refused at once
    /// when the queue is full.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Runtime) -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, Busy> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |rt| {
            let _ = tx.send(f(rt));
        });
        match self.jobs.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }

    /// Runs `f` on a worker and waits for its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Runtime) -> T + Send + 'static,
    ) -> Result<T, JobError> {
        self.submit(f)?.await.map_err(|_| JobError::Lost)
    }
}

/// A worker: takes jobs until the pool is dropped. A job that panics loses its answer (its
/// caller hears `Lost`), not the worker; its transaction was rolled back as it unwound.
fn work(inbox: &Mutex<Receiver<Job>>, rt: &mut Runtime) {
    loop {
        let job = match inbox.lock() {
            Ok(inbox) => inbox.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(rt)));
    }
}
