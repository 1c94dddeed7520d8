//! Parameters of `runtime-echo` and their validation.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{FieldErrors, Validate};

/// The most client connections.
pub const MAX_CONNECTIONS: u32 = 1000;
/// The most round trips per connection.
pub const MAX_ROUND_TRIPS: u32 = 100_000;
/// The largest message.
pub const MAX_MESSAGE_BYTES: u32 = 1 << 20;
/// The most round trips in one flavour's run: each keeps a 4-byte RTT sample until the end.
pub const MAX_TOTAL_ROUND_TRIPS: u64 = 5_000_000;
/// The most message buffer memory of one run (client and server buffers per connection).
pub const MAX_BUFFER_BYTES: u64 = 64 << 20;

/// A runtime to run the echo server and its clients on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Flavour {
    /// tokio's current-thread runtime: one thread, epoll (asyncio's model).
    #[serde(rename = "current_thread")]
    CurrentThread,
    /// tokio's work-stealing runtime with one worker, epoll.
    #[serde(rename = "multi_thread_1")]
    MultiThread1,
    /// tokio's work-stealing runtime with two workers, epoll.
    #[serde(rename = "multi_thread_2")]
    MultiThread2,
    /// monoio on io_uring, one thread.
    #[serde(rename = "io_uring_1")]
    IoUring1,
    /// monoio on io_uring, thread per core on two threads: each thread runs its own listener
    /// and half the clients, sharing nothing.
    #[serde(rename = "io_uring_2")]
    IoUring2,
}

impl Flavour {
    /// Every flavour, in report order.
    pub const ALL: [Flavour; 5] =
        [Flavour::CurrentThread, Flavour::MultiThread1, Flavour::MultiThread2, Flavour::IoUring1, Flavour::IoUring2];

    /// The name used in parameters and reports.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::CurrentThread => "current_thread",
            Flavour::MultiThread1 => "multi_thread_1",
            Flavour::MultiThread2 => "multi_thread_2",
            Flavour::IoUring1 => "io_uring_1",
            Flavour::IoUring2 => "io_uring_2",
        }
    }

    /// The OS threads that run tasks.
    pub fn threads(self) -> usize {
        match self {
            Flavour::CurrentThread | Flavour::MultiThread1 | Flavour::IoUring1 => 1,
            Flavour::MultiThread2 | Flavour::IoUring2 => 2,
        }
    }
}

/// Parameters of a `runtime-echo` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEchoParams {
    /// The runtimes to compare, run one after the other (default: all five).
    #[serde(default = "all_flavours")]
    #[schema(inline)]
    pub flavours: Vec<Flavour>,
    /// Client connections, all open at once (1 to 1000).
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// Round trips per connection: write a message, read its echo (1 to 100,000).
    #[serde(default = "default_round_trips")]
    pub round_trips: u32,
    /// Bytes per message (1 to 1,048,576).
    #[serde(default = "default_message_bytes")]
    pub message_bytes: u32,
}

fn all_flavours() -> Vec<Flavour> {
    Flavour::ALL.to_vec()
}

fn default_connections() -> u32 {
    100
}

fn default_round_trips() -> u32 {
    200
}

fn default_message_bytes() -> u32 {
    2048
}

impl Validate for RuntimeEchoParams {
    fn validate(&self, errors: &mut FieldErrors) {
        errors.check(!self.flavours.is_empty(), "flavours", "must name at least one flavour");
        let mut seen = HashSet::new();
        for (index, flavour) in self.flavours.iter().enumerate() {
            errors.check(seen.insert(flavour), format!("flavours[{index}]"), format!("duplicate flavour {}", flavour.name()));
        }
        errors.range("connections", self.connections, 1, MAX_CONNECTIONS);
        errors.range("round_trips", self.round_trips, 1, MAX_ROUND_TRIPS);
        errors.range("message_bytes", self.message_bytes, 1, MAX_MESSAGE_BYTES);
        let total = u64::from(self.connections) * u64::from(self.round_trips);
        errors.check(
            total <= MAX_TOTAL_ROUND_TRIPS,
            "round_trips",
            format!("connections × round_trips must be at most {MAX_TOTAL_ROUND_TRIPS}, got {total}"),
        );
        let buffers = 3 * u64::from(self.connections) * u64::from(self.message_bytes);
        errors.check(
            buffers <= MAX_BUFFER_BYTES,
            "message_bytes",
            format!("3 × connections × message_bytes (the buffers) must be at most {MAX_BUFFER_BYTES} bytes, got {buffers}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(raw: serde_json::Value) -> Vec<String> {
        let params: RuntimeEchoParams = serde_json::from_value(raw).unwrap();
        let mut errors = FieldErrors::default();
        params.validate(&mut errors);
        errors.0.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn defaults_are_the_classic_benchmark() {
        let params: RuntimeEchoParams = serde_json::from_value(json!({})).unwrap();
        assert_eq!((params.connections, params.round_trips, params.message_bytes), (100, 200, 2048));
        assert_eq!(params.flavours, Flavour::ALL);
        assert!(fields(json!({})).is_empty());
    }

    #[test]
    fn bounds_are_named() {
        assert_eq!(fields(json!({"flavours": [], "connections": 0})), ["flavours", "connections"]);
        assert_eq!(fields(json!({"flavours": ["io_uring_1", "io_uring_1"]})), ["flavours[1]"]);
        assert_eq!(fields(json!({"connections": 1000, "round_trips": 100_000})), ["round_trips"]);
        assert_eq!(fields(json!({"connections": 1000, "message_bytes": 1_048_576})), ["message_bytes"]);
        assert!(serde_json::from_value::<RuntimeEchoParams>(json!({"flavours": ["uvloop"]})).is_err());
    }
}
