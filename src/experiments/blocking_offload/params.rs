//! Parameters of `blocking-offload` and their validation.

use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use crate::validation::{FieldErrors, Validate};

/// The most work items one run may do.
pub const MAX_ITEMS: u32 = 100_000;
/// The most items started at once as async tasks.
pub const MAX_CONCURRENCY: u32 = 1024;
/// The largest semaphore.
pub const MAX_PERMITS: u32 = 1024;
/// The longest sleep or CPU burn of one item.
pub const MAX_AMOUNT_MS: u64 = 10_000;
/// The longest connect or read wait of one HTTP item.
pub const MAX_HTTP_TIMEOUT_MS: u64 = 60_000;

/// One work item: the blocking call every item makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkItem {
    /// `std::thread::sleep` for `amount` ms: a blocking wait that costs no CPU (like a
    /// blocking I/O call).
    SleepMs {
        /// Milliseconds (0 to 10,000).
        amount: u64,
    },
    /// A hashing loop that keeps one core busy for `amount` ms.
    CpuMs {
        /// Milliseconds (0 to 10,000).
        amount: u64,
    },
    /// A blocking HTTP/1.1 GET (`std::net::TcpStream`, `Connection: close`, read to the end),
    /// the `requests.get` of the Python lesson.
    Http {
        /// An `http` URL; loopback or a host in `ASYNCLAB_ALLOW_HOSTS`.
        url: String,
        /// Limit for connecting and for each read (1 to 60,000 ms).
        #[serde(default = "default_http_timeout_ms")]
        timeout_ms: u64,
    },
}

fn default_http_timeout_ms() -> u64 {
    10_000
}

/// Where each item's blocking call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OffloadMode {
    /// Called directly inside the async task: it blocks a runtime worker (the anti-pattern).
    Inline,
    /// Handed to the blocking thread pool with `spawn_blocking` (Python's `to_thread`).
    SpawnBlocking,
    /// `spawn_blocking` behind a semaphore of `permits` (`to_thread` + `Semaphore`).
    SpawnBlockingSemaphore,
}

/// Parameters of a `blocking-offload` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockingOffloadParams {
    /// How many work items to do (1 to 100,000).
    pub items: u32,
    /// What each item does.
    #[schema(inline)]
    pub work: WorkItem,
    /// Where the blocking call runs.
    #[schema(inline)]
    pub mode: OffloadMode,
    /// Items in progress at once as async tasks (1 to 1024).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// The semaphore's size (1 to 1024); required with `spawn_blocking_semaphore` only.
    pub permits: Option<u32>,
}

fn default_concurrency() -> u32 {
    16
}

/// Checks that `raw` is a URL a blocking GET can fetch: `http`, with a host.
pub fn check_http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|error| format!("not a valid URL: {error}"))?;
    if url.scheme() != "http" {
        return Err(format!("scheme {:?} is not supported; use http", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(url)
}

impl Validate for BlockingOffloadParams {
    fn validate(&self, errors: &mut FieldErrors) {
        errors.range("items", self.items, 1, MAX_ITEMS);
        errors.range("concurrency", self.concurrency, 1, MAX_CONCURRENCY);
        match &self.work {
            WorkItem::SleepMs { amount } | WorkItem::CpuMs { amount } => {
                errors.range("work.amount", *amount, 0, MAX_AMOUNT_MS);
            }
            WorkItem::Http { url, timeout_ms } => {
                if let Err(reason) = check_http_url(url) {
                    errors.add("work.url", reason);
                }
                errors.range("work.timeout_ms", *timeout_ms, 1, MAX_HTTP_TIMEOUT_MS);
            }
        }
        match (self.mode, self.permits) {
            (OffloadMode::SpawnBlockingSemaphore, None) => {
                errors.add("permits", "required with mode spawn_blocking_semaphore");
            }
            (OffloadMode::SpawnBlockingSemaphore, Some(permits)) => errors.range("permits", permits, 1, MAX_PERMITS),
            (_, Some(_)) => errors.add("permits", "only meaningful with mode spawn_blocking_semaphore"),
            (_, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(raw: serde_json::Value) -> Vec<String> {
        let params: BlockingOffloadParams = serde_json::from_value(raw).unwrap();
        let mut errors = FieldErrors::default();
        params.validate(&mut errors);
        errors.0.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn bounds_and_permits_are_named() {
        let sleep = json!({"kind": "sleep_ms", "amount": 20});
        assert!(fields(json!({"items": 10, "work": sleep, "mode": "inline"})).is_empty());
        assert_eq!(fields(json!({"items": 0, "work": sleep, "mode": "inline", "concurrency": 0})), ["items", "concurrency"]);
        assert_eq!(fields(json!({"items": 1, "work": sleep, "mode": "spawn_blocking_semaphore"})), ["permits"]);
        assert_eq!(fields(json!({"items": 1, "work": sleep, "mode": "spawn_blocking", "permits": 2})), ["permits"]);
        assert_eq!(
            fields(json!({"items": 1, "work": {"kind": "cpu_ms", "amount": 10_001}, "mode": "spawn_blocking_semaphore", "permits": 0})),
            ["work.amount", "permits"]
        );
        assert_eq!(
            fields(json!({"items": 1, "work": {"kind": "http", "url": "https://127.0.0.1/", "timeout_ms": 0}, "mode": "inline"})),
            ["work.url", "work.timeout_ms"]
        );
    }

    #[test]
    fn unknown_work_fields_are_refused() {
        let parsed = serde_json::from_value::<WorkItem>(json!({"kind": "sleep_ms", "amount": 1, "extra": true}));
        assert!(parsed.is_err());
        let parsed = serde_json::from_value::<WorkItem>(json!({"kind": "http", "url": "http://127.0.0.1/"})).unwrap();
        assert_eq!(parsed, WorkItem::Http { url: "http://127.0.0.1/".into(), timeout_ms: 10_000 });
    }
}
