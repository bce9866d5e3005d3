//! A record as a PDF: the quote a customer receives, with its lines, total and, once signed,
//! the signature. The engine fills a [`crate::pdf::Sheet`] with what may be shown;
//! `crate::pdf` draws it.

use crate::engine::{EngineError, Runtime};
use crate::store::{records, signing};

impl Runtime {
    /// A record as a PDF: its fields and tables (choices and links shown as their labels and
    /// titles; sensitive fields left out), the serial number as a watermark on every page, and
    /// the signature block once signed. `font` must cover Chinese; `index` picks a face in a
    /// font collection.
    pub fn record_pdf(&self, form: &str, id: &str, font: Vec<u8>, index: u32) -> Result<Vec<u8>, EngineError> {
        let sheet = self.customer_sheet(form, id)?;
        crate::pdf::render(&sheet, font, index).map_err(|e| EngineError::Input(e.to_string()))
    }

    /// The chosen clauses of a record, in full (title and text), when its signature step says
    /// to print them (`signature.clauses`); in the order chosen.
    fn printed_clauses(
        &self,
        f: &crate::engine::FormRef<'_>,
        data: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let lang = f.lang();
        let spec = f
            .app
            .app
            .def
            .approvals
            .iter()
            .filter(|c| c.form == f.form.id)
            .flat_map(|c| c.steps.iter())
            .find_map(|s| s.signature.as_ref()?.clauses.clone());
        let Some(spec) = spec else { return Ok(Vec::new()) };
        let (Some(field), Ok(library)) = (f.form.field(&spec.field), self.form(&spec.form)) else {
            return Ok(Vec::new());
        };
        let Some(key) = library.form.key.first() else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for code in data.get(&spec.field).and_then(|v| v.as_array()).into_iter().flatten() {
            let found = records::find_by(self.store.reader(), library.table(), &[(key.as_str(), code)])?;
            let Some(clause) = found else { continue };
            let text = clause.data.get(&spec.text).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let title = field
                .options
                .iter()
                .flatten()
                .find(|o| Some(o.value.as_str()) == code.as_str())
                .and_then(|o| o.label.as_ref().map(|l| l.get(lang).to_string()))
                .unwrap_or_else(|| code.as_str().unwrap_or_default().to_string());
            out.push((title, text));
        }
        Ok(out)
    }

    /// What a customer may see of a record, as the PDF and the signing page show it: no
    /// sensitive field and none only some roles see; choices, links and members by their names.
    pub(crate) fn customer_sheet(&self, form: &str, id: &str) -> Result<crate::pdf::Sheet, EngineError> {
        use crate::model::{FieldType, Label};
        let f = self.form(form)?;
        let lang = f.lang();
        let row = records::get(self.store.reader(), f.table(), id)?
            .ok_or_else(|| crate::engine::records::not_found(form, id))?;
        let both = |l: Option<&Label>, fallback: &str| match l {
            Some(Label::Langs(x)) => match (&x.zh, &x.en) {
                (Some(zh), Some(en)) => format!("{zh} / {en}"),
                _ => l.map(|l| l.get(lang).to_string()).unwrap_or_default(),
            },
            Some(l) => l.get(lang).to_string(),
            None => fallback.to_string(),
        };
        let show = |field: &crate::model::Field, v: &serde_json::Value| -> String {
            match (field.kind, v) {
                (FieldType::Link, serde_json::Value::String(s)) => field
                    .form
                    .as_deref()
                    .and_then(|target| self.form(target).ok())
                    .and_then(|t| {
                        let linked = records::get(self.store.reader(), t.table(), s).ok()??;
                        let title = t.form.title_field.as_deref()?;
                        // The name alone: a customer has no use for `CUSTOMER-000001`.
                        linked.data.get(title).and_then(|v| v.as_str()).map(str::to_string)
                    })
                    .unwrap_or_else(|| s.clone()),
                (FieldType::Bool, serde_json::Value::Bool(b)) => (if *b { "是 / yes" } else { "否 / no" }).to_string(),
                // An instant as people read it, in the app's time zone.
                (FieldType::Datetime, serde_json::Value::String(at)) => crate::clock::shown(at, &f.time_zone()),
                // A member is shown by name: a customer has no use for `m_li`.
                (FieldType::Member, serde_json::Value::String(m)) => crate::store::members::get(self.store.reader(), m)
                    .ok()
                    .flatten()
                    .map(|m| m.name)
                    .unwrap_or_else(|| m.clone()),
                // Money as money: ¥59,000.00.
                (FieldType::Money | FieldType::Computed, serde_json::Value::Number(_))
                    if field.kind == FieldType::Money || field.currency.is_some() =>
                {
                    match field.currency.as_deref() {
                        None | Some("CNY") => format!("¥{}", crate::values::display(field, v, lang)),
                        Some(code) => format!("{code} {}", crate::values::display(field, v, lang)),
                    }
                }
                _ => crate::values::display(field, v, lang),
            }
        };
        let mut sheet = crate::pdf::Sheet {
            title: both(f.form.label.as_ref(), form),
            serial: row.id.clone(),
            ..Default::default()
        };
        // A signed quote shows the version its customer signed (the signature's own write,
        // which only records the signature, is not a version anyone reads as the quote's).
        let signed = signing::signed(self.store.reader(), form, id)?;
        let shown_version = signed.as_ref().map(|s| s.2).unwrap_or(row.version);
        sheet.fields.push(("版本 / Version".into(), shown_version.to_string()));
        // What the customer receives carries neither sensitive fields nor those only some roles
        // see (a floor price, a risk grade, an internal summary).
        let internal = |field: &crate::model::Field| field.sensitive == Some(true) || !field.read_roles.is_empty();
        for field in &f.form.fields {
            if internal(field) {
                continue;
            }
            let value = row.data.get(&field.id).cloned().unwrap_or(serde_json::Value::Null);
            if field.kind == FieldType::Table {
                // Internal columns (a floor price) stay off what the customer receives.
                let columns: Vec<&crate::model::Field> =
                    field.columns.iter().flatten().filter(|c| !internal(c)).collect();
                let heads = columns.iter().map(|c| both(c.label.as_ref(), &c.id)).collect();
                let rows = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        columns.iter().map(|c| show(c, r.get(&c.id).unwrap_or(&serde_json::Value::Null))).collect()
                    })
                    .collect();
                sheet.tables.push((both(field.label.as_ref(), &field.id), heads, rows));
                continue;
            }
            let shown = show(field, &value);
            if !shown.is_empty() {
                sheet.fields.push((both(field.label.as_ref(), &field.id), shown));
            }
        }
        sheet.clauses = self.printed_clauses(&f, &row.data)?;
        sheet.seller = self.seller()?.into_iter().map(|(label, v)| (label.to_string(), v)).collect();
        sheet.seals = true;
        if let Some((signer, at, version, hash)) = signed {
            sheet.signature = vec![
                ("签署人 / Signer".into(), signer),
                ("时间 / Signed at".into(), crate::clock::shown(&at, &f.time_zone())),
                ("版本 / Version".into(), version.to_string()),
                ("版本哈希 / Version hash".into(), hash),
            ];
        }
        Ok(sheet)
    }
}
