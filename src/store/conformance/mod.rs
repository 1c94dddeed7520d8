//! The `JobStore` contract, one suite run on every store: each test gets a fresh store through
//! [`Harness`] and is generated once per backend (`sqlite::NAME`, `postgres::NAME`; PostgreSQL at
//! `TEST_DATABASE_SERVER`, by default `postgres://postgres@127.0.0.1:5432`, a new database per
//! test, dropped afterwards). Retention's part of the contract is in `retention.rs`.

mod retention;

use retention::{
    prune_finished_keeps_the_newest_jobs_in_small_batches, prune_finished_removes_a_sharded_job_with_its_shards_once_none_runs,
    prune_finished_removes_old_jobs_but_never_kept_or_unfinished_ones, tombstones_are_bounded_oldest_first,
};

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;
use uuid::Uuid;

use super::*;

/// The replica the tests claim jobs as.
const REPLICA: &str = "test-replica";

fn claimant() -> Claimant {
    Claimant { replica: REPLICA.into(), lease: std::time::Duration::from_secs(60) }
}

/// Where one test's store lives: a SQLite file in a directory of its own, or a PostgreSQL
/// database of its own; removed on drop.
pub struct Harness {
    location: StoreLocation,
    dir: PathBuf,
}

impl Harness {
    /// A SQLite file in a subdirectory that does not exist yet, so opening must create it.
    fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("asynclab-store-test-{}", Uuid::now_v7().simple()));
        Harness { location: StoreLocation::Sqlite(dir.join("nested").join("jobs.db")), dir }
    }

    /// A PostgreSQL database that does not exist yet (opening creates and migrates it).
    fn postgres() -> Self {
        let server = std::env::var("TEST_DATABASE_SERVER").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("asynclab_store_test_{}", Uuid::now_v7().simple());
        let dir = std::env::temp_dir().join(&name);
        Harness { location: StoreLocation::Postgres(format!("{server}/{name}")), dir }
    }

    /// Opens the store (again, when called twice: the data stays).
    async fn open(&self) -> Arc<dyn JobStore> {
        self.location.open(8).await.expect("the store opens")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let StoreLocation::Postgres(url) = &self.location {
            let url = url.clone();
            // Dropping needs async I/O; do it on a thread of its own so it works inside a runtime.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                let _ = runtime.block_on(sqlx::Postgres::force_drop_database(&url));
            })
            .join();
        }
    }
}

/// Generates, for each contract test `async fn NAME(&Harness)`, one test per store.
macro_rules! every_store {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                super::$test(&super::Harness::sqlite()).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                super::$test(&super::Harness::postgres()).await
            })*
        }
    };
}

every_store!(
    insert_and_get_round_trip,
    idempotency_key_returns_the_existing_job,
    list_jobs_is_newest_first_with_filters_and_paging,
    claim_next_takes_the_oldest_queued_job,
    concurrent_claimers_claim_each_job_exactly_once,
    append_events_stores_them_and_updates_progress,
    finish_job_writes_the_terminal_state_with_its_events,
    cancel_queued_only_cancels_queued_jobs,
    interrupt_orphans_appends_the_next_status_event,
    concurrent_writers_lose_no_events,
    prune_finished_removes_old_jobs_but_never_kept_or_unfinished_ones,
    prune_finished_keeps_the_newest_jobs_in_small_batches,
    prune_finished_removes_a_sharded_job_with_its_shards_once_none_runs,
    tombstones_are_bounded_oldest_first,
);

fn new_job(kind: &str, key: Option<&str>) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        kind: kind.into(),
        params: json!({ "targets": ["http://127.0.0.1:1/"], "concurrency": 8, "nested": { "ratio": 0.25 } }),
        timeout_ms: 30_000,
        idempotency_key: key.map(str::to_owned),
        parent_id: None,
        max_attempts: 1,
        launched_by: None,
        labels: Default::default(),
        gate: None,
        webhook_url: None,
    }
}

async fn insert(store: &dyn JobStore, kind: &str) -> Job {
    let inserted = store.insert_job(new_job(kind, None)).await.unwrap();
    assert!(inserted.created);
    inserted.job
}

fn event(job_id: JobId, seq: i64, kind: EventKind, data: Value) -> JobEvent {
    PendingEvent::now(kind, data).sequenced(job_id, seq)
}

fn as_json(job: &Job) -> Value {
    serde_json::to_value(job).unwrap()
}

fn is_microsecond_precise(at: DateTime<Utc>) -> bool {
    at.trunc_subsecs(6) == at
}

async fn insert_and_get_round_trip(harness: &Harness) {
    let store = harness.open().await;
    store.ping().await.unwrap();
    let before = Utc::now().trunc_subsecs(6);
    let new = new_job("http-fanout", None);
    let inserted = store.insert_job(new.clone()).await.unwrap();
    assert!(inserted.created);
    let job = inserted.job;
    assert_eq!(job.id, new.id);
    assert_eq!(job.kind, "http-fanout");
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.params, new.params);
    assert_eq!(job.timeout_ms, 30_000);
    assert!(job.progress.is_none() && job.result.is_none() && job.error.is_none());
    assert!(job.started_at.is_none() && job.finished_at.is_none());
    assert!(job.created_at >= before && job.created_at <= Utc::now());
    assert!(is_microsecond_precise(job.created_at));

    let fetched = store.get_job(job.id).await.unwrap().expect("the job is stored");
    assert_eq!(as_json(&fetched), as_json(&job));
    assert_eq!(fetched.created_at, job.created_at);
    assert!(store.get_job(Uuid::now_v7()).await.unwrap().is_none());

    let events = store.events_after(job.id, 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, 1);
    assert_eq!(events[0].job_id, job.id);
    assert_eq!(events[0].kind, EventKind::Status);
    assert_eq!(events[0].data, json!({ "status": "queued" }));
    assert_eq!(events[0].status(), Some(JobStatus::Queued));
    assert!(is_microsecond_precise(events[0].at));

    // Terminal fields, including JSON null and nested documents, survive a round trip.
    let (claimed, _) = store.claim_next(&claimant()).await.unwrap().unwrap();
    let finish = Finish {
        status: JobStatus::Failed,
        result: Some(json!({ "latency": { "p50": 1.5, "p99": 12 }, "errors": null, "ok": [true, false] })),
        error: Some(JobError { kind: "thresholds".into(), message: "p99 above 10 ms".into() }),
    };
    store.finish_job(REPLICA, claimed.id, &finish, &[]).await.unwrap();
    let finished = store.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(finished.result, finish.result);
    assert_eq!(finished.error, finish.error);
    assert_eq!(finished.started_at, claimed.started_at);
    assert!(is_microsecond_precise(finished.finished_at.unwrap()));
    store.close().await;

    // A reopened store sees the same data, and migrating again is harmless.
    let reopened = harness.open().await;
    let again = reopened.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(as_json(&again), as_json(&finished));
    reopened.close().await;
}

async fn idempotency_key_returns_the_existing_job(harness: &Harness) {
    let store = harness.open().await;
    let first = store.insert_job(new_job("http-fanout", Some("key-1"))).await.unwrap();
    assert!(first.created);

    let mut second_new = new_job("other", Some("key-1"));
    second_new.params = json!({ "different": true });
    let second = store.insert_job(second_new.clone()).await.unwrap();
    assert!(!second.created);
    assert_eq!(as_json(&second.job), as_json(&first.job));
    assert!(store.get_job(second_new.id).await.unwrap().is_none());
    assert_eq!(store.events_after(first.job.id, 0, 10).await.unwrap().len(), 1);

    let found = store.find_by_idempotency_key("key-1").await.unwrap().unwrap();
    assert_eq!(found.id, first.job.id);
    assert!(store.find_by_idempotency_key("key-2").await.unwrap().is_none());

    // Jobs without a key never collide.
    let a = store.insert_job(new_job("http-fanout", None)).await.unwrap();
    let b = store.insert_job(new_job("http-fanout", None)).await.unwrap();
    assert!(a.created && b.created);
    assert_eq!(store.count_queued().await.unwrap(), 3);

    // Reusing an id is an error, not an idempotent replay.
    let mut duplicate = new_job("http-fanout", Some("key-3"));
    duplicate.id = a.job.id;
    assert!(store.insert_job(duplicate).await.is_err());
    assert!(store.find_by_idempotency_key("key-3").await.unwrap().is_none());
    store.close().await;
}

async fn list_jobs_is_newest_first_with_filters_and_paging(harness: &Harness) {
    let store = harness.open().await;
    let mut jobs = Vec::new();
    for index in 0..7 {
        jobs.push(insert(store.as_ref(), if index % 2 == 0 { "even" } else { "odd" }).await);
    }
    let newest_first: Vec<JobId> = jobs.iter().rev().map(|job| job.id).collect();

    let all = store.list_jobs(&JobQuery { parent: None, limit: 100, ..JobQuery::default() }).await.unwrap();
    assert_eq!(all.iter().map(|job| job.id).collect::<Vec<_>>(), newest_first);

    let even = store.list_jobs(&JobQuery { parent: None, kind: Some("even".into()), limit: 100, ..JobQuery::default() }).await.unwrap();
    let expected: Vec<JobId> =
        newest_first.iter().copied().filter(|id| jobs.iter().any(|job| job.id == *id && job.kind == "even")).collect();
    assert_eq!(even.iter().map(|job| job.id).collect::<Vec<_>>(), expected);
    assert_eq!(even.len(), 4);

    let (claimed, _) = store.claim_next(&claimant()).await.unwrap().unwrap();
    assert_eq!(claimed.id, jobs[0].id);
    let running =
        store.list_jobs(&JobQuery { parent: None, status: Some(JobStatus::Running), limit: 100, ..JobQuery::default() }).await.unwrap();
    assert_eq!(running.iter().map(|job| job.id).collect::<Vec<_>>(), vec![jobs[0].id]);
    let queued_even = store
        .list_jobs(&JobQuery {
            parent: None,
            kind: Some("even".into()),
            status: Some(JobStatus::Queued),
            limit: 100,
            ..JobQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(queued_even.len(), 3);
    assert!(queued_even.iter().all(|job| job.kind == "even" && job.status == JobStatus::Queued));

    // Paging with the previous page's last id walks every job exactly once.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_jobs(&JobQuery { parent: None, before, limit: 3, ..JobQuery::default() }).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        before = page.last().map(|job| job.id);
        paged.extend(page.iter().map(|job| job.id));
    }
    assert_eq!(paged, newest_first);

    let none = store.list_jobs(&JobQuery { parent: None, kind: Some("missing".into()), limit: 10, ..JobQuery::default() }).await.unwrap();
    assert!(none.is_empty());
    let zero = store.list_jobs(&JobQuery { parent: None, limit: 0, ..JobQuery::default() }).await.unwrap();
    assert!(zero.is_empty());
    store.close().await;
}

async fn claim_next_takes_the_oldest_queued_job(harness: &Harness) {
    let store = harness.open().await;
    assert!(store.claim_next(&claimant()).await.unwrap().is_none());
    let jobs = [insert(store.as_ref(), "a").await, insert(store.as_ref(), "b").await, insert(store.as_ref(), "c").await];
    assert_eq!(store.count_queued().await.unwrap(), 3);

    for (index, expected) in jobs.iter().enumerate() {
        let (job, last) = store.claim_next(&claimant()).await.unwrap().expect("a queued job");
        assert_eq!(job.id, expected.id);
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(last, 1);
        let started = job.started_at.expect("started_at is set");
        assert!(started >= expected.created_at && is_microsecond_precise(started));
        assert_eq!(store.count_queued().await.unwrap(), (jobs.len() - index - 1) as u64);
        let stored = store.get_job(job.id).await.unwrap().unwrap();
        assert_eq!(as_json(&stored), as_json(&job));
    }
    assert!(store.claim_next(&claimant()).await.unwrap().is_none());

    // Cancelled jobs are skipped, and the last seq is the job's real last event: here a job a
    // dead replica held, queued again by the rescue.
    let cancelled = insert(store.as_ref(), "d").await;
    store.cancel_queued(cancelled.id).await.unwrap().unwrap();
    let mut late = new_job("e", None);
    late.max_attempts = 2;
    let late = store.insert_job(late).await.unwrap().job;
    let dead = Claimant { replica: "dead".into(), lease: std::time::Duration::from_millis(1) };
    let (held, _) = store.claim_next(&dead).await.unwrap().unwrap();
    assert_eq!(held.id, late.id);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let rescued = store.rescue_expired().await.unwrap();
    assert_eq!(
        rescued.iter().map(|event| (event.job_id, event.seq, event.status())).collect::<Vec<_>>(),
        [(late.id, 2, Some(JobStatus::Queued))]
    );
    let (claimed, last) = store.claim_next(&claimant()).await.unwrap().unwrap();
    assert_eq!((claimed.id, last, claimed.attempts), (late.id, 2, 2));
    assert!(store.claim_next(&claimant()).await.unwrap().is_none());
    store.close().await;
}

async fn concurrent_claimers_claim_each_job_exactly_once(harness: &Harness) {
    let store = harness.open().await;
    let mut inserted = HashSet::new();
    for _ in 0..20 {
        inserted.insert(insert(store.as_ref(), "claim").await.id);
    }
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.claim_next(&claimant()).await })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in tasks {
        if let Some((job, last)) = task.await.unwrap().unwrap() {
            assert_eq!(job.status, JobStatus::Running);
            assert_eq!(last, 1);
            claimed.push(job.id);
        }
    }
    assert_eq!(claimed.len(), 20);
    let unique: HashSet<JobId> = claimed.iter().copied().collect();
    assert_eq!(unique, inserted);
    assert_eq!(store.count_queued().await.unwrap(), 0);
    store.close().await;
}

async fn append_events_stores_them_and_updates_progress(harness: &Harness) {
    let store = harness.open().await;
    let first = insert(store.as_ref(), "a").await;
    let second = insert(store.as_ref(), "b").await;
    let (claimed, last) = store.claim_next(&claimant()).await.unwrap().unwrap();
    assert_eq!((claimed.id, last), (first.id, 1));
    store.claim_next(&claimant()).await.unwrap().unwrap();

    let batch = vec![
        event(first.id, 2, EventKind::Status, json!({ "status": "running" })),
        event(first.id, 3, EventKind::Progress, json!({ "done": 1, "total": 4 })),
        event(second.id, 2, EventKind::Progress, json!({ "done": 7 })),
        event(first.id, 4, EventKind::Log, json!({ "line": "halfway" })),
        event(first.id, 5, EventKind::Progress, json!({ "done": 2, "total": 4 })),
    ];
    store.append_events(REPLICA, &batch).await.unwrap();
    store.append_events(REPLICA, &[]).await.unwrap();

    assert_eq!(store.get_job(first.id).await.unwrap().unwrap().progress, Some(json!({ "done": 2, "total": 4 })));
    assert_eq!(store.get_job(second.id).await.unwrap().unwrap().progress, Some(json!({ "done": 7 })));

    let events = store.events_after(first.id, 0, 100).await.unwrap();
    assert_eq!(events.iter().map(|event| event.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    let stored: Vec<&JobEvent> = events.iter().skip(1).collect();
    let sent: Vec<&JobEvent> = batch.iter().filter(|event| event.job_id == first.id).collect();
    for (stored, sent) in stored.iter().zip(&sent) {
        assert_eq!(stored.job_id, sent.job_id);
        assert_eq!(stored.seq, sent.seq);
        assert_eq!(stored.kind, sent.kind);
        assert_eq!(stored.data, sent.data);
        assert_eq!(stored.at, sent.at.trunc_subsecs(6));
    }
    let page = store.events_after(first.id, 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|event| event.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert!(store.events_after(first.id, 5, 10).await.unwrap().is_empty());
    assert!(store.events_after(Uuid::now_v7(), 0, 10).await.unwrap().is_empty());

    // A batch with a duplicate seq fails as a whole: nothing of it is stored.
    let bad = vec![
        event(first.id, 6, EventKind::Progress, json!({ "done": 3 })),
        event(first.id, 5, EventKind::Log, json!({ "line": "duplicate" })),
    ];
    assert!(store.append_events(REPLICA, &bad).await.is_err());
    assert_eq!(store.events_after(first.id, 0, 100).await.unwrap().len(), 5);
    assert_eq!(store.get_job(first.id).await.unwrap().unwrap().progress, Some(json!({ "done": 2, "total": 4 })));

    // Events of a job this replica does not run (unknown, or another replica's) are dropped.
    let unknown = Uuid::now_v7();
    let dropped = store.append_events(REPLICA, &[event(unknown, 1, EventKind::Log, json!({}))]).await.unwrap();
    assert_eq!(dropped, vec![unknown]);
    assert!(store.events_after(unknown, 0, 10).await.unwrap().is_empty());
    let dropped = store.append_events("another-replica", &[event(first.id, 6, EventKind::Log, json!({}))]).await.unwrap();
    assert_eq!(dropped, vec![first.id]);
    assert_eq!(store.events_after(first.id, 0, 100).await.unwrap().len(), 5);

    // The store is still usable after the failed transactions.
    store.append_events(REPLICA, &[event(first.id, 6, EventKind::Log, json!({ "line": "after" }))]).await.unwrap();
    assert_eq!(store.events_after(first.id, 5, 10).await.unwrap().len(), 1);
    store.close().await;
}

async fn finish_job_writes_the_terminal_state_with_its_events(harness: &Harness) {
    let store = harness.open().await;
    let job = insert(store.as_ref(), "a").await;
    let (claimed, _) = store.claim_next(&claimant()).await.unwrap().unwrap();
    let events = vec![
        event(job.id, 2, EventKind::Progress, json!({ "done": 4, "total": 4 })),
        event(job.id, 3, EventKind::Result, json!({ "requests": 4 })),
        event(job.id, 4, EventKind::Status, json!({ "status": "succeeded" })),
    ];
    let finish = Finish { status: JobStatus::Succeeded, result: Some(json!({ "requests": 4 })), error: None };
    store.finish_job(REPLICA, job.id, &finish, &events).await.unwrap();

    let stored = store.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Succeeded);
    assert_eq!(stored.result, Some(json!({ "requests": 4 })));
    assert_eq!(stored.error, None);
    assert_eq!(stored.progress, Some(json!({ "done": 4, "total": 4 })));
    assert_eq!(stored.started_at, claimed.started_at);
    let finished_at = stored.finished_at.expect("finished_at is set");
    assert!(finished_at >= claimed.started_at.unwrap());
    assert_eq!(store.events_after(job.id, 0, 100).await.unwrap().len(), 4);

    // Without progress events, the last stored progress is kept.
    let other = insert(store.as_ref(), "b").await;
    store.claim_next(&claimant()).await.unwrap().unwrap();
    store.append_events(REPLICA, &[event(other.id, 2, EventKind::Progress, json!({ "done": 1 }))]).await.unwrap();
    let error = JobError { kind: "timeout".into(), message: "ran out of time".into() };
    let finish = Finish { status: JobStatus::Failed, result: None, error: Some(error.clone()) };
    let status = PendingEvent::status(JobStatus::Failed, Some(&error)).sequenced(other.id, 3);
    store.finish_job(REPLICA, other.id, &finish, std::slice::from_ref(&status)).await.unwrap();
    let stored = store.get_job(other.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Failed);
    assert_eq!(stored.error, Some(error));
    assert_eq!(stored.result, None);
    assert_eq!(stored.progress, Some(json!({ "done": 1 })));
    assert!(stored.finished_at.is_some());
    let last = store.events_after(other.id, 2, 10).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].status(), Some(JobStatus::Failed));

    // A failing event insert leaves the job untouched.
    let third = insert(store.as_ref(), "c").await;
    store.claim_next(&claimant()).await.unwrap().unwrap();
    let duplicate = event(third.id, 1, EventKind::Status, json!({ "status": "succeeded" }));
    let finish = Finish { status: JobStatus::Succeeded, result: None, error: None };
    assert!(store.finish_job(REPLICA, third.id, &finish, &[duplicate]).await.is_err());
    let stored = store.get_job(third.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Running);
    assert!(stored.finished_at.is_none());
    store.close().await;
}

async fn cancel_queued_only_cancels_queued_jobs(harness: &Harness) {
    let store = harness.open().await;
    let running = insert(store.as_ref(), "a").await;
    let queued = insert(store.as_ref(), "b").await;
    store.claim_next(&claimant()).await.unwrap().unwrap();

    let event = store.cancel_queued(queued.id).await.unwrap().expect("a queued job is cancelled");
    assert_eq!(event.job_id, queued.id);
    assert_eq!(event.seq, 2);
    assert_eq!(event.status(), Some(JobStatus::Cancelled));
    assert_eq!(event.data["error"]["kind"], "cancelled");
    let stored = store.get_job(queued.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Cancelled);
    assert_eq!(stored.error.as_ref().map(|error| error.kind.as_str()), Some("cancelled"));
    assert!(stored.finished_at.is_some());
    assert!(stored.started_at.is_none());
    let events = store.events_after(queued.id, 0, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].data, event.data);
    assert_eq!(events[1].at, event.at.trunc_subsecs(6));
    assert_eq!(store.count_queued().await.unwrap(), 0);

    assert!(store.cancel_queued(queued.id).await.unwrap().is_none());
    assert_eq!(store.events_after(queued.id, 0, 10).await.unwrap().len(), 2);
    assert!(store.cancel_queued(running.id).await.unwrap().is_none());
    let still = store.get_job(running.id).await.unwrap().unwrap();
    assert_eq!(still.status, JobStatus::Running);
    assert!(still.finished_at.is_none() && still.error.is_none());
    assert_eq!(store.events_after(running.id, 0, 10).await.unwrap().len(), 1);
    assert!(store.cancel_queued(Uuid::now_v7()).await.unwrap().is_none());
    store.close().await;
}

async fn interrupt_orphans_appends_the_next_status_event(harness: &Harness) {
    let store = harness.open().await;
    let a = insert(store.as_ref(), "a").await;
    let b = insert(store.as_ref(), "b").await;
    let c = insert(store.as_ref(), "c").await;
    store.claim_next(&claimant()).await.unwrap().unwrap();
    store.claim_next(&claimant()).await.unwrap().unwrap();
    store
        .append_events(
            REPLICA,
            &[
                event(a.id, 2, EventKind::Status, json!({ "status": "running" })),
                event(a.id, 3, EventKind::Log, json!({ "line": "working" })),
            ],
        )
        .await
        .unwrap();

    let error = JobError { kind: "interrupted".into(), message: "the server stopped".into() };
    let events = store.interrupt_orphans(REPLICA, &error).await.unwrap();
    assert_eq!(events.len(), 2);
    let by_job = |id: JobId| events.iter().find(|event| event.job_id == id).expect("an event for the job");
    assert_eq!(by_job(a.id).seq, 4);
    assert_eq!(by_job(b.id).seq, 2);
    for event in &events {
        assert_eq!(event.status(), Some(JobStatus::Interrupted));
        assert_eq!(event.data["error"], serde_json::to_value(&error).unwrap());
        let stored = store.get_job(event.job_id).await.unwrap().unwrap();
        assert_eq!(stored.status, JobStatus::Interrupted);
        assert_eq!(stored.error, Some(error.clone()));
        assert!(stored.finished_at.is_some());
        let last = store.events_after(event.job_id, event.seq - 1, 10).await.unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].data, event.data);
    }
    let untouched = store.get_job(c.id).await.unwrap().unwrap();
    assert_eq!(untouched.status, JobStatus::Queued);
    assert_eq!(store.events_after(c.id, 0, 10).await.unwrap().len(), 1);

    assert!(store.interrupt_orphans(REPLICA, &error).await.unwrap().is_empty());
    store.close().await;
}

async fn concurrent_writers_lose_no_events(harness: &Harness) {
    const JOBS: usize = 20;
    const EVENTS: i64 = 200;
    let store = harness.open().await;
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(insert(store.as_ref(), "write").await.id);
        store.claim_next(&claimant()).await.unwrap().unwrap();
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|&id| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for seq in 2..EVENTS + 2 {
                    let kind = if seq % 2 == 0 { EventKind::Progress } else { EventKind::Log };
                    store.append_events(REPLICA, &[event(id, seq, kind, json!({ "seq": seq }))]).await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    // Readers run alongside the writers.
    let reader = {
        let store = Arc::clone(&store);
        let ids = ids.clone();
        tokio::spawn(async move {
            for round in 0..100 {
                store.events_after(ids[round % ids.len()], 0, 1000).await?;
                store.list_jobs(&JobQuery { parent: None, limit: 50, ..JobQuery::default() }).await?;
            }
            Ok::<_, StoreError>(())
        })
    };
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    reader.await.unwrap().unwrap();

    for id in ids {
        let events = store.events_after(id, 0, 1000).await.unwrap();
        assert_eq!(events.len() as i64, EVENTS + 1);
        assert!(events.iter().zip(1..).all(|(event, seq)| event.seq == seq));
        let job = store.get_job(id).await.unwrap().unwrap();
        assert_eq!(job.progress, Some(json!({ "seq": EVENTS })));
    }
    store.close().await;
}
