//! The failed-authentication limit: each client address may present a wrong, expired or
//! revoked token a burst of times, then at a slow rate; beyond it, its requests carrying a
//! token are answered `429` with `Retry-After` without the token being checked, so guessing
//! gets nowhere. Counting is governor's keyed GCRA limiter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Addresses remembered at most (by the limiter and by the refusal list); past it, those whose
/// state is back to fresh are forgotten, so memory stays bounded whatever the callers.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Failed authentications per client address.
pub struct FailureLimiter {
    /// Failures allowed per address: a burst, then a steady rate.
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses over their limit and until when. A std mutex: held for a map operation,
    /// never across an await.
    refused_until: Mutex<HashMap<IpAddr, Instant>>,
}

impl std::fmt::Debug for FailureLimiter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("FailureLimiter").finish_non_exhaustive()
    }
}

impl FailureLimiter {
    /// `burst` failures at once per address, then `per_minute`.
    pub fn new(burst: NonZeroU32, per_minute: NonZeroU32) -> Self {
        FailureLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            refused_until: Mutex::new(HashMap::new()),
        }
    }

    /// How long `client` is still refused, if it is.
    pub fn refused_for(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let refused = self.refused_until.lock().expect("failure limiter poisoned");
        refused.get(&client).and_then(|until| until.checked_duration_since(now)).filter(|wait| !wait.is_zero())
    }

    /// Records a failure of `client`; returns how long it is refused when this one is over
    /// its limit.
    pub fn failed(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        if self.limiter.len() >= MAX_TRACKED_CLIENTS {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let wait = match self.limiter.check_key(&client) {
            Ok(()) => return None,
            Err(not_until) => not_until.wait_time_from(self.limiter.clock().now()).max(Duration::from_millis(1)),
        };
        let mut refused = self.refused_until.lock().expect("failure limiter poisoned");
        if refused.len() >= MAX_TRACKED_CLIENTS {
            refused.retain(|_, until| *until > now);
        }
        refused.insert(client, now + wait);
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_of_failures_then_is_refused() {
        let limiter = FailureLimiter::new(NonZeroU32::new(3).unwrap(), NonZeroU32::new(1).unwrap());
        let (guesser, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.failed(guesser, now), None);
            assert_eq!(limiter.refused_for(guesser, now), None);
        }
        let wait = limiter.failed(guesser, now).expect("the fourth failure is over the burst");
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
        assert!(limiter.refused_for(guesser, now).is_some());
        assert_eq!(limiter.refused_for(guesser, now + wait), None, "the refusal ends");
        assert_eq!(limiter.refused_for(other, now), None, "addresses are limited apart");
        assert_eq!(limiter.failed(other, now), None);
    }
}
