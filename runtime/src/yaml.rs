//! A YAML reader that keeps the position of every key and value and refuses hostile input.
//!
//! We drive `saphyr-parser`'s event stream ourselves instead of using a ready-made loader,
//! because the loader is where the dangers are: it clones aliased nodes (a billion-laughs
//! document expands exponentially) and recurses per nesting level. Here the tree is built
//! with an explicit stack, nesting is capped at [`Limits::max_depth`], and every alias
//! expansion is charged against [`Limits::max_nodes`] before it is copied.
//!
//! Scalars resolve by the YAML 1.2 core schema: `on`, `yes` and `no` are text, not booleans.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

use crate::diagnostic::{Code, Diagnostic, Location};

mod fullwidth;

/// Caps applied while reading a YAML file.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest file accepted, in bytes.
    pub max_bytes: usize,
    /// The deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// The most nodes the document may hold once aliases are expanded.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 2 * 1024 * 1024, max_depth: 64, max_nodes: 200_000 }
    }
}

/// A 1-based line and column (in characters) in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Self {
        Pos { line: span.start.line(), column: span.start.col() + 1 }
    }
}

/// A YAML node with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the value starts (for block scalars `|` and `>`: at the first content character).
    pub pos: Pos,
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key's text.
    pub text: String,
    /// Where the key starts.
    pub pos: Pos,
}

/// The value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// Text, with the style it was written in.
    Str(String, Style),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Key, Node)>),
}

/// How a text scalar was written; inline scripts need it to map positions back into the YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Plain, unquoted.
    Plain,
    /// `'single quoted'`.
    SingleQuoted,
    /// `"double quoted"`.
    DoubleQuoted,
    /// `|` literal block.
    Literal,
    /// `>` folded block.
    Folded,
}

impl From<ScalarStyle> for Style {
    fn from(s: ScalarStyle) -> Self {
        match s {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::SingleQuoted,
            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
            ScalarStyle::Literal => Style::Literal,
            ScalarStyle::Folded => Style::Folded,
        }
    }
}

impl Node {
    /// The node at a JSON pointer (`/forms/0/fields/2`), if any.
    pub fn at(&self, pointer: &str) -> Option<&Node> {
        let mut node = self;
        for seg in segments(pointer) {
            node = node.child(&seg)?.1;
        }
        Some(node)
    }

    /// The position to report for a pointer: the key that names the value when the value is
    /// a mapping entry and `at_key` is set, else the value itself. Falls back to the nearest
    /// existing ancestor.
    pub fn position(&self, pointer: &str, at_key: bool) -> Pos {
        let segs: Vec<String> = segments(pointer).collect();
        let mut node = self;
        let mut pos = self.pos;
        for (i, seg) in segs.iter().enumerate() {
            match node.child(seg) {
                Some((key, child)) => {
                    let last = i + 1 == segs.len();
                    pos = match key {
                        Some(k) if last && at_key => k.pos,
                        _ => child.pos,
                    };
                    node = child;
                }
                None => break,
            }
        }
        pos
    }

    fn child(&self, seg: &str) -> Option<(Option<&Key>, &Node)> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.text == seg).map(|(k, v)| (Some(k), v)),
            Value::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)).map(|n| (None, n)),
            _ => None,
        }
    }

    /// The node as JSON, for the schema check and the typed model.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f).map(J::Number).unwrap_or_else(|| J::String(f.to_string()))
            }
            Value::Str(s, _) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(entries.iter().map(|(k, v)| (k.text.clone(), v.to_json())).collect()),
        }
    }

    fn count(&self) -> usize {
        match &self.value {
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => 1 + entries.iter().map(|(_, v)| v.count()).sum::<usize>(),
            _ => 1,
        }
    }
}

/// Splits a JSON pointer into unescaped segments.
pub fn segments(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~"))
}

/// Escapes one JSON pointer segment.
pub fn escape_segment(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

/// Reads a YAML document. Returns the tree, or the diagnostics that stopped it.
///
/// Duplicate keys are reported but do not stop reading (the first value wins), so an author
/// sees them together with any other problem.
pub fn parse(file: &str, text: &str, limits: Limits) -> (Option<Node>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let at = |pos: Pos| Location { file: file.to_string(), line: pos.line, column: pos.column, pointer: String::new() };
    if text.len() > limits.max_bytes {
        diags.push(
            Diagnostic::error(
                Code::FILE_TOO_LARGE,
                format!("the file is {} bytes; at most {} are accepted", text.len(), limits.max_bytes),
                &at(Pos { line: 1, column: 1 }),
            )
            .with_help("split large sample data into CSV files under `data/`"),
        );
        return (None, diags);
    }
    // Full-width syntax first: the parser would report it a line later as something else.
    for (pos, mark, found) in fullwidth::scan(text) {
        let (what, help) = mark.words(found);
        let d = if mark == fullwidth::Mark::ValueQuote {
            Diagnostic::warning(Code::FULLWIDTH_PUNCTUATION, what, &at(pos))
        } else {
            Diagnostic::error(Code::FULLWIDTH_PUNCTUATION, what, &at(pos))
        };
        diags.push(d.with_help(help));
    }
    if diags.iter().any(|d| d.severity == crate::diagnostic::Severity::Error) {
        return (None, diags);
    }
    let mut builder = Builder {
        limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        root: None,
        docs: 0,
        aliased: false,
        diags: Vec::new(),
        file,
    };
    for event in Parser::new_from_str(text) {
        let step = match event {
            Ok((event, span)) => builder.on_event(event, &span),
            Err(e) => Err(scan_error(file, &e)),
        };
        if let Err(d) = step {
            builder.diags.push(d);
            return (None, builder.diags);
        }
    }
    diags.append(&mut builder.diags);
    match builder.root {
        // A document of nothing but `---` (or `~`) is as empty as an empty file.
        Some(root) if root.value != Value::Null => (Some(root), diags),
        _ => {
            diags.push(
                Diagnostic::error(Code::EMPTY_FILE, "the file holds no YAML document", &at(Pos { line: 1, column: 1 }))
                    .with_help("start from a bundled template: lead-followup, quote-approval or customer-success"),
            );
            (None, diags)
        }
    }
}

/// Runs the bare YAML parser over a text and counts its events, building nothing. This is the
/// floor that [`parse`] is measured against in `closeloop bench load`.
pub fn count_events(text: &str) -> Result<usize, String> {
    let mut n = 0;
    for event in Parser::new_from_str(text) {
        event.map_err(|e| e.info().to_string())?;
        n += 1;
    }
    Ok(n)
}

fn scan_error(file: &str, e: &ScanError) -> Diagnostic {
    let m = e.marker();
    let at = Location { file: file.to_string(), line: m.line().max(1), column: m.col() + 1, pointer: String::new() };
    // The scanner has its own nesting guard; report it like ours.
    if e.info().contains("recursion limit") {
        return Diagnostic::error(Code::YAML_TOO_DEEP, "the YAML nests too deep (recursion limit)", &at)
            .with_help("an app never needs this much nesting; check for a runaway list like `[[[[`");
    }
    Diagnostic::error(Code::YAML_SYNTAX, format!("YAML syntax: {}", e.info()), &at).with_help("check indentation (spaces, not tabs) and that every `:` in a plain text is followed by a space or the text is quoted")
}

enum Frame {
    Seq { items: Vec<Node>, pos: Pos, anchor: usize },
    Map { entries: Vec<(Key, Node)>, key: Option<Key>, pos: Pos, anchor: usize },
}

struct Builder<'f> {
    limits: Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    root: Option<Node>,
    docs: usize,
    diags: Vec<Diagnostic>,
    file: &'f str,
    /// Whether an alias was expanded, to word the node-budget error.
    aliased: bool,
}

impl Builder<'_> {
    fn loc(&self, pos: Pos) -> Location {
        Location { file: self.file.to_string(), line: pos.line, column: pos.column, pointer: String::new() }
    }

    fn on_event(&mut self, event: Event<'_>, span: &Span) -> Result<(), Diagnostic> {
        let pos = Pos::from_span(span);
        match event {
            Event::DocumentStart(_) => {
                self.docs += 1;
                if self.docs > 1 {
                    return Err(Diagnostic::error(
                        Code::MULTIPLE_DOCUMENTS,
                        "the file holds more than one YAML document",
                        &self.loc(pos),
                    )
                    .with_help(
                        "an app is one document: remove the `---` line, or move the second app to its own folder",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = self.resolve(&text, style, tag.as_deref(), pos)?;
                self.charge(pos)?;
                self.push(Node { value, pos }, anchor)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "seq", pos)?;
                self.open(Frame::Seq { items: Vec::new(), pos, anchor }, pos)?;
            }
            Event::MappingStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "map", pos)?;
                self.open(Frame::Map { entries: Vec::new(), key: None, pos, anchor }, pos)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let (node, anchor) = match frame {
                        Frame::Seq { items, pos, anchor } => (Node { value: Value::Seq(items), pos }, anchor),
                        Frame::Map { entries, pos, anchor, .. } => (Node { value: Value::Map(entries), pos }, anchor),
                    };
                    self.push(node, anchor)?;
                }
            }
            Event::Alias(id) => {
                self.aliased = true;
                let node = match self.anchors.get(&id) {
                    Some(n) => n,
                    None => {
                        return Err(Diagnostic::error(Code::YAML_SYNTAX, "alias to an unknown anchor", &self.loc(pos)))
                    }
                };
                let cost = node.count();
                if self.nodes + cost > self.limits.max_nodes {
                    return Err(self.alias_limit(pos));
                }
                let mut copy = node.clone();
                copy.pos = pos;
                self.nodes += cost;
                self.push(copy, 0)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn alias_limit(&self, pos: Pos) -> Diagnostic {
        if !self.aliased {
            return Diagnostic::error(
                Code::YAML_ALIAS_LIMIT,
                format!("the document holds more than {} values", self.limits.max_nodes),
                &self.loc(pos),
            )
            .with_help("an app is far smaller; keep sample data in CSV files under `data/`");
        }
        Diagnostic::error(
            Code::YAML_ALIAS_LIMIT,
            format!(
                "anchors and aliases expand this document past {} values (repetition/alias limit)",
                self.limits.max_nodes
            ),
            &self.loc(pos),
        )
        .with_help("write the repeated part out, or reuse it by id instead of by alias")
    }

    fn open(&mut self, frame: Frame, pos: Pos) -> Result<(), Diagnostic> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(Diagnostic::error(
                Code::YAML_TOO_DEEP,
                format!("the YAML nests deeper than {} levels (recursion limit)", self.limits.max_depth),
                &self.loc(pos),
            )
            .with_help("an app never needs this much nesting; check for a runaway list like `[[[[`"));
        }
        self.charge(pos)?;
        self.stack.push(frame);
        Ok(())
    }

    fn charge(&mut self, pos: Pos) -> Result<(), Diagnostic> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(self.alias_limit(pos));
        }
        Ok(())
    }

    /// Places a finished node in its parent. Callers have charged it against the budget.
    fn push(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let file = self.file;
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let text = match node.value {
                        Value::Str(s, _) => s,
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".to_string(),
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(Diagnostic::error(
                                Code::NON_TEXT_KEY,
                                "a key must be a plain text, not a list or mapping",
                                &Location {
                                    file: file.to_string(),
                                    line: node.pos.line,
                                    column: node.pos.column,
                                    pointer: String::new(),
                                },
                            ));
                        }
                    };
                    *key = Some(Key { text, pos: node.pos });
                }
                Some(k) => {
                    if let Some((first, _)) = entries.iter().find(|(e, _)| e.text == k.text) {
                        let d = Diagnostic::error(
                            Code::DUPLICATE_KEY,
                            format!("key `{}` appears twice in this mapping", k.text),
                            &Location {
                                file: file.to_string(),
                                line: k.pos.line,
                                column: k.pos.column,
                                pointer: String::new(),
                            },
                        )
                        .with_help(format!("the first `{}` is at line {}; keep one", k.text, first.pos.line));
                        self.diags.push(d);
                    } else {
                        entries.push((k, node));
                    }
                }
            },
        }
        Ok(())
    }

    fn check_collection_tag(&self, tag: Option<&Tag>, expected: &str, pos: Pos) -> Result<(), Diagnostic> {
        match tag {
            None => Ok(()),
            Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
            Some(t) => Err(self.bad_tag(t, pos)),
        }
    }

    fn bad_tag(&self, tag: &Tag, pos: Pos) -> Diagnostic {
        let shown = if tag.is_yaml_core_schema() { format!("!!{}", tag.suffix) } else { tag.to_string() };
        Diagnostic::error(
            Code::UNSUPPORTED_TAG,
            format!("the tag `{shown}` is not part of the app language"),
            &self.loc(pos),
        )
        .with_help("remove the tag; quote the value if it must stay text")
    }

    fn resolve(&self, text: &str, style: ScalarStyle, tag: Option<&Tag>, pos: Pos) -> Result<Value, Diagnostic> {
        let as_str = || Value::Str(text.to_string(), style.into());
        if let Some(tag) = tag {
            if !tag.is_yaml_core_schema() {
                return Err(self.bad_tag(tag, pos));
            }
            let forced = match tag.suffix.as_str() {
                "str" => Some(as_str()),
                "int" => text.parse::<i64>().ok().map(Value::Int),
                "float" => text.parse::<f64>().ok().map(Value::Float),
                "bool" => match text {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                },
                "null" => Some(Value::Null),
                _ => return Err(self.bad_tag(tag, pos)),
            };
            return forced.ok_or_else(|| {
                Diagnostic::error(Code::UNSUPPORTED_TAG, format!("`{text}` cannot be read as `{tag}`"), &self.loc(pos))
                    .with_help("remove the tag")
            });
        }
        if style != ScalarStyle::Plain {
            return Ok(as_str());
        }
        Ok(resolve_plain(text).unwrap_or_else(as_str))
    }
}

/// YAML 1.2 core schema resolution of a plain scalar; `None` means text.
fn resolve_plain(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(Value::Float(f64::INFINITY)),
        "-.inf" | "-.Inf" | "-.INF" => return Some(Value::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Value::Float(f64::NAN)),
        _ => {}
    }
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = text.strip_prefix("0x") {
        return digits(hex, 16).then(|| i64::from_str_radix(hex, 16).ok().map(Value::Int)).flatten();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return digits(oct, 8).then(|| i64::from_str_radix(oct, 8).ok().map(Value::Int)).flatten();
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits(unsigned, 10) {
        // Too large for i64: keep the digits as text rather than lose precision.
        return text.parse::<i64>().ok().map(Value::Int);
    }
    if is_float(unsigned) {
        return text.parse::<f64>().ok().map(Value::Float);
    }
    None
}

/// `[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?` or `\.[0-9]+(...)`, as the core schema says.
fn is_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => all_digits(int) && all_digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && all_digits(int),
    };
    let exponent_ok = match exponent {
        None => frac.is_some(),
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && all_digits(e)
        }
    };
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Option<Node>, Vec<Diagnostic>) {
        parse("t.yaml", text, Limits::default())
    }

    fn codes(text: &str) -> Vec<&'static str> {
        read(text).1.iter().map(|d| d.code.as_str()).collect()
    }

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let (root, diags) = read("app:\n  id: x\nforms:\n  - id: 线索\n    label: 名称\n");
        assert!(diags.is_empty(), "{diags:?}");
        let root = root.unwrap();
        assert_eq!(root.position("/forms/0/label", true), Pos { line: 5, column: 5 });
        assert_eq!(root.position("/forms/0/label", false), Pos { line: 5, column: 12 });
        assert_eq!(root.position("/forms/0/id", false), Pos { line: 4, column: 9 });
    }

    #[test]
    fn resolves_scalars_by_the_core_schema() {
        let (root, _) = read("a: on\nb: yes\nc: 12\nd: 1.5\ne: ~\nf: '12'\ng: 09:00\nh: 2026-01-01\ni: .5\nj: 1e3\n");
        let json = root.unwrap().to_json();
        assert_eq!(json["a"], "on");
        assert_eq!(json["b"], "yes");
        assert_eq!(json["c"], 12);
        assert_eq!(json["d"], 1.5);
        assert!(json["e"].is_null());
        assert_eq!(json["f"], "12");
        assert_eq!(json["g"], "09:00");
        assert_eq!(json["h"], "2026-01-01");
        assert_eq!(json["i"], 0.5);
        assert_eq!(json["j"], 1000.0);
    }

    #[test]
    fn reports_duplicate_keys_at_the_second_key() {
        let (_, diags) = read("a: 1\nb: 2\na: 3\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, Code::DUPLICATE_KEY);
        assert_eq!((diags[0].line, diags[0].column), (3, 1));
    }

    #[test]
    fn refuses_multiple_documents_tags_and_empty_files() {
        assert_eq!(codes("a: 1\n---\nb: 2\n"), ["MULTIPLE_DOCUMENTS"]);
        assert_eq!(codes("a: !custom 1\n"), ["UNSUPPORTED_TAG"]);
        assert_eq!(codes("a: !!binary aGk=\n"), ["UNSUPPORTED_TAG"]);
        assert_eq!(codes("a: !!str 12\n"), Vec::<&str>::new());
        assert_eq!(codes("# nothing\n"), ["EMPTY_FILE"]);
        assert_eq!(codes("? [a]\n: 1\n"), ["NON_TEXT_KEY"]);
    }

    #[test]
    fn refuses_deep_nesting_without_recursing() {
        let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        assert_eq!(codes(&deep), ["YAML_TOO_DEEP"]);
        let mut nested = String::new();
        for i in 0..1_000 {
            nested.push_str(&" ".repeat(i));
            nested.push_str("a:\n");
        }
        assert_eq!(codes(&nested), ["YAML_TOO_DEEP"]);
    }

    #[test]
    fn refuses_alias_bombs() {
        let mut bomb =
            String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(",");
            bomb.push_str(&format!("{}: &{} [{}]\n", w[1], w[1], refs));
        }
        assert_eq!(codes(&bomb), ["YAML_ALIAS_LIMIT"]);
    }

    #[test]
    fn reports_syntax_errors_with_a_position() {
        let (_, diags) = read("a: [1, 2\nb: 3\n");
        assert_eq!(diags[0].code, Code::YAML_SYNTAX);
        assert!(diags[0].line >= 1);
    }
}
