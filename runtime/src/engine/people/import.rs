//! The member directory from a CSV file: every cell checked first, then one transaction that
//! upserts each member (only the columns the file has change) and checks the absences the file
//! sets against the directory as it leaves it. All-or-nothing.

use serde_json::{Map, Value};

use crate::engine::records::{decode, headers, reader, ImportReport, MembersReport, RowProblem};
use crate::engine::{EngineError, Runtime};
use crate::store::{members, MemberRow};

/// A file's problems as the import's refusal: nothing was written.
fn refused(rows: usize, rejected: usize, problems: Vec<RowProblem>) -> EngineError {
    EngineError::Import(Box::new(ImportReport { rows, rejected, problems, ..ImportReport::default() }))
}

/// Header problems: a column that is no member attribute, or no `id` column.
fn header_problems(headers: &[String], extra: &[String]) -> Vec<RowProblem> {
    let mut problems: Vec<RowProblem> = headers
        .iter()
        .filter(|h| !crate::model::BUILTIN_MEMBER_FIELDS.contains(&h.as_str()) && !extra.contains(h))
        .map(|h| RowProblem {
            row: 1,
            column: Some(h.clone()),
            code: "UNKNOWN_COLUMN".into(),
            message: "is not a member attribute".into(),
        })
        .collect();
    if !headers.iter().any(|h| h == "id") {
        problems.push(RowProblem {
            row: 1,
            column: None,
            code: "MISSING_COLUMN".into(),
            message: "the column `id` is missing".into(),
        });
    }
    problems
}

/// One row as a member, its bad cells added to `problems`.
fn parse_member(
    headers: &[String],
    record: &::csv::StringRecord,
    line: usize,
    extra: &[String],
    problems: &mut Vec<RowProblem>,
) -> MemberRow {
    let cell = |name: &str| {
        headers.iter().position(|h| h == name).and_then(|i| record.get(i)).map(str::trim).filter(|c| !c.is_empty())
    };
    let mut member = MemberRow {
        id: cell("id").unwrap_or_default().to_string(),
        name: cell("name").unwrap_or_default().to_string(),
        roles: cell("roles")
            .map(|r| r.split([';', '；']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default(),
        region: cell("region").map(str::to_string),
        manager: cell("manager").map(str::to_string),
        active: true,
        capacity: None,
        email: cell("email").map(str::to_string),
        phone: cell("phone").map(str::to_string),
        extra: Map::new(),
        away_from: None,
        away_until: None,
        delegate_to: cell("delegate_to").map(str::to_string),
    };
    let mut bad = |column: &str, message: String| {
        problems.push(RowProblem { row: line, column: Some(column.into()), code: "WRONG_TYPE".into(), message })
    };
    if member.id.is_empty() {
        bad("id", "every member needs an id".into());
    }
    if let Some(a) = cell("active") {
        match a.to_lowercase().as_str() {
            "true" | "yes" | "1" | "是" => member.active = true,
            "false" | "no" | "0" | "否" => member.active = false,
            _ => bad("active", format!("\"{a}\" is not true or false")),
        }
    }
    if let Some(c) = cell("capacity") {
        match c.parse::<i64>() {
            Ok(n) if n >= 0 => member.capacity = Some(n),
            _ => bad("capacity", format!("\"{c}\" is not a whole number")),
        }
    }
    for (column, slot) in [("away_from", &mut member.away_from), ("away_until", &mut member.away_until)] {
        if let Some(d) = cell(column) {
            match super::members::day(d) {
                Ok(day) => *slot = Some(day),
                Err(why) => bad(column, why),
            }
        }
    }
    for e in extra {
        if let Some(v) = cell(e) {
            member.extra.insert(e.clone(), Value::String(v.to_string()));
        }
    }
    member
}

/// A stored member with what the file says: only the columns the file has change, so a file
/// of ids and emails updates emails.
fn merged(old: &MemberRow, from_file: &MemberRow, has: impl Fn(&str) -> bool) -> MemberRow {
    let mut m = old.clone();
    let p = from_file.clone();
    if has("name") && !p.name.is_empty() {
        m.name = p.name;
    }
    macro_rules! from_file {
        ($($column:ident),*) => { $( if has(stringify!($column)) { m.$column = p.$column; } )* };
    }
    from_file!(roles, region, manager, active, capacity, email, phone, away_from, away_until, delegate_to);
    for (k, v) in p.extra {
        m.extra.insert(k, v);
    }
    m
}

/// Absences that do not hold against the directory as the file leaves it (a delegate may be a
/// member the same file adds).
fn absence_problems(parsed: &[(usize, MemberRow)], team: &[MemberRow]) -> Vec<RowProblem> {
    parsed
        .iter()
        .filter_map(|(line, p)| {
            let m = team.iter().find(|t| t.id == p.id)?;
            let why = super::members::check_absence(m, team).err()?;
            let column = if why.contains("before it starts") { "away_until" } else { "delegate_to" };
            Some(RowProblem { row: *line, column: Some(column.into()), code: "WRONG_VALUE".into(), message: why })
        })
        .collect()
}

impl Runtime {
    /// Imports the member directory (`id,name,roles,region,manager,active,capacity`, optional
    /// `email`, `phone` and the app's extra attributes; roles separated by `;`). Members are
    /// upserted by id; `active` = false deactivates without losing history. All-or-nothing.
    pub fn import_members(&mut self, bytes: &[u8], actor: &str) -> Result<MembersReport, EngineError> {
        let text = decode(bytes)?;
        let at = self.now();
        let extra: Vec<String> = self
            .apps
            .values()
            .flat_map(|a| a.app.def.members.iter().flat_map(|m| m.fields.iter().map(|f| f.id.clone())))
            .collect();
        let mut csv = reader(&text);
        let headers = headers(&mut csv)?;
        let mut problems = header_problems(&headers, &extra);
        let mut parsed = Vec::new();
        for record in csv.records() {
            let record = record.map_err(|e| EngineError::Input(format!("the CSV does not parse: {e}")))?;
            let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
            parsed.push((line, parse_member(&headers, &record, line, &extra, &mut problems)));
        }
        if !problems.is_empty() {
            return Err(refused(parsed.len(), parsed.len(), problems));
        }
        let has = |c: &str| headers.iter().any(|h| h == c);
        self.store.write(|tx| {
            let mut report = MembersReport { rows: parsed.len(), ..MembersReport::default() };
            for (line, from_file) in &parsed {
                let before = members::get(tx, &from_file.id)?;
                let member = match &before {
                    None if from_file.name.is_empty() => {
                        let problem = RowProblem {
                            row: *line,
                            column: Some("name".into()),
                            code: "REQUIRED".into(),
                            message: "a new member needs a name".into(),
                        };
                        return Err(refused(parsed.len(), 1, vec![problem]));
                    }
                    None => from_file.clone(),
                    Some(old) => merged(old, from_file, has),
                };
                match super::members::store(tx, before.as_ref(), &member, &at, actor)? {
                    None => report.unchanged += 1,
                    Some(_) if before.is_some() => report.updated += 1,
                    Some(_) => report.created += 1,
                }
            }
            // One absence that does not hold rolls the import back.
            if ["away_from", "away_until", "delegate_to"].iter().any(|c| has(c)) {
                let problems = absence_problems(&parsed, &members::list(tx)?);
                if !problems.is_empty() {
                    return Err(refused(parsed.len(), problems.len(), problems));
                }
            }
            Ok::<_, EngineError>(report)
        })
    }
}
