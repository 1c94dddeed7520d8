//! Moving one object: generated bodies, single-part and multipart uploads (parts in parallel,
//! aborted on failure and when dropped), verified downloads and deletes. Every request holds a
//! permit of the run's semaphore, so `concurrency` bounds the requests (and bodies) in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use md5::{Digest, Md5};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use super::digest::{ObjectDigest, check_etag, hex, multipart_etag};
use super::target::classify;
use crate::cpu::CpuMeter;
use crate::experiments::ExperimentError;

/// How long aborting a multipart upload may take.
const ABORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters the progress snapshots read while objects move.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes the server acknowledged (whole objects and parts).
    pub bytes_uploaded: AtomicU64,
    /// Bytes read back.
    pub bytes_downloaded: AtomicU64,
    /// Parts the server acknowledged.
    pub parts_uploaded: AtomicU64,
}

/// What every object operation of a run shares; cheap to clone into tasks.
#[derive(Clone)]
pub struct Transfer {
    /// The shared client.
    pub client: aws_sdk_s3::Client,
    /// The endpoint, for messages.
    pub endpoint: Arc<str>,
    /// The bucket.
    pub bucket: Arc<str>,
    /// Limits requests in flight to the run's `concurrency`.
    pub requests: Arc<Semaphore>,
    /// Where aborts of dropped multipart uploads run (waited for at shutdown).
    pub cleanups: TaskTracker,
    /// Progress counters.
    pub counters: Arc<Counters>,
    /// Makes each run's bytes its own.
    pub seed: u64,
    /// Size of each object.
    pub size_bytes: u64,
    /// Part size, when objects are uploaded in parts.
    pub part_bytes: Option<u64>,
    /// The job's CPU ledger: part tasks' polls and body generation are charged to it.
    pub cpu: CpuMeter,
}

impl Transfer {
    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ExperimentError> {
        self.requests.acquire().await.map_err(|_| ExperimentError::Internal("the request semaphore closed".into()))
    }

    /// Uploads object `index` under `key`; returns its digest in ETag form, which the server's
    /// ETag matched.
    pub async fn upload(&self, index: u32, key: &str) -> Result<String, ExperimentError> {
        match self.part_bytes {
            None => self.upload_single(index, key).await,
            Some(part_bytes) => self.upload_multipart(index, key, part_bytes).await,
        }
    }

    async fn upload_single(&self, index: u32, key: &str) -> Result<String, ExperimentError> {
        let _permit = self.permit().await?;
        let (body, digest) = generate(self.seed, index, 0, self.size_bytes, &self.cpu).await?;
        let expected = hex(&digest);
        let output = self
            .client
            .put_object()
            .bucket(&*self.bucket)
            .key(key)
            .content_length(body.len() as i64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|error| classify(&format!("upload of {key}"), &self.endpoint, error))?;
        check_etag(&format!("upload of {key}"), output.e_tag(), &expected)?;
        self.counters.bytes_uploaded.fetch_add(self.size_bytes, Ordering::Relaxed);
        Ok(expected)
    }

    async fn upload_multipart(&self, index: u32, key: &str, part_bytes: u64) -> Result<String, ExperimentError> {
        let action = format!("multipart upload of {key}");
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| classify(&action, &self.endpoint, error))?;
        let upload_id = created.upload_id().ok_or_else(|| ExperimentError::Protocol(format!("{action}: no upload id")))?;
        let guard = AbortGuard { transfer: self.clone(), key: key.to_string(), upload_id: upload_id.to_string(), armed: true };
        match self.upload_parts_and_complete(index, key, upload_id, part_bytes, &action).await {
            Ok(etag) => {
                guard.disarm();
                Ok(etag)
            }
            Err(error) => {
                guard.abort_now().await;
                Err(error)
            }
        }
    }

    async fn upload_parts_and_complete(
        &self,
        index: u32,
        key: &str,
        upload_id: &str,
        part_bytes: u64,
        action: &str,
    ) -> Result<String, ExperimentError> {
        let parts = self.size_bytes.div_ceil(part_bytes);
        let mut tasks = JoinSet::new();
        for part in 1..=parts {
            let transfer = self.clone();
            let (key, upload_id) = (key.to_string(), upload_id.to_string());
            let length = part_bytes.min(self.size_bytes - (part - 1) * part_bytes);
            let cpu = transfer.cpu.clone();
            tasks.spawn(cpu.attribute(async move { transfer.upload_part(index, &key, &upload_id, part, length).await }));
        }
        let mut completed = Vec::with_capacity(parts as usize);
        while let Some(joined) = tasks.join_next().await {
            let part = joined.map_err(|error| ExperimentError::Internal(format!("{action}: a part task failed: {error}")))??;
            completed.push(part);
        }
        completed.sort_by_key(|(number, _, _)| *number);
        let expected = multipart_etag(completed.iter().map(|(_, _, digest)| digest));
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(
                completed.into_iter().map(|(number, etag, _)| CompletedPart::builder().part_number(number).e_tag(etag).build()).collect(),
            ))
            .build();
        let output = self
            .client
            .complete_multipart_upload()
            .bucket(&*self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(upload)
            .send()
            .await
            .map_err(|error| classify(action, &self.endpoint, error))?;
        check_etag(action, output.e_tag(), &expected)?;
        Ok(expected)
    }

    /// Uploads one part; returns its number, its ETag as sent back, and its MD5.
    async fn upload_part(
        &self,
        index: u32,
        key: &str,
        upload_id: &str,
        part: u64,
        length: u64,
    ) -> Result<(i32, String, [u8; 16]), ExperimentError> {
        let action = format!("part {part} of {key}");
        let number = i32::try_from(part).map_err(|_| ExperimentError::Internal(format!("{action}: part number too large")))?;
        let _permit = self.permit().await?;
        let (body, digest) = generate(self.seed, index, part, length, &self.cpu).await?;
        let output = self
            .client
            .upload_part()
            .bucket(&*self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(length as i64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|error| classify(&action, &self.endpoint, error))?;
        check_etag(&action, output.e_tag(), &hex(&digest))?;
        self.counters.bytes_uploaded.fetch_add(length, Ordering::Relaxed);
        self.counters.parts_uploaded.fetch_add(1, Ordering::Relaxed);
        Ok((number, output.e_tag().unwrap_or_default().to_string(), digest))
    }

    /// Reads `key` back and checks its length and digest against `expected` (from the upload).
    pub async fn download(&self, key: &str, expected: &str) -> Result<(), ExperimentError> {
        let action = format!("download of {key}");
        let _permit = self.permit().await?;
        let mut output = self
            .client
            .get_object()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| classify(&action, &self.endpoint, error))?;
        check_etag(&action, output.e_tag(), expected)?;
        let mut digest = ObjectDigest::new(self.part_bytes);
        let mut received = 0;
        while let Some(chunk) =
            output.body.try_next().await.map_err(|error| ExperimentError::Protocol(format!("{action}: the body broke off: {error}")))?
        {
            digest.update(&chunk);
            received += chunk.len() as u64;
            self.counters.bytes_downloaded.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let actual = digest.finish();
        if received != self.size_bytes || actual != expected {
            return Err(ExperimentError::Protocol(format!(
                "{action}: the bytes differ from the upload ({received} bytes, digest {actual}; expected {} bytes, digest {expected})",
                self.size_bytes
            )));
        }
        Ok(())
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), ExperimentError> {
        let _permit = self.permit().await?;
        self.client
            .delete_object()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| classify(&format!("delete of {key}"), &self.endpoint, error))?;
        Ok(())
    }
}

/// Aborts its multipart upload unless disarmed. Dropped with the job's future (cancel, time-out,
/// shutdown), it cannot await, so it spawns the abort on the target's cleanup tracker.
struct AbortGuard {
    transfer: Transfer,
    key: String,
    upload_id: String,
    armed: bool,
}

impl AbortGuard {
    fn disarm(mut self) {
        self.armed = false;
    }

    /// Aborts now and waits (bounded); used when the upload failed. Stays armed until the
    /// abort has answered, so a drop in the meantime still aborts.
    async fn abort_now(mut self) {
        abort(self.transfer.clone(), self.key.clone(), self.upload_id.clone()).await;
        self.armed = false;
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let abort = abort(self.transfer.clone(), std::mem::take(&mut self.key), std::mem::take(&mut self.upload_id));
            self.transfer.cleanups.spawn_on(abort, &runtime);
        }
    }
}

/// Best effort: a failure is logged, the job's own outcome is what the user sees.
async fn abort(transfer: Transfer, key: String, upload_id: String) {
    let request = transfer.client.abort_multipart_upload().bucket(&*transfer.bucket).key(&key).upload_id(&upload_id).send();
    match tokio::time::timeout(ABORT_TIMEOUT, request).await {
        Ok(Ok(_)) => tracing::debug!(%key, "multipart upload aborted"),
        Ok(Err(error)) => tracing::warn!(%key, error = %aws_sdk_s3::error::DisplayErrorContext(&error), "cannot abort a multipart upload"),
        Err(_) => tracing::warn!(%key, "aborting a multipart upload timed out"),
    }
}

/// `length` pseudo-random bytes for one part (0 for a single-part object) and their MD5,
/// generated on the blocking pool (up to 64 MiB of work), whose thread is charged to `cpu`
/// meanwhile.
async fn generate(seed: u64, index: u32, part: u64, length: u64, cpu: &CpuMeter) -> Result<(Bytes, [u8; 16]), ExperimentError> {
    let cpu = cpu.clone();
    tokio::task::spawn_blocking(move || {
        let _tracked = cpu.track_current_thread();
        let mut rng = SmallRng::seed_from_u64(seed ^ (u64::from(index) << 20) ^ part);
        let mut body = vec![0; length as usize];
        rng.fill_bytes(&mut body);
        let digest: [u8; 16] = Md5::digest(&body).into();
        (Bytes::from(body), digest)
    })
    .await
    .map_err(|error| ExperimentError::Internal(format!("generating a body failed: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_reproducible_and_distinct() {
        let cpu = CpuMeter::new();
        let (first, first_digest) = generate(7, 1, 2, 4096, &cpu).await.unwrap();
        let (again, again_digest) = generate(7, 1, 2, 4096, &cpu).await.unwrap();
        let (other, _) = generate(7, 1, 3, 4096, &cpu).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(first_digest, again_digest);
        assert_ne!(first, other);
        assert_eq!(first.len(), 4096);
    }
}
