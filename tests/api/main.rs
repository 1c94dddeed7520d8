//! Integration tests: the real application on port 0 against the real PostgreSQL on
//! 127.0.0.1:5432, a fresh database per test.

mod helpers;

mod errors;
mod events;
mod fanout;
mod fanout_load;
mod idempotency;
mod lifecycle;
mod openapi;
mod recovery;
mod target;
