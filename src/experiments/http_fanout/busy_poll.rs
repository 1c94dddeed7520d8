//! How a fan-out worker thread of the closed model waits for answers, beside the default of
//! sleeping in the kernel until one of its sockets is ready (`busy_poll: off`, which wakes the
//! thread for every answer or two: the wake-up is paid on the core that delivered the answer —
//! the target's, when the target runs on the same machine).
//!
//! - `batched` (the default): a thread carrying at least [`BATCH_MIN_WORKERS`] workers (each
//!   with a request in flight: a connection over HTTP/1.1, a stream over HTTP/2) sleeps a short
//!   timed pause, then asks for every ready socket at once without blocking and
//!   handles the answers as one batch. The pause adapts so that a pause collects about half the
//!   thread's workers' answers ([`next_pause`]): long enough to batch, short enough that the
//!   target never runs dry. While no answer comes the thread sleeps as `off` does, so a slow
//!   target costs next to nothing. With fewer workers the answers of a pause are too few to pay
//!   for it, and the thread waits as `off` does.
//! - `adaptive`: the thread keeps polling without sleeping while answers arrive close together,
//!   and sleeps once none has come for [`SPIN_WINDOW`]. Each spin first offers the core to any
//!   other thread waiting for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::params::BusyPollMode;

/// How long a spinning worker thread keeps polling after the last finished request before it sleeps.
pub const SPIN_WINDOW: Duration = Duration::from_micros(200);

/// The fewest workers a worker thread must carry for `batched` to pause: with fewer, a pause
/// collects too few answers to pay for its sleep and wake-up.
pub const BATCH_MIN_WORKERS: usize = 64;

/// A batching thread's first pause.
const FIRST_PAUSE: Duration = Duration::from_micros(40);
/// The shortest pause: below it, the sleep costs more than the batch saves.
const SHORTEST_PAUSE: Duration = Duration::from_micros(5);
/// The longest pause, the most a pause adds to an answer's measured latency.
const LONGEST_PAUSE: Duration = Duration::from_micros(120);
/// How much longer the next pause is after one that collected fewer than half the answers.
const PAUSE_STEP: Duration = Duration::from_micros(2);
/// The timer slack of a batching thread: the kernel's default (50 µs) would stretch every pause.
const BATCH_TIMER_SLACK_NS: libc::c_ulong = 1_000;

/// What a worker thread runs beside its workers to wait for answers other than by sleeping
/// until a socket is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poller {
    /// Spin while answers keep coming (`adaptive`).
    Spin,
    /// Pause, then take every ready answer at once (`batched`).
    Batch {
        /// The thread's workers: the most answers a pause could collect.
        workers: usize,
    },
}

impl Poller {
    /// The poller of a worker thread carrying `workers` workers in `mode`; `None` when the
    /// thread simply sleeps until a socket is ready.
    pub fn of(mode: BusyPollMode, workers: usize) -> Option<Self> {
        match mode {
            BusyPollMode::Off => None,
            BusyPollMode::Adaptive => Some(Poller::Spin),
            BusyPollMode::Batched if workers >= BATCH_MIN_WORKERS => Some(Poller::Batch { workers }),
            BusyPollMode::Batched => None,
        }
    }
}

/// The pause after one that collected `answered` of `workers` answers: three quarters as long
/// after half or more (the target may have run out of requests), a step longer otherwise; always
/// between the shortest and the longest pause.
pub fn next_pause(pause: Duration, answered: u64, workers: u64) -> Duration {
    let next = if answered * 2 >= workers { pause * 3 / 4 } else { pause + PAUSE_STEP };
    next.clamp(SHORTEST_PAUSE, LONGEST_PAUSE)
}

/// One worker thread's polling state, shared by the thread's workers and its poller.
#[derive(Debug)]
pub struct BusyPoll {
    /// How the thread polls.
    poller: Poller,
    /// Requests finished on the thread.
    finished: AtomicU64,
    /// The poller is waiting for [`BusyPoll::finished`] to move.
    asleep: AtomicBool,
    wake: Notify,
}

impl BusyPoll {
    /// The state of a thread that polls as `poller`.
    pub fn new(poller: Poller) -> Self {
        BusyPoll { poller, finished: AtomicU64::new(0), asleep: AtomicBool::new(false), wake: Notify::new() }
    }

    /// Notes a finished request: a sleeping poller starts again.
    pub fn request_finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        if self.asleep.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Whether the poller is waiting for a request to finish.
    #[cfg(test)]
    fn is_asleep(&self) -> bool {
        self.asleep.load(Ordering::Relaxed)
    }

    fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// Waits, without polling, until a request finishes.
    async fn sleep_until_a_request_finishes(&self) {
        self.asleep.store(true, Ordering::Relaxed);
        self.wake.notified().await;
        self.asleep.store(false, Ordering::Relaxed);
    }

    /// Runs the thread's poller on its runtime, beside its workers, until dropped.
    pub async fn run(&self) {
        match self.poller {
            Poller::Spin => self.spin().await,
            Poller::Batch { workers } => self.batch(workers as u64).await,
        }
    }

    /// `adaptive`: each turn yields to the runtime, which then polls for ready sockets without
    /// blocking because a task (this one) is ready to run again.
    async fn spin(&self) {
        let mut seen = self.finished();
        let mut last_finish = Instant::now();
        loop {
            std::thread::yield_now();
            tokio::task::yield_now().await;
            let finished = self.finished();
            if finished != seen {
                seen = finished;
                last_finish = Instant::now();
            } else if last_finish.elapsed() >= SPIN_WINDOW {
                self.sleep_until_a_request_finishes().await;
                seen = self.finished();
                last_finish = Instant::now();
            }
        }
    }

    /// `batched`: blocks the thread for a pause — every task on it waits for a socket, so
    /// nothing else is delayed but the timers of request time limits, by less than
    /// [`LONGEST_PAUSE`] — then yields, and the runtime takes every ready socket at once and runs
    /// the workers they wake before this task again.
    async fn batch(&self, workers: u64) {
        tighten_timer_slack();
        let mut pause = FIRST_PAUSE;
        loop {
            let before = self.finished();
            std::thread::sleep(pause);
            tokio::task::yield_now().await;
            match self.finished() - before {
                0 => self.sleep_until_a_request_finishes().await,
                answered => pause = next_pause(pause, answered, workers),
            }
        }
    }
}

/// Makes the calling thread's timed sleeps end within a microsecond of their time (the job's
/// worker thread, which ends with the job).
fn tighten_timer_slack() {
    // SAFETY: prctl(2) with PR_SET_TIMERSLACK only sets a value of the calling thread; it reads
    // and writes no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, BATCH_TIMER_SLACK_NS);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Lets the poller take a few turns.
    async fn turns(count: usize) {
        for _ in 0..count {
            tokio::task::yield_now().await;
        }
    }

    /// Waits (real time) until `poll` is asleep or awake as asked, for at most 10 s.
    async fn until_asleep_is(poll: &BusyPoll, asleep: bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while poll.is_asleep() != asleep {
            assert!(std::time::Instant::now() < deadline, "the poller never became asleep = {asleep}");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn spins_while_requests_finish_and_sleeps_after_the_window() {
        let poll = Arc::new(BusyPoll::new(Poller::Spin));
        let spinner = tokio::spawn({
            let poll = poll.clone();
            async move { poll.run().await }
        });
        turns(10).await;
        assert!(!poll.is_asleep(), "within the window it spins");
        // Requests keep finishing: the window keeps restarting.
        for _ in 0..5 {
            tokio::time::advance(SPIN_WINDOW / 2).await;
            poll.request_finished();
            turns(10).await;
            assert!(!poll.is_asleep());
        }
        tokio::time::advance(SPIN_WINDOW).await;
        turns(10).await;
        assert!(poll.is_asleep(), "a window without a finished request puts it to sleep");
        poll.request_finished();
        turns(10).await;
        assert!(!poll.is_asleep(), "a finished request wakes it");
        spinner.abort();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn batching_sleeps_after_a_pause_without_answers_until_one_comes() {
        let poll = Arc::new(BusyPoll::new(Poller::Batch { workers: 64 }));
        let batcher = tokio::spawn({
            let poll = poll.clone();
            async move { poll.run().await }
        });
        until_asleep_is(&poll, true).await;
        poll.request_finished();
        until_asleep_is(&poll, false).await;
        // Nothing more finishes: after its next pause it sleeps again.
        until_asleep_is(&poll, true).await;
        batcher.abort();
    }

    #[test]
    fn pauses_aim_at_half_the_answers_within_bounds() {
        let pause = Duration::from_micros(40);
        assert_eq!(next_pause(pause, 32, 64), Duration::from_micros(30), "half answered: shorter");
        assert_eq!(next_pause(pause, 64, 64), Duration::from_micros(30));
        assert_eq!(next_pause(pause, 31, 64), Duration::from_micros(42), "fewer than half: longer");
        assert_eq!(next_pause(SHORTEST_PAUSE, 64, 64), SHORTEST_PAUSE);
        assert_eq!(next_pause(LONGEST_PAUSE, 1, 64), LONGEST_PAUSE);
    }

    #[test]
    fn only_threads_with_enough_workers_batch() {
        assert_eq!(Poller::of(BusyPollMode::Batched, BATCH_MIN_WORKERS), Some(Poller::Batch { workers: 64 }));
        assert_eq!(Poller::of(BusyPollMode::Batched, BATCH_MIN_WORKERS - 1), None);
        assert_eq!(Poller::of(BusyPollMode::Adaptive, 1), Some(Poller::Spin));
        assert_eq!(Poller::of(BusyPollMode::Off, 1_000), None);
    }
}
