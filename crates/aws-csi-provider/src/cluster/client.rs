//! A small Kubernetes API client for the provider's GETs, on the hyper / rustls (aws-lc) stack
//! the AWS SDK links already: bounded response size, a timeout per request, a bearer token
//! re-read from its file when the file changes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use super::config::{Auth, Config};
use bootstrap_common::secret::SecretString;

/// Largest response body read (a service account, pod or node is a few KiB).
pub const MAX_BODY: usize = 1 << 20;
/// Default time for one request, connection and body included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A failed request; each names the URL.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("GET {url}: {status}{}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        url: String,
        status: StatusCode,
        /// The apiserver's `Status.message`, when it sent one.
        message: Option<String>,
    },
    #[error("GET {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("GET {url}: no answer within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("GET {url}: response larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("GET {url}: unreadable response ({reason})")]
    Decode { url: String, reason: String },
    #[error("{0}")]
    Auth(String),
}

impl KubeError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            KubeError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A token file's content, kept until its modification time or size changes.
struct CachedToken {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
    token: Option<Arc<SecretString>>,
}

enum Bearer {
    None,
    Fixed(Arc<SecretString>),
    File(Mutex<CachedToken>),
}

/// GETs JSON objects from one apiserver.
pub struct KubeClient {
    server: String,
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    bearer: Bearer,
    timeout: Duration,
    max_body: usize,
}

impl KubeClient {
    pub fn new(config: Config) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        if config.roots.is_empty() {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        } else {
            for cert in config.roots {
                roots
                    .add(cert)
                    .map_err(|e| format!("the cluster's CA certificate: {e}"))?;
            }
        }
        let builder = builder.with_root_certificates(roots);
        let tls = match config.client_cert {
            Some(c) => builder
                .with_client_auth_cert(c.chain, c.key)
                .map_err(|e| format!("the client certificate: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // Two GETs per IRSA or node-region mount at most: one idle connection is plenty.
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        let bearer = match config.auth {
            Auth::None => Bearer::None,
            Auth::Token(t) => Bearer::Fixed(Arc::new(t)),
            Auth::TokenFile(path) => Bearer::File(Mutex::new(CachedToken {
                path,
                seen: None,
                token: None,
            })),
        };
        Ok(Self {
            server: config.server,
            http,
            bearer,
            timeout: TIMEOUT,
            max_body: MAX_BODY,
        })
    }

    /// Sets the time per request and the largest body read (tests).
    pub fn with_limits(mut self, timeout: Duration, max_body: usize) -> Self {
        self.timeout = timeout;
        self.max_body = max_body;
        self
    }

    /// The bearer token now: a token file is re-read when its mtime or size changed.
    fn token(&self) -> Result<Option<Arc<SecretString>>, KubeError> {
        match &self.bearer {
            Bearer::None => Ok(None),
            Bearer::Fixed(t) => Ok(Some(t.clone())),
            Bearer::File(cache) => {
                let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
                let read_err = |e: std::io::Error| {
                    KubeError::Auth(format!("read token {}: {e}", c.path.display()))
                };
                let meta = std::fs::metadata(&c.path).map_err(read_err)?;
                let seen = (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                );
                if c.seen != Some(seen) || c.token.is_none() {
                    let text = std::fs::read_to_string(&c.path).map_err(|e| {
                        KubeError::Auth(format!("read token {}: {e}", c.path.display()))
                    })?;
                    c.token = Some(Arc::new(SecretString::new(text.trim().to_string())));
                    c.seen = Some(seen);
                }
                Ok(c.token.clone())
            }
        }
    }

    /// GET `path` (e.g. `/api/v1/nodes/a`) and decode its JSON body as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, KubeError> {
        let url = format!("{}{path}", self.server);
        match tokio::time::timeout(self.timeout, self.get_inner(&url)).await {
            Ok(r) => r,
            Err(_) => Err(KubeError::Timeout {
                url,
                after: self.timeout,
            }),
        }
    }

    async fn get_inner<T: DeserializeOwned>(&self, url: &str) -> Result<T, KubeError> {
        let transport = |reason: String| KubeError::Transport {
            url: url.to_string(),
            reason,
        };
        let mut request = http::Request::get(url).header(header::ACCEPT, "application/json");
        if let Some(token) = self.token()? {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| transport(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| transport(error_chain(&e)))?;
        let status = response.status();
        let too_large = || KubeError::TooLarge {
            url: url.to_string(),
            limit: self.max_body,
        };
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        let body = Limited::new(response.into_body(), self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    transport(e.to_string())
                }
            })?
            .to_bytes();
        if !status.is_success() {
            return Err(KubeError::Status {
                url: url.to_string(),
                status,
                message: status_message(&body),
            });
        }
        serde_json::from_slice(&body).map_err(|e| KubeError::Decode {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }
}

/// The `message` of a `metav1.Status` body, if it is one.
fn status_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Status {
        message: Option<String>,
    }
    serde_json::from_slice::<Status>(body)
        .ok()
        .and_then(|s| s.message)
        .filter(|m| !m.is_empty())
}

/// An error and its sources, `: `-joined (hyper's own Display says only "client error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
