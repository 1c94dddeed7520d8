//! The `asynclab` binary: parses the command line and dispatches the subcommand.

use anyhow::Context;
use asynclab::config::{Cli, Command};
use asynclab::startup::{Application, shutdown_signal};
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Target(config)) = cli.command {
        return target(config);
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
