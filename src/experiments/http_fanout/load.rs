//! How a fan-out's load runs, resolved once from its parameters before the first request: the
//! load model with its cap, deadline, pacing or arrival schedule, how many workers, the time
//! limits, the protocol, and which request numbers this job sends (all, or a shard's share).
//! The run reads this plan only, never the parameters' defaults and cross-field rules again.

use std::time::Duration;

use super::params::{BusyPollMode, FanoutParams, HttpVersion, PoolMode};
use super::schedule::ArrivalSchedule;
use super::shards::RequestIndices;

/// When requests start.
#[derive(Debug, Clone)]
pub enum ModelPlan {
    /// Each worker sends its next request when the previous one is answered.
    Closed {
        /// Send no more than this many.
        cap: Option<u64>,
        /// Start none after this long.
        duration: Option<Duration>,
        /// Start at most this many per second, evenly spread.
        per_second: Option<f64>,
    },
    /// Requests arrive on a schedule whatever the server does.
    Open {
        /// When each arrives.
        schedule: ArrivalSchedule,
        /// An arrival waiting longer than this for a worker is not sent.
        pool_timeout: Option<Duration>,
    },
}

/// Everything about the load a run needs, resolved once.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Closed or open, with its limits.
    pub model: ModelPlan,
    /// Workers, each sending one request at a time: requests in flight never exceed this.
    /// Over HTTP/1.1 each owns at most one connection.
    pub workers: usize,
    /// The most connections open at once.
    pub max_connections: u32,
    /// HTTP/1.1 or HTTP/2.
    pub http_version: HttpVersion,
    /// HTTP/1.1: reuse connections (or one per request, with `Connection: close`).
    pub keep_alive: bool,
    /// One request's limit, from connecting to the last body byte.
    pub request_timeout: Duration,
    /// Opening a connection's limit.
    pub connect_timeout: Duration,
    /// How worker threads wait for answers: `busy_poll` as given, else `batched` with the own
    /// pool and `off` with the shared one; always `off` in the open model.
    pub busy_poll: BusyPollMode,
    /// The fan-out's own connections on its own threads, or the service's shared client.
    pub pool: PoolMode,
    /// Which request numbers this job sends.
    pub indices: RequestIndices,
    /// Whether this job is a shard of a sharded job (its report then carries recorded latencies).
    pub is_shard: bool,
}

impl LoadPlan {
    /// The plan of validated parameters.
    pub fn of(params: &FanoutParams) -> Self {
        let model = match params.is_open_model() {
            true => ModelPlan::Open {
                schedule: ArrivalSchedule::new(&params.stages()),
                pool_timeout: params.pool_timeout_ms.map(Duration::from_millis),
            },
            false => ModelPlan::Closed {
                cap: params.request_cap(),
                duration: params.duration_ms.map(Duration::from_millis),
                per_second: params.max_per_second,
            },
        };
        let workers = match params.http_version {
            HttpVersion::Http1 => params.concurrency.map_or(params.max_connections, |c| c.min(params.max_connections)),
            HttpVersion::Http2 => params.concurrency.unwrap_or(params.max_connections),
        };
        let request_timeout = Duration::from_millis(params.timeout_ms);
        // The open model keeps a schedule: pauses would delay it, spinning would only burn the
        // CPU its scheduler needs.
        let busy_poll = match (&model, params.busy_poll, params.pool) {
            (ModelPlan::Open { .. }, _, _) => BusyPollMode::Off,
            (ModelPlan::Closed { .. }, Some(mode), _) => mode,
            (ModelPlan::Closed { .. }, None, PoolMode::Own) => BusyPollMode::Batched,
            (ModelPlan::Closed { .. }, None, PoolMode::Shared) => BusyPollMode::Off,
        };
        LoadPlan {
            model,
            workers: workers as usize,
            max_connections: params.max_connections,
            http_version: params.http_version,
            keep_alive: params.keep_alive,
            request_timeout,
            connect_timeout: params.connect_timeout_ms.map_or(request_timeout, Duration::from_millis),
            busy_poll,
            pool: params.pool,
            indices: RequestIndices::of(params.shard),
            is_shard: params.shard.is_some(),
        }
    }

    /// How many requests the run sends, when known in advance.
    pub fn total(&self) -> Option<u64> {
        match &self.model {
            ModelPlan::Closed { cap, .. } => *cap,
            ModelPlan::Open { schedule, .. } => Some(schedule.total()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: serde_json::Value) -> LoadPlan {
        LoadPlan::of(&serde_json::from_value(json).unwrap())
    }

    #[test]
    fn defaults_and_cross_field_rules_are_resolved_once() {
        let closed =
            plan(serde_json::json!({"urls": ["http://127.0.0.1/a", "http://127.0.0.1/b"], "concurrency": 64, "max_connections": 8}));
        assert!(matches!(closed.model, ModelPlan::Closed { cap: Some(2), duration: None, per_second: None }), "{closed:?}");
        assert_eq!((closed.workers, closed.total()), (8, Some(2)), "HTTP/1.1 workers are capped by the connections");
        assert_eq!((closed.request_timeout, closed.connect_timeout), (Duration::from_secs(10), Duration::from_secs(10)));
        assert!(!closed.is_shard);
        assert_eq!(closed.busy_poll, BusyPollMode::Batched, "the closed model batches answers by default");

        let h2 = plan(serde_json::json!({"url": "http://127.0.0.1/", "count": 5, "http_version": "http2", "concurrency": 64,
                                         "connect_timeout_ms": 250}));
        assert_eq!((h2.workers, h2.connect_timeout), (64, Duration::from_millis(250)));

        let open = plan(serde_json::json!({"url": "http://127.0.0.1/", "rate": 100.0, "duration_ms": 2000, "pool_timeout_ms": 5}));
        assert_eq!(open.total(), Some(200));
        assert!(matches!(open.model, ModelPlan::Open { pool_timeout: Some(wait), .. } if wait == Duration::from_millis(5)));
        assert_eq!(open.busy_poll, BusyPollMode::Off, "the open model never pauses");
        let spinning = plan(serde_json::json!({"url": "http://127.0.0.1/", "count": 5, "busy_poll": "adaptive"}));
        assert_eq!(spinning.busy_poll, BusyPollMode::Adaptive);
        let sleeping = plan(serde_json::json!({"url": "http://127.0.0.1/", "count": 5, "busy_poll": "off"}));
        assert_eq!(sleeping.busy_poll, BusyPollMode::Off);
        let shared = plan(serde_json::json!({"url": "http://127.0.0.1/", "count": 5, "pool": "shared"}));
        assert_eq!(shared.busy_poll, BusyPollMode::Off, "the shared pool's workers run on the control plane");
        let open_spinning =
            plan(serde_json::json!({"url": "http://127.0.0.1/", "rate": 10.0, "duration_ms": 100, "busy_poll": "adaptive"}));
        assert_eq!(open_spinning.busy_poll, BusyPollMode::Off, "the open model never spins");
    }
}
