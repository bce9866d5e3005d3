//! Evidence files: what kinds are accepted (proved by their first bytes, never by what the
//! client says), where they are kept (outside the database, once per content, under their
//! SHA-256) and how an upload id names one. `/api/v1/files` and the task card's form share it.

use std::path::{Path, PathBuf};

/// The largest evidence file accepted.
pub const MAX_UPLOAD: usize = 10 * 1024 * 1024;

/// The kinds evidence may be, by extension.
const KINDS: [&str; 5] = ["jpg", "png", "pdf", "webp", "heic"];

/// What a file's first bytes say it is, among the kinds evidence may be: a photo or a PDF.
pub(crate) fn sniff(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"\xFF\xD8\xFF") {
        Some(("image/jpeg", "jpg"))
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some(("image/png", "png"))
    } else if starts(b"%PDF-") {
        Some(("application/pdf", "pdf"))
    } else if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some(("image/webp", "webp"))
    } else if bytes.get(4..8) == Some(b"ftyp") && matches!(bytes.get(8..12), Some(b"heic" | b"heix" | b"mif1")) {
        Some(("image/heic", "heic"))
    } else {
        None
    }
}

/// The stored file an upload id names: 64 hex digits, a dot and a known extension, inside the
/// upload folder. Anything else (a path, `..`) names nothing.
pub(crate) fn upload_path(dir: Option<&Path>, id: &str) -> Option<PathBuf> {
    let dir = dir?;
    let (hash, ext) = id.split_once('.')?;
    let valid = hash.len() == 64
        && hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && KINDS.contains(&ext);
    let path = dir.join(id);
    (valid && path.is_file()).then_some(path)
}

/// Keeps a file in `dir` under its SHA-256 and extension, once: written whole under a
/// temporary name, then renamed, so a reader never sees half a file. Answers its upload id.
pub(crate) fn keep_now(dir: &Path, bytes: &[u8], ext: &str) -> std::io::Result<String> {
    let id = format!("{}.{ext}", crate::store::sha256_hex(bytes));
    std::fs::create_dir_all(dir)?;
    let path = dir.join(&id);
    if !path.is_file() {
        let partial = dir.join(format!(".{id}.part"));
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, &path)?;
    }
    Ok(id)
}

/// [`keep_now`] off the async threads.
pub(crate) async fn keep(dir: std::sync::Arc<Path>, bytes: Vec<u8>, ext: &'static str) -> std::io::Result<String> {
    tokio::task::spawn_blocking(move || keep_now(&dir, &bytes, ext)).await.map_err(std::io::Error::other)?
}
