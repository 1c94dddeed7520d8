//! Start-up repair: jobs a dead process left `running` are marked `interrupted`, so nothing
//! stays running forever; queued jobs stay queued and the runner dispatches them.

use crate::jobs::JobError;
use crate::store::{JobStore, StoreError};

/// Marks jobs left running as interrupted; returns how many there were.
pub async fn repair(store: &dyn JobStore) -> Result<usize, StoreError> {
    let error = JobError {
        kind: "interrupted".into(),
        message: "the server stopped while the job was running".into(),
    };
    let events = store.interrupt_running(&error).await?;
    if !events.is_empty() {
        tracing::warn!(count = events.len(), "marked jobs left running by a previous process as interrupted");
    }
    Ok(events.len())
}
