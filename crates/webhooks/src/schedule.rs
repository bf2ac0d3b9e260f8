//! When a failed delivery is tried again. Delays count on the sandbox
//! clock, so advancing a sandbox's clock fires the retries due meanwhile.

use std::time::Duration;

/// The schedules a sandbox can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleName {
    /// Standard Webhooks' recommendation, as Svix runs it: immediately,
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    Standard,
    /// The same number of attempts within seconds, for tests: immediately,
    /// 1 s, 2 s, 4 s, 8 s, 16 s, 32 s, 64 s.
    Compressed,
}

impl ScheduleName {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "standard" => Some(Self::Standard),
            "compressed" => Some(Self::Compressed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Compressed => "compressed",
        }
    }
}

/// Delays before each attempt (the first is 0: at once), with ±20% jitter.
#[derive(Debug, Clone)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl RetrySchedule {
    pub fn named(name: ScheduleName) -> Self {
        let seconds: &[u64] = match name {
            ScheduleName::Standard => &[0, 5, 300, 1_800, 7_200, 18_000, 36_000, 36_000],
            ScheduleName::Compressed => &[0, 1, 2, 4, 8, 16, 32, 64],
        };
        Self {
            delays: seconds.iter().map(|s| Duration::from_secs(*s)).collect(),
        }
    }

    /// How many attempts a delivery gets before it is dead-lettered.
    pub fn attempts(&self) -> usize {
        self.delays.len()
    }

    /// The delay before attempt `attempt` (0-based) after the previous
    /// one failed, jittered by `draw` in `[0, 1)` to ±20%; `None` when
    /// there is no such attempt (dead letter).
    pub fn delay_before(&self, attempt: usize, draw: f64) -> Option<Duration> {
        let base = *self.delays.get(attempt)?;
        let factor = 0.8 + 0.4 * draw.clamp(0.0, 1.0);
        Some(base.mul_f64(factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_schedule_has_eight_attempts_with_bounded_jitter() {
        let schedule = RetrySchedule::named(ScheduleName::Standard);
        assert_eq!(schedule.attempts(), 8);
        assert_eq!(schedule.delay_before(0, 0.7), Some(Duration::ZERO));
        assert_eq!(
            schedule.delay_before(2, 0.0),
            Some(Duration::from_secs(240))
        );
        assert_eq!(
            schedule.delay_before(2, 1.0),
            Some(Duration::from_secs(360))
        );
        assert_eq!(schedule.delay_before(8, 0.5), None);
        assert_eq!(
            ScheduleName::parse("compressed"),
            Some(ScheduleName::Compressed)
        );
        assert_eq!(ScheduleName::parse("fast"), None);
    }
}
