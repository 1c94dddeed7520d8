//! Opening a fan-out connection: TCP with Nagle's algorithm off, then, for `https` endpoints, a
//! TLS handshake offering the job's protocol by ALPN.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::connection::FailureKind;
use super::params::HttpVersion;
use super::plan::Endpoint;
use crate::experiments::ExperimentError;
use crate::tls::TrustedRoots;

/// ALPN's name for HTTP/2.
const ALPN_H2: &[u8] = b"h2";
/// ALPN's name for HTTP/1.1.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A connection's byte stream: plain TCP, or TLS over TCP.
pub enum Stream {
    /// `http`.
    Plain(TcpStream),
    /// `https` (boxed: the TLS state is large and the plain case should not pay for it).
    Tls(Box<TlsStream<TcpStream>>),
}

/// Opens streams to a fan-out's endpoints.
pub struct Dialer {
    /// The TLS client, when any endpoint is `https`.
    tls: Option<TlsConnector>,
    /// Whether the negotiated protocol must be HTTP/2.
    wants_h2: bool,
}

impl Dialer {
    /// A dialer for `version`, with TLS set up when `needs_tls`.
    pub fn new(version: HttpVersion, needs_tls: bool, roots: &TrustedRoots) -> Result<Self, ExperimentError> {
        let wants_h2 = version == HttpVersion::Http2;
        let tls = if needs_tls {
            let alpn = if wants_h2 { ALPN_H2 } else { ALPN_HTTP1 };
            let config = roots.client_config(&[alpn]).map_err(|error| ExperimentError::Internal(format!("{error:#}")))?;
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Dialer { tls, wants_h2 })
    }

    /// Connects to `endpoint`, with TLS when it is `https`.
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<Stream, FailureKind> {
        let stream = TcpStream::connect(endpoint.address).await.map_err(|error| match error.kind() {
            io::ErrorKind::ConnectionRefused => FailureKind::ConnectRefused,
            _ => FailureKind::Connect,
        })?;
        let _ = stream.set_nodelay(true);
        let (Some(server_name), Some(tls)) = (&endpoint.tls_name, &self.tls) else {
            return Ok(Stream::Plain(stream));
        };
        let stream = tls.connect(server_name.clone(), stream).await.map_err(|_| FailureKind::Tls)?;
        let negotiated_h2 = stream.get_ref().1.alpn_protocol() == Some(ALPN_H2);
        if self.wants_h2 && !negotiated_h2 {
            return Err(FailureKind::Alpn);
        }
        Ok(Stream::Tls(Box::new(stream)))
    }
}

/// The name a certificate must carry for `host` (a DNS name or an IP address).
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).ok()
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
