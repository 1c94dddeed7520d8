//! Reading one file back in each mode, checksumming what was read.

use std::io::Read;
use std::path::PathBuf;
use std::thread::ThreadId;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::cpu::CpuMeter;

use super::checksum::Checksum;
use super::params::ReadMode;

/// What reading one file found.
#[derive(Debug, Clone)]
pub struct FileRead {
    /// The checksum of the bytes read.
    pub checksum: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines read (newlines seen, plus a last line without one).
    pub lines: u64,
    /// The blocking-pool thread that read it, in `blocking` mode.
    pub thread: Option<ThreadId>,
}

/// Reads `path` in `mode`. `file_bytes` is its expected size (to know whether the last line had
/// a newline, which `lines()` strips); `token` stops a blocking read between chunks. A blocking
/// read's thread is charged to `cpu` while it reads.
pub async fn read_file(
    mode: ReadMode,
    path: PathBuf,
    chunk_bytes: usize,
    file_bytes: u64,
    token: CancellationToken,
    cpu: CpuMeter,
) -> std::io::Result<FileRead> {
    match mode {
        ReadMode::Lines => read_lines(path, file_bytes).await,
        ReadMode::Whole => {
            let data = tokio::fs::read(&path).await?;
            let mut checksum = Checksum::default();
            checksum.update(&data);
            let lines = count_lines(&data) + u64::from(data.last().is_some_and(|byte| *byte != b'\n'));
            Ok(FileRead { checksum: checksum.finish(), bytes: checksum.bytes(), lines, thread: None })
        }
        ReadMode::Chunked => {
            let mut file = tokio::fs::File::open(&path).await?;
            let mut buffer = vec![0u8; chunk_bytes];
            let mut checksum = Checksum::default();
            let (mut lines, mut last) = (0, b'\n');
            loop {
                let read = file.read(&mut buffer).await?;
                if read == 0 {
                    break;
                }
                checksum.update(&buffer[..read]);
                lines += count_lines(&buffer[..read]);
                last = buffer[read - 1];
            }
            lines += u64::from(last != b'\n');
            Ok(FileRead { checksum: checksum.finish(), bytes: checksum.bytes(), lines, thread: None })
        }
        ReadMode::Blocking => tokio::task::spawn_blocking(move || {
            // The blocking pool's thread is the control plane's, but this stretch of it is ours.
            let _tracked = cpu.track_current_thread();
            read_blocking(&path, chunk_bytes, &token)
        })
        .await
        .map_err(|error| std::io::Error::other(format!("blocking read failed: {error}")))?,
    }
}

async fn read_lines(path: PathBuf, file_bytes: u64) -> std::io::Result<FileRead> {
    let file = tokio::fs::File::open(&path).await?;
    let mut lines = BufReader::new(file).lines();
    let mut checksum = Checksum::default();
    let mut count = 0;
    while let Some(line) = lines.next_line().await? {
        count += 1;
        checksum.update(line.as_bytes());
        // `lines()` strips the newline; every line but a shortened last one had one.
        if checksum.bytes() < file_bytes {
            checksum.update(b"\n");
        }
    }
    Ok(FileRead { checksum: checksum.finish(), bytes: checksum.bytes(), lines: count, thread: None })
}

fn read_blocking(path: &std::path::Path, chunk_bytes: usize, token: &CancellationToken) -> std::io::Result<FileRead> {
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; chunk_bytes];
    let mut checksum = Checksum::default();
    let (mut lines, mut last) = (0, b'\n');
    loop {
        if token.is_cancelled() {
            return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled"));
        }
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        checksum.update(&buffer[..read]);
        lines += count_lines(&buffer[..read]);
        last = buffer[read - 1];
    }
    lines += u64::from(last != b'\n');
    Ok(FileRead { checksum: checksum.finish(), bytes: checksum.bytes(), lines, thread: Some(std::thread::current().id()) })
}

/// Newlines in `data`.
fn count_lines(data: &[u8]) -> u64 {
    data.iter().filter(|byte| **byte == b'\n').count() as u64
}
