//! The two target databases behind one interface: a pool, a connection taken from it, and the
//! statements the steps run, written once for both dialects.
//!
//! A checkout notices a dead server quickly: sqlx's pool retries a refused connection until its
//! acquire timeout (it takes the server for one starting up), so a checkout that has waited
//! [`PROBE_PERIOD`] probes the server with a connection of its own and fails at once when the
//! server refuses it. Waiting checkouts share one probe per period, so a pool busy with long
//! statements costs at most one extra connection per period; a checkout that starts while a
//! fresh probe says the server is lost fails at once.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use futures_util::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::{ConnectOptions, Connection, MySql, MySqlPool, PgPool, Postgres, QueryBuilder, Row};
use tokio::time::Instant;

use super::error::{DbError, DbErrorKind};
use super::params::DbTarget;

/// How long a checkout waits before it asks for a probe of the server, and how long a probe's
/// verdict stands for the checkouts that ask after it.
const PROBE_PERIOD: Duration = Duration::from_millis(500);
/// How long a probe may take to connect; a probe that times out proves nothing, and the pool's
/// acquire timeout still bounds the checkout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A target database's pool (shared by every job), with the probe verdict of this job's run.
#[derive(Clone)]
pub struct TargetPool {
    /// The server's shared pool.
    pool: DialectPool,
    /// The last probe's verdict. A tokio mutex, held while a probe runs, so checkouts asking
    /// meanwhile wait for its verdict instead of probing too.
    last_probe: Arc<tokio::sync::Mutex<Option<Verdict>>>,
}

/// What a probe found.
struct Verdict {
    /// When the probe ended.
    at: Instant,
    /// The error that shows the server lost; `None` when it answered (or the probe timed out).
    lost: Option<DbError>,
}

/// The pool of one dialect.
#[derive(Clone)]
enum DialectPool {
    /// PostgreSQL.
    Postgres(PgPool),
    /// MySQL or MariaDB.
    Mysql(MySqlPool),
}

/// A connection taken from a [`TargetPool`]; back in the pool when dropped.
pub enum TargetConnection {
    /// PostgreSQL.
    Postgres(PoolConnection<Postgres>),
    /// MySQL or MariaDB.
    Mysql(PoolConnection<MySql>),
}

/// Runs `$body` with `$c` bound to the connection and `$db` naming its `sqlx::Database`: the
/// body is compiled once per dialect.
macro_rules! with_connection {
    ($connection:expr, |$c:ident, $db:ident| $body:expr) => {
        match $connection {
            TargetConnection::Postgres($c) => {
                type $db = sqlx::Postgres;
                $body
            }
            TargetConnection::Mysql($c) => {
                type $db = sqlx::MySql;
                $body
            }
        }
    };
}

impl TargetPool {
    /// The pool of `target`, when this server has one.
    pub fn of(target: DbTarget, services: &crate::services::Services) -> Option<TargetPool> {
        let pool = match target {
            DbTarget::Postgres => services.pg_target.clone().map(DialectPool::Postgres),
            DbTarget::Mysql => services.mysql_target.clone().map(DialectPool::Mysql),
        };
        pool.map(|pool| TargetPool { pool, last_probe: Arc::default() })
    }

    /// The most connections the pool opens.
    pub fn size(&self) -> u32 {
        match &self.pool {
            DialectPool::Postgres(pool) => pool.options().get_max_connections(),
            DialectPool::Mysql(pool) => pool.options().get_max_connections(),
        }
    }

    /// Where the pool connects: `host:port`, or the Unix socket's path.
    pub fn server(&self) -> String {
        let (host, port, socket) = match &self.pool {
            DialectPool::Postgres(pool) => {
                let options = pool.connect_options();
                (options.get_host().to_string(), options.get_port(), options.get_socket().cloned())
            }
            DialectPool::Mysql(pool) => {
                let options = pool.connect_options();
                (options.get_host().to_string(), options.get_port(), options.get_socket().cloned())
            }
        };
        match socket {
            Some(path) => path.display().to_string(),
            None => format!("{host}:{port}"),
        }
    }

    /// A connection, waiting for one when all are taken; fails as soon as a probe finds the
    /// server unreachable or refusing connections.
    pub async fn acquire(&self) -> Result<TargetConnection, DbError> {
        if let Some(lost) = self.recent_loss() {
            return Err(lost);
        }
        let checkout = self.checkout();
        tokio::pin!(checkout);
        let mut probes = tokio::time::interval_at(Instant::now() + PROBE_PERIOD, PROBE_PERIOD);
        loop {
            tokio::select! {
                connection = &mut checkout => return connection.map_err(DbError::from),
                _ = probes.tick() => {
                    if let Some(lost) = self.probe_verdict().await {
                        return Err(lost);
                    }
                }
            }
        }
    }

    async fn checkout(&self) -> Result<TargetConnection, sqlx::Error> {
        Ok(match &self.pool {
            DialectPool::Postgres(pool) => TargetConnection::Postgres(pool.acquire().await?),
            DialectPool::Mysql(pool) => TargetConnection::Mysql(pool.acquire().await?),
        })
    }

    /// The loss a probe found less than [`PROBE_PERIOD`] ago, if any (none while a probe runs).
    fn recent_loss(&self) -> Option<DbError> {
        match self.last_probe.try_lock().ok()?.as_ref() {
            Some(Verdict { at, lost: Some(lost) }) if at.elapsed() < PROBE_PERIOD => Some(lost.clone()),
            _ => None,
        }
    }

    /// The verdict of a probe at most [`PROBE_PERIOD`] old, probing when there is none.
    async fn probe_verdict(&self) -> Option<DbError> {
        let mut last = self.last_probe.lock().await;
        if let Some(verdict) = last.as_ref()
            && verdict.at.elapsed() < PROBE_PERIOD
        {
            return verdict.lost.clone();
        }
        let lost = self.probe().await;
        *last = Some(Verdict { at: Instant::now(), lost: lost.clone() });
        lost
    }

    /// Opens and closes one connection outside the pool; returns the error when the server
    /// could not be reached or refused it.
    async fn probe(&self) -> Option<DbError> {
        let connected = match &self.pool {
            DialectPool::Postgres(pool) => {
                tokio::time::timeout(PROBE_TIMEOUT, async { pool.connect_options().connect().await?.close().await }).await
            }
            DialectPool::Mysql(pool) => {
                tokio::time::timeout(PROBE_TIMEOUT, async { pool.connect_options().connect().await?.close().await }).await
            }
        };
        match connected {
            Ok(Err(error)) => Some(DbError::from(error)).filter(|error| error.kind == DbErrorKind::Connection),
            _ => None,
        }
    }
}

/// The name a generated row gets.
fn user_name(id: i64) -> String {
    format!("user-{id}")
}

impl TargetConnection {
    /// Creates the table.
    pub async fn create_table(&mut self, table: &str) -> Result<(), sqlx::Error> {
        let sql = match self {
            TargetConnection::Postgres(_) => {
                format!("create table {table} (id bigint primary key, name text not null, created_at timestamp not null)")
            }
            TargetConnection::Mysql(_) => {
                format!("create table {table} (id bigint primary key, name varchar(64) not null, created_at datetime(6) not null)")
            }
        };
        self.execute(&sql).await.map(|_| ())
    }

    /// Runs one statement without parameters; returns the rows it affected.
    pub async fn execute(&mut self, sql: &str) -> Result<u64, sqlx::Error> {
        with_connection!(self, |c, _Db| Ok(sqlx::query(sql).execute(&mut **c).await?.rows_affected()))
    }

    /// Inserts one row with one statement.
    pub async fn insert_row(&mut self, table: &str, id: i64, now: NaiveDateTime) -> Result<u64, sqlx::Error> {
        self.insert_rows(table, id..=id, now).await
    }

    /// Inserts `ids` with one multi-row statement.
    pub async fn insert_rows(&mut self, table: &str, ids: RangeInclusive<i64>, now: NaiveDateTime) -> Result<u64, sqlx::Error> {
        with_connection!(self, |c, Db| {
            let mut builder = QueryBuilder::<Db>::new(format!("insert into {table} (id, name, created_at) "));
            builder.push_values(ids, |mut row, id| {
                row.push_bind(id).push_bind(user_name(id)).push_bind(now);
            });
            Ok(builder.build().execute(&mut **c).await?.rows_affected())
        })
    }

    /// Inserts `ids` with one `copy … from stdin` (PostgreSQL only).
    pub async fn copy_rows(&mut self, table: &str, ids: RangeInclusive<i64>, now: NaiveDateTime) -> Result<u64, sqlx::Error> {
        let TargetConnection::Postgres(c) = self else {
            return Err(sqlx::Error::Protocol("copy is PostgreSQL only".into()));
        };
        let created_at = now.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        let mut data = String::with_capacity(ids.clone().count() * 40);
        for id in ids {
            data.push_str(&format!("{id}\t{}\t{created_at}\n", user_name(id)));
        }
        let mut copy = c.copy_in_raw(&format!("copy {table} (id, name, created_at) from stdin")).await?;
        copy.send(data.into_bytes()).await?;
        copy.finish().await
    }

    /// Reads every row of `table` in id order as a stream, one row at a time; returns how many.
    pub async fn stream_rows(&mut self, table: &str) -> Result<u64, sqlx::Error> {
        let sql = format!("select id, name, created_at from {table} order by id");
        with_connection!(self, |c, _Db| {
            let mut rows = sqlx::query(&sql).fetch(&mut **c);
            let mut count = 0;
            while let Some(row) = rows.try_next().await? {
                let _id: i64 = row.try_get(0)?;
                count += 1;
            }
            Ok(count)
        })
    }

    /// Rows in `table`.
    pub async fn count(&mut self, table: &str) -> Result<u64, sqlx::Error> {
        let sql = format!("select count(*) from {table}");
        let count: i64 = with_connection!(self, |c, _Db| sqlx::query_scalar(&sql).fetch_one(&mut **c).await?);
        Ok(count.max(0) as u64)
    }

    /// Inserts row `id` in a transaction and commits it, or rolls it back.
    pub async fn insert_in_transaction(&mut self, table: &str, id: i64, now: NaiveDateTime, commit: bool) -> Result<(), sqlx::Error> {
        with_connection!(self, |c, Db| {
            let mut transaction = c.begin().await?;
            let mut builder = QueryBuilder::<Db>::new(format!("insert into {table} (id, name, created_at) "));
            builder.push_values([id], |mut row, id| {
                row.push_bind(id).push_bind(user_name(id)).push_bind(now);
            });
            builder.build().execute(&mut *transaction).await?;
            if commit { transaction.commit().await } else { transaction.rollback().await }
        })
    }
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::*;

    #[tokio::test]
    async fn a_checkout_from_a_server_that_refuses_connections_fails_within_a_probe_period() {
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let options = PgConnectOptions::new().host("127.0.0.1").port(closed_port).username("postgres");
        let pool = PgPoolOptions::new().acquire_timeout(Duration::from_secs(30)).connect_lazy_with(options);
        let target = TargetPool { pool: DialectPool::Postgres(pool), last_probe: Arc::default() };
        assert_eq!(target.server(), format!("127.0.0.1:{closed_port}"));
        let started = Instant::now();
        let Err(lost) = target.acquire().await else { panic!("a checkout from a closed port succeeded") };
        assert!(started.elapsed() < PROBE_PERIOD + PROBE_TIMEOUT, "took {:?}, not the 30 s acquire timeout", started.elapsed());
        assert_eq!(lost.kind, DbErrorKind::Connection, "{lost:?}");
        let again = Instant::now();
        assert!(target.acquire().await.is_err());
        assert!(again.elapsed() < PROBE_PERIOD, "the fresh verdict fails the next checkout at once: {:?}", again.elapsed());
    }
}
