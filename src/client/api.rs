//! The server's API as the client uses it: launch, show, cancel and the event stream, with the
//! bearer token on every request and problem+json errors rendered readably.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a plain request (launch, show, cancel) may take; the event stream has no limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A server and the credentials to talk to it.
pub struct Server {
    /// Shared connection pool.
    client: reqwest::Client,
    /// The server's URL, with a trailing `/` so paths join under it.
    base: Url,
    /// `ASYNCLAB_TOKEN`, sent as `Authorization: Bearer` and never printed.
    token: Option<SecretString>,
}

/// What a launch came to.
pub enum Launch {
    /// The accepted job.
    Accepted(Value),
    /// The server refused the launch (a 4xx); the text names each field and why.
    Refused(String),
}

/// Why the event stream could not be opened.
pub enum StreamError {
    /// Worth retrying: the connection failed or the server was briefly unavailable.
    Transient(anyhow::Error),
    /// Retrying cannot help (unknown job, bad token).
    Fatal(anyhow::Error),
}

impl Server {
    /// A client for the server at `base`.
    pub fn new(base: &Url, token: Option<SecretString>) -> anyhow::Result<Server> {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let client = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).build().context("cannot build the HTTP client")?;
        Ok(Server { client, base, token })
    }

    fn request(&self, method: Method, path: &str) -> anyhow::Result<RequestBuilder> {
        let url = self.base.join(path).with_context(|| format!("bad path {path}"))?;
        let request = self.client.request(method, url);
        Ok(match &self.token {
            Some(token) => request.bearer_auth(token.expose_secret()),
            None => request,
        })
    }

    /// `POST /experiments/{kind}` with the parameters and the optional server-side time limit.
    pub async fn launch(&self, kind: &str, params: &Value, timeout_ms: Option<u64>) -> anyhow::Result<Launch> {
        let mut request = self.request(Method::POST, &format!("experiments/{kind}"))?.json(params).timeout(REQUEST_TIMEOUT);
        if let Some(timeout_ms) = timeout_ms {
            request = request.query(&[("timeout_ms", timeout_ms)]);
        }
        let response = request.send().await.with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let body = response.text().await.context("the launch answer broke off")?;
        if status == StatusCode::ACCEPTED {
            return serde_json::from_str(&body).map(Launch::Accepted).context("the launch answer is not a job");
        }
        let problem = describe_problem(status, &body);
        if status.is_client_error() {
            return Ok(Launch::Refused(problem));
        }
        bail!("launch failed: {problem}")
    }

    /// `GET /jobs/{id}`.
    pub async fn job(&self, id: &str) -> anyhow::Result<Value> {
        let response =
            self.request(Method::GET, &format!("jobs/{id}"))?.timeout(REQUEST_TIMEOUT).send().await.context("cannot fetch the job")?;
        let status = response.status();
        let body = response.text().await.context("the job answer broke off")?;
        if status != StatusCode::OK {
            bail!("cannot fetch the job: {}", describe_problem(status, &body));
        }
        serde_json::from_str(&body).context("the job answer is not JSON")
    }

    /// `POST /jobs/{id}/cancel`; a job that already ended (409) is not an error.
    pub async fn cancel(&self, id: &str) -> anyhow::Result<()> {
        let response = self
            .request(Method::POST, &format!("jobs/{id}/cancel"))?
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .context("cannot cancel the job")?;
        let status = response.status();
        if status == StatusCode::OK || status == StatusCode::CONFLICT {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        bail!("cannot cancel the job: {}", describe_problem(status, &body))
    }

    /// A JSON request to `path`; the answer's JSON on a 2xx, else an error describing the problem.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut request = self.request(method, path)?.timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let text = response.text().await.context("the answer broke off")?;
        if !status.is_success() {
            bail!("{}", describe_problem(status, &text));
        }
        serde_json::from_str(&text).context("the answer is not JSON")
    }

    /// `GET /jobs/{id}/compare/{baseline}` with gate tolerances (`metric:tolerance`); `None`
    /// when no baseline matches the selector (404 naming `baseline`).
    pub async fn compare(&self, id: &str, baseline: &str, max_regression: &[String]) -> anyhow::Result<Option<Value>> {
        let query: Vec<(&str, &str)> = max_regression.iter().map(|tolerance| ("max_regression", tolerance.as_str())).collect();
        let path = format!("jobs/{id}/compare/{}", url::form_urlencoded::byte_serialize(baseline.as_bytes()).collect::<String>());
        let response =
            self.request(Method::GET, &path)?.query(&query).timeout(REQUEST_TIMEOUT).send().await.context("cannot compare the job")?;
        let status = response.status();
        let body = response.text().await.context("the comparison broke off")?;
        if status == StatusCode::NOT_FOUND && body.contains("\"baseline\"") {
            return Ok(None);
        }
        if status != StatusCode::OK {
            bail!("cannot compare with the baseline: {}", describe_problem(status, &body));
        }
        serde_json::from_str(&body).map(Some).context("the comparison is not JSON")
    }

    /// Opens `GET /jobs/{id}/events` after event `after` (sent as `Last-Event-ID`).
    pub async fn events(&self, id: &str, after: i64) -> Result<reqwest::Response, StreamError> {
        let mut request = self.request(Method::GET, &format!("jobs/{id}/events")).map_err(StreamError::Fatal)?;
        if after > 0 {
            request = request.header("Last-Event-ID", after.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|error| StreamError::Transient(anyhow::Error::new(error).context("cannot open the event stream")))?;
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let error = anyhow::anyhow!("the event stream was refused: {}", describe_problem(status, &body));
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Err(StreamError::Transient(error))
        } else {
            Err(StreamError::Fatal(error))
        }
    }
}

/// A problem+json answer as text: the title and status, then each field and its reason.
pub fn describe_problem(status: StatusCode, body: &str) -> String {
    let Ok(problem) = serde_json::from_str::<Value>(body) else {
        let text: String = body.trim().chars().take(300).collect();
        return if text.is_empty() { status.to_string() } else { format!("{status}: {text}") };
    };
    let title = problem["title"].as_str().unwrap_or_else(|| status.canonical_reason().unwrap_or("error"));
    let mut text = format!("{title} ({})", status.as_u16());
    let errors = problem["errors"].as_array().map(Vec::as_slice).unwrap_or_default();
    for error in errors {
        let field = error["field"].as_str().unwrap_or("?");
        let reason = error["reason"].as_str().unwrap_or("?");
        text.push_str(&format!("\n  {field}: {reason}"));
    }
    if let Some(detail) = problem["detail"].as_str().filter(|_| errors.is_empty()) {
        text.push_str(&format!(": {detail}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_each_field() {
        let body = r#"{"title":"Invalid parameters","status":422,"detail":"count: …","errors":[{"field":"count","reason":"must be between 1 and 100000000, got 0"},{"field":"url","reason":"required"}]}"#;
        assert_eq!(
            describe_problem(StatusCode::UNPROCESSABLE_ENTITY, body),
            "Invalid parameters (422)\n  count: must be between 1 and 100000000, got 0\n  url: required"
        );
        assert_eq!(describe_problem(StatusCode::NOT_FOUND, r#"{"title":"Not found","status":404,"errors":[]}"#), "Not found (404)");
        assert_eq!(describe_problem(StatusCode::BAD_GATEWAY, "upstream down"), "502 Bad Gateway: upstream down");
    }
}
