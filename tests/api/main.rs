//! Integration tests: the real application on port 0 against the real PostgreSQL on
//! 127.0.0.1:5432, a fresh database per test.

mod helpers;
mod webdriver;

mod cli;
mod cpu;
mod dashboard;
mod dashboard_http;
mod dashboard_roles;
mod database;
mod docs;
mod errors;
mod echo;
mod events;
mod file_io;
mod fanout;
mod fanout_endpoints;
mod fanout_load;
mod fanout_rate;
mod fanout_requests;
mod idempotency;
mod layers;
mod lab_services;
mod lifecycle;
mod limits;
mod metrics;
mod offload;
mod openapi;
mod recovery;
mod redis;
mod replicas;
pub mod roles;
mod revocation;
pub mod reliability;
mod service_process;
mod sftp;
mod slow_clients;
mod store_faults;
mod s3;
mod secrets;
mod subprocess;
mod target;
mod target_faults;
mod task_local;
