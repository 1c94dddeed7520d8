//! One child process from spawn to reaping: a cleared environment and the sandbox as its
//! directory, its output read to the end, SIGTERM at its deadline, SIGKILL `kill_after` later,
//! and always a `wait()` so no zombie is left.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use utoipa::ToSchema;

use super::output::{OutputCaps, StreamName, StreamReport, read_lines};
use super::params::ProcessSpec;
use super::{ProcessTransition, RunEvent};
use crate::cpu::CpuMeter;
use crate::cpu::process::ChildExit;
use crate::cpu::thread::CpuTimes;
use crate::services::programs::AllowedProgram;
use crate::stats::millis;

/// The only environment a child gets.
const CHILD_ENV: [(&str, &str); 2] = [("PATH", "/usr/bin:/bin"), ("LANG", "C")];

/// What every process of a run shares.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// The wait between SIGTERM and SIGKILL.
    pub kill_after: Duration,
    /// How much output is logged.
    pub caps: OutputCaps,
    /// The children's working directory: the job's sandbox.
    pub sandbox: PathBuf,
    /// When the run started, for `started_ms`.
    pub run_started: Instant,
    /// The job's CPU ledger: each child's CPU is added once it has exited.
    pub cpu: CpuMeter,
}

/// Processes alive now and at most, counted from spawn to reaping.
#[derive(Debug, Default)]
pub struct AliveGauge {
    alive: AtomicU32,
    peak: AtomicU32,
}

impl AliveGauge {
    fn spawned(&self) -> u32 {
        let alive = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(alive, Ordering::SeqCst);
        alive
    }

    fn reaped(&self) -> u32 {
        self.alive.fetch_sub(1, Ordering::SeqCst) - 1
    }

    /// The most processes that were alive at once.
    pub fn peak(&self) -> u32 {
        self.peak.load(Ordering::SeqCst)
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessOutcome {
    /// It exited with a code.
    Exited,
    /// A signal ended it.
    Signalled,
    /// It could not be started or waited for (see `error`).
    Failed,
}

/// One process's fate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessReport {
    /// Its index in the parameters.
    pub index: usize,
    /// The program's allowlist name.
    pub program: String,
    /// How it ended.
    #[schema(inline)]
    pub outcome: ProcessOutcome,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal number that ended it, when one did.
    pub signal: Option<i32>,
    /// That signal's name, e.g. `SIGTERM`.
    pub signal_name: Option<String>,
    /// Whether it was still running at its `timeout_ms`.
    pub timed_out: bool,
    /// Whether SIGTERM was sent to it.
    pub sigterm_sent: bool,
    /// Whether SIGKILL was sent to it (it outlived SIGTERM by `kill_after_ms`).
    pub sigkill_sent: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// When it was started, from the run's start.
    pub started_ms: f64,
    /// From spawn until reaped.
    pub duration_ms: f64,
    /// Its CPU time (user and system, with that of the children it waited for), read from the
    /// kernel after it exited; absent when it could not be read (it never started, or the
    /// kernel has no pidfds).
    pub cpu_ms: Option<f64>,
    /// Its standard output.
    pub stdout: StreamReport,
    /// Its standard error.
    pub stderr: StreamReport,
}

/// Runs process `index` to its end and reports it.
pub async fn run_process(
    index: usize,
    spec: &ProcessSpec,
    program: &AllowedProgram,
    settings: &ProcessSettings,
    gauge: &AliveGauge,
    events: &mpsc::Sender<RunEvent>,
) -> ProcessReport {
    let started = Instant::now();
    let mut report = ProcessReport {
        index,
        program: spec.program.clone(),
        outcome: ProcessOutcome::Failed,
        exit_code: None,
        signal: None,
        signal_name: None,
        timed_out: false,
        sigterm_sent: false,
        sigkill_sent: false,
        error: None,
        started_ms: millis(started - settings.run_started),
        duration_ms: 0.0,
        cpu_ms: None,
        stdout: StreamReport::default(),
        stderr: StreamReport::default(),
    };
    let mut command = Command::new(&program.path);
    command
        .args(&program.leading_args)
        .args(&spec.args)
        .env_clear()
        .envs(CHILD_ENV)
        .current_dir(&settings.sandbox)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which
    // is async-signal-safe. It makes the kernel kill the child when the server dies without
    // running its clean-up (SIGKILL, a crash), so no child outlives the job.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            report.error = Some(format!("cannot start {}: {error}", spec.program));
            return report;
        }
    };
    let alive = gauge.spawned();
    let pid = child.id();
    let exit = pid.and_then(ChildExit::watch);
    let _ = events.send(RunEvent::Transition(ProcessTransition { process: index, state: "started", pid, alive })).await;

    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let read_stdout = async {
        match stdout {
            Some(stream) => read_lines(stream, index, StreamName::Stdout, settings.caps, events).await,
            None => StreamReport::default(),
        }
    };
    let read_stderr = async {
        match stderr {
            Some(stream) => read_lines(stream, index, StreamName::Stderr, settings.caps, events).await,
            None => StreamReport::default(),
        }
    };
    let timeout_after = Duration::from_millis(spec.timeout_ms);
    let ((status, cpu), stdout, stderr) =
        tokio::join!(supervise(&mut child, exit.as_ref(), timeout_after, settings.kill_after, &mut report), read_stdout, read_stderr);
    if let Some(times) = cpu {
        report.cpu_ms = Some((times.user_micros + times.system_micros) as f64 / 1000.0);
        settings.cpu.add_process(times);
    }
    let alive = gauge.reaped();
    report.duration_ms = millis(started.elapsed());
    report.stdout = stdout;
    report.stderr = stderr;
    match status {
        Ok(status) => record_status(&mut report, status),
        Err(error) => report.error = Some(format!("cannot wait for {}: {error}", spec.program)),
    }
    let state = match report.outcome {
        ProcessOutcome::Exited => "exited",
        ProcessOutcome::Signalled => "signalled",
        ProcessOutcome::Failed => "failed",
    };
    let _ = events.send(RunEvent::Transition(ProcessTransition { process: index, state, pid, alive })).await;
    report
}

/// Waits for the child; past `timeout_after` sends SIGTERM, and SIGKILL `kill_after` later.
/// Returns only once the child is reaped, with its CPU time when `exit` could read it.
async fn supervise(
    child: &mut Child,
    exit: Option<&ChildExit>,
    timeout_after: Duration,
    kill_after: Duration,
    report: &mut ProcessReport,
) -> (std::io::Result<ExitStatus>, Option<CpuTimes>) {
    if let Ok(reaped) = timeout(timeout_after, reap(child, exit)).await {
        return reaped;
    }
    report.timed_out = true;
    report.sigterm_sent = child.id().is_some_and(terminate);
    if let Ok(reaped) = timeout(kill_after, reap(child, exit)).await {
        return reaped;
    }
    report.sigkill_sent = child.start_kill().is_ok();
    reap(child, exit).await
}

/// Waits for the child to exit, reads its CPU time while it is a zombie, then reaps it.
/// Cancel-safe: until the child has exited nothing has happened, and once it has, reaping it
/// does not wait.
async fn reap(child: &mut Child, exit: Option<&ChildExit>) -> (std::io::Result<ExitStatus>, Option<CpuTimes>) {
    let Some(exit) = exit else { return (child.wait().await, None) };
    exit.exited().await;
    let times = exit.times();
    (child.wait().await, times)
}

/// Sends SIGTERM to `pid`.
fn terminate(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill(2) takes two integers and touches no memory of this process. `pid` is a child
    // not yet reaped (tokio reports no id after reaping), so it cannot name another process.
    unsafe { libc::kill(pid, libc::SIGTERM) == 0 }
}

fn record_status(report: &mut ProcessReport, status: ExitStatus) {
    if let Some(code) = status.code() {
        report.outcome = ProcessOutcome::Exited;
        report.exit_code = Some(code);
    } else if let Some(signal) = status.signal() {
        report.outcome = ProcessOutcome::Signalled;
        report.signal = Some(signal);
        report.signal_name = Some(signal_name(signal));
    }
}

/// The usual name of signal `number`.
fn signal_name(number: i32) -> String {
    let name = match number {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("SIG{number}"),
    };
    name.into()
}
