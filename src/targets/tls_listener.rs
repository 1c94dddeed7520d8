//! An `https` listener for `axum::serve`: TLS handshakes run concurrently (a slow or silent
//! client never holds up the others), and each finished handshake is handed to the server.
//! ALPN offers HTTP/2 and HTTP/1.1.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::listener::{CountedStream, CountingListener};

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them (the server takes them at once;
/// the bound only keeps a burst from growing memory).
const READY_BACKLOG: usize = 1024;

/// A listener whose connections are TLS.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<CountedStream>, SocketAddr)>,
    local: SocketAddr,
    /// The accept loop; stopped when the listener is dropped.
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `inner` and performs handshakes with `config`.
    pub fn new(mut inner: CountingListener, config: rustls::ServerConfig) -> io::Result<Self> {
        let local = axum::serve::Listener::local_addr(&inner)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (ready_tx, ready) = mpsc::channel(READY_BACKLOG);
        let accepting = tokio::spawn(async move {
            let mut handshakes = JoinSet::new();
            loop {
                tokio::select! {
                    (stream, address) = axum::serve::Listener::accept(&mut inner) => {
                        let acceptor = acceptor.clone();
                        let ready_tx = ready_tx.clone();
                        handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => { let _ = ready_tx.send((stream, address)).await; }
                                Ok(Err(error)) => tracing::debug!(%address, %error, "TLS handshake failed"),
                                Err(_) => tracing::debug!(%address, "TLS handshake timed out"),
                            }
                        });
                    }
                    Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
                }
            }
        });
        Ok(TlsListener { ready, local, accepting })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<CountedStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop never ends on its own while the listener exists.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
