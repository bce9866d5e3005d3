//! The language closeloop speaks at the terminal: `LC_ALL`, then `LC_MESSAGES`, then `LANG`, in
//! the order POSIX gives them (an empty one is skipped). `zh…` is Chinese; anything else,
//! `C` and `POSIX` included, is English. Diagnostic codes, files, lines and columns are the same
//! in both; `--format json` stays English, for programs.

use closeloop::model::Lang;

/// The terminal's language.
pub fn lang() -> Lang {
    let set = ["LC_ALL", "LC_MESSAGES", "LANG"].iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    of(set.as_deref())
}

fn of(locale: Option<&str>) -> Lang {
    match locale {
        Some(l) if l.to_ascii_lowercase().starts_with("zh") => Lang::Zh,
        _ => Lang::En,
    }
}

/// Text for the terminal in its language, line by line (see `closeloop::localize`).
pub fn say(text: &str) -> String {
    closeloop::localize(text, lang())
}

/// One of two texts by the terminal's language.
pub fn pick<'a>(zh: &'a str, en: &'a str) -> &'a str {
    match lang() {
        Lang::Zh => zh,
        Lang::En => en,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chinese_locale_of_any_spelling_is_chinese_and_the_rest_english() {
        for zh in ["zh_CN.UTF-8", "zh_TW", "zh", "ZH_cn.utf8"] {
            assert_eq!(of(Some(zh)), Lang::Zh, "{zh}");
        }
        for en in ["C", "POSIX", "C.UTF-8", "en_US.UTF-8", "de_DE"] {
            assert_eq!(of(Some(en)), Lang::En, "{en}");
        }
        assert_eq!(of(None), Lang::En);
    }
}
