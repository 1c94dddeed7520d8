//! The HTTP/1.1 client against scripted byte streams (every way a response can be split, every
//! framing, every malformed or cut-off response) and against real loopback sockets.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::header::{HeaderMap, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::Connection;
use super::request::{EncodedRequest, RequestParts};
use super::response::{Framing, Head, Parsed, parse_head};
use crate::experiments::http_fanout::connection::FailureKind;

/// A stream that answers with scripted reads, one chunk per read, then ends (or stays silent,
/// like an open idle connection), and keeps what is written to it.
struct Scripted {
    reads: VecDeque<Vec<u8>>,
    silent_at_end: bool,
    written: Vec<u8>,
}

impl Scripted {
    fn new(chunks: &[&[u8]], silent_at_end: bool) -> Self {
        Scripted { reads: chunks.iter().map(|chunk| chunk.to_vec()).collect(), silent_at_end, written: Vec::new() }
    }
}

impl AsyncRead for Scripted {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let Some(mut chunk) = self.reads.pop_front() else {
            return if self.silent_at_end { Poll::Pending } else { Poll::Ready(Ok(())) };
        };
        let taken = chunk.len().min(buf.remaining());
        buf.put_slice(&chunk[..taken]);
        if taken < chunk.len() {
            self.reads.push_front(chunk.split_off(taken));
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// One exchange over scripted reads: the outcome, and whether the connection is reusable after.
async fn exchange(chunks: &[&[u8]], head_request: bool) -> (Result<(u16, u64), FailureKind>, bool) {
    let mut connection = Connection::new(0, Scripted::new(chunks, true));
    let outcome = connection.exchange(GET, head_request).await.map(|response| (response.status, response.body_bytes));
    assert_eq!(connection.stream.written, GET);
    (outcome, connection.is_reusable())
}

/// Every way of cutting `response` in two, and byte by byte, gives the same outcome as in one piece.
async fn assert_split_anywhere(response: &[u8], expected: (Result<(u16, u64), FailureKind>, bool)) {
    assert_eq!(exchange(&[response], false).await, expected, "in one read");
    for at in 1..response.len() {
        assert_eq!(exchange(&[&response[..at], &response[at..]], false).await, expected, "split at {at}");
    }
    let bytes: Vec<&[u8]> = response.chunks(1).collect();
    assert_eq!(exchange(&bytes, false).await, expected, "byte by byte");
}

#[tokio::test]
async fn content_length_responses_split_anywhere() {
    let response = b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 5\r\n\r\nhello";
    assert_split_anywhere(response, (Ok((200, 5)), true)).await;
    assert_split_anywhere(b"HTTP/1.1 204 No Content\r\n\r\n", (Ok((204, 0)), true)).await;
}

#[tokio::test]
async fn chunked_bodies_with_extensions_and_trailers_split_anywhere() {
    let response =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
    assert_split_anywhere(response, (Ok((200, 15)), true)).await;
    assert_split_anywhere(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", (Ok((200, 0)), true)).await;
}

#[tokio::test]
async fn bodies_until_close_end_the_connection() {
    let response = b"HTTP/1.1 200 OK\r\n\r\nsome bytes";
    let mut connection = Connection::new(0, Scripted::new(&[response], false));
    let answered = connection.exchange(GET, false).await.unwrap();
    assert_eq!((answered.status, answered.body_bytes), (200, 10));
    assert!(!connection.is_reusable());
    // A transfer coding other than chunked is framed by the close too.
    let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz";
    let mut connection = Connection::new(0, Scripted::new(&[response], false));
    assert_eq!(connection.exchange(GET, false).await.unwrap().body_bytes, 3);
}

#[tokio::test]
async fn a_server_closing_early_fails_the_request_as_connection_closed() {
    let closed = (Err(FailureKind::ConnectionClosed), false);
    for cut_off in [
        &b""[..],
        b"HTTP/1.1 200 OK\r\nContent-Len",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
    ] {
        let mut connection = Connection::new(0, Scripted::new(&[cut_off], false));
        let outcome = connection.exchange(GET, false).await.map(|response| (response.status, response.body_bytes));
        assert_eq!((outcome, connection.is_reusable()), closed, "{:?}", String::from_utf8_lossy(cut_off));
    }
}

#[tokio::test]
async fn malformed_responses_fail_as_protocol() {
    for malformed in [
        &b"HTTP/1.1 abc OK\r\n\r\n"[..],
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiXX",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    ] {
        let outcome = exchange(&[malformed], false).await;
        assert_eq!(outcome, (Err(FailureKind::Protocol), false), "{:?}", String::from_utf8_lossy(malformed));
    }
    let endless_head = [b"HTTP/1.1 200 OK\r\n".to_vec(), b"X: y\r\n".repeat(20_000)].concat();
    assert_eq!(exchange(&[&endless_head], false).await, (Err(FailureKind::Protocol), false));
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let response =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    assert_split_anywhere(response, (Ok((201, 2)), true)).await;
}

#[tokio::test]
async fn keep_alive_follows_the_version_and_connection_header() {
    let cases: [(&[u8], bool); 6] = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
        (b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n", false),
        (b"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 0\r\n\r\n", false),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true),
        // Both framings: Transfer-Encoding wins, and the connection must end.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false),
    ];
    for (response, reusable) in cases {
        let (outcome, reused) = exchange(&[response], false).await;
        assert_eq!((outcome, reused), (Ok((200, 0)), reusable), "{:?}", String::from_utf8_lossy(response));
    }
}

#[tokio::test]
async fn head_requests_and_bodiless_statuses_read_no_body() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    assert_eq!(exchange(&[head], true).await, (Ok((200, 0)), true));
    assert_eq!(exchange(&[b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"], false).await, (Ok((304, 0)), true));
    assert_eq!(parse_head(head, true), Ok(Parsed::Final(Head { status: 200, framing: Framing::Empty, keep_alive: true }, head.len())));
}

#[tokio::test]
async fn bytes_after_the_response_are_not_taken_for_the_next_one() {
    // A second response nobody asked for, in the same read or arriving while the connection is idle.
    let one = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let two = [&one[..], &one[..]].concat();
    assert_eq!(exchange(&[&two], false).await, (Ok((200, 2)), false));
    assert_eq!(exchange(&[one, one], false).await, (Ok((200, 2)), false));
}

#[tokio::test]
async fn large_bodies_are_counted_across_many_reads() {
    let body = vec![b'x'; 1_000_000];
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    let chunks: Vec<&[u8]> = std::iter::once(head.as_bytes()).chain(body.chunks(70_000)).collect();
    assert_eq!(exchange(&chunks, false).await, (Ok((200, 1_000_000)), true));
}

fn encoded(method: hyper::Method, path: &str, body: &[u8], keep_alive: bool) -> EncodedRequest {
    let mut headers = HeaderMap::new();
    headers.insert("x-run", HeaderValue::from_static("7"));
    EncodedRequest::new(&RequestParts { method: &method, path, host: "127.0.0.1:9", headers: &headers, body, keep_alive })
}

#[test]
fn requests_are_encoded_once_and_numbered_per_request() {
    let mut scratch = Vec::new();
    let get = encoded(hyper::Method::GET, "/a/{i}?n={i}", b"", true);
    let bytes = get.bytes(42, &mut scratch).to_vec();
    assert_eq!(bytes, b"GET /a/42?n=42 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nx-run: 7\r\n\r\n");
    assert_eq!(get.len(42), bytes.len());
    assert_eq!(get.len(1_000_000), bytes.len() + 10);

    let post = encoded(hyper::Method::POST, "/items", b"{}", false);
    let bytes = post.bytes(3, &mut scratch).to_vec();
    assert_eq!(bytes, b"POST /items HTTP/1.1\r\nHost: 127.0.0.1:9\r\nx-run: 7\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    assert_eq!(post.len(3), bytes.len());
    let empty_put = encoded(hyper::Method::PUT, "/", b"", true);
    assert!(empty_put.bytes(0, &mut scratch).windows(17).any(|window| window == b"Content-Length: 0"));
    assert!(encoded(hyper::Method::HEAD, "/", b"", true).head_request);
}

/// A loopback server that answers each request on its first connection with `answer`, split in
/// single bytes, then closes the connection after `requests` requests.
async fn byte_by_byte_server(answer: &'static [u8], requests: usize) -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.set_nodelay(true).unwrap();
        let mut request = [0u8; 1024];
        for _ in 0..requests {
            let mut seen = Vec::new();
            while !seen.ends_with(b"\r\n\r\n") {
                let read = socket.read(&mut request).await.unwrap();
                assert!(read > 0, "the client closed early");
                seen.extend_from_slice(&request[..read]);
            }
            for byte in answer {
                socket.write_all(&[*byte]).await.unwrap();
                tokio::task::yield_now().await;
            }
        }
    });
    TcpStream::connect(address).await.unwrap()
}

#[tokio::test]
async fn a_loopback_connection_is_reused_until_the_server_closes_it() {
    let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let mut connection = Connection::new(0, byte_by_byte_server(answer, 3).await);
    for _ in 0..3 {
        assert!(connection.is_reusable());
        let response = connection.exchange(GET, false).await.unwrap();
        assert_eq!((response.status, response.body_bytes), (200, 3));
    }
    // The server closed the idle connection: noticed before the next request is written.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while connection.is_reusable() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the close was never noticed");
}

#[tokio::test]
async fn a_loopback_server_closing_mid_body_is_connection_closed() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this";
    let mut connection = Connection::new(0, byte_by_byte_server(answer, 1).await);
    assert_eq!(connection.exchange(GET, false).await.unwrap_err(), FailureKind::ConnectionClosed);
}
