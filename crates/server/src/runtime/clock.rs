//! Sandbox clocks: real time plus an offset, or frozen at an instant.
//! Everything a sandbox dates (scripts' `now()`, templates, created
//! records, idempotency expiry) reads its clock.

pub use sbx_engine::clock::{add_duration, parse_instant};

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

#[cfg(test)]
mod tests {
    use super::*;

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
