//! Where `sftp` jobs connect: the server named by `ASYNCLAB_SFTP_URL` with its password or key
//! file, or the in-process server started when none is configured; and the connection itself
//! (SSH, authentication, host key check, the SFTP subsystem).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::RawSftpSession;
use secrecy::{ExposeSecret, SecretString};

use crate::config::ServeConfig;
use crate::experiments::ExperimentError;
use crate::targets::sftp::{InProcessSftpServer, SFTP_USER};

/// How long connecting and authenticating may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one SFTP request may wait for its answer.
const REQUEST_TIMEOUT_SECS: u64 = 30;
/// The SSH channel window: large enough that pipelined requests are not throttled by it.
const WINDOW_BYTES: u32 = 16 << 20;

/// Ciphers offered, AES-GCM first (russh's own first choice is ChaCha20-Poly1305): aws-lc-rs
/// runs it on the CPU's AES instructions, which bulk transfers feel.
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_128_CTR,
];

/// How the client proves who it is.
#[derive(Debug, Clone)]
pub enum SftpCredential {
    /// A password (`ASYNCLAB_SFTP_PASSWORD`, or the in-process server's own).
    Password(SecretString),
    /// An OpenSSH private key file without passphrase (`ASYNCLAB_SFTP_KEY_FILE`).
    KeyFile(PathBuf),
}

/// The SFTP server `sftp` jobs use.
#[derive(Debug, Clone)]
pub struct SftpTarget {
    /// Host name or address.
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// The credential; never reported.
    pub credential: SftpCredential,
    /// Directory relative to the login directory that runs work under (`""`: the login directory).
    pub base_dir: String,
    /// The host key's SHA256 fingerprint to insist on (`SHA256:…`); unset, any key is accepted and logged.
    pub known_host: Option<String>,
    /// The in-process server, when it is the target.
    pub server: Option<Arc<InProcessSftpServer>>,
}

impl SftpTarget {
    /// The target from configuration: `ASYNCLAB_SFTP_URL` and its credential when set, else a new
    /// in-process server on 127.0.0.1 serving DATA_DIR/sftp.
    pub async fn from_config(config: &ServeConfig) -> anyhow::Result<SftpTarget> {
        let Some(raw) = &config.sftp_url else {
            let server = InProcessSftpServer::start(config.data_dir.join("sftp"), ([127, 0, 0, 1], 0).into()).await?;
            return Ok(SftpTarget {
                host: server.address.ip().to_string(),
                port: server.address.port(),
                user: SFTP_USER.into(),
                credential: SftpCredential::Password(server.password.clone()),
                base_dir: String::new(),
                known_host: None,
                server: Some(Arc::new(server)),
            });
        };
        let url = url::Url::parse(raw).context("ASYNCLAB_SFTP_URL is not a URL")?;
        if url.scheme() != "sftp" {
            bail!("ASYNCLAB_SFTP_URL must start with sftp://");
        }
        if url.password().is_some() {
            bail!("ASYNCLAB_SFTP_URL must not hold a password: set ASYNCLAB_SFTP_PASSWORD instead");
        }
        let host = url.host_str().context("ASYNCLAB_SFTP_URL has no host")?.trim_matches(['[', ']']).to_string();
        if url.username().is_empty() {
            bail!("ASYNCLAB_SFTP_URL has no user (sftp://USER@HOST:PORT/)");
        }
        let credential = match (&config.sftp_password, &config.sftp_key_file) {
            (Some(password), None) => SftpCredential::Password(password.clone()),
            (None, Some(key_file)) => SftpCredential::KeyFile(key_file.clone()),
            _ => bail!("ASYNCLAB_SFTP_URL needs exactly one of ASYNCLAB_SFTP_PASSWORD and ASYNCLAB_SFTP_KEY_FILE"),
        };
        Ok(SftpTarget {
            host,
            port: url.port().unwrap_or(22),
            user: url.username().to_string(),
            credential,
            base_dir: url.path().trim_matches('/').to_string(),
            known_host: config.sftp_known_host.clone(),
            server: None,
        })
    }

    /// `sftp://user@host:port/dir`, without any secret, for reports.
    pub fn describe(&self) -> String {
        format!("sftp://{}@{}:{}/{}", self.user, self.host, self.port, self.base_dir)
    }

    /// Connects, authenticates and opens the SFTP subsystem.
    pub async fn connect(&self) -> Result<SftpConnection, ExperimentError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_inner())
            .await
            .map_err(|_| ExperimentError::Timeout(format!("connecting to {} took over {CONNECT_TIMEOUT:?}", self.describe())))?
    }

    async fn connect_inner(&self) -> Result<SftpConnection, ExperimentError> {
        let preferred = russh::Preferred { cipher: std::borrow::Cow::Borrowed(CIPHERS), ..Default::default() };
        let config = russh::client::Config { window_size: WINDOW_BYTES, nodelay: true, preferred, ..Default::default() };
        let seen = Arc::new(Mutex::new(None));
        let checker = HostKeyCheck { expected: self.known_host.clone(), seen: seen.clone() };
        let mut ssh = russh::client::connect(Arc::new(config), (self.host.as_str(), self.port), checker).await.map_err(
            |error| match error {
                russh::Error::IO(io) => ExperimentError::Connect(format!("{}: {io}", self.describe())),
                russh::Error::UnknownKey => ExperimentError::Refused(format!(
                    "the host key {} is not the configured ASYNCLAB_SFTP_KNOWN_HOST",
                    seen.lock().expect("host key slot poisoned").clone().unwrap_or_default()
                )),
                other => ExperimentError::Protocol(format!("SSH handshake with {}: {other}", self.describe())),
            },
        )?;
        let ssh_error = |error: russh::Error| ExperimentError::Protocol(format!("SSH: {error}"));
        let authenticated = match &self.credential {
            SftpCredential::Password(password) => {
                ssh.authenticate_password(&self.user, password.expose_secret()).await.map_err(ssh_error)?
            }
            SftpCredential::KeyFile(path) => {
                let key = russh::keys::load_secret_key(path, None)
                    .map_err(|error| ExperimentError::Unavailable(format!("cannot load the SFTP key file: {error}")))?;
                let hash = ssh.best_supported_rsa_hash().await.map_err(ssh_error)?.flatten();
                ssh.authenticate_publickey(&self.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash)).await.map_err(ssh_error)?
            }
        };
        if !authenticated.success() {
            return Err(ExperimentError::Refused(format!(
                "authentication failed for user {:?} on {}",
                self.user,
                self.describe()
            )));
        }
        let channel = ssh.channel_open_session().await.map_err(ssh_error)?;
        channel.request_subsystem(true, "sftp").await.map_err(ssh_error)?;
        let sftp_config = russh_sftp::client::Config { request_timeout_secs: REQUEST_TIMEOUT_SECS, ..Default::default() };
        let sftp = RawSftpSession::new_with_config(channel.into_stream(), sftp_config);
        sftp.init().await.map_err(|error| ExperimentError::Protocol(format!("SFTP init: {error}")))?;
        let host_key = seen.lock().expect("host key slot poisoned").clone().unwrap_or_default();
        Ok(SftpConnection { sftp: Arc::new(sftp), ssh, host_key })
    }
}

/// An authenticated SSH connection with its SFTP session.
pub struct SftpConnection {
    /// The session; requests on it may run concurrently.
    pub sftp: Arc<RawSftpSession>,
    /// Kept so the connection lives as long as the session.
    ssh: russh::client::Handle<HostKeyCheck>,
    /// The server's host key fingerprint.
    pub host_key: String,
}

impl SftpConnection {
    /// Ends the session and the connection politely.
    pub async fn close(self) {
        let _ = self.sftp.close_session();
        let _ = self.ssh.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    }
}

/// Accepts the configured host key fingerprint only, or any key when none is configured; keeps
/// the fingerprint it saw for the report.
struct HostKeyCheck {
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, server_key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let fingerprint = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256).to_string(),
            PublicKeyOrCertificate::Certificate(certificate) => certificate.public_key().fingerprint(HashAlg::Sha256).to_string(),
        };
        *self.seen.lock().expect("host key slot poisoned") = Some(fingerprint.clone());
        match &self.expected {
            Some(expected) => Ok(*expected == fingerprint),
            None => {
                tracing::info!(%fingerprint, "accepting the SFTP server's host key (no ASYNCLAB_SFTP_KNOWN_HOST set)");
                Ok(true)
            }
        }
    }
}
