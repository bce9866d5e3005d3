//! Full-width punctuation where YAML needs ASCII. A Chinese input method types `：`, `，`, `“”`
//! and the full-width space `　`; YAML reads none of them as syntax, so `id： t` is a text with a
//! colon in it and the parser complains a line later about something else. This scan finds them
//! first, at the character, with what to type instead. Text values may hold them freely:
//! `title: 注意：客户，优先` is fine, and only a colon where a key ends, a comma between flow
//! entries, a quote around a key and a full-width space in the indentation are flagged.

use super::Pos;

/// What was found, for the message and the help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// `：` ending a key.
    Colon,
    /// `，` between entries of a flow mapping or list.
    Comma,
    /// `“` or `‘` around a key.
    KeyQuote,
    /// `“` or `‘` opening a value: kept as part of the text (a warning).
    ValueQuote,
    /// `　` in the indentation or after a key's colon.
    Space,
}

impl Mark {
    /// The message and the help.
    pub fn words(self, found: char) -> (String, String) {
        let (what, instead) = match self {
            Mark::Colon => ("a full-width colon `：` ends this key", "type the ASCII colon `:` followed by a space"),
            Mark::Comma => ("a full-width comma `，` separates these entries", "type the ASCII comma `,`"),
            Mark::KeyQuote => ("full-width quotes surround this key", "write the key without quotes"),
            Mark::ValueQuote => (
                "this text starts with a full-width quote, which stays part of the text",
                "to quote a text, use ASCII quotes: \"…\"",
            ),
            Mark::Space => ("a full-width space `　` is not a YAML space", "type ASCII spaces (half-width)"),
        };
        let what = if found == '‘' || found == '“' || found == '　' || found == '：' || found == '，' {
            what.to_string()
        } else {
            format!("{what} (`{found}`)")
        };
        (what, format!("{instead}; switch the input method to half-width (半角) or English for YAML syntax"))
    }
}

fn is_id(token: &str) -> bool {
    let mut chars = token.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The token that ends just before `at`: back to a space, a flow bracket or a comma.
fn token_before(chars: &[char], at: usize) -> String {
    let start = chars[..at].iter().rposition(|c| c.is_whitespace() || "{[,，-".contains(*c)).map_or(0, |i| i + 1);
    chars[start..at].iter().collect()
}

/// The identifier that starts after `at`, if the next thing is a key (`title:`) or another
/// id in a flow list.
fn next_token(chars: &[char], at: usize) -> (String, Option<char>) {
    let rest = &chars[at..];
    let start = rest.iter().position(|c| !c.is_whitespace()).unwrap_or(rest.len());
    let len =
        rest[start..].iter().position(|c| !(c.is_ascii_alphanumeric() || *c == '_')).unwrap_or(rest.len() - start);
    (rest[start..start + len].iter().collect(), rest.get(start + len).copied())
}

/// Every full-width mark that stands where YAML syntax belongs, with its 1-based position.
pub fn scan(text: &str) -> Vec<(Pos, Mark, char)> {
    let mut found = Vec::new();
    let mut depth = 0usize;
    for (n, line) in text.split('\n').enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let (mut quote, mut separated, mut indent) = (None::<char>, false, true);
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let pos = Pos { line: n + 1, column: i + 1 };
            if let Some(q) = quote {
                if c == q {
                    quote = None;
                }
                i += 1;
                continue;
            }
            match c {
                '#' if i == 0 || chars[i - 1].is_whitespace() => break,
                '"' | '\'' if i == 0 || !chars[i - 1].is_alphanumeric() => quote = Some(c),
                '{' | '[' => {
                    depth += 1;
                    separated = false;
                }
                '}' | ']' => depth = depth.saturating_sub(1),
                ',' if depth > 0 => separated = false,
                ':' if chars.get(i + 1).is_none_or(|n| n.is_whitespace()) => separated = true,
                '　' if indent || (i > 0 && chars[i - 1] == ':') => found.push((pos, Mark::Space, c)),
                '：' if !separated && is_id(&token_before(&chars, i)) => {
                    found.push((pos, Mark::Colon, c));
                    separated = true;
                }
                '，' if depth > 0 => {
                    let (next, after) = next_token(&chars, i + 1);
                    let key_next = is_id(&next) && matches!(after, Some(':' | '：'));
                    if key_next || (is_id(&token_before(&chars, i)) && is_id(&next)) {
                        found.push((pos, Mark::Comma, c));
                        separated = false;
                    }
                }
                '“' | '‘' => {
                    let before = chars[..i].iter().rev().find(|c| !c.is_whitespace());
                    let opens = before.is_none_or(|b| "-:{[,".contains(*b));
                    if opens {
                        found.push((pos, if separated { Mark::ValueQuote } else { Mark::KeyQuote }, c));
                    }
                }
                _ => {}
            }
            indent &= c.is_whitespace();
            i += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(text: &str) -> Vec<(usize, usize, Mark)> {
        scan(text).into_iter().map(|(p, m, _)| (p.line, p.column, m)).collect()
    }

    #[test]
    fn finds_full_width_syntax_at_its_character() {
        assert_eq!(marks("app:\n  id： t\n"), [(2, 5, Mark::Colon)]);
        assert_eq!(marks("forms：\n"), [(1, 6, Mark::Colon)]);
        assert_eq!(marks("app: {id: t， title: T}\n"), [(1, 12, Mark::Comma)]);
        assert_eq!(marks("app: {id： t}\n"), [(1, 9, Mark::Colon)]);
        assert_eq!(marks("states: [new，contacted]\n"), [(1, 13, Mark::Comma)]);
        assert_eq!(marks("\u{3000}- id: lead\n"), [(1, 1, Mark::Space)]);
        assert_eq!(marks("id:\u{3000}t\n"), [(1, 4, Mark::Space)]);
        assert_eq!(marks("“id”: t\n"), [(1, 1, Mark::KeyQuote)]);
        assert_eq!(marks("title: “客户”\n"), [(1, 8, Mark::ValueQuote)]);
    }

    #[test]
    fn text_values_keep_their_punctuation() {
        for ok in [
            "title: 注意：客户，优先\n",
            "text: 电话：{{ phone }}\n",
            "text: phone：123\n",
            "text: \"id： t\"\n",
            "label: {zh: 客户，重要, en: Customer}\n",
            "# 备注：id： t\n",
            "text: 客户说“好的”\n",
            "title: 客户　名称\n",
        ] {
            assert_eq!(marks(ok), [], "{ok}");
        }
    }
}
