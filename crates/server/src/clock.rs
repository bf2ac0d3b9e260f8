//! Sandbox clocks: real time plus an offset, or frozen at an instant.
//! Everything a sandbox dates (scripts' `now()`, templates, created
//! records, idempotency expiry) reads its clock.

use time::{Date, Month, OffsetDateTime, format_description::well_known::Rfc3339};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// Added to real time.
    pub offset_ms: i64,
    /// When set, the clock stands still here.
    pub frozen_ms: Option<i64>,
}

impl Clock {
    pub fn now_ms(&self, real_ms: i64) -> i64 {
        self.frozen_ms
            .unwrap_or(real_ms.saturating_add(self.offset_ms))
    }

    /// The clock moved forward by an ISO 8601 duration (`P30D`, `PT2H`,
    /// `P1M`: calendar months and years keep the day of the month when
    /// they can).
    pub fn advanced(self, duration: &str, real_ms: i64) -> Result<Self, String> {
        let now = self.now_ms(real_ms);
        let target = add_duration(now, duration)?;
        Ok(self.moved_to(target, real_ms))
    }

    /// The clock set to `target`, frozen or running as it was.
    pub fn moved_to(self, target_ms: i64, real_ms: i64) -> Self {
        match self.frozen_ms {
            Some(_) => Self {
                offset_ms: self.offset_ms,
                frozen_ms: Some(target_ms),
            },
            None => Self {
                offset_ms: target_ms - real_ms,
                frozen_ms: None,
            },
        }
    }

    pub fn frozen_at(self, target_ms: i64) -> Self {
        Self {
            offset_ms: self.offset_ms,
            frozen_ms: Some(target_ms),
        }
    }

    /// Running again from where it stood.
    pub fn resumed(self, real_ms: i64) -> Self {
        match self.frozen_ms {
            Some(at) => Self {
                offset_ms: at - real_ms,
                frozen_ms: None,
            },
            None => self,
        }
    }
}

/// `ms` (Unix milliseconds) plus an ISO 8601 duration.
pub fn add_duration(ms: i64, text: &str) -> Result<i64, String> {
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
    let start = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| e.to_string())?;
    let total_months = i64::from(start.year()) * 12
        + i64::from(start.month() as u8 - 1)
        + i64::from(years) * 12
        + i64::from(months);
    let year = i32::try_from(total_months.div_euclid(12))
        .map_err(|_| "the date is out of range".to_owned())?;
    let month =
        Month::try_from((total_months.rem_euclid(12) + 1) as u8).map_err(|e| e.to_string())?;
    let day = start.day().min(time::util::days_in_month(month, year));
    let date = Date::from_calendar_date(year, month, day)
        .map_err(|_| "the date is out of range".to_owned())?;
    let moved = start.replace_date(date);
    let moved_ms = i64::try_from(moved.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| "the date is out of range".to_owned())?;
    moved_ms
        .checked_add(millis)
        .ok_or_else(|| "the date is out of range".to_owned())
}

/// RFC 3339 text to Unix milliseconds.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("{text:?} is not an RFC 3339 instant such as 2026-12-01T00:00:00Z"))?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| "the instant is out of range".to_owned())
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
    fn frozen_clocks_stand_still_and_resume_where_they_stood() {
        let clock = Clock::default().frozen_at(1_000);
        assert_eq!((clock.now_ms(5_000), clock.now_ms(9_000)), (1_000, 1_000));
        let running = clock.advanced("PT1S", 9_000).unwrap().resumed(10_000);
        assert_eq!(running.now_ms(10_000), 2_000);
        assert_eq!(running.now_ms(10_500), 2_500);
        assert_eq!(
            running.advanced("PT10S", 10_500).unwrap().now_ms(10_500),
            12_500
        );
    }
}
