//! The job's own bounded connection pool, in the manner of redis-py's `BlockingConnectionPool`:
//! `pool_size` connections, lent to one task at a time. A task that finds none idle waits, up to
//! a timeout, for another to give one back; that wait is what the report measures.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::try_join_all;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::connection::{Connection, RedisServer, RespError};

/// `pool_size` connections and a semaphore with a permit per idle one.
pub struct LabPool {
    /// The idle connections. A std mutex: held only to push or pop, never across an await.
    idle: Mutex<Vec<Connection>>,
    /// One permit per idle connection: acquiring one guarantees `idle` holds a connection.
    permits: Semaphore,
    /// How long a checkout waits before giving up.
    wait_timeout: Duration,
}

/// A connection lent to one task; given back when dropped.
pub struct Checkout<'a> {
    pool: &'a LabPool,
    connection: Option<Connection>,
    _permit: SemaphorePermit<'a>,
}

/// No connection was given back within the pool's wait timeout.
#[derive(Debug)]
pub struct WaitTimedOut;

impl LabPool {
    /// Opens `size` connections to `server` at once. They never reconnect: a connection that
    /// breaks fails the operation on it, which is what the job must report. Dropping the pool
    /// closes them.
    pub async fn connect(server: &RedisServer, size: usize, wait_timeout: Duration) -> Result<LabPool, RespError> {
        let connections = try_join_all((0..size).map(|_| Connection::open(server))).await?;
        Ok(LabPool { idle: Mutex::new(connections), permits: Semaphore::new(size), wait_timeout })
    }

    /// Takes an idle connection, waiting up to the wait timeout for one.
    pub async fn checkout(&self) -> Result<Checkout<'_>, WaitTimedOut> {
        let permit = tokio::time::timeout(self.wait_timeout, self.permits.acquire())
            .await
            .map_err(|_| WaitTimedOut)?
            .expect("the pool's semaphore is never closed");
        let connection = self.idle.lock().expect("idle connections poisoned").pop();
        Ok(Checkout { pool: self, connection, _permit: permit })
    }
}

impl Checkout<'_> {
    /// The lent connection.
    pub fn connection(&mut self) -> &mut Connection {
        self.connection.as_mut().expect("a permit always comes with an idle connection")
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        // Given back before the permit (dropped after this), so the next holder finds it.
        if let Some(connection) = self.connection.take() {
            self.pool.idle.lock().expect("idle connections poisoned").push(connection);
        }
    }
}
