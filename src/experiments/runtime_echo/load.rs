//! What every flavour runs, whatever its runtime: the load's shape, the messages (a pattern
//! unique to each connection, stamped with the round number, so a stale or misrouted echo is
//! caught), and the merge of the clients' round-trip times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::stats::latency_histogram;

/// Round trips a client counts locally before adding them to the shared progress counter, so
/// the counter's cache line is not fought over on every message.
pub const PROGRESS_BATCH: u32 = 32;
/// The server reads at most this much at once.
const MAX_SERVER_READ: usize = 64 << 10;

/// The load one flavour carries.
#[derive(Debug, Clone, Copy)]
pub struct EchoLoad {
    /// Client connections, all open at once.
    pub connections: u32,
    /// Round trips per connection.
    pub round_trips: u32,
    /// Bytes per message.
    pub message_bytes: usize,
}

impl EchoLoad {
    /// Round trips in all.
    pub fn total_round_trips(&self) -> u64 {
        u64::from(self.connections) * u64::from(self.round_trips)
    }

    /// The size of a server connection's read buffer.
    pub fn server_buffer_bytes(&self) -> usize {
        self.message_bytes.clamp(1, MAX_SERVER_READ)
    }
}

/// The first message of connection `connection`: a byte pattern that depends on it.
pub fn first_message(connection: u32, message_bytes: usize) -> Vec<u8> {
    (0..message_bytes).map(|offset| (offset as u32).wrapping_mul(31).wrapping_add(connection.wrapping_mul(7)) as u8).collect()
}

/// Writes the round number into the message's first bytes, so each round's echo differs.
pub fn stamp(message: &mut [u8], round: u32) {
    let stamp = round.to_le_bytes();
    let length = message.len().min(stamp.len());
    message[..length].copy_from_slice(&stamp[..length]);
}

/// Why an echo was wrong, naming the connection and round.
pub fn mismatch(connection: u32, round: u32) -> String {
    format!("connection {connection}, round {round}: the echoed bytes differ from the message sent")
}

/// Records one client's progress and round-trip time.
pub struct ClientMeter<'a> {
    progress: &'a AtomicU64,
    unreported: u32,
    /// Round-trip times in microseconds, one per round.
    pub rtt_micros: Vec<u32>,
}

impl<'a> ClientMeter<'a> {
    /// A meter for `round_trips` rounds adding to `progress`.
    pub fn new(progress: &'a AtomicU64, round_trips: u32) -> Self {
        ClientMeter { progress, unreported: 0, rtt_micros: Vec::with_capacity(round_trips as usize) }
    }

    /// Records a finished round trip.
    pub fn record(&mut self, rtt: Duration) {
        self.rtt_micros.push(u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX));
        self.unreported += 1;
        if self.unreported == PROGRESS_BATCH {
            self.flush();
        }
    }

    /// Adds the rounds not yet counted to the shared counter.
    pub fn flush(&mut self) {
        self.progress.fetch_add(u64::from(self.unreported), Ordering::Relaxed);
        self.unreported = 0;
    }
}

/// What one flavour measured.
#[derive(Debug)]
pub struct FlavourRun {
    /// From the first connect to the last echo.
    pub elapsed: Duration,
    /// Round trips completed and verified.
    pub round_trips: u64,
    /// Round-trip times in microseconds.
    pub rtt: Histogram<u64>,
}

impl FlavourRun {
    /// Merges the clients' samples.
    pub fn merge(elapsed: Duration, clients: impl IntoIterator<Item = Vec<u32>>) -> Self {
        let mut rtt = latency_histogram();
        let mut round_trips = 0;
        for samples in clients {
            round_trips += samples.len() as u64;
            for micros in samples {
                rtt.saturating_record(u64::from(micros));
            }
        }
        FlavourRun { elapsed, round_trips, rtt }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_differ_by_connection_and_round() {
        let mut first = first_message(1, 16);
        let second = first_message(2, 16);
        assert_ne!(first, second);
        let before = first.clone();
        stamp(&mut first, 7);
        assert_ne!(first, before);
        assert_eq!(&first[..4], &7u32.to_le_bytes());
        let mut tiny = first_message(0, 1);
        stamp(&mut tiny, 5);
        assert_eq!(tiny, [5]);
    }
}
