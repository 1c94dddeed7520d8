//! The `fred` client of a run: a fred pool of `pool_size` multiplexed connections built from
//! `REDIS_URL` for this job alone. Every task sends on it at once, with no checkout: each
//! operation takes the next connection round-robin, and fred pipelines whatever commands are in
//! flight on it. Built inside the job's own runtime, so fred's connection tasks run on the job's
//! thread and its CPU is counted. It does not reconnect: a connection that breaks fails the run
//! with a `connect` error, as the `pool` client does.

use bytes::Bytes;
use fred::prelude::{ClientLike, Config, ErrorKind, KeysInterface, Pool, Value};
use fred::types::{Builder, Key};

use super::connection::RedisServer;
use crate::experiments::ExperimentError;
use crate::services::dependencies::{REDIS_COMMAND_TIMEOUT, REDIS_CONNECT_TIMEOUT};

/// Connects `size` multiplexed connections; fails at once when Redis does not answer.
pub async fn connect(config: &Config, size: usize, server: &RedisServer) -> Result<Pool, ExperimentError> {
    let mut config = config.clone();
    // The first connection's failure is the run's error, not a reason to retry.
    config.fail_fast = true;
    let pool = Builder::from_config(config)
        .with_connection_config(|connection| {
            connection.connection_timeout = REDIS_CONNECT_TIMEOUT;
            // A command is sent once: a broken connection fails the run, it is not hidden.
            connection.max_command_attempts = 1;
        })
        .with_performance_config(|performance| performance.default_command_timeout = REDIS_COMMAND_TIMEOUT)
        .build_pool(size)
        .map_err(|error| at(error, server))?;
    pool.init().await.map_err(|error| at(error, server))?;
    Ok(pool)
}

/// The commands of one operation, sent on `client`.
pub enum Command<'a> {
    /// GET of a key.
    Get(Key),
    /// SET of a key to the run's value.
    Set(Key, &'a Bytes),
    /// INCR of a counter.
    Incr(Key),
    /// A pipeline of commands, alternately SET and GET, sent together.
    Pipeline(Vec<Key>, &'a Bytes),
}

/// Runs one operation on `pool`'s next connection.
pub async fn execute(pool: &Pool, command: Command<'_>, server: &RedisServer) -> Result<(), ExperimentError> {
    let client = pool.next();
    let sent = match command {
        Command::Get(key) => client.get::<Value, _>(key).await.map(drop),
        Command::Set(key, value) => client.set::<Value, _, _>(key, value.clone(), None, None, false).await.map(drop),
        Command::Incr(key) => client.incr::<Value, _>(key).await.map(drop),
        Command::Pipeline(keys, value) => {
            let pipeline = client.pipeline();
            for (index, key) in keys.into_iter().enumerate() {
                // Queued, not sent: the replies come back from `all`.
                if index % 2 == 0 {
                    pipeline.set::<(), _, _>(key, value.clone(), None, None, false).await
                } else {
                    pipeline.get::<(), _>(key).await
                }
                .map_err(|error| at(error, server))?;
            }
            pipeline.all::<Vec<Value>>().await.map(drop)
        }
    };
    sent.map_err(|error| at(error, server))
}

/// Closes the connections politely (QUIT); the runtime's end closes them anyway.
pub async fn close(pool: &Pool) {
    let _ = tokio::time::timeout(REDIS_CONNECT_TIMEOUT, pool.quit()).await;
}

/// A fred error in the job's error categories, naming the server.
fn at(error: fred::error::Error, server: &RedisServer) -> ExperimentError {
    let message = format!("{}: {error}", server.name());
    match error.kind() {
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Routing | ErrorKind::Auth => ExperimentError::Connect(message),
        ErrorKind::Timeout => ExperimentError::Timeout(message),
        _ => ExperimentError::Protocol(message),
    }
}
