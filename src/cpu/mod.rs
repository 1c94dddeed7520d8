//! The CPU a job's work used, from the kernel's accounting rather than estimated, and the
//! report every experiment carries: `cpu: {user_ms, system_ms, total_ms, threads, processes,
//! scope}`.
//!
//! A job gets one [`CpuMeter`] (from its context). Work reaches it three ways:
//! - **threads the job owns** (a fan-out's worker threads, an experiment's dedicated runtime
//!   with its workers and blocking pool): [`CpuMeter::track_current_thread`] and
//!   [`CpuMeter::instrument`] record each thread's CPU from its start to its end;
//! - **futures polled on the control plane's shared runtime** (the job itself, the tasks it
//!   spawns there): [`CpuMeter::attribute`] reads the polling thread's CPU before and after each
//!   poll. Work that libraries do in tasks of their own (connection drivers, `tokio::fs`'s
//!   blocking pool) cannot be told apart from other jobs' and is not counted;
//! - **child processes**: [`process::ChildExit`] reads a child's CPU (and that of the children
//!   it waited for) from `/proc` once it has exited, before it is reaped.

pub mod attributed;
pub mod process;
pub mod thread;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use self::attributed::Attributed;
use self::thread::{CpuTimes, current_thread_times, current_tid, thread_times};

/// Where the work a CPU figure measures ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CpuScope {
    /// On OS threads of the job's own (worker threads, a dedicated runtime), plus the few polls
    /// of the job's task on the control plane (progress, the report). Complete.
    DedicatedThreads,
    /// On the control plane's shared runtime: the polls of the job's own tasks. Work that
    /// libraries run in tasks or threads of their own (connection drivers, `tokio::fs`'s
    /// blocking pool) is not counted, so the figure is a lower bound.
    SharedRuntime,
    /// In child processes (with the children they waited for), plus the polls of the job's
    /// tasks on the control plane that fed and reaped them.
    ChildProcesses,
}

/// The CPU a job's work used, measured by the kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CpuUsage {
    /// CPU time running the work's own code.
    pub user_ms: f64,
    /// CPU time the kernel spent on the work's behalf (system calls: sockets, files, wake-ups).
    pub system_ms: f64,
    /// `user_ms + system_ms`.
    pub total_ms: f64,
    /// OS threads of this process that ran the work (counted once each, whichever way).
    pub threads: u32,
    /// Child processes whose CPU is included.
    pub processes: u32,
    /// Where the measured work ran, and so what the figure covers.
    #[schema(inline)]
    pub scope: CpuScope,
}

impl CpuUsage {
    /// The CPU of several runs together (a sharded job's shards): times, threads and processes
    /// summed.
    pub fn sum<'a>(usages: impl IntoIterator<Item = &'a CpuUsage>, scope: CpuScope) -> CpuUsage {
        let mut total = CpuUsage { user_ms: 0.0, system_ms: 0.0, total_ms: 0.0, threads: 0, processes: 0, scope };
        for usage in usages {
            total.user_ms += usage.user_ms;
            total.system_ms += usage.system_ms;
            total.total_ms += usage.total_ms;
            total.threads += usage.threads;
            total.processes += usage.processes;
        }
        total
    }

    /// CPU microseconds per unit of work (`per` requests, operations…); 0 when there was none.
    pub fn micros_per(&self, per: u64) -> f64 {
        if per == 0 { 0.0 } else { self.total_ms * 1000.0 / per as f64 }
    }

    /// Units of work per CPU-second; 0 when no CPU was measured.
    pub fn per_cpu_second(&self, count: u64) -> f64 {
        if self.total_ms <= 0.0 { 0.0 } else { count as f64 / (self.total_ms / 1000.0) }
    }
}

/// One job's CPU ledger, shared by every thread and task of the job. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CpuMeter {
    ledger: Arc<Mutex<Ledger>>,
}

/// A std mutex: held only to add a reading, never across an await.
#[derive(Debug, Default)]
struct Ledger {
    /// CPU of threads that have ended, of attributed polls and of reaped children.
    settled: CpuTimes,
    /// Tracked threads alive now, with their CPU time when tracking began.
    live: HashMap<i32, CpuTimes>,
    /// Every thread that ran work of the job.
    threads: HashSet<i32>,
    /// Child processes counted.
    processes: u32,
}

impl CpuMeter {
    /// A meter with nothing recorded.
    pub fn new() -> Self {
        CpuMeter::default()
    }

    /// Counts the calling thread's CPU from now until the returned guard is dropped (on this
    /// thread). For a thread the job starts for itself.
    pub fn track_current_thread(&self) -> TrackedThread {
        self.thread_started();
        TrackedThread { meter: self.clone() }
    }

    /// Makes every thread that a runtime built from `builder` starts (workers and blocking
    /// pool) count towards this meter while it lives. The thread that calls `block_on` is not
    /// one of them: track it with [`CpuMeter::track_current_thread`].
    pub fn instrument(&self, builder: &mut tokio::runtime::Builder) {
        let started = self.clone();
        let stopped = self.clone();
        builder.on_thread_start(move || started.thread_started()).on_thread_stop(move || stopped.thread_stopped());
    }

    /// Counts the CPU of each poll of `future`, on whatever thread polls it. For the job's
    /// tasks on the control plane's shared runtime; nested attributions count once.
    pub fn attribute<F: Future>(&self, future: F) -> Attributed<F> {
        Attributed::new(self.clone(), future)
    }

    /// Adds the CPU of an exited child process (see [`process::ChildExit`]).
    pub fn add_process(&self, times: CpuTimes) {
        let mut ledger = self.lock();
        ledger.settled = ledger.settled + times;
        ledger.processes += 1;
    }

    /// What has been used so far: settled CPU plus that of tracked threads still alive.
    pub fn usage(&self, scope: CpuScope) -> CpuUsage {
        let ledger = self.lock();
        let live = ledger
            .live
            .iter()
            .filter_map(|(tid, baseline)| Some(thread_times(*tid)? - *baseline))
            .fold(CpuTimes::default(), |sum, times| sum + times);
        let used = ledger.settled + live;
        let user_ms = used.user_micros as f64 / 1000.0;
        let system_ms = used.system_micros as f64 / 1000.0;
        CpuUsage {
            user_ms,
            system_ms,
            total_ms: user_ms + system_ms,
            threads: u32::try_from(ledger.threads.len()).unwrap_or(u32::MAX),
            processes: ledger.processes,
            scope,
        }
    }

    fn thread_started(&self) {
        let tid = current_tid();
        let baseline = current_thread_times();
        let mut ledger = self.lock();
        ledger.live.insert(tid, baseline);
        ledger.threads.insert(tid);
    }

    fn thread_stopped(&self) {
        let tid = current_tid();
        let now = current_thread_times();
        let mut ledger = self.lock();
        if let Some(baseline) = ledger.live.remove(&tid) {
            ledger.settled = ledger.settled + (now - baseline);
        }
    }

    /// Adds the CPU one poll used on thread `tid`.
    fn add_poll(&self, tid: i32, times: CpuTimes) {
        let mut ledger = self.lock();
        ledger.settled = ledger.settled + times;
        ledger.threads.insert(tid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts its thread towards a [`CpuMeter`] until dropped.
#[must_use = "the thread is counted only while the guard lives"]
pub struct TrackedThread {
    meter: CpuMeter,
}

impl Drop for TrackedThread {
    fn drop(&mut self) {
        self.meter.thread_stopped();
    }
}

#[cfg(test)]
mod tests;
