//! Lengths of the texts an app shows people. A label is a few words and a message a few
//! paragraphs; a two-megabyte title is a mistake or an attack, and it would be copied into every
//! page, list and notification.

use crate::diagnostic::Code;
use crate::yaml::{Node, Value};

use super::Ctx;

/// The most characters of a name-like text: a title, a label, a subject.
pub(super) const MAX_LABEL_CHARS: usize = 200;
/// The most characters of a longer text: a description, help, a talk track, a message.
pub(super) const MAX_TEXT_CHARS: usize = 10_000;

/// Checks the length of a label-like value (`key` is its key: `title`, `text`, …): a plain
/// text, or each language's text of a `{zh, en}` map.
pub(super) fn label_length(ctx: &mut Ctx<'_>, key: &str, node: &Node, pointer: &str) {
    let max = if matches!(key, "label" | "title" | "subject") { MAX_LABEL_CHARS } else { MAX_TEXT_CHARS };
    let mut check = |text: &str, pointer: &str| {
        let len = text.chars().count();
        if len > max {
            ctx.error(Code::BAD_LENGTH, format!("`{key}` is {len} characters; at most {max} are accepted"), pointer)
                .help = Some(if max == MAX_LABEL_CHARS {
                "a label is a few words; put longer explanations in `description` or `help`".to_string()
            } else {
                "write a shorter text, or link to a document that holds the rest".to_string()
            });
        }
    };
    match &node.value {
        Value::Str(text, _) => check(text, pointer),
        Value::Map(langs) => {
            for (lang, child) in langs {
                if let Value::Str(text, _) = &child.value {
                    check(text, &format!("{pointer}/{}", crate::yaml::escape_segment(&lang.text)));
                }
            }
        }
        _ => {}
    }
}
