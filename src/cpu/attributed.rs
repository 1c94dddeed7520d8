//! A future whose polls are charged to a [`CpuMeter`]: the polling thread's CPU time is read
//! before and after each poll. Polls nested inside another attributed poll on the same thread
//! are charged once, by the outermost.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::CpuMeter;
use super::thread::{current_thread_times, current_tid};

thread_local! {
    /// Whether this thread is inside an attributed poll now.
    static ATTRIBUTING: Cell<bool> = const { Cell::new(false) };
}

/// See the module documentation; made by [`CpuMeter::attribute`]. The future is boxed so the
/// wrapper is `Unpin` without a projection crate; one allocation per attributed task.
pub struct Attributed<F> {
    meter: CpuMeter,
    future: Pin<Box<F>>,
}

impl<F> Attributed<F> {
    pub(super) fn new(meter: CpuMeter, future: F) -> Self {
        Attributed { meter, future: Box::pin(future) }
    }
}

impl<F: Future> Future for Attributed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if ATTRIBUTING.get() {
            return self.future.as_mut().poll(cx);
        }
        ATTRIBUTING.set(true);
        // Resets the flag even if the inner poll panics.
        let _reset = ResetOnDrop;
        let before = current_thread_times();
        let polled = self.future.as_mut().poll(cx);
        self.meter.add_poll(current_tid(), current_thread_times() - before);
        polled
    }
}

struct ResetOnDrop;

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        ATTRIBUTING.set(false);
    }
}
