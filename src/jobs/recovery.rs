//! Start-up repair: jobs this replica left `running` when it died are marked `interrupted` at
//! once, so nothing stays running forever (other replicas' jobs are left to their leases);
//! queued jobs stay queued and the runner dispatches them.

use crate::jobs::JobError;
use crate::store::{JobStore, StoreError};

/// Marks the jobs `replica` left running as interrupted; returns how many there were.
pub async fn repair(store: &dyn JobStore, replica: &str) -> Result<usize, StoreError> {
    let error = JobError { kind: "interrupted".into(), message: "the server stopped while the job was running".into() };
    let events = store.interrupt_orphans(replica, &error).await?;
    if !events.is_empty() {
        tracing::warn!(count = events.len(), "marked jobs left running by a previous process as interrupted");
    }
    Ok(events.len())
}
