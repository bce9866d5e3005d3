//! The README's "Using it" walk-through, run as written: every `closeloop` line of its
//! "Running it", timers and channels blocks, in order, in one shell with the README's own
//! `export` line, against a fresh database. A line that names a secret or a placeholder
//! (`TOKEN`, `…`) or runs for ever (`run`, `serve`) is the only kind skipped.

use std::process::Command;

use crate::support::root;

/// The walk-through's commands: the `sh` blocks of `file` between `from` and `to`.
fn walk_through_of(file: &str, from: &str, to: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(root().join(file)).unwrap();
    let start = readme.find(from).unwrap_or_else(|| panic!("{file} has a part `{from}`"));
    let end = readme[start..].find(to).map(|e| start + e).unwrap_or_else(|| panic!("and it ends at `{to}`"));
    let mut lines = Vec::new();
    let mut inside = false;
    for line in readme[start..end].lines() {
        if line.starts_with("```") {
            inside = line.starts_with("```sh");
            continue;
        }
        let command = line.trim();
        let runs_for_ever = command.starts_with("closeloop run") || command.starts_with("closeloop serve");
        let placeholder = command.contains("TOKEN") || command.contains('…');
        if inside
            && (command.starts_with("closeloop ") || command.starts_with("export "))
            && !runs_for_ever
            && !placeholder
        {
            lines.push(command.to_string());
        }
    }
    lines
}

/// The English README's walk-through: "Running it" to "Other systems".
fn walk_through() -> Vec<String> {
    walk_through_of("README.md", "Running it", "Other systems")
}

#[test]
fn the_chinese_readme_walks_through_the_same_commands() {
    let zh = walk_through_of("README.zh-CN.md", "运行起来", "其他系统");
    let strip = |l: &String| l.split("  #").next().unwrap_or_default().trim().to_string();
    let en: Vec<String> = walk_through().iter().map(strip).collect();
    assert_eq!(zh.iter().map(strip).collect::<Vec<_>>(), en, "README.zh-CN.md runs what the replayed README runs");
}

#[test]
fn the_readme_walk_through_runs_as_written_on_a_fresh_database() {
    let lines = walk_through();
    assert!(lines.len() > 30, "the walk-through was read: {lines:?}");
    assert!(lines[0].starts_with("export CLOSELOOP_DB="), "it starts by fixing the database and the clock");
    let dir = std::env::temp_dir().join(format!("closeloop-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(root().join("app-templates"), dir.join("app-templates")).unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_closeloop")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    for (i, line) in lines.iter().enumerate() {
        // Each line in the shell the README's reader has: the exports so far, then the line.
        let exports: Vec<&String> = lines[..i].iter().filter(|l| l.starts_with("export ")).collect();
        let script = format!("set -e\n{}\n{line}\n", exports.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(&dir)
            .env("PATH", &path)
            .env_remove("CLOSELOOP_DB")
            .env_remove("CLOSELOOP_NOW")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README line {} failed:\n{line}\n{}{}",
            i + 1,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
