//! Durations, cron schedules, time zones and dates as ops staff write them.
//!
//! Parsing only: what these mean on a working calendar is [`crate::calendar`]'s business.

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::suggest;

/// A length of time, counted on the clock, in calendar days or on the app's working calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duration {
    /// Clock time, in seconds (`24h` is 86,400; `1d12h` is 129,600).
    Clock(i64),
    /// Calendar days, for a duration written only in days and weeks (`7d`, `2w`, `1w2d`): the same
    /// wall-clock time that many days later, even when daylight saving time starts or ends between.
    Days(i64),
    /// Working days on the app calendar (`3 business days`).
    BusinessDays(i64),
    /// Working hours on the app calendar (`8 business hours`).
    BusinessHours(i64),
}

/// The longest duration accepted: ten years, far beyond any follow-up or contract term.
const MAX_SECONDS: i64 = 10 * 366 * 86_400;

const SECONDS_PER_DAY: i64 = 86_400;

const UNITS: &[(&str, i64)] = &[
    ("s", 1),
    ("sec", 1),
    ("second", 1),
    ("seconds", 1),
    ("秒", 1),
    ("m", 60),
    ("min", 60),
    ("minute", 60),
    ("minutes", 60),
    ("分钟", 60),
    ("分", 60),
    ("h", 3600),
    ("hour", 3600),
    ("hours", 3600),
    ("小时", 3600),
    ("d", 86_400),
    ("day", 86_400),
    ("days", 86_400),
    ("天", 86_400),
    ("日", 86_400),
    ("w", 604_800),
    ("week", 604_800),
    ("weeks", 604_800),
    ("周", 604_800),
];

const BUSINESS_DAY_UNITS: &[&str] =
    &["business day", "business days", "working day", "working days", "workday", "workdays", "工作日"];
const BUSINESS_HOUR_UNITS: &[&str] = &["business hour", "business hours", "working hour", "working hours", "工作小时"];

/// How to write a duration, for help lines.
pub const DURATION_HELP: &str =
    "write a number and a unit: `30m`, `24h`, `7d`, `2w`, `1d12h`, or `3 business days` / `8 business hours`";

impl std::str::FromStr for Duration {
    type Err = String;

    /// Parses `24h`, `1d12h`, `7 days`, `3 business days`, `24小时`, `3个工作日`.
    fn from_str(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let (number, rest) = split_number(s).ok_or_else(|| format!("\"{text}\" does not start with a number"))?;
        if rest.starts_with(['.', ',']) {
            return Err(format!("\"{text}\": durations take whole numbers; write `90m` rather than `1.5h`"));
        }
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('个').unwrap_or(rest).trim();
        let unit = rest.to_lowercase();
        let unit = unit.split_whitespace().collect::<Vec<_>>().join(" ");
        if BUSINESS_DAY_UNITS.contains(&unit.as_str()) {
            // A working day is at least a day long, so the ten-year bound counts it as one.
            return bounded(number, SECONDS_PER_DAY).map(|_| Duration::BusinessDays(number));
        }
        if BUSINESS_HOUR_UNITS.contains(&unit.as_str()) {
            return bounded(number, 3600).map(|_| Duration::BusinessHours(number));
        }
        // Compact sequences such as `1d12h`.
        let mut total = 0i64;
        let mut whole_days = true;
        let mut number = number;
        let mut rest = rest;
        loop {
            let unit_len = rest.find(|c: char| c.is_ascii_digit() || c.is_whitespace()).unwrap_or(rest.len());
            let (unit, tail) = rest.split_at(unit_len);
            let seconds = match UNITS.iter().find(|(name, _)| *name == unit.to_lowercase()) {
                Some((_, seconds)) => *seconds,
                None if unit.is_empty() => return Err(format!("\"{text}\" has a number without a unit")),
                None => {
                    let names: Vec<&str> =
                        UNITS.iter().map(|(n, _)| *n).chain(BUSINESS_DAY_UNITS.iter().copied()).collect();
                    let hint = suggest::closest(&unit.to_lowercase(), names)
                        .map(|u| format!(" (did you mean `{u}`?)"))
                        .unwrap_or_default();
                    return Err(format!("\"{unit}\" is not a unit of time{hint}"));
                }
            };
            whole_days &= seconds % SECONDS_PER_DAY == 0;
            total = number
                .checked_mul(seconds)
                .and_then(|n| n.checked_add(total))
                .ok_or_else(|| format!("\"{text}\" is too long"))?;
            let tail = tail.trim_start();
            if tail.is_empty() {
                break;
            }
            let (n, r) = split_number(tail).ok_or_else(|| format!("cannot read \"{tail}\" in \"{text}\""))?;
            number = n;
            let r = r.trim_start();
            rest = r.strip_prefix('个').unwrap_or(r);
        }
        bounded(total, 1)?;
        // Only days and weeks (`7d`, `2w`) count calendar days; any hour, minute or second part
        // (`1d12h`, `24h`) makes the whole duration clock time.
        Ok(if whole_days { Duration::Days(total / SECONDS_PER_DAY) } else { Duration::Clock(total) })
    }
}

/// Units people write that closeloop does not read, and the one to write instead.
const UNIT_REWRITES: &[(&str, &str)] = &[
    ("hrs", "h"),
    ("hr", "h"),
    ("mins", "m"),
    ("secs", "s"),
    ("wks", "w"),
    ("wk", "w"),
    ("钟头", "小时"),
    ("work hours", "business hours"),
    ("work hour", "business hours"),
    ("work days", "business days"),
    ("work day", "business days"),
    ("workhours", "business hours"),
    ("working hrs", "business hours"),
    ("工作天", "工作日"),
];

/// Chinese numbers people write in durations (`两小时`, `三天`, `十五分钟`), up to 99.
fn chinese_number(text: &str) -> Option<(i64, &str)> {
    const DIGITS: &str = "零一二三四五六七八九";
    let digit = |c: char| match c {
        '两' => Some(2),
        c => DIGITS.chars().position(|d| d == c).map(|n| n as i64),
    };
    let mut chars = text.char_indices().peekable();
    let (mut value, mut seen) = (0i64, false);
    while let Some(&(i, c)) = chars.peek() {
        if c == '十' {
            value = if seen { value * 10 } else { 10 };
        } else if let Some(d) = digit(c) {
            value = if value >= 10 && value % 10 == 0 { value + d } else { value * 10 + d };
        } else {
            return seen.then(|| (value, &text[i..]));
        }
        seen = true;
        chars.next();
    }
    None
}

/// What to write instead of a duration closeloop cannot read, when the intent is clear:
/// `2hrs` → `2h`, `两小时` → `2小时`, `2 work hours` → `2 business hours`, `半天` → `12h`.
pub fn duration_instead(text: &str) -> Option<String> {
    let t = text.trim();
    let half = |unit: &str| match unit {
        "天" | "日" | "day" => Some("12h".to_string()),
        "小时" | "个小时" | "hour" => Some("30m".to_string()),
        "个工作日" | "工作日" | "working day" | "business day" => Some("4 business hours".to_string()),
        _ => None,
    };
    if let Some(unit) = t.strip_prefix('半').or_else(|| t.strip_prefix("half a ")).or_else(|| t.strip_prefix("half "))
    {
        return half(unit.trim());
    }
    let (number, rest) = match split_number(t) {
        Some((n, r)) => (n, r),
        None => chinese_number(t)?,
    };
    let mut rest = rest.trim().to_lowercase();
    for (from, to) in UNIT_REWRITES {
        if let Some(pos) = rest.find(from) {
            rest.replace_range(pos..pos + from.len(), to);
            break;
        }
    }
    let spaced = rest.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && rest.contains(' ');
    let candidate = if spaced { format!("{number} {rest}") } else { format!("{number}{rest}") };
    (candidate != t && candidate.parse::<Duration>().is_ok()).then_some(candidate)
}

fn bounded(amount: i64, seconds_per_unit: i64) -> Result<(), String> {
    if amount.saturating_mul(seconds_per_unit) > MAX_SECONDS {
        return Err("durations are limited to ten years".to_string());
    }
    Ok(())
}

fn split_number(s: &str) -> Option<(i64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 || end > 9 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// Parses a standard 5-field cron expression (minute hour day-of-month month day-of-week).
/// Seconds and years are refused so that `0 9 * * 1-5` means one thing only.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if !expr.trim_start().starts_with('@') && fields != 5 {
        return Err(format!("a schedule has 5 fields (minute hour day month weekday); this one has {fields}"));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
}

/// Checks an IANA time zone name against the bundled time zone database.
pub fn parse_time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name).map_err(|_| format!("\"{name}\" is not a known time zone"))
}

/// A calendar date `YYYY-MM-DD` that exists.
pub fn parse_date(text: &str) -> Result<jiff::civil::Date, String> {
    text.parse::<jiff::civil::Date>().map_err(|_| format!("\"{text}\" is not a date that exists"))
}

/// A time of day `HH:MM` that exists.
pub fn parse_time_of_day(text: &str) -> Result<jiff::civil::Time, String> {
    text.parse::<jiff::civil::Time>().map_err(|_| format!("\"{text}\" is not a time of day"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<Duration, String> {
        s.parse()
    }

    #[test]
    fn parses_the_forms_ops_staff_write() {
        assert_eq!(d("24h"), Ok(Duration::Clock(86_400)));
        assert_eq!(d("1d12h"), Ok(Duration::Clock(86_400 + 12 * 3600)));
        assert_eq!(d("30 minutes"), Ok(Duration::Clock(1800)));
        assert_eq!(d("3 business days"), Ok(Duration::BusinessDays(3)));
        assert_eq!(d("5 Working Days"), Ok(Duration::BusinessDays(5)));
        assert_eq!(d("8 business hours"), Ok(Duration::BusinessHours(8)));
        assert_eq!(d("24小时"), Ok(Duration::Clock(86_400)));
        assert_eq!(d("3个工作日"), Ok(Duration::BusinessDays(3)));
    }

    #[test]
    fn days_and_weeks_alone_are_calendar_days() {
        assert_eq!(d("7d"), Ok(Duration::Days(7)));
        assert_eq!(d("2w"), Ok(Duration::Days(14)));
        assert_eq!(d("45 days"), Ok(Duration::Days(45)));
        assert_eq!(d("1w2d"), Ok(Duration::Days(9)));
        assert_eq!(d("7天"), Ok(Duration::Days(7)));
        assert_eq!(d("1周"), Ok(Duration::Days(7)));
        // Any clock part makes the whole duration clock time.
        assert_eq!(d("1d12h"), Ok(Duration::Clock(86_400 + 12 * 3600)));
        assert_eq!(d("1d30m"), Ok(Duration::Clock(86_400 + 1800)));
        assert_eq!(d("24h"), Ok(Duration::Clock(86_400)));
        assert_eq!(d("1440m"), Ok(Duration::Clock(86_400)));
    }

    #[test]
    fn ten_years_is_the_longest_duration() {
        assert_eq!(d("3660d"), Ok(Duration::Days(3660)));
        assert!(d("3661d").is_err());
        assert!(d("523w").is_err());
        assert_eq!(d("3660 business days"), Ok(Duration::BusinessDays(3660)));
        assert!(d("3661 business days").is_err());
        assert!(d("87841 business hours").is_err());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(d("").is_err());
        assert!(d("h24").is_err());
        assert!(d("24").is_err());
        assert!(d("99999999999h").is_err());
        assert!(d("11 years").is_err());
        assert!(d("24hr").unwrap_err().contains("did you mean `h`"));
    }

    #[test]
    fn chinese_minutes_and_a_measure_word_inside_read_as_written() {
        assert_eq!(d("2小时30分"), Ok(Duration::Clock(2 * 3600 + 1800)));
        assert_eq!(d("1天2个小时"), Ok(Duration::Clock(86_400 + 7200)));
    }

    #[test]
    fn what_people_write_instead_gets_the_form_to_type() {
        let instead = |s: &str| duration_instead(s);
        assert_eq!(instead("2hrs").as_deref(), Some("2h"));
        assert_eq!(instead("45 mins").as_deref(), Some("45m"));
        assert_eq!(instead("两小时").as_deref(), Some("2小时"));
        assert_eq!(instead("十五分钟").as_deref(), Some("15分钟"));
        assert_eq!(instead("二十四小时").as_deref(), Some("24小时"));
        assert_eq!(instead("三个工作日").as_deref(), Some("3个工作日"));
        assert_eq!(instead("半天").as_deref(), Some("12h"));
        assert_eq!(instead("半个工作日").as_deref(), Some("4 business hours"));
        assert_eq!(instead("2 work hours").as_deref(), Some("2 business hours"));
        assert_eq!(instead("3 work days").as_deref(), Some("3 business days"));
        assert_eq!(instead("24h"), None, "already right");
        assert_eq!(instead("soon"), None, "no guess");
    }

    #[test]
    fn cron_takes_five_fields_only() {
        assert!(parse_cron("0 9 * * 1-5").is_ok());
        assert!(parse_cron("0 0 9 * * 1-5").is_err());
        assert!(parse_cron("61 9 * * *").is_err());
        assert!(parse_cron("0 9 * *").is_err());
    }

    #[test]
    fn zones_and_dates() {
        assert!(parse_time_zone("Asia/Shanghai").is_ok());
        assert!(parse_time_zone("Asia/Shanghia").is_err());
        assert!(parse_date("2026-02-29").is_err());
        assert!(parse_date("2028-02-29").is_ok());
        assert!(parse_time_of_day("25:00").is_err());
    }
}
