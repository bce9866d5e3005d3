//! "Did you mean ...?" for misspelt keys and references.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
///
/// Close enough means an edit distance of at most a third of the word's length (at least 1),
/// so `requried` finds `required` but `colour` does not find `label`.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let length = word.chars().count();
    let limit = (length / 3).max(1);
    candidates
        .into_iter()
        // Bounded work per call, whatever the app's size: suggestions are a courtesy, and a
        // crafted app with thousands of misspelt references must not cost minutes.
        .take(MAX_CANDIDATES)
        .filter(|c| *c != word)
        // The length difference is a lower bound of the distance: skip hopeless candidates cheaply.
        .filter(|c| c.chars().count().abs_diff(length) <= limit)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

/// The most candidates one suggestion looks at.
const MAX_CANDIDATES: usize = 200;
/// Words longer than this get no suggestion (ids are at most 48 characters).
const MAX_WORD: usize = 64;

/// A help line "did you mean `x`?" when a candidate is close, else a list of what is allowed.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    if word.chars().count() > MAX_WORD {
        return None;
    }
    if let Some(best) = closest(word, candidates.clone()) {
        return Some(format!("did you mean `{best}`?"));
    }
    let all: Vec<&str> = candidates.into_iter().collect();
    match all.len() {
        0 => None,
        1..=12 => Some(format!("expected one of: {}", quoted_list(&all))),
        _ => None,
    }
}

/// `a`, `b`, `c` as a comma-separated list of backquoted names.
pub fn quoted_list(items: &[&str]) -> String {
    items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions,
/// since swapped letters (`reqiured`) are the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, cell) in d.iter_mut().step_by(width).enumerate() {
        *cell = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best =
                (d[(i - 1) * width + j] + 1).min(d[i * width + j - 1] + 1).min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_transpositions() {
        let keys = ["required", "readonly", "label", "type"];
        assert_eq!(closest("requried", keys), Some("required"));
        assert_eq!(closest("lable", keys), Some("label"));
        assert_eq!(closest("typ", keys), Some("type"));
        assert_eq!(closest("colour", keys), None);
    }

    #[test]
    fn lists_small_sets_when_nothing_is_close() {
        assert_eq!(did_you_mean("zzz", ["a", "b"]).as_deref(), Some("expected one of: `a`, `b`"));
    }
}
