//! The in-process SFTP server: a russh SSH server whose `sftp` subsystem serves a directory
//! (see [`filesystem`]). It listens on loopback, accepts one user with a password generated at
//! start-up and kept server-side, and is the `sftp` experiment's default target.

pub mod filesystem;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::server::{Auth, Msg, Server as _, Session};
use russh::{Channel, ChannelId};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use self::filesystem::DirectoryHandler;

/// The user the in-process server accepts.
pub const SFTP_USER: &str = "asynclab";
/// Characters in the generated password.
const PASSWORD_CHARS: usize = 32;
/// Sessions idle this long are closed, so abandoned clients do not pile up.
const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(300);

/// A running in-process SFTP server; stopped by [`InProcessSftpServer::stop`] or on drop.
pub struct InProcessSftpServer {
    /// Where it listens.
    pub address: SocketAddr,
    /// The password of [`SFTP_USER`], generated at start-up.
    pub password: SecretString,
    /// The directory it serves.
    pub root: PathBuf,
    handle: russh::server::RunningServerHandle,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for InProcessSftpServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("InProcessSftpServer").field("address", &self.address).field("root", &self.root).finish()
    }
}

impl InProcessSftpServer {
    /// Starts serving `root` (created if missing) on `bind` (port 0 picks one).
    pub async fn start(root: PathBuf, bind: SocketAddr) -> anyhow::Result<Self> {
        tokio::fs::create_dir_all(&root).await.with_context(|| format!("cannot create the SFTP root {}", root.display()))?;
        let mut rng = StdRng::from_os_rng();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let host_key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        let password = SecretString::from(Alphanumeric.sample_string(&mut rng, PASSWORD_CHARS));
        let config = russh::server::Config {
            keys: vec![host_key],
            auth_rejection_time: Duration::from_millis(200),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: Some(INACTIVITY_TIMEOUT),
            window_size: 16 << 20,
            ..Default::default()
        };
        let listener = TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind} for SFTP"))?;
        let address = listener.local_addr()?;
        let mut server = SshServer { root: root.clone(), password: password.clone() };
        let (handle_sender, handle_receiver) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let running = server.run_on_socket(Arc::new(config), &listener);
            let _ = handle_sender.send(running.handle());
            if let Err(error) = running.await {
                tracing::warn!(%error, "the in-process SFTP server stopped");
            }
        });
        let handle = handle_receiver.await.context("the in-process SFTP server did not start")?;
        tracing::info!(%address, root = %root.display(), "in-process SFTP server listening");
        Ok(InProcessSftpServer { address, password, root, handle, task })
    }

    /// Disconnects every session and stops listening.
    pub fn stop(&self) {
        self.handle.shutdown("server stopping".into());
        self.task.abort();
    }
}

impl Drop for InProcessSftpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes one handler per connection.
#[derive(Clone)]
struct SshServer {
    root: PathBuf,
    password: SecretString,
}

impl russh::server::Server for SshServer {
    type Handler = SshSession;

    fn new_client(&mut self, _peer: Option<SocketAddr>) -> SshSession {
        SshSession { root: self.root.clone(), password: self.password.clone(), channels: Vec::new() }
    }
}

/// One connection: authenticates, then serves `sftp` on its session channels.
struct SshSession {
    root: PathBuf,
    password: SecretString,
    /// Session channels opened and not yet given a subsystem (a client opens one or two).
    channels: Vec<Channel<Msg>>,
}

/// Whether two secrets are equal, in time independent of where they differ.
fn same_secret(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

impl russh::server::Handler for SshSession {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if user == SFTP_USER && same_secret(password.as_bytes(), self.password.expose_secret().as_bytes()) {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // A bound on channels held per connection: a client needs one per subsystem.
        if self.channels.len() < 8 {
            self.channels.push(channel);
            reply.accept().await;
        }
        Ok(())
    }

    async fn channel_eof(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        session.close(channel)?;
        Ok(())
    }

    async fn subsystem_request(&mut self, channel_id: ChannelId, name: &str, session: &mut Session) -> Result<(), Self::Error> {
        let position = self.channels.iter().position(|channel| channel.id() == channel_id);
        match position {
            Some(position) if name == "sftp" => {
                let channel = self.channels.swap_remove(position);
                session.channel_success(channel_id)?;
                russh_sftp::server::run(channel.into_stream(), DirectoryHandler::new(self.root.clone())).await;
            }
            _ => session.channel_failure(channel_id)?,
        }
        Ok(())
    }
}
