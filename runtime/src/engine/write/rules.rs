//! Record rules: from what a person typed to the data that is stored.
//!
//! In order: unknown and read-only fields, types and options (tables row by row), defaults,
//! lookups from catalog forms, computed fields, then required / required_if, members and linked
//! records that must exist, and unique values. Every problem is collected; nothing is written
//! unless there are none.

use std::collections::BTreeMap;

use rhai::{Engine, Scope, AST};
use serde_json::{Map, Value};

use crate::engine::{FormRef, Installed};
use crate::model::{CompareOp, Condition, ConditionKind, Field, FieldType, Lang};
use crate::store::{records, Reader};
use crate::values::{check_value, field_name, is_empty, FieldName, FieldProblem};

/// A read-only table cell a person sent: its path, the table, the row, the column, the value.
pub(super) type GivenCell = (String, String, usize, String, Value);

/// Why data is being prepared: it decides which fields may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A new record from a person or an import.
    Create,
    /// A change by a person: read-only fields are refused.
    Update,
    /// A change by an automation (a `set` step, a script's result): read-only fields are
    /// closeloop's to write.
    Automation,
}

/// What the rules need besides the data.
pub(crate) struct Rules<'a> {
    pub f: FormRef<'a>,
    pub apps: &'a BTreeMap<String, Installed>,
    pub scripts: &'a Engine,
    /// The record's state while the rules run (for `required_if: {state: ...}`).
    pub state: Option<&'a str>,
    /// The actor's roles (for `required_if: {role: ...}`).
    pub roles: &'a [String],
    /// The caller has already looked the record up by the form's key (an import does), so the
    /// key needs no second query.
    pub key_checked: bool,
    /// Who acts and which record this is, as conditions and computed fields see them.
    pub who: Who,
}

/// What expressions see besides the fields: the record's `id`, `state`, `owner` and
/// `created_by`, and the acting member as `actor` (see [`actor_value`]). A new record has no
/// `id` yet (`()`); a field of the same name wins over these.
#[derive(Debug, Clone, Default)]
pub(crate) struct Who {
    pub id: Option<String>,
    pub owner: Option<String>,
    pub created_by: Option<String>,
    pub actor: Value,
}

impl Who {
    /// For a stored record, changed or judged by `actor`.
    pub fn of(row: &crate::store::RecordRow, actor: Value) -> Self {
        Who { id: Some(row.id.clone()), owner: row.owner.clone(), created_by: Some(row.created_by.clone()), actor }
    }

    /// The record's own names as a script's `record` map holds them (fields of the same
    /// name win).
    pub fn fill(&self, state: Option<&str>, data: &mut Map<String, Value>) {
        let text = |v: Option<&str>| v.map_or(Value::Null, |s| Value::String(s.to_string()));
        for (k, v) in [
            ("id", text(self.id.as_deref())),
            ("state", text(state)),
            ("owner", text(self.owner.as_deref())),
            ("created_by", text(self.created_by.as_deref())),
        ] {
            data.entry(k).or_insert(v);
        }
    }
}

/// The acting member as scripts see them: `id`, `name`, `roles`, `region`, `manager`, `active`
/// and the attributes the app declared (`actor.store`); never their phone or email. closeloop
/// itself (a timer, an automation) is `#{id: "closeloop", roles: []}`.
pub(crate) fn actor_value(id: &str, member: Option<&crate::store::MemberRow>) -> Value {
    match member {
        Some(m) => member_value(m),
        None => serde_json::json!({"id": id, "name": id, "roles": []}),
    }
}

/// A member as scripts see them (see [`actor_value`]).
pub(crate) fn member_value(m: &crate::store::MemberRow) -> Value {
    let mut v = Map::new();
    for (k, x) in &m.extra {
        v.insert(k.clone(), x.clone());
    }
    for (k, x) in [
        ("id", Value::String(m.id.clone())),
        ("name", Value::String(m.name.clone())),
        ("roles", serde_json::json!(m.roles)),
        ("region", serde_json::json!(m.region)),
        ("manager", serde_json::json!(m.manager)),
        ("active", Value::Bool(m.active)),
        ("capacity", serde_json::json!(m.capacity)),
    ] {
        v.insert(k.to_string(), x);
    }
    Value::Object(v)
}

impl<'a> Rules<'a> {
    /// The rules of form `f` for a record in `state`, handled by someone with `roles`.
    pub fn new(
        f: FormRef<'a>,
        apps: &'a BTreeMap<String, Installed>,
        scripts: &'a Engine,
        state: Option<&'a str>,
        roles: &'a [String],
    ) -> Self {
        Rules { f, apps, scripts, state, roles, key_checked: false, who: Who::default() }
    }

    /// A rhai scope for an expression: the record's names and the actor, then the fields.
    pub(crate) fn scope(&self, data: &Map<String, Value>) -> Scope<'static> {
        let mut scope = Scope::new();
        let text = |v: Option<&str>| v.map_or(rhai::Dynamic::UNIT, |s| rhai::Dynamic::from(s.to_string()));
        scope.push_dynamic("id", text(self.who.id.as_deref()));
        scope.push_dynamic("state", text(self.state));
        scope.push_dynamic("owner", text(self.who.owner.as_deref()));
        scope.push_dynamic("created_by", text(self.who.created_by.as_deref()));
        scope.push_dynamic("actor", rhai::serde::to_dynamic(&self.who.actor).unwrap_or(rhai::Dynamic::UNIT));
        push_fields(&mut scope, data);
        scope
    }

    pub(super) fn lang(&self) -> Lang {
        self.f.lang()
    }

    pub(super) fn field(&self, id: &str) -> Option<&Field> {
        self.f.form.field(id)
    }

    /// Applies the rules. `base` is the stored data for an update, `None` for a new record;
    /// `self_id` is the record's own id, so a unique value does not collide with itself.
    /// Returns the data as far as it got beside the problems: nothing is stored unless there
    /// are none (the writer's `prepared`), and a dry run (`closeloop script test`) grades
    /// what a submit would have stored.
    pub(crate) fn derive(
        &self,
        conn: &Reader,
        given: &Map<String, Value>,
        base: Option<&Map<String, Value>>,
        purpose: Purpose,
        self_id: Option<&str>,
    ) -> (Map<String, Value>, Vec<FieldProblem>) {
        let mut problems = Vec::new();
        let mut data = base.cloned().unwrap_or_default();
        if base.is_none() {
            for field in &self.f.form.fields {
                if let (Some(default), false) = (&field.default, given.contains_key(&field.id)) {
                    data.insert(field.id.clone(), default.clone());
                }
            }
        }
        // Read-only cells of table rows a person sent: never taken, only compared with what
        // closeloop derives for them.
        let mut given_readonly = Vec::new();
        for (key, value) in given {
            self.take(key, value, purpose, &mut data, &mut given_readonly, &mut problems);
        }
        // Keep going after bad values, so one answer names every problem (a bad phone and a
        // missing customer together); fields already reported are not reported again.
        self.lookups(conn, &mut data, base, &mut problems);
        self.compare_readonly(given_readonly, &data, &mut problems);
        self.resolve_links(conn, &mut data);
        self.compute(&mut data);
        let reported: Vec<String> =
            problems.iter().map(|p| p.field.split(['[', '.']).next().unwrap_or_default().to_string()).collect();
        let mut more = Vec::new();
        self.constraints(conn, &data, base, self_id, &mut more);
        // A change that leaves the key as it was cannot make it clash: no query for it.
        let key_moved = base.is_none_or(|b| self.f.form.key.iter().any(|k| b.get(k) != data.get(k)));
        if !self.key_checked && key_moved {
            self.key_unique(conn, &data, self_id, &mut more);
        }
        problems.extend(
            more.into_iter().filter(|p| !reported.iter().any(|r| p.field.split(['[', '.']).next() == Some(r.as_str()))),
        );
        (data, problems)
    }

    /// Takes one given field into `data`: unknown, computed and (for a person) read-only fields
    /// are problems, `null` clears, a value is checked against its type, a table row by row.
    fn take(
        &self,
        key: &str,
        value: &Value,
        purpose: Purpose,
        data: &mut Map<String, Value>,
        given_readonly: &mut Vec<GivenCell>,
        problems: &mut Vec<FieldProblem>,
    ) {
        let lang = self.lang();
        let Some(field) = self.field(key) else {
            let known: Vec<&str> = self.f.form.fields.iter().map(|f| f.id.as_str()).collect();
            let hint = crate::suggest::closest(key, known.iter().copied())
                .map(|b| format!(" (did you mean `{b}`?)"))
                .unwrap_or_default();
            let message = format!("form {} has no field `{key}`{hint}", self.f.form.id);
            problems.push(FieldProblem::new(key, "UNKNOWN_FIELD", message));
            return;
        };
        let name = FieldName(field, lang);
        if field.kind == FieldType::Computed {
            problems.push(FieldProblem::new(key, "READONLY", format!("{name} is computed; it cannot be entered")));
            return;
        }
        if purpose == Purpose::Update && field.readonly == Some(true) && data.get(key) != Some(value) {
            problems.push(FieldProblem::new(key, "READONLY", format!("{name} is read-only")));
            return;
        }
        if value.is_null() {
            data.remove(key);
            return;
        }
        match check_value(field, value, key, lang) {
            Ok(v) if field.kind == FieldType::Table => {
                if let Some(rows) = self.rows(field, &v, purpose, given_readonly, problems) {
                    data.insert(key.to_string(), rows);
                }
            }
            Ok(v) => {
                data.insert(key.to_string(), v);
            }
            Err(p) => problems.push(p),
        }
    }

    /// A read-only cell a person sent passes only when it is what closeloop derived for it.
    fn compare_readonly(&self, given: Vec<GivenCell>, data: &Map<String, Value>, problems: &mut Vec<FieldProblem>) {
        let lang = self.lang();
        for (path, table, i, column, value) in given {
            let derived = data.get(&table).and_then(|rows| rows.get(i)).and_then(|r| r.get(&column));
            if derived == Some(&value) {
                continue;
            }
            let name = self.field(&table).map(|t| field_name(t, lang)).unwrap_or_default();
            let col = self
                .field(&table)
                .and_then(|t| t.columns.iter().flatten().find(|c| c.id == column))
                .map(|c| field_name(c, lang))
                .unwrap_or_default();
            let message = format!("{name} row {}: {col} is read-only; closeloop fills it", i + 1);
            problems.push(FieldProblem::new(path, "READONLY", message));
        }
    }

    /// Evaluates computed fields: table columns row by row, then the form's own. The loader
    /// proved there are no cycles, so as many passes as there are computed fields reach the
    /// fixed point. An expression that cannot be evaluated (an input still empty) gives no value.
    fn compute(&self, data: &mut Map<String, Value>) {
        let index = self.f.index;
        let is_computed = |f: &Field| f.kind == FieldType::Computed;
        let any = self.f.form.fields.iter().any(|f| is_computed(f) || f.columns.iter().flatten().any(is_computed));
        if !any {
            return;
        }
        // Expressions that call `today()` or `add_business_days` see the app's zone and calendar.
        let context = crate::engine::scoring::score::run_context(&self.f, None);
        for (j, table) in self.f.form.fields.iter().enumerate().filter(|(_, f)| f.kind == FieldType::Table) {
            let columns = table.columns.as_deref().unwrap_or_default();
            let computed: Vec<(usize, &Field)> =
                columns.iter().enumerate().filter(|(_, c)| c.kind == FieldType::Computed).collect();
            if computed.is_empty() {
                continue;
            }
            if let Some(Value::Array(rows)) = data.get_mut(&table.id) {
                for row in rows.iter_mut() {
                    if let Value::Object(row) = row {
                        for _ in 0..computed.len() {
                            for (k, column) in &computed {
                                let key = format!("/forms/{index}/fields/{j}/columns/{k}/expression");
                                self.set_computed(self.f.app.app.script(&key), row, &column.id, &context);
                            }
                        }
                    }
                }
            }
        }
        let computed: Vec<(usize, &Field)> =
            self.f.form.fields.iter().enumerate().filter(|(_, f)| f.kind == FieldType::Computed).collect();
        for _ in 0..computed.len() {
            for (j, field) in &computed {
                let key = format!("/forms/{index}/fields/{j}/expression");
                self.set_computed(self.f.app.app.script(&key), data, &field.id, &context);
            }
        }
    }

    /// Required fields, conditions, referenced members and records, unique values.
    fn constraints(
        &self,
        conn: &Reader,
        data: &Map<String, Value>,
        base: Option<&Map<String, Value>>,
        self_id: Option<&str>,
        problems: &mut Vec<FieldProblem>,
    ) {
        // Members and linked records are checked when they are set or changed: a record keeps a
        // departed rep as its owner, and stays editable.
        let changed = |field: &str, value: &Value| base.and_then(|b| b.get(field)) != Some(value);
        let lang = self.lang();
        for (j, field) in self.f.form.fields.iter().enumerate() {
            let name = FieldName(field, lang);
            let value = data.get(&field.id);
            let required = field.required == Some(true)
                || field
                    .required_if
                    .as_ref()
                    .is_some_and(|c| self.holds(c, data, &format!("/forms/{}/fields/{j}/required_if", self.f.index)));
            if required && field.kind != FieldType::Computed && is_empty(value) {
                problems.push(FieldProblem::new(field.id.clone(), "REQUIRED", format!("{name} is required")));
                continue;
            }
            let Some(value) = value.filter(|v| !is_empty(Some(v))) else { continue };
            if changed(&field.id, value) {
                self.exists(conn, field, value, &field.id, problems);
            }
            // Like the key: an unchanged value cannot newly clash.
            if field.unique == Some(true) && changed(&field.id, value) {
                let clash = records::find_by(conn, self.f.table(), &[(field.id.as_str(), value)]).ok().flatten();
                if let Some(other) = clash.filter(|o| Some(o.id.as_str()) != self_id) {
                    problems.push(FieldProblem::new(
                        field.id.clone(),
                        "NOT_UNIQUE",
                        format!("{name}: {} is already used by {}", crate::values::format_cell(Some(value)), other.id),
                    ));
                }
            }
            if field.kind == FieldType::Table {
                let columns = field.columns.as_deref().unwrap_or_default();
                for (i, row) in value.as_array().into_iter().flatten().enumerate() {
                    for column in columns {
                        let path = format!("{}[{i}].{}", field.id, column.id);
                        let cell = row.get(&column.id);
                        if column.required == Some(true) && column.kind != FieldType::Computed && is_empty(cell) {
                            problems.push(FieldProblem::new(
                                path,
                                "REQUIRED",
                                format!("{} row {}: {} is required", name, i + 1, field_name(column, lang)),
                            ));
                        } else if let Some(cell) = cell.filter(|c| !is_empty(Some(c))) {
                            let old = base
                                .and_then(|b| b.get(&field.id))
                                .and_then(|rows| rows.get(i))
                                .and_then(|r| r.get(&column.id));
                            if old != Some(cell) {
                                self.exists(conn, column, cell, &path, problems);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The form's key identifies a record: no two records share it.
    fn key_unique(
        &self,
        conn: &Reader,
        data: &Map<String, Value>,
        self_id: Option<&str>,
        problems: &mut Vec<FieldProblem>,
    ) {
        let key = &self.f.form.key;
        let values: Vec<(&str, &Value)> =
            key.iter().filter_map(|k| data.get(k).filter(|v| !is_empty(Some(v))).map(|v| (k.as_str(), v))).collect();
        let already_unique = matches!(key.as_slice(), [one] if self.field(one).is_some_and(|f| f.unique == Some(true)));
        if key.is_empty() || values.len() != key.len() || already_unique {
            return;
        }
        if let Some(other) =
            records::find_by(conn, self.f.table(), &values).ok().flatten().filter(|o| Some(o.id.as_str()) != self_id)
        {
            let shown: Vec<String> = values.iter().map(|(_, v)| crate::values::format_cell(Some(v))).collect();
            problems.push(FieldProblem::new(
                key[0].clone(),
                "NOT_UNIQUE",
                format!("{} {} already identifies {}", key.join("+"), shown.join("+"), other.id),
            ));
        }
    }

    /// Sets a computed field from its expression; one that cannot be evaluated (an input still
    /// empty) leaves it empty.
    fn set_computed(
        &self,
        ast: Option<&AST>,
        data: &mut Map<String, Value>,
        field: &str,
        context: &crate::script::RunContext,
    ) {
        let Some(ast) = ast else { return };
        let mut scope = self.scope(data);
        let value = crate::script::run_in(self.scripts, ast, &mut scope, self.f.app.deadline, context.clone())
            .ok()
            .map(|o| o.value)
            .filter(|d| !d.is_unit())
            .and_then(|d| rhai::serde::from_dynamic::<Value>(&d).ok());
        match value {
            Some(v) => {
                data.insert(field.to_string(), v);
            }
            None => {
                data.remove(field);
            }
        }
    }

    /// Does a condition hold for this data? `pointer` locates it in the app, for `expr`.
    pub fn holds(&self, c: &Condition, data: &Map<String, Value>, pointer: &str) -> bool {
        let Ok(kind) = c.kind() else { return false };
        match kind {
            ConditionKind::All(list) => {
                list.iter().enumerate().all(|(i, c)| self.holds(c, data, &format!("{pointer}/all/{i}")))
            }
            ConditionKind::Any(list) => {
                list.iter().enumerate().any(|(i, c)| self.holds(c, data, &format!("{pointer}/any/{i}")))
            }
            ConditionKind::Not(inner) => !self.holds(inner, data, &format!("{pointer}/not")),
            ConditionKind::State(states) => self.state.is_some_and(|s| states.iter().any(|x| x == s)),
            ConditionKind::Role(role) => self.roles.iter().any(|r| r == role),
            ConditionKind::Rows(table, test) => {
                let Some(Value::Array(rows)) = data.get(table) else { return false };
                let inner = format!("{pointer}/where");
                rows.iter().filter_map(Value::as_object).any(|row| self.holds(test, row, &inner))
            }
            ConditionKind::Expr(_) => {
                let Some(ast) = self.f.app.app.script(&format!("{pointer}/expr")) else { return false };
                let mut scope = self.scope(data);
                let context = crate::engine::scoring::score::run_context(&self.f, None);
                crate::script::run_in(self.scripts, ast, &mut scope, self.f.app.deadline, context)
                    .ok()
                    .and_then(|o| o.value.as_bool().ok())
                    .unwrap_or(false)
            }
            ConditionKind::Compare(field, op) => {
                let value = data.get(field);
                let operand = match op {
                    CompareOp::Eq => c.eq.as_ref(),
                    CompareOp::Ne => c.ne.as_ref(),
                    CompareOp::Gt => c.gt.as_ref(),
                    CompareOp::Gte => c.gte.as_ref(),
                    CompareOp::Lt => c.lt.as_ref(),
                    CompareOp::Lte => c.lte.as_ref(),
                    CompareOp::In | CompareOp::NotIn | CompareOp::Empty => None,
                };
                match op {
                    CompareOp::Eq => operand.is_some_and(|o| equals(value, o)),
                    CompareOp::Ne => !operand.is_some_and(|o| equals(value, o)),
                    CompareOp::In => c.in_.iter().flatten().any(|o| equals(value, o)),
                    CompareOp::NotIn => !c.not_in.iter().flatten().any(|o| equals(value, o)),
                    CompareOp::Empty => c.empty == Some(is_empty(value)),
                    CompareOp::Gt | CompareOp::Gte | CompareOp::Lt | CompareOp::Lte => {
                        let Some(ord) = operand.and_then(|o| order(value?, o)) else { return false };
                        match op {
                            CompareOp::Gt => ord.is_gt(),
                            CompareOp::Gte => ord.is_ge(),
                            CompareOp::Lt => ord.is_lt(),
                            _ => ord.is_le(),
                        }
                    }
                }
            }
        }
    }
}

/// Equality as people mean it: numbers by value, a list "equals" an item it contains.
fn equals(value: Option<&Value>, operand: &Value) -> bool {
    match (value, operand) {
        (None | Some(Value::Null), Value::Null) => true,
        (Some(Value::Array(items)), o) if !o.is_array() => items.iter().any(|i| equals(Some(i), o)),
        (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Some(v), o) => v == o,
        (None, _) => false,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Pushes the fields as variables (after anything pushed before them, so they win).
fn push_fields(scope: &mut Scope<'static>, data: &Map<String, Value>) {
    for (k, v) in data {
        if let Ok(d) = rhai::serde::to_dynamic(v) {
            scope.push_dynamic(k.clone(), d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_what_people_mean() {
        assert!(equals(Some(&Value::from(5)), &Value::from(5.0)));
        assert!(equals(Some(&serde_json::json!(["a", "b"])), &Value::from("b")));
        assert!(equals(None, &Value::Null));
        assert!(!equals(None, &Value::from("x")));
    }
}
