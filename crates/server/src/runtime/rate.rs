//! A sandbox's rate limits (GCRA, with governor): one bucket for the whole
//! sandbox and one per key, as the project's settings mirror production's
//! published limits. Checked in the pipeline after authentication.

use std::{num::NonZeroU32, sync::Arc};

use governor::{
    DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock,
};
use sbx_engine::{RateLimited, project::RateLimits};

use crate::runtime::ids::KeyHash;

/// A bucket and the rate it was made with.
struct Bucket<L> {
    limiter: L,
    limit: u32,
    burst: u32,
}

/// A key as its rate limit knows it: 64 bits of its SHA-256 digest where
/// the key was verified (`sbx serve`), or of a keyed hash where any test
/// key passes (`sbx mock`, which computes no digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyTag(u64);

impl KeyTag {
    pub fn of_digest(digest: &KeyHash) -> Self {
        Self(digest.low_bits())
    }

    pub fn of_key(key: &str) -> Self {
        use std::hash::BuildHasher;
        static HASHER: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        Self(HASHER.get_or_init(Default::default).hash_one(key))
    }
}

#[derive(Default)]
pub struct Limiters {
    per_sandbox: Option<Bucket<DefaultDirectRateLimiter>>,
    /// Keyed by the keys that authenticated ([`KeyTag`]): at most a
    /// sandbox's keys in use.
    per_key: Option<Bucket<DefaultKeyedRateLimiter<KeyTag>>>,
    /// The sandbox's own limits these buckets were made for (they replace
    /// its revision's); `None`: the revision's.
    pub own: Option<RateLimits>,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters")
            .field("per_sandbox", &self.per_sandbox.as_ref().map(|b| b.limit))
            .field("per_key", &self.per_key.as_ref().map(|b| b.limit))
            .finish()
    }
}

fn quota(rate: sbx_engine::project::Rate) -> Option<(Quota, u32, u32)> {
    let limit = NonZeroU32::new(rate.requests_per_second)?;
    let burst = NonZeroU32::new(rate.burst())?;
    Some((
        Quota::per_second(limit).allow_burst(burst),
        limit.get(),
        burst.get(),
    ))
}

impl Limiters {
    /// Buckets for `limits` (a revision's settings, checked when compiled).
    /// Sandboxes without limits share one empty set.
    pub fn of(limits: RateLimits) -> Arc<Self> {
        static NONE: std::sync::LazyLock<Arc<Limiters>> = std::sync::LazyLock::new(Arc::default);
        if limits == RateLimits::default() {
            return NONE.clone();
        }
        Arc::new(Self::buckets(limits, None))
    }

    /// Buckets for a sandbox's own limits (kept with them, so that a new
    /// revision leaves them alone).
    pub fn own(limits: RateLimits) -> Arc<Self> {
        Arc::new(Self::buckets(limits, Some(limits)))
    }

    fn buckets(limits: RateLimits, own: Option<RateLimits>) -> Self {
        Self {
            per_sandbox: limits
                .per_sandbox
                .and_then(quota)
                .map(|(quota, limit, burst)| Bucket {
                    limiter: RateLimiter::direct(quota),
                    limit,
                    burst,
                }),
            per_key: limits
                .per_key
                .and_then(quota)
                .map(|(quota, limit, burst)| Bucket {
                    limiter: RateLimiter::keyed(quota),
                    limit,
                    burst,
                }),
            own,
        }
    }

    /// Whether keys are limited one by one (the key that authenticated is
    /// then needed).
    pub fn per_key(&self) -> bool {
        self.per_key.is_some()
    }

    /// Counts a request made with `key` (the digest of the key that
    /// authenticated, if any) against the buckets.
    pub fn check(&self, key: Option<&KeyTag>) -> Result<(), RateLimited> {
        // The key's own bucket first: a request its key may not make
        // takes nothing from the sandbox's. Each limiter's own clock is
        // read only for a refusal.
        if let (Some(bucket), Some(key)) = (&self.per_key, key)
            && let Err(not_until) = bucket.limiter.check_key(key)
        {
            let wait = not_until.wait_time_from(bucket.limiter.clock().now());
            return Err(limited("per_key", bucket.limit, bucket.burst, wait));
        }
        if let Some(bucket) = &self.per_sandbox
            && let Err(not_until) = bucket.limiter.check()
        {
            let wait = not_until.wait_time_from(bucket.limiter.clock().now());
            return Err(limited("per_sandbox", bucket.limit, bucket.burst, wait));
        }
        Ok(())
    }
}

fn limited(scope: &'static str, limit: u32, burst: u32, wait: std::time::Duration) -> RateLimited {
    RateLimited {
        scope,
        limit,
        burst,
        retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sbx_engine::project::Rate;

    #[test]
    fn a_sandbox_bucket_and_one_bucket_per_key() {
        let limits = Limiters::of(RateLimits {
            per_key: Some(Rate {
                requests_per_second: 1,
                burst: Some(2),
            }),
            per_sandbox: Some(Rate {
                requests_per_second: 1,
                burst: Some(3),
            }),
        });
        let (a, b) = (
            KeyTag::of_key("sk_test_a"),
            KeyTag::of_digest(&KeyHash::of("sk_test_b")),
        );
        assert!(limits.check(Some(&a)).is_ok());
        assert!(limits.check(Some(&a)).is_ok());
        let over = limits.check(Some(&a)).unwrap_err();
        assert_eq!((over.scope, over.limit, over.burst), ("per_key", 1, 2));
        assert!(over.retry_after_ms > 0 && over.retry_after_ms <= 1_000);
        // That refusal took nothing from the sandbox: 2 of its 3 so far.
        assert!(limits.check(Some(&b)).is_ok());
        let over = limits.check(Some(&b)).unwrap_err();
        assert_eq!(over.scope, "per_sandbox");
        assert!(Limiters::of(RateLimits::default()).check(Some(&a)).is_ok());
    }
}
