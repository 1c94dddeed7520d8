//! The `asynclab` binary: parses the command line and dispatches the subcommand.

use anyhow::Context;
use asynclab::config::{Cli, Command};
use asynclab::startup::{Application, shutdown_signal};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Openapi) => {
            let document = asynclab::api::openapi().to_pretty_json().context("cannot render the OpenAPI document")?;
            println!("{document}");
            Ok(())
        }
        Some(Command::Serve(config)) => serve(config).await,
        None => serve(cli.serve).await,
    }
}

async fn serve(config: asynclab::config::ServeConfig) -> anyhow::Result<()> {
    asynclab::telemetry::init();
    let application = Application::build(config).await?;
    application.run_until_stopped(shutdown_signal()).await
}
