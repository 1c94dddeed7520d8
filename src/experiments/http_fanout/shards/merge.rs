//! Merging the shards of a sharded job: their live progress into one snapshot, and their reports
//! into one, exactly for every count and every latency percentile.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::ShardSummary;
use crate::cpu::{CpuScope, CpuUsage};
use crate::experiments::ExperimentError;
use crate::experiments::http_fanout::breakdown::{EndpointProgress, EndpointStats, endpoint_histogram};
use crate::experiments::http_fanout::params::FanoutParams;
use crate::experiments::http_fanout::report::{FanoutProgress, FanoutReport, SecondStats, per_second, ratio};
use crate::jobs::{Job, JobStatus};
use crate::stats::{LatencySummary, add_recorded_values, latency_histogram, log_buckets, millis};

/// A shard's report, beside its job.
type ShardReport<'a> = (&'a Job, FanoutReport);

/// The shards' latest snapshots as one: counts and rates summed, `p50_ms` and `p99_ms` the
/// highest of the shards' (exact percentiles come with the report).
pub(super) fn progress(children: &[Job], started: Instant, total: Option<u64>) -> FanoutProgress {
    let snapshots: Vec<FanoutProgress> =
        children.iter().filter_map(|child| child.progress.clone()).filter_map(|progress| serde_json::from_value(progress).ok()).collect();
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
        endpoints: live_endpoints(&snapshots),
    }
}

/// The shards' live endpoint figures as one: counts summed, percentiles the highest of the
/// shards'; none unless every snapshot has them for the same endpoints.
fn live_endpoints(snapshots: &[FanoutProgress]) -> Option<Vec<EndpointProgress>> {
    let mut merged: Option<Vec<EndpointProgress>> = None;
    for endpoints in snapshots.iter().map(|snapshot| snapshot.endpoints.as_ref()) {
        let endpoints = endpoints?;
        match &mut merged {
            None => merged = Some(endpoints.clone()),
            Some(merged) => {
                if merged.len() != endpoints.len() {
                    return None;
                }
                for (total, shard) in merged.iter_mut().zip(endpoints) {
                    total.requests += shard.requests;
                    total.failures += shard.failures;
                    total.p50_ms = highest(total.p50_ms, shard.p50_ms);
                    total.p99_ms = highest(total.p99_ms, shard.p99_ms);
                }
            }
        }
    }
    merged
}

/// The higher of two latencies, either of which may be missing.
fn highest(left: Option<f64>, right: Option<f64>) -> Option<f64> {
    match (left, right) {
        (Some(left), Some(right)) => Some(left.max(right)),
        (left, right) => left.or(right),
    }
}

/// The shards' reports as one report of the whole job.
pub(super) fn reports(params: &FanoutParams, children: &[Job]) -> Result<FanoutReport, ExperimentError> {
    let shards: Vec<ShardReport<'_>> = children
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
    let failed_statuses: u64 =
        status_counts.iter().filter(|(status, _)| status.parse::<u16>().is_ok_and(|status| status >= 400)).map(|(_, count)| count).sum();
    let elapsed = wall_time(&shards);
    let bytes_received = sum(|report| report.bytes_received);
    let endpoints = if shards.first().is_some_and(|(_, report)| report.endpoints.len() == 1) {
        // One endpoint: its figures are the total's.
        let only = &shards[0].1.endpoints[0];
        let label = (only.key.as_str(), only.name.as_deref(), only.method.as_str(), only.url.as_str());
        let latency = LatencySummary::from_micros(&latency);
        vec![EndpointStats::new(label, status_counts.clone(), error_counts.clone(), latency, bytes_received, elapsed)]
    } else {
        merge_endpoints(&shards, elapsed)?
    };
    let cpu = CpuUsage::sum(shards.iter().map(|(_, report)| &report.cpu), CpuScope::DedicatedThreads);
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
        bytes_received,
        endpoints,
        requests_per_cpu_second: cpu.per_cpu_second(requests),
        cpu_micros_per_request: cpu.micros_per(requests),
        cpu,
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

/// Each endpoint's figures over the shards: counts summed, latency re-recorded from each shard's
/// recorded values into one histogram, so percentiles are exact as for the total.
fn merge_endpoints(shards: &[ShardReport<'_>], elapsed: std::time::Duration) -> Result<Vec<EndpointStats>, ExperimentError> {
    let Some((_, first)) = shards.first() else {
        return Ok(Vec::new());
    };
    for (child, report) in shards {
        let same_endpoints = report.endpoints.len() == first.endpoints.len()
            && report.endpoints.iter().zip(&first.endpoints).all(|(mine, theirs)| mine.key == theirs.key);
        if !same_endpoints {
            return Err(missing(child, "its endpoints differ from the first shard's"));
        }
        if report.recorded.as_ref().is_none_or(|recorded| recorded.endpoints.len() != first.endpoints.len()) {
            return Err(missing(child, "recorded endpoint latencies"));
        }
    }
    let merged = first
        .endpoints
        .iter()
        .enumerate()
        .map(|(index, endpoint)| {
            let mut latency = endpoint_histogram();
            for (_, report) in shards {
                let recorded = report.recorded.as_ref().map_or(&[][..], |recorded| recorded.endpoints[index].as_slice());
                add_recorded_values(&mut latency, recorded);
            }
            let of_shards = || shards.iter().map(|(_, report)| &report.endpoints[index]);
            EndpointStats::new(
                (endpoint.key.as_str(), endpoint.name.as_deref(), endpoint.method.as_str(), endpoint.url.as_str()),
                sum_counts(of_shards().map(|shard| &shard.status_counts)),
                sum_counts(of_shards().map(|shard| &shard.error_counts)),
                LatencySummary::from_micros(&latency),
                of_shards().map(|shard| shard.bytes_received).sum(),
                elapsed,
            )
        })
        .collect();
    Ok(merged)
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
fn wall_time(shards: &[ShardReport<'_>]) -> std::time::Duration {
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
