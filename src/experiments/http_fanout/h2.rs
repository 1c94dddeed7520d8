//! HTTP/2 (h2c with prior knowledge, or negotiated by ALPN over TLS): `max_connections` connections, each shared
//! by the workers of its slot, every request a stream of its own — so `concurrency` requests can
//! be in flight over few connections.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::connection::{FailureKind, Response};
use super::dial::Dialer;
use super::plan::{Endpoint, RequestTemplate};
use super::tally::SharedTally;

/// A request as hyper sends it: the body is a shared buffer (empty for most requests).
type FanoutRequest = Request<Full<Bytes>>;
type Sender = http2::SendRequest<Full<Bytes>>;

/// Where and how a stream's connection is opened.
pub struct Route<'a> {
    /// The plan's endpoint number.
    pub endpoint: usize,
    /// The endpoint itself.
    pub target: &'a Endpoint,
    /// Opens the connection.
    pub dialer: &'a Dialer,
    /// Opening's time limit.
    pub connect_timeout: Duration,
}

/// The shared HTTP/2 connections of one fan-out.
pub struct H2Connections {
    /// One slot per allowed connection: the endpoint it is connected to and its sender. A tokio
    /// mutex: a worker holds it while it connects, so one slot never opens two connections.
    slots: Vec<tokio::sync::Mutex<Option<(usize, Sender)>>>,
    /// The connections' I/O tasks; aborted when the fan-out is dropped. A std mutex: held only to spawn.
    drivers: std::sync::Mutex<JoinSet<()>>,
}

impl H2Connections {
    /// Room for `connections` connections.
    pub fn new(connections: usize) -> Self {
        H2Connections {
            slots: (0..connections.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect(),
            drivers: std::sync::Mutex::new(JoinSet::new()),
        }
    }

    /// A sender on `worker`'s slot's connection to `endpoint`, connecting first when the slot is
    /// empty, closed or connected elsewhere.
    async fn sender(&self, worker: usize, route: &Route<'_>, tally: &SharedTally) -> Result<Sender, FailureKind> {
        let mut slot = self.slots[worker % self.slots.len()].lock().await;
        if let Some((connected_to, sender)) = slot.as_ref()
            && *connected_to == route.endpoint
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        *slot = None;
        let stream =
            timeout(route.connect_timeout, route.dialer.connect(route.target)).await.map_err(|_| FailureKind::ConnectTimeout)??;
        let (sender, driver) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.map_err(|error| classify(&error))?;
        self.drivers.lock().expect("driver set poisoned").spawn(async move {
            let _ = driver.await;
        });
        tally.connections_opened.fetch_add(1, Ordering::Relaxed);
        *slot = Some((route.endpoint, sender.clone()));
        Ok(sender)
    }

    /// Sends request `index` of kind `template` as a stream on the worker's slot's connection
    /// and reads the response.
    pub async fn exchange(
        &self,
        worker: usize,
        route: &Route<'_>,
        tally: &SharedTally,
        template: &RequestTemplate,
        index: u64,
    ) -> Result<Response, FailureKind> {
        let request = build_request(template, route.target, index).map_err(|_| FailureKind::InvalidRequest)?;
        let mut sender = self.sender(worker, route, tally).await?;
        sender.ready().await.map_err(|error| classify(&error))?;
        read_response(sender.send_request(request).await.map_err(|error| classify(&error))?).await
    }
}

/// Request `index` of kind `template`: HTTP/2 carries the scheme and authority in the URI
/// (`:scheme`, `:authority`).
fn build_request(template: &RequestTemplate, target: &Endpoint, index: u64) -> Result<FanoutRequest, hyper::http::Error> {
    let mut request = Request::builder()
        .method(template.method.clone())
        .version(hyper::Version::HTTP_2)
        .uri(format!("{}://{}{}", target.scheme(), target.authority, template.path(index)))
        .body(Full::new(template.body.clone()))?;
    if !template.headers.is_empty() {
        request.headers_mut().extend(template.headers.clone());
    }
    if !template.body.is_empty() {
        request.headers_mut().insert(hyper::header::CONTENT_LENGTH, template.body.len().into());
    }
    Ok(request)
}

/// The failure kind of a hyper error.
fn classify(error: &hyper::Error) -> FailureKind {
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        FailureKind::ConnectionClosed
    } else if error.is_timeout() {
        FailureKind::Timeout
    } else {
        FailureKind::Protocol
    }
}

/// Reads a response's whole body, counting its bytes.
async fn read_response(response: hyper::Response<hyper::body::Incoming>) -> Result<Response, FailureKind> {
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
