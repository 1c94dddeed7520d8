//! The external services experiments work against, each configured by a URL: the target
//! databases of the `database` experiment and the Redis of the `redis` experiment. Each is built
//! once at start-up (by [`super::Services::build`]) without waiting for a connection, so an
//! unreachable one never stops the server; `/readyz` reports its state and shutdown closes it.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use fred::prelude::{ClientLike, Config as RedisConfig, Pool as RedisPool, ReconnectPolicy};
use fred::types::Builder as RedisBuilder;
use secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// How long a readiness check waits for one dependency.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long taking a connection from a target database pool (connecting included) may take.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long start-up waits for Redis before going on without it (it keeps reconnecting).
const REDIS_STARTUP_WAIT: Duration = Duration::from_secs(2);
/// How long one Redis connection attempt may take.
pub const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one Redis command may take before it fails.
pub const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in the shared Redis pool: it only serves health checks and clean-up, experiments
/// build pools of the size they measure.
const SHARED_REDIS_POOL_SIZE: usize = 2;
/// How long closing one dependency at shutdown may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The Redis every `redis` job talks to.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// The parsed `REDIS_URL`; jobs build their own clients from it, so the pool they measure
    /// is exactly the size they ask for.
    pub config: RedisConfig,
    /// A small shared pool, reconnecting in the background, for readiness checks and the
    /// `redis` experiment's key clean-up.
    pub pool: RedisPool,
    /// Whether `REDIS_URL` asks for TLS (`rediss://`, `valkeys://`), which the parsed
    /// configuration does not keep.
    pub tls: bool,
}

/// A lazily connecting pool on `url`, or an error when the URL is malformed.
pub fn postgres_target(url: &SecretString, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url.expose_secret()).context("ASYNCLAB_PG_TARGET_URL is not a PostgreSQL URL")?;
    Ok(PgPoolOptions::new().max_connections(max_connections).acquire_timeout(ACQUIRE_TIMEOUT).connect_lazy_with(options))
}

/// A lazily connecting pool on `url`, or an error when the URL is malformed.
pub fn mysql_target(url: &SecretString, max_connections: u32) -> anyhow::Result<MySqlPool> {
    let options = MySqlConnectOptions::from_str(url.expose_secret()).context("ASYNCLAB_MYSQL_TARGET_URL is not a MySQL URL")?;
    Ok(MySqlPoolOptions::new().max_connections(max_connections).acquire_timeout(ACQUIRE_TIMEOUT).connect_lazy_with(options))
}

/// The Redis target on `url`: waits briefly for its first connection, then goes on either way
/// (the shared pool keeps reconnecting in the background).
pub async fn redis_target(url: &SecretString) -> anyhow::Result<RedisTarget> {
    let config = RedisConfig::from_url(url.expose_secret()).context("REDIS_URL is not a Redis URL")?;
    let scheme = url::Url::parse(url.expose_secret()).map(|url| url.scheme().to_string()).unwrap_or_default();
    let tls = scheme.starts_with("rediss") || scheme.starts_with("valkeys");
    let mut shared_config = config.clone();
    // Retry a first connection that fails instead of giving up: Redis may come up later.
    shared_config.fail_fast = false;
    let pool = RedisBuilder::from_config(shared_config)
        .with_connection_config(|connection| connection.connection_timeout = REDIS_CONNECT_TIMEOUT)
        .with_performance_config(|performance| performance.default_command_timeout = REDIS_COMMAND_TIMEOUT)
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build_pool(SHARED_REDIS_POOL_SIZE)
        .context("cannot build the Redis pool")?;
    pool.connect_pool();
    if tokio::time::timeout(REDIS_STARTUP_WAIT, pool.wait_for_connect()).await.is_err() {
        tracing::warn!("Redis is unreachable for now; the redis experiment will fail until it answers");
    }
    Ok(RedisTarget { config, pool, tls })
}

/// The state of one dependency as readiness shows it: `ok`, `unreachable` or `timed out`.
pub async fn check<T, E: std::fmt::Display>(name: &str, probe: impl Future<Output = Result<T, E>>) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(_)) => "ok".into(),
        Ok(Err(error)) => {
            tracing::warn!(dependency = name, %error, "dependency check failed");
            "unreachable".into()
        }
        Err(_) => "timed out".into(),
    }
}

/// Runs `close` for at most [`CLOSE_TIMEOUT`], logging when it takes longer.
pub async fn close_within(name: &str, close: impl Future<Output = ()>) {
    if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
        tracing::warn!(dependency = name, "closing took too long; going on");
    }
}

impl RedisTarget {
    /// Quits the shared pool's connections.
    pub async fn close(&self) {
        close_within("redis", async {
            let _ = self.pool.quit().await;
        })
        .await;
    }
}
