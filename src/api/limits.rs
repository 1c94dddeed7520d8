//! Limits that keep one caller from crowding out the others: a per-client token bucket on job
//! launches, and a bound on the event streams open for one job.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::state::AppState;
use crate::error::ApiError;
use crate::jobs::JobId;

/// Clients remembered by the launch limiter; past it, full buckets are forgotten first (a full
/// bucket is what a new client gets anyway), so memory stays bounded whatever the callers.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// A token bucket per client address for `POST /experiments/{kind}`.
#[derive(Debug)]
pub struct LaunchLimiter {
    /// Tokens added per second (0: no limit).
    per_second: f64,
    /// Bucket size: launches a client may make at once.
    burst: f64,
    /// A std mutex: held for a few arithmetic operations, never across an await.
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl LaunchLimiter {
    /// `per_second` launches per second per client, up to `burst` at once; 0 turns it off.
    pub fn new(per_second: f64, burst: u32) -> Self {
        LaunchLimiter { per_second, burst: f64::from(burst.max(1)), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `client` at `now`, or says how long until one is available.
    pub fn try_acquire(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("launch limiter poisoned");
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, bucket| refilled(*bucket, now, per_second, burst) < burst);
        }
        let bucket = buckets.entry(client).or_insert(Bucket { tokens: self.burst, updated: now });
        bucket.tokens = refilled(*bucket, now, self.per_second, self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
        }
    }
}

fn refilled(bucket: Bucket, now: Instant, per_second: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * per_second).min(burst)
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
    match state.limits.launches.try_acquire(client, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => ApiError::TooManyRequests {
            reason: format!("too many launches from {client}; at most {} per second", state.config.launch_rate),
            retry_after_s: wait.as_secs().max(1),
        }
        .into_response(),
    }
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

    #[test]
    fn a_client_gets_its_burst_then_the_rate() {
        let limiter = LaunchLimiter::new(2.0, 3);
        let (alice, bob) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.try_acquire(alice, start).is_ok());
        }
        let wait = limiter.try_acquire(alice, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(limiter.try_acquire(bob, start).is_ok(), "clients have buckets of their own");
        assert!(limiter.try_acquire(alice, start + Duration::from_millis(500)).is_ok());
        assert!(limiter.try_acquire(alice, start + Duration::from_millis(600)).is_err());
    }

    #[test]
    fn a_rate_of_zero_never_limits() {
        let limiter = LaunchLimiter::new(0.0, 1);
        let client = IpAddr::from([127, 0, 0, 1]);
        assert!((0..100).all(|_| limiter.try_acquire(client, Instant::now()).is_ok()));
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
