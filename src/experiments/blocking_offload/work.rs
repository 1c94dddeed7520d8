//! The blocking calls a work item makes: `std::thread::sleep`, a hashing loop, or an HTTP/1.1
//! GET over a blocking `std::net::TcpStream`. Each one blocks the thread that calls it.

use std::hash::{DefaultHasher, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::params::{WorkItem, check_http_url};
use crate::experiments::ExperimentError;
use crate::outbound::OutboundPolicy;

/// The most response bytes one GET reads; the rest is left unread (the connection closes).
const MAX_RESPONSE_BYTES: u64 = 1 << 20;
/// Hash rounds between two looks at the clock in the CPU loop.
const HASH_ROUNDS_PER_CHECK: u32 = 1024;

/// A work item ready to run: durations decided, HTTP target resolved and checked.
#[derive(Debug, Clone)]
pub enum BlockingCall {
    /// Sleep the thread.
    Sleep(Duration),
    /// Keep the thread's core busy.
    Cpu(Duration),
    /// GET a URL.
    Http(HttpRequest),
}

/// A GET, resolved once before the run.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// The addresses the host resolved to, all allowed by the outbound policy; tried in order.
    addresses: Vec<SocketAddr>,
    /// The request's bytes.
    request: Vec<u8>,
    /// Limit for connecting and for each read or write.
    timeout: Duration,
}

/// How one item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOutcome {
    /// A sleep or CPU item ran its course.
    Done,
    /// The GET got a response with this status.
    Response(u16),
    /// The GET failed: `connect`, `timeout`, `io` or `protocol`.
    Failed(&'static str),
}

impl BlockingCall {
    /// Prepares `work`; an HTTP target is resolved with the outbound policy, every address checked.
    pub async fn prepare(work: &WorkItem, policy: &OutboundPolicy) -> Result<Self, ExperimentError> {
        match work {
            WorkItem::SleepMs { amount } => Ok(BlockingCall::Sleep(Duration::from_millis(*amount))),
            WorkItem::CpuMs { amount } => Ok(BlockingCall::Cpu(Duration::from_millis(*amount))),
            WorkItem::Http { url, timeout_ms } => {
                let url = check_http_url(url).map_err(ExperimentError::Refused)?;
                policy.check_url(&url).map_err(ExperimentError::Refused)?;
                let host = url.host_str().unwrap_or_default();
                let port = url.port_or_known_default().unwrap_or(80);
                let addresses = policy.resolve(host, port).await.map_err(ExperimentError::Refused)?;
                let authority = match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                };
                let target = match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_string(),
                };
                let request = format!("GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: asynclab\r\nConnection: close\r\n\r\n");
                Ok(BlockingCall::Http(HttpRequest {
                    addresses,
                    request: request.into_bytes(),
                    timeout: Duration::from_millis(*timeout_ms),
                }))
            }
        }
    }

    /// Makes the call, blocking the current thread. A CPU loop also ends when `stop` fires.
    pub fn perform(&self, stop: &CancellationToken) -> ItemOutcome {
        match self {
            BlockingCall::Sleep(duration) => {
                std::thread::sleep(*duration);
                ItemOutcome::Done
            }
            BlockingCall::Cpu(duration) => {
                burn_cpu(*duration, stop);
                ItemOutcome::Done
            }
            BlockingCall::Http(request) => match request.get() {
                Ok(status) => ItemOutcome::Response(status),
                Err(kind) => ItemOutcome::Failed(kind),
            },
        }
    }
}

/// Hashes a counter until `duration` has passed (or `stop` fired); returns the hash so the
/// loop is not optimised away.
fn burn_cpu(duration: Duration, stop: &CancellationToken) -> u64 {
    let deadline = Instant::now() + duration;
    let mut hasher = DefaultHasher::new();
    let mut round = 0u64;
    while Instant::now() < deadline && !stop.is_cancelled() {
        for _ in 0..HASH_ROUNDS_PER_CHECK {
            hasher.write_u64(round);
            round += 1;
        }
    }
    std::hint::black_box(hasher.finish())
}

impl HttpRequest {
    /// Sends the GET and reads the response to its end (or the byte cap); returns the status.
    fn get(&self) -> Result<u16, &'static str> {
        let mut stream = self.connect()?;
        stream.set_read_timeout(Some(self.timeout)).map_err(|_| "io")?;
        stream.set_write_timeout(Some(self.timeout)).map_err(|_| "io")?;
        stream.write_all(&self.request).map_err(io_kind)?;
        let mut response = Vec::new();
        (&mut stream).take(MAX_RESPONSE_BYTES).read_to_end(&mut response).map_err(io_kind)?;
        parse_status(&response).ok_or("protocol")
    }

    fn connect(&self) -> Result<TcpStream, &'static str> {
        let mut failure = "connect";
        for address in &self.addresses {
            match TcpStream::connect_timeout(address, self.timeout) {
                Ok(stream) => return Ok(stream),
                Err(error) if is_timeout(&error) => failure = "timeout",
                Err(_) => {}
            }
        }
        Err(failure)
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)
}

fn io_kind(error: std::io::Error) -> &'static str {
    if is_timeout(&error) { "timeout" } else { "io" }
}

/// The status code of an `HTTP/1.x NNN …` status line.
fn parse_status(response: &[u8]) -> Option<u16> {
    let line_end = response.iter().position(|&byte| byte == b'\r')?;
    let line = std::str::from_utf8(&response[..line_end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    (version.starts_with("HTTP/1.") && code.len() == 3).then(|| code.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service Unavailable\r\nx: y\r\n\r\n"), Some(503));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn the_cpu_loop_stops_when_told() {
        let stop = CancellationToken::new();
        stop.cancel();
        let started = Instant::now();
        burn_cpu(Duration::from_secs(10), &stop);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
