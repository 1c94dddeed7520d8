//! Readings of one OS thread's CPU time from the kernel: the thread CPU clock and
//! `getrusage(RUSAGE_THREAD)` for the calling thread (microseconds), `/proc/self/task/<tid>/stat`
//! for another live thread of this process (clock ticks, 10 ms on most systems). Both come from
//! the same kernel accounting, so a baseline taken one way and a reading taken the other
//! subtract correctly, to a tick each for user and system time.

use std::ops::{Add, Sub};

/// User and system CPU time, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Time spent running the program's own code.
    pub user_micros: u64,
    /// Time the kernel spent working for it (system calls, page faults).
    pub system_micros: u64,
}

impl Add for CpuTimes {
    type Output = CpuTimes;

    fn add(self, other: CpuTimes) -> CpuTimes {
        CpuTimes { user_micros: self.user_micros + other.user_micros, system_micros: self.system_micros + other.system_micros }
    }
}

impl Sub for CpuTimes {
    type Output = CpuTimes;

    /// Saturating: a reading in ticks may round below a baseline in microseconds.
    fn sub(self, baseline: CpuTimes) -> CpuTimes {
        CpuTimes {
            user_micros: self.user_micros.saturating_sub(baseline.user_micros),
            system_micros: self.system_micros.saturating_sub(baseline.system_micros),
        }
    }
}

/// The kernel's id of the calling thread (what `/proc/self/task/` lists).
pub fn current_tid() -> i32 {
    // SAFETY: gettid(2) takes no argument and cannot fail.
    unsafe { libc::gettid() }
}

/// The calling thread's CPU time so far. The total comes from `CLOCK_THREAD_CPUTIME_ID`, which
/// is exact and current; `getrusage(RUSAGE_THREAD)` lags behind for the running thread (its
/// runtime is brought up to date only at the next scheduler event), so it is used only to split
/// the total into user and system time, in the proportion the kernel's tick sampling saw.
pub fn current_thread_times() -> CpuTimes {
    let total = thread_cpu_clock_micros();
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage(2) writes one `rusage` into the pointer it is given, which points to a
    // live, writable value of that type; RUSAGE_THREAD is supported since Linux 2.6.26.
    let status = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let (user, system) = if status == 0 { (timeval_micros(usage.ru_utime), timeval_micros(usage.ru_stime)) } else { (0, 0) };
    if user + system == 0 {
        return CpuTimes { user_micros: total, system_micros: 0 };
    }
    let user_micros = (u128::from(total) * u128::from(user) / u128::from(user + system)) as u64;
    CpuTimes { user_micros, system_micros: total - user_micros }
}

/// The calling thread's CPU time in microseconds, exact and current.
fn thread_cpu_clock_micros() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime(2) writes one `timespec` into the pointer it is given, which points
    // to a live, writable value of that type.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if status != 0 {
        return 0;
    }
    (now.tv_sec as u64).saturating_mul(1_000_000).saturating_add(now.tv_nsec as u64 / 1000)
}

fn timeval_micros(time: libc::timeval) -> u64 {
    (time.tv_sec as u64).saturating_mul(1_000_000).saturating_add(time.tv_usec as u64)
}

/// CPU time of live thread `tid` of this process, or `None` once it has exited.
pub fn thread_times(tid: i32) -> Option<CpuTimes> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    parse_stat(&stat).map(|times| times.own)
}

/// What a `/proc/<pid>/stat` line says of a process's (or thread's) CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatTimes {
    /// Its own CPU time (`utime`, `stime`).
    pub own: CpuTimes,
    /// The CPU time of the children it waited for (`cutime`, `cstime`).
    pub waited_children: CpuTimes,
    /// Its thread count (`num_threads`).
    pub threads: u32,
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and may hold
/// spaces or parentheses itself, so fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<StatTimes> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; utime is field 14.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| -> Option<u64> { fields.get(number - 3)?.parse().ok() };
    let ticks = clock_ticks_per_second();
    let micros = |number: usize| -> Option<u64> { Some(field(number)?.saturating_mul(1_000_000) / ticks) };
    Some(StatTimes {
        own: CpuTimes { user_micros: micros(14)?, system_micros: micros(15)? },
        waited_children: CpuTimes { user_micros: micros(16)?, system_micros: micros(17)? },
        threads: u32::try_from(field(20)?).unwrap_or(u32::MAX),
    })
}

/// The unit of `/proc` CPU times (`USER_HZ`).
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf(3) reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|ticks| *ticks > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_from_after_the_command_name() {
        let ticks = clock_ticks_per_second();
        let line = format!("42 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 {} {} {} {} 20 0 3 0 12345", ticks * 2, ticks / 2, ticks, 0);
        let times = parse_stat(&line).unwrap();
        assert_eq!(times.own, CpuTimes { user_micros: 2_000_000, system_micros: 500_000 });
        assert_eq!(times.waited_children, CpuTimes { user_micros: 1_000_000, system_micros: 0 });
        assert_eq!(times.threads, 3);
        assert_eq!(parse_stat("42 (cut short) S 1 2"), None);
    }

    #[test]
    fn spinning_shows_in_both_readings() {
        let before = current_thread_times();
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut spent = CpuTimes::default();
        // Spin until the thread has had 30 ms of CPU, however busy the machine is.
        while spent.user_micros + spent.system_micros < 30_000 && std::time::Instant::now() < give_up {
            std::hint::black_box(spent);
            spent = current_thread_times() - before;
        }
        assert!(spent.user_micros + spent.system_micros >= 30_000, "{spent:?}");
        let by_proc = thread_times(current_tid()).expect("this thread is alive");
        // /proc counts whole ticks: user and system each at most one tick (10 ms at the usual
        // 100 Hz) below.
        assert!(by_proc.user_micros + by_proc.system_micros + 20_000 >= spent.user_micros + spent.system_micros);
        assert_eq!(thread_times(-1), None);
    }
}
