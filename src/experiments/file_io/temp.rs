//! Temporary files that disappear with the run: deleted at the end, or when the run's future is
//! dropped (cancel, timeout, shutdown).

use std::path::PathBuf;

/// Paths to delete, deleted on drop unless [`TempFiles::delete`] already did.
#[derive(Debug, Default)]
pub struct TempFiles {
    paths: Vec<PathBuf>,
}

impl TempFiles {
    /// Adds files to delete.
    pub fn track(&mut self, paths: impl IntoIterator<Item = PathBuf>) {
        self.paths.extend(paths);
    }

    /// Deletes every tracked file; returns how many there were.
    pub async fn delete(&mut self) -> std::io::Result<u32> {
        let paths = std::mem::take(&mut self.paths);
        for path in &paths {
            match tokio::fs::remove_file(path).await {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        Ok(paths.len() as u32)
    }
}

impl Drop for TempFiles {
    /// A run dropped mid-way: a few unlink calls (at most `MAX_FILES`), done in place because a
    /// dropped future cannot await; files already gone are fine.
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}
