//! The hidden `asynclab child` subcommand: a small, deterministic program for the `subprocess`
//! experiment's demos and tests. It prints numbered lines at an interval to stdout and/or
//! stderr, then exits with a given code or hangs (optionally ignoring SIGTERM, so only SIGKILL
//! ends it).

use std::io::Write;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Where the child prints its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChildStream {
    /// Standard output only.
    Stdout,
    /// Standard error only.
    Stderr,
    /// Each line to both, stdout first.
    Both,
}

/// What the child does.
#[derive(Debug, Clone, Args)]
pub struct ChildArgs {
    /// Lines to print.
    #[arg(long, default_value_t = 3)]
    pub lines: u32,
    /// Pause before each line after the first.
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// Where the lines go.
    #[arg(long, value_enum, default_value_t = ChildStream::Stdout)]
    pub stream: ChildStream,
    /// Each line is `PREFIX N`; a unique prefix also marks the process in the process table.
    #[arg(long, default_value = "line")]
    pub prefix: String,
    /// Pads each line with dots to this many bytes (for output caps).
    #[arg(long)]
    pub width: Option<usize>,
    /// First prints `env COUNT: NAMES` (the names of its environment variables, sorted).
    #[arg(long)]
    pub print_env: bool,
    /// Ignores SIGTERM, so that only SIGKILL stops it.
    #[arg(long)]
    pub ignore_term: bool,
    /// Never exits after printing.
    #[arg(long)]
    pub hang: bool,
    /// The exit code once the lines are printed (unless it hangs).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=255))]
    pub exit_code: i32,
}

/// Runs the child; returns only when it hangs forever or exits the process.
pub async fn run(args: ChildArgs) -> ! {
    // Once a handler is registered the default action (terminate) no longer applies: the
    // signal is queued in a stream nobody reads.
    let _ignored_terms =
        if args.ignore_term { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok() } else { None };
    if args.print_env {
        let mut names: Vec<String> = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned()).collect();
        names.sort();
        emit(&mut std::io::stdout(), &format!("env {}: {}", names.len(), names.join(",")));
    }
    for number in 1..=args.lines {
        if number > 1 && args.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        }
        let mut line = format!("{} {number}", args.prefix);
        if let Some(width) = args.width {
            let padding = width.saturating_sub(line.len());
            line.extend(std::iter::repeat_n('.', padding));
        }
        if args.stream != ChildStream::Stderr {
            emit(&mut std::io::stdout(), &line);
        }
        if args.stream != ChildStream::Stdout {
            emit(&mut std::io::stderr(), &line);
        }
    }
    if args.hang {
        std::future::pending::<()>().await;
    }
    std::process::exit(args.exit_code)
}

/// Writes one line and flushes it, so the reader sees it at once; a closed pipe ends the child.
fn emit(stream: &mut impl Write, line: &str) {
    if writeln!(stream, "{line}").and_then(|()| stream.flush()).is_err() {
        std::process::exit(141);
    }
}
