//! One HTTP/1.1 keep-alive connection, driven inside the task that uses it (no helper task per
//! connection), so the number of open connections is exactly the number of workers holding one;
//! and what HTTP/1.1 and HTTP/2 share: connecting, reading a response, classifying failures.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::dial::{Dialer, Stream};
use super::plan::Endpoint;

/// Why a request produced no response; the names are the report's error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server refused the connection.
    ConnectRefused,
    /// Connecting failed otherwise.
    Connect,
    /// Connecting took longer than `connect_timeout_ms`.
    ConnectTimeout,
    /// The TLS handshake failed (an untrusted or mismatched certificate, no common protocol version).
    Tls,
    /// HTTP/2 was asked for over `https` and the server did not select it by ALPN.
    Alpn,
    /// An open-model arrival waited longer than `pool_timeout_ms` for a free connection.
    PoolTimeout,
    /// The request did not finish within its time limit.
    Timeout,
    /// The server closed the connection before the response was complete.
    ConnectionClosed,
    /// The server's bytes were not valid HTTP, or the exchange broke.
    Protocol,
    /// The request could not be built (an invalid path).
    InvalidRequest,
}

impl FailureKind {
    /// The kind's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ConnectRefused => "connect_refused",
            FailureKind::Connect => "connect",
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::Tls => "tls",
            FailureKind::Alpn => "alpn",
            FailureKind::PoolTimeout => "pool_timeout",
            FailureKind::Timeout => "timeout",
            FailureKind::ConnectionClosed => "connection_closed",
            FailureKind::Protocol => "protocol",
            FailureKind::InvalidRequest => "invalid_request",
        }
    }
}

/// The failure kind of a hyper error.
pub fn classify(error: &hyper::Error) -> FailureKind {
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        FailureKind::ConnectionClosed
    } else if error.is_timeout() {
        FailureKind::Timeout
    } else {
        FailureKind::Protocol
    }
}

/// What one exchange received.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Body bytes received.
    pub body_bytes: u64,
}

/// Reads a response's whole body, counting its bytes.
pub async fn read_response(response: hyper::Response<hyper::body::Incoming>) -> Result<Response, FailureKind> {
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut body_bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| classify(&error))?;
        if let Some(data) = frame.data_ref() {
            body_bytes += data.len() as u64;
        }
    }
    Ok(Response { status, body_bytes })
}

/// A request as the fan-out sends it: the body is a shared buffer (empty for most requests).
pub type FanoutRequest = Request<Full<Bytes>>;

type Driver = http1::Connection<TokioIo<Stream>, Full<Bytes>>;

/// An open HTTP/1.1 connection to one endpoint.
pub struct Connection {
    /// Which endpoint of the plan it is connected to.
    pub endpoint: usize,
    sender: http1::SendRequest<Full<Bytes>>,
    /// The connection's I/O state machine, polled alongside each exchange.
    driver: Pin<Box<Driver>>,
    /// Set once the driver has finished: the connection cannot be used again.
    finished: bool,
}

impl Connection {
    /// Connects to `target` (plan endpoint number `endpoint`) and performs the HTTP/1.1 handshake.
    pub async fn open(endpoint: usize, target: &Endpoint, dialer: &Dialer) -> Result<Self, FailureKind> {
        let stream = dialer.connect(target).await?;
        let (sender, driver) = http1::handshake(TokioIo::new(stream)).await.map_err(|error| classify(&error))?;
        Ok(Connection { endpoint, sender, driver: Box::pin(driver), finished: false })
    }

    /// Whether another request can be sent; polls the driver once so a connection the server
    /// closed while idle is noticed before it is used.
    pub fn is_reusable(&mut self) -> bool {
        if !self.finished && self.driver.as_mut().now_or_never().is_some() {
            self.finished = true;
        }
        !self.finished && !self.sender.is_closed()
    }

    /// Sends `request` and reads the whole response body.
    pub async fn exchange(&mut self, request: FanoutRequest) -> Result<Response, FailureKind> {
        let Connection { sender, driver, finished, .. } = self;
        let response = async {
            sender.ready().await.map_err(|error| classify(&error))?;
            read_response(sender.send_request(request).await.map_err(|error| classify(&error))?).await
        };
        tokio::pin!(response);
        tokio::select! {
            biased;
            outcome = &mut response => outcome,
            driven = driver.as_mut() => {
                *finished = true;
                match driven {
                    // A clean end (`Connection: close` after the response): the response may be
                    // complete in hyper's buffers; reading it fails if it is not.
                    Ok(()) => response.await,
                    Err(error) => Err(classify(&error)),
                }
            }
        }
    }
}
