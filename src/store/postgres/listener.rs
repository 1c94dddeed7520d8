//! One `LISTEN` connection per replica: turns other replicas' `NOTIFY` wake-ups into
//! [`StoreSignal`]s, and says [`StoreSignal::Resync`] whenever the connection had to be opened
//! again, since notifications sent meanwhile are lost.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgNotification};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{CANCEL_CHANNEL, EVENTS_CHANNEL, QUEUED_CHANNEL};
use crate::store::StoreSignal;

/// Signals buffered for the replica's dispatcher; a full buffer makes the listener wait, and
/// PostgreSQL queues notifications meanwhile.
const SIGNAL_BUFFER: usize = 1024;
/// The longest wait between attempts to listen again after the connection was lost.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the listening task on `tracker`; it stops with `stop`.
pub(super) fn start(pool: PgPool, tracker: &TaskTracker, stop: CancellationToken) -> mpsc::Receiver<StoreSignal> {
    let (signals, receiver) = mpsc::channel(SIGNAL_BUFFER);
    tracker.spawn(async move {
        tokio::select! {
            () = listen(pool, signals) => {}
            () = stop.cancelled() => {}
        }
    });
    receiver
}

async fn listen(pool: PgPool, signals: mpsc::Sender<StoreSignal>) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let mut listener = match subscribe(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for other replicas' signals; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if !first && signals.send(StoreSignal::Resync).await.is_err() {
            return;
        }
        first = false;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some(signal) = parse(&notification)
                        && signals.send(signal).await.is_err()
                    {
                        return;
                    }
                }
                Ok(None) => {
                    tracing::warn!("the connection listening for other replicas' signals was lost; listening again");
                    break;
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(%error, "listening for other replicas' signals failed; listening again");
                    break;
                }
            }
        }
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([EVENTS_CHANNEL, QUEUED_CHANNEL, CANCEL_CHANNEL]).await?;
    Ok(listener)
}

/// The signal a notification carries; `None` for a malformed one.
fn parse(notification: &PgNotification) -> Option<StoreSignal> {
    parse_payload(notification.channel(), notification.payload())
}

fn parse_payload(channel: &str, payload: &str) -> Option<StoreSignal> {
    match channel {
        EVENTS_CHANNEL => {
            let mut parts = payload.splitn(3, ' ');
            let job_id = parts.next()?.parse().ok()?;
            let seq = parts.next()?.parse().ok()?;
            let replica = parts.next().unwrap_or_default().to_string();
            Some(StoreSignal::Stored { job_id, seq, replica })
        }
        QUEUED_CHANNEL => Some(StoreSignal::Queued),
        CANCEL_CHANNEL => payload.parse().ok().map(StoreSignal::CancelRequested),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_signals() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(
            parse_payload(EVENTS_CHANNEL, &format!("{id} 42 host-a:8080")),
            Some(StoreSignal::Stored { job_id: id, seq: 42, replica: "host-a:8080".into() })
        );
        assert_eq!(
            parse_payload(EVENTS_CHANNEL, &format!("{id} 7 ")),
            Some(StoreSignal::Stored { job_id: id, seq: 7, replica: String::new() })
        );
        assert_eq!(parse_payload(QUEUED_CHANNEL, ""), Some(StoreSignal::Queued));
        assert_eq!(parse_payload(CANCEL_CHANNEL, &id.to_string()), Some(StoreSignal::CancelRequested(id)));
        assert_eq!(parse_payload(EVENTS_CHANNEL, "not-a-uuid 1 a"), None);
        assert_eq!(parse_payload(EVENTS_CHANNEL, &format!("{id} x a")), None);
        assert_eq!(parse_payload("other", ""), None);
    }
}
