//! `asynclab target`: the built-in HTTP target and the TCP echo server as a process of their
//! own, so the load generator and the target can run on different cores or hosts.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::TargetStats;
use super::listener::CountingListener;

/// Settings of `asynclab target`.
#[derive(Debug, Clone, Args)]
pub struct TargetConfig {
    /// Address of the HTTP target (`/targets/hello/{n}`, `/targets/delay/…`, …).
    #[arg(long, env = "ASYNCLAB_TARGET_BIND", default_value = "127.0.0.1:8081")]
    pub bind: SocketAddr,

    /// Address of the TCP echo server.
    #[arg(long, env = "ASYNCLAB_TARGET_ECHO_BIND", default_value = "127.0.0.1:8082")]
    pub echo_bind: SocketAddr,

    /// Runtime worker threads (default: one per core); pin the process with `taskset` to keep it
    /// off the generator's cores.
    #[arg(long, env = "ASYNCLAB_TARGET_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
}

/// Serves both targets until `shutdown` completes.
pub async fn run(config: TargetConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    for address in [config.bind, config.echo_bind] {
        if !address.ip().is_loopback() {
            tracing::warn!(%address, "the target listens off loopback: anyone who can reach it can load it");
        }
    }
    let stats = Arc::new(TargetStats::default());
    let http = TcpListener::bind(config.bind).await.with_context(|| format!("cannot listen on {}", config.bind))?;
    let echo = TcpListener::bind(config.echo_bind).await.with_context(|| format!("cannot listen on {}", config.echo_bind))?;
    tracing::info!(http = %http.local_addr()?, echo = %echo.local_addr()?, "asynclab target listening");

    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let echo_server = tokio::spawn(super::echo::serve(echo, stats.clone(), connections.clone(), stop.clone()));
    let router: axum::Router = axum::Router::new().nest("/targets", super::http::router(stats.clone()));
    let http_stop = stop.clone();
    let http_server = axum::serve(CountingListener::new(http, stats), router)
        .with_graceful_shutdown(async move { http_stop.cancelled().await });
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    http_server.await.context("the HTTP target failed")?;
    echo_server.await.context("the echo server failed")?;
    connections.close();
    connections.wait().await;
    Ok(())
}
