//! The server's own measurements, rendered for `GET /metrics` in the Prometheus text format:
//! jobs by kind and status, jobs pruned by retention, events written, SSE subscribers, HTTP requests by route, and the
//! fan-out's traffic. Each application has a recorder of its own rather than the process-global
//! one, so several servers in one process (as in the tests) keep separate figures.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, with_local_recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::store::JobStatus;

const JOBS_FINISHED: &str = "asynclab_jobs_finished_total";
const JOBS_RUNNING: &str = "asynclab_jobs_running";
const JOBS_QUEUED: &str = "asynclab_jobs_queued";
const JOBS_PRUNED: &str = "asynclab_jobs_pruned_total";
const EVENTS_WRITTEN: &str = "asynclab_events_written_total";
const SSE_SUBSCRIBERS: &str = "asynclab_sse_subscribers";
const HTTP_REQUESTS: &str = "asynclab_http_requests_total";
const HTTP_DURATION: &str = "asynclab_http_request_duration_seconds";
const FANOUT_REQUESTS: &str = "asynclab_fanout_requests_total";
const FANOUT_BYTES_SENT: &str = "asynclab_fanout_bytes_sent_total";
const FANOUT_BYTES_RECEIVED: &str = "asynclab_fanout_bytes_received_total";
const WEBHOOK_ATTEMPTS: &str = "asynclab_webhook_attempts_total";

/// Upper bounds, in seconds, of the HTTP latency histogram's buckets (sub-millisecond API calls
/// up to slow launches).
const HTTP_SECONDS_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A cheap handle to the application's recorder.
#[derive(Clone)]
pub struct Meters {
    /// The recorder every measurement goes to (through the `metrics` macros, scoped to it).
    recorder: Arc<PrometheusRecorder>,
    /// Renders the recorder's state.
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Meters {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Meters").finish_non_exhaustive()
    }
}

impl Default for Meters {
    fn default() -> Self {
        Meters::new()
    }
}

impl Meters {
    /// A fresh recorder with every series described.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &HTTP_SECONDS_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let meters = Meters { recorder: Arc::new(recorder), handle };
        meters.record(|| {
            describe_counter!(JOBS_FINISHED, "Jobs that reached a terminal status, by kind and status");
            describe_gauge!(JOBS_RUNNING, "Jobs running in this process, by kind");
            describe_gauge!(JOBS_QUEUED, "Jobs waiting in the store's queue");
            describe_counter!(JOBS_PRUNED, "Finished jobs retention removed with their events (by this replica)");
            // Shown from the start, so a dashboard sees 0 rather than no series.
            counter!(JOBS_PRUNED).increment(0);
            describe_counter!(EVENTS_WRITTEN, "Job events written to the store");
            describe_gauge!(SSE_SUBSCRIBERS, "Open job event streams");
            describe_counter!(HTTP_REQUESTS, "HTTP requests by method, matched route and status");
            describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time to the response's head, by method and matched route");
            describe_counter!(FANOUT_REQUESTS, "Requests http-fanout jobs sent");
            describe_counter!(FANOUT_BYTES_SENT, Unit::Bytes, "Bytes http-fanout jobs sent");
            describe_counter!(FANOUT_BYTES_RECEIVED, Unit::Bytes, "Bytes http-fanout jobs received");
            describe_counter!(WEBHOOK_ATTEMPTS, "Job-finished webhook attempts, by outcome (delivered, retry, failed)");
        });
        meters
    }

    /// Runs `measure` with this application's recorder as the `metrics` macros' target.
    pub(crate) fn record(&self, measure: impl FnOnce()) {
        with_local_recorder(self.recorder.as_ref(), measure);
    }

    /// A job of `kind` started running here.
    pub fn job_started(&self, kind: &str) {
        let kind = kind.to_string();
        self.record(|| gauge!(JOBS_RUNNING, "kind" => kind).increment(1.0));
    }

    /// A job of `kind` ended with `status`; `ran` when it had started here.
    pub fn job_ended(&self, kind: &str, status: JobStatus, ran: bool) {
        let kind = kind.to_string();
        self.record(|| {
            counter!(JOBS_FINISHED, "kind" => kind.clone(), "status" => status.as_str()).increment(1);
            if ran {
                gauge!(JOBS_RUNNING, "kind" => kind).decrement(1.0);
            }
        });
    }

    /// Retention removed `count` finished jobs.
    pub fn jobs_pruned(&self, count: u64) {
        self.record(|| counter!(JOBS_PRUNED).increment(count));
    }

    /// `count` job events were stored.
    pub fn events_written(&self, count: usize) {
        self.record(|| counter!(EVENTS_WRITTEN).increment(count as u64));
    }

    /// Counts an open event stream until the returned guard is dropped.
    pub fn sse_subscriber(&self) -> SubscriberGuard {
        self.record(|| gauge!(SSE_SUBSCRIBERS).increment(1.0));
        SubscriberGuard { meters: self.clone() }
    }

    /// One HTTP request answered.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let (method, route) = (method.to_string(), route.to_string());
        self.record(|| {
            counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()).increment(1);
            histogram!(HTTP_DURATION, "method" => method, "route" => route).record(elapsed.as_secs_f64());
        });
    }

    /// An http-fanout job's traffic, added when it ends.
    pub fn fanout_traffic(&self, requests: u64, bytes_sent: u64, bytes_received: u64) {
        self.record(|| {
            counter!(FANOUT_REQUESTS).increment(requests);
            counter!(FANOUT_BYTES_SENT).increment(bytes_sent);
            counter!(FANOUT_BYTES_RECEIVED).increment(bytes_received);
        });
    }

    /// One webhook attempt ended with `outcome`: `delivered`, `retry` or `failed`.
    pub fn webhook_attempt(&self, outcome: &'static str) {
        self.record(|| counter!(WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1));
    }

    /// Everything in the Prometheus text format, with the queue length read just now.
    pub fn render(&self, queued: u64) -> String {
        self.record(|| gauge!(JOBS_QUEUED).set(queued as f64));
        self.handle.render()
    }
}

/// Keeps one event stream counted in the subscribers gauge while it lives.
pub struct SubscriberGuard {
    meters: Meters,
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.meters.record(|| gauge!(SSE_SUBSCRIBERS).decrement(1.0));
    }
}
