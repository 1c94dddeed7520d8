//! Follows a job's event stream to its `end` event, reconnecting with `Last-Event-ID` when the
//! connection drops, so every event is shown once and in order.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::StreamExt;
use serde_json::Value;

use super::api::{Server, StreamError};
use super::display::Display;

/// Reconnects in a row without receiving an event before the client gives up.
const MAX_RECONNECTS: u32 = 8;
/// The first wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `id:` (the job event's sequence number); absent on `end`.
    pub id: Option<i64>,
    /// `event:`, the job event's kind or `end`.
    pub name: String,
    /// `data:` as JSON.
    pub data: Value,
}

/// Follows the job's events until `end`; returns the final status the server announced.
pub async fn follow(server: &Server, id: &str, display: &mut Display) -> anyhow::Result<String> {
    let mut last = 0;
    let mut failures = 0;
    loop {
        let before = last;
        let problem = match stream_once(server, id, &mut last, display).await {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => anyhow!("the stream closed before the job ended"),
            Err(StreamError::Transient(error)) => error,
            Err(StreamError::Fatal(error)) => return Err(error),
        };
        failures = if last > before { 1 } else { failures + 1 };
        if failures > MAX_RECONNECTS {
            bail!("lost the event stream after {MAX_RECONNECTS} attempts: {problem:#}");
        }
        let backoff = FIRST_BACKOFF.saturating_mul(1 << (failures - 1).min(8)).min(MAX_BACKOFF);
        display.note(&format!(
            "event stream dropped ({problem:#}); reconnecting after event {last} in {} ms (attempt {failures}/{MAX_RECONNECTS})",
            backoff.as_millis()
        ));
        tokio::time::sleep(backoff).await;
    }
}

/// Reads one connection's events; `Some(status)` once `end` arrived, `None` if it closed first.
async fn stream_once(server: &Server, id: &str, last: &mut i64, display: &mut Display) -> Result<Option<String>, StreamError> {
    let response = server.events(id, *last).await?;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| StreamError::Transient(anyhow::Error::new(error).context("the event stream broke")))?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let Some(event) = parse_block(&block).map_err(StreamError::Fatal)? else {
                continue;
            };
            if event.name == "end" {
                let status = event.data["status"].as_str().unwrap_or("unknown").to_string();
                return Ok(Some(status));
            }
            match event.id {
                Some(seq) if seq <= *last => continue,
                Some(seq) => *last = seq,
                None => {}
            }
            display.event(&event);
        }
    }
    Ok(None)
}

/// Parses one event block; `None` for a keep-alive comment.
pub fn parse_block(block: &str) -> anyhow::Result<Option<SseEvent>> {
    let mut id = None;
    let mut name = "message".to_string();
    let mut data = String::new();
    for line in block.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = value.parse().ok(),
            "event" => name = value.to_string(),
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
    if data.is_empty() {
        return Ok(None);
    }
    let data = serde_json::from_str(&data).with_context(|| format!("event data is not JSON: {data}"))?;
    Ok(Some(SseEvent { id, name, data }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_parse_into_events() {
        let event = parse_block("id: 3\nevent: progress\ndata: {\"seq\":3,\"data\":{\"completed\":5}}\n\n").unwrap().unwrap();
        assert_eq!(event, SseEvent { id: Some(3), name: "progress".into(), data: json!({"seq": 3, "data": {"completed": 5}}) });
        let end = parse_block("event: end\ndata: {\"status\":\"succeeded\"}\n\n").unwrap().unwrap();
        assert_eq!((end.id, end.name.as_str(), end.data), (None, "end", json!({"status": "succeeded"})));
        assert_eq!(parse_block(":\n\n").unwrap(), None);
        assert!(parse_block("data: {oops\n\n").is_err());
    }
}
