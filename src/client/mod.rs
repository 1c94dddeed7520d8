//! The `asynclab run` client for CI: launches an experiment on a server, follows its events,
//! prints the report and exits with a code a script can branch on.
//!
//! Exit codes: 0 succeeded, 1 failed, 2 thresholds missed, 3 cancelled or interrupted
//! (including the client's own `--timeout` and Ctrl-C, which cancel the job on the server),
//! 4 usage or connection error (including a launch the server refused).

pub mod api;
pub mod display;
pub mod duration;
pub mod endpoints;
pub mod follow;
pub mod params;
pub mod report;
pub mod token;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use secrecy::SecretString;
use serde_json::Value;

use self::api::{Launch, Server};
use self::display::Display;

/// How a run ended, as the process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The job succeeded.
    Succeeded = 0,
    /// The job failed.
    Failed = 1,
    /// The job ran but missed its thresholds (error kind `thresholds`).
    ThresholdsMissed = 2,
    /// The job was cancelled or interrupted, or the client stopped waiting and cancelled it.
    Cancelled = 3,
    /// Bad usage, an unreachable server, or a launch the server refused.
    Usage = 4,
}

impl Outcome {
    /// The outcome a job's final state stands for.
    pub fn of_job(job: &Value) -> Outcome {
        match job["status"].as_str() {
            Some("succeeded") => Outcome::Succeeded,
            Some("failed") if job["error"]["kind"] == "thresholds" => Outcome::ThresholdsMissed,
            Some("failed") => Outcome::Failed,
            _ => Outcome::Cancelled,
        }
    }

    /// The process exit code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Arguments of `asynclab run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The experiment kind, e.g. `http-fanout` (GET /experiments lists them).
    pub kind: String,

    /// The server's URL.
    #[arg(long, env = "ASYNCLAB_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: url::Url,

    /// A parameter KEY=VALUE; VALUE is JSON when it parses as JSON, text otherwise; dotted keys
    /// nest (`-p thresholds.p99_ms=50`). Overrides the parameters file.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// A JSON file with the parameters, `-` for standard input.
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,

    /// The job's time limit on the server in milliseconds (the launch's `?timeout_ms=`).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: Option<u64>,

    /// How long to wait for the job (e.g. `30s`, `5m`); then it is cancelled and the exit code is 3.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub timeout: Option<Duration>,

    /// Print the finished job as JSON on standard output instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Print the job's id and exit at once.
    #[arg(long, conflicts_with_all = ["json", "timeout"])]
    pub no_wait: bool,

    /// Bearer token for a server that requires one.
    #[arg(long, env = "ASYNCLAB_TOKEN", hide_env_values = true)]
    pub token: Option<SecretString>,
}

/// Runs the client; the outcome is the process's exit code.
pub async fn run(args: RunArgs) -> Outcome {
    match drive(args).await {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("asynclab run: {error:#}");
            Outcome::Usage
        }
    }
}

async fn drive(args: RunArgs) -> anyhow::Result<Outcome> {
    let params = params::collect(args.params_file.as_deref(), &args.params)?;
    let server = Server::new(&args.server, args.token.clone())?;
    let job = match server.launch(&args.kind, &params, args.timeout_ms).await? {
        Launch::Accepted(job) => job,
        Launch::Refused(problem) => {
            eprintln!("asynclab run: the server refused the launch: {problem}");
            return Ok(Outcome::Usage);
        }
    };
    let id = job["id"].as_str().context("the accepted job has no id")?.to_string();
    if args.no_wait {
        println!("{id}");
        return Ok(Outcome::Succeeded);
    }
    let mut display = Display::for_stderr();
    display.note(&format!("job {id} ({}) launched", args.kind));
    let deadline = async {
        match args.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    let stopped = tokio::select! {
        ended = follow::follow(&server, &id, &mut display) => {
            ended?;
            None
        }
        () = deadline => Some("the --timeout passed"),
        signal = tokio::signal::ctrl_c() => {
            signal.context("cannot listen for Ctrl-C")?;
            Some("interrupted")
        }
    };
    if let Some(why) = stopped {
        display.note(&format!("{why}: cancelling job {id}"));
        server.cancel(&id).await?;
    }
    display.finish();
    let job = server.job(&id).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&job).context("cannot render the job")?);
    } else {
        print!("{}", report::render(&job));
    }
    Ok(Outcome::of_job(&job))
}
