//! The `sftp` parameters and their bounds. The target and its credentials are not parameters:
//! they come from the server's configuration only.

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{FieldErrors, Validate};

/// The most files one run may move.
pub const MAX_FILES: u32 = 1000;
/// The most bytes one run may move each way: 1 GiB.
pub const MAX_TOTAL_BYTES: u64 = 1 << 30;
/// The most files moved at once over the session.
pub const MAX_CONCURRENCY: u32 = 64;
/// The most read or write requests in flight per file.
pub const MAX_REQUESTS_IN_FLIGHT: u32 = 256;
/// The largest read or write request: what OpenSSH's server accepts (`limits@openssh.com`).
pub const MAX_BLOCK_BYTES: u32 = 261_120;
/// The longest `remote_dir`.
const MAX_REMOTE_DIR_CHARS: usize = 200;

/// Which way the files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Files are placed on the server (not timed), then downloaded and checksummed locally.
    Download,
    /// Files are uploaded, then read back from the server and checksummed.
    Upload,
    /// Files are uploaded, then downloaded and checksummed locally; both are timed.
    Both,
}

/// Parameters of an `sftp` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SftpParams {
    /// Which way the files go.
    #[serde(default = "default_direction")]
    #[schema(inline)]
    pub direction: Direction,
    /// Files to move (1 to 1000).
    #[serde(default = "default_files")]
    pub files: u32,
    /// Bytes per file; `files` × `size_bytes` is at most 1 GiB.
    #[serde(default = "default_size_bytes")]
    pub size_bytes: u64,
    /// Files moved at once over the one SFTP session (1 to 64).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Read or write requests kept in flight per file (1 to 256): the pipelining.
    #[serde(default = "default_requests_in_flight")]
    pub requests_in_flight: u32,
    /// Bytes per read or write request (1 KiB to 255 KiB).
    #[serde(default = "default_block_bytes")]
    pub block_bytes: u32,
    /// A directory under the target's directory to work in, relative (no `..`, no absolute
    /// path); created if missing. Each run works in its own directory inside it, removed at the end.
    #[serde(default)]
    pub remote_dir: Option<String>,
}

fn default_direction() -> Direction {
    Direction::Both
}
fn default_files() -> u32 {
    8
}
fn default_size_bytes() -> u64 {
    4 << 20
}
fn default_concurrency() -> u32 {
    4
}
fn default_requests_in_flight() -> u32 {
    32
}
fn default_block_bytes() -> u32 {
    64 << 10
}

impl Default for SftpParams {
    fn default() -> Self {
        SftpParams {
            direction: default_direction(),
            files: default_files(),
            size_bytes: default_size_bytes(),
            concurrency: default_concurrency(),
            requests_in_flight: default_requests_in_flight(),
            block_bytes: default_block_bytes(),
            remote_dir: None,
        }
    }
}

/// Whether `dir` is a relative path of plain names only.
pub fn is_relative_plain_path(dir: &str) -> bool {
    !dir.is_empty()
        && !dir.contains(['\\', '\0'])
        && Path::new(dir).components().all(|component| matches!(component, Component::Normal(_) | Component::CurDir))
}

impl Validate for SftpParams {
    fn validate(&self, errors: &mut FieldErrors) {
        errors.range("files", self.files, 1, MAX_FILES);
        errors.range("size_bytes", self.size_bytes, 1, MAX_TOTAL_BYTES);
        errors.range("concurrency", self.concurrency, 1, MAX_CONCURRENCY);
        errors.range("requests_in_flight", self.requests_in_flight, 1, MAX_REQUESTS_IN_FLIGHT);
        errors.range("block_bytes", self.block_bytes, 1024, MAX_BLOCK_BYTES);
        let total = self.size_bytes.saturating_mul(u64::from(self.files));
        errors.check(
            total <= MAX_TOTAL_BYTES,
            "size_bytes",
            format!("files × size_bytes must be at most {MAX_TOTAL_BYTES} bytes, got {total}"),
        );
        if let Some(dir) = &self.remote_dir {
            errors.check(
                dir.chars().count() <= MAX_REMOTE_DIR_CHARS && is_relative_plain_path(dir),
                "remote_dir",
                format!("must be a relative path of at most {MAX_REMOTE_DIR_CHARS} characters without `..`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(params: &SftpParams) -> Vec<String> {
        let mut errors = FieldErrors::default();
        params.validate(&mut errors);
        errors.0.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn remote_dir_must_stay_below_the_target_directory() {
        for dir in ["data", "a/b/c", "./x"] {
            assert!(is_relative_plain_path(dir), "{dir}");
        }
        for dir in ["", "/etc", "../up", "a/../../b", "a\\b"] {
            assert!(!is_relative_plain_path(dir), "{dir}");
        }
        let params = SftpParams { remote_dir: Some("../../etc".into()), ..SftpParams::default() };
        assert_eq!(fields(&params), ["remote_dir"]);
    }

    #[test]
    fn sizes_and_pipelining_are_bounded() {
        assert!(fields(&SftpParams::default()).is_empty());
        let params = SftpParams { files: 1000, size_bytes: 2 << 20, block_bytes: 300_000, requests_in_flight: 0, ..SftpParams::default() };
        assert_eq!(fields(&params), ["requests_in_flight", "block_bytes", "size_bytes"]);
    }
}
