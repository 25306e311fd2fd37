//! Bounded retries of the Kubernetes API's transient answers: 429 (honouring `Retry-After`),
//! and 500/502/503/504 or a dropped connection for every request but a `POST`.
//!
//! Every write bootstrap makes is a server-side apply, a merge patch or a delete, so sending it
//! again after an answer that may have come after the write is safe (a second delete finds the
//! object gone, which callers take as done). A `POST` is retried only on 429, which the API
//! server answers before doing anything. The budget is bootstrap's one schedule
//! ([`Backoff`]: nine attempts within 20 s, or the server's `Retry-After`, cut to 10 s).

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tower::BoxError;
use tower::retry::Policy;

use bootstrap_common::Backoff;

/// Attempts per request, the first included: as many as bootstrap's one schedule
/// ([`Backoff`]) allows.
pub fn attempts() -> u32 {
    Backoff::default().attempts()
}

/// The longest `Retry-After` honoured; a longer one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The retry policy of every Kubernetes client bootstrap builds.
#[derive(Debug, Clone)]
pub struct Transient {
    schedule: Backoff,
    /// Attempts made so far for this request (tower clones the policy per request).
    made: u32,
    /// Time slept so far for this request: a server's `Retry-After` counts against the same
    /// budget, so a persistent 429 fails within it too.
    slept: Duration,
}

impl Default for Transient {
    fn default() -> Self {
        Self::new(Backoff::default())
    }
}

impl Transient {
    pub fn new(schedule: Backoff) -> Self {
        Self {
            schedule,
            made: 1,
            slept: Duration::ZERO,
        }
    }

    /// The delay before the next attempt: the schedule's, or the server's `Retry-After` when
    /// it gave one; `None` when the budget is spent.
    fn delay(&self, retry_after: Option<Duration>) -> Option<Duration> {
        let scheduled = self.schedule.next_delay(self.made)?;
        let delay = match retry_after {
            Some(after) => after.min(MAX_RETRY_AFTER),
            None => scheduled,
        };
        (self.slept + delay <= self.schedule.budget).then_some(delay)
    }
}

/// Whether an answer of `status` to `method` is worth another attempt.
pub fn retryable_status(method: &Method, status: StatusCode) -> bool {
    match status {
        StatusCode::TOO_MANY_REQUESTS => true,
        StatusCode::INTERNAL_SERVER_ERROR
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => method != Method::POST,
        _ => false,
    }
}

/// `Retry-After` in seconds (the form the API server sends).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl<Res> Policy<Request<Body>, Response<Res>, BoxError> for Transient {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        let (why, after) = match result {
            Ok(response) if retryable_status(req.method(), response.status()) => (
                format!("answered {}", response.status()),
                retry_after(response.headers()),
            ),
            Err(err) if req.method() != Method::POST => (format!("failed ({err})"), None),
            _ => return None,
        };
        let delay = self.delay(after)?;
        tracing::info!(
            "the Kubernetes API {why} to {} {}; retrying in {delay:?} (attempt {} of {})",
            req.method(),
            req.uri().path(),
            self.made + 1,
            self.schedule.attempts()
        );
        self.made += 1;
        self.slept += delay;
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // Bodies bootstrap sends are whole (`Kind::Once`); a streamed one is not retried.
        let body = req.body().try_clone()?;
        let mut clone = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version())
            .body(body)
            .ok()?;
        *clone.headers_mut() = req.headers().clone();
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<&str>) -> Result<Response<()>, BoxError> {
        let mut b = Response::builder().status(status);
        if let Some(a) = retry_after {
            b = b.header("Retry-After", a);
        }
        Ok(b.body(()).expect("response"))
    }

    fn request(method: Method) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri("/api/v1/namespaces/team")
            .body(Body::empty())
            .expect("request")
    }

    #[test]
    fn which_answers_are_retried() {
        for (method, status, expected) in [
            (Method::PATCH, 500, true),
            (Method::DELETE, 503, true),
            (Method::GET, 504, true),
            (Method::GET, 502, true),
            (Method::POST, 429, true),
            (Method::POST, 500, false),
            (Method::PATCH, 409, false),
            (Method::GET, 404, false),
            (Method::PATCH, 403, false),
            (Method::GET, 501, false),
        ] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(
                retryable_status(&method, status),
                expected,
                "{method} {status}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_is_bounded_and_backs_off() {
        let mut policy = Transient::default();
        let mut req = request(Method::PATCH);
        let mut delays = Vec::new();
        while let Some(sleep) = policy.retry(&mut req, &mut answer(500, None)) {
            delays.push(sleep.deadline() - tokio::time::Instant::now());
        }
        assert_eq!(
            delays.len(),
            attempts() as usize - 1,
            "every attempt but the first is a retry"
        );
        for (i, d) in delays.iter().enumerate() {
            let step = (Duration::from_millis(250) * (1 << i)).min(Duration::from_secs(4));
            assert!(
                *d >= step * 3 / 4 && *d <= step,
                "retry {i}: {d:?} vs step {step:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_up_to_a_cap() {
        let mut req = request(Method::POST);
        let mut policy = Transient::default();
        let sleep = policy
            .retry(&mut req, &mut answer(429, Some("2")))
            .expect("429 is retried");
        assert_eq!(
            sleep.deadline() - tokio::time::Instant::now(),
            Duration::from_secs(2)
        );
        let sleep = policy
            .retry(&mut req, &mut answer(429, Some("3600")))
            .expect("retried");
        assert_eq!(
            sleep.deadline() - tokio::time::Instant::now(),
            MAX_RETRY_AFTER
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_persistent_retry_after_spends_the_same_budget() {
        let mut req = request(Method::GET);
        let mut policy = Transient::default();
        let mut slept = Duration::ZERO;
        while let Some(sleep) = policy.retry(&mut req, &mut answer(429, Some("10"))) {
            slept += sleep.deadline() - tokio::time::Instant::now();
        }
        assert_eq!(
            slept,
            Duration::from_secs(20),
            "two waits of 10 s, no third"
        );
    }

    #[tokio::test]
    async fn connection_errors_retry_all_but_post() {
        let mut policy = Transient::default();
        let mut err: Result<Response<()>, BoxError> = Err("connection reset".into());
        assert!(policy.retry(&mut request(Method::GET), &mut err).is_some());
        assert!(policy.retry(&mut request(Method::POST), &mut err).is_none());
        assert!(
            policy
                .retry(&mut request(Method::PATCH), &mut answer(200, None))
                .is_none()
        );
    }

    #[test]
    fn clones_whole_bodies_with_headers() {
        let mut policy = Transient::default();
        let req = Request::builder()
            .method(Method::PATCH)
            .uri("/apis/apps/v1/namespaces/kube-system/daemonsets/x?fieldManager=bootstrap")
            .header("content-type", "application/apply-patch+yaml")
            .body(Body::from(b"{}".to_vec()))
            .expect("request");
        let clone = <Transient as Policy<Request<Body>, Response<()>, BoxError>>::clone_request(
            &mut policy,
            &req,
        )
        .expect("a whole body clones");
        assert_eq!(clone.uri(), req.uri());
        assert_eq!(clone.headers(), req.headers());
        assert_eq!(clone.method(), Method::PATCH);
    }
}
