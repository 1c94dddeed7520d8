//! `file-io`: aiofiles' lesson in Rust. Files are written inside the job's sandbox, then read
//! back line by line (`tokio::fs` + `BufReader::lines`), whole, in chunks, and with plain
//! `std::fs` inside `spawn_blocking`; every read is checksummed against what was written. The
//! report gives MB/s and lines/s per mode and the blocking-pool threads the `blocking` mode used.

pub mod checksum;
pub mod params;
pub mod read;
mod temp;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use utoipa::ToSchema;

use self::checksum::{Checksum, fill_lines};
use self::params::{FileIoParams, ReadMode};
use self::read::read_file;
use self::temp::TempFiles;
use super::{Experiment, ExperimentError};
use crate::cpu::{CpuScope, CpuUsage};
use crate::jobs::context::JobContext;
use crate::stats::millis;

/// Bytes generated and written per write call.
const WRITE_BLOCK_BYTES: usize = 256 << 10;

/// The experiment.
pub struct FileIo;

/// How the files were written.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WritePhase {
    /// Files written.
    pub files: u32,
    /// Bytes written in all.
    pub bytes: u64,
    /// Time to generate and write them (`tokio::fs`, flushed, not fsynced).
    pub elapsed_ms: f64,
    /// Write throughput, in MB/s (10^6 bytes).
    pub mb_per_s: f64,
}

/// How one read mode did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModeReport {
    /// The mode.
    #[schema(inline)]
    pub mode: ReadMode,
    /// Bytes read.
    pub bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// Time to read every file.
    pub elapsed_ms: f64,
    /// Read throughput, in MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// Lines per second.
    pub lines_per_s: f64,
    /// Whether every file's checksum matched what was written.
    pub verified: bool,
    /// Distinct blocking-pool threads that ran the reads (`blocking` mode only: `tokio::fs`
    /// also runs on that pool, but its threads are not visible to the caller).
    pub blocking_threads: Option<usize>,
}

/// The report of a `file-io` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileIoReport {
    /// The write phase.
    #[schema(inline)]
    pub write: WritePhase,
    /// Each read mode, in the order run.
    #[schema(inline)]
    pub modes: Vec<ModeReport>,
    /// Bytes whose checksum was verified, over all modes.
    pub bytes_verified: u64,
    /// Temporary files deleted at the end (with `temp_files`).
    pub temp_files_deleted: u32,
    /// The CPU the run used: the polls of the job and its read tasks on the control plane's
    /// shared runtime (generating, checksumming and counting lines), and the blocking-pool
    /// threads while they ran `blocking` reads. The system calls `tokio::fs` runs on that pool
    /// for the other modes cannot be told apart from other jobs' and are not counted.
    pub cpu: CpuUsage,
}

/// A progress snapshot.
#[derive(Debug, Clone, Serialize)]
struct Progress {
    phase: &'static str,
    files_done: u32,
    files: u32,
}

impl Experiment for FileIo {
    const KIND: &'static str = "file-io";
    const SUMMARY: &'static str =
        "async file reads line by line vs whole vs chunked vs std::fs in spawn_blocking, in the job's sandbox: MB/s, lines/s, checksums";
    type Params = FileIoParams;
    type Report = FileIoReport;

    fn example() -> Self::Params {
        FileIoParams::default()
    }

    async fn run(ctx: JobContext, params: Self::Params) -> Result<Self::Report, ExperimentError> {
        let dir = prepare_dir(ctx.sandbox(), params.subdir.as_deref()).await?;
        let mut temp = TempFiles::default();
        let file_bytes = params.file_bytes();
        let paths: Vec<PathBuf> = (0..params.files)
            .map(|index| {
                let name = if params.temp_files { format!(".tmp-file-io-{index:04}") } else { format!("file-{index:04}.txt") };
                dir.join(name)
            })
            .collect();
        if params.temp_files {
            temp.track(paths.iter().cloned());
        }

        let started = Instant::now();
        let mut expected = Vec::with_capacity(paths.len());
        for (index, path) in paths.iter().enumerate() {
            expected.push(write_file(path, index as u64, file_bytes, params.line_bytes).await.map_err(io_error("write"))?);
            ctx.progress(Progress { phase: "write", files_done: index as u32 + 1, files: params.files }).await;
        }
        let elapsed = started.elapsed();
        let total_bytes = file_bytes * u64::from(params.files);
        let write = WritePhase {
            files: params.files,
            bytes: total_bytes,
            elapsed_ms: millis(elapsed),
            mb_per_s: per_second(total_bytes as f64 / 1e6, elapsed),
        };

        let mut modes = Vec::with_capacity(params.modes.len());
        for mode in &params.modes {
            let report = read_mode(&ctx, &params, *mode, &paths, &expected).await?;
            ctx.milestone(&report).await;
            modes.push(report);
        }
        let temp_files_deleted = temp.delete().await.map_err(io_error("delete temporary files"))?;
        let bytes_verified = modes.iter().filter(|mode| mode.verified).map(|mode| mode.bytes).sum();
        let cpu = ctx.cpu().usage(CpuScope::SharedRuntime);
        Ok(FileIoReport { write, modes, bytes_verified, temp_files_deleted, cpu })
    }
}

/// Creates the directory the files go in: the sandbox or a plain-named directory inside it,
/// refusing anything that is not a real directory there (a symlink pointing out).
async fn prepare_dir(sandbox: &Path, subdir: Option<&str>) -> Result<PathBuf, ExperimentError> {
    let Some(subdir) = subdir else { return Ok(sandbox.to_path_buf()) };
    if !params::is_plain_name(subdir) {
        return Err(ExperimentError::Refused(format!("subdir {subdir:?} is not a plain name")));
    }
    let dir = sandbox.join(subdir);
    tokio::fs::create_dir_all(&dir).await.map_err(io_error("create subdir"))?;
    let metadata = tokio::fs::symlink_metadata(&dir).await.map_err(io_error("inspect subdir"))?;
    if !metadata.is_dir() {
        return Err(ExperimentError::Refused(format!("subdir {subdir:?} is not a directory inside the sandbox")));
    }
    Ok(dir)
}

/// Writes `file_bytes` of generated lines to `path`; returns their checksum.
async fn write_file(path: &Path, seed: u64, file_bytes: u64, line_bytes: u64) -> std::io::Result<u64> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut block = vec![0u8; WRITE_BLOCK_BYTES.min(file_bytes as usize)];
    let mut checksum = Checksum::default();
    let mut offset = 0;
    while offset < file_bytes {
        let length = block.len().min((file_bytes - offset) as usize);
        fill_lines(seed, offset, line_bytes, &mut block[..length]);
        checksum.update(&block[..length]);
        file.write_all(&block[..length]).await?;
        offset += length as u64;
    }
    file.flush().await?;
    Ok(checksum.finish())
}

/// Reads every file in `mode`, `concurrency` at a time, and compares checksums.
async fn read_mode(
    ctx: &JobContext,
    params: &FileIoParams,
    mode: ReadMode,
    paths: &[PathBuf],
    expected: &[u64],
) -> Result<ModeReport, ExperimentError> {
    let started = Instant::now();
    let mut reads = JoinSet::new();
    let mut next = 0;
    let (mut bytes, mut lines, mut verified, mut done) = (0, 0, true, 0);
    let mut threads = HashSet::new();
    let file_bytes = params.file_bytes();
    loop {
        while next < paths.len() && reads.len() < params.concurrency as usize {
            let (path, token) = (paths[next].clone(), ctx.token().clone());
            let index = next;
            let chunk_bytes = params.chunk_bytes as usize;
            let cpu = ctx.cpu().clone();
            reads.spawn(ctx.cpu().attribute(async move { (index, read_file(mode, path, chunk_bytes, file_bytes, token, cpu).await) }));
            next += 1;
        }
        let Some(joined) = reads.join_next().await else { break };
        let (index, read) = joined.map_err(|error| ExperimentError::Internal(format!("read task failed: {error}")))?;
        let read = read.map_err(io_error("read"))?;
        bytes += read.bytes;
        lines += read.lines;
        verified &= read.checksum == expected[index];
        threads.extend(read.thread);
        done += 1;
        ctx.progress(Progress { phase: mode_name(mode), files_done: done, files: params.files }).await;
    }
    let elapsed = started.elapsed();
    Ok(ModeReport {
        mode,
        bytes,
        lines,
        elapsed_ms: millis(elapsed),
        mb_per_s: per_second(bytes as f64 / 1e6, elapsed),
        lines_per_s: per_second(lines as f64, elapsed),
        verified,
        blocking_threads: (mode == ReadMode::Blocking).then_some(threads.len()),
    })
}

fn mode_name(mode: ReadMode) -> &'static str {
    match mode {
        ReadMode::Lines => "lines",
        ReadMode::Whole => "whole",
        ReadMode::Chunked => "chunked",
        ReadMode::Blocking => "blocking",
    }
}

fn per_second(amount: f64, elapsed: std::time::Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 { amount / seconds } else { 0.0 }
}

fn io_error(step: &'static str) -> impl Fn(std::io::Error) -> ExperimentError {
    move |error| ExperimentError::Internal(format!("cannot {step}: {error}"))
}
