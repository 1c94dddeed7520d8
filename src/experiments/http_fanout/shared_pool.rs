//! `pool: shared`: a fan-out's requests sent through the service's shared HTTP client instead of
//! the fan-out's own connections. The client's pool outlives the job, so connections opened by
//! one job are warm for the next; its failures are sorted into the report's failure kinds.

use std::error::Error as _;
use std::io;

use url::Url;

use super::connection::{FailureKind, Response};
use super::plan::{Endpoint, RequestTemplate};
use crate::services::http_client::SharedHttpClient;

/// Sends request `index` of kind `template` to `endpoint` through `client`, reading the whole
/// body (counted, not kept).
pub async fn exchange(
    client: &SharedHttpClient,
    endpoint: &Endpoint,
    template: &RequestTemplate,
    index: u64,
) -> Result<Response, FailureKind> {
    let url = Url::parse(&format!("{}://{}{}", endpoint.scheme(), endpoint.authority, template.path(index)))
        .map_err(|_| FailureKind::InvalidRequest)?;
    // The plan checked every endpoint against the outbound policy; this checks it again.
    let mut request = client.request(template.method.clone(), &url).map_err(|_| FailureKind::Connect)?.headers(template.headers.clone());
    if !template.body.is_empty() {
        request = request.body(template.body.clone());
    }
    let mut response = request.send().await.map_err(|error| failure(&error))?;
    let status = response.status().as_u16();
    let mut body_bytes = 0;
    while let Some(chunk) = response.chunk().await.map_err(|error| failure(&error))? {
        body_bytes += chunk.len() as u64;
    }
    Ok(Response { status, body_bytes })
}

/// The failure kind of a client error, from what it says of itself and of its causes.
fn failure(error: &reqwest::Error) -> FailureKind {
    let refused =
        causes(error).any(|cause| cause.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::ConnectionRefused));
    let tls = causes(error).any(|cause| cause.is::<rustls::Error>());
    if error.is_timeout() {
        if error.is_connect() { FailureKind::ConnectTimeout } else { FailureKind::Timeout }
    } else if refused {
        FailureKind::ConnectRefused
    } else if tls {
        FailureKind::Tls
    } else if error.is_connect() {
        FailureKind::Connect
    } else if error.is_body() || error.is_decode() {
        FailureKind::ConnectionClosed
    } else {
        FailureKind::Protocol
    }
}

/// `error`'s causes, from the closest. An `io::Error` wrapping another error reports that
/// error's cause as its own source, skipping the wrapped error itself: it is taken from
/// `get_ref` instead.
fn causes(error: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(error.source(), |&cause| match cause.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
        Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
        None => cause.source(),
    })
}
