//! Working calendars and moments relative to a date: what `after 24h from created_at`,
//! `3 business days after delivered_at` and `0 8 * * 1` mean on the app's calendar.
//!
//! Pure arithmetic: nothing here reads the clock or the store, so callers pass `now` in. Every
//! walk over the calendar is bounded, so a calendar with no working days answers `None` rather
//! than hanging the scheduler.

use std::collections::BTreeSet;

use croner::Cron;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use crate::model::{AppDef, Weekday};
use crate::timespec::{self, Duration};

/// How far a walk over the calendar goes before giving up: about twenty years of days.
const MAX_WALK_DAYS: i64 = 20 * 366;

const MONDAY_TO_FRIDAY: [bool; 7] = [true, true, true, true, true, false, false];
const DEFAULT_START: Time = jiff::civil::time(9, 0, 0, 0);
const DEFAULT_END: Time = jiff::civil::time(18, 0, 0, 0);

/// When people work: the worked weekdays and hours in one time zone, less holidays, plus extra
/// working days (a weekend date worked to make up for a holiday).
#[derive(Debug, Clone)]
pub struct WorkCalendar {
    tz: TimeZone,
    /// Monday first.
    working_days: [bool; 7],
    /// The working spans of a day, in order, each starting before it ends.
    spans: Vec<(Time, Time)>,
    holidays: BTreeSet<Date>,
    extra_working_days: BTreeSet<Date>,
}

impl WorkCalendar {
    /// The app's calendar: the one `app.calendar` names, else the first in `calendars`, else
    /// Monday to Friday, 09:00-18:00, with no holidays. Its time zone is the calendar's, else the
    /// app's, else UTC. A value that does not parse falls back to its default (the loader has
    /// already refused such apps).
    pub fn of_app(def: &AppDef) -> WorkCalendar {
        let app_tz = || timespec::parse_time_zone(def.app.time_zone()).unwrap_or(TimeZone::UTC);
        let named = def.app.calendar.as_deref().and_then(|id| def.calendars.iter().find(|c| c.id == id));
        let Some(cal) = named.or(def.calendars.first()) else {
            return WorkCalendar::new(app_tz(), MONDAY_TO_FRIDAY, DEFAULT_START, DEFAULT_END, [], []);
        };
        let spans = cal.working_hours.as_ref().map(|h| {
            h.spans()
                .iter()
                .filter_map(|s| {
                    Some((timespec::parse_time_of_day(&s.start).ok()?, timespec::parse_time_of_day(&s.end).ok()?))
                })
                .collect::<Vec<_>>()
        });
        let tz = cal.time_zone.as_deref().and_then(|name| timespec::parse_time_zone(name).ok()).unwrap_or_else(app_tz);
        let working_days = match &cal.working_days {
            Some(days) => {
                let mut worked = [false; 7];
                for day in days {
                    worked[weekday_index(*day)] = true;
                }
                worked
            }
            None => MONDAY_TO_FRIDAY,
        };
        let dates = |list: &[String]| list.iter().filter_map(|s| timespec::parse_date(s).ok()).collect::<Vec<_>>();
        let mut calendar = WorkCalendar::new(
            tz,
            working_days,
            DEFAULT_START,
            DEFAULT_END,
            dates(&cal.holidays),
            dates(&cal.extra_working_days),
        );
        if let Some(spans) = spans.filter(|s| !s.is_empty()) {
            calendar = calendar.with_spans(spans);
        }
        calendar
    }

    /// The same calendar with these working spans a day (a lunch break between two). Spans that
    /// end before they start, or start before the one before ends, are left out.
    pub fn with_spans(mut self, spans: impl IntoIterator<Item = (Time, Time)>) -> WorkCalendar {
        let mut kept: Vec<(Time, Time)> = Vec::new();
        for (start, end) in spans {
            if start < end && kept.last().is_none_or(|(_, last)| *last <= start) {
                kept.push((start, end));
            }
        }
        self.spans = kept;
        self
    }

    /// A calendar from its parts. `working_days` runs Monday to Sunday. Working hours run from
    /// `start` to `end` on each working day; when `end` is not after `start` there are none, and
    /// business hours cannot be counted on it.
    pub fn new(
        tz: TimeZone,
        working_days: [bool; 7],
        start: Time,
        end: Time,
        holidays: impl IntoIterator<Item = Date>,
        extra_working_days: impl IntoIterator<Item = Date>,
    ) -> WorkCalendar {
        WorkCalendar {
            tz,
            working_days,
            spans: if start < end { vec![(start, end)] } else { Vec::new() },
            holidays: holidays.into_iter().collect(),
            extra_working_days: extra_working_days.into_iter().collect(),
        }
    }

    /// The time zone the calendar's days and hours are in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Whether people work on `d`. An extra working day is worked even on a weekend or a
    /// holiday; otherwise a holiday is not worked, and other days follow the worked weekdays.
    pub fn is_working_day(&self, d: Date) -> bool {
        if self.extra_working_days.contains(&d) {
            return true;
        }
        !self.holidays.contains(&d)
            && self.working_days[usize::from(d.weekday().to_monday_zero_offset().unsigned_abs())]
    }

    /// The working day `n` working days after `d` (before it when `n` is negative): each step
    /// moves to the next (or previous) working day, so 1 business day after a Friday is the
    /// Monday, and after a Saturday also the Monday. `n = 0` is `d` itself, worked or not.
    /// `None` when the walk would pass twenty years (a calendar with no working days).
    pub fn add_business_days(&self, d: Date, n: i64) -> Option<Date> {
        let forward = n > 0;
        let mut left = n.unsigned_abs();
        let mut date = d;
        let mut walked = 0;
        while left > 0 {
            walked += 1;
            if walked > MAX_WALK_DAYS {
                return None;
            }
            date = step(date, forward)?;
            if self.is_working_day(date) {
                left -= 1;
            }
        }
        Some(date)
    }

    /// The instant `n` working hours after `at` (before it when `n` is negative), counting only
    /// the working hours of working days. From outside working hours the count starts at the next
    /// opening (going backwards, at the last closing). A count that uses up a day exactly ends at
    /// its closing time (backwards, at its opening), not at the next day's opening. `n = 0` is
    /// `at` itself. `None` when the calendar has no working hours or the walk would pass twenty
    /// years.
    pub fn add_business_hours(&self, at: Timestamp, n: i64) -> Option<Timestamp> {
        if n == 0 {
            return Some(at);
        }
        if self.spans.is_empty() {
            return None;
        }
        let forward = n > 0;
        let mut left = SignedDuration::from_secs(n.checked_mul(3600)?.checked_abs()?);
        let mut date = self.today(at);
        for _ in 0..MAX_WALK_DAYS {
            if self.is_working_day(date) {
                let spans: Box<dyn Iterator<Item = &(Time, Time)>> =
                    if forward { Box::new(self.spans.iter()) } else { Box::new(self.spans.iter().rev()) };
                for (start, end) in spans {
                    let (open, close) = (self.local(date, *start)?, self.local(date, *end)?);
                    // The part of this span on the far side of `at`.
                    let (from, to) = if forward { (at.max(open), close) } else { (open, at.min(close)) };
                    if from < to {
                        let room = to.duration_since(from);
                        if left <= room {
                            return if forward { from.checked_add(left) } else { to.checked_sub(left) }.ok();
                        }
                        left = left.checked_sub(room)?;
                    }
                }
            }
            date = step(date, forward)?;
        }
        None
    }

    /// When work starts on `d`, as an instant. When that wall-clock time is skipped or repeated
    /// by a daylight saving change, the time after the skip, or the first of the two.
    pub fn day_start(&self, d: Date) -> Option<Timestamp> {
        self.local(d, self.spans.first().map_or(DEFAULT_START, |(start, _)| *start))
    }

    /// The calendar's date at instant `now`.
    pub fn today(&self, now: Timestamp) -> Date {
        now.to_zoned(self.tz.clone()).date()
    }

    /// The instant of wall-clock time `t` on `d` in the calendar's zone, with jiff's compatible
    /// rule for times that a daylight saving change skips or repeats.
    fn local(&self, d: Date, t: Time) -> Option<Timestamp> {
        self.tz.to_ambiguous_timestamp(d.to_datetime(t)).compatible().ok()
    }
}

fn weekday_index(day: Weekday) -> usize {
    match day {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

/// The next day, or the previous one.
fn step(d: Date, forward: bool) -> Option<Date> {
    if forward { d.tomorrow() } else { d.yesterday() }.ok()
}

/// A point to count from: a datetime field (an instant) or a date field (a calendar day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// A moment, from a datetime field.
    Instant(Timestamp),
    /// A whole day, from a date field.
    Date(Date),
}

impl Anchor {
    /// Reads a stored field value: an RFC 3339 instant (`2026-11-26T01:00:00.000000Z`, or with an
    /// offset such as `+08:00`) or a date `YYYY-MM-DD`. A date and time without an offset is
    /// neither, since it does not say which moment it means.
    pub fn parse(text: &str) -> Option<Anchor> {
        let text = text.trim();
        if let Ok(ts) = text.parse::<Timestamp>() {
            return Some(Anchor::Instant(ts));
        }
        if text.len() != "YYYY-MM-DD".len() {
            return None;
        }
        text.parse::<Date>().ok().map(Anchor::Date)
    }
}

/// The point `duration` after `anchor` (before it, with `before`) on the calendar:
/// - clock time (`24h`, `1d12h`) is exact elapsed time; from a date it counts from the day's
///   start of work;
/// - calendar days (`7d`, `2w`) keep the wall-clock time (09:00 stays 09:00 across a daylight
///   saving change); from a date they give a date;
/// - business days move over working days only, keeping the time of day of an instant; from a
///   date they give a date;
/// - business hours count working hours only; from a date they count from the day's start of
///   work.
///
/// `None` when the result is out of range or the calendar cannot reach it.
pub fn shift(cal: &WorkCalendar, anchor: &Anchor, duration: Duration, before: bool) -> Option<Anchor> {
    let signed = |n: i64| if before { n.checked_neg() } else { Some(n) };
    match (duration, *anchor) {
        (Duration::Clock(seconds), _) => {
            let from = fire_at(cal, anchor)?;
            from.checked_add(SignedDuration::from_secs(signed(seconds)?)).ok().map(Anchor::Instant)
        }
        (Duration::Days(n), Anchor::Instant(ts)) => {
            let days = Span::new().try_days(signed(n)?).ok()?;
            ts.to_zoned(cal.tz.clone()).checked_add(days).ok().map(|z| Anchor::Instant(z.timestamp()))
        }
        (Duration::Days(n), Anchor::Date(d)) => {
            let days = Span::new().try_days(signed(n)?).ok()?;
            d.checked_add(days).ok().map(Anchor::Date)
        }
        (Duration::BusinessDays(n), Anchor::Instant(ts)) => {
            let local = ts.to_zoned(cal.tz.clone());
            let date = cal.add_business_days(local.date(), signed(n)?)?;
            cal.local(date, local.time()).map(Anchor::Instant)
        }
        (Duration::BusinessDays(n), Anchor::Date(d)) => cal.add_business_days(d, signed(n)?).map(Anchor::Date),
        (Duration::BusinessHours(n), _) => {
            cal.add_business_hours(fire_at(cal, anchor)?, signed(n)?).map(Anchor::Instant)
        }
    }
}

/// The instant a point fires at: an instant as it is, a date at that day's start of work.
pub fn fire_at(cal: &WorkCalendar, point: &Anchor) -> Option<Timestamp> {
    match point {
        Anchor::Instant(ts) => Some(*ts),
        Anchor::Date(d) => cal.day_start(*d),
    }
}

/// The next time a 5-field cron schedule fires strictly after `after`, read on the wall clock of
/// `tz`. Across daylight saving changes it follows croner: a time the clocks skip fires at the
/// first moment after the skip, and a time the clocks repeat fires once, the first time round.
/// `None` when the schedule never fires again (such as `0 0 30 2 *`).
pub fn next_cron(cron: &Cron, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    let next = cron.find_next_occurrence(&after.to_zoned(tz.clone()), false).ok()?.timestamp();
    // Callers loop on this; "strictly later" is what keeps such loops finite.
    (next > after).then_some(next)
}

/// How many times the schedule fires in `(from, to]`, counting no further than `cap`: for
/// reporting the runs missed while the scheduler was down, which are then run once.
pub fn count_cron(cron: &Cron, tz: &TimeZone, from: Timestamp, to: Timestamp, cap: usize) -> usize {
    let mut count = 0;
    let mut at = from;
    while count < cap {
        match next_cron(cron, tz, at) {
            Some(next) if next <= to => {
                count += 1;
                at = next;
            }
            _ => break,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;
    use jiff::tz::AmbiguousOffset;
    use proptest::prelude::*;

    use super::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    /// Asia/Shanghai, Monday to Friday 09:00-18:00, with the 2026 National Day holidays.
    fn shanghai() -> WorkCalendar {
        let holidays = [1, 2, 5, 6, 7].map(|day| date(2026, 10, day));
        WorkCalendar::new(tz("Asia/Shanghai"), MONDAY_TO_FRIDAY, DEFAULT_START, DEFAULT_END, holidays, [])
    }

    fn new_york() -> WorkCalendar {
        WorkCalendar::new(tz("America/New_York"), MONDAY_TO_FRIDAY, DEFAULT_START, DEFAULT_END, [], [])
    }

    /// The instant of a wall-clock time in the calendar's zone.
    fn at(cal: &WorkCalendar, text: &str) -> Timestamp {
        cal.time_zone().to_ambiguous_timestamp(text.parse().unwrap()).compatible().unwrap()
    }

    /// The wall-clock time of an instant in the calendar's zone.
    fn wall(cal: &WorkCalendar, ts: Timestamp) -> String {
        ts.to_zoned(cal.time_zone().clone()).datetime().to_string()
    }

    fn instant(a: Option<Anchor>) -> Timestamp {
        match a {
            Some(Anchor::Instant(ts)) => ts,
            other => panic!("expected an instant, got {other:?}"),
        }
    }

    fn cron(expr: &str) -> Cron {
        timespec::parse_cron(expr).unwrap()
    }

    #[test]
    fn business_days_skip_weekends_and_national_day() {
        let cal = shanghai();
        // Oct 1-2 and 5-7 are holidays, Oct 3-4 a weekend: Oct 8 and 9 count, then Oct 12.
        assert_eq!(cal.add_business_days(date(2026, 9, 30), 1), Some(date(2026, 10, 8)));
        assert_eq!(cal.add_business_days(date(2026, 9, 30), 3), Some(date(2026, 10, 12)));
        assert_eq!(cal.add_business_days(date(2026, 10, 12), -3), Some(date(2026, 9, 30)));
        assert_eq!(cal.add_business_days(date(2026, 10, 8), -1), Some(date(2026, 9, 30)));
        // From a day off, one step lands on the next working day.
        assert_eq!(cal.add_business_days(date(2026, 10, 3), 1), Some(date(2026, 10, 8)));
        assert_eq!(cal.add_business_days(date(2026, 10, 3), 0), Some(date(2026, 10, 3)));
        assert!(!cal.is_working_day(date(2026, 10, 1)));
        assert!(cal.is_working_day(date(2026, 9, 30)));
    }

    #[test]
    fn an_extra_working_day_counts_even_on_a_saturday() {
        // Saturday Oct 10, 2026 is worked to make up for National Day.
        let holidays = [1, 2, 5, 6, 7].map(|day| date(2026, 10, day));
        let cal = WorkCalendar::new(
            tz("Asia/Shanghai"),
            MONDAY_TO_FRIDAY,
            DEFAULT_START,
            DEFAULT_END,
            holidays,
            [date(2026, 10, 10), date(2026, 10, 1)],
        );
        assert!(cal.is_working_day(date(2026, 10, 10)));
        // An extra working day wins over a holiday on the same date.
        assert!(cal.is_working_day(date(2026, 10, 1)));
        assert_eq!(cal.add_business_days(date(2026, 10, 8), 2), Some(date(2026, 10, 10)));
        assert_eq!(cal.add_business_days(date(2026, 10, 12), -1), Some(date(2026, 10, 10)));
    }

    #[test]
    fn business_days_from_an_instant_keep_the_time_of_day() {
        let cal = shanghai();
        let delivered = Anchor::parse("2026-09-30T06:30:00.000000Z").unwrap(); // 14:30 in Shanghai
        let due = instant(shift(&cal, &delivered, Duration::BusinessDays(3), false));
        assert_eq!(wall(&cal, due), "2026-10-12T14:30:00");
        let date_anchor = Anchor::parse("2026-09-30").unwrap();
        assert_eq!(shift(&cal, &date_anchor, Duration::BusinessDays(3), false), Some(Anchor::Date(date(2026, 10, 12))));
    }

    #[test]
    fn a_calendar_without_working_days_gives_up() {
        let cal = WorkCalendar::new(TimeZone::UTC, [false; 7], DEFAULT_START, DEFAULT_END, [], []);
        assert_eq!(cal.add_business_days(date(2026, 1, 1), 1), None);
        assert_eq!(cal.add_business_days(date(2026, 1, 1), -1), None);
        assert_eq!(cal.add_business_hours(at(&cal, "2026-01-01T10:00"), 1), None);
        let no_hours = WorkCalendar::new(TimeZone::UTC, MONDAY_TO_FRIDAY, DEFAULT_END, DEFAULT_START, [], []);
        assert_eq!(no_hours.add_business_hours(at(&cal, "2026-01-01T10:00"), 1), None);
        // Out of jiff's range is None, not a panic.
        assert_eq!(shanghai().add_business_days(date(9999, 12, 31), 1), None);
        assert_eq!(shift(&cal, &Anchor::Date(date(9999, 12, 31)), Duration::Days(1), false), None);
        assert_eq!(shift(&cal, &Anchor::Date(date(2026, 1, 1)), Duration::Days(i64::MIN), true), None);
    }

    #[test]
    fn business_hours_skip_the_lunch_break_and_a_holiday() {
        let t = |h, m| jiff::civil::time(h, m, 0, 0);
        let holiday = jiff::civil::date(2026, 12, 1);
        let cal = WorkCalendar::new(
            TimeZone::get("Asia/Shanghai").unwrap(),
            MONDAY_TO_FRIDAY,
            t(9, 0),
            t(18, 0),
            [holiday],
            [],
        )
        .with_spans([(t(8, 30), t(12, 0)), (t(13, 30), t(18, 0))]);
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        // Monday 11:30: half an hour before lunch, then an hour and a half after it.
        assert_eq!(cal.add_business_hours(at("2026-11-30T11:30:00+08:00"), 2), Some(at("2026-11-30T15:00:00+08:00")));
        // Monday 17:00: an hour to close, Tuesday is a holiday, Wednesday from 08:30.
        assert_eq!(cal.add_business_hours(at("2026-11-30T17:00:00+08:00"), 2), Some(at("2026-12-02T09:30:00+08:00")));
        // Backwards over the break too.
        assert_eq!(cal.add_business_hours(at("2026-11-30T15:00:00+08:00"), -2), Some(at("2026-11-30T11:30:00+08:00")));
        assert_eq!(cal.day_start(jiff::civil::date(2026, 12, 2)), Some(at("2026-12-02T08:30:00+08:00")));
    }

    #[test]
    fn business_hours_walk_working_hours_only() {
        let cal = shanghai();
        // Friday 16:00: 2 hours on Friday, 6 on Monday.
        let friday = at(&cal, "2026-09-25T16:00");
        assert_eq!(wall(&cal, cal.add_business_hours(friday, 8).unwrap()), "2026-09-28T15:00:00");
        assert_eq!(wall(&cal, cal.add_business_hours(friday, 2).unwrap()), "2026-09-25T18:00:00");
        assert_eq!(wall(&cal, cal.add_business_hours(friday, -7).unwrap()), "2026-09-25T09:00:00");
        assert_eq!(wall(&cal, cal.add_business_hours(friday, -8).unwrap()), "2026-09-24T17:00:00");
        // Across National Day: Wednesday 17:00 plus 2 hours is Thursday Oct 8, 10:00.
        let before_holiday = at(&cal, "2026-09-30T17:00");
        assert_eq!(wall(&cal, cal.add_business_hours(before_holiday, 2).unwrap()), "2026-10-08T10:00:00");
        // Outside working hours the count starts at the next opening, or backwards the last closing.
        let saturday = at(&cal, "2026-09-26T11:00");
        assert_eq!(wall(&cal, cal.add_business_hours(saturday, 1).unwrap()), "2026-09-28T10:00:00");
        assert_eq!(wall(&cal, cal.add_business_hours(saturday, -1).unwrap()), "2026-09-25T17:00:00");
        let night = at(&cal, "2026-09-28T22:00");
        assert_eq!(wall(&cal, cal.add_business_hours(night, 1).unwrap()), "2026-09-29T10:00:00");
        assert_eq!(cal.add_business_hours(night, 0), Some(night));
        // From a date: from that day's start of work.
        let due = shift(&cal, &Anchor::Date(date(2026, 9, 28)), Duration::BusinessHours(10), false);
        assert_eq!(wall(&cal, instant(due)), "2026-09-29T10:00:00");
    }

    #[test]
    fn calendar_days_keep_the_wall_clock_across_daylight_saving() {
        let cal = new_york();
        // Spring forward on 2026-03-08: three days before Tuesday 09:00 is Saturday 09:00.
        let tuesday = Anchor::Instant(at(&cal, "2026-03-10T09:00"));
        assert_eq!(wall(&cal, instant(shift(&cal, &tuesday, Duration::Days(3), true))), "2026-03-07T09:00:00");
        assert_eq!(wall(&cal, instant(shift(&cal, &tuesday, Duration::Clock(72 * 3600), true))), "2026-03-07T08:00:00");
        // Fall back on 2026-11-01.
        let monday = Anchor::Instant(at(&cal, "2026-11-02T09:00"));
        assert_eq!(wall(&cal, instant(shift(&cal, &monday, Duration::Days(3), true))), "2026-10-30T09:00:00");
        assert_eq!(wall(&cal, instant(shift(&cal, &monday, Duration::Clock(72 * 3600), true))), "2026-10-30T10:00:00");
        let saturday = Anchor::Instant(at(&cal, "2026-10-31T09:00"));
        assert_eq!(wall(&cal, instant(shift(&cal, &saturday, Duration::Days(2), false))), "2026-11-02T09:00:00");
        // A date anchor gives a date, which fires at the start of work.
        let due = shift(&cal, &Anchor::Date(date(2026, 3, 6)), Duration::Days(3), false).unwrap();
        assert_eq!(due, Anchor::Date(date(2026, 3, 9)));
        assert_eq!(wall(&cal, fire_at(&cal, &due).unwrap()), "2026-03-09T09:00:00");
    }

    #[test]
    fn clock_time_from_a_date_counts_from_the_start_of_work() {
        let cal = shanghai();
        let due = shift(&cal, &Anchor::Date(date(2026, 9, 30)), Duration::Clock(24 * 3600), false);
        assert_eq!(wall(&cal, instant(due)), "2026-10-01T09:00:00");
    }

    #[test]
    fn anchors_read_stored_values() {
        let utc = Anchor::parse("2026-11-26T01:00:00.000000Z");
        assert_eq!(utc, Some(Anchor::Instant("2026-11-26T01:00:00Z".parse().unwrap())));
        assert_eq!(Anchor::parse("2026-11-26T09:00:00+08:00"), utc);
        assert_eq!(Anchor::parse("2026-11-26"), Some(Anchor::Date(date(2026, 11, 26))));
        assert_eq!(Anchor::parse("2026-11-26T09:00:00"), None);
        assert_eq!(Anchor::parse("2026-02-30"), None);
        assert_eq!(Anchor::parse("soon"), None);
    }

    #[test]
    fn monday_eight_oclock_in_shanghai() {
        let shanghai = tz("Asia/Shanghai");
        let schedule = cron("0 8 * * 1");
        let wednesday = "2026-11-25T12:00:00+08:00".parse().unwrap();
        let next = next_cron(&schedule, &shanghai, wednesday).unwrap();
        assert_eq!(next, "2026-11-30T08:00:00+08:00".parse().unwrap());
        // Strictly after: from the firing instant itself, the week after.
        assert_eq!(next_cron(&schedule, &shanghai, next), Some("2026-12-07T08:00:00+08:00".parse().unwrap()));
    }

    #[test]
    fn a_skipped_half_past_two_fires_once_after_the_skip() {
        let cal = new_york();
        let schedule = cron("30 2 * * *");
        let first = next_cron(&schedule, cal.time_zone(), at(&cal, "2026-03-07T12:00")).unwrap();
        assert_eq!(wall(&cal, first), "2026-03-08T03:00:00");
        let second = next_cron(&schedule, cal.time_zone(), first).unwrap();
        assert_eq!(wall(&cal, second), "2026-03-09T02:30:00");
    }

    #[test]
    fn a_repeated_hour_fires_once() {
        let cal = new_york();
        let schedule = cron("30 1 * * *");
        let first = next_cron(&schedule, cal.time_zone(), at(&cal, "2026-10-31T12:00")).unwrap();
        assert_eq!(first, "2026-11-01T01:30:00-04:00".parse().unwrap());
        let second = next_cron(&schedule, cal.time_zone(), first).unwrap();
        assert_eq!(wall(&cal, second), "2026-11-02T01:30:00");
        let tz = cal.time_zone();
        let (from, to) = (at(&cal, "2026-10-31T12:00"), at(&cal, "2026-11-02T00:00"));
        assert_eq!(count_cron(&schedule, tz, from, to, 10), 1);
        // `30 2 * * *` on the fall-back day: 02:30 happens once, after the repeated hour.
        let two_thirty = next_cron(&cron("30 2 * * *"), tz, from).unwrap();
        assert_eq!(two_thirty, "2026-11-01T02:30:00-05:00".parse().unwrap());
        assert_eq!(count_cron(&cron("30 2 * * *"), tz, from, to, 10), 1);
    }

    #[test]
    fn count_cron_counts_missed_runs_up_to_the_cap() {
        let shanghai = tz("Asia/Shanghai");
        let daily = cron("0 9 * * *");
        let from = "2026-11-01T10:00:00+08:00".parse().unwrap();
        let to = "2026-11-06T10:00:00+08:00".parse().unwrap();
        assert_eq!(count_cron(&daily, &shanghai, from, to, 100), 5);
        assert_eq!(count_cron(&daily, &shanghai, from, to, 3), 3);
        assert_eq!(count_cron(&daily, &shanghai, to, from, 100), 0);
        assert_eq!(next_cron(&cron("0 0 30 2 *"), &shanghai, from), None);
    }

    const ZONES: [&str; 4] = ["Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Sydney"];
    const SCHEDULES: [&str; 6] = ["30 2 * * *", "30 1 * * *", "0 * * * *", "*/20 * * * *", "0 8 * * 1", "0 0 1 * *"];

    proptest! {
        #[test]
        fn days_there_and_back_keep_the_wall_clock(
            days_since_2020 in 0i64..(16 * 365),
            seconds_of_day in 0i64..86_400,
            zone in 0usize..ZONES.len(),
            n in 1i64..60,
        ) {
            let cal = WorkCalendar::new(tz(ZONES[zone]), MONDAY_TO_FRIDAY, DEFAULT_START, DEFAULT_END, [], []);
            let day = date(2020, 1, 1).checked_add(Span::new().days(days_since_2020)).unwrap();
            let wall_time = day.to_datetime(Time::midnight()).checked_add(Span::new().seconds(seconds_of_day)).unwrap();
            let earlier = wall_time.checked_sub(Span::new().days(n)).unwrap();
            let exists = |dt: jiff::civil::DateTime| {
                !matches!(cal.time_zone().to_ambiguous_timestamp(dt).offset(), AmbiguousOffset::Gap { .. })
            };
            prop_assume!(exists(wall_time) && exists(earlier));
            let start = Anchor::Instant(at(&cal, &wall_time.to_string()));
            let back = shift(&cal, &start, Duration::Days(n), true).unwrap();
            prop_assert_eq!(wall(&cal, fire_at(&cal, &back).unwrap()), earlier.to_string());
            let there = shift(&cal, &back, Duration::Days(n), false).unwrap();
            prop_assert_eq!(wall(&cal, fire_at(&cal, &there).unwrap()), wall_time.to_string());
        }

        #[test]
        fn cron_runs_only_move_forward(
            start_seconds in 1_577_836_800i64..2_082_758_400,
            near_change in any::<bool>(),
            offset_seconds in -10_800i64..10_800,
            zone in 0usize..ZONES.len(),
            schedule in 0usize..SCHEDULES.len(),
        ) {
            let (zone, schedule) = (tz(ZONES[zone]), cron(SCHEDULES[schedule]));
            let mut at = Timestamp::from_second(start_seconds).unwrap();
            // Half the runs start within three hours of a daylight saving change, where a repeat would hide.
            if let Some(change) = zone.following(at).next().filter(|_| near_change) {
                at = change.timestamp() + SignedDuration::from_secs(offset_seconds);
            }
            for _ in 0..30 {
                let next = next_cron(&schedule, &zone, at).unwrap();
                prop_assert!(next > at);
                at = next;
            }
        }
    }
}
