//! The three bundled apps, embedded in the library so the binary carries them.

use std::collections::{BTreeMap, BTreeSet};

use crate::loader::AppFiles;

/// A bundled app template.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// The template's name (`lead-followup`), also its folder under `app-templates/`.
    pub name: &'static str,
    /// Every file, by path inside the template folder.
    pub files: &'static [(&'static str, &'static str)],
}

macro_rules! template {
    ($name:literal: $($path:literal),* $(,)?) => {
        Template {
            name: $name,
            files: &[$(($path, include_str!(concat!("../../app-templates/", $name, "/", $path))),)*],
        }
    };
}

const TEMPLATES: &[Template] = &[
    template!("lead-followup": "app.yaml", "README.md", "data/members.csv", "data/leads.csv"),
    template!("quote-approval":
        "app.yaml", "README.md", "scripts/price_lines.rhai", "data/members.csv", "data/products.csv",
        "data/customers.csv", "data/price_history.csv", "data/clauses.csv"),
    template!("customer-success":
        "app.yaml", "README.md", "scripts/health.rhai", "data/members.csv", "data/accounts.csv", "data/payments.csv"),
];

/// The bundled templates, in the order of DESIGN.md.
pub fn templates() -> &'static [Template] {
    TEMPLATES
}

/// A bundled template by name.
pub fn template(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

impl Template {
    /// The template's files, ready for the loader; diagnostics name them
    /// `app-templates/NAME/...`, where they live in the source tree.
    pub fn app_files(&self) -> AppFiles {
        let mut scripts = BTreeMap::new();
        let mut data = BTreeSet::new();
        let mut app_yaml = String::new();
        for (path, text) in self.files {
            if *path == "app.yaml" {
                app_yaml = (*text).to_string();
            } else if path.starts_with("scripts/") {
                scripts.insert((*path).to_string(), (*text).to_string());
            } else if path.starts_with("data/") {
                data.insert((*path).to_string());
            }
        }
        AppFiles {
            dir: format!("app-templates/{}", self.name),
            file_name: String::new(),
            app_yaml,
            scripts,
            data_files: Some(data),
            unreadable: BTreeMap::new(),
        }
    }
}
