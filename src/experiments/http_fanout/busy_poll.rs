//! Busy polling for a fan-out worker thread in the closed model, with `busy_poll: adaptive` (the
//! default is `off`: per CPU-second it does more, see the README). While answers arrive close
//! together, the thread keeps asking the kernel for ready sockets without blocking instead of
//! sleeping until the next one. A sleeping thread has to be woken for every answer, and the
//! wake-up is paid on the core that delivered the answer — the target's, when the target runs on
//! the same machine — so at full load the target would serve fewer requests per second. Once no
//! request has finished for [`SPIN_WINDOW`], the thread sleeps as usual: a slow target costs no
//! CPU. Each spin first offers the core to any other thread waiting for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a worker thread keeps polling after the last finished request before it sleeps.
pub const SPIN_WINDOW: Duration = Duration::from_micros(200);

/// One worker thread's busy-polling state, shared by the thread's workers and its spinner.
#[derive(Debug, Default)]
pub struct BusyPoll {
    /// Requests finished on the thread.
    finished: AtomicU64,
    /// The spinner is waiting for [`BusyPoll::finished`] to move.
    asleep: AtomicBool,
    wake: Notify,
}

impl BusyPoll {
    /// Notes a finished request: the spinner keeps spinning, or starts again.
    pub fn request_finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        if self.asleep.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Whether the spinner is waiting for a request to finish.
    #[cfg(test)]
    fn is_asleep(&self) -> bool {
        self.asleep.load(Ordering::Relaxed)
    }

    /// Runs beside the thread's workers, on their runtime, until dropped. Each turn yields to
    /// the runtime, which then polls for ready sockets without blocking because a task (this
    /// one) is ready to run again.
    pub async fn spin(&self) {
        let mut seen = self.finished.load(Ordering::Relaxed);
        let mut last_finish = Instant::now();
        loop {
            std::thread::yield_now();
            tokio::task::yield_now().await;
            let finished = self.finished.load(Ordering::Relaxed);
            if finished != seen {
                seen = finished;
                last_finish = Instant::now();
            } else if last_finish.elapsed() >= SPIN_WINDOW {
                self.asleep.store(true, Ordering::Relaxed);
                self.wake.notified().await;
                self.asleep.store(false, Ordering::Relaxed);
                seen = self.finished.load(Ordering::Relaxed);
                last_finish = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Lets the spinner take a few turns.
    async fn turns(count: usize) {
        for _ in 0..count {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn spins_while_requests_finish_and_sleeps_after_the_window() {
        let poll = Arc::new(BusyPoll::default());
        let spinner = tokio::spawn({
            let poll = poll.clone();
            async move { poll.spin().await }
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
}
