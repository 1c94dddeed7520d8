//! The two target databases behind one interface: a pool, a connection taken from it, and the
//! statements the steps run, written once for both dialects.

use std::ops::RangeInclusive;

use chrono::NaiveDateTime;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, MySql, MySqlPool, PgPool, Postgres, QueryBuilder, Row};
use utoipa::ToSchema;

use super::params::DbTarget;

/// A target database's pool.
#[derive(Clone)]
pub enum TargetPool {
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
    pub fn of(target: DbTarget, services: &crate::state::Services) -> Option<TargetPool> {
        match target {
            DbTarget::Postgres => services.pg_target.clone().map(TargetPool::Postgres),
            DbTarget::Mysql => services.mysql_target.clone().map(TargetPool::Mysql),
        }
    }

    /// The most connections the pool opens.
    pub fn size(&self) -> u32 {
        match self {
            TargetPool::Postgres(pool) => pool.options().get_max_connections(),
            TargetPool::Mysql(pool) => pool.options().get_max_connections(),
        }
    }

    /// A connection, waiting for one when all are taken.
    pub async fn acquire(&self) -> Result<TargetConnection, sqlx::Error> {
        Ok(match self {
            TargetPool::Postgres(pool) => TargetConnection::Postgres(pool.acquire().await?),
            TargetPool::Mysql(pool) => TargetConnection::Mysql(pool.acquire().await?),
        })
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

/// Why a statement failed, in categories a report reader can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DbErrorKind {
    /// A constraint refused the rows (duplicate key, not null…).
    Constraint,
    /// The connection could not be made or broke.
    Connection,
    /// A statement or a pool checkout took too long.
    Timeout,
    /// Anything else the database refused.
    Database,
}

/// A failed step: its kind and the database's message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DbError {
    /// The category.
    #[schema(inline)]
    pub kind: DbErrorKind,
    /// What happened.
    pub message: String,
}

impl DbError {
    /// A timeout of a statement that took longer than `timeout_ms`.
    pub fn statement_timeout(timeout_ms: u64) -> Self {
        DbError { kind: DbErrorKind::Timeout, message: format!("a statement took longer than {timeout_ms} ms") }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        let kind = match &error {
            sqlx::Error::Database(database) => match database.kind() {
                sqlx::error::ErrorKind::Other => DbErrorKind::Database,
                _ => DbErrorKind::Constraint,
            },
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                DbErrorKind::Connection
            }
            sqlx::Error::PoolTimedOut => DbErrorKind::Timeout,
            _ => DbErrorKind::Database,
        };
        DbError { kind, message: error.to_string() }
    }
}
