//! The connection an `sftp` job makes to its target (SSH, authentication, host key check, the
//! SFTP subsystem). The target itself is built by [`crate::services::sftp`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::Names;
use russh::client::Session;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::RawSftpSession;
use secrecy::ExposeSecret;

use crate::experiments::ExperimentError;
use crate::services::sftp::{SftpCredential, SftpTarget};

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

/// Connects, authenticates and opens the SFTP subsystem.
pub async fn connect(target: &SftpTarget) -> Result<SftpConnection, ExperimentError> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(target))
        .await
        .map_err(|_| ExperimentError::Timeout(format!("connecting to {} took over {CONNECT_TIMEOUT:?}", target.describe())))?
}

async fn connect_inner(target: &SftpTarget) -> Result<SftpConnection, ExperimentError> {
    let preferred = russh::Preferred { cipher: std::borrow::Cow::Borrowed(CIPHERS), ..Default::default() };
    let config = russh::client::Config { window_size: WINDOW_BYTES, nodelay: true, preferred, ..Default::default() };
    let seen = Arc::new(Mutex::new(None));
    let cipher = Arc::new(Mutex::new(None));
    let checker = HostKeyCheck { expected: target.known_host.clone(), seen: seen.clone(), cipher: cipher.clone() };
    let mut ssh =
        russh::client::connect(Arc::new(config), (target.host.as_str(), target.port), checker).await.map_err(|error| match error {
            russh::Error::IO(io) => ExperimentError::Connect(format!("{}: {io}", target.describe())),
            russh::Error::UnknownKey => ExperimentError::Refused(format!(
                "the host key {} is not the configured ASYNCLAB_SFTP_KNOWN_HOST",
                seen.lock().expect("host key slot poisoned").clone().unwrap_or_default()
            )),
            other => ExperimentError::Protocol(format!("SSH handshake with {}: {other}", target.describe())),
        })?;
    let ssh_error = |error: russh::Error| ExperimentError::Protocol(format!("SSH: {error}"));
    let authenticated = match &target.credential {
        SftpCredential::Password(password) => ssh.authenticate_password(&target.user, password.expose_secret()).await.map_err(ssh_error)?,
        SftpCredential::KeyFile(path) => {
            let key = russh::keys::load_secret_key(path, None)
                .map_err(|error| ExperimentError::Unavailable(format!("cannot load the SFTP key file: {error}")))?;
            let hash = ssh.best_supported_rsa_hash().await.map_err(ssh_error)?.flatten();
            ssh.authenticate_publickey(&target.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash)).await.map_err(ssh_error)?
        }
    };
    if !authenticated.success() {
        return Err(ExperimentError::Refused(format!("authentication failed for user {:?} on {}", target.user, target.describe())));
    }
    let channel = ssh.channel_open_session().await.map_err(ssh_error)?;
    channel.request_subsystem(true, "sftp").await.map_err(ssh_error)?;
    let sftp_config = russh_sftp::client::Config { request_timeout_secs: REQUEST_TIMEOUT_SECS, ..Default::default() };
    let sftp = RawSftpSession::new_with_config(channel.into_stream(), sftp_config);
    sftp.init().await.map_err(|error| ExperimentError::Protocol(format!("SFTP init: {error}")))?;
    let host_key = seen.lock().expect("host key slot poisoned").clone().unwrap_or_default();
    let cipher = cipher.lock().expect("cipher slot poisoned").clone().unwrap_or_default();
    Ok(SftpConnection { sftp: Arc::new(sftp), ssh, host_key, cipher })
}

/// An authenticated SSH connection with its SFTP session.
pub struct SftpConnection {
    /// The session; requests on it may run concurrently.
    pub sftp: Arc<RawSftpSession>,
    /// Kept so the connection lives as long as the session.
    ssh: russh::client::Handle<HostKeyCheck>,
    /// The server's host key fingerprint.
    pub host_key: String,
    /// The cipher the key exchange settled on, e.g. `aes256-gcm@openssh.com`.
    pub cipher: String,
}

impl SftpConnection {
    /// Ends the session and the connection politely.
    pub async fn close(self) {
        let _ = self.sftp.close_session();
        let _ = self.ssh.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    }
}

/// Accepts the configured host key fingerprint only, or any key when none is configured; keeps
/// the fingerprint it saw and the negotiated cipher for the report.
struct HostKeyCheck {
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
    /// The cipher the key exchange settled on, for the report.
    cipher: Arc<Mutex<Option<String>>>,
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

    async fn kex_done(&mut self, _shared_secret: Option<&[u8]>, names: &Names, _session: &mut Session) -> Result<(), Self::Error> {
        *self.cipher.lock().expect("cipher slot poisoned") = Some(names.cipher.as_ref().to_string());
        Ok(())
    }
}
