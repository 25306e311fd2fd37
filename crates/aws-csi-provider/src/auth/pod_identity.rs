//! EKS Pod Identity: exchange the pod's `pods.eks.amazonaws.com` token at the node agent.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::attributes::AddressType;
use bootstrap_common::secret::SecretString;

/// The agent's IPv4 endpoint.
pub const AGENT_IPV4: &str = "http://169.254.170.23/v1/credentials";
/// The agent's IPv6 endpoint.
pub const AGENT_IPV6: &str = "http://[fd00:ec2::23]/v1/credentials";

/// Client of the Pod Identity agent: plain HTTP through the hyper client the AWS SDK links
/// already (a second HTTP stack would be code resident on every node).
pub struct PodIdentityAgent {
    http: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    endpoint_override: Option<String>,
    attempts: u32,
    backoff: Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentReply {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    token: String,
    expiration: String,
}

impl PodIdentityAgent {
    /// `timeout` bounds each HTTP attempt; `endpoint_override` replaces the link-local
    /// addresses (tests, unusual nodes).
    /// The agent serves plain HTTP, so an override must be an `http://` URL.
    pub fn new(timeout: Duration, endpoint_override: Option<String>) -> Result<Self, String> {
        if let Some(url) = &endpoint_override {
            check_endpoint(url)?;
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        // No proxy: the agent is on the node (link-local or loopback).
        // One agent per node, one connection per exchange in flight: a few idle ones are
        // enough after a burst (hyper keeps every one otherwise, for 90 s).
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(20))
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        Ok(Self {
            http,
            timeout,
            endpoint_override,
            attempts: 3,
            backoff: Duration::from_millis(200),
        })
    }

    /// Sets the number of attempts (≥ 1) and the first backoff (doubled after each attempt).
    pub fn with_retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    fn endpoints(&self, address: AddressType) -> Vec<&str> {
        match (&self.endpoint_override, address) {
            (Some(url), _) => vec![url.as_str()],
            (None, AddressType::Ipv4) => vec![AGENT_IPV4],
            (None, AddressType::Ipv6) => vec![AGENT_IPV6],
            (None, AddressType::Auto) => vec![AGENT_IPV4, AGENT_IPV6],
        }
    }

    /// Fetches credentials, retrying connection errors and 5xx replies with backoff. Errors
    /// never contain the token or the credentials.
    pub async fn fetch(
        &self,
        token: &SecretString,
        address: AddressType,
    ) -> Result<Credentials, String> {
        let mut backoff = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            for url in self.endpoints(address) {
                match self.try_once(url, token).await {
                    Ok(creds) => return Ok(creds),
                    Err(AgentError::Fatal(msg)) => return Err(msg),
                    Err(AgentError::Retry(msg)) => {
                        tracing::debug!(url, attempt, error = %msg, "Pod Identity agent attempt failed");
                        last = msg;
                    }
                }
            }
            if attempt < self.attempts {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(format!(
            "the Pod Identity agent did not answer after {} attempts: {last}; hint: check that the eks-pod-identity-agent add-on runs on this node, or raise --pod-identity-http-timeout",
            self.attempts
        ))
    }

    async fn try_once(&self, url: &str, token: &SecretString) -> Result<Credentials, AgentError> {
        // One deadline for connecting, sending and reading the reply.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let request = hyper::Request::get(url)
            .header(hyper::header::ACCEPT, "*/*")
            .header(hyper::header::AUTHORIZATION, token.expose())
            .body(Empty::new())
            .map_err(|e| AgentError::Retry(format!("GET {url}: request failed ({e})")))?;
        let reply = tokio::time::timeout_at(deadline, self.http.request(request))
            .await
            .map_err(|_| AgentError::Retry(format!("GET {url}: timed out")))?
            .map_err(|e| AgentError::Retry(format!("GET {url}: {}", describe(&e))))?;
        let status = reply.status();
        let body = tokio::time::timeout_at(deadline, reply.into_body().collect())
            .await
            .map_err(|_| AgentError::Retry(format!("reading the reply of {url}: timed out")))?
            .map_err(|e| {
                AgentError::Retry(format!(
                    "reading the reply of {url}: request failed{}",
                    innermost(&e).map(|d| format!(" ({d})")).unwrap_or_default()
                ))
            })?
            .to_bytes();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(AgentError::Retry(format!(
                "{url} answered {status}: {}",
                excerpt(&body, token)
            )));
        }
        if !status.is_success() {
            return Err(AgentError::Fatal(format!(
                "the Pod Identity agent refused the token ({status}): {}; hint: create a Pod Identity association for this service account",
                excerpt(&body, token)
            )));
        }
        parse_reply(&body).map_err(AgentError::Fatal)
    }
}

/// An endpoint override must be a plain `http://` URL with a host.
fn check_endpoint(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("--pod-identity-endpoint {url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "--pod-identity-endpoint {url:?} must be an http:// URL (the Pod Identity agent serves plain HTTP)"
        ));
    }
    Ok(())
}

enum AgentError {
    Retry(String),
    Fatal(String),
}

/// Parses the agent's JSON reply into SDK credentials.
pub fn parse_reply(body: &[u8]) -> Result<Credentials, String> {
    let reply: AgentReply = serde_json::from_slice(body).map_err(|_| {
        "the Pod Identity agent's reply is not the expected credentials JSON".to_string()
    })?;
    let expiry = parse_expiration(&reply.expiration)?;
    let AgentReply {
        access_key_id,
        secret_access_key,
        token,
        ..
    } = reply;
    Ok(Credentials::new(
        access_key_id,
        secret_access_key,
        Some(token).filter(|t| !t.is_empty()),
        Some(expiry),
        "eks-pod-identity",
    ))
}

fn parse_expiration(value: &str) -> Result<SystemTime, String> {
    DateTime::from_str(value, Format::DateTimeWithOffset)
        .or_else(|_| DateTime::from_str(value, Format::DateTime))
        .ok()
        .and_then(|d| SystemTime::try_from(d).ok())
        .ok_or_else(|| {
            format!("the Pod Identity agent's Expiration {value:?} is not an RFC 3339 time")
        })
}

/// A short, token-free excerpt of an error body.
fn excerpt(body: &[u8], token: &SecretString) -> String {
    let text = String::from_utf8_lossy(body);
    let mut text: String = text.chars().take(200).collect();
    if !token.is_empty() && text.contains(token.expose()) {
        text = text.replace(token.expose(), "<token>");
    }
    text.trim().to_string()
}

/// What went wrong with a request, and the innermost cause (no URL query, no headers).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let detail = innermost(e);
    let timed_out = std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |s| {
        s.source()
    })
    .any(|s| {
        s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    let kind = if timed_out {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match detail {
        Some(detail) => format!("{kind} ({detail})"),
        None => kind.to_string(),
    }
}

/// The deepest source of an error, if it has one.
fn innermost(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = e.source();
    let mut detail = None;
    while let Some(s) = source {
        detail = Some(s.to_string());
        source = s.source();
    }
    detail.filter(|d| !d.is_empty())
}

#[cfg(test)]
#[path = "pod_identity_tests.rs"]
mod tests;
