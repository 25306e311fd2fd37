//! Diagnostic logging (`-v`, `BOOTSTRAP_LOG`) with a ceiling no setting can lift: the crates
//! that log request and response bodies, signed headers or tokens at their finest levels never
//! print below [`CLAMPED_AT`].

use tracing::Level;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::layer::{Filter, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Crates whose trace (and some debug) events carry bodies or credentials: the SDK
/// orchestrator prints each request with its body (a CreateSecret's value, STS's web identity
/// token), SigV4 its canonical request (the session token), the HTTP stacks frames and
/// headers, the registry client its bearer tokens.
pub const CLAMPED_TARGETS: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_sigv4",
    "aws_runtime",
    "aws_config",
    "aws_sdk_secretsmanager",
    "aws_sdk_ssm",
    "aws_sdk_sts",
    "aws_sdk_iam",
    "aws_sdk_eks",
    "aws_sdk_ecr",
    "aws_sdk_kms",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower_http",
    "kube_client",
    "oci_client",
    "reqwest",
];

/// The finest level the [`CLAMPED_TARGETS`] may log at.
pub const CLAMPED_AT: Level = Level::INFO;

/// The default directives for `-v` counts (when `BOOTSTRAP_LOG` is unset).
fn default_directives(verbose: u8) -> &'static str {
    match verbose {
        // The credential chain logs each provider it tried; our own errors say what matters.
        0 => "warn,aws_config=error",
        1 => "info,aws=warn,kube=warn,hyper=warn",
        _ => "debug",
    }
}

/// What the user asked for (`BOOTSTRAP_LOG`, else `-v`), under the ceiling.
pub fn filter<S>(verbose: u8, bootstrap_log: Option<&str>) -> impl Filter<S> + use<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let asked = bootstrap_log
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(default_directives(verbose)));
    asked.and(ceiling())
}

/// Everything at any level, except the clamped crates above [`CLAMPED_AT`].
fn ceiling() -> Targets {
    CLAMPED_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, target| t.with_target(*target, CLAMPED_AT),
    )
}

/// Installs the process's subscriber: formatted lines on stderr.
pub fn init(verbose: u8) {
    let asked = std::env::var("BOOTSTRAP_LOG").ok();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter(verbose, asked.as_deref()));
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

#[cfg(test)]
#[path = "logging_tests.rs"]
mod tests;
