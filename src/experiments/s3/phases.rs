//! The phases of an `s3` run (bucket check, upload, list, download, delete) and what each
//! reports: every object phase keeps at most `concurrency` objects in flight in a `JoinSet` the
//! phase owns, times each object, and publishes progress as it goes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::params::S3Params;
use super::target::classify;
use super::transfer::Transfer;
use crate::experiments::ExperimentError;
use crate::jobs::context::JobContext;
use crate::services::s3::S3Target;
use crate::stats::{LatencySummary, latency_histogram, millis};

/// How often progress is published while a phase runs.
const PROGRESS_PERIOD: Duration = Duration::from_millis(100);
/// The most keys a list without `upload` counts before it stops (and says so).
const MAX_LISTED_KEYS: u64 = 1_000_000;
/// The region in which a bucket is created without a location constraint.
const DEFAULT_REGION: &str = "us-east-1";

/// One object phase.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PhaseReport {
    /// Objects handled.
    pub objects: u64,
    /// Bytes moved (0 for deletes).
    pub bytes: u64,
    /// From the phase's first request to its last answer.
    pub elapsed_ms: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Objects per second.
    pub objects_per_s: f64,
    /// Time per object (for a multipart upload: from creating it to completing it).
    pub latency: LatencySummary,
}

/// The list phase.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListReport {
    /// The prefix listed.
    pub prefix: String,
    /// Keys found.
    pub objects: u64,
    /// Their total size.
    pub bytes: u64,
    /// ListObjectsV2 pages read (continuation tokens followed).
    pub pages: u64,
    /// Keys asked for per page.
    pub page_size: u32,
    /// Whether the listing stopped at 1 000 000 keys before the end.
    pub truncated: bool,
    /// From the first page request to the last answer.
    pub elapsed_ms: f64,
    /// Time per page.
    pub latency: LatencySummary,
}

/// A progress snapshot.
#[derive(Debug, Serialize)]
struct Progress {
    phase: &'static str,
    objects_done: usize,
    objects: usize,
    bytes_uploaded: u64,
    bytes_downloaded: u64,
    parts_uploaded: u64,
}

/// Makes sure the bucket exists, creating it when allowed; returns whether it was created.
pub async fn ensure_bucket(target: &S3Target, params: &S3Params) -> Result<bool, ExperimentError> {
    let action = format!("bucket {}", params.bucket);
    let missing = match target.client.head_bucket().bucket(&params.bucket).send().await {
        Ok(_) => return Ok(false),
        Err(error) if error.raw_response().is_some_and(|response| response.status().as_u16() == 404) => error,
        Err(error) => return Err(classify(&action, &target.endpoint, error)),
    };
    if !params.create_bucket {
        return Err(classify(&action, &target.endpoint, missing));
    }
    let mut create = target.client.create_bucket().bucket(&params.bucket);
    if let Some(region) = target.client.config().region().map(|region| region.as_ref()).filter(|region| *region != DEFAULT_REGION) {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build(),
        );
    }
    create.send().await.map_err(|error| classify(&format!("creating {action}"), &target.endpoint, error))?;
    Ok(true)
}

/// Uploads every key; returns the phase and each object's digest, in key order.
pub async fn upload(
    ctx: &JobContext,
    transfer: &Transfer,
    keys: &Arc<[String]>,
    concurrency: u32,
) -> Result<(PhaseReport, Vec<String>), ExperimentError> {
    let (phase, digests) = each_object(ctx, "upload", transfer, keys.len(), concurrency, |index| {
        let (transfer, keys) = (transfer.clone(), keys.clone());
        async move { transfer.upload(index as u32, &keys[index]).await }
    })
    .await?;
    Ok((phase.with_bytes(transfer.size_bytes), digests))
}

/// Reads every key back and checks it against its upload digest.
pub async fn download(
    ctx: &JobContext,
    transfer: &Transfer,
    keys: &Arc<[String]>,
    digests: &Arc<[String]>,
    concurrency: u32,
) -> Result<PhaseReport, ExperimentError> {
    let (phase, _) = each_object(ctx, "download", transfer, keys.len(), concurrency, |index| {
        let (transfer, keys, digests) = (transfer.clone(), keys.clone(), digests.clone());
        async move { transfer.download(&keys[index], &digests[index]).await }
    })
    .await?;
    Ok(phase.with_bytes(transfer.size_bytes))
}

/// Deletes every key.
pub async fn delete(ctx: &JobContext, transfer: &Transfer, keys: &Arc<[String]>, concurrency: u32) -> Result<PhaseReport, ExperimentError> {
    let (phase, _) = each_object(ctx, "delete", transfer, keys.len(), concurrency, |index| {
        let (transfer, keys) = (transfer.clone(), keys.clone());
        async move { transfer.delete(&keys[index]).await }
    })
    .await?;
    Ok(phase)
}

/// Lists `prefix` with ListObjectsV2, `page_size` keys a page, following continuation tokens.
/// With `expected` (objects, size) the listing must find exactly the run's objects.
pub async fn list(
    ctx: &JobContext,
    transfer: &Transfer,
    prefix: &str,
    page_size: u32,
    expected: Option<(u32, u64)>,
) -> Result<ListReport, ExperimentError> {
    let action = format!("listing {prefix}");
    let mut latency = latency_histogram();
    let started = Instant::now();
    let (mut objects, mut bytes, mut pages) = (0u64, 0u64, 0u64);
    let mut token: Option<String> = None;
    let truncated = loop {
        let page_started = Instant::now();
        let page = transfer
            .client
            .list_objects_v2()
            .bucket(&*transfer.bucket)
            .prefix(prefix)
            .max_keys(page_size as i32)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|error| classify(&action, &transfer.endpoint, error))?;
        latency.saturating_record(page_started.elapsed().as_micros() as u64);
        pages += 1;
        for object in page.contents() {
            objects += 1;
            bytes += object.size().unwrap_or_default().max(0) as u64;
        }
        ctx.progress(serde_json::json!({ "phase": "list", "objects_listed": objects, "pages": pages })).await;
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() || page.is_truncated() != Some(true) {
            break false;
        }
        if objects >= MAX_LISTED_KEYS {
            break true;
        }
    };
    if let Some((expected_objects, size)) = expected
        && (objects != u64::from(expected_objects) || bytes != u64::from(expected_objects) * size)
    {
        return Err(ExperimentError::Protocol(format!(
            "{action}: found {objects} objects of {bytes} bytes in all, expected {expected_objects} of {size} bytes each"
        )));
    }
    Ok(ListReport {
        prefix: prefix.to_string(),
        objects,
        bytes,
        pages,
        page_size,
        truncated,
        elapsed_ms: millis(started.elapsed()),
        latency: LatencySummary::from_micros(&latency),
    })
}

impl PhaseReport {
    fn with_bytes(mut self, size_bytes: u64) -> Self {
        self.bytes = self.objects * size_bytes;
        self.mb_per_s = self.bytes as f64 / 1e6 / (self.elapsed_ms / 1000.0).max(f64::EPSILON);
        self
    }
}

/// Runs `work(index)` for every object, at most `concurrency` at once; the first error ends the
/// phase (dropping the rest). Returns the phase (bytes not yet counted) and the results in index order.
async fn each_object<T, F, Fut>(
    ctx: &JobContext,
    phase: &'static str,
    transfer: &Transfer,
    count: usize,
    concurrency: u32,
    work: F,
) -> Result<(PhaseReport, Vec<T>), ExperimentError>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, ExperimentError>> + Send + 'static,
{
    let started = Instant::now();
    let mut latency = latency_histogram();
    let mut results: Vec<Option<T>> = std::iter::repeat_with(|| None).take(count).collect();
    let mut tasks = JoinSet::new();
    let mut next = 0;
    let mut done = 0;
    let mut ticker = tokio::time::interval(PROGRESS_PERIOD);
    let progress = |done| Progress {
        phase,
        objects_done: done,
        objects: count,
        bytes_uploaded: transfer.counters.bytes_uploaded.load(Ordering::Relaxed),
        bytes_downloaded: transfer.counters.bytes_downloaded.load(Ordering::Relaxed),
        parts_uploaded: transfer.counters.parts_uploaded.load(Ordering::Relaxed),
    };
    while done < count {
        while next < count && tasks.len() < concurrency as usize {
            let object = work(next);
            let index = next;
            tasks.spawn(ctx.cpu().attribute(async move {
                let object_started = Instant::now();
                object.await.map(|result| (index, result, object_started.elapsed()))
            }));
            next += 1;
        }
        tokio::select! {
            Some(joined) = tasks.join_next() => {
                let (index, result, elapsed) = joined
                    .map_err(|error| ExperimentError::Internal(format!("{phase}: a task failed: {error}")))??;
                latency.saturating_record(elapsed.as_micros() as u64);
                results[index] = Some(result);
                done += 1;
                ctx.progress(progress(done)).await;
            }
            _ = ticker.tick() => ctx.progress(progress(done)).await,
        }
    }
    let elapsed = started.elapsed();
    let phase = PhaseReport {
        objects: count as u64,
        bytes: 0,
        elapsed_ms: millis(elapsed),
        mb_per_s: 0.0,
        objects_per_s: count as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        latency: LatencySummary::from_micros(&latency),
    };
    Ok((phase, results.into_iter().flatten().collect()))
}
