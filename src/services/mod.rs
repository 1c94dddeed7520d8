//! The services experiments use, in one place: the outbound policy and trusted roots, the
//! allowlisted programs, the target databases, Redis, the SFTP server and the S3 endpoint, and
//! the server's measurements. [`Services::build`] makes them once from the configuration,
//! [`Services::readiness`] checks the ones that can be unreachable, [`Services::close`] closes
//! them at shutdown.

pub mod dependencies;
pub mod http_client;
pub mod programs;
pub mod s3;
pub mod sftp;

use anyhow::Context;
use fred::prelude::ClientLike;

use crate::config::ServeConfig;
use crate::meters::Meters;
use crate::outbound::OutboundPolicy;
use crate::tls::TrustedRoots;
use dependencies::RedisTarget;
use http_client::SharedHttpClient;
use programs::ProgramAllowlist;
use s3::S3Target;
use sftp::SftpTarget;

/// A service an experiment kind needs, as the kind declares it (`Experiment::NEEDS`): a kind is
/// available exactly when every service it declares is configured here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// A target database: PostgreSQL, MySQL or both.
    TargetDatabase,
    /// A Redis server.
    Redis,
    /// An SFTP server: the configured one, or the in-process one.
    Sftp,
    /// An S3 endpoint the outbound policy allows, with credentials: the configured one, or the
    /// in-process one.
    S3,
    /// At least one program the `subprocess` experiment may run.
    Programs,
}

/// Clients and policies experiments share, built once.
#[derive(Debug, Default)]
pub struct Services {
    /// Where experiments may connect.
    pub outbound: OutboundPolicy,
    /// The CAs `https` targets are checked against.
    pub tls_roots: TrustedRoots,
    /// The service's own HTTP client (webhooks, `blocking-offload`'s `http` work), pooled and
    /// held to the outbound policy.
    pub http: SharedHttpClient,
    /// The `database` experiment's PostgreSQL target (`ASYNCLAB_PG_TARGET_URL`), when configured.
    pub pg_target: Option<sqlx::PgPool>,
    /// The `database` experiment's MySQL target (`ASYNCLAB_MYSQL_TARGET_URL`), when configured.
    pub mysql_target: Option<sqlx::MySqlPool>,
    /// The `redis` experiment's Redis (`REDIS_URL`), when configured.
    pub redis: Option<RedisTarget>,
    /// The programs the `subprocess` experiment may run (`ASYNCLAB_ALLOW_PROGRAMS`), resolved.
    pub programs: ProgramAllowlist,
    /// The `sftp` experiment's server: `ASYNCLAB_SFTP_URL`, or the in-process one.
    pub sftp: Option<SftpTarget>,
    /// The `s3` experiment's endpoint and client: `AWS_ENDPOINT_URL_S3`, or the in-process one.
    pub s3: Option<S3Target>,
    /// The server's Prometheus measurements (the runner, the event writer and experiments add to them).
    pub meters: Meters,
}

impl Services {
    /// Every service `config` asks for, built without waiting for remote ones to answer (an
    /// unreachable one never stops the server); the in-process SFTP server and S3 endpoint are
    /// started when none is configured. Fails only on configuration that cannot work.
    pub async fn build(config: &ServeConfig) -> anyhow::Result<Services> {
        let outbound = OutboundPolicy::new(config.allow_hosts.clone());
        let pg_target =
            config.pg_target_url.as_ref().map(|url| dependencies::postgres_target(url, config.target_db_max_connections)).transpose()?;
        let mysql_target =
            config.mysql_target_url.as_ref().map(|url| dependencies::mysql_target(url, config.target_db_max_connections)).transpose()?;
        let redis = match &config.redis_url {
            Some(url) => Some(dependencies::redis_target(url).await?),
            None => None,
        };
        let s3 = S3Target::build(config, &outbound).await.context("cannot set up the s3 experiment's endpoint")?;
        let tls_roots = TrustedRoots::load(config.tls_ca_file.as_deref()).context("cannot load ASYNCLAB_TLS_CA_FILE")?;
        let sftp = SftpTarget::from_config(config).await.context("cannot set up the sftp experiment's server")?;
        let http = SharedHttpClient::build(&outbound, &tls_roots)?;
        Ok(Services {
            outbound,
            tls_roots,
            http,
            pg_target,
            mysql_target,
            redis,
            programs: ProgramAllowlist::resolve(&config.allow_programs, config.child_exe.as_deref()),
            sftp: Some(sftp),
            s3: Some(s3),
            meters: Meters::new(),
        })
    }

    /// Why `need` is not met on this server, naming the setting that meets it; `None` when it is.
    pub fn missing(&self, need: Need) -> Option<String> {
        match need {
            Need::TargetDatabase => (self.pg_target.is_none() && self.mysql_target.is_none())
                .then(|| "needs a target database: set ASYNCLAB_PG_TARGET_URL and/or ASYNCLAB_MYSQL_TARGET_URL".into()),
            Need::Redis => self.redis.is_none().then(|| "needs a Redis: set REDIS_URL (or --redis-url)".into()),
            Need::Sftp => self.sftp.is_none().then(|| "set ASYNCLAB_SFTP_URL, or let the in-process SFTP server start".into()),
            Need::S3 => match &self.s3 {
                None => Some("needs an S3 endpoint: set AWS_ENDPOINT_URL_S3 (or --s3-endpoint)".into()),
                Some(target) => target.unavailable.clone(),
            },
            Need::Programs => self.programs.is_empty().then(|| "no program is allowed: set ASYNCLAB_ALLOW_PROGRAMS".into()),
        }
    }

    /// Each configured service that can be unreachable and its state (`ok`, `unreachable`,
    /// `timed out`), checked concurrently within [`dependencies::CHECK_TIMEOUT`].
    pub async fn readiness(&self) -> Vec<(&'static str, String)> {
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

    /// Closes the pools and stops the in-process servers, so no connection outlives the server.
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
