//! The command line: the subcommands and the arguments of each, parsed once in `main`.

use clap::{Parser, Subcommand};

use crate::child::ChildArgs;
use crate::client::RunArgs;
use crate::client::token::TokenArgs;
use crate::config::ServeConfig;
use crate::targets::standalone::TargetConfig;

/// asynclab: async I/O experiments as an HTTP service.
#[derive(Debug, Parser)]
#[command(name = "asynclab", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings for `serve` when the subcommand is omitted.
    #[command(flatten)]
    pub serve: ServeConfig,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start-up, never moved around")]
pub enum Command {
    /// Run the control plane (the default).
    Serve(ServeConfig),
    /// Print the OpenAPI document (the committed openapi/openapi.json is its output).
    Openapi,
    /// Launch an experiment on a server, follow it, print its report. Exit code: 0 succeeded,
    /// 1 failed, 2 thresholds missed, 3 cancelled (also on --timeout or Ctrl-C), 4 usage or
    /// connection error.
    Run(RunArgs),
    /// Manage a server's API tokens: create (the secret is printed once), list, revoke. Needs
    /// an admin token (ASYNCLAB_TOKEN). Exit code: 0 done, 1 refused or failed.
    Token(TokenArgs),
    /// Run only the built-in load target: the HTTP endpoints and a TCP echo server.
    Target(TargetConfig),
    /// The built-in child program of the `subprocess` experiment.
    #[command(hide = true)]
    Child(ChildArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
