//! The top of the layers: building the application (config -> store -> services -> event bus ->
//! the experiment registry, the runner and retention -> router and listener) and running it until
//! a shutdown signal, then stopping in order: refuse new jobs, interrupt running ones and record
//! that, stop retention, close event streams, flush events, close the pools (the store's, then the services').

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::auth::Authenticator;
use crate::api::auth::failures::FailureLimiter;
use crate::api::auth::secret::TokenKey;
use crate::api::connections::{ConnectionLimits, fit_to_descriptor_limit};
use crate::api::limits::{LaunchLimiter, Limits, SubscriberLimit};
use crate::api::state::AppState;
use crate::config::ServeConfig;
use crate::experiments::Registry;
use crate::jobs::events::EventBus;
use crate::jobs::recovery;
use crate::jobs::retention::{Retention, RetentionPolicy};
use crate::jobs::runner::Runner;
use crate::jobs::webhooks::WebhookSender;
use crate::services::Services;
use crate::store::{Claimant, StoreLocation};
use crate::targets::TargetStats;
use crate::targets::listener::CountingListener;

/// A built application with its listener bound (port 0 picks a free port).
pub struct Application {
    listener: CountingListener,
    address: SocketAddr,
    state: AppState,
}

impl Application {
    /// Connects the store, repairs what a dead process left, starts the runner and binds.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        if !config.bind.ip().is_loopback() && config.token.is_none() {
            bail!("refusing to listen on {} without a token: set ASYNCLAB_TOKEN (or --token), or bind a loopback address", config.bind);
        }
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        let database_url = config.database_url.as_ref().map(|url| url.expose_secret().to_string());
        let store = StoreLocation::from_url(database_url.as_deref(), &config.data_dir)?.open(config.db_max_connections).await?;
        let listener = TcpListener::bind(config.bind).await.with_context(|| format!("cannot listen on {}", config.bind))?;
        let address = listener.local_addr()?;
        let claimant = Claimant { replica: config.replica_id(address.port()), lease: config.lease() };
        tracing::info!(replica = %claimant.replica, "replica id");
        recovery::repair(store.as_ref(), &claimant.replica).await.context("cannot repair jobs left running")?;

        let stopping = CancellationToken::new();
        let services = Arc::new(Services::build(&config).await?);
        let bus = EventBus::start(store.clone(), claimant.replica.clone(), &TaskTracker::new(), stopping.clone(), services.meters.clone());
        let runner = Runner::new(
            store.clone(),
            claimant,
            bus.clone(),
            services.clone(),
            Arc::new(Registry),
            config.max_running_jobs as usize,
            config.data_dir.clone(),
            stopping.child_token(),
        );
        runner.start();
        let webhooks = WebhookSender::new(store.clone(), services.http.clone(), config.webhook_secret.clone(), services.meters.clone());
        tokio::spawn(webhooks.run(stopping.child_token()));
        let policy = RetentionPolicy { max_age_days: config.retention_days, max_jobs: config.retention_max_jobs };
        let retention = Retention::new(store.clone(), policy, Duration::from_millis(config.retention_interval_ms), services.meters.clone());
        retention.start(stopping.child_token());

        let key = match &config.token_key {
            Some(key) => key.expose_secret().as_bytes().to_vec(),
            None => store.token_key(&TokenKey::random_bytes()).await.context("cannot read the token key")?,
        };
        let auth = Arc::new(Authenticator::new(config.token.clone(), TokenKey::new(key), store.clone()));
        auth.follow_revocations(&TaskTracker::new(), stopping.clone());
        let auth_failures = Arc::new(FailureLimiter::new(
            NonZeroU32::new(config.auth_failure_burst).unwrap_or(NonZeroU32::MIN),
            NonZeroU32::new(config.auth_failures_per_minute).unwrap_or(NonZeroU32::MIN),
        ));
        let target_stats = Arc::new(TargetStats::default());
        let limits = Arc::new(Limits {
            launches: LaunchLimiter::new(config.launch_rate, config.launch_burst),
            subscribers: Arc::new(SubscriberLimit::new(usize::try_from(config.max_subscribers_per_job).unwrap_or(usize::MAX))),
        });
        let state = AppState {
            store,
            bus,
            runner,
            retention,
            services,
            config: Arc::new(config),
            target_stats: target_stats.clone(),
            limits,
            auth,
            auth_failures,
            stopping,
            streams: TaskTracker::new(),
            streams_closing: CancellationToken::new(),
        };
        Ok(Application { listener: CountingListener::new(listener, target_stats), address, state })
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops gracefully within the configured grace.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, address, state } = self;
        let grace = state.config.shutdown_grace();
        let stop_accepting = CancellationToken::new();
        let drop_connections = CancellationToken::new();
        let server = tokio::spawn(crate::api::connections::serve(
            listener,
            crate::api::router(state.clone()),
            connection_limits(&state.config),
            state.services.meters.clone(),
            stop_accepting.clone(),
            drop_connections.clone(),
        ));
        tracing::info!(%address, "asynclab listening");
        shutdown.await;
        tracing::info!("shutting down");
        state.stopping.cancel();
        stop_accepting.cancel();
        if !state.runner.stop(grace).await {
            tracing::warn!("jobs did not stop within the grace period");
        }
        state.retention.stop(grace).await;
        state.streams_closing.cancel();
        state.streams.close();
        let _ = tokio::time::timeout(grace, state.streams.wait()).await;
        match tokio::time::timeout(grace, server).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "server task failed"),
            Err(_) => {
                tracing::warn!("connections still open after the grace period; closing them");
                drop_connections.cancel();
            }
        }
        state.bus.shutdown().await;
        state.store.close().await;
        state.services.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The connection bounds the configuration asks for, within the file-descriptor limit.
fn connection_limits(config: &ServeConfig) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: fit_to_descriptor_limit(config.max_connections as usize),
        header_timeout: Duration::from_millis(config.header_timeout_ms),
        idle_timeout: Duration::from_millis(config.idle_timeout_ms),
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
