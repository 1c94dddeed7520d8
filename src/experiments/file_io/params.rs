//! The `file-io` parameters, their bounds and the names they accept.

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{FieldErrors, Validate};

/// The most files one run may write.
pub const MAX_FILES: u32 = 1000;
/// The most bytes one run may write in total: 1 GiB of the data dir's disk.
pub const MAX_TOTAL_BYTES: u64 = 1 << 30;
/// The longest line.
pub const MAX_LINE_BYTES: u64 = 1 << 20;
/// The largest chunk of a `chunked` read.
pub const MAX_CHUNK_BYTES: u32 = 16 << 20;
/// The most files read at once.
pub const MAX_CONCURRENCY: u32 = 64;
/// The longest `subdir`.
const MAX_SUBDIR_CHARS: usize = 64;

/// How files are read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// `tokio::fs::File` + `BufReader::lines`: a line at a time.
    Lines,
    /// `tokio::fs::read`: the whole file in one call.
    Whole,
    /// `tokio::fs::File::read` into a buffer of `chunk_bytes`.
    Chunked,
    /// Plain `std::fs` reads of `chunk_bytes` inside one `spawn_blocking` per file.
    Blocking,
}

/// Parameters of a `file-io` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileIoParams {
    /// Files to write (1 to 1000).
    #[serde(default = "default_files")]
    pub files: u32,
    /// Bytes per file; `files` × `size_bytes` is at most 1 GiB. Ignored when `lines` is given.
    #[serde(default = "default_size_bytes")]
    pub size_bytes: u64,
    /// Lines per file instead of `size_bytes` (each `line_bytes` long).
    #[serde(default)]
    pub lines: Option<u64>,
    /// Bytes per line, newline included (2 to 1 MiB).
    #[serde(default = "default_line_bytes")]
    pub line_bytes: u64,
    /// How the files are read back, each mode in turn (all four when omitted).
    #[serde(default = "default_modes")]
    #[schema(inline)]
    pub modes: Vec<ReadMode>,
    /// Buffer size of the `chunked` and `blocking` reads (512 B to 16 MiB).
    #[serde(default = "default_chunk_bytes")]
    pub chunk_bytes: u32,
    /// Files read at once (1 to 64).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// A directory inside the job's sandbox to write in: one plain name (no `/`, `..`, absolute path).
    #[serde(default)]
    pub subdir: Option<String>,
    /// Write temporary files, deleted when the run ends (also on cancel), and report how many were.
    #[serde(default)]
    pub temp_files: bool,
}

fn default_files() -> u32 {
    4
}
fn default_size_bytes() -> u64 {
    4 << 20
}
fn default_line_bytes() -> u64 {
    100
}
fn default_modes() -> Vec<ReadMode> {
    vec![ReadMode::Lines, ReadMode::Whole, ReadMode::Chunked, ReadMode::Blocking]
}
fn default_chunk_bytes() -> u32 {
    64 << 10
}
fn default_concurrency() -> u32 {
    1
}

impl FileIoParams {
    /// Bytes in each file.
    pub fn file_bytes(&self) -> u64 {
        match self.lines {
            Some(lines) => lines.saturating_mul(self.line_bytes),
            None => self.size_bytes,
        }
    }
}

impl Default for FileIoParams {
    fn default() -> Self {
        FileIoParams {
            files: default_files(),
            size_bytes: default_size_bytes(),
            lines: None,
            line_bytes: default_line_bytes(),
            modes: default_modes(),
            chunk_bytes: default_chunk_bytes(),
            concurrency: default_concurrency(),
            subdir: None,
            temp_files: false,
        }
    }
}

/// Whether `name` is one plain directory name: a single normal path component.
pub fn is_plain_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!((components.next(), components.next()), (Some(Component::Normal(_)), None)) && !name.contains(['/', '\\', '\0'])
}

impl Validate for FileIoParams {
    fn validate(&self, errors: &mut FieldErrors) {
        errors.range("files", self.files, 1, MAX_FILES);
        errors.range("line_bytes", self.line_bytes, 2, MAX_LINE_BYTES);
        errors.range("chunk_bytes", self.chunk_bytes, 512, MAX_CHUNK_BYTES);
        errors.range("concurrency", self.concurrency, 1, MAX_CONCURRENCY);
        let (field, per_file) = match self.lines {
            Some(lines) => ("lines", lines),
            None => ("size_bytes", self.size_bytes),
        };
        errors.check(per_file >= 1, field, "must be at least 1");
        let total = self.file_bytes().saturating_mul(u64::from(self.files));
        errors.check(
            total <= MAX_TOTAL_BYTES,
            field,
            format!("files × bytes per file must be at most {MAX_TOTAL_BYTES} bytes, got {total}"),
        );
        errors.check(!self.modes.is_empty() && self.modes.len() <= 4, "modes", "must name 1 to 4 modes");
        let mut seen = std::collections::HashSet::new();
        errors.check(self.modes.iter().all(|mode| seen.insert(*mode)), "modes", "must not repeat a mode");
        if let Some(subdir) = &self.subdir {
            errors.check(
                subdir.chars().count() <= MAX_SUBDIR_CHARS && is_plain_name(subdir),
                "subdir",
                format!("must be one plain directory name of at most {MAX_SUBDIR_CHARS} characters (no `/`, `..` or absolute path)"),
            );
        }
    }
}
