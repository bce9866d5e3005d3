//! `closeloop serve`: the HTTP API over a pool of engine workers, until SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Subcommand;

use crate::{Context, UserError};

/// The server command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The HTTP API and the pages until SIGINT/SIGTERM, and the scheduler beside them (timers,
    /// deliveries) unless --no-scheduler: /api/v1 for members, the pages at /, POST
    /// /api/events/NAME for systems, GET /healthz.
    Serve {
        /// Where to listen (port 0: any free port, printed when ready).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Engine workers (each with its own database connection).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Requests that may wait for a worker; past that they get 503 and Retry-After.
        #[arg(long, default_value_t = 64)]
        queue: usize,
        /// The install-wide token systems post events with (members sign in, or use their own
        /// `closeloop tokens`).
        #[arg(long, env = "CLOSELOOP_API_TOKEN", hide_env_values = true)]
        token: String,
        /// Mark session cookies `Secure`: closeloop is served over TLS, or behind a proxy that is.
        #[arg(long)]
        secure_cookies: bool,
        /// Where people reach this server, for the sign-in links it sends.
        #[arg(long, env = "CLOSELOOP_PUBLIC_URL", default_value = "http://localhost:8080")]
        public_url: String,
        /// Connections one client address may hold at once; more get only /healthz. Behind a
        /// reverse proxy (every request from its address) set it to 512.
        #[arg(long, default_value_t = closeloop::http::MAX_PER_CLIENT)]
        max_per_client: usize,
        /// Do not run the scheduler in this process (timers, deliveries): another process runs
        /// `closeloop run`. By default one `serve` runs everything.
        #[arg(long)]
        no_scheduler: bool,
    },
}

/// Runs the server.
pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    let Command::Serve { listen, workers, queue, token, secure_cookies, public_url, max_per_client, no_scheduler } =
        cmd;
    let limits = closeloop::http::ServeLimits { per_client: (*max_per_client).max(1), ..Default::default() };
    if ctx.now.is_some() {
        return Err(UserError("`serve` keeps real time; --now (and CLOSELOOP_NOW) is for one-off commands".into()));
    }
    // The scheduler starts once the server listens (its lines follow the listening line), on
    // a thread with its own connection, and stops after the server has drained.
    let mut scheduler = None;
    let start = || -> Result<(), UserError> {
        if !*no_scheduler {
            scheduler = Some(Scheduler::start(ctx)?);
        }
        Ok(())
    };
    let served = serve(ctx, listen, (*workers, *queue), token, (*secure_cookies, public_url), limits, start);
    if let Some(scheduler) = scheduler {
        scheduler.stop()?;
    }
    served
}

/// The scheduler (`closeloop run`'s loop) on its own thread beside the server.
struct Scheduler {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl Scheduler {
    fn start(ctx: &Context) -> Result<Scheduler, UserError> {
        let (db, json) = (ctx.db.clone(), ctx.json());
        // Opened here, so a database that cannot be opened stops `serve` before it listens.
        crate::context::open_runtime(&db, None).map_err(|e| ctx.engine_error(e))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("closeloop-scheduler".into())
            .spawn(move || -> Result<(), String> {
                let mut rt = crate::context::open_runtime(&db, None).map_err(|e| e.to_string())?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the scheduler: {e}"))?;
                let zone = rt.zone_of(None);
                let until = async move {
                    let _ = stopped.await;
                };
                runtime
                    .block_on(rt.run_scheduler(until, crate::flows::say_progress(json, zone)))
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| UserError(format!("cannot start the scheduler: {e}")))?;
        Ok(Scheduler { stop, thread })
    }

    /// Asks the scheduler to stop after its pass, and waits for it.
    fn stop(self) -> Result<(), UserError> {
        let _ = self.stop.send(());
        match self.thread.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(UserError(format!("the scheduler stopped: {e}"))),
            Err(_) => Err(UserError("the scheduler thread failed".into())),
        }
    }
}

/// Where uploaded evidence files are kept: the folder `DB.files` beside the database.
/// Where uploaded files are kept: beside a SQLite file (`closeloop.db.files`); for a PostgreSQL
/// database, in `CLOSELOOP_FILES` (a folder every node shares), else `./closeloop-files`.
fn files_dir(db: &std::path::Path) -> std::path::PathBuf {
    if closeloop::store::is_postgres_url(&db.to_string_lossy()) {
        return std::env::var_os("CLOSELOOP_FILES").map_or_else(|| "closeloop-files".into(), std::path::PathBuf::from);
    }
    let mut name = db.as_os_str().to_owned();
    name.push(".files");
    std::path::PathBuf::from(name)
}

/// Completes on SIGTERM or SIGINT; the handlers are installed when this is called.
pub(crate) fn stop_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `closeloop serve`: the HTTP API over a pool of engine workers, until SIGTERM/SIGINT.
fn serve(
    ctx: &Context,
    listen: &str,
    (workers, queue): (usize, usize),
    token: &str,
    (secure_cookies, public_url): (bool, &str),
    limits: closeloop::http::ServeLimits,
    listening: impl FnOnce() -> Result<(), UserError>,
) -> Result<ExitCode, UserError> {
    let db = ctx.db.clone();
    let open = move || crate::context::open_runtime(&db, None);
    let pool = closeloop::http::Pool::start(workers, queue, open).map_err(|e| ctx.engine_error(e))?;
    let pool = std::sync::Arc::new(pool);
    let api = closeloop::http::Api::new(pool.clone(), token)
        .map_err(|e| ctx.engine_error(e))?
        .with_secure_cookies(secure_cookies)
        .with_public_url(public_url)
        .with_files(&files_dir(&ctx.db));
    // The signed PDF a customer downloads needs a font that covers Chinese.
    let api = match crate::approvals::cjk_font().and_then(|p| std::fs::read(p).ok()) {
        Some(font) => api.with_pdf_font(font),
        None => {
            eprintln!(
                "warning: no CJK font found (apt-get install fonts-wqy-microhei): signed PDFs cannot be downloaded"
            );
            api
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UserError(format!("cannot start the server: {e}")))?;
    runtime.block_on(async {
        let stop = stop_signal();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| UserError(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| UserError(e.to_string()))?;
        let said = if ctx.json() {
            serde_json::json!({"listening": format!("http://{addr}"), "workers": workers.max(1), "queue": queue}).to_string()
        } else {
            format!(
                "closeloop serve: listening on http://{addr} ({} worker(s), queue {queue}): pages at /, /api/v1, POST /api/events/NAME, GET /healthz",
                workers.max(1)
            )
        };
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{said}");
            let _ = out.flush();
        }
        listening()?;
        closeloop::http::serve_with(listener, closeloop::http::router(api), limits, stop)
            .await
            .map_err(|e| UserError(format!("the server stopped: {e}")))
    })?;
    // The workers finish what they hold, so their databases close cleanly.
    if !pool.close(closeloop::http::SHUTDOWN_GRACE) {
        return Err(UserError("the engine workers did not stop in time; their transactions roll back".into()));
    }
    Ok(ExitCode::SUCCESS)
}
