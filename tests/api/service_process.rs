//! Server processes a test owns and may kill with SIGKILL: a PostgreSQL, a MariaDB or a Redis on
//! a spare port of 127.0.0.1, with its data in a temporary directory. Starting one waits until
//! it answers; dropping one kills its whole process group (PostgreSQL's backends included) and
//! removes its directory, so nothing outlives the test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::{Connection, MySqlConnection, PgConnection};
use tokio::process::{Child, Command};

use crate::lab_services::redis_cli;

/// How long a service may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A port of 127.0.0.1 that nothing listens on now.
pub fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process on `port`, killed with its process group when dropped.
pub struct ServiceProcess {
    /// What it is, for messages.
    name: &'static str,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The process; `None` once killed.
    child: Option<Child>,
    /// Its process group (its pid): the processes it started are in it too.
    group: i32,
    /// Its data, socket and log; removed when dropped.
    directory: PathBuf,
}

impl ServiceProcess {
    /// A new, empty temporary directory; owned by `user` when the test runs as root, because
    /// PostgreSQL refuses to run as root.
    pub fn directory(user: &str) -> PathBuf {
        let directory = std::env::temp_dir().join(format!("asynclab-{user}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&directory).expect("create the service's directory");
        if let Some((uid, gid)) = account(user) {
            std::os::unix::fs::chown(&directory, Some(uid), Some(gid)).expect("chown the service's directory");
        }
        directory
    }

    /// Runs `command` as `user` (when root) in its own process group, its output in
    /// `directory/log`, and waits until `ready` answers true.
    pub async fn start<F: Future<Output = bool>>(
        name: &'static str,
        port: u16,
        directory: PathBuf,
        mut command: Command,
        user: &str,
        ready: impl Fn() -> F,
    ) -> ServiceProcess {
        let log = std::fs::File::create(directory.join("log")).expect("create the service's log");
        if let Some((uid, gid)) = account(user) {
            command.uid(uid).gid(gid);
        }
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("{name} starts: {error}"));
        let group = child.id().expect("a running child has a pid") as i32;
        let mut service = ServiceProcess { name, port, child: Some(child), group, directory };
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if ready().await {
                return service;
            }
            if let Some(status) = service.child.as_mut().and_then(|child| child.try_wait().ok().flatten()) {
                panic!("{name} exited with {status}: {}", service.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{name} on port {port} did not answer within {START_TIMEOUT:?}: {}", service.log());
    }

    /// Kills the server's main process with SIGKILL and waits for it to exit; processes it
    /// started are left to notice by themselves, as after a real crash.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap_or_else(|error| panic!("kill {}: {error}", self.name));
        }
    }

    /// The service's own log.
    fn log(&self) -> String {
        std::fs::read_to_string(self.directory.join("log")).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this value started; gone already is fine (ESRCH).
        unsafe { libc::kill(-self.group, libc::SIGKILL) };
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.try_wait();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// `user`'s uid and gid when the test runs as root and the account exists.
fn account(user: &str) -> Option<(u32, u32)> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| {
        let output = std::process::Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// The directory of the newest PostgreSQL server binaries installed.
fn postgres_binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed under /usr/lib/postgresql")
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort_by_key(|bin| bin.parent().and_then(Path::file_name).and_then(|name| name.to_str()?.parse::<u32>().ok()));
    versions.pop().expect("a PostgreSQL server binary")
}

/// A PostgreSQL of the test's own: a fresh cluster (trust authentication, user `postgres`,
/// fsync off) listening on 127.0.0.1 only.
pub async fn private_postgres() -> ServiceProcess {
    let binaries = postgres_binaries();
    let directory = ServiceProcess::directory("postgres");
    let data = directory.join("data");
    let mut initdb = Command::new(binaries.join("initdb"));
    initdb.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
    if let Some((uid, gid)) = account("postgres") {
        initdb.uid(uid).gid(gid);
    }
    let output = initdb.output().await.expect("initdb runs");
    assert!(output.status.success(), "initdb: {}", String::from_utf8_lossy(&output.stderr));
    let port = spare_port();
    let mut postgres = Command::new(binaries.join("postgres"));
    postgres.arg("-D").arg(&data).arg("-k").arg(&directory).args([
        "-p",
        &port.to_string(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=40",
    ]);
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    ServiceProcess::start("postgres", port, directory, postgres, "postgres", || async { PgConnection::connect(&url).await.is_ok() }).await
}

/// A MariaDB of the test's own with a database `lab`: an empty data directory, no grant tables
/// (any user logs in), listening on 127.0.0.1 only.
pub async fn private_mariadb() -> ServiceProcess {
    let directory = ServiceProcess::directory("mysql");
    let data = directory.join("data");
    std::fs::create_dir_all(&data).unwrap();
    if let Some((uid, gid)) = account("mysql") {
        std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    }
    let port = spare_port();
    let mut mariadbd = Command::new("mariadbd");
    mariadbd
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", directory.join("socket").display()))
        .arg(format!("--pid-file={}", directory.join("pid").display()))
        .args([&format!("--port={port}"), "--bind-address=127.0.0.1", "--skip-grant-tables", "--skip-log-bin"])
        .args(["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--max-connections=40"]);
    let url = format!("mysql://root@127.0.0.1:{port}");
    let service =
        ServiceProcess::start("mariadb", port, directory, mariadbd, "mysql", || async { MySqlConnection::connect(&url).await.is_ok() })
            .await;
    let mut admin = MySqlConnection::connect(&url).await.expect("MariaDB answers");
    sqlx::query("create database lab").execute(&mut admin).await.expect("create the lab database");
    service
}

/// A Redis of the test's own, without persistence, listening on 127.0.0.1 only; with
/// `password`, it requires it.
pub async fn private_redis(password: Option<&str>) -> ServiceProcess {
    let directory = ServiceProcess::directory("redis");
    let port = spare_port();
    let mut redis = Command::new("redis-server");
    redis.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"]).arg(&directory);
    let mut ping = vec!["ping"];
    if let Some(password) = password {
        redis.args(["--requirepass", password]);
        ping = vec!["--no-auth-warning", "-a", password, "ping"];
    }
    ServiceProcess::start("redis", port, directory, redis, "redis", || async { redis_cli(port, &ping).await.trim() == "PONG" }).await
}
