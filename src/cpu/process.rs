//! A child process's CPU time, read from `/proc/<pid>/stat` after it has exited and before it
//! is reaped: a pidfd (Linux 5.3+) turns readable when the child exits, while the exited child
//! stays a zombie, with its accounting intact, until its parent waits for it.

use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::thread::{CpuTimes, parse_stat};

/// Watches one child process for its exit without reaping it.
pub struct ChildExit {
    pid: u32,
    pidfd: AsyncFd<OwnedFd>,
}

impl ChildExit {
    /// Watches child `pid`, which must not have been reaped yet. `None` where pidfds are not
    /// available (Linux before 5.3) or the child is already gone. Must run on a tokio runtime.
    pub fn watch(pid: u32) -> Option<Self> {
        let raw_pid = libc::pid_t::try_from(pid).ok()?;
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new file descriptor or -1;
        // it touches no memory of this process.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
        let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
        // SAFETY: `fd` was just returned by pidfd_open and is owned by nothing else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which keeps it open, unchanged,
        // until it is dropped.
        let pidfd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }.ok()?;
        Some(ChildExit { pid, pidfd })
    }

    /// Completes once the child has exited; it is not reaped. Cancel-safe.
    pub async fn exited(&self) {
        // A pidfd stays readable once its process has exited: readiness is never cleared.
        let _ = self.pidfd.readable().await;
    }

    /// The exited child's CPU time, including that of the children it waited for. `None` if
    /// it was reaped already.
    pub fn times(&self) -> Option<CpuTimes> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        let times = parse_stat(&stat)?;
        Some(times.own + times.waited_children)
    }
}
