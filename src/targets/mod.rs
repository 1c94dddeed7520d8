//! Built-in load targets, so experiments that need a peer work with nothing else installed.
//!
//! `http` serves the `/targets` endpoints; `listener` counts the connections a server accepts
//! (the proof that a fan-out kept to its connection cap); `echo` is a TCP echo server;
//! `standalone` runs the HTTP target and the echo server as `asynclab target`; `s3` is the
//! in-process S3 endpoint the `s3` experiment uses when no other is configured.

pub mod echo;
pub mod http;
pub mod listener;
pub mod s3;
pub mod sftp;
pub mod standalone;
pub mod tls_listener;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use utoipa::ToSchema;

/// Counters of the server that hosts the targets.
#[derive(Debug, Default)]
pub struct TargetStats {
    connections_accepted: AtomicU64,
    connections_open: AtomicU64,
    connections_peak: AtomicU64,
    requests_served: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct TargetStatsSnapshot {
    /// Connections accepted since start-up (all routes of this server).
    pub connections_accepted: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// The most connections that were open at once.
    pub connections_peak: u64,
    /// Requests the target endpoints served.
    pub requests_served: u64,
}

impl TargetStats {
    /// Counts an accepted connection.
    pub fn connection_opened(&self) {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let open = self.connections_open.fetch_add(1, Ordering::Relaxed) + 1;
        self.connections_peak.fetch_max(open, Ordering::Relaxed);
    }

    /// Counts a closed connection.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a served target request.
    pub fn request_served(&self) {
        self.requests_served.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> TargetStatsSnapshot {
        TargetStatsSnapshot {
            connections_accepted: self.connections_accepted.load(Ordering::Relaxed),
            connections_open: self.connections_open.load(Ordering::Relaxed),
            connections_peak: self.connections_peak.load(Ordering::Relaxed),
            requests_served: self.requests_served.load(Ordering::Relaxed),
        }
    }
}
