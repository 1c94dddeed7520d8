//! `s3`: aioboto3's lesson, measured with aws-sdk-s3. Objects are uploaded concurrently (in
//! parts above `multipart_threshold_bytes`, the parts of one object in parallel too), listed
//! page by page, read back and deleted, with one semaphore bounding the requests in flight. The
//! report gives MB/s (10^6 bytes per second), objects/s and per-object latency percentiles per
//! phase, and the multipart part counts.
//!
//! # Verification
//! Bodies are pseudo-random, generated per part on the blocking pool with their MD5. Every
//! single-part ETag must equal that MD5, every part's ETag its part's MD5, and every multipart
//! ETag S3's composite (`md5(part md5s)-N`). Downloads hash the bytes as they stream in, in the
//! same form, and must match the upload's digest and length. Listing must find every object.
//! The SDK's own CRC checksums are set to "when required" so any S3-compatible server works.
//!
//! # Cancellation
//! The runner fires the job's token and then drops the experiment's future at once, so work
//! inside the future cannot clean up after itself. Each open multipart upload is therefore held
//! by a guard: dropped while armed, it spawns a bounded AbortMultipartUpload on the target's
//! cleanup tracker, which shutdown waits for. An upload that fails is aborted in place before
//! the error is returned. Objects already complete when a run is cancelled stay.
//!
//! The run's objects live under `{prefix}{job id}/`; the target is built once at start-up
//! ([`crate::services::s3::S3Target`]): the configured endpoint or the in-process one.

mod digest;
mod params;
mod phases;
pub mod target;
mod transfer;

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

pub use params::{Operation, S3Params};
pub use phases::{ListReport, PhaseReport};
use transfer::{Counters, Transfer};

use super::{Experiment, ExperimentError};
use crate::cpu::{CpuScope, CpuUsage};
use crate::jobs::context::JobContext;
use crate::services::Need;

/// The experiment.
pub struct S3;

/// How objects were uploaded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MultipartReport {
    /// Whether objects were uploaded in parts (`size_bytes` above `multipart_threshold_bytes`).
    pub multipart: bool,
    /// Size of each part but the last, when multipart.
    pub part_bytes: Option<u64>,
    /// Parts per object (1 when single-part).
    pub parts_per_object: u64,
    /// Parts the server acknowledged in total.
    pub parts_uploaded: u64,
}

/// The report of an `s3` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct S3Report {
    /// The endpoint the run talked to.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// Whether the run created the bucket.
    pub bucket_created: bool,
    /// Where the run's objects were written: `{prefix}{job id}/`.
    pub key_prefix: String,
    /// Objects per phase.
    pub objects: u32,
    /// Size of each object.
    pub size_bytes: u64,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// How objects were uploaded.
    pub multipart: MultipartReport,
    /// The upload phase, when asked for.
    pub upload: Option<PhaseReport>,
    /// The list phase, when asked for.
    pub list: Option<ListReport>,
    /// The download phase, when asked for: every object's bytes were checked.
    pub download: Option<PhaseReport>,
    /// The delete phase, when asked for.
    pub delete: Option<PhaseReport>,
    /// The CPU the run used on the client side: the polls of the job and its object and part
    /// tasks on the control plane's shared runtime (the SDK's signing, checksums, body
    /// handling), and the blocking-pool threads while they generated bodies. The HTTP
    /// connections' own tasks (hyper's, inside the SDK) cannot be told apart from other work
    /// and are not counted.
    pub cpu: CpuUsage,
}

impl Experiment for S3 {
    const KIND: &'static str = "s3";
    const SUMMARY: &'static str = "Concurrent (multipart) S3 uploads, paginated listing, verified downloads and deletes under a request semaphore: MB/s, objects/s, latency";
    type Params = S3Params;
    type Report = S3Report;

    fn example() -> S3Params {
        serde_json::from_value(serde_json::json!({})).expect("every parameter has a default")
    }

    const NEEDS: &'static [Need] = &[Need::S3];

    async fn run(ctx: JobContext, params: S3Params) -> Result<S3Report, ExperimentError> {
        let target = ctx.services().s3.clone().ok_or_else(|| ExperimentError::Unavailable("no S3 endpoint is configured".into()))?;
        if let Some(reason) = &target.unavailable {
            return Err(ExperimentError::Unavailable(reason.clone()));
        }
        let bucket_created = phases::ensure_bucket(&target, &params).await?;
        let key_prefix = format!("{}{}/", params.prefix, ctx.job_id());
        let transfer = Transfer {
            client: target.client.clone(),
            endpoint: target.endpoint.as_str().into(),
            bucket: params.bucket.as_str().into(),
            requests: Arc::new(Semaphore::new(params.concurrency as usize)),
            cleanups: target.cleanups.clone(),
            counters: Arc::new(Counters::default()),
            seed: StdRng::from_os_rng().next_u64(),
            size_bytes: params.size_bytes,
            part_bytes: params.is_multipart().then_some(params.part_bytes),
            cpu: ctx.cpu().clone(),
        };
        let keys: Arc<[String]> = (0..params.objects).map(|index| format!("{key_prefix}object-{index:05}")).collect();
        let mut report = S3Report {
            endpoint: target.endpoint.clone(),
            bucket: params.bucket.clone(),
            bucket_created,
            key_prefix: key_prefix.clone(),
            objects: params.objects,
            size_bytes: params.size_bytes,
            concurrency: params.concurrency,
            multipart: MultipartReport {
                multipart: params.is_multipart(),
                part_bytes: transfer.part_bytes,
                parts_per_object: params.parts_per_object(),
                parts_uploaded: 0,
            },
            upload: None,
            list: None,
            download: None,
            delete: None,
            // Read again once every phase has run.
            cpu: ctx.cpu().usage(CpuScope::SharedRuntime),
        };
        let mut digests: Arc<[String]> = Arc::from([]);
        if params.does(Operation::Upload) {
            let (phase, uploaded) = phases::upload(&ctx, &transfer, &keys, params.concurrency).await?;
            report.upload = Some(phase);
            digests = uploaded.into();
        }
        report.multipart.parts_uploaded = transfer.counters.parts_uploaded.load(std::sync::atomic::Ordering::Relaxed);
        if params.does(Operation::List) {
            let expected = params.does(Operation::Upload).then_some((params.objects, params.size_bytes));
            let prefix = if params.does(Operation::Upload) { key_prefix.as_str() } else { params.prefix.as_str() };
            report.list = Some(phases::list(&ctx, &transfer, prefix, params.list_page_size, expected).await?);
        }
        if params.does(Operation::Download) {
            report.download = Some(phases::download(&ctx, &transfer, &keys, &digests, params.concurrency).await?);
        }
        if params.does(Operation::Delete) {
            report.delete = Some(phases::delete(&ctx, &transfer, &keys, params.concurrency).await?);
        }
        report.cpu = ctx.cpu().usage(CpuScope::SharedRuntime);
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
