//! Where experiments may connect: loopback, plus the hosts an operator allowlisted. Cloud
//! metadata and other link-local addresses are refused always.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// The outbound allowlist, built once from configuration.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Host names and IP literals (lowercase) allowed besides loopback.
    allowed_hosts: Vec<String>,
}

impl OutboundPolicy {
    /// A policy allowing loopback and `allowed_hosts`.
    pub fn new(allowed_hosts: impl IntoIterator<Item = String>) -> Self {
        OutboundPolicy { allowed_hosts: allowed_hosts.into_iter().map(|host| host.trim().to_ascii_lowercase()).collect() }
    }

    fn is_listed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.allowed_hosts.contains(&host)
    }

    /// Checks a URL's host before anything is resolved: loopback literals, `localhost`, or
    /// a listed host. The error says why and how to allow it.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        let allowed = match url.host() {
            None => return Err("the URL has no host".into()),
            Some(Host::Ipv4(ip)) => is_allowed_ip(IpAddr::V4(ip)) && (ip.is_loopback() || self.is_listed(&ip.to_string())),
            Some(Host::Ipv6(ip)) => is_allowed_ip(IpAddr::V6(ip)) && (ip.is_loopback() || self.is_listed(&ip.to_string())),
            Some(Host::Domain(name)) => is_localhost(name) || self.is_listed(name),
        };
        if allowed {
            Ok(())
        } else {
            Err(format!("host {} is not allowed: only loopback and the hosts in ASYNCLAB_ALLOW_HOSTS", url.host_str().unwrap_or_default()))
        }
    }

    /// Resolves `host:port` and checks every address it resolves to, so a name cannot be
    /// re-pointed at a forbidden address after the URL check.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((bare, port)).await.map_err(|error| format!("cannot resolve {host}: {error}"))?.collect();
        if addresses.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        let listed = self.is_listed(bare);
        for address in &addresses {
            let ip = address.ip();
            if !is_allowed_ip(ip) || !(ip.is_loopback() || listed) {
                return Err(format!("{host} resolves to {ip}, which is not allowed"));
            }
        }
        Ok(addresses)
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// False for link-local and cloud-metadata addresses, which are never a target.
fn is_allowed_ip(ip: IpAddr) -> bool {
    const AWS_IPV6_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match ip {
        IpAddr::V4(ip) => !ip.is_link_local() && !ip.is_unspecified() && !ip.is_broadcast(),
        IpAddr::V6(ip) => {
            ip != AWS_IPV6_METADATA
                && !ip.is_unspecified()
                && (ip.segments()[0] & 0xffc0) != 0xfe80
                && ip.to_ipv4_mapped().is_none_or(|v4| is_allowed_ip(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: &OutboundPolicy, url: &str) -> Result<(), String> {
        policy.check_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn loopback_is_allowed_and_other_hosts_are_not_by_default() {
        let policy = OutboundPolicy::default();
        assert!(check(&policy, "http://127.0.0.1:8080/x").is_ok());
        assert!(check(&policy, "http://[::1]:8080/x").is_ok());
        assert!(check(&policy, "http://localhost/x").is_ok());
        assert!(check(&policy, "http://example.com/").unwrap_err().contains("example.com"));
        assert!(check(&policy, "http://10.0.0.1/").is_err());
    }

    #[test]
    fn metadata_addresses_are_refused_even_when_listed() {
        let policy = OutboundPolicy::new(["169.254.169.254".to_string(), "fd00:ec2::254".to_string()]);
        assert!(check(&policy, "http://169.254.169.254/latest/meta-data").is_err());
        assert!(check(&policy, "http://[fd00:ec2::254]/").is_err());
    }

    #[test]
    fn listed_hosts_are_allowed() {
        let policy = OutboundPolicy::new(["Target.Example".to_string()]);
        assert!(check(&policy, "http://target.example:9000/").is_ok());
    }

    #[tokio::test]
    async fn resolution_checks_every_address() {
        let policy = OutboundPolicy::default();
        let addresses = policy.resolve("localhost", 80).await.unwrap();
        assert!(addresses.iter().all(|address| address.ip().is_loopback()));
        assert!(policy.resolve("127.0.0.1", 80).await.is_ok());
    }
}
