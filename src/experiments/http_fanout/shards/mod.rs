//! Sharded fan-out: a job with `shards: N` splits its load into N child jobs (`split.rs`),
//! which replicas sharing the store claim like any job, follows them while they run, and merges
//! their reports exactly (`merge.rs`): counts are summed and latencies re-recorded into one
//! HdrHistogram from each shard's recorded values.

mod merge;
mod split;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::{Instant, MissedTickBehavior, interval};
use utoipa::ToSchema;
use uuid::Uuid;

pub use self::split::{ShardOf, split, validate_sharding};
use super::breakdown;
use super::params::FanoutParams;
use super::report::FanoutReport;
use super::tally::Tally;
use crate::experiments::{Experiment, ExperimentError};
use crate::jobs::context::{JobContext, PROGRESS_INTERVAL};
use crate::jobs::{Job, JobStatus};
use crate::stats::recorded_values;

/// Which request numbers a job sends: all of them, or a shard's share (`index`, `index + of`,
/// `index + 2·of`, …), so the shards of one job never send the same request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestIndices {
    first: u64,
    step: u64,
}

impl RequestIndices {
    /// Every request, or the share of `shard`.
    pub fn of(shard: Option<ShardOf>) -> Self {
        match shard {
            Some(shard) => RequestIndices { first: u64::from(shard.index), step: u64::from(shard.of) },
            None => RequestIndices { first: 0, step: 1 },
        }
    }

    /// The request number of this job's `n`th request (from 0).
    pub fn nth(&self, n: u64) -> u64 {
        self.first + n * self.step
    }
}

/// A shard's latencies as `[value_us, count]` pairs (see [`crate::stats::recorded_values`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordedLatency {
    /// The report's `latency`.
    #[schema(value_type = Vec<Vec<u64>>)]
    pub latency: Vec<[u64; 2]>,
    /// The report's `service_time`.
    #[schema(value_type = Vec<Vec<u64>>)]
    pub service_time: Vec<[u64; 2]>,
    /// Each endpoint's latency, in the report's `endpoints` order; empty with a single
    /// endpoint, whose latency is `latency`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Vec<Vec<u64>>>)]
    pub endpoints: Vec<Vec<[u64; 2]>>,
}

impl RecordedLatency {
    /// The recorded values of the total's histograms and of each endpoint's (`kinds`, as
    /// [`KindTallies::take_merged`](breakdown::KindTallies::take_merged) gives them).
    pub fn of(total: &Tally, kinds: &[breakdown::KindTally]) -> Self {
        RecordedLatency {
            latency: recorded_values(&total.latency),
            service_time: recorded_values(&total.service_time),
            endpoints: breakdown::recorded(kinds),
        }
    }
}

/// One shard of a sharded job, in the job's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShardSummary {
    /// The shard's job.
    pub job_id: Uuid,
    /// The replica that ran it.
    pub replica: Option<String>,
    /// Requests it sent.
    pub requests: u64,
    /// Its own rate.
    pub achieved_rps: f64,
}

/// Runs a sharded job: queues the shards, gives the runner slot back (this job only waits),
/// publishes their combined progress, and merges their reports once all have succeeded. Shards
/// still running when this job stops (cancel, time limit, shutdown) are stopped too.
pub async fn run_sharded(ctx: &JobContext, params: &FanoutParams, shards: u32) -> Result<FanoutReport, ExperimentError> {
    let parts = split(params, shards)
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ExperimentError::Internal(format!("shard parameters: {error}")))?;
    let ids = ctx
        .start_children(super::HttpFanout::KIND, parts)
        .await
        .map_err(|error| ExperimentError::Unavailable(format!("cannot queue the shards: {error:#}")))?;
    let guard = ctx.stop_children_on_exit(ids.clone());
    ctx.log(json!({ "message": format!("split into {shards} shards"), "shards": ids })).await;
    ctx.release_slot();

    let started = Instant::now();
    let total = params.request_cap();
    let mut ticker = interval(PROGRESS_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let children = loop {
        ticker.tick().await;
        let children = match ctx.children().await {
            Ok(children) => children,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "cannot read the shards; trying again");
                continue;
            }
        };
        ctx.progress(merge::progress(&children, started, total)).await;
        if children.len() == ids.len() && children.iter().all(|child| child.status.is_terminal()) {
            break children;
        }
    };
    guard.disarm();
    let failed = failures(&children);
    if !failed.is_empty() {
        return Err(ExperimentError::Shard(failed.join("; ")));
    }
    merge::reports(params, &children)
}

/// What went wrong with each shard that did not succeed.
fn failures(children: &[Job]) -> Vec<String> {
    children
        .iter()
        .enumerate()
        .filter(|(_, child)| child.status != JobStatus::Succeeded)
        .map(|(index, child)| {
            let reason = child.error.as_ref().map_or("no reason recorded", |error| error.message.as_str());
            format!("shard {index} ({}) {}: {reason}", child.id, child.status.as_str())
        })
        .collect()
}
