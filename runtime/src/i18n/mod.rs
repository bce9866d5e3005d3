//! What closeloop says to authors, in Chinese: each diagnostic's message and help, rendered
//! through Fluent from `diagnostics.zh.ftl`. That file holds both sides of every text: the comment
//! above each message is the English text's shape (a regular expression), and the message is its
//! Chinese; the names the English quotes (`lead`, `custmer`) carry over. Codes, files, lines and
//! columns are the same in both languages. A text with no shape there stays English.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use regex::Regex;

use crate::model::Lang;

const ZH: &str = include_str!("diagnostics.zh.ftl");

struct Catalog {
    bundle: FluentBundle<FluentResource>,
    /// Message id and the English shape it translates, in the file's order.
    shapes: Vec<(String, Regex)>,
}

fn catalog() -> Option<&'static Catalog> {
    static CATALOG: OnceLock<Option<Catalog>> = OnceLock::new();
    CATALOG.get_or_init(load).as_ref()
}

/// The bundle and the shapes, read from the embedded file. An entry that does not read is left
/// out, the rest kept (its text stays English); a unit test proves every entry reads.
fn load() -> Option<Catalog> {
    let shapes = shapes_of(ZH);
    let resource = FluentResource::try_new(ZH.to_string()).unwrap_or_else(|(partial, _)| partial);
    let zh: unic_langid::LanguageIdentifier = "zh-CN".parse().ok()?;
    let mut bundle = FluentBundle::new_concurrent(vec![zh]);
    // The text goes to terminals and logs, not into bidirectional layouts: no isolation marks.
    bundle.set_use_isolating(false);
    bundle.add_resource_overriding(resource);
    Some(Catalog { bundle, shapes })
}

/// Each message with a one-line comment: its id and the comment as a regular expression (a
/// comment that is not one is skipped).
fn shapes_of(ftl: &str) -> Vec<(String, Regex)> {
    let mut shapes = Vec::new();
    let mut comment: Option<&str> = None;
    for line in ftl.lines() {
        if let Some(c) = line.strip_prefix("# ^") {
            comment = Some(c);
        } else if let (Some(c), Some((id, _))) = (comment.take(), line.split_once(" = ")) {
            if let Ok(re) = Regex::new(&format!("^{c}")) {
                shapes.push((id.trim().to_string(), re));
            }
        }
    }
    shapes
}

/// The text in `lang`: itself in English; in Chinese when its shape is known, else `None`.
pub fn translate(text: &str, lang: Lang) -> Option<String> {
    match lang {
        Lang::En => Some(text.to_string()),
        Lang::Zh => zh(text),
    }
}

/// A text for people in `lang`, line by line: each line whose shape is known in Chinese, the
/// others (and their indentation) as they are.
pub fn localize(text: &str, lang: Lang) -> String {
    if lang == Lang::En {
        return text.to_string();
    }
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            match zh(body) {
                Some(said) => format!("{indent}{said}"),
                None => line.to_string(),
            }
        })
        .collect();
    lines.join("\n")
}

/// The Chinese of an English author-facing text, when its shape is known.
pub fn zh(text: &str) -> Option<String> {
    let catalog = catalog()?;
    let (id, re, caps) = catalog.shapes.iter().find_map(|(id, re)| re.captures(text).map(|c| (id, re, c)))?;
    let mut args = FluentArgs::new();
    for name in re.capture_names().flatten() {
        let Some(value) = caps.name(name).map(|m| m.as_str()) else { continue };
        let shown = match name.split_once('_') {
            Some(("n", _)) => noun(catalog, value),
            Some(("v", _)) => value_words(catalog, value),
            Some(("t", _)) => zh(value).unwrap_or_else(|| value.to_string()),
            _ => value.to_string(),
        };
        args.set(name.to_string(), shown);
    }
    message(catalog, id, Some(&args))
}

fn message(catalog: &Catalog, id: &str, args: Option<&FluentArgs<'_>>) -> Option<String> {
    let pattern = catalog.bundle.get_message(id)?.value()?;
    let mut errors = Vec::new();
    let text = catalog.bundle.format_pattern(pattern, args, &mut errors);
    errors.is_empty().then(|| text.into_owned())
}

/// A noun as the checker words it (`assignment rule`, `a whole number or a list`), in Chinese.
fn noun(catalog: &Catalog, words: &str) -> String {
    let one = |w: &str| message(catalog, &format!("noun-{}", slug(w)), None);
    one(words).unwrap_or_else(|| {
        let parts: Option<Vec<String>> = words.split(" or ").map(one).collect();
        parts.map(|p| p.join("或")).unwrap_or_else(|| words.to_string())
    })
}

/// A value as the checker words it: `"yes"` and `` `true` `` stay, `the number 3` is 数字 3.
fn value_words(catalog: &Catalog, words: &str) -> String {
    let said = match words.strip_prefix("the number ") {
        Some(n) => {
            let mut args = FluentArgs::new();
            args.set("n", n.to_string());
            message(catalog, "value-the-number", Some(&args))
        }
        None => message(catalog, &format!("value-{}", slug(words)), None),
    };
    said.unwrap_or_else(|| format!(" {words}"))
}

fn slug(words: &str) -> String {
    let mut out = String::new();
    for c in words.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_reads_clean_and_every_shape_names_a_message() {
        assert!(FluentResource::try_new(ZH.to_string()).is_ok(), "diagnostics.zh.ftl does not parse");
        let comments = ZH.lines().filter(|l| l.starts_with("# ^")).count();
        assert_eq!(shapes_of(ZH).len(), comments, "a shape does not compile");
        let catalog = catalog();
        assert!(catalog.is_some());
        let Some(catalog) = catalog else { return };
        assert!(catalog.shapes.len() > 100, "{}", catalog.shapes.len());
        for (id, _) in &catalog.shapes {
            assert!(catalog.bundle.get_message(id).is_some(), "{id}");
        }
    }

    #[test]
    fn names_carry_over_and_nouns_and_values_are_translated() {
        assert_eq!(zh("unknown assignment rule `by_regoin`").as_deref(), Some("未知的分配规则 `by_regoin`"));
        assert_eq!(zh("did you mean `customer`?").as_deref(), Some("是不是 `customer`？"));
        assert_eq!(
            zh("`fields[0].max_length` should be a whole number, not \"10个字\"").as_deref(),
            Some("`fields[0].max_length` 应为整数，而不是 \"10个字\"")
        );
        assert_eq!(
            zh("`title` should be a text or a list, not the number 3").as_deref(),
            Some("`title` 应为文本或列表，而不是数字 3")
        );
        assert_eq!(
            zh("cannot read the duration: \"hr\" is not a unit of time (did you mean `h`?)").as_deref(),
            Some("无法读取时长：\"hr\" 不是时间单位（是不是 `h`？）")
        );
        assert_eq!(zh("something nobody wrote a shape for"), None);
        // Line by line, indentation kept; a line with no shape stays.
        let said = "2 problem(s) with the input; nothing was written\n  phone: 电话: \"1\" is not a phone number [WRONG_TYPE]\n  ???";
        assert_eq!(
            localize(said, Lang::Zh),
            "输入有 2 个问题，什么都没有写入\n  phone：电话：\"1\" 不是有效的电话号码 [WRONG_TYPE]\n  ???"
        );
        assert_eq!(localize(said, Lang::En), said);
        assert_eq!(translate("as it is", Lang::En).as_deref(), Some("as it is"));
    }
}
