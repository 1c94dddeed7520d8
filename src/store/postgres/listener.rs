//! `LISTEN` connections that turn other replicas' `NOTIFY` wake-ups into signals: one for the
//! job store's [`StoreSignal`]s, and one for each further subscription (token revocations). A
//! connection that had to be opened again sends its subscription's resync signal, since
//! notifications sent meanwhile are lost.

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

/// What one listening connection subscribes to, and how its notifications become signals.
pub(super) struct Subscription<S> {
    /// The channels it listens on.
    pub channels: &'static [&'static str],
    /// The signal a notification carries; `None` for a malformed one, which is skipped.
    pub parse: fn(&PgNotification) -> Option<S>,
    /// The signal sent after the connection was opened again.
    pub resync: fn() -> S,
    /// What it listens for, in log lines.
    pub what: &'static str,
    /// Signals buffered for the receiver; a full buffer makes the listener wait.
    pub buffer: usize,
}

/// The job store's subscription: events stored, jobs queued and cancels requested elsewhere.
const STORE_SUBSCRIPTION: Subscription<StoreSignal> = Subscription {
    channels: &[EVENTS_CHANNEL, QUEUED_CHANNEL, CANCEL_CHANNEL],
    parse,
    resync: || StoreSignal::Resync,
    what: "other replicas' signals",
    buffer: SIGNAL_BUFFER,
};

/// Starts the job store's listening task on `tracker`; it stops with `stop`.
pub(super) fn start(pool: PgPool, tracker: &TaskTracker, stop: CancellationToken) -> mpsc::Receiver<StoreSignal> {
    spawn(pool, STORE_SUBSCRIPTION, tracker, stop)
}

/// Starts a task on `tracker` that listens for `subscription` until `stop`, and returns the
/// receiving end of its signals.
pub(super) fn spawn<S: Send + 'static>(
    pool: PgPool,
    subscription: Subscription<S>,
    tracker: &TaskTracker,
    stop: CancellationToken,
) -> mpsc::Receiver<S> {
    let (signals, receiver) = mpsc::channel(subscription.buffer);
    tracker.spawn(async move {
        tokio::select! {
            () = listen(pool, subscription, signals) => {}
            () = stop.cancelled() => {}
        }
    });
    receiver
}

async fn listen<S>(pool: PgPool, subscription: Subscription<S>, signals: mpsc::Sender<S>) {
    let what = subscription.what;
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let mut listener = match subscribe(&pool, subscription.channels).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for {what}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if !first && signals.send((subscription.resync)()).await.is_err() {
            return;
        }
        first = false;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some(signal) = (subscription.parse)(&notification)
                        && signals.send(signal).await.is_err()
                    {
                        return;
                    }
                }
                Ok(None) => {
                    tracing::warn!("the connection listening for {what} was lost; listening again");
                    break;
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(%error, "listening for {what} failed; listening again");
                    break;
                }
            }
        }
    }
}

async fn subscribe(pool: &PgPool, channels: &[&str]) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all(channels.iter().copied()).await?;
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
