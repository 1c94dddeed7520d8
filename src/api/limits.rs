//! Limits that keep one caller from crowding out the others: a per-client rate limit on job
//! launches (governor's keyed GCRA limiter, as for failed authentications), and a bound on the
//! event streams open for one job.
//!
//! The stream bound stays hand-written: it is keyed by job and its place must be held until the
//! stream's body is dropped, while tower's `ConcurrencyLimit` is one bound for a whole service and
//! frees its permit as soon as the response head is ready.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::api::state::AppState;
use crate::error::ApiError;
use crate::jobs::JobId;

/// Clients remembered by the launch limiter; past it, those whose allowance is back to a full
/// burst (what a new client gets anyway) are forgotten, so memory stays bounded whatever the
/// callers.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// The longest a client's whole burst may take to come back: governor counts in `u64`
/// nanoseconds, so a vanishing rate is held to this rather than overflowing.
const LONGEST_REFILL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// governor's keyed limiter on a [`HashMap`] (default features off: no `dashmap`), timed by `C`.
type KeyedLimiter<C> = RateLimiter<IpAddr, HashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A rate limit per client address for `POST /experiments/{kind}`: a burst at once, then a
/// steady rate (governor's GCRA, the token bucket's equivalent).
pub struct LaunchLimiter<C: Clock = DefaultClock> {
    /// `None`: no limit.
    limiter: Option<KeyedLimiter<C>>,
}

impl<C: Clock> std::fmt::Debug for LaunchLimiter<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LaunchLimiter").field("limited", &self.limiter.is_some()).finish_non_exhaustive()
    }
}

impl LaunchLimiter {
    /// `per_second` launches per second per client, up to `burst` at once; 0 turns it off.
    pub fn new(per_second: f64, burst: u32) -> Self {
        LaunchLimiter::with_clock(per_second, burst, DefaultClock::default())
    }
}

impl<C: Clock> LaunchLimiter<C> {
    /// As [`LaunchLimiter::new`], timed by `clock`.
    fn with_clock(per_second: f64, burst: u32, clock: C) -> Self {
        LaunchLimiter { limiter: quota(per_second, burst).map(|quota| RateLimiter::hashmap_with_clock(quota, clock)) }
    }

    /// Takes one launch of `client`'s allowance, or says how long until one is available.
    pub fn try_acquire(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() >= MAX_TRACKED_CLIENTS {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(&client).map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }
}

/// The quota for `per_second` launches after a burst of `burst`; `None` for no limit (a rate
/// of zero, or one too fast to count in nanoseconds).
fn quota(per_second: f64, burst: u32) -> Option<Quota> {
    if !(per_second.is_finite() && per_second > 0.0) {
        return None;
    }
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let period = Duration::try_from_secs_f64(per_second.recip()).unwrap_or(LONGEST_REFILL).min(LONGEST_REFILL / burst.get());
    Quota::with_period(period).map(|quota| quota.allow_burst(burst))
}

/// The address a request came from, recorded for each connection the server accepts
/// (see [`crate::api::connections`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub SocketAddr);

/// Middleware for the launch route: `429` with `Retry-After` once a client's bucket is empty.
pub async fn limit_launches(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<ClientAddress>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(ClientAddress(address))| address.ip());
    match state.limits.launches.try_acquire(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => ApiError::TooManyRequests {
            reason: format!("too many launches from {client}; at most {} per second", state.config.launch_rate),
            retry_after_s: retry_after_seconds(wait),
        }
        .into_response(),
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up so a client that waits that long is
/// admitted, and at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Counts the event streams open per job.
#[derive(Debug)]
pub struct SubscriberLimit {
    /// The most streams one job may have open.
    per_job: usize,
    /// A std mutex: held to bump a counter, never across an await.
    open: Mutex<HashMap<JobId, usize>>,
}

/// One open stream; closing it (dropping the guard) frees its place.
#[derive(Debug)]
pub struct Subscription {
    limit: Arc<SubscriberLimit>,
    job: JobId,
}

impl SubscriberLimit {
    /// At most `per_job` streams per job.
    pub fn new(per_job: usize) -> Self {
        SubscriberLimit { per_job, open: Mutex::new(HashMap::new()) }
    }

    /// A place for one more stream of `job`, or `None` when it has `per_job` already.
    pub fn try_open(self: &Arc<Self>, job: JobId) -> Option<Subscription> {
        let mut open = self.open.lock().expect("subscriber limit poisoned");
        let count = open.entry(job).or_default();
        if *count >= self.per_job {
            return None;
        }
        *count += 1;
        Some(Subscription { limit: self.clone(), job })
    }

    /// Streams open for `job` now.
    #[cfg(test)]
    fn open_for(&self, job: JobId) -> usize {
        self.open.lock().expect("subscriber limit poisoned").get(&job).copied().unwrap_or(0)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock().expect("subscriber limit poisoned");
        if let Some(count) = open.get_mut(&self.job) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.job);
            }
        }
    }
}

/// The limits of one server.
#[derive(Debug)]
pub struct Limits {
    /// Launches per client.
    pub launches: LaunchLimiter,
    /// Event streams per job.
    pub subscribers: Arc<SubscriberLimit>,
}

#[cfg(test)]
mod tests {
    use super::*;

    use governor::clock::FakeRelativeClock;

    #[test]
    fn a_client_gets_its_burst_then_the_rate() {
        let clock = FakeRelativeClock::default();
        let limiter = LaunchLimiter::with_clock(2.0, 3, clock.clone());
        let (alice, bob) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert!(limiter.try_acquire(alice).is_ok());
        }
        assert_eq!(limiter.try_acquire(alice), Err(Duration::from_millis(500)));
        assert!(limiter.try_acquire(bob).is_ok(), "clients are limited apart");
        clock.advance(Duration::from_millis(200));
        assert_eq!(limiter.try_acquire(alice), Err(Duration::from_millis(300)), "the wait counts down");
        clock.advance(Duration::from_millis(300));
        assert!(limiter.try_acquire(alice).is_ok());
        clock.advance(Duration::from_millis(100));
        assert!(limiter.try_acquire(alice).is_err());
    }

    #[test]
    fn a_rate_of_zero_never_limits() {
        let limiter = LaunchLimiter::new(0.0, 1);
        let client = IpAddr::from([127, 0, 0, 1]);
        assert!((0..100).all(|_| limiter.try_acquire(client).is_ok()));
    }

    #[test]
    fn rates_too_slow_or_too_fast_to_count_stay_usable() {
        assert!(quota(f64::NAN, 1).is_none());
        assert!(quota(-1.0, 1).is_none());
        assert!(quota(1e12, 1).is_none(), "faster than a nanosecond per launch is no limit");
        let slowest = quota(1e-300, u32::MAX).expect("a vanishing rate still limits");
        assert!(slowest.replenish_interval() * u32::MAX <= LONGEST_REFILL);
    }

    #[test]
    fn forgotten_clients_come_back_with_a_full_burst() {
        let clock = FakeRelativeClock::default();
        let limiter = LaunchLimiter::with_clock(1.0, 2, clock.clone());
        for last in 0..=u8::MAX {
            for client in 0..40u8 {
                assert!(limiter.try_acquire(IpAddr::from([10, last, client, 1])).is_ok());
            }
        }
        let tracked = limiter.limiter.as_ref().unwrap().len();
        assert_eq!(tracked, 256 * 40);
        clock.advance(Duration::from_secs(3));
        assert!(limiter.try_acquire(IpAddr::from([10, 0, 0, 2])).is_ok());
        assert_eq!(limiter.limiter.as_ref().unwrap().len(), 1, "clients back to a full burst are forgotten");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(300)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn stream_places_are_freed_when_streams_close() {
        let limit = Arc::new(SubscriberLimit::new(2));
        let job: JobId = uuid::Uuid::now_v7();
        let first = limit.try_open(job).unwrap();
        let _second = limit.try_open(job).unwrap();
        assert!(limit.try_open(job).is_none());
        drop(first);
        assert_eq!(limit.open_for(job), 1);
        assert!(limit.try_open(job).is_some());
    }
}
