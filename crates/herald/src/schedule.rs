//! Schedules: cron expressions in an IANA time zone, with herald's rules for
//! daylight-saving changes and for slots missed while herald was not running.
//!
//! Expressions are parsed by the `cron` crate, but written the way operators know them:
//! the five-field crontab form (`minute hour day-of-month month day-of-week`, Sunday is 0
//! or 7) or the same with a leading seconds field. Like Vixie cron, when both the
//! day-of-month and the day-of-week are restricted, a day matches if either does.
//!
//! Slots are computed on the local wall clock and then placed on the time line:
//! a local time skipped by a spring-forward change runs at the first instant after the
//! gap (once, however many slots fell in the gap); a local time repeated by a fall-back
//! change runs once, at its first occurrence.

use std::collections::BTreeMap;
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use chrono::{
    DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use herald_content::{Config, Diagnostic, Diagnostics};

/// The job that sends the email digest, when configured.
pub const DIGEST: &str = "digest";

/// Keys of `[schedule]` that are settings, not jobs.
const TIME_ZONE_KEY: &str = "time_zone";
const LOCK_WAIT_KEY: &str = "lock_wait_seconds";

/// How long a second herald waits for the lock unless `[schedule] lock_wait_seconds` says otherwise.
pub const DEFAULT_LOCK_WAIT: StdDuration = StdDuration::from_secs(10);

const EXAMPLE_HINT: &str = "write five fields, minute hour day-of-month month day-of-week, \
     e.g. \"0 9 * * MON\" (09:00 every Monday) or \"30 2 * * *\" (02:30 daily); \
     a sixth field in front gives seconds; Sunday is 0 or 7";

/// A schedule expression that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "schedule {expr:?} has {found} fields; herald takes 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
    )]
    FieldCount { expr: String, found: usize },
    #[error("schedule {expr:?}: the {field} field {value:?} is not valid: {reason}")]
    Field {
        expr: String,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("schedule {expr:?}: {reason}")]
    Invalid { expr: String, reason: String },
    #[error("schedule {expr:?} never fires: no date matches it")]
    NeverFires { expr: String },
}

impl ScheduleError {
    /// What to write instead.
    pub fn hint(&self) -> String {
        match self {
            ScheduleError::Field { field, .. } => format!("{}; {EXAMPLE_HINT}", allowed(field)),
            ScheduleError::NeverFires { .. } => {
                format!(
                    "check the day-of-month and month fields (e.g. February has no 30th); {EXAMPLE_HINT}"
                )
            }
            _ => EXAMPLE_HINT.to_string(),
        }
    }
}

fn allowed(field: &str) -> &'static str {
    match field {
        "second" | "minute" => "use 0-59, a list (0,30), a range (0-29) or a step (*/15)",
        "hour" => "use 0-23, a list, a range or a step",
        "day-of-month" => "use 1-31, a list, a range, a step or *",
        "month" => "use 1-12 or JAN-DEC, a list, a range or *",
        _ => "use 0-7 (0 and 7 are Sunday) or SUN-SAT, a list (MON,WED), a range (MON-FRI) or *",
    }
}

const FIELD_NAMES: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day-of-month",
    "month",
    "day-of-week",
];
const UNITS: [&str; 6] = [
    "seconds",
    "minutes",
    "hours",
    "days of the month",
    "months",
    "days of the week",
];
const RANGES: [&str; 6] = [
    "0 to 59",
    "0 to 59",
    "0 to 23",
    "1 to 31",
    "1 to 12 (or JAN to DEC)",
    "0 to 7",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    tz: Tz,
    /// One schedule, or two when day-of-month and day-of-week are both restricted
    /// (`cron` ANDs them; crontab ORs them).
    crons: Vec<cron::Schedule>,
}

/// Slots missed since the last run, collapsed into one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The earliest slot after the last run.
    pub first: DateTime<Utc>,
    /// The latest slot at or before now: run once for it, and record it as the last run.
    pub last: DateTime<Utc>,
}

impl Due {
    /// More than one slot passed (herald was down or busy); they run as one.
    pub fn is_catch_up(&self) -> bool {
        self.first != self.last
    }
}

impl Schedule {
    /// Parse a five-field crontab expression, a six-field one with seconds, or one of
    /// `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
    pub fn parse(expr: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        let crons = translate(expr)?
            .iter()
            .map(|e| {
                cron::Schedule::from_str(e).map_err(|err| ScheduleError::Invalid {
                    expr: expr.to_string(),
                    reason: err.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let schedule = Schedule {
            expr: expr.trim().to_string(),
            tz,
            crons,
        };
        let epoch = NaiveDateTime::default();
        if schedule.naive_after(epoch).next().is_none() {
            return Err(ScheduleError::NeverFires {
                expr: expr.to_string(),
            });
        }
        Ok(schedule)
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expr
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The first slot strictly after `instant`, or `None` if the schedule has ended
    /// (the `cron` crate stops at the year 2100).
    pub fn next_after(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = self.wall_clock(instant);
        // Placing slots on the time line keeps their order, so the first one after
        // `instant` is the first found. No slot before `local` on the wall clock can
        // be after `instant`.
        let start = local
            .checked_sub_signed(Duration::seconds(1))
            .unwrap_or(local);
        self.naive_after(start)
            .filter_map(|n| self.place(n))
            .find(|&t| t > instant)
    }

    /// The last slot at or before `instant`.
    pub fn last_at_or_before(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = self.wall_clock(instant);
        // In the second pass of a repeated hour, wall-clock times up to the length of the
        // repetition ahead were placed in the first pass, before `instant`.
        let ahead = match self.tz.from_local_datetime(&local) {
            LocalResult::Ambiguous(earlier, later) if later.with_timezone(&Utc) <= instant => {
                Duration::seconds(i64::from(
                    earlier.offset().fix().local_minus_utc()
                        - later.offset().fix().local_minus_utc(),
                ))
                .max(Duration::zero())
            }
            _ => Duration::zero(),
        };
        let end = local
            .checked_add_signed(ahead + Duration::seconds(1))
            .unwrap_or(local);
        self.naive_before(end)
            .filter_map(|n| self.place(n))
            .find(|&t| t <= instant)
    }

    /// The slots in `(after, until]`, in order, each once.
    pub fn slots_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Slots<'_> {
        Slots {
            schedule: self,
            cursor: after,
            until,
        }
    }

    /// Every slot strictly after `after`, in order (for `herald status`: `.take(3)`).
    pub fn upcoming(&self, after: DateTime<Utc>) -> Slots<'_> {
        self.slots_between(after, DateTime::<Utc>::MAX_UTC)
    }

    /// Whether the job is due at `now`, given when it last ran. Any number of missed
    /// slots collapse into one run. A job that never ran (`None`) is due for its latest
    /// slot at or before `now`, so a slot is never lost on a first run.
    pub fn due_slots(&self, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<Due> {
        let last = self.last_at_or_before(now)?;
        let first = match last_run {
            Some(run) if run >= last => return None,
            Some(run) => self.next_after(run)?,
            None => last,
        };
        Some(Due { first, last })
    }

    /// `instant` on the local wall clock, to the second, clamped to just outside the years
    /// `cron` covers (1970-2100) so that searches from far-off instants end at once.
    fn wall_clock(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        let first = NaiveDate::from_ymd_opt(1969, 12, 31).unwrap_or_default();
        let last = NaiveDate::from_ymd_opt(2101, 1, 1).unwrap_or_default();
        let (first, last) = (
            first.and_time(NaiveTime::MIN),
            last.and_time(NaiveTime::MIN),
        );
        let utc = instant.naive_utc();
        let offset = self.tz.offset_from_utc_datetime(&utc).fix();
        let local =
            utc.checked_add_offset(offset)
                .unwrap_or(if utc < first { first } else { last });
        floor_second(local).clamp(first, last)
    }

    /// Where the wall-clock slot `n` falls on the time line.
    fn place(&self, n: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&n) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
            LocalResult::None => gap_end(self.tz, n),
        }
    }

    /// Wall-clock slots strictly after `start`, merged across the underlying schedules.
    fn naive_after(&self, start: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        // `cron` runs on `Utc` here only because it has no gaps: these are local times.
        let start = Utc.from_utc_datetime(&start);
        merge(
            self.crons
                .iter()
                .map(|c| c.after(&start).map(|t| t.naive_utc()))
                .collect(),
            |a, b| a < b,
        )
    }

    /// Wall-clock slots strictly before `end`, newest first.
    fn naive_before(&self, end: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        let end = Utc.from_utc_datetime(&end);
        merge(
            self.crons
                .iter()
                .map(|c| c.after(&end).rev().map(|t| t.naive_utc()))
                .collect(),
            |a, b| a > b,
        )
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.expr, self.tz)
    }
}

/// Iterator over the slots of [`Schedule::slots_between`].
#[derive(Debug, Clone)]
pub struct Slots<'a> {
    schedule: &'a Schedule,
    cursor: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl Iterator for Slots<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let next = self.schedule.next_after(self.cursor)?;
        if next > self.until {
            return None;
        }
        self.cursor = next;
        Some(next)
    }
}

fn floor_second(t: NaiveDateTime) -> NaiveDateTime {
    t.with_nanosecond(0).unwrap_or(t)
}

/// The first instant whose local time is at or after `n`, a wall-clock time that a
/// spring-forward change skipped: the moment the clocks jumped.
fn gap_end(tz: Tz, n: NaiveDateTime) -> Option<DateTime<Utc>> {
    let local = |secs: i64| {
        DateTime::<Utc>::from_timestamp(secs, 0).map(|t| t.with_timezone(&tz).naive_local())
    };
    // UTC offsets stay within ±16 h, so the jump lies in this window.
    let mut lo = n
        .checked_sub_signed(Duration::hours(16))?
        .and_utc()
        .timestamp();
    let mut hi = n
        .checked_add_signed(Duration::hours(16))?
        .and_utc()
        .timestamp();
    if local(lo)? >= n || local(hi)? < n {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local(mid)? >= n {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::<Utc>::from_timestamp(hi, 0)
}

/// Merge sorted iterators into one sorted iterator without repeats; `before(a, b)`
/// says `a` comes first.
fn merge<I: Iterator<Item = NaiveDateTime>>(
    iters: Vec<I>,
    before: fn(&NaiveDateTime, &NaiveDateTime) -> bool,
) -> impl Iterator<Item = NaiveDateTime> {
    let mut heads: Vec<(Option<NaiveDateTime>, I)> =
        iters.into_iter().map(|mut it| (it.next(), it)).collect();
    std::iter::from_fn(move || {
        let best = heads
            .iter()
            .filter_map(|(h, _)| *h)
            .reduce(|a, b| if before(&b, &a) { b } else { a })?;
        for (head, it) in &mut heads {
            if *head == Some(best) {
                *head = it.next();
            }
        }
        Some(best)
    })
}

/// Turn a crontab expression into the six-field expressions `cron` wants
/// (Sunday is 1 there, and it ANDs day-of-month with day-of-week).
fn translate(expr: &str) -> Result<Vec<String>, ScheduleError> {
    let trimmed = expr.trim();
    if trimmed.starts_with('@') {
        let fields = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 0 1 1 *",
            "@monthly" => "0 0 0 1 * *",
            "@weekly" => "0 0 0 * * SUN",
            "@daily" | "@midnight" => "0 0 0 * * *",
            "@hourly" => "0 0 * * * *",
            _ => {
                return Err(ScheduleError::Invalid {
                    expr: expr.to_string(),
                    reason: "herald knows @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly".into(),
                });
            }
        };
        return Ok(vec![fields.to_string()]);
    }
    let given: Vec<&str> = trimmed.split_whitespace().collect();
    let mut fields: Vec<String> = match given.len() {
        5 => std::iter::once("0")
            .chain(given)
            .map(str::to_string)
            .collect(),
        6 => given.into_iter().map(str::to_string).collect(),
        found => {
            return Err(ScheduleError::FieldCount {
                expr: expr.to_string(),
                found,
            });
        }
    };
    let field_error = |i: usize, reason: String| ScheduleError::Field {
        expr: expr.to_string(),
        field: FIELD_NAMES[i],
        value: fields[i].clone(),
        reason,
    };
    let days = week_days(&fields[5]).map_err(|reason| field_error(5, reason))?;
    // Check each field alone so the error names the one that is wrong.
    for i in 0..5 {
        let mut probe = ["0", "0", "0", "*", "*", "*"];
        probe[i] = &fields[i];
        if cron::Schedule::from_str(&probe.join(" ")).is_err() {
            // `cron`'s own wording is off by one at the top of a range; say it plainly.
            return Err(field_error(
                i,
                format!("{} run from {}", UNITS[i], RANGES[i]),
            ));
        }
    }
    let unrestricted = |f: &str| f.starts_with('*') || f.starts_with('?');
    let both = !unrestricted(&fields[3]) && !unrestricted(&fields[5]);
    fields[5] = days;
    if both {
        let mut by_month_day = fields.clone();
        by_month_day[5] = "*".into();
        let mut by_week_day = fields;
        by_week_day[3] = "*".into();
        Ok(vec![by_month_day.join(" "), by_week_day.join(" ")])
    } else {
        Ok(vec![fields.join(" ")])
    }
}

/// A crontab day-of-week field as the comma list of day names `cron` reads unambiguously.
fn week_days(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok("*".into());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("step {s:?} is not a positive number"))?;
                (b, step)
            }
            None => (item, 1),
        };
        let (from, to) = if base == "*" || base == "?" {
            (0, 6)
        } else if let Some((a, b)) = base.split_once('-') {
            let (from, to) = (day_number(a, false)?, day_number(b, true)?);
            if from > to {
                return Err(format!(
                    "range {base:?} runs backwards; write it from the earlier day, e.g. MON-FRI"
                ));
            }
            (from, to)
        } else {
            let day = day_number(base, false)?;
            (day, if step > 1 { 7 } else { day })
        };
        let mut d = from;
        while d <= to {
            days[(d % 7) as usize] = true;
            d += step;
        }
    }
    Ok(days
        .iter()
        .zip(DAY_NAMES)
        .filter(|(on, _)| **on)
        .map(|(_, name)| name)
        .collect::<Vec<_>>()
        .join(","))
}

/// Unix numbering: 0 and 7 are Sunday. A named Sunday ending a range is 7 (`FRI-SUN`).
fn day_number(s: &str, range_end: bool) -> Result<u32, String> {
    if s.is_empty() {
        return Err("a day is missing".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u32>() {
            Ok(n) if n <= 7 => Ok(n),
            _ => Err(format!(
                "{s} is not a day of the week (0-7, 0 and 7 are Sunday)"
            )),
        };
    }
    if s.contains(['#', 'L', 'W']) && s.chars().any(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{s:?}: nth-weekday and last-weekday forms are not supported"
        ));
    }
    let n = match s.to_ascii_lowercase().as_str() {
        "sun" | "sunday" => 0,
        "mon" | "monday" => 1,
        "tue" | "tues" | "tuesday" => 2,
        "wed" | "wednesday" => 3,
        "thu" | "thurs" | "thursday" => 4,
        "fri" | "friday" => 5,
        "sat" | "saturday" => 6,
        _ => return Err(format!("{s:?} is not a day of the week")),
    };
    Ok(if n == 0 && range_end { 7 } else { n })
}

/// The `[schedule]` section of herald.toml: the time zone and the named jobs.
#[derive(Debug, Clone)]
pub struct Schedules {
    pub time_zone: Tz,
    /// How long a second herald waits for the lock before giving up.
    pub lock_wait: StdDuration,
    jobs: BTreeMap<String, Schedule>,
}

impl Schedules {
    /// Read `[schedule]`. Every problem is reported at once, each pointing at its line
    /// in herald.toml with what to write instead.
    pub fn from_config(config: &Config) -> Result<Schedules, Diagnostics> {
        let table: BTreeMap<String, toml::Value> = config
            .section("schedule")
            .map_err(|d| Diagnostics(vec![d]))?;
        let mut problems = Vec::new();
        let source = config.source();
        let at = |key: &str| value_span(source, key);
        let problem = |key: &str, message: String, hint: String| {
            Diagnostic::at("schedule", &config.path, source, at(key), message, hint)
        };

        let mut time_zone = config.time_zone;
        match table.get(TIME_ZONE_KEY) {
            None => {}
            Some(toml::Value::String(name)) => match name.parse::<Tz>() {
                Ok(tz) => time_zone = tz,
                Err(_) => problems.push(problem(
                    TIME_ZONE_KEY,
                    format!("[schedule] time_zone: unknown time zone {name:?}"),
                    "use an IANA zone name such as time_zone = \"Asia/Almaty\" or \"Europe/Berlin\", \
                     or leave it out to use the top-level time_zone"
                        .into(),
                )),
            },
            Some(_) => problems.push(problem(
                TIME_ZONE_KEY,
                "[schedule] time_zone must be a string".into(),
                "write time_zone = \"Europe/Berlin\"".into(),
            )),
        }

        let mut lock_wait = DEFAULT_LOCK_WAIT;
        match table.get(LOCK_WAIT_KEY) {
            None => {}
            Some(toml::Value::Integer(n)) if (0..=86_400).contains(n) => {
                lock_wait = StdDuration::from_secs(n.unsigned_abs());
            }
            Some(_) => problems.push(problem(
                LOCK_WAIT_KEY,
                "[schedule] lock_wait_seconds must be a whole number of seconds from 0 to 86400"
                    .into(),
                "write e.g. lock_wait_seconds = 30 (0: give up at once when another herald runs)"
                    .into(),
            )),
        }

        let mut jobs = BTreeMap::new();
        for (key, value) in &table {
            if key == TIME_ZONE_KEY || key == LOCK_WAIT_KEY {
                continue;
            }
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                problems.push(problem(
                    key,
                    format!("[schedule] job name {key:?} is not a plain name"),
                    "name jobs with letters, digits, '-' and '_', e.g. digest = \"0 9 * * MON\""
                        .into(),
                ));
                continue;
            }
            let Some(expr) = value.as_str() else {
                problems.push(problem(
                    key,
                    format!("[schedule] {key} must be a cron expression in quotes"),
                    format!("write {key} = \"0 9 * * MON\""),
                ));
                continue;
            };
            match Schedule::parse(expr, time_zone) {
                Ok(s) => {
                    jobs.insert(key.clone(), s);
                }
                Err(e) => {
                    let mut hint = e.hint();
                    if let Some(setting) = looks_like_setting(key) {
                        hint = format!("did you mean the setting {setting}? Otherwise {hint}");
                    }
                    problems.push(problem(key, format!("[schedule] {key}: {e}"), hint));
                }
            }
        }
        if !problems.is_empty() {
            problems.sort_by_key(|d| (d.line, d.column));
            return Err(Diagnostics(problems));
        }
        Ok(Schedules {
            time_zone,
            lock_wait,
            jobs,
        })
    }

    /// A named job's schedule.
    pub fn get(&self, job: &str) -> Option<&Schedule> {
        self.jobs.get(job)
    }

    /// The email digest's schedule, if `[schedule] digest` is set.
    pub fn digest(&self) -> Option<&Schedule> {
        self.get(DIGEST)
    }

    /// Every job, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Schedule)> {
        self.jobs.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The earliest slot of any job strictly after `instant`, and that job's name:
    /// what `herald run` sleeps until (unless an embargo lifts first).
    pub fn next_after(&self, instant: DateTime<Utc>) -> Option<(&str, DateTime<Utc>)> {
        self.iter()
            .filter_map(|(name, s)| s.next_after(instant).map(|t| (name, t)))
            .min_by_key(|&(_, t)| t)
    }
}

fn looks_like_setting(key: &str) -> Option<&'static str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let k = norm(key);
    [TIME_ZONE_KEY, LOCK_WAIT_KEY]
        .into_iter()
        .find(|s| norm(s) == k || (k.contains("zone") && *s == TIME_ZONE_KEY))
}

/// The byte range of `key`'s value inside `[schedule]`, for pointing at it; the section
/// header (or the file start) when it cannot be found.
fn value_span(source: &str, key: &str) -> Range<usize> {
    let Some(header) = source.find("[schedule]") else {
        return 0..0;
    };
    let mut offset = header;
    for (i, line) in source[header..].split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        if i == 0 {
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            break;
        }
        let rest = trimmed
            .strip_prefix(key)
            .or_else(|| trimmed.strip_prefix(&format!("\"{key}\"")));
        if let Some(rest) = rest.map(str::trim_start).and_then(|r| r.strip_prefix('=')) {
            let value = rest.trim();
            let value = value.split(" #").next().unwrap_or(value).trim_end();
            let at = start + (line.len() - rest.len()) + (rest.len() - rest.trim_start().len());
            return at..at + value.len().max(1);
        }
    }
    header..header + "[schedule]".len()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use chrono_tz::Europe::Berlin;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn berlin(expr: &str) -> Schedule {
        Schedule::parse(expr, Berlin).expect("valid expression")
    }

    fn slots(s: &Schedule, from: &str, to: &str) -> Vec<String> {
        s.slots_between(utc(from), utc(to))
            .map(|t| t.with_timezone(&s.time_zone()).to_rfc3339())
            .collect()
    }

    #[test]
    fn spring_forward_skipped_time_runs_once_at_three() {
        // 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST; 02:30 does not exist.
        let s = berlin("30 2 * * *");
        assert_eq!(
            slots(&s, "2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z"),
            [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00"
            ]
        );
        assert_eq!(
            s.next_after(utc("2026-03-29T00:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn slots_in_a_gap_collapse_into_one() {
        // Every 15 minutes: 02:00-02:45 are all skipped; they and 03:00 run once.
        let s = berlin("*/15 * * * *");
        assert_eq!(
            slots(&s, "2026-03-29T00:40:00Z", "2026-03-29T01:20:00Z"),
            [
                "2026-03-29T01:45:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:15:00+02:00"
            ]
        );
    }

    #[test]
    fn fall_back_repeated_time_runs_once() {
        // 2026-10-25: Berlin goes back from 03:00 CEST to 02:00 CET; 02:30 happens twice.
        let s = berlin("30 2 * * *");
        assert_eq!(
            slots(&s, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z"),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        // Asked during the second 02:30, the next run is tomorrow's.
        assert_eq!(
            s.next_after(utc("2026-10-25T01:15:00Z")),
            Some(utc("2026-10-26T01:30:00Z"))
        );
        // And the last run before then was the first 02:30.
        assert_eq!(
            s.last_at_or_before(utc("2026-10-25T01:45:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
    }

    #[test]
    fn fall_back_hourly_does_not_repeat_the_hour() {
        let s = berlin("0 * * * *");
        assert_eq!(
            slots(&s, "2026-10-24T22:30:00Z", "2026-10-25T02:30:00Z"),
            [
                "2026-10-25T01:00:00+02:00",
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T03:00:00+01:00"
            ]
        );
    }

    #[test]
    fn daily_job_runs_once_every_local_day_in_every_kind_of_zone() {
        use chrono::Datelike;
        // Zones with 1 h changes at 02:00 or 03:00, a 30 min change (Lord Howe), changes at
        // midnight (Santiago, Havana), and none (Almaty).
        let zones: [Tz; 7] = [
            Berlin,
            chrono_tz::America::New_York,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::America::Santiago,
            chrono_tz::America::Havana,
            chrono_tz::Asia::Almaty,
            chrono_tz::Europe::London,
        ];
        for tz in zones {
            for expr in ["0 0 * * *", "30 2 * * *", "0 1 * * *", "59 23 * * *"] {
                let s = Schedule::parse(expr, tz).expect("valid");
                let all: Vec<_> = s
                    .slots_between(utc("2025-12-31T12:00:00Z"), utc("2028-01-01T12:00:00Z"))
                    .map(|t| t.with_timezone(&tz))
                    .filter(|t| (2026..=2027).contains(&t.year()))
                    .collect();
                assert_eq!(all.len(), 730, "{expr} in {tz}");
                for pair in all.windows(2) {
                    assert_eq!(
                        pair[1].date_naive(),
                        pair[0].date_naive().succ_opt().expect("date"),
                        "{expr} in {tz}"
                    );
                }
            }
        }
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let s = berlin("*/5 * * * *");
        for t in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::UNIX_EPOCH,
        ] {
            let _ = s.next_after(t);
            let _ = s.last_at_or_before(t);
            let _ = s.due_slots(Some(t), t);
        }
        // `cron` ends in 2100.
        assert_eq!(s.next_after(utc("2101-01-01T00:00:00Z")), None);
        assert_eq!(s.due_slots(None, utc("1960-01-01T00:00:00Z")), None);
    }

    proptest::proptest! {
        /// The forward and backward searches agree: around any instant, the last slot at or
        /// before it and the first slot after it are neighbours, in every kind of zone.
        #[test]
        fn forward_and_backward_searches_agree(
            secs in 1_767_225_600i64..1_830_297_600, // 2026 and 2027
            expr in proptest::sample::select(vec![
                "30 2 * * *", "*/15 * * * *", "0 * * * *", "0 9 * * MON", "0 0 * * *",
                "59 1-3 * * SUN", "15 30 2 * * *", "0 9 1 * FRI",
            ]),
            tz in proptest::sample::select(vec![
                Berlin, chrono_tz::America::Santiago, chrono_tz::Australia::Lord_Howe,
                chrono_tz::America::New_York, chrono_tz::Asia::Almaty,
            ]),
        ) {
            let s = Schedule::parse(expr, tz).expect("valid");
            let t = DateTime::<Utc>::from_timestamp(secs, 0).expect("in range");
            let before = s.last_at_or_before(t).expect("a slot before");
            let after = s.next_after(t).expect("a slot after");
            proptest::prop_assert!(before <= t && t < after);
            proptest::prop_assert_eq!(s.next_after(before), Some(after));
            proptest::prop_assert_eq!(s.last_at_or_before(after), Some(after));
            proptest::prop_assert_eq!(
                s.last_at_or_before(after - Duration::seconds(1)),
                Some(before)
            );
        }
    }

    #[test]
    fn upcoming_lists_the_next_slots() {
        let s = berlin("0 9 * * 1-5");
        let next: Vec<_> = s.upcoming(utc("2026-11-27T12:00:00Z")).take(3).collect();
        assert_eq!(
            next,
            [
                utc("2026-11-30T08:00:00Z"),
                utc("2026-12-01T08:00:00Z"),
                utc("2026-12-02T08:00:00Z")
            ]
        );
    }

    #[test]
    fn monday_only_never_fires_on_sunday() {
        use chrono::{Datelike, Weekday};
        for expr in [
            "0 9 * * MON",
            "0 9 * * 1",
            "0 0 9 * * Monday",
            "0 9 * * 1-1",
        ] {
            let s = berlin(expr);
            let all: Vec<_> = s
                .slots_between(utc("2026-01-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"))
                .collect();
            assert_eq!(all.len(), 52, "{expr}");
            for t in all {
                let local = t.with_timezone(&Berlin);
                assert_eq!(local.weekday(), Weekday::Mon, "{expr}: {local}");
                assert_eq!((local.hour(), local.minute()), (9, 0), "{expr}: {local}");
            }
        }
        // 2026-11-29 is a Sunday.
        let s = berlin("0 9 * * MON");
        assert_eq!(
            s.next_after(utc("2026-11-29T07:00:00Z")),
            Some(utc("2026-11-30T08:00:00Z"))
        );
    }

    #[test]
    fn zero_and_seven_are_sunday() {
        use chrono::{Datelike, Weekday};
        for expr in [
            "0 12 * * 0",
            "0 12 * * 7",
            "0 12 * * SUN",
            "0 12 * * sunday",
        ] {
            let next = berlin(expr)
                .next_after(utc("2026-11-25T00:00:00Z"))
                .expect("fires")
                .with_timezone(&Berlin);
            assert_eq!(next.weekday(), Weekday::Sun, "{expr}");
            assert_eq!(next.day(), 29, "{expr}");
        }
        // Unix ranges: FRI-SUN and 5-7 are Friday to Sunday; 1-5 is Monday to Friday.
        assert_eq!(week_days("5-7"), Ok("SUN,FRI,SAT".into()));
        assert_eq!(week_days("FRI-SUN"), Ok("SUN,FRI,SAT".into()));
        assert_eq!(week_days("1-5"), Ok("MON,TUE,WED,THU,FRI".into()));
        assert_eq!(week_days("*/2"), Ok("SUN,TUE,THU,SAT".into()));
        assert_eq!(week_days("1-5/2"), Ok("MON,WED,FRI".into()));
        assert_eq!(week_days("0,7"), Ok("SUN".into()));
    }

    #[test]
    fn six_fields_take_seconds() {
        let s = berlin("15 0 9 * * *");
        assert_eq!(
            s.next_after(utc("2026-06-01T00:00:00Z")),
            Some(utc("2026-06-01T07:00:15Z"))
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_like_crontab() {
        // The 1st of the month, and every Friday.
        let s = berlin("0 9 1 * FRI");
        assert_eq!(
            slots(&s, "2026-05-01T12:00:00Z", "2026-06-06T00:00:00Z"),
            [
                "2026-05-08T09:00:00+02:00",
                "2026-05-15T09:00:00+02:00",
                "2026-05-22T09:00:00+02:00",
                "2026-05-29T09:00:00+02:00",
                "2026-06-01T09:00:00+02:00",
                "2026-06-05T09:00:00+02:00"
            ]
        );
    }

    #[test]
    fn shorthands() {
        let s = berlin("@weekly");
        let next = s.next_after(utc("2026-11-25T00:00:00Z")).expect("fires");
        assert_eq!(
            next.with_timezone(&Berlin).to_rfc3339(),
            "2026-11-29T00:00:00+01:00"
        );
        assert!(Schedule::parse("@reboot", Berlin).is_err());
    }

    #[test]
    fn missed_slots_run_once() {
        let s = berlin("0 9 * * *");
        // Down from Monday 08:00 until Thursday 12:00: three slots, one run for the last.
        let due = s
            .due_slots(
                Some(utc("2026-11-23T07:00:00Z")),
                utc("2026-11-26T11:00:00Z"),
            )
            .expect("due");
        assert_eq!(due.first, utc("2026-11-23T08:00:00Z"));
        assert_eq!(due.last, utc("2026-11-26T08:00:00Z"));
        assert!(due.is_catch_up());
        // Recording the run makes it not due again until the next slot.
        assert_eq!(
            s.due_slots(Some(due.last), utc("2026-11-26T11:00:00Z")),
            None
        );
        assert_eq!(
            s.due_slots(Some(due.last), utc("2026-11-27T07:59:59Z")),
            None
        );
        let next = s
            .due_slots(Some(due.last), utc("2026-11-27T08:00:00Z"))
            .expect("due");
        assert_eq!(
            (next.first, next.last),
            (utc("2026-11-27T08:00:00Z"), utc("2026-11-27T08:00:00Z"))
        );
        assert!(!next.is_catch_up());
        // Never run: the latest slot is due, once.
        let first = s.due_slots(None, utc("2026-11-26T11:00:00Z")).expect("due");
        assert_eq!(
            (first.first, first.last),
            (utc("2026-11-26T08:00:00Z"), utc("2026-11-26T08:00:00Z"))
        );
    }

    #[test]
    fn due_across_dst_changes() {
        let s = berlin("30 2 * * *");
        // Last ran on the 28th; at 03:00 CEST on the 29th the skipped 02:30 is due.
        let last = utc("2026-03-28T01:30:00Z");
        assert_eq!(s.due_slots(Some(last), utc("2026-03-29T00:59:59Z")), None);
        let due = s
            .due_slots(Some(last), utc("2026-03-29T01:00:00Z"))
            .expect("due");
        assert_eq!(due.last, utc("2026-03-29T01:00:00Z"));
        // Fall-back: after the first 02:30 ran, the second 02:30 is not due.
        let ran = utc("2026-10-25T00:30:00Z");
        assert_eq!(s.due_slots(Some(ran), utc("2026-10-25T01:30:00Z")), None);
        assert_eq!(s.due_slots(Some(ran), utc("2026-10-25T01:59:59Z")), None);
    }

    #[test]
    fn other_zones() {
        // Asia/Almaty (no DST): 09:00 local is 04:00 UTC since 2024-03-01 (UTC+5).
        let s = Schedule::parse("0 9 * * MON", chrono_tz::Asia::Almaty).expect("valid");
        assert_eq!(
            s.next_after(utc("2026-11-28T00:00:00Z")),
            Some(utc("2026-11-30T04:00:00Z"))
        );
        // America/New_York spring-forward at 02:00 -> 03:00 on 2026-03-08.
        let s = Schedule::parse("30 2 * * *", chrono_tz::America::New_York).expect("valid");
        assert_eq!(
            s.next_after(utc("2026-03-08T05:00:00Z")),
            Some(utc("2026-03-08T07:00:00Z"))
        );
    }

    #[test]
    fn expression_errors_name_the_field() {
        let err = |e: &str| Schedule::parse(e, Berlin).expect_err(e);
        assert!(matches!(
            err("0 9 * *"),
            ScheduleError::FieldCount { found: 4, .. }
        ));
        assert!(matches!(
            err("0 0 0 9 * * * 2030"),
            ScheduleError::FieldCount { found: 8, .. }
        ));
        assert!(matches!(
            err(""),
            ScheduleError::FieldCount { found: 0, .. }
        ));
        match err("0 25 * * *") {
            ScheduleError::Field { field, value, .. } => {
                assert_eq!((field, value.as_str()), ("hour", "25"))
            }
            other => panic!("{other:?}"),
        }
        match err("61 9 * * *") {
            ScheduleError::Field { field, .. } => assert_eq!(field, "minute"),
            other => panic!("{other:?}"),
        }
        match err("0 9 * * 8") {
            ScheduleError::Field { field, reason, .. } => {
                assert_eq!(field, "day-of-week");
                assert!(reason.contains("0 and 7 are Sunday"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            "0 9 * * FUNDAY",
            "0 9 * * FRI-MON",
            "0 9 * * 1#2",
            "0 9 * * */0",
            "0 9 * * 1,",
        ] {
            assert!(
                matches!(
                    err(bad),
                    ScheduleError::Field {
                        field: "day-of-week",
                        ..
                    }
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            err("0 9 * 13 *"),
            ScheduleError::Field { field: "month", .. }
        ));
        assert!(matches!(
            err("0 9 0 * *"),
            ScheduleError::Field {
                field: "day-of-month",
                ..
            }
        ));
        assert!(matches!(
            err("0 0 30 2 *"),
            ScheduleError::NeverFires { .. }
        ));
        let shown = err("0 25 * * *").to_string();
        assert!(
            shown.contains("hour field \"25\"") && shown.contains("hours run from 0 to 23"),
            "{shown}"
        );
        assert!(err("0 25 * * *").hint().contains("0-23"));
    }

    const BASE: &str = r#"title = "T"
base_url = "https://ex.org/"
languages = ["en"]
default_language = "en"
time_zone = "Asia/Almaty"
[organization]
name = "Org"
"#;

    fn config(schedule: &str) -> Config {
        Config::parse(
            Path::new("content/herald.toml"),
            &format!("{BASE}{schedule}"),
        )
        .expect("valid config")
    }

    #[test]
    fn reads_the_schedule_section() {
        let c = config("[schedule]\ndigest = \"0 9 * * MON\"\ncleanup = \"0 3 1 * *\"\n");
        let s = Schedules::from_config(&c).expect("valid");
        assert_eq!(s.time_zone, chrono_tz::Asia::Almaty);
        assert_eq!(s.lock_wait, DEFAULT_LOCK_WAIT);
        assert_eq!(s.digest().map(Schedule::expression), Some("0 9 * * MON"));
        assert_eq!(
            s.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["cleanup", "digest"]
        );
        // Saturday 2026-11-28 in Almaty: the digest (Monday) comes before the 1st of the month (Tuesday).
        assert_eq!(
            s.next_after(utc("2026-11-28T00:00:00Z")),
            Some(("digest", utc("2026-11-30T04:00:00Z")))
        );

        let c = config(
            "[schedule]\ntime_zone = \"Europe/Berlin\"\nlock_wait_seconds = 0\ndigest = \"30 2 * * *\"\n",
        );
        let s = Schedules::from_config(&c).expect("valid");
        assert_eq!(s.time_zone, Berlin);
        assert_eq!(s.lock_wait, StdDuration::ZERO);
        assert_eq!(s.digest().map(Schedule::time_zone), Some(Berlin));

        let s = Schedules::from_config(&config("")).expect("no section");
        assert!(s.is_empty());
        assert_eq!(s.time_zone, chrono_tz::Asia::Almaty);
    }

    #[test]
    fn config_errors_point_at_the_line_and_say_what_to_write() {
        let c = config(
            "[schedule]\ntime_zone = \"Europe/Berlni\"\ndigest = \"0 25 * * MON\"  # weekly\n\
             weekly = 5\nlock_wait_seconds = -1\n",
        );
        let problems = Schedules::from_config(&c).expect_err("invalid").0;
        assert_eq!(problems.len(), 4, "{problems:#?}");
        let lines: Vec<usize> = problems.iter().map(|d| d.line).collect();
        assert_eq!(lines, [9, 10, 11, 12], "in file order");
        let by_line = |line: usize| {
            problems
                .iter()
                .find(|d| d.line == line)
                .unwrap_or_else(|| panic!("no problem on line {line}: {problems:#?}"))
        };
        let zone = by_line(9);
        assert!(zone.message.contains("Europe/Berlni"), "{zone}");
        assert!(zone.hint.contains("IANA"), "{zone}");
        let digest = by_line(10);
        assert!(
            digest.message.contains("digest") && digest.message.contains("hour"),
            "{digest}"
        );
        assert_eq!((digest.column, digest.width), (10, 14), "{digest}");
        assert!(digest.hint.contains("0-23"), "{digest}");
        let shown = digest.to_string();
        assert!(shown.contains("content/herald.toml:10:10"), "{shown}");
        assert!(by_line(11).hint.contains("weekly = \"0 9 * * MON\""));
        assert!(by_line(12).message.contains("lock_wait_seconds"));

        let c = config("[schedule]\ntimezone = \"Europe/Berlin\"\n");
        let problems = Schedules::from_config(&c).expect_err("invalid").0;
        assert!(
            problems[0]
                .hint
                .contains("did you mean the setting time_zone"),
            "{}",
            problems[0]
        );
    }
}
