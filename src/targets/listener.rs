//! A TCP listener for `axum::serve` that counts connections as they open and close, and turns
//! off Nagle's algorithm on each (small responses must not wait for coalescing).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::TargetStats;

/// A listener whose connections report to [`TargetStats`].
pub struct CountingListener {
    inner: TcpListener,
    stats: Arc<TargetStats>,
}

impl CountingListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, stats: Arc<TargetStats>) -> Self {
        CountingListener { inner, stats }
    }
}

/// An accepted connection; counted closed when dropped.
pub struct CountedStream {
    inner: TcpStream,
    stats: Arc<TargetStats>,
}

impl CountedStream {
    /// Writes what the socket takes at once without waiting (see [`TcpStream::try_write`]).
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        self.inner.try_write(bytes)
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.stats.connection_closed();
    }
}

impl axum::serve::Listener for CountingListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = axum::serve::Listener::accept(&mut self.inner).await;
        let _ = stream.set_nodelay(true);
        self.stats.connection_opened();
        (CountedStream { inner: stream, stats: self.stats.clone() }, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
