//! `sftp`: AsyncSSH's lesson in Rust with russh + russh-sftp. Files are generated in the job's
//! sandbox, uploaded and/or downloaded over one SFTP session with `concurrency` files at a time
//! and `requests_in_flight` pipelined requests per file, checksummed on both sides, and removed
//! from the server at the end. The target comes from configuration only (`ASYNCLAB_SFTP_URL`),
//! or is the in-process server.

pub mod params;
pub mod target;
pub mod transfer;

use std::future::Future;
use std::sync::Arc;

use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::FileAttributes;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;
use utoipa::ToSchema;

use self::params::{Direction, SftpParams};
use self::transfer::{LOCAL_IO_BYTES, Pipelining, checksum_local, download, generate_local, upload};
use super::{Experiment, ExperimentError};
use crate::cpu::{CpuScope, CpuUsage};
use crate::jobs::context::JobContext;
use crate::services::Need;
use crate::stats::{LatencySummary, latency_histogram, millis};

/// The experiment.
pub struct Sftp;

/// One timed transfer phase.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransferPhase {
    /// Files moved.
    pub files: u32,
    /// Bytes moved.
    pub bytes: u64,
    /// Time from the first open to the last close.
    pub elapsed_ms: f64,
    /// Throughput, in MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// Files per second.
    pub files_per_s: f64,
    /// Per-file time, open to close.
    pub latency: LatencySummary,
}

/// The report of an `sftp` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SftpReport {
    /// The server, as `sftp://user@host:port/dir` (never a credential).
    pub target: String,
    /// Whether it was the in-process server.
    pub in_process_server: bool,
    /// The server's host key SHA256 fingerprint.
    pub host_key: String,
    /// The cipher the SSH key exchange settled on (the server takes the first of ours it
    /// supports: AES-256-GCM where it can), e.g. `aes256-gcm@openssh.com`.
    pub cipher: String,
    /// Which way the files went.
    #[schema(inline)]
    pub direction: Direction,
    /// The upload, when timed (`upload`, `both`).
    pub upload: Option<TransferPhase>,
    /// The download, when timed (`download`, `both`).
    pub download: Option<TransferPhase>,
    /// Files whose checksum matched on both sides.
    pub files_verified: u32,
    /// Bytes whose checksum matched on both sides.
    pub bytes_verified: u64,
    /// Whether the run's remote files and directory were removed.
    pub remote_cleaned: bool,
    /// The CPU the run used on the client side: the polls of the job and its file tasks on the
    /// control plane's shared runtime (SFTP framing, checksums). The SSH session's encryption
    /// runs in russh's own task, and the in-process server in its own, on that same runtime:
    /// neither can be told apart from other work, so neither is counted.
    pub cpu: CpuUsage,
}

/// A progress snapshot.
#[derive(Debug, Clone, Serialize)]
struct Progress {
    phase: &'static str,
    files_done: u32,
    files: u32,
}

impl Experiment for Sftp {
    const KIND: &'static str = "sftp";
    const SUMMARY: &'static str = "bulk SFTP upload and download (russh-sftp) with files in parallel and pipelined requests, checksummed: MB/s, files/s, per-file latency";
    type Params = SftpParams;
    type Report = SftpReport;

    fn example() -> Self::Params {
        SftpParams::default()
    }

    const NEEDS: &'static [Need] = &[Need::Sftp];

    async fn run(ctx: JobContext, params: Self::Params) -> Result<Self::Report, ExperimentError> {
        let target = ctx.services().sftp.clone().ok_or_else(|| ExperimentError::Unavailable("no SFTP target".into()))?;
        let connection = target::connect(&target).await?;
        let sftp = connection.sftp.clone();
        let host_key = connection.host_key.clone();
        let cipher = connection.cipher.clone();
        let run_dir = remote_run_dir(&target.base_dir, params.remote_dir.as_deref(), &ctx.job_id().to_string());
        make_dirs(&sftp, &run_dir).await?;
        let outcome = transfer_all(&ctx, &sftp, &params, &run_dir).await;
        let remote_cleaned = remove_run_dir(&sftp, &run_dir, params.files).await;
        connection.close().await;
        let (upload, download, files_verified, bytes_verified) = outcome?;
        Ok(SftpReport {
            target: target.describe(),
            in_process_server: target.server.is_some(),
            host_key,
            cipher,
            direction: params.direction,
            upload,
            download,
            files_verified,
            bytes_verified,
            remote_cleaned,
            cpu: ctx.cpu().usage(CpuScope::SharedRuntime),
        })
    }
}

type Phases = (Option<TransferPhase>, Option<TransferPhase>, u32, u64);

async fn transfer_all(ctx: &JobContext, sftp: &Arc<RawSftpSession>, params: &SftpParams, run_dir: &str) -> Result<Phases, ExperimentError> {
    let sandbox = ctx.sandbox().to_path_buf();
    let local = |prefix: &str, index: usize| sandbox.join(format!("{prefix}-{index:04}.bin"));
    let remote = |index: usize| format!("{run_dir}/file-{index:04}.bin");
    let pipelining = Pipelining { block_bytes: params.block_bytes, requests_in_flight: params.requests_in_flight as usize };
    let size = params.size_bytes;

    let mut sources = Vec::with_capacity(params.files as usize);
    for index in 0..params.files as usize {
        sources.push(generate_local(&local("source", index), index as u64, size).await?);
        ctx.progress(Progress { phase: "generate", files_done: index as u32 + 1, files: params.files }).await;
    }
    let upload_phase = run_phase(ctx, "upload", params, |index| {
        let (sftp, path, remote) = (sftp.clone(), local("source", index), remote(index));
        async move { upload(&sftp, &path, &remote, pipelining).await }
    })
    .await?;
    check_all("upload", &upload_phase.0, &sources)?;

    let (upload_report, download_report, verified) = match params.direction {
        Direction::Upload => {
            let read_back = run_phase(ctx, "read back", params, |index| {
                let (sftp, remote) = (sftp.clone(), remote(index));
                async move { download(&sftp, &remote, size, pipelining, None).await }
            })
            .await?;
            check_all("read back", &read_back.0, &sources)?;
            (Some(upload_phase.1), None, read_back.0.len())
        }
        Direction::Download | Direction::Both => {
            let fetched = run_phase(ctx, "download", params, |index| {
                let (sftp, remote, path) = (sftp.clone(), remote(index), local("download", index));
                async move {
                    let file = tokio::fs::File::create(&path)
                        .await
                        .map_err(|error| ExperimentError::Internal(format!("cannot create the local file: {error}")))?;
                    let mut file = tokio::io::BufWriter::with_capacity(LOCAL_IO_BYTES, file);
                    let received = download(&sftp, &remote, size, pipelining, Some(&mut file)).await?;
                    tokio::io::AsyncWriteExt::flush(&mut file)
                        .await
                        .map_err(|error| ExperimentError::Internal(format!("cannot write the local file: {error}")))?;
                    Ok(received)
                }
            })
            .await?;
            check_all("download", &fetched.0, &sources)?;
            // The local side, read back from disk after the timed phase.
            let mut on_disk = Vec::with_capacity(sources.len());
            for index in 0..sources.len() {
                on_disk.push(checksum_local(&local("download", index)).await?);
            }
            check_all("downloaded file", &on_disk, &sources)?;
            let upload_report = (params.direction == Direction::Both).then_some(upload_phase.1);
            (upload_report, Some(fetched.1), fetched.0.len())
        }
    };
    Ok((upload_report, download_report, verified as u32, verified as u64 * size))
}

/// Runs `transfer` for every file, `concurrency` at a time; returns each file's checksum and the timing.
async fn run_phase<F, Fut>(
    ctx: &JobContext,
    phase: &'static str,
    params: &SftpParams,
    transfer: F,
) -> Result<(Vec<u64>, TransferPhase), ExperimentError>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<u64, ExperimentError>> + Send + 'static,
{
    let files = params.files as usize;
    let mut checksums = vec![0; files];
    let mut latencies = latency_histogram();
    let mut running = JoinSet::new();
    let mut next = 0;
    let started = Instant::now();
    let mut done = 0;
    loop {
        while next < files && running.len() < params.concurrency as usize {
            let file = transfer(next);
            let index = next;
            running.spawn(ctx.cpu().attribute(async move {
                let file_started = Instant::now();
                (index, file.await, file_started.elapsed())
            }));
            next += 1;
        }
        let Some(joined) = running.join_next().await else { break };
        let (index, checksum, took) = joined.map_err(|error| ExperimentError::Internal(format!("{phase} task failed: {error}")))?;
        checksums[index] = checksum?;
        let _ = latencies.record(took.as_micros().max(1) as u64);
        done += 1;
        ctx.progress(Progress { phase, files_done: done, files: params.files }).await;
    }
    let elapsed = started.elapsed();
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let bytes = params.size_bytes * files as u64;
    let report = TransferPhase {
        files: params.files,
        bytes,
        elapsed_ms: millis(elapsed),
        mb_per_s: bytes as f64 / 1e6 / seconds,
        files_per_s: files as f64 / seconds,
        latency: LatencySummary::from_micros(&latencies),
    };
    ctx.milestone(serde_json::json!({ "phase": phase, "done": &report })).await;
    Ok((checksums, report))
}

fn check_all(phase: &str, got: &[u64], expected: &[u64]) -> Result<(), ExperimentError> {
    match got.iter().zip(expected).position(|(got, expected)| got != expected) {
        Some(index) => Err(ExperimentError::Protocol(format!("{phase}: checksum mismatch on file {index}"))),
        None => Ok(()),
    }
}

/// `base/remote_dir/asynclab-<job>`, with `/` separators, relative to the login directory.
fn remote_run_dir(base: &str, remote_dir: Option<&str>, job: &str) -> String {
    [base, remote_dir.unwrap_or("").trim_matches('/'), &format!("asynclab-{job}")]
        .into_iter()
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Creates each directory of `path` in turn; those that exist are fine, the last must be new.
async fn make_dirs(sftp: &RawSftpSession, path: &str) -> Result<(), ExperimentError> {
    let parts: Vec<&str> = path.split('/').collect();
    for depth in 1..parts.len() {
        let _ = sftp.mkdir(parts[..depth].join("/"), FileAttributes::empty()).await;
    }
    sftp.mkdir(path, FileAttributes::empty())
        .await
        .map(|_| ())
        .map_err(|error| ExperimentError::Protocol(format!("cannot create the remote directory {path}: {error}")))
}

/// Removes the run's files and directory; whether all of it went.
async fn remove_run_dir(sftp: &RawSftpSession, run_dir: &str, files: u32) -> bool {
    for index in 0..files {
        let _ = sftp.remove(format!("{run_dir}/file-{index:04}.bin")).await;
    }
    sftp.rmdir(run_dir).await.is_ok()
}
