//! Slow and idle clients cannot wear the server down: connections trickling a request head are
//! closed after the header timeout while a new client launches and streams a job, idle
//! connections are closed after the idle timeout while an event stream outlives it, and
//! connections beyond the bound get a clean `503`.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, TestDatabase};

/// Connections trickling their head; with the server's side that is 2,000 descriptors of this
/// process, well within the 20,000 the CI machine allows (and the server's share stays under
/// half of whatever the limit is).
const TRICKLERS: usize = 1000;
/// The header timeout of these tests.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// What the trickling connections send, one byte a second; never a complete head.
const HEAD: &[u8] = b"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Whether the server closed `stream` (end of file or a reset), waiting at most `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0_u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn trickling_heads_are_closed_after_the_header_timeout_and_do_not_stop_a_launch() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--header-timeout-ms", &HEADER_TIMEOUT.as_millis().to_string()]).await;
    let address = app.address.trim_start_matches("http://").to_string();

    let mut tricklers = Vec::with_capacity(TRICKLERS);
    for _ in 0..TRICKLERS {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        stream.write_all(&HEAD[..1]).await.expect("first byte");
        tricklers.push(stream);
    }
    let first_bytes_sent = Instant::now();
    // One byte a second on each, from one task, until the server has closed them all (at most
    // 30 s); each connection's closing is noticed at the next second's round.
    let trickle = tokio::spawn(async move {
        let mut closed_after = vec![None; tricklers.len()];
        let mut next_byte = 1;
        while closed_after.iter().any(Option::is_none) && first_bytes_sent.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (stream, closed) in tricklers.iter_mut().zip(&mut closed_after) {
                if closed.is_some() {
                    continue;
                }
                let mut buffer = [0_u8; 64];
                match stream.try_read(&mut buffer) {
                    Ok(0) => *closed = Some(first_bytes_sent.elapsed()),
                    Err(error) if error.kind() != std::io::ErrorKind::WouldBlock => *closed = Some(first_bytes_sent.elapsed()),
                    _ => {
                        let _ = stream.try_write(&HEAD[next_byte..=next_byte]);
                    }
                }
            }
            next_byte = (next_byte + 1).min(HEAD.len() - 1);
        }
        closed_after
    });

    // Meanwhile a new client launches a job and follows it to its end.
    let id = app.launch_ok("structured-concurrency", &json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 200}]})).await;
    let events = app.all_events(&id, None).await;
    let end = events.last().expect("events");
    assert_eq!(end.event, "end");
    assert_eq!(end.data["status"], "succeeded", "{}", end.data);
    let launched_within = first_bytes_sent.elapsed();

    let closed_after = trickle.await.expect("trickling task");
    let still_open = closed_after.iter().filter(|closed| closed.is_none()).count();
    assert_eq!(still_open, 0, "trickling connections left open 30 s after their first byte");
    let first_closed = closed_after.iter().flatten().min().copied().unwrap();
    let all_closed_after = closed_after.iter().flatten().max().copied().unwrap();
    assert!(first_closed >= HEADER_TIMEOUT, "closed before the header timeout: {first_closed:?}");
    eprintln!(
        "{TRICKLERS} trickling connections: a job launched and streamed to its end {launched_within:?} after they started; \
         all closed {all_closed_after:?} after their first byte (header timeout {HEADER_TIMEOUT:?})"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_an_event_stream_outlives_the_idle_timeout() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--idle-timeout-ms", "500"]).await;
    let address = app.address.trim_start_matches("http://").to_string();

    let mut idle = TcpStream::connect(&address).await.unwrap();
    let opened = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(30)).await, "the idle connection was never closed");
    assert!(opened.elapsed() >= Duration::from_millis(500));

    // A job running four idle timeouts: its stream stays open through them and ends with the job.
    let id = app.launch_ok("structured-concurrency", &json!({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 2000}]})).await;
    let events = app.all_events(&id, None).await;
    let end = events.last().expect("events");
    assert_eq!(end.event, "end", "the stream was cut: {events:?}");
    assert_eq!(end.data["status"], "succeeded", "{}", end.data);
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_bound_get_a_clean_503() {
    let database = TestDatabase::new(Backend::Sqlite);
    let app = TestApp::start(&database, &["--max-connections", "3"]).await;
    let address = app.address.trim_start_matches("http://").to_string();

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    // The three are accepted in order; the fourth finds no place.
    let mut refused = TcpStream::connect(&address).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), refused.read_to_string(&mut answer))
        .await
        .expect("the refusal comes at once")
        .expect("read");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let problem: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(problem["status"], 503);

    // A freed place is taken by the next client.
    held.pop();
    let mut served = false;
    for _ in 0..200 {
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        if let Ok(response) = client.get(app.url("/healthz")).send().await
            && response.status() == 200
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "no client was served after a place was freed");
    let metrics = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    drop(held);
    let text = loop {
        if let Ok(response) = metrics.get(app.url("/metrics")).send().await
            && response.status() == 200
        {
            break response.text().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.lines().any(|line| line.starts_with("asynclab_connections_refused_total") && !line.ends_with(" 0")), "{text}");
    app.stop().await;
}
