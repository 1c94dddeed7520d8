//! The fan-out's own HTTP/1.1 client: one connection, driven by the worker that owns it, so the
//! number of open connections is exactly the number of workers holding one. A request is one
//! write of bytes encoded once per request kind ([`request`]); the response is read into a
//! buffer kept with the connection and parsed in place ([`response`]): no task, channel or
//! allocation per request. Works over any byte stream (plain TCP or TLS).

pub mod request;
pub mod response;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use self::response::{BodyReader, Parsed, parse_head};
use super::connection::{FailureKind, Response};
use super::dial::{Dialer, Stream};
use super::plan::Endpoint;

/// The read buffer's first size: a few responses' worth of small bodies.
const INITIAL_READ_BYTES: usize = 8 * 1024;
/// The read buffer grows (doubling) while reads fill it, up to this: fewer reads for large bodies.
const MAX_READ_BYTES: usize = 256 * 1024;

/// An open HTTP/1.1 connection to one endpoint.
pub struct Connection<S = Stream> {
    /// Which endpoint of the plan it is connected to.
    pub endpoint: usize,
    stream: S,
    /// Received bytes; `received[start..]` are not parsed yet.
    received: Vec<u8>,
    start: usize,
    /// Cleared when the last response said the connection ends, or broke off.
    reusable: bool,
}

impl Connection<Stream> {
    /// Connects to `target` (plan endpoint number `endpoint`).
    pub async fn open(endpoint: usize, target: &Endpoint, dialer: &Dialer) -> Result<Self, FailureKind> {
        Ok(Connection::new(endpoint, dialer.connect(target).await?))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// A connection over an open `stream`.
    pub fn new(endpoint: usize, stream: S) -> Self {
        Connection { endpoint, stream, received: Vec::with_capacity(INITIAL_READ_BYTES), start: 0, reusable: true }
    }

    /// Whether another request can be sent: the last response left the connection open, and
    /// the server has neither closed it since nor sent bytes nobody asked for. The check reads
    /// without waiting; when the last read drained the socket it makes no system call.
    pub fn is_reusable(&mut self) -> bool {
        if !self.reusable {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        let mut context = Context::from_waker(Waker::noop());
        // Pending is the healthy case: nothing to read. Anything else ends the connection.
        self.reusable = matches!(Pin::new(&mut self.stream).poll_read(&mut context, &mut probe), Poll::Pending);
        self.reusable
    }

    /// Writes `request` and reads the whole response, counting its body bytes; `head_request`:
    /// the request was a `HEAD`, so the response has no body.
    pub async fn exchange(&mut self, request: &[u8], head_request: bool) -> Result<Response, FailureKind> {
        self.reusable = false;
        self.stream.write_all(request).await.map_err(|error| failure(&error))?;
        self.stream.flush().await.map_err(|error| failure(&error))?;
        let head = loop {
            match parse_head(&self.received[self.start..], head_request)? {
                Parsed::Final(head, length) => {
                    self.start += length;
                    break head;
                }
                Parsed::Interim(length) => self.start += length,
                Parsed::Partial => {
                    if self.fill().await? == 0 {
                        return Err(FailureKind::ConnectionClosed);
                    }
                }
            }
        };
        let mut body = BodyReader::new(head.framing);
        let mut body_bytes = 0;
        loop {
            let progress = body.advance(&self.received[self.start..])?;
            self.start += progress.consumed;
            body_bytes += progress.content;
            if body.is_done() {
                break;
            }
            if self.fill().await? == 0 {
                body.at_close()?;
                return Ok(Response { status: head.status, body_bytes });
            }
        }
        // Bytes after the response were not asked for: the stream is out of step, end it.
        self.reusable = head.keep_alive && self.start == self.received.len();
        Ok(Response { status: head.status, body_bytes })
    }

    /// Reads more bytes after the unparsed ones; 0 when the server closed the connection.
    async fn fill(&mut self) -> Result<usize, FailureKind> {
        if self.start > 0 {
            self.received.drain(..self.start);
            self.start = 0;
        }
        // Only an unfinished head or chunk line stays unparsed, and the parsers bound both.
        if self.received.len() == self.received.capacity() {
            self.received.reserve(self.received.capacity());
        }
        let room = self.received.capacity() - self.received.len();
        let read = self.stream.read_buf(&mut self.received).await.map_err(|error| failure(&error))?;
        if read == room && self.received.capacity() < MAX_READ_BYTES {
            self.received.reserve(self.received.capacity());
        }
        Ok(read)
    }
}

/// The failure kind of an I/O error on an open connection.
fn failure(error: &io::Error) -> FailureKind {
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::WriteZero => FailureKind::ConnectionClosed,
        _ => FailureKind::Protocol,
    }
}

#[cfg(test)]
mod tests;
