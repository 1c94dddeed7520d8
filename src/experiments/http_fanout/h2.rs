//! HTTP/2 (h2c with prior knowledge, or negotiated by ALPN over TLS): `max_connections` connections, each shared
//! by the workers of its slot, every request a stream of its own — so `concurrency` requests can
//! be in flight over few connections.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::connection::{FailureKind, FanoutRequest, Response, classify, read_response};
use super::dial::Dialer;
use super::plan::Endpoint;
use super::tally::SharedTally;

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
        if let Some((connected_to, sender)) = slot.as_ref() {
            if *connected_to == route.endpoint && !sender.is_closed() {
                return Ok(sender.clone());
            }
        }
        *slot = None;
        let stream =
            timeout(route.connect_timeout, route.dialer.connect(route.target)).await.map_err(|_| FailureKind::ConnectTimeout)??;
        let (sender, driver) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|error| classify(&error))?;
        self.drivers.lock().expect("driver set poisoned").spawn(async move {
            let _ = driver.await;
        });
        tally.connections_opened.fetch_add(1, Ordering::Relaxed);
        *slot = Some((route.endpoint, sender.clone()));
        Ok(sender)
    }

    /// Sends `request` as a stream on the worker's slot's connection and reads the response.
    pub async fn exchange(
        &self,
        worker: usize,
        route: &Route<'_>,
        tally: &SharedTally,
        request: FanoutRequest,
    ) -> Result<Response, FailureKind> {
        let mut sender = self.sender(worker, route, tally).await?;
        sender.ready().await.map_err(|error| classify(&error))?;
        read_response(sender.send_request(request).await.map_err(|error| classify(&error))?).await
    }
}
