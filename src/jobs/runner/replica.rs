//! What a replica does beside running jobs: a heartbeat that renews the leases of the jobs it
//! runs and rescues the jobs of replicas that stopped renewing theirs, and the follower that
//! turns other replicas' signals into local wake-ups.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval};

use super::Inner;
use crate::jobs::{JobId, JobStatus};
use crate::store::StoreSignal;

/// Heartbeats per lease: a lease survives two missed beats.
const BEATS_PER_LEASE: u32 = 3;

impl Inner {
    /// Renews this replica's leases and rescues expired ones, every third of a lease. After
    /// shutdown began it only renews, until the last job here has recorded its end, so no other
    /// replica rescues a job that is still being stopped.
    pub(super) async fn heartbeat(self: Arc<Self>) {
        let mut beat = interval(self.claimant.lease / BEATS_PER_LEASE);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let stopping = self.root.is_cancelled();
            if stopping && self.running.lock().expect("running map poisoned").is_empty() {
                return;
            }
            tokio::select! {
                _ = beat.tick() => {}
                () = self.root.cancelled(), if !stopping => continue,
                // Each job's end wakes this loop once the dispatcher has stopped.
                () = self.wake.notified(), if stopping => continue,
            }
            self.renew().await;
            if !stopping {
                self.rescue().await;
            }
        }
    }

    async fn renew(&self) {
        let ids: Vec<JobId> = self.running.lock().expect("running map poisoned").keys().copied().collect();
        match self.store.renew_leases(&self.claimant, &ids).await {
            Ok(renewal) => {
                for id in renewal.lost {
                    tracing::warn!(job.id = %id, "lost the job's lease to another replica; stopping it here");
                    self.abandon(id);
                }
                for id in renewal.cancel_requested {
                    self.request_stop(id);
                }
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "cannot renew the leases of running jobs"),
        }
    }

    async fn rescue(&self) {
        match self.store.rescue_expired().await {
            Ok(events) => {
                for event in &events {
                    let status = event.status();
                    tracing::warn!(job.id = %event.job_id, status = status.map(JobStatus::as_str), "rescued a job whose replica stopped renewing its lease");
                    if status == Some(JobStatus::Queued) {
                        self.wake.notify_one();
                    }
                    self.bus.stored(event.job_id, event.seq);
                }
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "cannot rescue jobs with expired leases"),
        }
    }

    /// Stops a job whose lease another replica took over; its end is not recorded here.
    fn abandon(&self, id: JobId) {
        if let Some(job) = self.running.lock().expect("running map poisoned").get(&id) {
            job.token.cancel();
        }
    }

    /// Applies other replicas' signals until the store stops sending them.
    pub(super) async fn follow_signals(self: Arc<Self>, mut signals: mpsc::Receiver<StoreSignal>) {
        while let Some(signal) = signals.recv().await {
            match signal {
                StoreSignal::Stored { job_id, seq, replica } if replica != self.claimant.replica => {
                    self.bus.stored(job_id, seq);
                }
                StoreSignal::Stored { .. } => {}
                StoreSignal::Queued => self.wake.notify_one(),
                StoreSignal::CancelRequested(id) => {
                    self.request_stop(id);
                }
                StoreSignal::Resync => {
                    self.bus.resync();
                    self.wake.notify_one();
                }
            }
        }
    }
}
