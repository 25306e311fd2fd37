//! EKS Pod Identity: exchange the pod's `pods.eks.amazonaws.com` token at the node agent.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde::Deserialize;

use crate::attributes::AddressType;
use bootstrap_common::secret::SecretString;

/// The agent's IPv4 endpoint.
pub const AGENT_IPV4: &str = "http://169.254.170.23/v1/credentials";
/// The agent's IPv6 endpoint.
pub const AGENT_IPV6: &str = "http://[fd00:ec2::23]/v1/credentials";

/// Client of the Pod Identity agent.
pub struct PodIdentityAgent {
    http: reqwest::Client,
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
    pub fn new(timeout: Duration, endpoint_override: Option<String>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Self {
            http,
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
        let reply = self
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, token.expose())
            .send()
            .await
            .map_err(|e| AgentError::Retry(format!("GET {url}: {}", describe(&e))))?;
        let status = reply.status();
        let body = reply.bytes().await.map_err(|e| {
            AgentError::Retry(format!("reading the reply of {url}: {}", describe(&e)))
        })?;
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

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_agent_reply() {
        let body = br#"{"AccessKeyId":"AKIA","SecretAccessKey":"sk","Token":"st","AccountId":"1","Expiration":"2030-01-01T00:00:00Z"}"#;
        let c = parse_reply(body).expect("parses");
        assert_eq!(c.access_key_id(), "AKIA");
        assert!(c.expiry().is_some());
        assert!(parse_reply(b"{}").is_err());
        let bad = br#"{"AccessKeyId":"a","SecretAccessKey":"sk","Token":"t","Expiration":"soon"}"#;
        let msg = parse_reply(bad).expect_err("bad time");
        assert!(!msg.contains("sk"));
    }

    #[test]
    fn excerpt_scrubs_token() {
        let t = SecretString::new("tok-abc".into());
        assert_eq!(excerpt(b"bad token tok-abc", &t), "bad token <token>");
    }

    #[test]
    fn endpoint_choice() {
        let a = PodIdentityAgent::new(Duration::from_secs(1), None).expect("client");
        assert_eq!(a.endpoints(AddressType::Auto), vec![AGENT_IPV4, AGENT_IPV6]);
        assert_eq!(a.endpoints(AddressType::Ipv6), vec![AGENT_IPV6]);
        let b = PodIdentityAgent::new(Duration::from_secs(1), Some("http://x/y".into()))
            .expect("client");
        assert_eq!(b.endpoints(AddressType::Ipv4), vec!["http://x/y"]);
    }
}
