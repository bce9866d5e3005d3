//! Reading an app folder from disk, and the budget an app's scripts must keep.
//!
//! The budget is set far above anything an ops person writes (the bundled templates' largest
//! script is 1.7 KB, and each uses one) and low enough that compiling every script of an app
//! costs well under a second and a few megabytes: a hostile app cannot make `validate`,
//! `install` or a later command slow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::diagnostic::{Code, Diagnostic, Location};

use super::AppFiles;

/// The largest script file accepted, in bytes (about 1,500 lines).
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// The most script files one app may carry.
pub const MAX_SCRIPTS: usize = 64;
/// The most bytes all of an app's script files may hold together.
pub const MAX_SCRIPTS_TOTAL_BYTES: usize = 1024 * 1024;

const SCRIPT_HELP: &str =
    "a script is a few hundred lines at most; move data into forms or `data/*.csv`, and share code between scripts";

/// The first way the app's scripts break the budget (count, one file's size, all together),
/// as a diagnostic on the offending file.
pub(super) fn over_budget(files: &AppFiles) -> Option<Diagnostic> {
    let folder = super::join(&files.dir, "scripts");
    if files.scripts.len() > MAX_SCRIPTS {
        let message = format!("the app has {} script files; at most {MAX_SCRIPTS} are accepted", files.scripts.len());
        return Some(*file_error(Code::FILE_TOO_LARGE, message, folder, SCRIPT_HELP));
    }
    let mut total = 0;
    for (path, text) in &files.scripts {
        let shown = super::join(&files.dir, path);
        if text.len() > MAX_SCRIPT_BYTES {
            let message = format!("{shown} is {} bytes; at most {MAX_SCRIPT_BYTES} are accepted", text.len());
            return Some(*file_error(Code::FILE_TOO_LARGE, message, shown, SCRIPT_HELP));
        }
        total += text.len();
        if total > MAX_SCRIPTS_TOTAL_BYTES {
            let message = format!(
                "the app's scripts pass {MAX_SCRIPTS_TOTAL_BYTES} bytes together at {shown}; that is the most accepted"
            );
            return Some(*file_error(Code::FILE_TOO_LARGE, message, shown, SCRIPT_HELP));
        }
    }
    None
}

fn display(path: &Path) -> String {
    path.to_string_lossy().trim_end_matches('/').to_string()
}

pub(super) fn file_error(code: Code, message: String, file: String, help: &str) -> Box<Diagnostic> {
    let at = Location { file, line: 1, column: 1, pointer: String::new() };
    Box::new(Diagnostic::error(code, message, &at).with_help(help))
}

/// Reads a text file with a size cap, as a diagnostic on failure.
fn read_text(path: &Path, max: u64, help: &str) -> Result<String, Box<Diagnostic>> {
    let shown = display(path);
    let unreadable = |e: std::io::Error| {
        file_error(Code::FILE_UNREADABLE, format!("cannot read {shown}: {e}"), shown.clone(), "check the path")
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.len() > max {
        return Err(file_error(
            Code::FILE_TOO_LARGE,
            format!("{shown} is {} bytes; at most {max} are accepted", meta.len()),
            shown,
            help,
        ));
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").map(<[u8]>::to_vec).unwrap_or(bytes);
    String::from_utf8(bytes)
        .map_err(|_| file_error(Code::NOT_UTF8, format!("{shown} is not UTF-8 text"), shown, "save the file as UTF-8"))
}

/// Refuses a symbolic link inside the app folder: it could point anywhere (`/etc/passwd`), and
/// the loader shows the lines of the scripts it reads. Its target is never opened.
fn refuse_link(path: &Path) -> Result<(), Box<Diagnostic>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(file_error(
            Code::FILE_UNREADABLE,
            format!("{} is a symbolic link; closeloop reads only the files inside the app folder", display(path)),
            display(path),
            "copy the file into the app folder instead of linking to it",
        )),
        _ => Ok(()),
    }
}

/// Reads an app folder (or the folder of an `app.yaml`) into memory. Script files must be
/// plain files inside the folder (no symbolic links) and keep the scripts' budget.
pub fn read_app(path: &Path, max_yaml_bytes: u64) -> Result<AppFiles, Box<Diagnostic>> {
    let (dir, yaml_path): (PathBuf, PathBuf) = if path.is_dir() {
        (path.to_path_buf(), path.join("app.yaml"))
    } else {
        (path.parent().map(Path::to_path_buf).unwrap_or_default(), path.to_path_buf())
    };
    let app_yaml = read_text(
        &yaml_path,
        max_yaml_bytes,
        "an app definition is small; move sample data to CSV files under `data/`",
    )?;
    let (scripts, unreadable) = read_scripts(&dir.join("scripts"))?;
    let mut data = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(dir.join("data")) {
        for entry in entries.flatten() {
            data.insert(format!("data/{}", entry.file_name().to_string_lossy()));
        }
    }
    let file_name = yaml_path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    Ok(AppFiles { dir: display(&dir), file_name, app_yaml, scripts, data_files: Some(data), unreadable })
}

type Scripts = (BTreeMap<String, String>, BTreeMap<String, String>);

/// The `.rhai` files of a `scripts/` folder. Those that cannot be read or are not UTF-8 are
/// set aside with why (reported where the app uses them); a link or a file past the budget
/// refuses the app.
fn read_scripts(folder: &Path) -> Result<Scripts, Box<Diagnostic>> {
    let (mut scripts, mut unreadable) = (BTreeMap::new(), BTreeMap::new());
    refuse_link(folder)?;
    let Ok(entries) = std::fs::read_dir(folder) else { return Ok((scripts, unreadable)) };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".rhai"))
        .collect();
    names.sort();
    if names.len() > MAX_SCRIPTS {
        let message = format!("the app has {} script files; at most {MAX_SCRIPTS} are accepted", names.len());
        return Err(file_error(Code::FILE_TOO_LARGE, message, display(folder), SCRIPT_HELP));
    }
    for name in names {
        let path = folder.join(&name);
        refuse_link(&path)?;
        match read_text(&path, MAX_SCRIPT_BYTES as u64, SCRIPT_HELP) {
            Ok(text) => {
                scripts.insert(format!("scripts/{name}"), text);
            }
            Err(d) if d.code == Code::FILE_TOO_LARGE => return Err(d),
            Err(d) => {
                unreadable.insert(format!("scripts/{name}"), d.message);
            }
        }
    }
    Ok((scripts, unreadable))
}
