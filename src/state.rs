//! Application state shared by every request handler: the store, the event bus, the runner and
//! the shared clients, built once at start-up and cheap to clone.

use std::sync::Arc;

use fred::prelude::ClientLike;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServeConfig;
use crate::dependencies::{self, RedisTarget};
use crate::jobs::events::EventBus;
use crate::jobs::runner::Runner;
use crate::outbound::OutboundPolicy;
use crate::store::JobStore;
use crate::targets::TargetStats;

/// Clients and policies experiments share, built once.
#[derive(Debug, Default)]
pub struct Services {
    /// Where experiments may connect.
    pub outbound: OutboundPolicy,
    /// The CAs `https` targets are checked against.
    pub tls_roots: crate::tls::TrustedRoots,
    /// The `database` experiment's PostgreSQL target (`ASYNCLAB_PG_TARGET_URL`), when configured.
    pub pg_target: Option<sqlx::PgPool>,
    /// The `database` experiment's MySQL target (`ASYNCLAB_MYSQL_TARGET_URL`), when configured.
    pub mysql_target: Option<sqlx::MySqlPool>,
    /// The `redis` experiment's Redis (`REDIS_URL`), when configured.
    pub redis: Option<RedisTarget>,
    /// The programs the `subprocess` experiment may run (`ASYNCLAB_ALLOW_PROGRAMS`), resolved.
    pub programs: crate::experiments::subprocess::allowlist::ProgramAllowlist,
    /// The `sftp` experiment's server: `ASYNCLAB_SFTP_URL`, or the in-process one.
    pub sftp: Option<crate::experiments::sftp::target::SftpTarget>,
    /// The `s3` experiment's endpoint and client: `AWS_ENDPOINT_URL_S3`, or the in-process one.
    pub s3: Option<crate::experiments::s3::target::S3Target>,
    /// The server's Prometheus measurements (the runner, the event writer and experiments add to them).
    pub meters: crate::meters::Meters,
}

impl Services {
    /// Each configured dependency and its state (`ok`, `unreachable`, `timed out`), checked
    /// concurrently within [`crate::dependencies::CHECK_TIMEOUT`].
    pub async fn dependency_checks(&self) -> Vec<(&'static str, String)> {
        let postgres = async {
            match &self.pg_target {
                Some(pool) => Some(dependencies::check("postgres_target", sqlx::query("select 1").execute(pool)).await),
                None => None,
            }
        };
        let mysql = async {
            match &self.mysql_target {
                Some(pool) => Some(dependencies::check("mysql_target", sqlx::query("select 1").execute(pool)).await),
                None => None,
            }
        };
        let redis = async {
            match &self.redis {
                Some(redis) => Some(dependencies::check("redis", redis.pool.ping::<()>(None)).await),
                None => None,
            }
        };
        // An endpoint the outbound policy refuses is never contacted.
        let s3 = async {
            match self.s3.as_ref().filter(|target| target.unavailable.is_none()) {
                Some(target) => Some(dependencies::check("s3", target.client.list_buckets().send()).await),
                None => None,
            }
        };
        let (postgres, mysql, redis, s3) = tokio::join!(postgres, mysql, redis, s3);
        [("postgres_target", postgres), ("mysql_target", mysql), ("redis", redis), ("s3", s3)]
            .into_iter()
            .filter_map(|(name, state)| state.map(|state| (name, state)))
            .collect()
    }

    /// Closes the dependency pools so no connection outlives the server.
    pub async fn close(&self) {
        if let Some(pool) = &self.pg_target {
            dependencies::close_within("postgres_target", pool.close()).await;
        }
        if let Some(pool) = &self.mysql_target {
            dependencies::close_within("mysql_target", pool.close()).await;
        }
        if let Some(redis) = &self.redis {
            redis.close().await;
        }
        if let Some(server) = self.sftp.as_ref().and_then(|target| target.server.as_ref()) {
            server.stop();
        }
        if let Some(s3) = &self.s3 {
            s3.close().await;
        }
    }
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// Where jobs and events live.
    pub store: Arc<dyn JobStore>,
    /// Live events.
    pub bus: EventBus,
    /// Runs jobs.
    pub runner: Runner,
    /// Shared clients for experiments.
    pub services: Arc<Services>,
    /// The configuration the server started with.
    pub config: Arc<ServeConfig>,
    /// Counters of the built-in target.
    pub target_stats: Arc<TargetStats>,
    /// Per-client launch rate and per-job stream limits.
    pub limits: Arc<crate::api::limits::Limits>,
    /// Fired when shutdown begins: new jobs are refused from then on.
    pub stopping: CancellationToken,
    /// Event streams, tracked so shutdown can wait for them.
    pub streams: TaskTracker,
    /// Fired when open event streams must close (after running jobs were recorded).
    pub streams_closing: CancellationToken,
}
