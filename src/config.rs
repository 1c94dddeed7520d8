//! Every setting of the control plane: command-line flags with `ASYNCLAB_*` environment
//! fallbacks and their defaults. The subcommands that use them are assembled in `cli`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

/// Settings of the control plane.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on. Anything but loopback requires ASYNCLAB_TOKEN.
    #[arg(long, env = "ASYNCLAB_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Job store: postgres://… for PostgreSQL (the database is created if missing) or
    /// sqlite://FILE; unset, a SQLite file at DATA_DIR/asynclab.db.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// Connections in the PostgreSQL job store's pool.
    #[arg(long, env = "ASYNCLAB_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..=256))]
    pub db_max_connections: u32,

    /// Jobs running at once; more wait in the queue (in the store, so a restart loses none).
    #[arg(long, env = "ASYNCLAB_MAX_RUNNING_JOBS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_running_jobs: u32,

    /// This replica's id among the replicas sharing a PostgreSQL store (letters, digits, `.`, `_`,
    /// `:`, `-`); unset, HOSTNAME:PORT. Keep it stable across restarts: a replica starting under
    /// an id marks that id's unfinished jobs interrupted at once.
    #[arg(long, env = "ASYNCLAB_REPLICA_ID", value_parser = parse_replica_id)]
    pub replica_id: Option<String>,

    /// How long a replica's claim on a running job holds without a heartbeat (renewed every
    /// third of it); a dead replica's jobs are rescued after it.
    #[arg(long, env = "ASYNCLAB_LEASE_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(300..=600_000))]
    pub lease_ms: u64,

    /// Jobs allowed to wait in the queue; launches beyond it get 429.
    #[arg(long, env = "ASYNCLAB_MAX_QUEUED_JOBS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_queued_jobs: u64,

    /// Prune finished jobs (with their events) this many days after they finished; jobs labelled
    /// `keep=true` are never pruned. Unset: no age limit (retention is off by default).
    #[arg(long, env = "ASYNCLAB_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,

    /// Keep only the newest this many finished jobs (by finish; those labelled `keep=true` are
    /// not counted and never pruned), pruning older ones. Unset: no count limit.
    #[arg(long, env = "ASYNCLAB_RETENTION_MAX_JOBS", value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_max_jobs: Option<u64>,

    /// How often retention looks for finished jobs to prune, when a limit is set.
    #[arg(long, env = "ASYNCLAB_RETENTION_INTERVAL_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub retention_interval_ms: u64,

    /// Directory for the SQLite job store, job sandboxes and other local files.
    #[arg(long, env = "ASYNCLAB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// A job's time limit when the launch does not give `timeout_ms`.
    #[arg(long, env = "ASYNCLAB_DEFAULT_JOB_TIMEOUT_MS", default_value_t = 600_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub default_job_timeout_ms: u64,

    /// The longest time limit a launch may ask for.
    #[arg(long, env = "ASYNCLAB_MAX_JOB_TIMEOUT_MS", default_value_t = 3_600_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_job_timeout_ms: u64,

    /// How long shutdown waits for jobs to be recorded and streams to end.
    #[arg(long, env = "ASYNCLAB_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// Hosts experiments may connect to besides loopback (comma-separated names or IPs).
    #[arg(long, env = "ASYNCLAB_ALLOW_HOSTS", value_delimiter = ',')]
    pub allow_hosts: Vec<String>,

    /// Job launches per second one client address may make (a token bucket; 0: no limit).
    #[arg(long, env = "ASYNCLAB_LAUNCH_RATE", default_value_t = 50.0)]
    pub launch_rate: f64,

    /// Launches one client address may make at once before `--launch-rate` applies.
    #[arg(long, env = "ASYNCLAB_LAUNCH_BURST", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub launch_burst: u32,

    /// Event streams one job may have open at once.
    #[arg(long, env = "ASYNCLAB_MAX_SUBSCRIBERS_PER_JOB", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_subscribers_per_job: u64,

    /// Origins whose pages may call the API from a browser (CORS; comma-separated, e.g.
    /// `https://dash.example.com`). Unset: no cross-origin access.
    #[arg(long, env = "ASYNCLAB_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// A PEM file of CA certificates trusted for `https` fan-out targets besides Mozilla's roots
    /// (a private CA, or the certificate of a self-signed test target).
    #[arg(long, env = "ASYNCLAB_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// Programs the `subprocess` experiment may run (comma-separated): names found in /usr/bin
    /// or /bin, absolute paths, or `asynclab-child` (this binary's built-in child).
    #[arg(long, env = "ASYNCLAB_ALLOW_PROGRAMS", value_delimiter = ',', default_value = "asynclab-child,echo,sleep,seq")]
    pub allow_programs: Vec<String>,

    /// The executable run as `asynclab-child` (with its `child` subcommand); unset, this binary.
    #[arg(long, env = "ASYNCLAB_CHILD_EXE")]
    pub child_exe: Option<PathBuf>,

    /// The bootstrap admin token: with it, every route but /healthz and the dashboard's files
    /// needs a token (this one or one created through /tokens); mandatory off loopback.
    #[arg(long, env = "ASYNCLAB_TOKEN", hide_env_values = true)]
    pub token: Option<SecretString>,

    /// The key API token secrets are hashed with (HMAC-SHA256); the same on every replica.
    /// Unset, a random key is generated once and kept in the job store.
    #[arg(long, env = "ASYNCLAB_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Option<SecretString>,

    /// The key job-finished webhooks are signed with: each delivery carries
    /// `X-Asynclab-Signature: sha256=<hex HMAC-SHA256 of the body>`. Unset, deliveries are unsigned.
    #[arg(long, env = "ASYNCLAB_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<SecretString>,

    /// Failed authentications one client address may make at once before it is refused (429).
    #[arg(long, env = "ASYNCLAB_AUTH_FAILURE_BURST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failure_burst: u32,

    /// Failed authentications per minute one client address may make after the burst.
    #[arg(long, env = "ASYNCLAB_AUTH_FAILURES_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failures_per_minute: u32,

    /// The most HTTP connections open at once; beyond it a new connection gets `503` and is
    /// closed. Lowered at start-up to half the process's file-descriptor limit when above it.
    #[arg(long, env = "ASYNCLAB_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// How long a client may take to send a request's head once it has started (on a kept-alive
    /// connection: once the first byte of the next request arrives); then the connection is closed.
    #[arg(long, env = "ASYNCLAB_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_timeout_ms: u64,

    /// How long a connection may stay open with no request in progress and nothing received;
    /// then it is closed. A request in progress (an event stream too) is never cut by it.
    #[arg(long, env = "ASYNCLAB_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub idle_timeout_ms: u64,

    /// PostgreSQL database the `database` experiment works in (postgres://…); never the job
    /// store's database. Unset, the experiment's `postgres` target is unavailable.
    #[arg(long, env = "ASYNCLAB_PG_TARGET_URL", hide_env_values = true)]
    pub pg_target_url: Option<SecretString>,

    /// MySQL or MariaDB database the `database` experiment works in (mysql://…). Unset, the
    /// experiment's `mysql` target is unavailable.
    #[arg(long, env = "ASYNCLAB_MYSQL_TARGET_URL", hide_env_values = true)]
    pub mysql_target_url: Option<SecretString>,

    /// Connections in each target database pool of the `database` experiment.
    #[arg(long, env = "ASYNCLAB_TARGET_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub target_db_max_connections: u32,

    /// Redis the `redis` experiment uses (redis://…). Unset, the experiment is unavailable.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,

    /// SFTP server the `sftp` experiment uses, as sftp://USER@HOST:PORT/DIR (DIR relative to the
    /// login directory; no password in the URL). Unset, an in-process server on 127.0.0.1 serves
    /// DATA_DIR/sftp.
    #[arg(long, env = "ASYNCLAB_SFTP_URL")]
    pub sftp_url: Option<String>,

    /// Password for ASYNCLAB_SFTP_URL's user.
    #[arg(long, env = "ASYNCLAB_SFTP_PASSWORD", hide_env_values = true, conflicts_with = "sftp_key_file")]
    pub sftp_password: Option<SecretString>,

    /// OpenSSH private key file (no passphrase) for ASYNCLAB_SFTP_URL's user.
    #[arg(long, env = "ASYNCLAB_SFTP_KEY_FILE")]
    pub sftp_key_file: Option<PathBuf>,

    /// The SFTP server's host key fingerprint (SHA256:…, as `ssh-keygen -lf` prints it); any
    /// other key is refused. Unset, the key is accepted and its fingerprint logged and reported.
    #[arg(long, env = "ASYNCLAB_SFTP_KNOWN_HOST")]
    pub sftp_known_host: Option<String>,

    /// S3-compatible endpoint of the `s3` experiment (http://host:port). Unset, an in-process S3
    /// endpoint serving DATA_DIR/s3 with credentials generated at start-up is used.
    #[arg(long, env = "AWS_ENDPOINT_URL_S3")]
    pub s3_endpoint: Option<url::Url>,

    /// Region the `s3` experiment signs requests for.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Access key id for `--s3-endpoint`.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// Secret access key for `--s3-endpoint`.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<SecretString>,

    /// Path-style addressing (http://host/bucket/key), which most S3-compatible servers need.
    #[arg(long, env = "ASYNCLAB_S3_FORCE_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub s3_force_path_style: bool,
}

impl ServeConfig {
    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// How long a claim on a running job holds without a heartbeat.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// The replica id: `--replica-id`, or this host's name and the port the server listens on.
    pub fn replica_id(&self, port: u16) -> String {
        self.replica_id.clone().unwrap_or_else(|| format!("{}:{port}", host_name()))
    }
}

/// This host's name, as the kernel knows it (a container's id in Docker), or `localhost`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')).collect::<String>())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn parse_replica_id(raw: &str) -> Result<String, String> {
    let valid = !raw.is_empty() && raw.len() <= 128 && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if valid { Ok(raw.to_string()) } else { Err("1 to 128 letters, digits, '.', '_', ':' or '-'".into()) }
}

/// A database URL with any password replaced, for logs.
pub fn redacted_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "<unparseable URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_are_checked() {
        assert_eq!(parse_replica_id("api-1.eu:8080").unwrap(), "api-1.eu:8080");
        assert!(parse_replica_id("").is_err());
        assert!(parse_replica_id("a b").is_err());
        assert!(parse_replica_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redacted_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redacted_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
