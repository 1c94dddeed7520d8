//! The in-process S3 endpoint: s3s's protocol layer over s3s-fs's file-system backend, serving
//! a directory on a loopback port with SigV4 authentication. It is the `s3` experiment's
//! default target when no `AWS_ENDPOINT_URL_S3` is configured, so the experiment works out of
//! the box; its credentials are generated at start-up and never leave the server.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Length of the generated access key id (AWS's own are 20 characters).
const ACCESS_KEY_LEN: usize = 20;
/// Length of the generated secret access key (AWS's own are 40 characters).
const SECRET_KEY_LEN: usize = 40;

/// A running in-process S3 endpoint. Dropping it stops the server and its connections.
#[derive(Debug)]
pub struct S3Endpoint {
    /// Where it listens (127.0.0.1, a port the system picked).
    pub address: SocketAddr,
    /// The access key id it accepts.
    pub access_key_id: String,
    /// The secret access key it accepts, generated at start-up.
    pub secret_access_key: SecretString,
    /// Stops the accept loop and every open connection.
    stop: CancellationToken,
    /// The accept loop; aborted on drop so no connection outlives the endpoint.
    server: tokio::task::JoinHandle<()>,
}

impl S3Endpoint {
    /// Serves `root` (created if missing; each bucket is a sub-directory) on 127.0.0.1, port 0,
    /// accepting only freshly generated credentials.
    pub async fn start(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("cannot create the S3 directory {}", root.display()))?;
        let backend =
            s3s_fs::FileSystem::new(root).map_err(|error| anyhow::anyhow!("cannot serve {} over S3: {error:?}", root.display()))?;
        let mut rng = StdRng::from_os_rng();
        let access_key_id = Alphanumeric.sample_string(&mut rng, ACCESS_KEY_LEN);
        let secret_access_key = Alphanumeric.sample_string(&mut rng, SECRET_KEY_LEN);
        let mut builder = S3ServiceBuilder::new(backend);
        builder.set_auth(SimpleAuth::from_single(access_key_id.clone(), secret_access_key.clone()));
        let service = builder.build();
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.context("cannot bind the in-process S3 endpoint")?;
        let address = listener.local_addr()?;
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, service, stop.clone()));
        tracing::info!(%address, root = %root.display(), "in-process S3 endpoint listening");
        Ok(S3Endpoint { address, access_key_id, secret_access_key: secret_access_key.into(), stop, server })
    }

    /// The endpoint URL a client uses (path-style addressing).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for S3Endpoint {
    fn drop(&mut self) {
        self.stop.cancel();
        self.server.abort();
    }
}

/// Accepts connections until `stop` fires; each connection is served (HTTP/1.1, what the SDK
/// speaks over plain HTTP) in a task the loop owns, so stopping the loop ends them all.
async fn serve(listener: TcpListener, service: S3Service, stop: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let service = service.clone();
                    connections.spawn(async move {
                        let connection = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(socket), service);
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "in-process S3 connection ended with an error");
                        }
                    });
                }
                Err(error) => tracing::warn!(%error, "in-process S3 endpoint cannot accept"),
            },
        }
    }
}
