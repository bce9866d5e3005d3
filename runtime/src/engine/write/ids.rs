//! Readable record ids from a form's pattern: `LEAD-{yyyy}-{seq:5}` gives `LEAD-2026-00042`,
//! counted per period in the app's time zone.

/// Renders a readable-id pattern. Returns the counter's period (the pattern with its dates
/// filled and the counter left out, so `LEAD-{yyyy}-{seq:5}` counts per year) and a function of
/// the counter value.
pub(crate) fn id_period(pattern: &str, now: &jiff::Zoned) -> String {
    render(pattern, now, None)
}

/// The id for counter value `seq`.
pub(crate) fn render_id(pattern: &str, now: &jiff::Zoned, seq: i64) -> String {
    render(pattern, now, Some(seq))
}

fn render(pattern: &str, now: &jiff::Zoned, seq: Option<i64>) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}').map(|c| c + open) else { break };
        let token = &rest[open + 1..close];
        match token {
            "yyyy" => out.push_str(&format!("{:04}", now.year())),
            "yy" => out.push_str(&format!("{:02}", now.year().rem_euclid(100))),
            "mm" => out.push_str(&format!("{:02}", now.month())),
            "dd" => out.push_str(&format!("{:02}", now.day())),
            _ => {
                let width = token.strip_prefix("seq:").and_then(|n| n.parse::<usize>().ok()).unwrap_or(1);
                match seq {
                    Some(n) => out.push_str(&format!("{n:0width$}")),
                    None => out.push('#'),
                }
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_ids_count_per_period() {
        let now: jiff::Zoned = "2026-11-26T09:00:00+08:00[Asia/Shanghai]".parse().unwrap();
        assert_eq!(render_id("LEAD-{yyyy}-{seq:5}", &now, 42), "LEAD-2026-00042");
        assert_eq!(id_period("LEAD-{yyyy}-{seq:5}", &now), "LEAD-2026-#");
        assert_eq!(render_id("QT-{yyyy}{mm}-{seq:4}", &now, 7), "QT-202611-0007");
    }
}
