//! Time arithmetic on sandbox clocks: ISO 8601 durations (`P2D`, `PT2H`,
//! `P1M`) added to or taken from Unix milliseconds, RFC 3339 in and out.
//! Scheduled jobs, lifecycles' timed transitions, relative fixture dates
//! and the clock API all reckon with these.

use time::{Date, Month, OffsetDateTime, format_description::well_known::Rfc3339};

/// `ms` (Unix milliseconds) plus an ISO 8601 duration. Calendar months and
/// years keep the day of the month when they can (Jan 31 + P1M = Feb 28).
pub fn add_duration(ms: i64, text: &str) -> Result<i64, String> {
    shift(ms, text, 1)
}

/// `ms` minus an ISO 8601 duration.
pub fn sub_duration(ms: i64, text: &str) -> Result<i64, String> {
    shift(ms, text, -1)
}

fn shift(ms: i64, text: &str, sign: i64) -> Result<i64, String> {
    let parsed = iso8601::duration(text)
        .map_err(|_| format!("{text:?} is not an ISO 8601 duration such as P30D, PT2H or P1M"))?;
    let (years, months, millis) = match parsed {
        iso8601::Duration::Weeks(weeks) => (0, 0, i64::from(weeks) * 7 * 86_400_000),
        iso8601::Duration::YMDHMS {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millisecond,
        } => (
            year,
            month,
            i64::from(day) * 86_400_000
                + i64::from(hour) * 3_600_000
                + i64::from(minute) * 60_000
                + i64::from(second) * 1_000
                + i64::from(millisecond),
        ),
    };
    let out_of_range = || "the date is out of range".to_owned();
    let start = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| e.to_string())?;
    let total_months = i64::from(start.year()) * 12
        + i64::from(start.month() as u8 - 1)
        + sign * (i64::from(years) * 12 + i64::from(months));
    let year = i32::try_from(total_months.div_euclid(12)).map_err(|_| out_of_range())?;
    let month =
        Month::try_from((total_months.rem_euclid(12) + 1) as u8).map_err(|e| e.to_string())?;
    let day = start.day().min(time::util::days_in_month(month, year));
    let date = Date::from_calendar_date(year, month, day).map_err(|_| out_of_range())?;
    let moved = start.replace_date(date);
    let moved_ms =
        i64::try_from(moved.unix_timestamp_nanos() / 1_000_000).map_err(|_| out_of_range())?;
    moved_ms.checked_add(sign * millis).ok_or_else(out_of_range)
}

/// RFC 3339 text to Unix milliseconds.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("{text:?} is not an RFC 3339 instant such as 2026-12-01T00:00:00Z"))?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| "the instant is out of range".to_owned())
}

/// Unix milliseconds as RFC 3339 (UTC); empty when out of range.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// When something given as a duration from `now_ms` (`P2D`) or as an
/// instant (`2026-12-01T00:00:00Z`) happens.
pub fn resolve_when(now_ms: i64, text: &str) -> Result<i64, String> {
    if text.starts_with('P') {
        add_duration(now_ms, text)
    } else {
        parse_instant(text).map_err(|_| {
            format!("{text:?} is neither an ISO 8601 duration (P2D, PT1H) nor an RFC 3339 instant")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn durations_add_days_hours_and_calendar_months() {
        let jan31 = parse_instant("2026-01-31T10:00:00Z").unwrap();
        assert_eq!(add_duration(jan31, "P30D").unwrap(), jan31 + 30 * DAY);
        assert_eq!(add_duration(jan31, "P90D").unwrap(), jan31 + 90 * DAY);
        assert_eq!(add_duration(jan31, "PT2H30M").unwrap(), jan31 + 9_000_000);
        assert_eq!(add_duration(jan31, "P1W").unwrap(), jan31 + 7 * DAY);
        assert_eq!(
            add_duration(jan31, "P1M").unwrap(),
            parse_instant("2026-02-28T10:00:00Z").unwrap()
        );
        assert_eq!(
            add_duration(jan31, "P1Y").unwrap(),
            parse_instant("2027-01-31T10:00:00Z").unwrap()
        );
        assert!(add_duration(jan31, "30 days").is_err());
    }

    #[test]
    fn durations_subtract_too() {
        let mar31 = parse_instant("2026-03-31T10:00:00Z").unwrap();
        assert_eq!(sub_duration(mar31, "P3D").unwrap(), mar31 - 3 * DAY);
        assert_eq!(
            sub_duration(mar31, "P1M").unwrap(),
            parse_instant("2026-02-28T10:00:00Z").unwrap()
        );
        assert_eq!(rfc3339(mar31), "2026-03-31T10:00:00Z");
    }

    #[test]
    fn when_is_a_duration_or_an_instant() {
        assert_eq!(resolve_when(1_000, "PT1S").unwrap(), 2_000);
        assert_eq!(resolve_when(0, "1970-01-01T00:00:05Z").unwrap(), 5_000);
        assert!(resolve_when(0, "tomorrow").is_err());
    }
}
