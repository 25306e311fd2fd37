//! Thin typed wrappers over the AWS SDK clients, error classification and the EKS token.

pub mod confinement;
pub mod policy;
mod progress;
pub mod token;

pub use progress::Progress;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use bootstrap_common::Backoff;

pub use bootstrap_common::ErrorKind;

/// A failed AWS call: the action, the resource, and what the service said.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} {resource}")]
pub struct AwsError {
    pub action: &'static str,
    pub resource: String,
    pub kind: ErrorKind,
    pub code: Option<String>,
    #[source]
    pub source: ServiceMessage,
}

/// The service's own words (code and message), or the transport failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServiceMessage(pub String);

impl AwsError {
    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }

    /// An error made here rather than by a call (e.g. a missing field in a response).
    pub fn local(action: &'static str, resource: impl Into<String>, problem: String) -> Self {
        Self {
            action,
            resource: resource.into(),
            kind: ErrorKind::Client,
            code: None,
            source: ServiceMessage(problem),
        }
    }
}

/// Classifies an SDK error, naming the action and resource.
pub fn classify<E>(
    action: &'static str,
    resource: impl Into<String>,
    err: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let body = err
        .raw_response()
        .and_then(|r| r.body().bytes())
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let code = err
        .code()
        .map(str::to_string)
        .or_else(|| between(&body, "<Code>", "</Code>"));
    let message = err
        .message()
        .map(str::to_string)
        .or_else(|| between(&body, "<Message>", "</Message>"));
    let detail = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
    let kind = kind_of(code.as_deref(), status, &detail);
    let message = match (&code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.clone(),
        (None, _) => match status {
            Some(status) => format!("HTTP {status} with no error code"),
            None => detail,
        },
    };
    AwsError {
        action,
        resource: resource.into(),
        kind,
        code,
        source: ServiceMessage(message),
    }
}

/// The text between two markers (for error bodies the SDK could not parse).
fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let rest = text.split_once(start)?.1;
    Some(rest.split_once(end)?.0.to_string()).filter(|s| !s.is_empty())
}

fn kind_of(code: Option<&str>, status: Option<u16>, detail: &str) -> ErrorKind {
    // The SDK found no credentials before sending anything: no status, a credentials message.
    let known = bootstrap_common::aws_error::kind_of(code, status);
    if status.is_none() && code.is_none() && detail.contains("credentials") {
        return ErrorKind::Credentials;
    }
    known
}

/// Why the AWS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no AWS region is configured")]
    NoRegion,
    #[error("failed to load AWS credentials")]
    Credentials {
        #[source]
        source: aws_credential_types::provider::error::CredentialsError,
    },
}

/// The SDK clients `up` uses, sharing one configuration.
#[derive(Clone, Debug)]
pub struct Clients {
    pub config: SdkConfig,
    pub region: String,
    pub sts: aws_sdk_sts::Client,
    pub eks: aws_sdk_eks::Client,
    pub iam: aws_sdk_iam::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub ecr: aws_sdk_ecr::Client,
    /// Key metadata only (`DescribeKey`, to resolve a secret's key alias to its key ARN).
    pub kms: aws_sdk_kms::Client,
    /// When a call of these clients last succeeded (see [`Progress`]).
    pub progress: Progress,
}

impl Clients {
    /// Builds clients from an already loaded configuration (tests pass mocks this way).
    pub fn from_config(config: SdkConfig) -> Result<Self, ConfigError> {
        let region = config.region().ok_or(ConfigError::NoRegion)?.to_string();
        let p = retry_partition();
        let progress = Progress::default();
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(&config)
                        .retry_partition(p.clone())
                        .interceptor(progress.interceptor())
                        .build(),
                )
            };
        }
        Ok(Self {
            region,
            sts: client!(aws_sdk_sts),
            eks: client!(aws_sdk_eks),
            iam: client!(aws_sdk_iam),
            secrets: client!(aws_sdk_secretsmanager),
            ssm: client!(aws_sdk_ssm),
            ecr: client!(aws_sdk_ecr),
            kms: client!(aws_sdk_kms),
            progress,
            config,
        })
    }
}

#[cfg(test)]
impl Clients {
    /// Clients of us-west-2 with no credentials and no mocks: tests replace the clients they
    /// mock (`Clients { eks, iam, ..Clients::unmocked() }`).
    pub fn unmocked() -> Self {
        let config = SdkConfig::builder()
            .region(Region::new("us-west-2"))
            .behavior_version(BehaviorVersion::latest())
            .build();
        Self::from_config(config).expect("a region is set")
    }
}

/// Loads the standard AWS configuration (env, profile, SSO, IMDS…) with optional overrides.
pub async fn load_config(
    region: Option<&str>,
    profile: Option<&str>,
) -> Result<SdkConfig, ConfigError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(ConfigError::NoRegion);
    }
    Ok(config)
}

/// The SDK's retries: bootstrap's one schedule ([`Backoff`]: 0.25 s doubling to 4 s, nine
/// attempts, 19.75 s of sleep at most), applied to throttling, 5xx and dropped connections
/// of every call, reads and writes. The executor above retries only IAM's eventual
/// consistency, so a persistent fault fails its step within 20 s instead of the product of two
/// layers. Static steps (no random base): a fault of 10 s is always outlived. Not adaptive:
/// after three throttled answers its client-side rate limiter held the rest of an `up` back
/// for 41 s more (4.0 s vs 45.3 s, measured on the stand-in; bench/RESULTS.md, Faults).
pub fn retry_config() -> aws_smithy_types::retry::RetryConfig {
    let b = Backoff::default();
    aws_smithy_types::retry::RetryConfig::standard()
        .with_max_attempts(b.attempts())
        .with_initial_backoff(b.first_delay)
        .with_max_backoff(b.max_delay)
        .with_use_static_exponential_base(true)
}

/// The retry partition every client shares: no retry quota. The standard one (500 tokens,
/// 5 a retry) runs dry after about a hundred throttled answers, and then a throttle fails at
/// once; the schedule's budget is the bound instead.
fn retry_partition() -> aws_smithy_runtime::client::retries::RetryPartition {
    aws_smithy_runtime::client::retries::RetryPartition::custom("bootstrap")
        .token_bucket(aws_smithy_runtime::client::retries::TokenBucket::unlimited())
        .build()
}

/// Whether the configuration can produce credentials at all (no call to AWS is made).
pub async fn check_credentials(config: &SdkConfig) -> Result<(), ConfigError> {
    let Some(provider) = config.credentials_provider() else {
        return Err(ConfigError::Credentials {
            source: aws_credential_types::provider::error::CredentialsError::not_loaded(
                "no credentials provider is configured",
            ),
        });
    };
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|source| ConfigError::Credentials { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_code_then_status() {
        assert_eq!(
            kind_of(Some("NoSuchEntity"), Some(404), ""),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_of(Some("ResourceInUseException"), Some(409), ""),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind_of(Some("ThrottlingException"), Some(400), ""),
            ErrorKind::Throttled
        );
        assert_eq!(kind_of(None, Some(500), ""), ErrorKind::Transient);
        assert_eq!(kind_of(None, Some(400), ""), ErrorKind::Client);
        assert_eq!(
            kind_of(None, None, "no credentials in the chain"),
            ErrorKind::Credentials
        );
        assert_eq!(
            kind_of(None, None, "connection refused"),
            ErrorKind::Transient
        );
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod retry_tests;
