//! Merging the shards of a sharded job: their live progress into one snapshot, and their reports
//! into one, exactly for every count and every latency percentile.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::ShardSummary;
use crate::experiments::ExperimentError;
use crate::experiments::http_fanout::params::FanoutParams;
use crate::experiments::http_fanout::report::{FanoutProgress, FanoutReport, SecondStats, per_second, ratio};
use crate::jobs::{Job, JobStatus};
use crate::stats::{LatencySummary, add_recorded_values, latency_histogram, log_buckets, millis};

/// The shards' latest snapshots as one: counts and rates summed, `p50_ms` and `p99_ms` the
/// highest of the shards' (exact percentiles come with the report).
pub(super) fn progress(children: &[Job], started: Instant, total: Option<u64>) -> FanoutProgress {
    let snapshots: Vec<FanoutProgress> = children
        .iter()
        .filter_map(|child| child.progress.clone())
        .filter_map(|progress| serde_json::from_value(progress).ok())
        .collect();
    let sum = |field: fn(&FanoutProgress) -> u64| snapshots.iter().map(field).sum::<u64>();
    let highest = |field: fn(&FanoutProgress) -> f64| snapshots.iter().map(field).fold(0.0, f64::max);
    let running = |child: &&Job| child.status == JobStatus::Running;
    let live = snapshots.len() == children.iter().filter(running).count();
    FanoutProgress {
        completed: sum(|snapshot| snapshot.completed),
        total,
        in_flight: sum(|snapshot| snapshot.in_flight),
        errors: sum(|snapshot| snapshot.errors),
        dropped: sum(|snapshot| snapshot.dropped),
        current_rps: if live { snapshots.iter().map(|snapshot| snapshot.current_rps).sum() } else { 0.0 },
        p50_ms: highest(|snapshot| snapshot.p50_ms),
        p99_ms: highest(|snapshot| snapshot.p99_ms),
        elapsed_ms: millis(started.elapsed()),
        last_second: None,
    }
}

/// The shards' reports as one report of the whole job.
pub(super) fn reports(params: &FanoutParams, children: &[Job]) -> Result<FanoutReport, ExperimentError> {
    let shards: Vec<(&Job, FanoutReport)> = children
        .iter()
        .map(|child| {
            let result = child.result.clone().ok_or_else(|| missing(child, "a report"))?;
            let report: FanoutReport = serde_json::from_value(result).map_err(|error| missing(child, &error.to_string()))?;
            Ok((child, report))
        })
        .collect::<Result<_, ExperimentError>>()?;
    let (mut latency, mut service_time) = (latency_histogram(), latency_histogram());
    for (child, report) in &shards {
        let recorded = report.recorded.as_ref().ok_or_else(|| missing(child, "recorded latencies"))?;
        add_recorded_values(&mut latency, &recorded.latency);
        add_recorded_values(&mut service_time, &recorded.service_time);
    }
    let sum = |field: fn(&FanoutReport) -> u64| shards.iter().map(|(_, report)| field(report)).sum::<u64>();
    let status_counts = sum_counts(shards.iter().map(|(_, report)| &report.status_counts));
    let error_counts = sum_counts(shards.iter().map(|(_, report)| &report.error_counts));
    let requests = sum(|report| report.requests);
    let failed_statuses: u64 = status_counts
        .iter()
        .filter(|(status, _)| status.parse::<u16>().is_ok_and(|status| status >= 400))
        .map(|(_, count)| count)
        .sum();
    let elapsed = wall_time(&shards);
    let target_rps = shards.iter().map(|(_, report)| report.target_rps).sum::<Option<f64>>();
    Ok(FanoutReport {
        model: shards.first().map(|(_, report)| report.model).ok_or_else(|| ExperimentError::Internal("no shards".into()))?,
        requests,
        responses: sum(|report| report.responses),
        dropped: sum(|report| report.dropped),
        error_rate: ratio(error_counts.values().sum::<u64>() + failed_statuses, requests),
        status_counts,
        error_counts,
        elapsed_ms: millis(elapsed),
        achieved_rps: per_second(requests, elapsed),
        target_rps,
        latency: LatencySummary::from_micros(&latency),
        service_time: LatencySummary::from_micros(&service_time),
        histogram: log_buckets(&latency),
        series: merge_series(shards.iter().map(|(_, report)| report.series.as_slice())),
        connections_opened: sum(|report| report.connections_opened),
        max_connections: params.max_connections,
        bytes_sent: sum(|report| report.bytes_sent),
        bytes_received: sum(|report| report.bytes_received),
        thresholds: Vec::new(),
        shards: Some(
            shards
                .iter()
                .map(|(child, report)| ShardSummary {
                    job_id: child.id,
                    replica: child.replica.clone(),
                    requests: report.requests,
                    achieved_rps: report.achieved_rps,
                })
                .collect(),
        ),
        recorded: None,
    })
}

fn missing(child: &Job, what: &str) -> ExperimentError {
    ExperimentError::Internal(format!("shard {} has no usable report: {what}", child.id))
}

fn sum_counts<'a>(maps: impl Iterator<Item = &'a BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut total = BTreeMap::new();
    for map in maps {
        for (key, count) in map {
            *total.entry(key.clone()).or_insert(0) += count;
        }
    }
    total
}

/// From the first shard's start to the last shard's end.
fn wall_time(shards: &[(&Job, FanoutReport)]) -> std::time::Duration {
    let starts: Vec<_> = shards.iter().filter_map(|(child, _)| child.started_at).collect();
    let Some(first) = starts.iter().min().copied() else {
        return std::time::Duration::ZERO;
    };
    let end_ms = shards
        .iter()
        .filter_map(|(child, report)| {
            let offset_ms = (child.started_at? - first).num_microseconds()? as f64 / 1000.0;
            Some(offset_ms + report.elapsed_ms)
        })
        .fold(0.0, f64::max);
    std::time::Duration::from_secs_f64(end_ms / 1000.0)
}

/// The shards' time series second by second: requests and errors summed, p50 and p99 the
/// highest of the shards'.
fn merge_series<'a>(series: impl Iterator<Item = &'a [SecondStats]>) -> Vec<SecondStats> {
    let mut merged: Vec<SecondStats> = Vec::new();
    for seconds in series {
        for (index, second) in seconds.iter().enumerate() {
            if merged.len() <= index {
                merged.push(SecondStats { second: index as u64 + 1, requests: 0, errors: 0, p50_ms: 0.0, p99_ms: 0.0 });
            }
            let slot = &mut merged[index];
            slot.requests += second.requests;
            slot.errors += second.errors;
            slot.p50_ms = slot.p50_ms.max(second.p50_ms);
            slot.p99_ms = slot.p99_ms.max(second.p99_ms);
        }
    }
    merged
}
