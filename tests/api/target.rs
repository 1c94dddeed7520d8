//! `asynclab target` as a process of its own: HTTP endpoints and the TCP echo port.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::service_process::spare_port;

#[tokio::test]
async fn the_target_process_serves_http_and_echo_and_stops_on_sigterm() {
    let (http_port, echo_port) = (spare_port(), spare_port());
    let mut target = tokio::process::Command::new(env!("CARGO_BIN_EXE_asynclab"))
        .args(["target", "--bind", &format!("127.0.0.1:{http_port}"), "--echo-bind", &format!("127.0.0.1:{echo_port}")])
        .args(["--workers", "1"])
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let client = reqwest::Client::new();
    let hello = format!("http://127.0.0.1:{http_port}/targets/hello/7");
    let mut answer = None;
    for _ in 0..500 {
        if let Ok(response) = client.get(&hello).send().await {
            answer = Some(response.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(answer.expect("the target answers"), serde_json::json!({"hello": 7}));

    let mut echo = tokio::net::TcpStream::connect(("127.0.0.1", echo_port)).await.unwrap();
    echo.write_all(b"ping over tcp").await.unwrap();
    let mut back = [0u8; 13];
    echo.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping over tcp");
    drop(echo);

    let stats: serde_json::Value =
        client.get(format!("http://127.0.0.1:{http_port}/targets/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["requests_served"], 1);
    assert_eq!(stats["connections_accepted"], 2, "one HTTP connection, one echo connection: {stats}");

    let pid = target.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), target.wait()).await.expect("stops on SIGTERM").unwrap();
    assert!(status.success(), "{status}");
}
