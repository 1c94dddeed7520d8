//! A TCP echo server: every byte a client sends comes back, for raw-socket load and the
//! runtime comparisons.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::TargetStats;

/// Echoes on `listener` until `stop` fires; each connection is tracked on `connections`.
pub async fn serve(listener: TcpListener, stats: Arc<TargetStats>, connections: TaskTracker, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let (mut stream, _) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                // Out of descriptors and the like: report, breathe, go on.
                tracing::warn!(%error, "echo accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        stats.connection_opened();
        let (stats, stop) = (stats.clone(), stop.clone());
        connections.spawn(async move {
            let (mut reader, mut writer) = stream.split();
            tokio::select! {
                _ = tokio::io::copy(&mut reader, &mut writer) => {}
                () = stop.cancelled() => {}
            }
            stats.connection_closed();
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_come_back_unchanged() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stats, stop, tracker) = (Arc::new(TargetStats::default()), CancellationToken::new(), TaskTracker::new());
        let server = tokio::spawn(serve(listener, stats.clone(), tracker.clone(), stop.clone()));
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        let message: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&message).await.unwrap();
        let mut echoed = vec![0; message.len()];
        client.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, message);
        assert_eq!(stats.snapshot().connections_accepted, 1);
        stop.cancel();
        server.await.unwrap();
        tracker.close();
        tracker.wait().await;
        assert_eq!(stats.snapshot().connections_open, 0);
    }
}
