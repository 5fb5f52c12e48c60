//! Schedules: 5-field cron expressions and presets evaluated in an IANA time
//! zone, `@once`, manual, and dataset triggers.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

use super::ids::DatasetName;
use super::text::text_value;

/// A cron expression as weir users write it: five fields (minute hour
/// day-of-month month day-of-week, Sunday = 0 or 7) or a preset
/// (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`).
#[derive(Debug, Clone)]
pub struct CronExpr {
    text: String,
    schedule: Box<cron::Schedule>,
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl CronExpr {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first fire time strictly after `after`, evaluated in `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        // Walk the schedule in wall-clock time; map each tick to an instant.
        let mut local =
            as_naive_utc(after.with_timezone(&tz).naive_local()) - chrono::Duration::hours(3);
        for _ in 0..10_000 {
            let tick = self.schedule.after(&local).next()?;
            let at = to_instant(tick.naive_utc(), tz);
            if at > after {
                return Some(at);
            }
            local = tick;
        }
        None
    }

    /// The latest fire time at or before `at`, evaluated in `tz`.
    pub fn last_at_or_before(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let from = as_naive_utc(at.with_timezone(&tz).naive_local()) + chrono::Duration::hours(3);
        let mut ticks = self.schedule.after(&from);
        for _ in 0..10_000 {
            let tick = ticks.next_back()?;
            let instant = to_instant(tick.naive_utc(), tz);
            if instant <= at {
                return Some(instant);
            }
        }
        None
    }
}

/// A wall-clock time carried as a UTC time, to walk the schedule in local time.
fn as_naive_utc(local: chrono::NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&local)
}

/// The instant a wall-clock time in `tz` stands for. A time that occurs twice
/// (clocks going back) is its first occurrence; a time that does not occur
/// (clocks going forward) is read with the offset in force before the jump,
/// so 01:30 on a day London skips 01:00–02:00 is 02:30 summer time. Either
/// way every local tick has exactly one instant and none is lost.
fn to_instant(local: chrono::NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            let before = Utc.from_utc_datetime(&(local - chrono::Duration::hours(6)));
            let offset = chrono::Offset::fix(&tz.offset_from_utc_datetime(&before.naive_utc()));
            Utc.from_utc_datetime(
                &(local - chrono::Duration::seconds(i64::from(offset.local_minus_utc()))),
            )
        }
    }
}

/// Maps a standard day-of-week field (0-7, Sunday = 0 or 7) to the `cron`
/// crate's numbering (1-7, Sunday = 1). Names (`MON-FRI`) pass unchanged.
fn translate_day_of_week(field: &str) -> Result<String, String> {
    let shift = |n: &str| -> Result<String, String> {
        match n.parse::<u8>() {
            Ok(d @ 0..=6) => Ok((d + 1).to_string()),
            Ok(7) => Ok("1".to_owned()),
            Ok(d) => Err(format!("day of week {d} is out of range 0-7")),
            Err(_) => Ok(n.to_owned()),
        }
    };
    let mut items = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let step = step.map(|s| format!("/{s}")).unwrap_or_default();
        match range.split_once('-') {
            // `x-7` ends on Sunday, which is 1 in the crate's numbering.
            Some((a, "7")) if a.parse::<u8>().is_ok() => {
                items.push(format!("{}-7{step}", shift(a)?));
                items.push("1".to_owned());
            }
            Some((a, b)) => items.push(format!("{}-{}{step}", shift(a)?, shift(b)?)),
            None => items.push(format!("{}{step}", shift(range)?)),
        }
    }
    Ok(items.join(","))
}

impl FromStr for CronExpr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let expr = if text.starts_with('@') {
            let preset = match text {
                "@annually" => "@yearly",
                p => p,
            };
            if !["@hourly", "@daily", "@weekly", "@monthly", "@yearly"].contains(&preset) {
                return Err(format!(
                    "unknown schedule preset `{text}`; expected @once, @hourly, @daily, @weekly, @monthly or @yearly"
                ));
            }
            preset.to_owned()
        } else {
            let fields: Vec<&str> = text.split_whitespace().collect();
            if fields.len() != 5 {
                return Err(format!(
                    "cron expression `{text}` has {} fields; expected 5 (minute hour day-of-month month day-of-week)",
                    fields.len()
                ));
            }
            let dow = translate_day_of_week(fields[4])
                .map_err(|e| format!("cron expression `{text}`: {e}"))?;
            format!(
                "0 {} {} {} {} {dow}",
                fields[0], fields[1], fields[2], fields[3]
            )
        };
        let schedule = cron::Schedule::from_str(&expr).map_err(|e| {
            // The crate's message quotes its own 6-field form; keep its last line.
            let detail = e.to_string();
            let reason = detail.lines().last().unwrap_or_default().trim().to_owned();
            format!("invalid cron expression `{text}`: {reason}")
        })?;
        Ok(CronExpr {
            text: text.to_owned(),
            schedule: Box::new(schedule),
        })
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// When a DAG gets runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Only when triggered by hand or through the API.
    Manual,
    /// Once, for the interval starting at `start_date`.
    Once,
    /// At every cron tick; the run for `[tick, next tick)` is created when the
    /// next tick passes.
    Cron(CronExpr),
    /// When every listed dataset has a new version.
    Datasets(Vec<DatasetName>),
}

impl Schedule {
    /// A short human form: `0 2 * * *`, `@once`, `manual`, `datasets: a, b`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Manual => "manual".to_owned(),
            Schedule::Once => "@once".to_owned(),
            Schedule::Cron(c) => c.to_string(),
            Schedule::Datasets(ds) => format!(
                "datasets: {}",
                ds.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// An IANA time zone name such as `Europe/London`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub Tz);

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone(Tz::UTC)
    }
}

impl FromStr for TimeZone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<Tz>().map(TimeZone).map_err(|_| {
            format!("unknown time zone `{s}`; expected an IANA name such as UTC or Europe/London")
        })
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

text_value!(
    TimeZone,
    "an IANA time zone name such as UTC or Europe/London"
);

/// A date (`2026-01-01`, midnight in the DAG's time zone) or an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateSpec {
    /// A calendar date; midnight in the DAG's time zone.
    Date(chrono::NaiveDate),
    /// An exact instant.
    Instant(DateTime<chrono::FixedOffset>),
}

impl DateSpec {
    /// The instant this date stands for in `tz`.
    pub fn resolve(&self, tz: Tz) -> DateTime<Utc> {
        match self {
            DateSpec::Instant(t) => t.with_timezone(&Utc),
            DateSpec::Date(d) => {
                let midnight = d.and_time(chrono::NaiveTime::MIN);
                tz.from_local_datetime(&midnight)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
                    // No midnight that day (a DST gap at 00:00): fall back to UTC midnight.
                    .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
            }
        }
    }
}

impl FromStr for DateSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(DateSpec::Date(d));
        }
        DateTime::parse_from_rfc3339(s)
            .map(DateSpec::Instant)
            .map_err(|_| format!("invalid date `{s}`; expected YYYY-MM-DD or an RFC 3339 time like 2026-01-01T02:00:00Z"))
    }
}

impl fmt::Display for DateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateSpec::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            DateSpec::Instant(t) => f.write_str(&t.to_rfc3339()),
        }
    }
}

text_value!(DateSpec, "a date YYYY-MM-DD or an RFC 3339 time");

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc)
    }

    #[test]
    fn five_field_cron_with_sunday_zero() {
        let c: CronExpr = "0 2 * * 0".parse().unwrap_or_else(|e| panic!("{e}"));
        // 2026-01-01 is a Thursday; the next Sunday is 2026-01-04.
        let next = c.next_after(utc("2026-01-01T00:00:00Z"), Tz::UTC);
        assert_eq!(next, Some(utc("2026-01-04T02:00:00Z")));
        let weekdays: CronExpr = "30 9 * * 1-5".parse().unwrap_or_else(|e| panic!("{e}"));
        let next = weekdays.next_after(utc("2026-01-02T10:00:00Z"), Tz::UTC);
        assert_eq!(
            next,
            Some(utc("2026-01-05T09:30:00Z")),
            "Friday 10:00 -> Monday 09:30"
        );
    }

    #[test]
    fn presets_and_errors() {
        assert!("@daily".parse::<CronExpr>().is_ok());
        let e = "@fortnightly".parse::<CronExpr>().unwrap_err();
        assert!(e.contains("unknown schedule preset"), "{e}");
        let e = "0 2 * *".parse::<CronExpr>().unwrap_err();
        assert!(e.contains("has 4 fields"), "{e}");
        let e = "61 2 * * *".parse::<CronExpr>().unwrap_err();
        assert!(e.contains("invalid cron expression"), "{e}");
    }

    fn ticks(expr: &str, from: &str, n: usize, tz: Tz) -> Vec<DateTime<Utc>> {
        let c: CronExpr = expr.parse().unwrap_or_else(|e| panic!("{e}"));
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                t = c
                    .next_after(t, tz)
                    .unwrap_or_else(|| panic!("no tick after {t}"));
                t
            })
            .collect()
    }

    fn london() -> Tz {
        "Europe/London".parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn spring_forward_neither_skips_nor_duplicates() {
        // 2026-03-29: London clocks jump from 01:00 GMT to 02:00 BST.
        let daily_0130 = ticks("30 1 * * *", "2026-03-28T00:00:00Z", 3, london());
        assert_eq!(
            daily_0130,
            vec![
                utc("2026-03-28T01:30:00Z"),
                utc("2026-03-29T01:30:00Z"),
                utc("2026-03-30T00:30:00Z")
            ],
            "01:30 does not exist on the 29th: it runs at 02:30 BST (01:30Z), once"
        );
        let daily_0230 = ticks("30 2 * * *", "2026-03-28T12:00:00Z", 2, london());
        assert_eq!(
            daily_0230,
            vec![utc("2026-03-29T01:30:00Z"), utc("2026-03-30T01:30:00Z")]
        );
        let hourly = ticks("0 * * * *", "2026-03-28T23:30:00Z", 4, london());
        assert_eq!(
            hourly,
            vec![
                utc("2026-03-29T00:00:00Z"),
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-29T02:00:00Z"),
                utc("2026-03-29T03:00:00Z")
            ],
            "local 01:00 and 02:00 are the same instant: one tick"
        );
    }

    #[test]
    fn fall_back_neither_skips_nor_duplicates() {
        // 2026-10-25: London clocks go back from 02:00 BST to 01:00 GMT; 01:30 happens twice.
        let daily = ticks("30 1 * * *", "2026-10-24T12:00:00Z", 2, london());
        assert_eq!(
            daily,
            vec![utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")],
            "the first 01:30 only"
        );
        // Looking back agrees with looking forward (the same interval boundaries).
        let c: CronExpr = "30 1 * * *".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.last_at_or_before(utc("2026-10-25T03:00:00Z"), london()),
            Some(utc("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            c.last_at_or_before(utc("2026-10-25T00:30:00Z"), london()),
            Some(utc("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            c.last_at_or_before(utc("2026-10-25T00:29:59Z"), london()),
            Some(utc("2026-10-24T00:30:00Z"))
        );
        let hourly = ticks("0 * * * *", "2026-10-24T23:30:00Z", 3, london());
        assert_eq!(
            hourly,
            vec![
                utc("2026-10-25T00:00:00Z"),
                utc("2026-10-25T02:00:00Z"),
                utc("2026-10-25T03:00:00Z")
            ]
        );
    }

    #[test]
    fn evaluated_in_the_time_zone() {
        let c: CronExpr = "0 2 * * *".parse().unwrap_or_else(|e| panic!("{e}"));
        let tz: Tz = "Europe/London".parse().unwrap_or_else(|e| panic!("{e}"));
        // Summer time: 02:00 in London is 01:00 UTC.
        let next = c.next_after(utc("2026-07-01T00:00:00Z"), tz);
        assert_eq!(next, Some(utc("2026-07-01T01:00:00Z")));
    }
}
