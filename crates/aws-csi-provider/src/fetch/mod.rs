//! Fetching objects from Secrets Manager and SSM Parameter Store, with AWS error classification.

pub mod prefix;
pub mod secrets_manager;
pub mod ssm;

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::error::FetchCause;
use super::objects::ObjectRef;
use bootstrap_common::secret::SecretBytes;

/// A fetched object value and its version (VersionId or SSM version number).
#[derive(Debug)]
pub struct Fetched {
    pub value: SecretBytes,
    pub version: String,
}

impl Fetched {
    /// A second copy, for a secret mounted under several aliases (fetched once).
    pub fn copy(&self) -> Self {
        Self {
            value: SecretBytes::new(self.value.expose().to_vec()),
            version: self.version.clone(),
        }
    }
}

/// What one object gave the mount.
#[derive(Debug)]
pub enum Got {
    /// Its value (all objects but prefixes).
    One(Fetched),
    /// The matches of a prefix object.
    Many(Vec<prefix::Match>),
    /// Nothing: an optional object that does not exist.
    Skipped,
}

/// The bytes one mount may hold, charged as each value arrives and shared by all its fetches:
/// once the total is over the limit, the value that crossed it is dropped and no further call
/// starts, so a mount never holds much more than its response limit.
#[derive(Debug)]
pub struct ByteBudget {
    used: AtomicUsize,
    limit: usize,
}

impl ByteBudget {
    pub fn new(limit: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Bytes charged so far.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the total is over the limit (the mount fails).
    pub fn exhausted(&self) -> bool {
        self.used() > self.limit
    }

    /// Charges `bytes`; false when that takes the total over the limit.
    pub fn charge(&self, bytes: usize) -> bool {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        before.saturating_add(bytes) <= self.limit
    }
}

/// The budget of one mount and how many files each target becomes (a secret under several
/// aliases is fetched once and counted once per file).
pub struct Charge<'a> {
    pub budget: &'a ByteBudget,
    pub files: &'a [usize],
}

impl Charge<'_> {
    /// Charges an arrived value of target `i`; over the limit, the value is dropped.
    pub fn take(&self, i: usize, outcome: Outcome) -> Outcome {
        let fetched = outcome?;
        let files = self.files.get(i).copied().unwrap_or(1).max(1);
        if self
            .budget
            .charge(fetched.value.len().saturating_mul(files))
        {
            Ok(fetched)
        } else {
            Err(over_budget())
        }
    }

    /// Whether calls should still start.
    pub fn open(&self) -> bool {
        !self.budget.exhausted()
    }
}

/// The outcome of a target not fetched (or dropped) because the mount is over its limit; the
/// mount reports [`crate::error::MountError::TooLarge`] instead.
pub fn over_budget() -> FetchCause {
    FetchCause::Transient {
        message: "not kept: the mount is over its response limit".into(),
    }
}

/// The result for one object.
pub type Outcome = Result<Fetched, FetchCause>;

/// What to fetch: a name or ARN, and an optional version id or label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
    pub label: Option<&'a str>,
}

impl<'a> From<&'a ObjectRef> for Target<'a> {
    fn from(o: &'a ObjectRef) -> Self {
        Target {
            name: &o.name,
            version: o.version.as_deref(),
            label: o.label.as_deref(),
        }
    }
}

/// Records one AWS call (service, operation, success); implemented by the metrics.
pub trait CallObserver: Send + Sync {
    fn aws_call(&self, service: &'static str, operation: &'static str, outcome: &'static str);
}

/// Records the outcome of one call of `operation` and hands its result back, an error
/// [classified](classify).
pub fn counted<T, E>(
    observer: &dyn CallObserver,
    service: &'static str,
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<T, FetchCause>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let outcome = if result.is_ok() { "ok" } else { "error" };
    observer.aws_call(service, operation, outcome);
    result.map_err(|e| classify(&e))
}

/// A no-op observer.
pub struct NoObserver;

impl CallObserver for NoObserver {
    fn aws_call(&self, _: &'static str, _: &'static str, _: &'static str) {}
}

/// Classifies an SDK error as upstream does: 4xx are the caller's to fix, the rest may be
/// retried or failed over.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> FetchCause
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            let message = se.err().message().unwrap_or("").to_string();
            if code.is_empty() && message.is_empty() {
                // No modeled error: say what we know (status and the SDK's description).
                let detail = format!(
                    "HTTP {} without an AWS error code ({})",
                    status.map_or_else(|| "?".to_string(), |s| s.to_string()),
                    DisplayErrorContext(err)
                );
                return match status {
                    Some(401 | 403) => FetchCause::AccessDenied { message: detail },
                    Some(404) => FetchCause::NotFound,
                    Some(s) if (400..500).contains(&s) && s != 429 => {
                        FetchCause::Client { message: detail }
                    }
                    _ => FetchCause::Transient { message: detail },
                };
            }
            classify_code(code, &message, status)
        }
        other => FetchCause::Transient {
            message: DisplayErrorContext(other).to_string(),
        },
    }
}

/// Classifies an error code (also used for per-entry errors of batch calls) with the shared
/// table: not found, denied, retryable (throttling, 5xx) or the caller's to fix.
pub fn classify_code(code: &str, message: &str, status: Option<u16>) -> FetchCause {
    use bootstrap_common::ErrorKind;
    let text = if message.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {message}")
    };
    // A per-entry error of a batch call has no status: an unknown code there is a client fault.
    match bootstrap_common::aws_error::kind_of(Some(code), Some(status.unwrap_or(400))) {
        ErrorKind::NotFound => FetchCause::NotFound,
        ErrorKind::AccessDenied | ErrorKind::Credentials => {
            FetchCause::AccessDenied { message: text }
        }
        ErrorKind::Throttled | ErrorKind::Transient => FetchCause::Transient { message: text },
        ErrorKind::Conflict | ErrorKind::Client => FetchCause::Client { message: text },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert!(matches!(
            classify_code("ResourceNotFoundException", "", Some(400)),
            FetchCause::NotFound
        ));
        assert!(matches!(
            classify_code("AccessDeniedException", "no", Some(400)),
            FetchCause::AccessDenied { .. }
        ));
        assert!(classify_code("ThrottlingException", "slow", Some(400)).is_retryable());
        assert!(classify_code("Whatever", "", Some(503)).is_retryable());
        assert!(!classify_code("ValidationException", "bad", Some(400)).is_retryable());
    }
}
