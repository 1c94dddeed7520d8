//! Retention's part of the `JobStore` contract: which finished jobs a batch removes (age, count,
//! never `keep=true`, never a queued or running job, a sharded job only once no shard runs),
//! that it removes them with their events in batches, and the bounded tombstones they leave.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{Harness, REPLICA, claimant, event, insert, new_job};
use crate::store::retention::{PruneBatch, Pruned};
use crate::store::{EventKind, Finish, Job, JobId, JobStatus, JobStore, PendingEvent};

/// A batch with room enough for every test here.
fn batch(finished_before: Option<chrono::DateTime<chrono::Utc>>, keep_newest: Option<u64>) -> PruneBatch {
    PruneBatch { finished_before, keep_newest, max_jobs: 100, max_event_rows: 10_000, max_tombstones: 1_000 }
}

/// Runs a job of `kind` (with `labels`) to success with a log event, and returns it as stored.
/// Waits a little after, so each job finishes at a distinct instant.
async fn finished(store: &dyn JobStore, kind: &str, labels: &[(&str, &str)]) -> Job {
    let mut job = new_job(kind, None);
    job.labels = labels.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
    let id = store.insert_job(job).await.unwrap().job.id;
    let (claimed, _) = store.claim_next(&claimant()).await.unwrap().expect("the job is claimed");
    assert_eq!(claimed.id, id);
    finish(store, id, 2).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    store.get_job(id).await.unwrap().unwrap()
}

/// Finishes a running job with a log event at `seq` and the status event after it.
async fn finish(store: &dyn JobStore, id: JobId, seq: i64) {
    let events = [
        event(id, seq, EventKind::Log, json!({ "line": "done" })),
        PendingEvent::status(JobStatus::Succeeded, None).sequenced(id, seq + 1),
    ];
    let finish = Finish { status: JobStatus::Succeeded, result: Some(json!({ "ok": true })), error: None };
    assert!(store.finish_job(REPLICA, id, &finish, &events).await.unwrap());
}

async fn exists(store: &dyn JobStore, id: JobId) -> bool {
    store.get_job(id).await.unwrap().is_some()
}

/// Runs batches until one finds nothing; returns the jobs removed.
async fn prune_all(store: &dyn JobStore, batch: &PruneBatch) -> u64 {
    let mut total = 0;
    loop {
        match store.prune_finished(batch).await.unwrap() {
            Pruned::Batch { jobs: 0, tombstones: 0 } => return total,
            Pruned::Batch { jobs, .. } => total += jobs,
            Pruned::Busy => panic!("nothing else prunes this store"),
        }
    }
}

pub(super) async fn prune_finished_removes_old_jobs_but_never_kept_or_unfinished_ones(harness: &Harness) {
    let store = harness.open().await;
    let store = store.as_ref();
    let old = finished(store, "old", &[("branch", "main")]).await;
    let kept = finished(store, "kept", &[("keep", "true"), ("branch", "main")]).await;
    let not_kept = finished(store, "not-kept", &[("keep", "false")]).await;
    let cancelled = insert(store, "cancelled").await;
    store.cancel_queued(cancelled.id).await.unwrap().expect("a queued job is cancelled");
    tokio::time::sleep(Duration::from_millis(3)).await;
    let recent = finished(store, "recent", &[]).await;
    let running = insert(store, "running").await;
    store.claim_next(&claimant()).await.unwrap().expect("the job is claimed");
    let queued = insert(store, "queued").await;
    let cutoff = recent.finished_at.expect("a finished job has finished_at");

    assert_eq!(prune_all(store, &batch(None, None)).await, 0, "no limit prunes nothing");
    assert_eq!(prune_all(store, &batch(Some(cutoff), None)).await, 3);
    for gone in [&old, &not_kept, &cancelled] {
        assert!(!exists(store, gone.id).await, "{} is pruned", gone.kind);
        assert!(store.events_after(gone.id, 0, 10).await.unwrap().is_empty(), "its events went with it");
        let tombstone = store.find_tombstone(gone.id).await.unwrap().expect("a pruned job leaves a tombstone");
        assert_eq!((tombstone.id, tombstone.kind.as_str()), (gone.id, gone.kind.as_str()));
        assert!(tombstone.pruned_at >= cutoff);
    }
    for stays in [&kept, &recent, &running, &queued] {
        assert!(exists(store, stays.id).await, "{} stays", stays.kind);
        assert!(store.find_tombstone(stays.id).await.unwrap().is_none());
    }
    assert_eq!(store.events_after(kept.id, 0, 10).await.unwrap().len(), 3);
    assert!(store.find_tombstone(Uuid::now_v7()).await.unwrap().is_none());

    // Everything old enough, the keep label still holds; queued and running jobs never go.
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    assert_eq!(prune_all(store, &batch(Some(later), Some(0))).await, 1);
    assert!(!exists(store, recent.id).await);
    for stays in [&kept, &running, &queued] {
        assert!(exists(store, stays.id).await, "{} stays", stays.kind);
    }
    let page = store.list_jobs(&crate::store::JobQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(page.len(), 3);
    store.close().await;
}

pub(super) async fn prune_finished_keeps_the_newest_jobs_in_small_batches(harness: &Harness) {
    let store = harness.open().await;
    let store = store.as_ref();
    let mut jobs = Vec::new();
    for index in 0..4 {
        jobs.push(finished(store, &format!("job-{index}"), &[]).await);
    }
    let kept = finished(store, "kept", &[("keep", "true")]).await;
    jobs.push(finished(store, "job-5", &[]).await);

    let small = PruneBatch { max_jobs: 2, ..batch(None, Some(2)) };
    assert_eq!(store.prune_finished(&small).await.unwrap(), Pruned::Batch { jobs: 2, tombstones: 0 }, "at most max_jobs a batch");
    assert!(!exists(store, jobs[0].id).await && !exists(store, jobs[1].id).await, "oldest first");
    assert_eq!(store.prune_finished(&small).await.unwrap(), Pruned::Batch { jobs: 1, tombstones: 0 });
    assert_eq!(store.prune_finished(&small).await.unwrap(), Pruned::Batch { jobs: 0, tombstones: 0 });
    assert!(!exists(store, jobs[2].id).await);
    for stays in [&jobs[3], &kept, &jobs[4]] {
        assert!(exists(store, stays.id).await, "{} stays: the newest two, and the kept one uncounted", stays.kind);
    }

    // Each job has three events: a batch takes jobs while their events fit, and at least one.
    let by_rows = PruneBatch { max_event_rows: 4, ..batch(None, Some(0)) };
    assert_eq!(store.prune_finished(&by_rows).await.unwrap(), Pruned::Batch { jobs: 1, tombstones: 0 });
    assert!(!exists(store, jobs[3].id).await);
    assert_eq!(store.prune_finished(&PruneBatch { max_event_rows: 6, ..by_rows }).await.unwrap(), Pruned::Batch { jobs: 1, tombstones: 0 });
    assert!(exists(store, kept.id).await);
    store.close().await;
}

pub(super) async fn prune_finished_removes_a_sharded_job_with_its_shards_once_none_runs(harness: &Harness) {
    let store = harness.open().await;
    let store = store.as_ref();
    let parent = insert(store, "sharded").await;
    store.claim_next(&claimant()).await.unwrap().expect("the parent is claimed");
    let shard = store.insert_job(crate::store::NewJob { parent_id: Some(parent.id), ..new_job("sharded", None) }).await.unwrap().job;
    store.claim_next(&claimant()).await.unwrap().expect("the shard is claimed");
    finish(store, parent.id, 2).await;
    let later = chrono::Utc::now() + chrono::Duration::days(1);

    assert_eq!(prune_all(store, &batch(Some(later), None)).await, 0, "a shard still runs");
    assert!(exists(store, parent.id).await && exists(store, shard.id).await);
    finish(store, shard.id, 2).await;
    assert_eq!(prune_all(store, &batch(Some(later), None)).await, 1, "the sharded job counts once");
    for gone in [parent.id, shard.id] {
        assert!(!exists(store, gone).await);
        assert!(store.events_after(gone, 0, 10).await.unwrap().is_empty());
        assert!(store.find_tombstone(gone).await.unwrap().is_some(), "shards leave tombstones too");
    }
    store.close().await;
}

pub(super) async fn tombstones_are_bounded_oldest_first(harness: &Harness) {
    let store = harness.open().await;
    let store = store.as_ref();
    let first = finished(store, "first", &[]).await;
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    let bounded = PruneBatch { max_tombstones: 2, ..batch(Some(later), None) };
    assert_eq!(prune_all(store, &bounded).await, 1);
    tokio::time::sleep(Duration::from_millis(3)).await;
    let second = finished(store, "second", &[]).await;
    let third = finished(store, "third", &[]).await;
    assert_eq!(store.prune_finished(&bounded).await.unwrap(), Pruned::Batch { jobs: 2, tombstones: 1 });
    assert!(store.find_tombstone(first.id).await.unwrap().is_none(), "the oldest tombstone is dropped");
    for kept in [&second, &third] {
        assert!(store.find_tombstone(kept.id).await.unwrap().is_some());
    }
    store.close().await;
}
