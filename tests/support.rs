//! Shared helpers: paths and running the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use closeloop::{Loaded, Loader};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Runs `closeloop ARGS` from the repository root.
pub fn closeloop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .args(args)
        .current_dir(root())
        .env_remove("CLOSELOOP_NOW")
        .env_remove("CLOSELOOP_DB")
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .output()
        .unwrap_or_else(|e| panic!("cannot run closeloop: {e}"))
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Loads an app from a path (diagnostics name files as given).
pub fn load(path: &Path) -> Loaded {
    Loader::new().unwrap_or_else(|e| panic!("{e}")).load_path(path)
}

/// A temporary folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("closeloop-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PostgreSQL server the suite runs against instead of SQLite files, when
/// `CLOSELOOP_TEST_POSTGRES` names one (`postgres://user@127.0.0.1:5432/postgres`; `.ci/run`
/// starts a throwaway server and runs the suite once per backend).
pub fn postgres_server() -> Option<String> {
    std::env::var("CLOSELOOP_TEST_POSTGRES").ok().filter(|u| !u.trim().is_empty())
}

/// A database of its own for one test on the PostgreSQL server, dropped with it.
pub struct PgDb {
    server: String,
    name: String,
    /// Its URL.
    pub url: String,
    /// Copies taken by [`Cli::snapshot`], by label: the label and the copy's database name.
    snapshots: std::sync::Mutex<Vec<(String, String)>>,
}

impl PgDb {
    pub fn new(server: &str, test: &str) -> PgDb {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slug: String = test
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .take(30)
            .collect();
        let name = format!("t_{slug}_{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(server, postgres::NoTls).unwrap_or_else(|e| panic!("{server}: {e}"));
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\"")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).unwrap();
        let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
        PgDb { server: server.to_string(), url: format!("{base}/{name}"), name, snapshots: Default::default() }
    }

    /// Makes database `to` a copy of database `from` (a template copy: nobody may be connected
    /// to `from`; PostgreSQL waits a few seconds for sessions that are closing).
    fn copy(&self, from: &str, to: &str) {
        let mut admin =
            postgres::Client::connect(&self.server, postgres::NoTls).unwrap_or_else(|e| panic!("{}: {e}", self.server));
        // One statement a call: CREATE DATABASE cannot run inside the transaction of a batch.
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{to}\" WITH (FORCE)")).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE \"{to}\" TEMPLATE \"{from}\""))
            .unwrap_or_else(|e| panic!("copying {from} to {to}: {e}"));
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
            let snapshots = self.snapshots.get_mut().map(std::mem::take).unwrap_or_default();
            for (_, copy) in snapshots {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{copy}\" WITH (FORCE)"));
            }
        }
    }
}

/// A fresh, empty store for a library test: a SQLite database in memory, or in the PostgreSQL
/// pass a new database on the server of [`postgres_server`], signing with the test key. The
/// PostgreSQL databases outlive the test (the store cannot own their removal); `.ci/run`'s
/// server is thrown away afterwards; on a kept server the next run drops those of ended processes.
pub fn fresh_store() -> closeloop::store::Store {
    match postgres_server() {
        None => closeloop::store::Store::open_in_memory().unwrap(),
        Some(server) => {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("t_store_{}_{n}", std::process::id());
            let mut admin = postgres::Client::connect(&server, postgres::NoTls).unwrap();
            // Once a run: the stores of test processes that have ended go.
            static SWEPT: std::sync::Once = std::sync::Once::new();
            SWEPT.call_once(|| {
                let rows = admin.query("SELECT datname::text FROM pg_database WHERE datname LIKE 't\\_store\\_%'", &[]);
                for old in rows.unwrap_or_default().iter().map(|r| r.get::<_, String>(0)) {
                    let pid = old.split('_').nth(2).unwrap_or_default();
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)"));
                    }
                }
            });
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\"")).unwrap();
            admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).unwrap();
            let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base);
            let mut store = closeloop::store::Store::connect(&format!("{base}/{name}")).unwrap();
            store.set_signing_key(b"test-signing-key");
            store
        }
    }
}

/// A store for a library test that keeps its files in `dir`: the SQLite file `closeloop.db`
/// there, or in the PostgreSQL pass a fresh database as [`fresh_store`] makes.
pub fn store_in(dir: &TempDir) -> closeloop::store::Store {
    match postgres_server() {
        None => closeloop::store::Store::open(&dir.0.join("closeloop.db")).unwrap(),
        Some(_) => fresh_store(),
    }
}

/// `closeloop` against its own database in a temporary folder (a SQLite file, or a database on
/// the PostgreSQL server of [`postgres_server`]), at a fixed time (or the system clock).
pub struct Cli {
    /// The folder (removed when dropped).
    pub dir: TempDir,
    now: Option<String>,
    pg: Option<PgDb>,
}

impl Cli {
    /// A fresh folder for one test; commands run at `now`.
    pub fn new(name: &str, now: &str) -> Cli {
        Cli::at(name, Some(now))
    }

    /// A fresh folder for one test; commands run on the system clock.
    pub fn system_clock(name: &str) -> Cli {
        Cli::at(name, None)
    }

    fn at(name: &str, now: Option<&str>) -> Cli {
        let dir = TempDir::new(name);
        std::fs::create_dir_all(&dir.0).unwrap();
        let pg = postgres_server().map(|server| PgDb::new(&server, name));
        Cli { dir, now: now.map(str::to_string), pg }
    }

    /// A file in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    /// The database file.
    pub fn db(&self) -> PathBuf {
        self.path("closeloop.db")
    }

    /// What `--db` names: the file, or the test's PostgreSQL database.
    pub fn location(&self) -> String {
        match &self.pg {
            Some(pg) => pg.url.clone(),
            None => self.db().to_string_lossy().into_owned(),
        }
    }

    /// The library's store on this test's database, signing as the CLI's processes do (on
    /// PostgreSQL with the key [`Cli::command_at`] gives them; on SQLite with the key file).
    pub fn store(&self) -> closeloop::store::Store {
        let mut store = closeloop::store::Store::connect(&self.location()).unwrap_or_else(|e| panic!("{e}"));
        if self.pg.is_some() {
            store.set_signing_key(b"test-signing-key");
        }
        store
    }

    /// Where uploaded evidence files are kept: beside the SQLite file (`closeloop.db.files`),
    /// or in `CLOSELOOP_FILES` on PostgreSQL.
    pub fn files_dir(&self) -> PathBuf {
        match &self.pg {
            Some(_) => self.path("files"),
            None => PathBuf::from(format!("{}.files", self.db().display())),
        }
    }

    /// Everything the database holds, as bytes to search: the SQLite file and its write-ahead
    /// log; on PostgreSQL each row of each table as text.
    pub fn contents(&self) -> Vec<u8> {
        match &self.pg {
            None => {
                let mut bytes = std::fs::read(self.db()).unwrap();
                bytes.extend(std::fs::read(self.path("closeloop.db-wal")).unwrap_or_default());
                bytes
            }
            Some(_) => {
                let tables = self.rows(
                    "SELECT table_name FROM information_schema.tables
                      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                    &[],
                );
                assert!(!tables.is_empty(), "the database has no tables");
                let mut bytes = Vec::new();
                for table in tables.into_iter().filter_map(|r| r.into_iter().next().flatten()) {
                    let sql = format!("SELECT t::text FROM \"{}\" AS t", table.replace('"', "\"\""));
                    for row in self.rows(&sql, &[]) {
                        bytes.extend(row.into_iter().flatten().flat_map(String::into_bytes));
                        bytes.push(b'\n');
                    }
                }
                bytes
            }
        }
    }

    /// Keeps a consistent copy of the database under `label`, for [`Cli::restore`]. On
    /// PostgreSQL nobody may be connected to the database: close the library's store first.
    pub fn snapshot(&self, label: &str) {
        match &self.pg {
            None => {
                let copy = self.path(label);
                let _ = std::fs::remove_file(&copy);
                let conn = rusqlite::Connection::open(self.db()).unwrap();
                conn.execute("VACUUM INTO ?1", [copy.display().to_string()]).unwrap();
            }
            Some(pg) => {
                let mut snapshots = pg.snapshots.lock().unwrap();
                let copy = match snapshots.iter().position(|(l, _)| l == label) {
                    Some(i) => snapshots[i].1.clone(),
                    None => {
                        let copy = format!("{}_s{}", pg.name, snapshots.len());
                        snapshots.push((label.to_string(), copy.clone()));
                        copy
                    }
                };
                pg.copy(&pg.name, &copy);
            }
        }
    }

    /// Puts the copy [`Cli::snapshot`] kept under `label` back in the database's place. Close
    /// the library's store first.
    pub fn restore(&self, label: &str) {
        match &self.pg {
            None => {
                for ext in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{ext}", self.db().display()));
                }
                std::fs::copy(self.path(label), self.db()).unwrap();
            }
            Some(pg) => {
                let copy = {
                    let snapshots = pg.snapshots.lock().unwrap();
                    let found = snapshots.iter().find(|(l, _)| l == label);
                    found.unwrap_or_else(|| panic!("no snapshot {label}")).1.clone()
                };
                pg.copy(&copy, &pg.name);
            }
        }
    }

    /// The command at `now` (`None`: the system clock).
    pub fn command_at(&self, now: Option<&str>, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_closeloop"));
        // English, whatever the machine's locale: tests read what the CLI says.
        c.args(args).current_dir(root()).env("CLOSELOOP_DB", self.location()).env("LANG", "C.UTF-8");
        if self.pg.is_some() {
            // A PostgreSQL installation keeps its key and its files outside the database.
            c.env("CLOSELOOP_SIGNING_KEY", "test-signing-key").env("CLOSELOOP_FILES", self.path("files"));
        }
        c.env_remove("LC_ALL").env_remove("LC_MESSAGES");
        match now {
            Some(now) => c.env("CLOSELOOP_NOW", now),
            None => c.env_remove("CLOSELOOP_NOW"),
        };
        c
    }

    /// The command at this folder's time.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_at(self.now.as_deref(), args)
    }

    /// Runs at `now`; fails the test unless it succeeds; its standard output.
    pub fn ok_at(&self, now: Option<&str>, args: &[&str]) -> String {
        let out = self.command_at(now, args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        stdout(&out)
    }

    /// Runs at this folder's time; fails the test unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_at(self.now.as_deref(), args)
    }

    /// Runs at `now` with `--format json` and parses what it printed.
    pub fn json_at(&self, now: Option<&str>, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--format", "json"];
        full.extend_from_slice(args);
        serde_json::from_str(&self.ok_at(now, &full)).unwrap()
    }

    /// Runs at this folder's time with `--format json` and parses what it printed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        self.json_at(self.now.as_deref(), args)
    }

    /// Runs at this folder's time; fails the test if it succeeds; its exit code and all it said.
    pub fn fails(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.command(args).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stderr), stdout(&out));
        assert!(!out.status.success(), "{args:?} should fail: {said}");
        (out.status.code(), said)
    }

    /// One number from the database, with `?1`, `?2`… bound to `params`.
    pub fn query(&self, sql: &str, params: &[&str]) -> i64 {
        let rows = self.rows(sql, params);
        let cell = rows.first().and_then(|r| r.first()).cloned().flatten();
        cell.unwrap_or_else(|| panic!("{sql}: no value")).parse().unwrap()
    }

    /// Every row of a query as text (`None` for NULL), on either backend; `?1`, `?2`… are
    /// `params`. The SQL must read the same to SQLite and PostgreSQL.
    pub fn rows(&self, sql: &str, params: &[&str]) -> Vec<Vec<Option<String>>> {
        match &self.pg {
            None => {
                let conn = rusqlite::Connection::open(self.db()).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let width = stmt.column_count();
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(params), |r| {
                        (0..width)
                            .map(|i| {
                                Ok(match r.get_ref(i)? {
                                    rusqlite::types::ValueRef::Null => None,
                                    rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                                    rusqlite::types::ValueRef::Real(x) => Some(x.to_string()),
                                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                                        Some(String::from_utf8_lossy(t).into_owned())
                                    }
                                })
                            })
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .unwrap();
                rows.map(Result::unwrap).collect()
            }
            Some(pg) => {
                // The simple protocol answers in text; the test's values go in as literals.
                let mut sql = sql.to_string();
                for (i, p) in params.iter().enumerate().rev() {
                    sql = sql.replace(&format!("?{}", i + 1), &format!("'{}'", p.replace('\'', "''")));
                }
                let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
                client
                    .simple_query(&sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .into_iter()
                    .filter_map(|m| match m {
                        postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                        }
                        _ => None,
                    })
                    .collect()
            }
        }
    }

    /// Runs SQL on the database behind closeloop's back (a test that tampers), on either
    /// backend. The SQL must read the same to SQLite and PostgreSQL.
    pub fn execute(&self, sql: &str) {
        match &self.pg {
            None => rusqlite::Connection::open(self.db()).unwrap().execute_batch(sql).unwrap(),
            Some(pg) => {
                let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
                client.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// Whether the tests run on PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        self.pg.is_some()
    }
}

/// Installs the quote template with its team, products and customers (and, with
/// `price_history`, past prices).
pub fn quote_catalog(rt: &mut closeloop::Runtime, price_history: bool) {
    use closeloop::ImportOptions;
    let t = closeloop::template("quote-approval").unwrap();
    rt.install(&t.app_files(), "system", false).unwrap();
    let file = |name: &str| t.files.iter().find(|(p, _)| *p == name).unwrap().1.as_bytes();
    rt.import_members(file("data/members.csv"), "system").unwrap();
    let mut files = vec![("product", "data/products.csv"), ("customer", "data/customers.csv")];
    if price_history {
        files.push(("price_history", "data/price_history.csv"));
    }
    for (form, name) in files {
        rt.import_csv(form, file(name), &ImportOptions::default(), &mut |_| {}).unwrap();
    }
}

/// What one piece of work cost in a process of its own: its wall time, and how far the peak
/// resident set rose above what the process held before it began (`None` where the peak cannot
/// be reset, off Linux).
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub micros: u128,
    pub peak_above_kib: Option<u64>,
}

/// Runs `work` (after `setup`) in a child process, this test binary running only `test`, so
/// the peak memory measured is the work's own and not that of tests running beside it. In the
/// child, the call measures, prints and exits; in the parent it returns what the child printed.
/// Figures are meant to be compared with a baseline measured the same way in the same test.
pub fn cost_alone<T>(test: &str, label: &str, setup: impl FnOnce() -> T, work: impl FnOnce(T)) -> Cost {
    const VAR: &str = "CLOSELOOP_TEST_COST_OF";
    if std::env::var(VAR).is_ok_and(|v| v == label) {
        let input = setup();
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let before = status_kib("VmRSS");
        let started = std::time::Instant::now();
        work(input);
        let micros = started.elapsed().as_micros();
        let peak = status_kib("VmHWM").filter(|_| reset);
        let above = peak.zip(before).map(|(p, b)| p.saturating_sub(b));
        println!("COST micros={micros} peak_above_kib={}", above.map(|k| k.to_string()).unwrap_or_default());
        std::process::exit(0);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(VAR, label)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the test binary: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find_map(|l| l.split_once("COST ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("{label}: no cost reported:\n{text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let field = |name: &str| {
        line.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).unwrap_or_default().to_string()
    };
    Cost { micros: field("micros").parse().unwrap_or(u128::MAX), peak_above_kib: field("peak_above_kib").parse().ok() }
}

/// A line of `/proc/self/status` in KiB: `VmHWM` (the peak resident set since the last reset)
/// or `VmRSS` (now).
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
