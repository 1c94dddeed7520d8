//! Integration tests: the real application on port 0, on either store (PostgreSQL on
//! 127.0.0.1:5432 with a fresh database per test, or SQLite in a temporary directory), against
//! the real services the experiments use (MariaDB, Redis, OpenSSH's sshd, moto, Chromium).

mod helpers;
mod webdriver;

mod cli;
mod cli_gate;
mod compare;
mod cpu;
mod dashboard;
mod dashboard_compare;
mod dashboard_http;
mod dashboard_roles;
mod database;
mod docs;
mod echo;
mod errors;
mod events;
mod fanout;
mod fanout_endpoints;
mod fanout_load;
mod fanout_pool;
mod fanout_rate;
mod fanout_requests;
mod file_io;
mod history;
mod idempotency;
mod kinds;
mod lab_services;
mod labels;
mod layers;
mod lifecycle;
mod limits;
mod metrics;
mod offload;
mod openapi;
mod recovery;
mod redis;
pub mod reliability;
mod replicas;
mod retention;
mod revocation;
pub mod roles;
mod s3;
mod secrets;
mod service_process;
mod sftp;
mod slow_clients;
mod store_faults;
mod subprocess;
mod target;
mod target_faults;
mod task_local;
mod webhooks;
