//! What retention asks of a store: one bounded batch of pruning at a time, and the tombstones
//! pruned jobs leave so their ids answer `410 Gone` rather than `404`. The policy (which age,
//! how many, how often) belongs to `jobs::retention`; the store only applies a batch's limits.

use chrono::{DateTime, Utc};

use super::JobId;

/// The label that keeps a job from retention, as `key`, `value` (`keep=true`): how a team marks
/// a stored baseline.
pub const KEEP_LABEL: (&str, &str) = ("keep", "true");

/// The statuses a job may be pruned in: finished ones, never `queued` nor `running`.
pub const PRUNABLE_STATUSES: &str = "'succeeded', 'failed', 'cancelled', 'interrupted'";

/// One batch of pruning. A job is pruned when it finished, is not a shard (shards go with their
/// sharded job, which waits until none of them runs), does not carry [`KEEP_LABEL`], and is past
/// the age limit or the count limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneBatch {
    /// Jobs that finished before this instant are past the age limit; `None`: no age limit.
    pub finished_before: Option<DateTime<Utc>>,
    /// The newest this many finished jobs (by finish, `keep=true` ones not counted) stay; older
    /// ones are past the count limit. `None`: no count limit.
    pub keep_newest: Option<u64>,
    /// The most jobs one batch removes, oldest finish first.
    pub max_jobs: u32,
    /// The most event rows one batch removes with its jobs: jobs are taken while their events
    /// fit, but always at least one, so a single huge job still goes.
    pub max_event_rows: u64,
    /// Tombstones kept; the batch also drops up to `max_jobs` of the oldest beyond it.
    pub max_tombstones: u64,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruned {
    /// The batch ran: `jobs` sharded or single jobs removed (each left a tombstone) and
    /// `tombstones` of the oldest tombstones dropped. Both zero: nothing is left to do.
    Batch {
        /// Jobs removed with their events, labels and shards.
        jobs: u64,
        /// Tombstones dropped to keep them within `max_tombstones`.
        tombstones: u64,
    },
    /// Another replica is pruning the shared store at this moment; this one skips the round.
    Busy,
}

/// What is left of a pruned job: enough to tell a caller it existed and when it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The pruned job's id.
    pub id: JobId,
    /// Its experiment kind.
    pub kind: String,
    /// When retention removed it.
    pub pruned_at: DateTime<Utc>,
}

/// The first of `candidates` (each an id and its event rows, oldest first) whose events fit in
/// `max_event_rows`, and always the first one.
pub(crate) fn take_within<Id>(candidates: Vec<(Id, i64)>, max_event_rows: u64) -> Result<Vec<Id>, super::StoreError> {
    let mut rows = 0u64;
    let mut taken = Vec::new();
    for (id, events) in candidates {
        let events = u64::try_from(events)?;
        if !taken.is_empty() && rows.saturating_add(events) > max_event_rows {
            break;
        }
        rows = rows.saturating_add(events);
        taken.push(id);
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_jobs_while_their_events_fit_and_always_one() {
        assert_eq!(take_within(vec![("a", 300), ("b", 300), ("c", 300)], 700).unwrap(), ["a", "b"]);
        assert_eq!(take_within(vec![("huge", 5_000), ("b", 1)], 700).unwrap(), ["huge"]);
        assert_eq!(take_within(vec![("a", 10), ("b", 10)], 700).unwrap(), ["a", "b"]);
        assert!(take_within(Vec::<(&str, i64)>::new(), 700).unwrap().is_empty());
    }
}
