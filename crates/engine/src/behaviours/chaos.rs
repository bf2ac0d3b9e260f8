//! Chaos: latency, jitter, injected errors, dropped connections and slow
//! bodies, asked per request (`X-Chaos: latency=300ms,error=5%,seed=42`) or
//! set as a sandbox's profile. The engine decides; the server delays,
//! drops or trickles.

use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use serde::Serialize;

/// Longest latency, jitter or slow-body spread accepted.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// What chaos a request (or a sandbox) asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChaosSpec {
    /// Added before answering.
    pub latency: Duration,
    /// Up to this much more, drawn uniformly.
    pub jitter: Duration,
    /// Share of requests answered with `status` instead (0 to 1).
    pub error_rate: f64,
    /// The injected error's status (default 503).
    pub status: u16,
    /// Share of requests whose connection is closed without an answer.
    pub drop_rate: f64,
    /// The body is trickled over this long.
    pub slow: Duration,
    /// Makes the sequence of outcomes reproducible.
    pub seed: Option<u64>,
}

/// What chaos does to one answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChaosEffect {
    pub delay: Duration,
    /// Close the connection instead of answering.
    pub drop: bool,
    /// Send the body spread over this long.
    pub slow: Duration,
    /// Answer this error status instead of the normal answer.
    pub error: Option<u16>,
}

const OPTIONS: &str = "latency, jitter, error, status, drop, slow, seed";

fn duration(name: &str, text: &str) -> Result<Duration, String> {
    let parsed = if let Some(ms) = text.strip_suffix("ms") {
        ms.trim().parse::<f64>().ok().map(|v| v / 1000.0)
    } else if let Some(s) = text.strip_suffix('s') {
        s.trim().parse::<f64>().ok()
    } else {
        text.parse::<f64>().ok().map(|v| v / 1000.0)
    };
    let seconds = parsed
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("{name}={text:?} is not a duration such as 300ms or 2s"))?;
    let value = Duration::from_secs_f64(seconds);
    if value > MAX_DELAY {
        return Err(format!(
            "{name}={text} exceeds the limit of {}s",
            MAX_DELAY.as_secs()
        ));
    }
    Ok(value)
}

fn rate(name: &str, text: &str) -> Result<f64, String> {
    let value = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok().map(|v| v / 100.0),
        None => text.parse::<f64>().ok(),
    };
    value
        .filter(|v| (0.0..=1.0).contains(v))
        .ok_or_else(|| format!("{name}={text:?} is not a rate such as 5% or 0.05"))
}

impl ChaosSpec {
    /// Parses `latency=300ms,jitter=50ms,error=5%,status=503,drop=1%,slow=2s,seed=42`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut spec = Self {
            status: 503,
            ..Self::default()
        };
        for part in text
            .split([',', ';'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (name, value) = part
                .split_once('=')
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
                .ok_or_else(|| format!("{part:?} is not name=value; options: {OPTIONS}"))?;
            match name.as_str() {
                "latency" => spec.latency = duration(&name, value)?,
                "jitter" => spec.jitter = duration(&name, value)?,
                "error" => spec.error_rate = rate(&name, value)?,
                "drop" => spec.drop_rate = rate(&name, value)?,
                "slow" => spec.slow = duration(&name, value)?,
                "status" => {
                    spec.status = value
                        .parse::<u16>()
                        .ok()
                        .filter(|s| (400..=599).contains(s))
                        .ok_or_else(|| {
                            format!("status={value:?} must be an error status, 400 to 599")
                        })?;
                }
                "seed" => {
                    spec.seed = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| format!("seed={value:?} must be a whole number"))?,
                    );
                }
                other => {
                    return Err(format!(
                        "unknown chaos option {other:?}; options: {OPTIONS}"
                    ));
                }
            }
        }
        Ok(spec)
    }

    /// The outcome for the `draw`-th chaos request of a sandbox (seeded
    /// specs), or for a fresh random draw.
    pub fn decide(&self, draw: u64) -> ChaosEffect {
        let mut rng = match self.seed {
            Some(seed) => Xoshiro256PlusPlus::seed_from_u64(sbx_spec::synth::seed_from([
                &seed.to_le_bytes()[..],
                &draw.to_le_bytes(),
            ])),
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                Xoshiro256PlusPlus::seed_from_u64(sbx_spec::synth::seed_from([
                    &nanos.to_le_bytes()[..],
                    &draw.to_le_bytes(),
                ]))
            }
        };
        let jitter = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.jitter.mul_f64(rng.random::<f64>())
        };
        let roll: f64 = rng.random();
        ChaosEffect {
            delay: self.latency + jitter,
            drop: roll < self.drop_rate,
            error: (roll >= self.drop_rate && roll < self.drop_rate + self.error_rate)
                .then_some(self.status),
            slow: self.slow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_option_and_names_mistakes() {
        let spec = ChaosSpec::parse(
            "latency=300ms, jitter=0.05s,error=5%,status=500,drop=0.01,slow=2s,seed=42",
        )
        .unwrap();
        assert_eq!(spec.latency, Duration::from_millis(300));
        assert_eq!(spec.jitter, Duration::from_millis(50));
        assert_eq!(
            (spec.error_rate, spec.drop_rate, spec.status, spec.seed),
            (0.05, 0.01, 500, Some(42))
        );
        for (bad, says) in [
            ("latency=fast", "latency"),
            ("error=150%", "error"),
            ("status=200", "status"),
            ("explode=1", "unknown chaos option"),
            ("latency", "name=value"),
            ("slow=3600s", "limit"),
        ] {
            let error = ChaosSpec::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn seeded_rates_hold_and_repeat() {
        let spec = ChaosSpec::parse("error=10%,drop=2%,seed=7").unwrap();
        let outcomes: Vec<ChaosEffect> = (0..10_000).map(|n| spec.decide(n)).collect();
        let errors = outcomes.iter().filter(|o| o.error.is_some()).count();
        let drops = outcomes.iter().filter(|o| o.drop).count();
        assert!((900..1100).contains(&errors), "{errors}");
        assert!((140..260).contains(&drops), "{drops}");
        assert_eq!(
            outcomes[..50],
            (0..50).map(|n| spec.decide(n)).collect::<Vec<_>>()[..]
        );
    }
}
