//! `asynclab token create|list|revoke`: managing a server's API tokens from the command line
//! (an admin token is needed; `ASYNCLAB_TOKEN`, the bootstrap token, is one). `create` prints
//! the new token alone on standard output, so `TOKEN=$(asynclab token create …)` captures it;
//! everything else goes to standard error.

use clap::{Args, Subcommand};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::api::Server;

/// Arguments of `asynclab token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: TokenAction,

    /// The server's URL.
    #[arg(long, global = true, env = "ASYNCLAB_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: url::Url,

    /// An admin token of the server.
    #[arg(long, global = true, env = "ASYNCLAB_TOKEN", hide_env_values = true)]
    pub token: Option<SecretString>,
}

/// The token subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum TokenAction {
    /// Create a token; its secret is printed once, on standard output.
    Create {
        /// Its name (1 to 64 of a-z, 0-9, '.', '_', '-'); jobs it launches record it.
        #[arg(long)]
        name: String,
        /// Its role: viewer, launcher or admin.
        #[arg(long)]
        role: String,
        /// How long it works, e.g. 90d, 12h, 30m; unset, until revoked.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// List the tokens (never their secrets).
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke the token with this name, on every replica at once.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Runs the subcommand; the process's exit code: 0 done, 1 refused or failed.
pub async fn run(args: TokenArgs) -> i32 {
    match drive(args).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("asynclab token: {error:#}");
            1
        }
    }
}

async fn drive(args: TokenArgs) -> anyhow::Result<()> {
    let server = Server::new(&args.server, args.token)?;
    match args.action {
        TokenAction::Create { name, role, expires } => {
            let body = json!({"name": name, "role": role, "expires_in": expires});
            let created = server.call(Method::POST, "tokens", Some(&body)).await?;
            eprintln!(
                "token {} ({}) created, {}; this is the only time it is shown:",
                created["name"].as_str().unwrap_or_default(),
                created["role"].as_str().unwrap_or_default(),
                created["expires_at"].as_str().map_or("never expires".to_string(), |at| format!("expires {at}")),
            );
            println!("{}", created["token"].as_str().unwrap_or_default());
        }
        TokenAction::List { json } => {
            let tokens = server.call(Method::GET, "tokens", None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                print!("{}", table(&tokens));
            }
        }
        TokenAction::Revoke { name } => {
            let revoked = server.call(Method::DELETE, &format!("tokens/{name}"), None).await?;
            eprintln!("token {} revoked", revoked["name"].as_str().unwrap_or_default());
        }
    }
    Ok(())
}

/// The token list as aligned columns.
fn table(tokens: &Value) -> String {
    let columns = ["name", "role", "state", "created_by", "created_at", "expires_at"];
    let rows: Vec<Vec<String>> = tokens
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|token| columns.iter().map(|column| token[column].as_str().unwrap_or("-").to_string()).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| rows.iter().map(|row| row[index].len()).chain([column.len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut text = line(columns.to_vec());
    for row in &rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_aligned_and_shows_missing_dates_as_dashes() {
        let tokens = json!([
            {"name": "ci", "role": "launcher", "state": "active", "created_by": "bootstrap", "created_at": "2026-12-05T08:00:00Z", "expires_at": null},
            {"name": "dashboard-readonly", "role": "viewer", "state": "revoked", "created_by": "ci", "created_at": "2026-12-05T08:01:00Z", "expires_at": "2027-03-05T08:01:00Z"}
        ]);
        let text = table(&tokens);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("name                role      state"), "{text}");
        assert!(lines[1].starts_with("ci                  launcher  active   bootstrap"), "{text}");
        assert!(lines[1].ends_with("2026-12-05T08:00:00Z  -"), "{text}");
    }
}
