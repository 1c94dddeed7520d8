//! `asynclab target`: the built-in HTTP target and the TCP echo server as a process of their
//! own, so the load generator and the target can run on different cores or hosts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::TargetStats;
use super::listener::CountingListener;
use super::tls_listener::TlsListener;

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

    /// Serve `https` instead of `http`: a PEM certificate chain (with `--tls-key`). ALPN offers
    /// HTTP/2 and HTTP/1.1.
    #[arg(long, env = "ASYNCLAB_TARGET_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of `--tls-cert`.
    #[arg(long, env = "ASYNCLAB_TARGET_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Serves both targets until `shutdown` completes.
pub async fn run(config: TargetConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    for address in [config.bind, config.echo_bind] {
        if !address.ip().is_loopback() {
            tracing::warn!(%address, "the target listens off loopback: anyone who can reach it can load it");
        }
    }
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(certificate), Some(key)) => Some(crate::tls::server_config(certificate, key)?),
        _ => None,
    };
    let stats = Arc::new(TargetStats::default());
    let http = TcpListener::bind(config.bind).await.with_context(|| format!("cannot listen on {}", config.bind))?;
    let echo = TcpListener::bind(config.echo_bind).await.with_context(|| format!("cannot listen on {}", config.echo_bind))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(http = %http.local_addr()?, scheme, echo = %echo.local_addr()?, "asynclab target listening");

    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let echo_server = tokio::spawn(super::echo::serve(echo, stats.clone(), connections.clone(), stop.clone()));
    let router: axum::Router = axum::Router::new().nest("/targets", super::http::router(stats.clone()));
    let http_stop = stop.clone();
    let stopped = async move { http_stop.cancelled().await };
    let listener = CountingListener::new(http, stats);
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    match tls {
        Some(tls) => axum::serve(TlsListener::new(listener, tls)?, router).with_graceful_shutdown(stopped).await,
        None => axum::serve(listener, router).with_graceful_shutdown(stopped).await,
    }
    .context("the HTTP target failed")?;
    echo_server.await.context("the echo server failed")?;
    connections.close();
    connections.wait().await;
    Ok(())
}
