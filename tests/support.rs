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
