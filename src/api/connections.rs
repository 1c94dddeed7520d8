//! Serving HTTP connections with bounds a slow or idle client cannot wear down: a bound on the
//! connections open at once (beyond it a connection gets a `503` and is closed), a header
//! timeout (a connection that started sending a request but has not finished its head in time
//! is closed) and an idle timeout (a connection with no request in progress and nothing sent for
//! that long is closed). A request in progress — an SSE stream among them — is never timed out
//! here: the stream keeps its own keep-alive comments.
//!
//! Each connection is watched by its own task: the request service counts requests in
//! progress (until their response body is dropped), the connection's reads stamp the time of
//! the last byte, and the watcher compares both with the timeouts.
//!
//! This stays hand-written: tower's `Timeout` and `ConcurrencyLimit` act on requests, which exist
//! only once a head has been read, so they can neither time out a head still arriving nor bound
//! the descriptors held by idle connections.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::api::limits::ClientAddress;
use crate::meters::Meters;
use crate::targets::listener::{CountedStream, CountingListener};

/// What a connection beyond the bound is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 105\r\n\r\n\
{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"too many open connections\"}";

/// The bounds on the server's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The most connections open at once.
    pub max_connections: usize,
    /// How long a client may take to send a request head once it has started.
    pub header_timeout: Duration,
    /// How long a connection may stay open with no request in progress and nothing sent.
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    /// How often a connection's watcher looks at it: often enough that a timeout is enforced
    /// within a tenth of it (and at least every second), rarely enough to cost nothing.
    fn check_every(&self) -> Duration {
        (self.header_timeout.min(self.idle_timeout) / 10).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }
}

/// `requested` connections, or half the process's file-descriptor limit when that is lower (the
/// other half is left to the store's pools, files and the experiments' own connections).
pub fn fit_to_descriptor_limit(requested: usize) -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return requested;
    }
    let fitting = usize::try_from(limit.rlim_cur / 2).unwrap_or(usize::MAX).max(1);
    if requested > fitting {
        tracing::warn!(
            requested,
            allowed = fitting,
            descriptors = limit.rlim_cur,
            "ASYNCLAB_MAX_CONNECTIONS lowered to half the file-descriptor limit"
        );
        return fitting;
    }
    requested
}

/// Serves `router` on `listener` within `limits` until `stop` fires; then stops accepting,
/// asks every connection to finish its requests and close, and returns once they have.
/// `abort` drops the connections still open at once.
pub async fn serve(
    mut listener: CountingListener,
    router: Router,
    limits: ConnectionLimits,
    meters: Meters,
    stop: CancellationToken,
    abort: CancellationToken,
) {
    let places = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header timeout is enforced by the watcher, for HTTP/1.1 and HTTP/2 alike.
    builder.http1().header_read_timeout(None);
    loop {
        let (stream, address) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            meters.connection_refused();
            // The send buffer of a new socket is empty: this never blocks, and a client that does
            // not read it still sees the connection closed.
            let _ = stream.try_write(REFUSAL);
            continue;
        };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(WatchedStream { inner: stream, activity: activity.clone() });
        let service = request_service(router.clone(), ClientAddress(address), activity.clone());
        let connection = builder.serve_connection_with_upgrades(io, hyper::service::service_fn(service)).into_owned();
        let (stop, abort, meters) = (stop.clone(), abort.clone(), meters.clone());
        connections.spawn(async move {
            let _open = meters.connection_opened();
            tokio::select! {
                () = watch(connection, |connection| connection.graceful_shutdown(), &activity, limits, stop) => {}
                () = abort.cancelled() => {}
            }
            drop(place);
        });
    }
    connections.close();
    connections.wait().await;
}

/// What a connection's service answers each request with.
type ResponseFuture = Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

/// The service of one connection: stamps the client's address on each request and counts the
/// request in progress until its response body is dropped.
fn request_service(
    router: Router,
    client: ClientAddress,
    activity: Arc<Activity>,
) -> impl Fn(hyper::Request<Incoming>) -> ResponseFuture + Clone {
    move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(client));
        let in_progress = RequestInProgress::start(activity.clone());
        let router = router.clone();
        Box::pin(async move {
            let response = router.oneshot(request.map(Body::new)).await?;
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &in_progress;
                    frame
                }))
            }))
        })
    }
}

/// Drives one connection, closing it when a timeout passes or asking it to finish when the
/// server stops. `finish` asks the connection to stop taking requests and close once the
/// current ones end.
async fn watch<C: Future>(
    connection: C,
    finish: impl Fn(Pin<&mut C>),
    activity: &Activity,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let mut connection = std::pin::pin!(connection);
    let mut check = tokio::time::interval(limits.check_every());
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut finishing = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = stop.cancelled(), if !finishing => {
                finishing = true;
                finish(connection.as_mut());
            }
            _ = check.tick(), if !finishing => match activity.verdict(limits) {
                Verdict::Keep => {}
                Verdict::HeaderTimedOut => return,
                Verdict::Idle => {
                    finishing = true;
                    finish(connection.as_mut());
                }
            },
        }
    }
}

/// What the watcher makes of a connection.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Leave it open.
    Keep,
    /// It started a request head and did not finish it in time: drop it.
    HeaderTimedOut,
    /// Nothing in progress and nothing sent for the idle timeout: close it cleanly.
    Idle,
}

/// What a connection is doing, shared by its stream, its service and its watcher.
#[derive(Debug)]
struct Activity {
    /// The connection's start, the origin of the millisecond stamps below.
    opened: Instant,
    /// Requests whose head was read and whose response body is not yet dropped.
    in_progress: AtomicUsize,
    /// When the connection last had no request in progress (ms since `opened`).
    quiet_since_ms: AtomicU64,
    /// Whether bytes arrived since then: the start of the next request.
    read_since_quiet: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_progress: AtomicUsize::new(0),
            quiet_since_ms: AtomicU64::new(0),
            read_since_quiet: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn verdict(&self, limits: ConnectionLimits) -> Verdict {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return Verdict::Keep;
        }
        let quiet_for = Duration::from_millis(self.now_ms().saturating_sub(self.quiet_since_ms.load(Ordering::Acquire)));
        if self.read_since_quiet.load(Ordering::Acquire) {
            if quiet_for >= limits.header_timeout { Verdict::HeaderTimedOut } else { Verdict::Keep }
        } else if quiet_for >= limits.idle_timeout {
            Verdict::Idle
        } else {
            Verdict::Keep
        }
    }
}

/// One request in progress on a connection; dropping it (with the response body) ends it.
struct RequestInProgress {
    activity: Arc<Activity>,
}

impl RequestInProgress {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_progress.fetch_add(1, Ordering::AcqRel);
        RequestInProgress { activity }
    }
}

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        if self.activity.in_progress.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.activity.quiet_since_ms.store(self.activity.now_ms(), Ordering::Release);
            self.activity.read_since_quiet.store(false, Ordering::Release);
        }
    }
}

/// An accepted connection whose reads are noted in its [`Activity`].
struct WatchedStream {
    inner: CountedStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && !self.activity.read_since_quiet.load(Ordering::Relaxed) {
            self.activity.read_since_quiet.store(true, Ordering::Release);
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits =
        ConnectionLimits { max_connections: 10, header_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(60) };

    #[tokio::test(start_paused = true)]
    async fn a_started_head_times_out_after_the_header_timeout() {
        let activity = Activity::new();
        activity.read_since_quiet.store(true, Ordering::Release);
        tokio::time::advance(Duration::from_millis(9_900)).await;
        assert_eq!(activity.verdict(LIMITS), Verdict::Keep);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(activity.verdict(LIMITS), Verdict::HeaderTimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_is_idle_after_the_idle_timeout() {
        let activity = Activity::new();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(activity.verdict(LIMITS), Verdict::Keep);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(activity.verdict(LIMITS), Verdict::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_progress_is_never_timed_out_and_restarts_the_clock() {
        let activity = Arc::new(Activity::new());
        activity.read_since_quiet.store(true, Ordering::Release);
        let request = RequestInProgress::start(activity.clone());
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(activity.verdict(LIMITS), Verdict::Keep, "a long SSE stream stays open");
        drop(request);
        assert!(!activity.read_since_quiet.load(Ordering::Acquire));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(activity.verdict(LIMITS), Verdict::Keep, "the idle clock starts when the response ends");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(activity.verdict(LIMITS), Verdict::Idle);
    }
}
