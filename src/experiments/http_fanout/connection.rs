//! What an exchange ends with, whatever the protocol: a response, or the kind of failure the
//! report counts.

/// Why a request produced no response; the names are the report's error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server refused the connection.
    ConnectRefused,
    /// Connecting failed otherwise.
    Connect,
    /// Connecting took longer than `connect_timeout_ms`.
    ConnectTimeout,
    /// The TLS handshake failed (an untrusted or mismatched certificate, no common protocol version).
    Tls,
    /// HTTP/2 was asked for over `https` and the server did not select it by ALPN.
    Alpn,
    /// An open-model arrival waited longer than `pool_timeout_ms` for a free connection.
    PoolTimeout,
    /// The request did not finish within its time limit.
    Timeout,
    /// The server closed the connection before the response was complete.
    ConnectionClosed,
    /// The server's bytes were not valid HTTP, or the exchange broke.
    Protocol,
    /// The request could not be built (an invalid path).
    InvalidRequest,
}

impl FailureKind {
    /// Every kind, each at the position of its [`FailureKind::index`].
    pub const ALL: [FailureKind; 10] = [
        FailureKind::ConnectRefused,
        FailureKind::Connect,
        FailureKind::ConnectTimeout,
        FailureKind::Tls,
        FailureKind::Alpn,
        FailureKind::PoolTimeout,
        FailureKind::Timeout,
        FailureKind::ConnectionClosed,
        FailureKind::Protocol,
        FailureKind::InvalidRequest,
    ];

    /// The kind's position in [`FailureKind::ALL`], for counting in a fixed array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ConnectRefused => "connect_refused",
            FailureKind::Connect => "connect",
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::Tls => "tls",
            FailureKind::Alpn => "alpn",
            FailureKind::PoolTimeout => "pool_timeout",
            FailureKind::Timeout => "timeout",
            FailureKind::ConnectionClosed => "connection_closed",
            FailureKind::Protocol => "protocol",
            FailureKind::InvalidRequest => "invalid_request",
        }
    }
}

/// What one exchange received.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Body bytes received.
    pub body_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::FailureKind;

    #[test]
    fn every_kind_sits_at_its_index() {
        for (position, kind) in FailureKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), position, "{kind:?}");
        }
    }
}
