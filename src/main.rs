//! The `asynclab` binary: parses the command line and dispatches the subcommand.

use anyhow::Context;
use asynclab::cli::{Cli, Command};
use asynclab::startup::{Application, shutdown_signal};
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = Cli::try_parse().unwrap_or_else(|error| {
        // `run` keeps 2 for missed thresholds, so its usage errors exit 4.
        let run = std::env::args().nth(1).as_deref() == Some("run");
        let code = if !error.use_stderr() {
            0
        } else if run {
            asynclab::client::Outcome::Usage.code()
        } else {
            2
        };
        let _ = error.print();
        std::process::exit(code)
    });
    if let Some(Command::Target(config)) = cli.command {
        return target(config);
    }
    if let Some(Command::Run(args)) = cli.command {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
        let outcome = runtime.block_on(asynclab::client::run(args));
        std::process::exit(outcome.code());
    }
    if let Some(Command::Token(args)) = cli.command {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
        std::process::exit(runtime.block_on(asynclab::client::token::run(args)));
    }
    tokio::runtime::Runtime::new().context("cannot start the runtime")?.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Openapi) => {
            let document = asynclab::api::openapi().to_pretty_json().context("cannot render the OpenAPI document")?;
            println!("{document}");
            Ok(())
        }
        Some(Command::Serve(config)) => serve(config).await,
        Some(Command::Target(_)) => unreachable!("the target runs on a runtime of its own"),
        Some(Command::Run(_) | Command::Token(_)) => unreachable!("the clients run on a runtime of their own"),
        Some(Command::Child(args)) => asynclab::child::run(args).await,
        None => serve(cli.serve).await,
    }
}

/// The target on a runtime with the requested number of workers.
fn target(config: asynclab::targets::standalone::TargetConfig) -> anyhow::Result<()> {
    asynclab::telemetry::init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = config.workers {
        runtime.worker_threads(usize::from(workers));
    }
    let runtime = runtime.enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(asynclab::targets::standalone::run(config, shutdown_signal()))
}

async fn serve(config: asynclab::config::ServeConfig) -> anyhow::Result<()> {
    asynclab::telemetry::init();
    let application = Application::build(config).await?;
    application.run_until_stopped(shutdown_signal()).await
}
