//! A failed step's error in categories a report reader can act on. A server that went away
//! mid-run is a `connection` error however it shows: a broken socket, or the server's own
//! goodbye (PostgreSQL's SQLSTATE 57P01–57P03 when it is shut down or its postmaster dies,
//! class 08; MariaDB's "server shutdown in progress" and "connection was killed").

use serde::{Deserialize, Serialize};
use sqlx::mysql::MySqlDatabaseError;
use utoipa::ToSchema;

/// PostgreSQL SQLSTATEs that mean the server ended the session: admin_shutdown (57P01, also sent
/// when the postmaster died), crash_shutdown (57P02), cannot_connect_now (57P03).
const PG_SESSION_ENDED: [&str; 3] = ["57P01", "57P02", "57P03"];
/// The SQLSTATE class of connection exceptions (both servers).
const CONNECTION_EXCEPTION_CLASS: &str = "08";
/// MariaDB error numbers that mean the server ended the session: ER_SERVER_SHUTDOWN (1053) and
/// ER_CONNECTION_KILLED (1927).
const MYSQL_SESSION_ENDED: [u16; 2] = [1053, 1927];

/// Why a statement failed, in categories a report reader can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DbErrorKind {
    /// A constraint refused the rows (duplicate key, not null…).
    Constraint,
    /// The connection could not be made or broke, or the server ended the session.
    Connection,
    /// A statement or a pool checkout took too long.
    Timeout,
    /// Anything else the database refused.
    Database,
}

/// A failed step: its kind and the database's message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DbError {
    /// The category.
    #[schema(inline)]
    pub kind: DbErrorKind,
    /// What happened.
    pub message: String,
}

impl DbError {
    /// A timeout of a statement that took longer than `timeout_ms`.
    pub fn statement_timeout(timeout_ms: u64) -> Self {
        DbError { kind: DbErrorKind::Timeout, message: format!("a statement took longer than {timeout_ms} ms") }
    }

    /// The error with the server it concerns named first, when the connection to it failed.
    pub fn at(self, server: &str) -> Self {
        match self.kind {
            DbErrorKind::Connection => DbError { message: format!("server {server}: {}", self.message), ..self },
            _ => self,
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        DbError { kind: kind_of(&error), message: error.to_string() }
    }
}

/// The category of `error`.
fn kind_of(error: &sqlx::Error) -> DbErrorKind {
    match error {
        sqlx::Error::Database(database) => {
            let number = database.try_downcast_ref::<MySqlDatabaseError>().map(MySqlDatabaseError::number);
            match (ends_session(database.code().as_deref(), number), database.kind()) {
                (true, _) => DbErrorKind::Connection,
                (false, sqlx::error::ErrorKind::Other) => DbErrorKind::Database,
                (false, _) => DbErrorKind::Constraint,
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => DbErrorKind::Connection,
        sqlx::Error::PoolTimedOut => DbErrorKind::Timeout,
        _ => DbErrorKind::Database,
    }
}

/// Whether a server error with SQLSTATE `code` (and, from MariaDB, error `number`) means the
/// server ended the session or refuses new ones.
fn ends_session(code: Option<&str>, number: Option<u16>) -> bool {
    let by_code = code.is_some_and(|code| PG_SESSION_ENDED.contains(&code) || code.starts_with(CONNECTION_EXCEPTION_CLASS));
    by_code || number.is_some_and(|number| MYSQL_SESSION_ENDED.contains(&number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_ends_the_session_is_a_connection_error() {
        for code in ["57P01", "57P02", "57P03", "08006", "08S01"] {
            assert!(ends_session(Some(code), None), "{code}");
        }
        assert!(ends_session(Some("HY000"), Some(1927)), "MariaDB: connection was killed");
        assert!(ends_session(Some("08S01"), Some(1053)), "MariaDB: server shutdown in progress");
        for (code, number) in [(Some("23505"), None), (Some("57014"), None), (Some("42P01"), None), (Some("23000"), Some(1062))] {
            assert!(!ends_session(code, number), "{code:?} {number:?}");
        }
    }

    #[test]
    fn broken_sockets_are_connection_errors_and_name_the_server() {
        let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let error = DbError::from(reset).at("127.0.0.1:5433");
        assert_eq!(error.kind, DbErrorKind::Connection);
        assert!(error.message.starts_with("server 127.0.0.1:5433: error communicating with database"), "{}", error.message);
        let timed_out = DbError::from(sqlx::Error::PoolTimedOut).at("127.0.0.1:5433");
        assert_eq!(timed_out.kind, DbErrorKind::Timeout);
        assert!(!timed_out.message.contains("5433"), "only connection errors are about the server: {}", timed_out.message);
    }
}
