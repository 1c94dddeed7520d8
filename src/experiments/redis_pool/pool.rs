//! The job's own bounded connection pool, in the manner of redis-py's `BlockingConnectionPool`:
//! `pool_size` fred clients (one TCP connection each), lent to one task at a time. A task that
//! finds none idle waits, up to a timeout, for another to give one back; that wait is what the
//! report measures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config};
use futures_util::future::try_join_all;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::dependencies::{REDIS_COMMAND_TIMEOUT, REDIS_CONNECT_TIMEOUT};

/// `pool_size` connected clients and a semaphore with a permit per idle one.
pub struct LabPool {
    /// The idle clients. A std mutex: held only to push or pop, never across an await.
    idle: Mutex<Vec<Client>>,
    /// One permit per idle client: acquiring one guarantees `idle` holds a client.
    permits: Arc<Semaphore>,
    /// How long a checkout waits before giving up.
    wait_timeout: Duration,
    /// Every client, for closing.
    all: Vec<Client>,
}

/// A client lent to one task; given back when dropped.
pub struct Checkout<'a> {
    pool: &'a LabPool,
    client: Option<Client>,
    _permit: OwnedSemaphorePermit,
}

/// No connection was given back within the pool's wait timeout.
#[derive(Debug)]
pub struct WaitTimedOut;

impl LabPool {
    /// Connects `size` clients from `config` at once, without reconnection: a connection that
    /// breaks fails the operations on it, which is what the job must report.
    pub async fn connect(config: &Config, size: usize, wait_timeout: Duration) -> Result<LabPool, fred::error::Error> {
        let clients = (0..size)
            .map(|_| {
                Builder::from_config(config.clone())
                    .with_connection_config(|connection| connection.connection_timeout = REDIS_CONNECT_TIMEOUT)
                    .with_performance_config(|performance| performance.default_command_timeout = REDIS_COMMAND_TIMEOUT)
                    .build()
            })
            .collect::<Result<Vec<Client>, _>>()?;
        if let Err(error) = try_join_all(clients.iter().map(|client| client.init())).await {
            close_all(&clients).await;
            return Err(error);
        }
        Ok(LabPool {
            idle: Mutex::new(clients.clone()),
            permits: Arc::new(Semaphore::new(size)),
            wait_timeout,
            all: clients,
        })
    }

    /// Takes an idle client, waiting up to the wait timeout for one.
    pub async fn checkout(&self) -> Result<Checkout<'_>, WaitTimedOut> {
        let permit = tokio::time::timeout(self.wait_timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| WaitTimedOut)?
            .expect("the pool's semaphore is never closed");
        let client = self.idle.lock().expect("idle clients poisoned").pop();
        Ok(Checkout { pool: self, client, _permit: permit })
    }

    /// A client still connected, for work outside the measured run (clean-up).
    pub fn connected(&self) -> Option<&Client> {
        self.all.iter().find(|client| client.is_connected())
    }

    /// Quits every connection.
    pub async fn close(&self) {
        close_all(&self.all).await;
    }
}

impl Checkout<'_> {
    /// The lent client.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("a permit always comes with an idle client")
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.pool.idle.lock().expect("idle clients poisoned").push(client);
        }
    }
}

async fn close_all(clients: &[Client]) {
    let quits = clients.iter().map(|client| async move {
        let _ = tokio::time::timeout(REDIS_CONNECT_TIMEOUT, client.quit()).await;
    });
    futures_util::future::join_all(quits).await;
}
