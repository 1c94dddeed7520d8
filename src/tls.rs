//! TLS for outbound `https` requests and for the built-in target: the trusted roots (Mozilla's,
//! from webpki-roots, plus an operator's CA file) and the PEM loading both sides use. rustls on
//! aws-lc-rs, the provider already in the tree through sqlx.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate authorities outbound `https` connections trust.
#[derive(Clone)]
pub struct TrustedRoots(Arc<RootCertStore>);

impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TrustedRoots").field("roots", &self.0.len()).finish()
    }
}

impl Default for TrustedRoots {
    /// Mozilla's root program only.
    fn default() -> Self {
        TrustedRoots(Arc::new(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }))
    }
}

impl TrustedRoots {
    /// Mozilla's roots plus every certificate in the PEM file `ca_file`, when given.
    pub fn load(ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = ca_file {
            let certificates = read_certificates(path)?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            anyhow::ensure!(added > 0, "{} holds no usable CA certificate", path.display());
        }
        Ok(TrustedRoots(Arc::new(roots)))
    }

    /// A client configuration trusting these roots and offering `alpn` protocols.
    pub fn client_config(&self, alpn: &[&[u8]]) -> anyhow::Result<rustls::ClientConfig> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("no TLS protocol version available")?
            .with_root_certificates(self.0.clone())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(config)
    }
}

/// A server configuration from a PEM certificate chain and key, offering HTTP/2 and HTTP/1.1.
pub fn server_config(certificate_file: &Path, key_file: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let chain = read_certificates(certificate_file)?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", certificate_file.display());
    let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| format!("cannot read a private key from {}", key_file.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("no TLS protocol version available")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the key do not form a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))
}

/// aws-lc-rs, named explicitly: with more than one provider in the tree rustls has no default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
