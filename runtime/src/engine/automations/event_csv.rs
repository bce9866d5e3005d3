//! Events from a CSV file: a finance system's export of payments, each row raised as
//! `payment.received` once. Each row is its own event (its own transaction) with an idempotency
//! key made from the file's key column (the payment number), so the same file, or one that
//! overlaps it, can be imported again: a row already received is counted, not received twice.

use serde::Serialize;
use serde_json::Map;

use crate::engine::records::{decode, headers, reader, RowProblem};
use crate::engine::{EngineError, Runtime};

/// What importing a file of events did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventsReport {
    /// The event.
    pub event: String,
    /// Data rows read.
    pub rows: usize,
    /// Rows received now.
    pub received: usize,
    /// Rows whose key was received before (an earlier import of the same payment).
    pub already: usize,
    /// Rows refused, by row and column, and why.
    pub problems: Vec<RowProblem>,
}

/// The idempotency key of a row: the event and the key column's value, hashed when the value
/// is not visible ASCII (a payment number in Chinese).
fn row_key(event: &str, value: &str) -> String {
    let value = value.trim();
    if !value.is_empty() && value.len() <= 120 && value.bytes().all(|b| b.is_ascii_graphic()) {
        format!("csv:{event}:{value}")
    } else {
        format!("csv:{event}:{}", &crate::store::sha256_hex(value.as_bytes())[..32])
    }
}

impl Runtime {
    /// Raises event `name` once per row of a CSV file (UTF-8 or GB18030, headers by the event's
    /// field ids or labels), idempotent by `key_column` (the payment number; it need not be a
    /// field of the event). Rows are independent: a refused row is reported by row and column
    /// and the others go on; importing the file again receives only rows not received before.
    pub fn import_events(
        &mut self,
        name: &str,
        bytes: &[u8],
        key_column: &str,
        actor: &str,
    ) -> Result<EventsReport, EngineError> {
        let def = self
            .apps
            .values()
            .find_map(|a| a.app.def.events.iter().find(|e| e.id == name))
            .cloned()
            .ok_or_else(|| EngineError::Input(format!("no installed app declares an event `{name}`")))?;
        let lang = self.apps.values().find_map(|a| a.app.def.app.language).unwrap_or(crate::model::Lang::Zh);
        let zone = self.zone_of(None);
        let text = decode(bytes)?;
        let mut csv = reader(&text);
        let heads = headers(&mut csv)?;
        let mut report = EventsReport { event: name.to_string(), ..EventsReport::default() };
        // Each column: an event field (by id or label), the key column, or a problem.
        let mut columns = Vec::new();
        for h in &heads {
            let field = def.fields.iter().find(|f| f.id == *h || crate::values::field_name(f, lang) == *h);
            if field.is_none() && h != key_column {
                let known: Vec<&str> = def.fields.iter().map(|f| f.id.as_str()).collect();
                let hint = crate::suggest::closest(h, known.iter().copied())
                    .map(|b| format!(" (did you mean `{b}`?)"))
                    .unwrap_or_default();
                report.problems.push(RowProblem {
                    row: 1,
                    column: Some(h.clone()),
                    code: "UNKNOWN_COLUMN".into(),
                    message: format!("is not a field of event {name}{hint}"),
                });
            }
            columns.push(field);
        }
        let Some(key_at) = heads.iter().position(|h| h == key_column) else {
            report.problems.push(RowProblem {
                row: 1,
                column: Some(key_column.to_string()),
                code: "REQUIRED".into(),
                message: format!(
                    "the key column `{key_column}` is not in the file; its columns are {}",
                    heads.join(", ")
                ),
            });
            return Ok(report);
        };
        if !report.problems.is_empty() {
            return Ok(report);
        }
        for record in csv.records() {
            // The rows before were received, each in its own write: the report says so, and
            // where the file stopped being readable.
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    let row = e.position().map(|p| p.line() as usize).unwrap_or(report.rows + 2);
                    let message = format!("the CSV does not parse from here on ({e}); the rows above were read");
                    report.problems.push(RowProblem { row, column: None, code: "BAD_CSV".into(), message });
                    break;
                }
            };
            let row = record.position().map(|p| p.line() as usize).unwrap_or(0);
            report.rows += 1;
            let problem = |column: &str, code: &str, message: String| RowProblem {
                row,
                column: Some(column.to_string()),
                code: code.into(),
                message,
            };
            let key = record.get(key_at).unwrap_or_default();
            if key.trim().is_empty() {
                report.problems.push(problem(key_column, "REQUIRED", format!("a row needs its {key_column}")));
                continue;
            }
            let mut data = Map::new();
            let mut bad = false;
            for (i, field) in columns.iter().enumerate() {
                let Some(field) = field else { continue };
                match crate::values::parse_cell(field, record.get(i).unwrap_or_default(), &zone) {
                    Ok(Some(v)) => {
                        data.insert(field.id.clone(), v);
                    }
                    Ok(None) => {}
                    Err(why) => {
                        report.problems.push(problem(&heads[i], "WRONG_TYPE", why));
                        bad = true;
                    }
                }
            }
            if bad {
                continue;
            }
            match self.event_once(name, data, actor, Some(&row_key(name, key))) {
                Ok(r) if r.replayed => report.already += 1,
                Ok(_) => report.received += 1,
                Err(EngineError::Invalid(found)) => {
                    for p in found {
                        report.problems.push(problem(&p.field, p.code, p.message));
                    }
                }
                Err(e @ EngineError::KeyReused(_)) => report.problems.push(problem(
                    key_column,
                    "KEY_REUSED",
                    format!("{key_column} {key} was received before with other data: {e}"),
                )),
                Err(e @ (EngineError::Input(_) | EngineError::Refused(_) | EngineError::NotFound { .. })) => report
                    .problems
                    .push(RowProblem { row, column: None, code: "REFUSED".into(), message: e.to_string() }),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}
