//! CSV in and out: form imports, the member directory, and exports that spreadsheet formulas
//! cannot hijack.
//!
//! Files may be UTF-8 (with or without a BOM) or GB18030, as Excel in China saves them.
//! Headers match a field by id or by its label in either language. Every bad cell is reported
//! as `row 17, column 联系人电话: ...`. By default an import is all-or-nothing, in one transaction;
//! with `skip_invalid` the good rows go in and the bad ones come back with their errors.
//! Re-importing a file does not duplicate records: rows are matched by the form's `key`
//! (or a unique field, or an `id` column) and update the record they match.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::engine::write::rules::Purpose;
use crate::engine::write::{Edit, Writer};
use crate::engine::{EngineError, Runtime};
use crate::model::{Field, FieldType, Label};
use crate::store::records;
use crate::values::parse_cell;

/// The largest CSV file accepted.
pub const MAX_CSV_BYTES: usize = 256 * 1024 * 1024;

/// A problem with one row (and column) of a CSV file. Rows count lines as a spreadsheet shows
/// them: the header is row 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    /// The row.
    pub row: usize,
    /// The column's header, when the problem is in one cell.
    pub column: Option<String>,
    /// A stable code.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "row {}, column {c}: {}", self.row, self.message),
            None => write!(f, "row {}: {}", self.row, self.message),
        }
    }
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Import the good rows and report the bad ones, instead of all-or-nothing.
    pub skip_invalid: bool,
    /// Who imports (a member, or `import`).
    pub actor: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions { skip_invalid: false, actor: "import".into() }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Data rows read.
    pub rows: usize,
    /// New records.
    pub created: usize,
    /// Records changed.
    pub updated: usize,
    /// Rows that matched a record and changed nothing.
    pub unchanged: usize,
    /// Rows not imported.
    pub rejected: usize,
    /// Every problem found.
    pub problems: Vec<RowProblem>,
    /// The header and the rejected rows as read, for a rejects file.
    #[serde(skip)]
    pub rejects: Vec<Vec<String>>,
}

/// What a member import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MembersReport {
    /// Data rows read.
    pub rows: usize,
    /// New members.
    pub created: usize,
    /// Members changed (including deactivations).
    pub updated: usize,
    /// Members unchanged.
    pub unchanged: usize,
    /// Who the installed apps' channels cannot reach now (no phone for SMS, no WeCom userid for
    /// `wecom_app`): messages to them would be dead letters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// CSV bytes as text: UTF-8 (a BOM is dropped) or GB18030.
pub fn decode(bytes: &[u8]) -> Result<String, EngineError> {
    if bytes.len() > MAX_CSV_BYTES {
        return Err(EngineError::Input(format!(
            "the file is {} bytes; at most {MAX_CSV_BYTES} are accepted",
            bytes.len()
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_string());
    }
    let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(EngineError::Input(
            "the file is neither UTF-8 nor GB18030 text; save it from Excel as CSV UTF-8".into(),
        ));
    }
    Ok(text.into_owned())
}

pub(crate) fn reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::None).from_reader(text.as_bytes())
}

/// The header row, each name trimmed.
pub(crate) fn headers<R: std::io::Read>(csv: &mut csv::Reader<R>) -> Result<Vec<String>, EngineError> {
    let row = csv.headers().map_err(|e| EngineError::Input(format!("row 1: {e}")))?;
    Ok(row.iter().map(|h| h.trim().to_string()).collect())
}

fn label_matches(label: &Option<Label>, header: &str) -> bool {
    match label {
        Some(Label::Text(t)) => t.trim() == header,
        Some(Label::Langs(l)) => {
            l.zh.as_deref().map(str::trim) == Some(header)
                || l.en.as_deref().is_some_and(|e| e.trim().eq_ignore_ascii_case(header))
        }
        None => false,
    }
}

enum Target<'a> {
    Field(&'a Field),
    Id,
    Ignored,
}

/// A file's header row read against a form: what each column fills.
struct Columns<'a> {
    headers: Vec<String>,
    targets: Vec<Target<'a>>,
}

impl<'a> Columns<'a> {
    /// Maps each header to a field (by id or label), the record id, or nothing; an unknown or
    /// twice-named column is a problem of row 1.
    fn of(form: &'a crate::model::Form, headers: Vec<String>) -> Result<Self, Vec<RowProblem>> {
        let mut problems = Vec::new();
        let targets: Vec<Target<'a>> = headers
            .iter()
            .map(|h| {
                // A field's own id or label wins over closeloop's columns (a form may have a field
                // called `owner`); computed fields and the rejects file's `error` column are skipped.
                if let Some(fd) = form.fields.iter().find(|fd| &fd.id == h || label_matches(&fd.label, h)) {
                    return if fd.kind == FieldType::Computed { Target::Ignored } else { Target::Field(fd) };
                }
                if h == "id" {
                    return Target::Id;
                }
                if ["version", "state", "owner", "created_at", "updated_at", "created_by", "updated_by", "error"]
                    .contains(&h.as_str())
                {
                    return Target::Ignored;
                }
                // An export's system column: when an action was first taken.
                if h.strip_suffix("_at").is_some_and(|a| form.actions.iter().any(|x| x.id == a)) {
                    return Target::Ignored;
                }
                let known: Vec<&str> = form.fields.iter().map(|fd| fd.id.as_str()).collect();
                let hint = crate::suggest::closest(h, known.iter().copied())
                    .map(|b| format!(" (did you mean `{b}`?)"))
                    .unwrap_or_default();
                problems.push(RowProblem {
                    row: 1,
                    column: Some(h.clone()),
                    code: "UNKNOWN_COLUMN".into(),
                    message: format!("is not a field of form {}{hint}", form.id),
                });
                Target::Ignored
            })
            .collect();
        for (i, t) in targets.iter().enumerate() {
            let Target::Field(fd) = t else { continue };
            if let Some(first) = targets[..i].iter().position(|o| matches!(o, Target::Field(x) if x.id == fd.id)) {
                problems.push(RowProblem {
                    row: 1,
                    column: Some(headers[i].clone()),
                    code: "DUPLICATE_COLUMN".into(),
                    message: format!("names the same field as column {}", headers[first]),
                });
            }
        }
        if problems.is_empty() {
            Ok(Columns { headers, targets })
        } else {
            Err(problems)
        }
    }

    /// The header of the column that fills `field` (or the field's id when no column does).
    fn column_of(&self, field: &str) -> String {
        self.targets
            .iter()
            .position(|t| matches!(t, Target::Field(fd) if fd.id == field))
            .map(|i| self.headers[i].clone())
            .unwrap_or_else(|| field.to_string())
    }

    /// One row's cells as field values, the record id it names, and its cell problems.
    fn read(
        &self,
        line: usize,
        cells: &[String],
        tz: &jiff::tz::TimeZone,
    ) -> (Map<String, Value>, Option<String>, Vec<RowProblem>) {
        let mut given = Map::new();
        let mut problems = Vec::new();
        if cells.len() != self.headers.len() {
            problems.push(RowProblem {
                row: line,
                column: None,
                code: "CELL_COUNT".into(),
                message: format!("has {} cells but the header has {} columns", cells.len(), self.headers.len()),
            });
        }
        let mut id = None;
        for (i, cell) in cells.iter().enumerate() {
            match self.targets.get(i) {
                Some(Target::Field(field)) => match parse_cell(field, unguard(cell), tz) {
                    Ok(Some(v)) => {
                        given.insert(field.id.clone(), v);
                    }
                    Ok(None) => {}
                    Err(message) => problems.push(RowProblem {
                        row: line,
                        column: Some(self.headers[i].clone()),
                        code: "WRONG_TYPE".into(),
                        message,
                    }),
                },
                Some(Target::Id) if !cell.trim().is_empty() => id = Some(cell.trim().to_string()),
                _ => {}
            }
        }
        (given, id, problems)
    }

    /// What the gate said about a row, as row problems: each field problem under its column, a
    /// refusal for the row. Anything else (the database failing) ends the import.
    fn problems(&self, line: usize, e: EngineError) -> Result<Vec<RowProblem>, EngineError> {
        match e {
            EngineError::Invalid(field_problems) => Ok(field_problems
                .into_iter()
                .map(|p| {
                    let top = p.field.split(['[', '.']).next().unwrap_or_default();
                    let column = Some(self.column_of(top));
                    let message = p.message.split_once(": ").map(|(_, m)| m.to_string()).unwrap_or(p.message);
                    RowProblem { row: line, column, code: p.code.to_string(), message }
                })
                .collect()),
            EngineError::Refused(message) => {
                Ok(vec![RowProblem { row: line, column: None, code: "REFUSED".into(), message }])
            }
            e => Err(e),
        }
    }
}

/// The fields that find a row's record: the form's key, else its first unique field.
fn import_key(form: &crate::model::Form) -> Vec<&str> {
    if form.key.is_empty() {
        form.fields.iter().filter(|fd| fd.unique == Some(true)).map(|fd| fd.id.as_str()).take(1).collect()
    } else {
        form.key.iter().map(String::as_str).collect()
    }
}

/// How many problems a report lists (all are counted in `rejected`).
pub const MAX_LISTED_PROBLEMS: usize = 1_000;
/// How many rejected rows a report keeps for the rejects file.
pub const MAX_KEPT_REJECTS: usize = 100_000;

/// A file to import: read from the start again when a busy database restarts the import.
pub trait CsvInput: std::io::Read + std::io::Seek {}
impl<T: std::io::Read + std::io::Seek> CsvInput for T {}

/// A row's place for a CSV error: the reader's own words, or the cap it hit.
fn unreadable(row: usize, e: &::csv::Error) -> EngineError {
    let why = match e.kind() {
        ::csv::ErrorKind::Io(io) => io.to_string(),
        ::csv::ErrorKind::Utf8 { .. } => {
            "is not UTF-8 text (a file saved in another encoding partway?); save the file as CSV UTF-8".into()
        }
        _ => format!("the CSV does not parse: {e}"),
    };
    EngineError::Input(format!("row {row}: {why}"))
}

impl Runtime {
    /// Imports a CSV file into a form. See the module documentation for the rules.
    pub fn import_csv(
        &mut self,
        form: &str,
        bytes: &[u8],
        options: &ImportOptions,
        progress: &mut dyn FnMut(usize),
    ) -> Result<ImportReport, EngineError> {
        self.import_csv_from(form, &mut std::io::Cursor::new(bytes), options, progress)
    }

    /// Imports a CSV file read as a stream, in one transaction: memory stays bounded whatever
    /// the file's size (see [`MAX_IMPORT_BYTES`](super::stream::MAX_IMPORT_BYTES) and the other
    /// caps), and a bad row anywhere, by default, stores nothing.
    pub fn import_csv_from(
        &mut self,
        form: &str,
        input: &mut dyn CsvInput,
        options: &ImportOptions,
        progress: &mut dyn FnMut(usize),
    ) -> Result<ImportReport, EngineError> {
        let actor = options.actor.as_str();
        self.write(|session, tx| {
            // The actor is checked before any row: an unknown member imports nothing.
            session.roles(tx, actor)?;
            let f = session.form(form)?;
            let (table, tz) = (f.table(), f.time_zone());
            input
                .seek(std::io::SeekFrom::Start(0))
                .map_err(|e| EngineError::Input(format!("cannot read the file: {e}")))?;
            let source = super::stream::Source::new(&mut *input).map_err(|e| EngineError::Input(e.to_string()))?;
            let row_bytes = source.row_bytes.clone();
            let mut csv = ::csv::ReaderBuilder::new().flexible(true).trim(::csv::Trim::None).from_reader(source);
            let headers = headers(&mut csv)?;
            if headers.iter().all(String::is_empty) {
                return Err(EngineError::Input("the file is empty: it needs a header row naming the fields".into()));
            }
            let columns = Columns::of(f.form, headers).map_err(|problems| {
                EngineError::Import(Box::new(ImportReport { problems, ..ImportReport::default() }))
            })?;
            let key = import_key(f.form);
            // One session for the whole import: loads are read once and kept current.
            let w = Writer::new(session, tx, &f, actor);
            let mut report = ImportReport::default();
            report.rejects.push(columns.headers.iter().cloned().chain(std::iter::once("error".to_string())).collect());
            let mut record = ::csv::StringRecord::new();
            let mut index = 0;
            loop {
                row_bytes.set(0);
                index += 1;
                // Rows are numbered as a spreadsheet shows them: the header is row 1.
                let line = index + 1;
                match csv.read_record(&mut record) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return Err(unreadable(line, &e)),
                }
                let cells: Vec<String> = record.iter().map(str::to_string).collect();
                // Wholly empty rows (Excel leaves them at the end) are skipped.
                if cells.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                report.rows += 1;
                if report.rows > super::stream::MAX_IMPORT_ROWS {
                    return Err(EngineError::Input(format!(
                        "row {line}: the file has more than {} rows; split it into smaller files",
                        super::stream::MAX_IMPORT_ROWS
                    )));
                }
                let row_problems = import_row(&w, (&columns, &key), (line, &cells), &tz, table, &mut report)?;
                // What automations reported for this row is not kept: the import reports counts.
                session.forget(0);
                if !row_problems.is_empty() {
                    report.rejected += 1;
                    if report.rejects.len() <= MAX_KEPT_REJECTS {
                        let errors = row_problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                        report.rejects.push(cells.iter().cloned().chain(std::iter::once(errors)).collect());
                    }
                    let room = MAX_LISTED_PROBLEMS.saturating_sub(report.problems.len());
                    report.problems.extend(row_problems.into_iter().take(room));
                }
                progress(report.rows);
            }
            if report.rejected > 0 && !options.skip_invalid {
                return Err(EngineError::Import(Box::new(report)));
            }
            Ok(report)
        })
    }
}

/// Imports one row: creates the record it names, or changes the one it matches through the
/// same gate as `update`. Returns the row's problems (none when it went in).
fn import_row(
    w: &Writer<'_, '_>,
    (columns, key): (&Columns<'_>, &[&str]),
    (line, cells): (usize, &[String]),
    tz: &jiff::tz::TimeZone,
    table: &crate::store::FormTable,
    report: &mut ImportReport,
) -> Result<Vec<RowProblem>, EngineError> {
    let (given, id, row_problems) = columns.read(line, cells, tz);
    if !row_problems.is_empty() {
        return Ok(row_problems);
    }
    let form = w.f.form;
    // Looked up by the form's key: the rules need not query the key again.
    let by_key = id.is_none() && !form.key.is_empty() && form.key.iter().all(|k| given.contains_key(k));
    let tx = w.tx;
    let existing = match (&id, key.is_empty()) {
        (Some(id), _) => records::get(tx, table, id)?,
        (None, false) if key.iter().all(|k| given.contains_key(*k)) => {
            // A link in the key is stored as the linked record's id; the file may name it by
            // that record's key (a customer code), as a submit may.
            let mut stored = given.clone();
            w.rules(None, &[]).resolve_links(tx, &mut stored);
            let values: Vec<(&str, &Value)> = key.iter().filter_map(|k| stored.get(*k).map(|v| (*k, v))).collect();
            records::find_by(tx, table, &values)?
        }
        _ => None,
    };
    // A row that matches a record changes it like an update: the same gate, so a final record,
    // a read-only field or a field the importer may not edit is refused here exactly as it is
    // by `update`.
    let source = json!({"import": "csv", "row": line});
    let written = match existing {
        None => w.create(&given, Purpose::Create, Some(&source), by_key).map(|_| &mut report.created),
        Some(before) => {
            let version = before.version;
            let edit = Edit { detail: Some(("source", source)), key_checked: by_key, ..Edit::by_person(&given) };
            w.change(before, edit).map(|row| match row.version == version {
                true => &mut report.unchanged,
                false => &mut report.updated,
            })
        }
    };
    match written {
        Ok(count) => {
            *count += 1;
            Ok(Vec::new())
        }
        Err(e) => columns.problems(line, e),
    }
}

/// Neutralises a cell a spreadsheet would run as a formula (OWASP CSV injection).
pub fn guard(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

/// Takes off the quote [`guard`] added, so an export imports back exactly.
pub fn unguard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}
