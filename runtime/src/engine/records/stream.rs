//! A CSV file read as a stream: decoded to UTF-8 as it is read (UTF-8, with or without a BOM,
//! or GB18030 as Excel in China saves it), and held to caps, so an import's memory stays the
//! same whatever the file's size: at most [`MAX_IMPORT_BYTES`] in all, [`MAX_ROW_BYTES`] in one
//! row (a 50 MB cell is refused after its first MiB, not read whole), [`MAX_IMPORT_ROWS`] rows.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// The largest file an import reads.
pub const MAX_IMPORT_BYTES: u64 = 1024 * 1024 * 1024;
/// The most one row (all its cells) may hold.
pub const MAX_ROW_BYTES: u64 = 1024 * 1024;
/// The most data rows one import takes.
pub const MAX_IMPORT_ROWS: usize = 2_000_000;

/// How much of the file is looked at to tell its encoding.
const SNIFF: usize = 64 * 1024;

/// Bytes of a CSV file as UTF-8, counted against the caps as they are read.
pub(crate) struct Source<R> {
    inner: R,
    /// `None`: UTF-8 passed through; else GB18030 decoded.
    decoder: Option<encoding_rs::Decoder>,
    /// Read from the file, not yet decoded (the sniffed head first).
    raw: Vec<u8>,
    raw_at: usize,
    /// Decoded, not yet handed out.
    out: Vec<u8>,
    out_at: usize,
    /// Bytes read from the file so far.
    read: u64,
    /// Bytes handed out since the current row began (the import resets it per row).
    pub row_bytes: Rc<Cell<u64>>,
    done: bool,
}

fn refusal(message: String) -> io::Error {
    io::Error::other(message)
}

impl<R: Read> Source<R> {
    /// Reads the file's head to tell its encoding; refuses a file that is neither UTF-8 nor
    /// GB18030.
    pub(crate) fn new(mut inner: R) -> io::Result<Source<R>> {
        let mut head = vec![0u8; SNIFF];
        let mut filled = 0;
        while filled < SNIFF {
            match inner.read(&mut head[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        head.truncate(filled);
        let start = if head.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let body = &head[start..];
        let (utf8, bad_at) = match std::str::from_utf8(body) {
            Ok(_) => (true, None),
            // Cut inside a character at the end of the sniffed part: still UTF-8.
            Err(e) => (e.error_len().is_none(), Some(e.valid_up_to())),
        };
        let decoder = if utf8 || start == 3 {
            None
        } else {
            let mut probe = encoding_rs::GB18030.new_decoder_without_bom_handling();
            let mut sink = vec![0u8; body.len() * 3 + 16];
            let (_, _, _, had_errors) = probe.decode_to_utf8(body, &mut sink, filled < SNIFF);
            if had_errors {
                // Where UTF-8 broke, as a spreadsheet row (the header is row 1).
                let row = bad_at.map_or(1, |at| 1 + body[..at].iter().filter(|b| **b == b'\n').count());
                return Err(refusal(format!(
                    "row {row}: the file is neither UTF-8 nor GB18030 text; save it from Excel as CSV UTF-8"
                )));
            }
            Some(encoding_rs::GB18030.new_decoder_without_bom_handling())
        };
        Ok(Source {
            inner,
            decoder,
            raw: head,
            raw_at: start,
            out: Vec::new(),
            out_at: 0,
            read: filled as u64,
            row_bytes: Rc::new(Cell::new(0)),
            done: false,
        })
    }

    /// Decodes the next piece of the file into `out`.
    fn fill(&mut self) -> io::Result<()> {
        if self.raw_at >= self.raw.len() && !self.done {
            self.raw.resize(SNIFF, 0);
            let n = self.inner.read(&mut self.raw)?;
            self.raw.truncate(n);
            self.raw_at = 0;
            self.done = n == 0;
            self.read += n as u64;
            if self.read > MAX_IMPORT_BYTES {
                return Err(refusal(format!(
                    "the file is over {} MiB; split it into smaller files",
                    MAX_IMPORT_BYTES / (1024 * 1024)
                )));
            }
        }
        let raw = &self.raw[self.raw_at..];
        self.out.clear();
        self.out_at = 0;
        match &mut self.decoder {
            None => {
                self.out.extend_from_slice(raw);
                self.raw_at = self.raw.len();
            }
            Some(decoder) => {
                let room = decoder.max_utf8_buffer_length(raw.len()).unwrap_or(raw.len() * 3 + 16);
                self.out.resize(room, 0);
                let (_, used, written, had_errors) = decoder.decode_to_utf8(raw, &mut self.out, self.done);
                if had_errors {
                    return Err(refusal(
                        "the file is not GB18030 text past its beginning; save it as CSV UTF-8".into(),
                    ));
                }
                self.out.truncate(written);
                self.raw_at += used;
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_at >= self.out.len() {
            if self.done && self.raw_at >= self.raw.len() {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.out_at);
        buf[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
        self.out_at += n;
        let row = self.row_bytes.get() + n as u64;
        self.row_bytes.set(row);
        if row > MAX_ROW_BYTES + 64 * 1024 {
            return Err(refusal(format!(
                "a row is over {} MiB (one huge cell?); no row of a form needs that much",
                MAX_ROW_BYTES / (1024 * 1024)
            )));
        }
        Ok(n)
    }
}
