//! Prometheus metrics (mounts, errors by cause, latency, AWS calls) and the /metrics server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::fetch::CallObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountLabels {
    result: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CredLabels {
    method: &'static str,
    cache: &'static str,
}

/// The provider's metrics. Labels are fixed vocabularies: never names or values of secrets.
pub struct Metrics {
    registry: Registry,
    mounts: Family<MountLabels, Counter>,
    errors: Family<CauseLabels, Counter>,
    duration: Histogram,
    aws_calls: Family<CallLabels, Counter>,
    credentials: Family<CredLabels, Counter>,
    in_flight: Gauge,
    ready: AtomicBool,
}

/// Counts a mount as in flight until dropped, whether it finished or its caller went away.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("aws_csi_provider");
        let mounts = Family::<MountLabels, Counter>::default();
        let errors = Family::<CauseLabels, Counter>::default();
        let buckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        let duration = Histogram::new(buckets);
        let aws_calls = Family::<CallLabels, Counter>::default();
        let credentials = Family::<CredLabels, Counter>::default();
        let in_flight = Gauge::default();
        registry.register(
            "mounts_in_flight",
            "Mount requests being served (a dropped request leaves at once)",
            in_flight.clone(),
        );
        registry.register(
            "mounts",
            "Mount requests by result and auth method",
            mounts.clone(),
        );
        registry.register("mount_errors", "Failed mounts by cause", errors.clone());
        registry.register(
            "mount_duration_seconds",
            "Time to serve a mount request",
            duration.clone(),
        );
        registry.register(
            "aws_calls",
            "AWS API calls by service, operation, outcome",
            aws_calls.clone(),
        );
        registry.register(
            "credential_requests",
            "Credential look-ups by method and cache outcome",
            credentials.clone(),
        );
        Self {
            registry,
            mounts,
            errors,
            duration,
            aws_calls,
            credentials,
            in_flight,
            ready: AtomicBool::new(false),
        }
    }

    pub fn mount_done(&self, method: &'static str, seconds: f64, error: Option<&'static str>) {
        let result = if error.is_some() { "error" } else { "success" };
        self.mounts
            .get_or_create(&MountLabels { result, method })
            .inc();
        if let Some(cause) = error {
            self.errors.get_or_create(&CauseLabels { cause }).inc();
        }
        self.duration.observe(seconds);
    }

    /// Marks a mount in flight for the guard's lifetime.
    pub fn mount_started(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Mounts in flight now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    pub fn credential_lookup(&self, method: &'static str, hit: bool) {
        let cache = if hit { "hit" } else { "miss" };
        self.credentials
            .get_or_create(&CredLabels { method, cache })
            .inc();
    }

    /// Marks the gRPC socket as listening (readiness).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl CallObserver for Metrics {
    fn aws_call(&self, service: &'static str, operation: &'static str, outcome: &'static str) {
        self.aws_calls
            .get_or_create(&CallLabels {
                service,
                operation,
                outcome,
            })
            .inc();
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics and health endpoint listening");
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(route(&req, &metrics)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

fn route<B>(req: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, metrics.render()),
        "/healthz" | "/readyz" if metrics.is_ready() => (StatusCode::OK, "ok\n".to_string()),
        "/healthz" | "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_string()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if req.uri().path() == "/metrics" {
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::new();
        m.mount_done("pod_identity", 0.2, None);
        m.mount_done("irsa", 0.1, Some("not_found"));
        m.aws_call("secretsmanager", "GetSecretValue", "ok");
        let text = m.render();
        assert!(
            text.contains(
                "aws_csi_provider_mounts_total{result=\"success\",method=\"pod_identity\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("aws_csi_provider_mount_errors_total{cause=\"not_found\"} 1"),
            "{text}"
        );
        assert!(text.contains("aws_csi_provider_aws_calls_total"), "{text}");
    }
}
