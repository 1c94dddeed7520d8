//! The `asynclab run` client for CI: launches an experiment on a server, follows its events,
//! prints the report and exits with a code a script can branch on.
//!
//! Exit codes: 0 succeeded, 1 failed, 2 thresholds missed or a regression against the baseline,
//! 3 cancelled or interrupted (including the client's own `--timeout` and Ctrl-C, which cancel
//! the job on the server), 4 usage or connection error (including a launch the server refused
//! and no baseline found without `--baseline-optional`).

pub mod api;
pub mod display;
pub mod duration;
pub mod endpoints;
pub mod follow;
pub mod gate;
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
    Succeeded,
    /// The job failed.
    Failed,
    /// The job ran but missed its thresholds (error kind `thresholds`).
    ThresholdsMissed,
    /// The job ran but regressed against its baseline (error kind `regression`, or the gate of
    /// `--baseline`).
    Regressed,
    /// The job was cancelled or interrupted, or the client stopped waiting and cancelled it.
    Cancelled,
    /// Bad usage, an unreachable server, a launch the server refused, or no baseline.
    Usage,
}

impl Outcome {
    /// The outcome a job's final state stands for.
    pub fn of_job(job: &Value) -> Outcome {
        match job["status"].as_str() {
            Some("succeeded") => Outcome::Succeeded,
            Some("failed") if job["error"]["kind"] == "thresholds" => Outcome::ThresholdsMissed,
            Some("failed") if job["error"]["kind"] == "regression" => Outcome::Regressed,
            Some("failed") => Outcome::Failed,
            _ => Outcome::Cancelled,
        }
    }

    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Outcome::Succeeded => 0,
            Outcome::Failed => 1,
            Outcome::ThresholdsMissed | Outcome::Regressed => 2,
            Outcome::Cancelled => 3,
            Outcome::Usage => 4,
        }
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

    /// A label KEY=VALUE for the job (repeatable), e.g. `--label branch=main --label commit=3f2a9c1`.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// A URL the server POSTs the job's final representation to once it ends (retried with
    /// backoff until a 2xx answer; the host must be in the server's outbound allowlist).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,

    /// Compare the finished job with a baseline: a job id, or a label selector `KEY:VALUE`
    /// (the latest succeeded job of the same kind and parameters with that label). A gated
    /// metric worse beyond its tolerance exits 2; no baseline found exits 4.
    #[arg(long, value_name = "SPEC", conflicts_with = "no_wait")]
    pub baseline: Option<String>,

    /// A gate tolerance METRIC=TOLERANCE (repeatable), e.g. `p99_ms=10%` or `error_rate=0.01`;
    /// none given: the kind's defaults (http-fanout: p50_ms, p99_ms, achieved_rps, error_rate at 10%).
    #[arg(long, value_name = "METRIC=TOLERANCE", requires = "baseline")]
    pub max_regression: Vec<String>,

    /// With --baseline: when no baseline matches, skip the gate instead of exiting 4.
    #[arg(long, requires = "baseline")]
    pub baseline_optional: bool,

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
    let mut params = params::collect(args.params_file.as_deref(), &args.params)?;
    if !args.labels.is_empty() {
        params["labels"] = params::labels(&args.labels)?;
    }
    if let Some(url) = &args.webhook {
        params["webhook"] = serde_json::json!({ "url": url });
    }
    gate::tolerance_query(&args.max_regression)?;
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
    let outcome = Outcome::of_job(&job);
    match &args.baseline {
        Some(baseline) if outcome == Outcome::Succeeded => {
            let gate = gate::GateArgs { baseline, max_regression: &args.max_regression, optional: args.baseline_optional };
            gate::check(&server, &id, &gate, &mut display).await
        }
        _ => Ok(outcome),
    }
}
