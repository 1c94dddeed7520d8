//! A job's events as server-sent events: the stored ones after the client's position, then
//! live ones, then an `end` event with the final status.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;

use crate::api::pruned::missing_job;
use crate::api::state::AppState;
use crate::error::{ApiError, AppPath, AppQuery, Problem};
use crate::jobs::events::{Live, Subscription};
use crate::jobs::{JobEvent, JobId, JobStatus};

/// Comment lines keep idle streams open through proxies.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events read from the store per query while replaying.
const REPLAY_PAGE: u32 = 500;
/// Events buffered between the follower task and the HTTP response; a slow client makes the
/// follower wait (it resumes from the store, so nothing is lost).
const STREAM_BUFFER: usize = 64;
/// When a client refused for too many open streams may try again.
const SUBSCRIBERS_FULL_RETRY_AFTER_S: u64 = 5;

/// Where to resume.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Replay only events with a greater sequence number (the `Last-Event-ID` header wins).
    pub after: Option<i64>,
}

/// Streams a job's events as SSE. Each event has `id:` = its sequence number, `event:` = its kind
/// (`status`, `progress`, `log`, `result`) and `data:` = `{seq, at, kind, data}`. A reconnecting
/// client sends `Last-Event-ID` and gets exactly the events it missed. The stream ends with
/// `event: end` (`data: {"status": …}`) once the job has ended; a finished job's stream replays
/// and ends at once.
#[utoipa::path(get, path = "/jobs/{id}/events", tag = "jobs",
    params(("id" = Uuid, Path, description = "The job's id"),
           ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this sequence number"),
           EventsQuery),
    responses((status = 200, content_type = "text/event-stream", body = serde_json::Value,
               description = "The event stream; each event's `data` is `{seq, at, kind, data}`, the final `end` event's is `{status}`"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 410, body = Problem, content_type = "application/problem+json", description = "The job was pruned by retention (the reason says when)"),
              (status = 429, body = Problem, content_type = "application/problem+json",
               description = "The job has `ASYNCLAB_MAX_SUBSCRIBERS_PER_JOB` streams open")))]
pub async fn stream(
    State(state): State<AppState>,
    AppPath(id): AppPath<JobId>,
    AppQuery(query): AppQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| ApiError::bad_request("Last-Event-ID", "must be a non-negative event sequence number"))?,
        None => match query.after {
            Some(after) if after < 0 => return Err(ApiError::bad_request("after", "must not be negative")),
            Some(after) => after,
            None => 0,
        },
    };
    // Subscribe first, then read the store, so no event falls between the two. The first page of
    // stored events also proves the job exists (every job has its `queued` event): the job row is
    // read only when there is none, which saves the first event two round trips.
    let subscription = state.bus.subscribe(id);
    let first_page = state.store.events_after(id, after, REPLAY_PAGE).await?;
    if first_page.is_empty() && state.store.get_job(id).await?.is_none() {
        return Err(missing_job(state.store.as_ref(), "id", id).await);
    }
    let Some(place) = state.limits.subscribers.try_open(id) else {
        return Err(ApiError::TooManyRequests {
            reason: format!("job {id} has {} event streams open already", state.config.max_subscribers_per_job),
            retry_after_s: SUBSCRIBERS_FULL_RETRY_AFTER_S,
        });
    };
    let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
    let streams = state.streams.clone();
    streams.spawn(async move {
        follow(state, id, after, Resume { subscription, first_page }, sender).await;
        drop(place);
    });
    Ok(Sse::new(ReceiverStream::new(receiver)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

type Outbox = mpsc::Sender<Result<Event, Infallible>>;

/// Why following stopped.
enum Stop {
    /// The job ended (the `end` event was sent) or the client left.
    Done,
    /// Caught up with the store; keep listening.
    CaughtUp,
}

/// Where a stream starts: the live subscription taken before reading the store, and the first
/// page read.
struct Resume {
    subscription: Subscription,
    first_page: Vec<JobEvent>,
}

/// Replays from the store, then forwards live events; resumes from the store whenever the live
/// channel lags or closes, or says that another replica stored events, so the client sees every
/// event once, in order.
async fn follow(state: AppState, id: JobId, mut last: i64, resume: Resume, outbox: Outbox) {
    let _subscriber = state.services.meters.sse_subscriber();
    let Resume { mut subscription, first_page } = resume;
    let mut prefetched = Some(first_page);
    loop {
        match replay(&state, id, &mut last, prefetched.take(), &outbox).await {
            Ok(Stop::Done) => return,
            Ok(Stop::CaughtUp) => {}
            Err(error) => {
                tracing::warn!(job.id = %id, error = format!("{error:#}"), "event replay failed; closing the stream");
                return;
            }
        }
        loop {
            tokio::select! {
                received = subscription.receiver.recv() => match received {
                    Ok(Live::Event(event)) if event.seq <= last => {}
                    Ok(Live::Event(event)) if event.seq == last + 1 => {
                        if let Stop::Done = deliver(&event, &mut last, &outbox).await {
                            return;
                        }
                    }
                    Ok(Live::Stored(seq)) if seq <= last => {}
                    // Stored by another replica, a gap or a lag: the store has everything, read
                    // it from there.
                    Ok(Live::Event(_) | Live::Stored(_)) | Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => {
                        // The job's channel closed: it ended, and its last events are stored.
                        if let Ok(Stop::CaughtUp) = replay(&state, id, &mut last, None, &outbox).await {
                            tracing::warn!(job.id = %id, "live channel closed before the job's end was stored");
                        }
                        return;
                    }
                },
                () = state.streams_closing.cancelled() => return,
                () = outbox.closed() => return,
            }
        }
        // Re-subscribe before replaying, as at the start.
        subscription = state.bus.subscribe(id);
    }
}

/// Sends the stored events after `last`, starting with `prefetched` (the page after `last`)
/// when it was read already.
async fn replay(
    state: &AppState,
    id: JobId,
    last: &mut i64,
    mut prefetched: Option<Vec<JobEvent>>,
    outbox: &Outbox,
) -> anyhow::Result<Stop> {
    loop {
        let events = match prefetched.take() {
            Some(events) => events,
            None => state.store.events_after(id, *last, REPLAY_PAGE).await?,
        };
        let full_page = events.len() == REPLAY_PAGE as usize;
        for event in &events {
            if let Stop::Done = deliver(event, last, outbox).await {
                return Ok(Stop::Done);
            }
        }
        if !full_page {
            return Ok(Stop::CaughtUp);
        }
    }
}

/// Sends one event (and `end` after a terminal status); `Done` when the stream is over.
async fn deliver(event: &JobEvent, last: &mut i64, outbox: &Outbox) -> Stop {
    *last = event.seq;
    if outbox.send(Ok(to_sse(event))).await.is_err() {
        return Stop::Done;
    }
    match event.status() {
        Some(status) if status.is_terminal() => {
            let _ = outbox.send(Ok(end_event(status))).await;
            Stop::Done
        }
        _ => Stop::CaughtUp,
    }
}

fn to_sse(event: &JobEvent) -> Event {
    let data = json!({ "seq": event.seq, "at": event.at, "kind": event.kind, "data": event.data });
    Event::default().id(event.seq.to_string()).event(event.kind.as_str()).data(data.to_string())
}

fn end_event(status: JobStatus) -> Event {
    Event::default().event("end").data(json!({ "status": status }).to_string())
}
