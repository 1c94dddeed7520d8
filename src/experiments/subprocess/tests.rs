//! Unit tests of the process runner with real programs from /usr/bin or /bin.

use super::*;
use crate::experiments::subprocess::output::StreamName;
use crate::services::programs::ProgramAllowlist;

fn allowed(name: &str) -> AllowedProgram {
    ProgramAllowlist::resolve(&[name.to_string()], None).get(name).cloned().expect("program on this machine")
}

fn spec(program: &str, args: &[&str], timeout_ms: u64) -> (ProcessSpec, AllowedProgram) {
    let spec = ProcessSpec { program: program.into(), args: args.iter().map(|arg| arg.to_string()).collect(), timeout_ms };
    (spec, allowed(program))
}

async fn run(plan: Vec<(ProcessSpec, AllowedProgram)>, concurrency: u32, max_lines: u32) -> (SubprocessReport, Vec<RunEvent>) {
    let sandbox = std::env::temp_dir();
    let settings = ProcessSettings {
        kill_after: Duration::from_millis(500),
        caps: OutputCaps { max_lines, max_line_bytes: 1024 },
        sandbox,
        run_started: Instant::now(),
        cpu: crate::cpu::CpuMeter::new(),
    };
    let (sender, mut receiver) = mpsc::channel(EVENT_BUFFER);
    let collect = async {
        let mut events = Vec::new();
        while let Some(event) = receiver.recv().await {
            events.push(event);
        }
        events
    };
    tokio::join!(run_processes(plan, settings, concurrency, sender), collect)
}

fn lines_of(events: &[RunEvent], process: usize, stream: StreamName) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            RunEvent::Line(line) if line.process == process && line.stream == stream => Some(line.line.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn output_lines_arrive_in_order_and_exit_codes_are_reported() {
    let (report, events) = run(vec![spec("seq", &["1", "5"], 5_000), spec("sleep", &["not-a-number"], 5_000)], 2, 100).await;
    assert_eq!(lines_of(&events, 0, StreamName::Stdout), ["1", "2", "3", "4", "5"]);
    let seq = &report.processes[0];
    assert_eq!((seq.outcome, seq.exit_code, seq.timed_out), (ProcessOutcome::Exited, Some(0), false));
    assert_eq!((seq.stdout.lines, seq.stdout.bytes), (5, 10));
    let sleep = &report.processes[1];
    assert_eq!(sleep.outcome, ProcessOutcome::Exited);
    assert_eq!(sleep.exit_code, Some(1));
    assert!(sleep.stderr.lines >= 1, "sleep complains on stderr: {sleep:?}");
    assert_eq!((report.totals.succeeded, report.totals.exited_nonzero), (1, 1));
    let states: Vec<(usize, &str)> = events
        .iter()
        .filter_map(|event| match event {
            RunEvent::Transition(transition) => Some((transition.process, transition.state)),
            RunEvent::Line(_) => None,
        })
        .collect();
    assert_eq!(states.iter().filter(|(_, state)| *state == "started").count(), 2);
    assert!(states.contains(&(0, "exited")) && states.contains(&(1, "exited")));
}

#[tokio::test]
async fn each_child_reports_the_cpu_the_kernel_counted() {
    let busy = spec("sh", &["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"], 60_000);
    let (report, _) = run(vec![busy, spec("sleep", &["0.2"], 5_000)], 2, 100).await;
    let (shell, sleeper) = (&report.processes[0], &report.processes[1]);
    assert_eq!(shell.exit_code, Some(0), "{shell:?}");
    let shell_cpu = shell.cpu_ms.expect("measured");
    // 300,000 shell loop turns: tens of milliseconds at least, never more than it lived.
    assert!(shell_cpu >= 20.0 && shell_cpu <= shell.duration_ms + 20.0, "{shell:?}");
    assert!(sleeper.cpu_ms.expect("measured") < 50.0, "sleeping costs nearly nothing: {sleeper:?}");
    assert_eq!(report.cpu.processes, 2);
    assert_eq!(report.cpu.scope, crate::cpu::CpuScope::ChildProcesses);
    assert!(report.cpu.total_ms >= shell_cpu, "{:?}", report.cpu);
    assert!(report.cpu.threads >= 1, "the tasks that fed them ran somewhere: {:?}", report.cpu);
}

#[tokio::test]
async fn a_process_past_its_timeout_is_ended_by_sigterm() {
    let (report, _) = run(vec![spec("sleep", &["30"], 50)], 1, 100).await;
    let process = &report.processes[0];
    assert_eq!(process.outcome, ProcessOutcome::Signalled);
    assert_eq!(process.signal_name.as_deref(), Some("SIGTERM"));
    assert!(process.timed_out && process.sigterm_sent && !process.sigkill_sent);
    assert!(process.duration_ms < 5_000.0, "{process:?}");
    assert_eq!(report.totals.timed_out, 1);
}

#[tokio::test]
async fn at_most_concurrency_processes_are_alive_at_once() {
    let plan = (0..6).map(|_| spec("sleep", &["0.05"], 5_000)).collect();
    let (report, _) = run(plan, 2, 100).await;
    assert_eq!(report.max_concurrent, 2);
    assert_eq!(report.totals.succeeded, 6);
    assert!(report.elapsed_ms >= 150.0, "three waves of 50 ms: {}", report.elapsed_ms);
}

#[tokio::test]
async fn output_past_the_line_cap_is_counted_and_flagged() {
    let (report, events) = run(vec![spec("seq", &["1", "100"], 5_000)], 1, 10).await;
    assert_eq!(lines_of(&events, 0, StreamName::Stdout).len(), 10);
    let stdout = &report.processes[0].stdout;
    assert_eq!((stdout.lines, stdout.logged_lines, stdout.dropped_lines, stdout.truncated), (100, 10, 90, true));
}

#[tokio::test]
async fn a_program_that_cannot_start_is_reported_failed() {
    let mut planned = spec("echo", &[], 5_000);
    planned.1.path = "/nonexistent/echo".into();
    let (report, _) = run(vec![planned], 1, 10).await;
    assert_eq!(report.processes[0].outcome, ProcessOutcome::Failed);
    assert!(report.processes[0].error.as_deref().unwrap().contains("cannot start echo"));
    assert_eq!((report.totals.failed, report.max_concurrent), (1, 0));
}
