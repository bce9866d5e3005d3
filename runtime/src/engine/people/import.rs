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
    /// `email`, `phone` and the app's extra attributes; roles separated by `;`). An attribute
    /// an assignment rule matches against a choice field may hold the choice's label (`徐汇店`):
    /// it is stored as the choice's value (`xuhui`), as a record's CSV import does; a value that
    /// is neither, on a member who holds the rule's role, refuses the row with a did-you-mean. Members are
    /// upserted by id; `active` = false deactivates without losing history. All-or-nothing.
    pub fn import_members(&mut self, bytes: &[u8], actor: &str) -> Result<MembersReport, EngineError> {
        let text = decode(bytes)?;
        let at = self.now();
        // The app's own attributes, and the addresses that reach one person in WeCom and DingTalk.
        let extra: Vec<String> = self
            .apps
            .values()
            .flat_map(|a| a.app.def.members.iter().flat_map(|m| m.fields.iter().map(|f| f.id.clone())))
            .chain([crate::model::WECOM_USERID.to_string(), crate::model::DINGTALK_USERID.to_string()])
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
        let matched = self.matched_choices();
        for (line, member) in &mut parsed {
            choice_values(member, *line, &matched, &mut problems);
        }
        if !problems.is_empty() {
            return Err(refused(parsed.len(), parsed.len(), problems));
        }
        let has = |c: &str| headers.iter().any(|h| h == c);
        let mut report = self.store.write(|tx| {
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
        })?;
        let team = members::list(self.store.reader())?;
        for app in self.apps.values() {
            let file = format!("{}/app.yaml", app.app.def.app.id);
            report
                .warnings
                .extend(crate::engine::install::unreachable(&team, &app.app.def, &file).into_iter().map(|d| d.message));
        }
        Ok(report)
    }
}

/// A member attribute an assignment rule matches against a choice field: the role whose
/// members are matched, and the field's options.
struct MatchedChoice {
    attribute: String,
    role: String,
    options: Vec<crate::model::ChoiceOption>,
}

impl Runtime {
    /// Every (attribute, choice field) pair the installed assignment rules match on.
    fn matched_choices(&self) -> Vec<MatchedChoice> {
        let mut out = Vec::new();
        for def in self.apps.values().map(|a| &a.app.def) {
            for rule in &def.assignment_rules {
                let Some(form) = def.forms.iter().find(|f| f.id == rule.form) else { continue };
                for (attribute, field) in &rule.candidates.r#match {
                    let Some(f) = form.fields.iter().find(|f| &f.id == field) else { continue };
                    if let (crate::model::FieldType::Choice, Some(options)) = (f.kind, &f.options) {
                        let role = rule.candidates.role.clone();
                        out.push(MatchedChoice { attribute: attribute.clone(), role, options: options.clone() });
                    }
                }
            }
        }
        out
    }
}

/// Stores a matched attribute as its choice's value when the file gave its label; names a
/// value that is neither on a member the rule would match, who could otherwise never get a
/// record ("nobody qualified").
fn choice_values(member: &mut MemberRow, line: usize, matched: &[MatchedChoice], problems: &mut Vec<RowProblem>) {
    for m in matched {
        let current = match m.attribute.as_str() {
            "region" => member.region.clone(),
            other => member.extra.get(other).and_then(Value::as_str).map(str::to_string),
        };
        let Some(given) = current else { continue };
        if m.options.iter().any(|o| o.value == given) {
            continue;
        }
        let by_label = m.options.iter().find(|o| {
            o.label.as_ref().is_some_and(|l| {
                [crate::model::Lang::Zh, crate::model::Lang::En].iter().any(|lang| l.get(*lang).trim() == given.trim())
            })
        });
        match by_label {
            Some(o) if m.attribute == "region" => member.region = Some(o.value.clone()),
            Some(o) => {
                member.extra.insert(m.attribute.clone(), Value::String(o.value.clone()));
            }
            None if member.roles.iter().any(|r| r == &m.role) => {
                let values: Vec<&str> = m.options.iter().map(|o| o.value.as_str()).collect();
                let hint = crate::suggest::did_you_mean(&given, values.iter().copied()).unwrap_or_default();
                problems.push(RowProblem {
                    row: line,
                    column: Some(m.attribute.clone()),
                    code: "NOT_AN_OPTION".into(),
                    message: format!(
                        "\"{given}\" is not one of the choices assignment matches `{}` against; {hint}",
                        m.attribute
                    ),
                });
            }
            None => {}
        }
    }
}
