//! The workers: each owns at most one connection and sends one request at a time, taking the
//! next request from the feed — a shared counter in the closed model, the scheduler's queue in
//! the open model.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio::time::{Instant, sleep_until, timeout};

use super::busy_poll::BusyPoll;
use super::connection::{FailureKind, Response};
use super::dial::Dialer;
use super::h2::{H2Connections, Route};
use super::http1::Connection;
use super::plan::{FanoutPlan, RequestTemplate};
use super::schedule::Pacing;
use super::shards::RequestIndices;
use super::shared_pool;
use super::tally::{Measured, SharedTally};
use crate::services::http_client::SharedHttpClient;

/// A request to send: its number and when it was meant to start.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The request's number, for the plan.
    pub index: u64,
    /// When it was meant to start; latency is measured from here.
    pub intended: Instant,
}

/// Where workers take requests from.
pub enum Feed {
    /// The next request as soon as a worker is free, up to a count or a deadline.
    Closed {
        /// The next request number.
        next: AtomicU64,
        /// Stop after this many.
        cap: Option<u64>,
        /// Start none after this.
        deadline: Option<Instant>,
        /// Spread starts evenly (`max_per_second`).
        pacing: Option<Pacing>,
        /// Which request numbers this job sends (all, or a shard's share).
        indices: RequestIndices,
    },
    /// Arrivals put on the queue by the scheduler at their intended times.
    Open {
        /// Shared by the workers; a tokio mutex, as a worker holds it while it waits.
        queue: Mutex<mpsc::Receiver<Arrival>>,
        /// Arrivals that waited longer than this for a worker are not sent.
        pool_timeout: Option<Duration>,
    },
}

impl Feed {
    async fn next(&self) -> Option<Arrival> {
        match self {
            Feed::Closed { next, cap, deadline, pacing, indices } => {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if cap.is_some_and(|cap| index >= cap) {
                    return None;
                }
                let intended = pacing.map_or_else(Instant::now, |pacing| pacing.due(index));
                if deadline.is_some_and(|deadline| intended >= deadline) {
                    return None;
                }
                // Only paced requests wait: registering a timer per request costs a driver wake-up.
                if pacing.is_some() {
                    sleep_until(intended).await;
                }
                Some(Arrival { index: indices.nth(index), intended })
            }
            Feed::Open { queue, .. } => queue.lock().await.recv().await,
        }
    }
}

/// What every worker shares.
pub struct Fanout {
    /// Where requests go.
    pub plan: FanoutPlan,
    /// Opens connections (TCP, and TLS for `https`).
    pub dialer: Dialer,
    /// Where requests come from.
    pub feed: Feed,
    /// Counters and histograms.
    pub tally: SharedTally,
    /// One request's limit.
    pub request_timeout: Duration,
    /// Opening a connection's limit.
    pub connect_timeout: Duration,
    /// How requests travel.
    pub transport: Transport,
}

/// The protocol and its connections.
pub enum Transport {
    /// One connection per worker.
    Http1 {
        /// Reuse connections (otherwise one per request, with `Connection: close`).
        keep_alive: bool,
    },
    /// Connections shared by the workers, a stream per request.
    Http2(H2Connections),
    /// The service's shared client and its pool (`pool: shared`), HTTP/1.1.
    Shared(SharedHttpClient),
}

/// Sends requests until the feed runs dry, telling `busy_poll` (its thread's) of each finished one.
pub async fn run_worker(fanout: Arc<Fanout>, worker: usize, busy_poll: Option<Arc<BusyPoll>>) {
    let mut connection: Option<Connection> = None;
    // Request bytes whose path carries the request's number are written here, reused.
    let mut scratch = Vec::new();
    let mut request_timer = RequestTimer::new(fanout.request_timeout);
    while let Some(arrival) = fanout.feed.next().await {
        if let Feed::Open { pool_timeout: Some(limit), .. } = &fanout.feed
            && arrival.intended.elapsed() > *limit
        {
            fanout.tally.record_error(worker, fanout.plan.request(arrival.index).kind, FailureKind::PoolTimeout);
            continue;
        }
        let template = fanout.plan.request(arrival.index);
        fanout.tally.bytes_sent.fetch_add(template.http1.len(arrival.index) as u64, Ordering::Relaxed);
        fanout.tally.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let outcome = tokio::select! {
            biased;
            outcome = send(&fanout, worker, &mut connection, template, arrival.index, &mut scratch) => Ok(outcome),
            () = request_timer.expired(sent + fanout.request_timeout) => Err(()),
        };
        fanout.tally.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(busy_poll) = &busy_poll {
            busy_poll.request_finished();
        }
        match outcome {
            Ok(Ok(response)) => {
                let finished = Instant::now();
                fanout.tally.record_response(
                    worker,
                    template.kind,
                    Measured {
                        status: response.status,
                        latency_micros: micros(finished - arrival.intended),
                        service_micros: micros(finished - sent),
                        body_bytes: response.body_bytes,
                    },
                );
                if let Transport::Http1 { keep_alive: false } = fanout.transport {
                    connection = None;
                }
            }
            Ok(Err(failure)) => {
                connection = None;
                fanout.tally.record_error(worker, template.kind, failure);
            }
            Err(()) => {
                // The connection may still carry the unfinished response: never reuse it.
                connection = None;
                fanout.tally.record_error(worker, template.kind, FailureKind::Timeout);
            }
        }
    }
}

/// A worker's request time limit on one timer that is moved only when it fires before the
/// current request's deadline: deadlines only grow, so a timer set for an earlier request fires
/// early at worst, once per time limit, instead of being re-registered for every request.
struct RequestTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl RequestTimer {
    fn new(first_limit: Duration) -> Self {
        RequestTimer { sleep: Box::pin(tokio::time::sleep(first_limit)) }
    }

    /// Completes once `deadline` has passed.
    async fn expired(&mut self, deadline: Instant) {
        loop {
            self.sleep.as_mut().await;
            if Instant::now() >= deadline {
                return;
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// Sends request `index` of kind `template`: through the service's client with `pool: shared`;
/// over HTTP/2 on the worker's shared connection; over HTTP/1.1 on the worker's own
/// connection, opening one (or replacing one to another endpoint, or one the server closed)
/// first. The rare paths are boxed so the future moved for
/// every request stays small.
async fn send(
    fanout: &Fanout,
    worker: usize,
    connection: &mut Option<Connection>,
    template: &RequestTemplate,
    index: u64,
    scratch: &mut Vec<u8>,
) -> Result<Response, FailureKind> {
    let target = &fanout.plan.endpoints[template.endpoint];
    match &fanout.transport {
        Transport::Http2(connections) => {
            let route = Route { endpoint: template.endpoint, target, dialer: &fanout.dialer, connect_timeout: fanout.connect_timeout };
            return Box::pin(connections.exchange(worker, &route, &fanout.tally, template, index)).await;
        }
        Transport::Shared(client) => return Box::pin(shared_pool::exchange(client, target, template, index)).await,
        Transport::Http1 { .. } => {}
    }
    let reusable = connection.as_mut().is_some_and(|open| open.endpoint == template.endpoint && open.is_reusable());
    if !reusable {
        *connection = None;
        let opened = Box::pin(timeout(fanout.connect_timeout, Connection::open(template.endpoint, target, &fanout.dialer)))
            .await
            .map_err(|_| FailureKind::ConnectTimeout)??;
        fanout.tally.connections_opened.fetch_add(1, Ordering::Relaxed);
        *connection = Some(opened);
    }
    let open = connection.as_mut().expect("a connection was just ensured");
    open.exchange(template.http1.bytes(index, scratch), template.http1.head_request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_request_timer_fires_at_each_deadline_never_before() {
        let start = Instant::now();
        let mut timer = RequestTimer::new(Duration::from_millis(100));
        // Sent at 60 ms with a 100 ms limit: the timer, set for 100 ms, fires early and moves.
        tokio::time::advance(Duration::from_millis(60)).await;
        timer.expired(start + Duration::from_millis(160)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(160));
        // A request answered in time never sees its deadline.
        let answered = tokio::time::timeout(Duration::from_millis(50), timer.expired(start + Duration::from_millis(300))).await;
        assert!(answered.is_err());
        assert_eq!(start.elapsed(), Duration::from_millis(210));
        timer.expired(start + Duration::from_millis(300)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }
}
