//! The service's own HTTP client, built once and shared: job-finished webhooks and `http-fanout`
//! jobs with `pool: shared` go through it, so they reuse its connection pool.
//! Every name it resolves goes through the outbound policy (each address checked, so a name
//! cannot be re-pointed at a forbidden address), it never follows redirects (a redirect could
//! leave the allowlist), and `https` is checked against the same roots as every other target.
//! `http-fanout` keeps its own dialer by default: a load generator must not share a pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use crate::outbound::OutboundPolicy;
use crate::tls::TrustedRoots;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most idle connections kept per host.
const POOL_MAX_IDLE_PER_HOST: usize = 32;

/// The shared client: cheap to clone (clones share one pool).
#[derive(Debug, Clone)]
pub struct SharedHttpClient {
    client: reqwest::Client,
    policy: OutboundPolicy,
    /// Connections the pool has opened (TCP, and TLS when `https`) since start-up.
    connections_opened: Arc<AtomicU64>,
}

impl SharedHttpClient {
    /// A client allowed where `policy` allows, trusting `roots` for `https`.
    pub fn build(policy: &OutboundPolicy, roots: &TrustedRoots) -> anyhow::Result<Self> {
        let tls = roots.client_config(&[b"http/1.1"]).context("cannot configure TLS for the shared HTTP client")?;
        let connections_opened = Arc::new(AtomicU64::new(0));
        let counter = connections_opened.clone();
        let count_connection = tower::util::MapResponseLayer::new(move |connection| {
            counter.fetch_add(1, Ordering::Relaxed);
            connection
        });
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .dns_resolver(Arc::new(PolicyResolver(policy.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .user_agent(concat!("asynclab/", env!("CARGO_PKG_VERSION")))
            .connector_layer(count_connection)
            .build()
            .context("cannot build the shared HTTP client")?;
        Ok(SharedHttpClient { client, policy: policy.clone(), connections_opened })
    }

    /// Connections the pool has opened since start-up (each counted once its TCP connection,
    /// and TLS handshake for `https`, succeeded).
    pub fn connections_opened(&self) -> u64 {
        self.connections_opened.load(Ordering::Relaxed)
    }

    /// Starts a request to `url` after checking its host against the outbound policy (an IP
    /// literal is never resolved, so this is where it is checked).
    pub fn request(&self, method: reqwest::Method, url: &Url) -> Result<reqwest::RequestBuilder, String> {
        self.policy.check_url(url)?;
        Ok(self.client.request(method, url.clone()))
    }
}

impl Default for SharedHttpClient {
    /// A client allowed on loopback only, trusting the platform's roots.
    fn default() -> Self {
        SharedHttpClient::build(&OutboundPolicy::default(), &TrustedRoots::default()).expect("the default HTTP client builds")
    }
}

/// Resolves through the outbound policy.
struct PolicyResolver(OutboundPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            // The connector sets the URL's port on every address.
            let addresses: Vec<SocketAddr> = policy.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hosts_outside_the_policy_are_refused_before_any_connection() {
        let client = SharedHttpClient::build(&OutboundPolicy::new([]), &TrustedRoots::default()).unwrap();
        let refused = client.request(reqwest::Method::GET, &Url::parse("http://192.0.2.1/").unwrap()).unwrap_err();
        assert!(refused.contains("not allowed"), "{refused}");
        assert!(client.request(reqwest::Method::GET, &Url::parse("http://127.0.0.1:1/").unwrap()).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_outside_the_policy_are_refused() {
        let resolver = PolicyResolver(OutboundPolicy::new(["example.invalid".to_string()]));
        assert!(resolver.resolve("localhost".parse().unwrap()).await.is_ok());
        assert!(resolver.resolve("example.invalid".parse().unwrap()).await.is_err());
    }
}
