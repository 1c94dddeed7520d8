//! Where `sftp` jobs connect: the server named by `ASYNCLAB_SFTP_URL` with its password or key
//! file, or the in-process server started when none is configured.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::SecretString;

use crate::config::ServeConfig;
use crate::targets::sftp::{InProcessSftpServer, SFTP_USER};

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
}
