//! The event bus: gives running jobs' events their sequence numbers, writes them to the store
//! in batches, and only then broadcasts them to live subscribers — so every event a client has
//! seen is stored, and a subscriber that replays from the store and then listens sees no gap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{JobEvent, JobId, PendingEvent};
use crate::meters::Meters;
use crate::store::{Finish, JobStore};

/// How long an event may wait for companions before its batch is written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// The most events written in one batch (one round trip).
const MAX_BATCH: usize = 512;
/// Commands queued for the writer; full means publishers wait, which bounds memory when the
/// store is slow or down.
const COMMAND_CAPACITY: usize = 8192;
/// Events buffered per live job for subscribers; a subscriber further behind replays from the store.
const BROADCAST_CAPACITY: usize = 256;
/// Attempts the writer still makes after shutdown began before it gives a batch up.
const ATTEMPTS_AFTER_SHUTDOWN: u32 = 3;

/// What a job's live channel carries.
#[derive(Debug, Clone)]
pub enum Live {
    /// An event this process stored.
    Event(Arc<JobEvent>),
    /// Events up to this sequence number are stored (by another replica, or missed signals):
    /// read them from the store.
    Stored(i64),
}

/// Per-job broadcast channels, present while someone listens. Guarded by a std mutex: every
/// critical section is a map lookup or insert, never an await.
type LiveChannels = Arc<Mutex<HashMap<JobId, broadcast::Sender<Live>>>>;

enum Command {
    Open { job_id: JobId, last_seq: i64 },
    Publish { job_id: JobId, event: PendingEvent },
    Finish { job_id: JobId, finish: Finish, events: Vec<PendingEvent>, done: oneshot::Sender<()> },
    Shutdown { done: oneshot::Sender<()> },
}

/// A cheap handle to the event bus.
#[derive(Clone)]
pub struct EventBus {
    /// Queue to the single writer task, which owns sequence numbers.
    commands: mpsc::Sender<Command>,
    /// Live channels shared with subscribers.
    live: LiveChannels,
    /// Fired when the server shuts down; the writer then stops retrying a failing store soon.
    shutdown: CancellationToken,
}

/// A live subscription to one job's events; drops its channel when the last subscriber leaves.
pub struct Subscription {
    /// Events broadcast after they were stored, and wake-ups for events stored elsewhere.
    pub receiver: broadcast::Receiver<Live>,
    live: LiveChannels,
    job_id: JobId,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut live = self.live.lock().expect("live channel map poisoned");
        if let Some(sender) = live.get(&self.job_id) {
            // Our receiver is still alive here, so one means nobody else listens.
            if sender.receiver_count() <= 1 {
                live.remove(&self.job_id);
            }
        }
    }
}

impl EventBus {
    /// Starts the writer task on `tracker`; it writes as `replica`, the owner of the jobs it
    /// sequences.
    pub fn start(store: Arc<dyn JobStore>, replica: String, tracker: &TaskTracker, shutdown: CancellationToken, meters: Meters) -> Self {
        let (commands, queue) = mpsc::channel(COMMAND_CAPACITY);
        let live = LiveChannels::default();
        let writer =
            Writer { store, replica, live: live.clone(), next_seq: HashMap::new(), batch: Vec::new(), shutdown: shutdown.clone(), meters };
        tracker.spawn(writer.run(queue));
        EventBus { commands, live, shutdown }
    }

    /// Starts sequencing a job's events after `last_seq`, the last one already stored.
    pub async fn open(&self, job_id: JobId, last_seq: i64) {
        self.send(Command::Open { job_id, last_seq }).await;
    }

    /// Queues an event of an open job.
    pub async fn publish(&self, job_id: JobId, event: PendingEvent) {
        self.send(Command::Publish { job_id, event }).await;
    }

    /// Writes the job's terminal state with its last events (after everything published
    /// before), broadcasts them and closes the job's live channel.
    pub async fn finish(&self, job_id: JobId, finish: Finish, events: Vec<PendingEvent>) {
        let (done, finished) = oneshot::channel();
        self.send(Command::Finish { job_id, finish, events, done }).await;
        let _ = finished.await;
    }

    /// Broadcasts events that were written to the store directly (a job that never ran) and
    /// closes the job's live channel.
    pub fn announce_final(&self, job_id: JobId, events: &[JobEvent]) {
        let sender = self.live.lock().expect("live channel map poisoned").remove(&job_id);
        if let Some(sender) = sender {
            for event in events {
                let _ = sender.send(Live::Event(Arc::new(event.clone())));
            }
        }
    }

    /// Tells the job's live subscribers that its events up to `seq` are stored (by another
    /// replica), so they read them from the store.
    pub fn stored(&self, job_id: JobId, seq: i64) {
        if let Some(sender) = self.live.lock().expect("live channel map poisoned").get(&job_id) {
            let _ = sender.send(Live::Stored(seq));
        }
    }

    /// Tells every live subscriber to re-read the store: signals may have been missed.
    pub fn resync(&self) {
        for sender in self.live.lock().expect("live channel map poisoned").values() {
            let _ = sender.send(Live::Stored(i64::MAX));
        }
    }

    /// Subscribes to a job's live events. Subscribe first, then replay from the store.
    pub fn subscribe(&self, job_id: JobId) -> Subscription {
        let mut live = self.live.lock().expect("live channel map poisoned");
        let sender = live.entry(job_id).or_insert_with(|| broadcast::channel(BROADCAST_CAPACITY).0);
        Subscription { receiver: sender.subscribe(), live: self.live.clone(), job_id }
    }

    /// Writes everything queued and stops the writer.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let (done, stopped) = oneshot::channel();
        self.send(Command::Shutdown { done }).await;
        let _ = stopped.await;
    }

    async fn send(&self, command: Command) {
        if self.commands.send(command).await.is_err() {
            tracing::warn!("event writer has stopped; event dropped");
        }
    }
}

/// The single task that sequences, stores and broadcasts events.
struct Writer {
    store: Arc<dyn JobStore>,
    /// This replica's id: the store keeps only events of jobs it still owns.
    replica: String,
    live: LiveChannels,
    /// The next sequence number of each open job.
    next_seq: HashMap<JobId, i64>,
    /// Sequenced events not yet written.
    batch: Vec<JobEvent>,
    shutdown: CancellationToken,
    /// Counts the events written.
    meters: Meters,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        while let Some(command) = queue.recv().await {
            if self.handle(command).await {
                return;
            }
            let deadline = Instant::now() + FLUSH_INTERVAL;
            while !self.batch.is_empty() && self.batch.len() < MAX_BATCH {
                tokio::select! {
                    command = queue.recv() => match command {
                        Some(command) => if self.handle(command).await { return },
                        None => break,
                    },
                    () = sleep_until(deadline) => break,
                }
            }
            self.flush().await;
        }
        self.flush().await;
    }

    /// Applies one command; true when the writer must stop.
    async fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Open { job_id, last_seq } => {
                self.next_seq.insert(job_id, last_seq + 1);
            }
            Command::Publish { job_id, event } => {
                let Some(event) = self.sequence(job_id, event) else {
                    tracing::warn!(job.id = %job_id, "event for a job that is not open; dropped");
                    return false;
                };
                self.batch.push(event);
            }
            Command::Finish { job_id, finish, events, done } => {
                self.flush().await;
                let events: Vec<JobEvent> = events.into_iter().filter_map(|event| self.sequence(job_id, event)).collect();
                let store = self.store.clone();
                let replica = self.replica.clone();
                let written = self
                    .with_retry("finish job", || {
                        let store = store.clone();
                        let replica = replica.clone();
                        let finish = finish.clone();
                        let events = events.clone();
                        async move { store.finish_job(&replica, job_id, &finish, &events).await }
                    })
                    .await;
                match written {
                    Some(true) => {
                        self.meters.events_written(events.len());
                        self.broadcast(&events);
                    }
                    Some(false) => {
                        tracing::warn!(job.id = %job_id, "the job was rescued by another replica; its end here is not recorded");
                    }
                    None => {}
                }
                self.next_seq.remove(&job_id);
                self.live.lock().expect("live channel map poisoned").remove(&job_id);
                let _ = done.send(());
            }
            Command::Shutdown { done } => {
                self.flush().await;
                let _ = done.send(());
                return true;
            }
        }
        false
    }

    fn sequence(&mut self, job_id: JobId, event: PendingEvent) -> Option<JobEvent> {
        let next = self.next_seq.get_mut(&job_id)?;
        let event = event.sequenced(job_id, *next);
        *next += 1;
        Some(event)
    }

    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        let store = self.store.clone();
        let replica = self.replica.clone();
        let written = self
            .with_retry("append events", || {
                let store = store.clone();
                let replica = replica.clone();
                let batch = batch.clone();
                async move { store.append_events(&replica, &batch).await }
            })
            .await;
        if let Some(dropped) = written {
            for job_id in &dropped {
                tracing::warn!(job.id = %job_id, "the job was rescued by another replica; its events here are dropped");
            }
            batch.retain(|event| !dropped.contains(&event.job_id));
            self.meters.events_written(batch.len());
            self.broadcast(&batch);
        }
    }

    fn broadcast(&self, events: &[JobEvent]) {
        let live = self.live.lock().expect("live channel map poisoned");
        for event in events {
            if let Some(sender) = live.get(&event.job_id) {
                let _ = sender.send(Live::Event(Arc::new(event.clone())));
            }
        }
    }

    /// Retries a store write until it succeeds; after shutdown began, gives up after a few
    /// attempts so the process can exit (`None`). Events given up were never broadcast.
    async fn with_retry<F, Fut, T>(&self, what: &str, mut write: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, crate::store::StoreError>>,
    {
        let mut backoff = Duration::from_millis(50);
        let mut attempts_after_shutdown = 0;
        loop {
            match write().await {
                Ok(written) => return Some(written),
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "event writer cannot {what}; retrying");
                    if self.shutdown.is_cancelled() {
                        attempts_after_shutdown += 1;
                        if attempts_after_shutdown >= ATTEMPTS_AFTER_SHUTDOWN {
                            tracing::error!("event writer gives up during shutdown: {what}");
                            return None;
                        }
                    }
                    sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
