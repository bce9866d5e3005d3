//! What the targets share: where a diagnostic may point.

use closeloop::Diagnostic;

/// Every diagnostic points inside the text it names: a line that exists (or the one just past
/// the end, for "the file ends too soon") and a column from 1. `lines` is how many lines the
/// text has for whoever shows it. A diagnostic pointing nowhere is a caret under nothing.
pub fn assert_located(diagnostics: &[Diagnostic], file: &str, lines: usize) {
    for d in diagnostics.iter().filter(|d| d.file == file && d.line > 0) {
        assert!(d.line <= lines.max(1) + 1, "{} points at line {} of {lines}: {}", d.code, d.line, d.message);
        assert!(d.column >= 1, "{} has column 0: {}", d.code, d.message);
        assert!(!d.message.trim().is_empty(), "{} says nothing", d.code);
    }
}
