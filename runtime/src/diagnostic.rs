//! Author-facing problems: one [`Diagnostic`] per problem, with a stable code and a position.
//!
//! Diagnostics are data. Rendering them for a terminal or as JSON is the CLI's job.

use serde::Serialize;

/// How bad a problem is. Errors make an app invalid; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The app cannot be used until this is fixed.
    Error,
    /// The app works, but probably not as its author meant.
    Warning,
}

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident),* $(,)?) => {
        /// The stable code of a diagnostic. Codes never change meaning; tests and tools match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[allow(non_camel_case_types)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as written in output: `UNKNOWN_KEY`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => stringify!($variant),)*
                }
            }
        }
    };
}

codes! {
    // Reading and parsing.
    /// A file could not be read.
    FILE_UNREADABLE,
    /// A file is larger than the loader accepts.
    FILE_TOO_LARGE,
    /// A file is not valid UTF-8.
    NOT_UTF8,
    /// The YAML text does not parse.
    YAML_SYNTAX,
    /// Full-width punctuation (`：`, `，`, `“”`, `　`) where YAML needs ASCII.
    FULLWIDTH_PUNCTUATION,
    /// The YAML nests deeper than the loader accepts.
    YAML_TOO_DEEP,
    /// Anchors and aliases would expand the document past the loader's budget.
    YAML_ALIAS_LIMIT,
    /// The same key appears twice in one mapping.
    DUPLICATE_KEY,
    /// The file holds more than one YAML document.
    MULTIPLE_DOCUMENTS,
    /// A YAML tag the app language does not use (`!!binary`, `!custom`).
    UNSUPPORTED_TAG,
    /// A mapping key that is not a plain text.
    NON_TEXT_KEY,
    /// The file is empty.
    EMPTY_FILE,
    // The JSON Schema.
    /// A key the language does not have at that place.
    UNKNOWN_KEY,
    /// A key that must be present is missing.
    MISSING_KEY,
    /// A value of the wrong type (text where a number belongs).
    WRONG_TYPE,
    /// A value outside the allowed set.
    BAD_VALUE,
    /// A text that does not have the required form (an id with capitals).
    BAD_FORMAT,
    /// A number outside its allowed range.
    OUT_OF_RANGE,
    /// A text or list that is too short or too long.
    BAD_LENGTH,
    /// A list that repeats an item.
    DUPLICATE_ITEM,
    /// An entry that must have exactly one of several keys has none or several.
    ONE_KEY_EXPECTED,
    /// Any other schema violation.
    SCHEMA_VIOLATION,
    // Meaning.
    /// Two items of one kind share an id.
    DUPLICATE_ID,
    /// A form that does not exist.
    UNKNOWN_FORM,
    /// A field that does not exist on that form.
    UNKNOWN_FIELD,
    /// A state that does not exist on that form.
    UNKNOWN_STATE,
    /// An action that does not exist on that form.
    UNKNOWN_ACTION,
    /// A role that is not declared.
    UNKNOWN_ROLE,
    /// A member attribute that does not exist.
    UNKNOWN_MEMBER_FIELD,
    /// A channel that is not declared.
    UNKNOWN_CHANNEL,
    /// A message template that is not declared.
    UNKNOWN_MESSAGE,
    /// An SOP template that is not declared.
    UNKNOWN_SOP,
    /// An SOP task that is not declared.
    UNKNOWN_TASK,
    /// A board that is not declared.
    UNKNOWN_BOARD,
    /// An approval chain (or step) that is not declared.
    UNKNOWN_APPROVAL,
    /// An assignment rule that is not declared.
    UNKNOWN_RULE,
    /// An external event that is not declared.
    UNKNOWN_EVENT,
    /// A score that is not declared.
    UNKNOWN_SCORE,
    /// A grade that is not declared.
    UNKNOWN_GRADE,
    /// A calendar that is not declared.
    UNKNOWN_CALENDAR,
    /// A script file that is not in the app's `scripts/` folder.
    UNKNOWN_SCRIPT,
    /// A data file that is not in the app's `data/` folder.
    UNKNOWN_FILE,
    /// A field of the wrong type for that use (a timer anchored on a text field).
    WRONG_FIELD_TYPE,
    /// An option that does not apply to the field's type (`options` on a number).
    OPTION_NOT_APPLICABLE,
    /// A field type that needs an option lacks it (`choice` without `options`).
    MISSING_OPTION,
    /// A value not among a choice field's options.
    UNKNOWN_OPTION,
    /// A name reserved by closeloop (`id`, `version`, `created_at`...).
    RESERVED_NAME,
    /// A duration that does not parse (`24hours`).
    BAD_DURATION,
    /// A cron schedule that does not parse.
    BAD_CRON,
    /// A time zone that does not exist.
    BAD_TIME_ZONE,
    /// A date or time of day that does not exist.
    BAD_DATE,
    /// A regular expression that does not compile (or is too large).
    BAD_PATTERN,
    /// A record id pattern that does not parse.
    BAD_ID_PATTERN,
    /// A condition with a wrong combination of keys.
    BAD_CONDITION,
    /// Computed fields that depend on each other in a circle.
    COMPUTED_CYCLE,
    /// A rhai script or expression that does not compile.
    SCRIPT_SYNTAX,
    /// A message puts a sensitive field into a group chat (a WeCom or DingTalk robot).
    SENSITIVE_IN_GROUP,
    /// An `emit` hands a sensitive field, or one only some roles read, to an event (a warning).
    SENSITIVE_HANDOVER,
    /// A script or expression uses a name nothing declares (a misspelt field, a variable never `let`).
    UNKNOWN_VARIABLE,
    /// A script file under `scripts/` that nothing in the app refers to (a warning).
    UNUSED_SCRIPT,
    /// A message template that does not compile.
    BAD_TEMPLATE,
    /// States that are not well formed (no initial state, two initial states).
    BAD_STATES,
    /// A combination of settings that contradict each other.
    CONFLICT,
        /// A label is missing one of the app's languages.
    MISSING_TRANSLATION,
    // Installing.
    /// A form id already used by another installed app.
    FORM_TAKEN,
    /// A new version would remove a form, field or state that stored records still use.
    ORPHANED_DATA,
    /// Active members a channel cannot reach: no phone, email or WeCom/DingTalk userid (a
    /// warning at install, not a dead letter discovered later).
    MEMBER_UNREACHABLE,
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem in an app, at one place.
///
/// `line` and `column` are 1-based and count characters (not bytes), so a Chinese label
/// is one column per character. `pointer` is the JSON pointer of the offending value in the
/// app document (empty for problems inside scripts or outside the document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in the author's words.
    pub message: String,
    /// What to do about it, when a fix can be guessed.
    pub help: Option<String>,
    /// The file, as given to the loader (`app-templates/lead-followup/app.yaml`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// JSON pointer into the app document.
    pub pointer: String,
}

impl Diagnostic {
    /// An error diagnostic.
    pub fn error(code: Code, message: impl Into<String>, at: &Location) -> Self {
        Self::new(code, Severity::Error, message, at)
    }

    /// A warning diagnostic.
    pub fn warning(code: Code, message: impl Into<String>, at: &Location) -> Self {
        Self::new(code, Severity::Warning, message, at)
    }

    fn new(code: Code, severity: Severity, message: impl Into<String>, at: &Location) -> Self {
        Diagnostic {
            code,
            severity,
            message: message.into(),
            help: None,
            file: at.file.clone(),
            line: at.line,
            column: at.column,
            pointer: at.pointer.clone(),
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a help line when there is one.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The message in the author's language: Chinese where closeloop has it, else as written.
    pub fn message_in(&self, lang: crate::model::Lang) -> String {
        crate::i18n::translate(&self.message, lang).unwrap_or_else(|| self.message.clone())
    }

    /// The help line in the author's language, as [`Diagnostic::message_in`].
    pub fn help_in(&self, lang: crate::model::Lang) -> Option<String> {
        self.help.as_ref().map(|h| crate::i18n::translate(h, lang).unwrap_or_else(|| h.clone()))
    }
}

/// Where a diagnostic points: file, 1-based line and column, JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// JSON pointer of the value, or empty.
    pub pointer: String,
}
