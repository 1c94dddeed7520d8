//! Dependencies of the data-store experiments for one test: fresh PostgreSQL and MariaDB
//! databases (dropped afterwards), a Redis server of the test's own, and server-side connection
//! counts.

use std::time::Duration;

use sqlx::{Connection, MySqlConnection, PgConnection};
use tokio::process::Command;

use crate::service_process::{ServiceProcess, private_redis};

/// The PostgreSQL server the target databases live on.
const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// The MariaDB server the target databases live on.
const MYSQL_SERVER: &str = "mysql://root@127.0.0.1:3306";
/// The shared Redis.
pub const SHARED_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A fresh database on PostgreSQL and one on MariaDB, both dropped when the value is.
pub struct TargetDatabases {
    /// Both databases' name.
    pub name: String,
    /// `ASYNCLAB_PG_TARGET_URL`.
    pub pg_url: String,
    /// `ASYNCLAB_MYSQL_TARGET_URL`.
    pub mysql_url: String,
}

impl TargetDatabases {
    /// Creates both databases.
    pub async fn create() -> Self {
        let name = format!("asynclab_lab_{}", uuid::Uuid::new_v4().simple());
        let mut pg = PgConnection::connect(&format!("{PG_SERVER}/postgres")).await.expect("PostgreSQL answers");
        sqlx::query(&format!("create database {name}")).execute(&mut pg).await.expect("create PostgreSQL database");
        let mut mysql = MySqlConnection::connect(MYSQL_SERVER).await.expect("MariaDB answers");
        sqlx::query(&format!("create database {name}")).execute(&mut mysql).await.expect("create MariaDB database");
        TargetDatabases { pg_url: format!("{PG_SERVER}/{name}"), mysql_url: format!("{MYSQL_SERVER}/{name}"), name }
    }

    /// Flags that point an app at both databases.
    pub fn flags(&self) -> Vec<String> {
        vec!["--pg-target-url".into(), self.pg_url.clone(), "--mysql-target-url".into(), self.mysql_url.clone()]
    }

    /// Connections open to the PostgreSQL database, seen by the server.
    pub async fn pg_connections(&self) -> i64 {
        let mut pg = PgConnection::connect(&format!("{PG_SERVER}/postgres")).await.unwrap();
        sqlx::query_scalar("select count(*) from pg_stat_activity where datname = $1").bind(&self.name).fetch_one(&mut pg).await.unwrap()
    }

    /// Connections open to the MariaDB database, seen by the server.
    pub async fn mysql_connections(&self) -> i64 {
        let mut mysql = MySqlConnection::connect(MYSQL_SERVER).await.unwrap();
        sqlx::query_scalar("select count(*) from information_schema.processlist where db = ?")
            .bind(&self.name)
            .fetch_one(&mut mysql)
            .await
            .unwrap()
    }

    /// Tables left in the PostgreSQL and MariaDB databases.
    pub async fn tables(&self) -> (i64, i64) {
        let mut pg = PgConnection::connect(&self.pg_url).await.unwrap();
        let pg_tables = sqlx::query_scalar("select count(*) from information_schema.tables where table_schema = 'public'")
            .fetch_one(&mut pg)
            .await
            .unwrap();
        let mut mysql = MySqlConnection::connect(MYSQL_SERVER).await.unwrap();
        let mysql_tables = sqlx::query_scalar("select count(*) from information_schema.tables where table_schema = ?")
            .bind(&self.name)
            .fetch_one(&mut mysql)
            .await
            .unwrap();
        (pg_tables, mysql_tables)
    }
}

impl Drop for TargetDatabases {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropping needs async I/O; do it on a thread of its own so it works inside a runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                if let Ok(mut pg) = PgConnection::connect(&format!("{PG_SERVER}/postgres")).await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut pg).await;
                }
                if let Ok(mut mysql) = MySqlConnection::connect(MYSQL_SERVER).await {
                    let _ = sqlx::query(&format!("drop database if exists {name}")).execute(&mut mysql).await;
                }
            });
        })
        .join();
    }
}

/// A redis-server of the test's own on a spare port, without persistence; killed when dropped.
pub struct TestRedis {
    /// Its port.
    pub port: u16,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    process: ServiceProcess,
}

impl TestRedis {
    /// Starts a server and waits until it answers PING.
    pub async fn start() -> TestRedis {
        let process = private_redis(None).await;
        TestRedis { port: process.port, url: format!("redis://127.0.0.1:{}", process.port), process }
    }

    /// Kills the server and waits for it to exit.
    pub async fn kill(&mut self) {
        self.process.kill().await;
    }

    /// Client connections, this query's own excluded.
    pub async fn clients(&self) -> usize {
        redis_cli(self.port, &["client", "list"]).await.lines().count().saturating_sub(1)
    }
}

/// Runs redis-cli against the Redis on `port`; returns its output.
pub async fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output().await.expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `probe` until it returns `want` (at most 10 s); returns the last value seen.
pub async fn eventually<T: PartialEq + Copy, F: Future<Output = T>>(want: T, probe: impl Fn() -> F) -> T {
    let mut seen = probe().await;
    for _ in 0..200 {
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = probe().await;
    }
    seen
}
