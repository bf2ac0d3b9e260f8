//! Delivery faults a developer opts into for one endpoint, so a receiver
//! proves it survives what production webhooks do to it: duplicates,
//! late and out-of-order deliveries, a skewed `webhook-timestamp`.

use serde::{Deserialize, Serialize};

/// Longest injected delay: a day.
const MAX_DELAY_MS: u64 = 86_400_000;
/// Largest timestamp skew: a day either way.
const MAX_SKEW_SECONDS: i64 = 86_400;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Probability (0 to 1) that a delivered event is sent again, with
    /// the same `webhook-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<f64>,
    /// Every delivery waits this long (sandbox time) before its first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// `webhook-timestamp` is off by this many seconds (signed as sent), so
    /// a receiver's tolerance check is exercised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew_seconds: Option<i64>,
    /// Deliveries due together are sent newest first, one at a time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reorder: bool,
}

impl Faults {
    /// Why these faults cannot be injected, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.duplicate.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err("duplicate is a probability from 0 to 1".into());
        }
        if self.delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
            return Err(format!("delay_ms is at most {MAX_DELAY_MS} (a day)"));
        }
        if self
            .skew_seconds
            .is_some_and(|s| s.abs() > MAX_SKEW_SECONDS)
        {
            return Err(format!(
                "skew_seconds is at most {MAX_SKEW_SECONDS} either way"
            ));
        }
        Ok(())
    }

    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_bounded() {
        let ok: Faults = serde_json::from_str(
            r#"{"duplicate": 0.5, "delay_ms": 1000, "skew_seconds": -600, "reorder": true}"#,
        )
        .unwrap();
        assert!(ok.check().is_ok() && !ok.is_none());
        for bad in [
            r#"{"duplicate": 2}"#,
            r#"{"delay_ms": 999999999}"#,
            r#"{"skew_seconds": -100000}"#,
        ] {
            let faults: Faults = serde_json::from_str(bad).unwrap();
            assert!(faults.check().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Faults>(r#"{"explode": true}"#).is_err());
    }
}
