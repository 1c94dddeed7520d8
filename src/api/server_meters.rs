//! The HTTP server's own measurements: connections open and refused, failed authentications
//! by reason, and jobs launched by token name.

use metrics::{counter, gauge};

use crate::meters::Meters;

const CONNECTIONS_OPEN: &str = "asynclab_connections_open";
const CONNECTIONS_REFUSED: &str = "asynclab_connections_refused_total";
const AUTH_FAILURES: &str = "asynclab_auth_failures_total";
const JOBS_LAUNCHED: &str = "asynclab_jobs_launched_total";

impl Meters {
    /// Counts an open connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.record(|| gauge!(CONNECTIONS_OPEN).increment(1.0));
        ConnectionGuard { meters: self.clone() }
    }

    /// A connection was refused: the server had as many open as it allows.
    pub fn connection_refused(&self) {
        self.record(|| counter!(CONNECTIONS_REFUSED).increment(1));
    }

    /// A job was launched with the token named `launched_by` (token names are few: admins
    /// create them, so the label's cardinality stays small).
    pub fn job_launched(&self, launched_by: &str) {
        let launched_by = launched_by.to_string();
        self.record(|| counter!(JOBS_LAUNCHED, "launched_by" => launched_by).increment(1));
    }

    /// A request's credentials were refused (`reason`: `missing`, `invalid`, `expired`,
    /// `revoked`, `rate_limited`).
    pub fn auth_failure(&self, reason: &'static str) {
        self.record(|| counter!(AUTH_FAILURES, "reason" => reason).increment(1));
    }
}

/// Keeps one connection counted in the open-connections gauge while it lives.
pub struct ConnectionGuard {
    meters: Meters,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.meters.record(|| gauge!(CONNECTIONS_OPEN).decrement(1.0));
    }
}
