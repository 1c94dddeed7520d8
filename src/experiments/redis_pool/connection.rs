//! One connection of the job's pool: a plain TCP stream speaking RESP2, owned by the task that
//! checked it out, so a command goes from that task to the socket and its reply comes back to
//! the same task, with no connection task in between. Commands are encoded into a reused buffer
//! and sent in one write; replies are parsed from a reused read buffer.

use bytes::{Buf, BytesMut};
use fred::prelude::Config;
use fred::types::config::ServerConfig;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::resp::{MalformedReply, Reply, encode, parse};
use crate::experiments::ExperimentError;
use crate::services::dependencies::{REDIS_CONNECT_TIMEOUT, RedisTarget};

/// Bytes a read asks the socket for at least: many replies of a pipeline at once.
const READ_CHUNK: usize = 16 * 1024;

/// Where the pool connects and how it logs in, from `REDIS_URL`.
#[derive(Debug, Clone)]
pub struct RedisServer {
    /// Host name or address.
    host: String,
    /// TCP port.
    port: u16,
    /// The ACL user, when the URL names one.
    username: Option<String>,
    /// The password for AUTH; never logged or reported.
    password: Option<SecretString>,
    /// The database SELECTed after connecting.
    database: Option<u8>,
}

impl RedisServer {
    /// The single server `target` names, or why this client cannot talk to it: it speaks plain
    /// TCP to one server, not TLS, a cluster or a sentinel group.
    pub fn from_target(target: &RedisTarget) -> Result<RedisServer, String> {
        if target.tls {
            return Err("the redis experiment speaks plain TCP; REDIS_URL asks for TLS (rediss://)".into());
        }
        from_config(&target.config)
    }
}

fn from_config(config: &Config) -> Result<RedisServer, String> {
    let ServerConfig::Centralized { server } = &config.server else {
        return Err("the redis experiment talks to a single server; REDIS_URL names a cluster or a sentinel group".into());
    };
    Ok(RedisServer {
        host: server.host.trim_start_matches('[').trim_end_matches(']').to_string(),
        port: server.port,
        username: config.username.clone(),
        password: config.password.clone().map(SecretString::from),
        database: config.database,
    })
}

impl RedisServer {
    /// `redis host:port`, as error messages name the server (never the password).
    pub fn name(&self) -> String {
        if self.host.contains(':') { format!("redis [{}]:{}", self.host, self.port) } else { format!("redis {}:{}", self.host, self.port) }
    }
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// Connecting took longer than [`REDIS_CONNECT_TIMEOUT`].
    #[error("connecting took longer than {} s", REDIS_CONNECT_TIMEOUT.as_secs())]
    ConnectTimedOut,
    /// Logging in (AUTH) or choosing the database (SELECT) was refused.
    #[error("{command} failed: {message}")]
    Setup {
        /// The command refused.
        command: &'static str,
        /// The server's reason.
        message: String,
    },
    /// The server answered bytes that are not RESP2.
    #[error("malformed reply: {}", .0.0)]
    Malformed(MalformedReply),
    /// A command failed: the server's error reply.
    #[error("{0}")]
    Server(String),
}

impl RespError {
    /// The job's error for this failure of a connection to `server`, which the message names.
    pub fn at(self, server: &RedisServer) -> ExperimentError {
        let message = format!("{}: {self}", server.name());
        match self {
            RespError::Io(_) | RespError::Closed | RespError::Setup { .. } => ExperimentError::Connect(message),
            RespError::ConnectTimedOut => ExperimentError::Timeout(message),
            RespError::Malformed(_) | RespError::Server(_) => ExperimentError::Protocol(message),
        }
    }
}

/// A connected, logged-in connection.
pub struct Connection {
    /// The socket, Nagle off: every command is a complete write.
    stream: TcpStream,
    /// Commands queued for the next write.
    out: Vec<u8>,
    /// Bytes read and not parsed yet.
    input: BytesMut,
}

impl Connection {
    /// Connects to `server`, then AUTH and SELECT as its URL asks, within [`REDIS_CONNECT_TIMEOUT`].
    pub async fn open(server: &RedisServer) -> Result<Connection, RespError> {
        tokio::time::timeout(REDIS_CONNECT_TIMEOUT, Connection::open_now(server)).await.map_err(|_| RespError::ConnectTimedOut)?
    }

    async fn open_now(server: &RedisServer) -> Result<Connection, RespError> {
        let stream = TcpStream::connect((server.host.as_str(), server.port)).await?;
        stream.set_nodelay(true)?;
        let mut connection = Connection { stream, out: Vec::with_capacity(256), input: BytesMut::with_capacity(READ_CHUNK) };
        if let Some(password) = &server.password {
            let password = password.expose_secret().as_bytes();
            match &server.username {
                Some(username) => connection.queue(&[b"AUTH", username.as_bytes(), password]),
                None => connection.queue(&[b"AUTH", password]),
            }
            connection.setup("AUTH").await?;
        }
        if let Some(database) = server.database {
            connection.queue(&[b"SELECT", itoa::Buffer::new().format(database).as_bytes()]);
            connection.setup("SELECT").await?;
        }
        Ok(connection)
    }

    /// Sends the queued set-up command and checks it was accepted.
    async fn setup(&mut self, command: &'static str) -> Result<(), RespError> {
        self.exchange(1).await.map(drop).map_err(|error| match error {
            RespError::Server(message) => RespError::Setup { command, message },
            other => other,
        })
    }

    /// Queues one command for the next [`Connection::exchange`].
    pub fn queue(&mut self, args: &[&[u8]]) {
        encode(&mut self.out, args);
    }

    /// Sends the queued commands in one write and reads `count` replies; returns the last. An
    /// error reply fails the exchange once every reply is read, so the connection stays in step.
    pub async fn exchange(&mut self, count: usize) -> Result<Reply, RespError> {
        let written = self.stream.write_all(&self.out).await;
        self.out.clear();
        written?;
        let mut last = Reply::Array(None);
        let mut failed = None;
        for _ in 0..count {
            last = self.read_reply().await?;
            if let (Reply::Error(message), None) = (&last, &failed) {
                failed = Some(String::from_utf8_lossy(message).into_owned());
            }
        }
        match failed {
            Some(message) => Err(RespError::Server(message)),
            None => Ok(last),
        }
    }

    /// The next reply, reading until it is complete.
    async fn read_reply(&mut self) -> Result<Reply, RespError> {
        loop {
            if let Some((reply, used)) = parse(&self.input).map_err(RespError::Malformed)? {
                self.input.advance(used);
                return Ok(reply);
            }
            self.input.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.input).await? == 0 {
                return Err(RespError::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::net::TcpListener;

    use super::*;

    /// The Redis every test may use.
    fn local_redis() -> RedisServer {
        from_config(&Config::from_url("redis://127.0.0.1:6379").unwrap()).unwrap()
    }

    /// A server on loopback that answers the first commands it reads with `reply`, then hangs up.
    async fn answering(reply: Vec<u8>) -> RedisServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut commands = [0; 1024];
            let _ = socket.read(&mut commands).await.unwrap();
            socket.write_all(&reply).await.unwrap();
            socket.shutdown().await.unwrap();
        });
        RedisServer { host: "127.0.0.1".into(), port, username: None, password: None, database: None }
    }

    #[test]
    fn the_url_gives_server_credentials_and_database_and_a_cluster_is_refused() {
        let server = from_config(&Config::from_url("redis://lab:s3cret@[::1]:6390/3").unwrap()).unwrap();
        assert_eq!((server.host.as_str(), server.port, server.username.as_deref(), server.database), ("::1", 6390, Some("lab"), Some(3)));
        assert_eq!(server.password.as_ref().map(|password| password.expose_secret().to_string()), Some("s3cret".into()));
        assert!(!format!("{server:?}").contains("s3cret"), "the password is never printed");
        let cluster = from_config(&Config::from_url("redis-cluster://127.0.0.1:7000").unwrap()).unwrap_err();
        assert!(cluster.contains("cluster"), "{cluster}");
    }

    #[tokio::test]
    async fn replies_larger_than_a_read_and_pipelined_replies_arrive_whole() {
        let value = vec![b'v'; 4 * READ_CHUNK + 3];
        let mut wire = format!("${}\r\n", value.len()).into_bytes();
        wire.extend_from_slice(&value);
        wire.extend_from_slice(b"\r\n:7\r\n+OK\r\n");
        let mut connection = Connection::open(&answering(wire).await).await.unwrap();
        connection.queue(&[b"GET", b"big"]);
        connection.queue(&[b"INCR", b"n"]);
        connection.queue(&[b"SET", b"k", b"v"]);
        assert_eq!(connection.exchange(1).await.unwrap(), Reply::Bulk(Some(Bytes::from(value))));
        assert_eq!(connection.exchange(2).await.unwrap(), Reply::Simple(Bytes::from_static(b"OK")));
    }

    #[tokio::test]
    async fn a_server_that_hangs_up_mid_reply_is_a_closed_connection() {
        let mut connection = Connection::open(&answering(b"$10\r\nabc".to_vec()).await).await.unwrap();
        connection.queue(&[b"GET", b"k"]);
        let error = connection.exchange(1).await.unwrap_err();
        assert!(matches!(error, RespError::Closed), "{error:?}");
        let server = RedisServer { host: "127.0.0.1".into(), port: 6390, username: None, password: None, database: None };
        let error = error.at(&server);
        assert!(
            matches!(&error, ExperimentError::Connect(message) if message == "redis 127.0.0.1:6390: the server closed the connection"),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn redis_error_replies_fail_the_command_and_keep_the_connection_in_step() {
        let mut connection = Connection::open(&local_redis()).await.unwrap();
        let key = format!("asynclab:test:{}", uuid::Uuid::new_v4());
        connection.queue(&[b"SET", key.as_bytes(), b"text"]);
        connection.queue(&[b"INCR", key.as_bytes()]);
        connection.queue(&[b"GET", key.as_bytes()]);
        let error = connection.exchange(3).await.unwrap_err();
        assert!(matches!(&error, RespError::Server(message) if message.starts_with("ERR value is not an integer")), "{error:?}");
        assert!(matches!(error.at(&local_redis()), ExperimentError::Protocol(_)));
        connection.queue(&[b"UNLINK", key.as_bytes()]);
        connection.queue(&[b"GET", key.as_bytes()]);
        assert_eq!(connection.exchange(2).await.unwrap(), Reply::Bulk(None));
    }

    #[tokio::test]
    async fn a_refused_login_is_a_connect_error_without_the_password() {
        let mut server = local_redis();
        server.username = Some("asynclab-nobody".into());
        server.password = Some(SecretString::from("not-the-password"));
        let error = match Connection::open(&server).await {
            Ok(_) => panic!("a login as an unknown user succeeded"),
            Err(error) => error.at(&server),
        };
        let ExperimentError::Connect(message) = error else { panic!("{error:?}") };
        assert!(message.starts_with("redis 127.0.0.1:6379: AUTH failed: WRONGPASS"), "{message}");
        assert!(!message.contains("not-the-password"), "{message}");
    }
}
