//! The `aws-csi-provider` daemon: flags, logging, wiring, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tracing_subscriber::filter::{LevelFilter, Targets};

use super::auth::{CacheScope, PodIdentityAgent};
use super::clients::SdkFactory;
use super::cluster::KubeLookup;
use super::metrics::{self, Metrics};
use super::mount::{MountConfig, Mounter};
use super::server;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `aws-csi-provider` (the upstream provider's, plus ours).
#[derive(Debug, Parser)]
#[command(
    name = "aws-csi-provider",
    version,
    about = "Secrets Store CSI provider for AWS (Secrets Manager, SSM; Pod Identity and IRSA)"
)]
pub struct Args {
    /// Directory where the driver looks for provider sockets; we listen on <dir>/aws.sock.
    #[arg(long, default_value = "/var/run/secrets-store-csi-providers")]
    pub provider_volume: PathBuf,
    /// Pod Identity agent URL (plain http://), replacing http://169.254.170.23 and
    /// http://[fd00:ec2::23].
    #[arg(long)]
    pub pod_identity_endpoint: Option<String>,
    /// Timeout of each Pod Identity agent request (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub pod_identity_http_timeout: Duration,
    /// Attempts per Pod Identity credential request.
    #[arg(long, default_value_t = 3)]
    pub pod_identity_attempts: u32,
    /// Address of the Prometheus /metrics, /healthz and /readyz endpoint (off when unset).
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Deadline for one mount request.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub mount_deadline: Duration,
    /// Parallel AWS calls per mount.
    #[arg(long, default_value_t = 8)]
    pub max_concurrency: usize,
    /// Cap on the files returned by one mount (the driver's gRPC limit is 4 MiB).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// How widely a credential session is reused: `pod` (each pod its own session, reused for
    /// its remounts; safe with policies on the pod's session tags) or `service-account`.
    #[arg(long, value_enum, default_value = "pod")]
    pub credential_cache_scope: CacheScope,
    /// How long a cached credential session is reused at most (then the pod's token is
    /// exchanged again), so that a deleted or changed Pod Identity association or IRSA role
    /// takes effect on remounts within this time. Sessions are also refreshed 5 minutes
    /// before AWS expires them, and are only reused for the token they were made from.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub credential_max_age: Duration,
    /// Mounts served at once. The excess waits for a slot for up to half of --mount-deadline,
    /// then fails with a "busy" error the driver retries. Bounds memory: each mount holds at
    /// most --max-response-bytes of secret data.
    #[arg(long, default_value_t = crate::mount::DEFAULT_MAX_CONCURRENT_MOUNTS, value_parser = parse_mount_slots)]
    pub max_concurrent_mounts: usize,
    /// Async worker threads (mounts are I/O-bound; more threads cost memory, not speed).
    #[arg(long, default_value_t = crate::runtime::DEFAULT_WORKERS)]
    pub worker_threads: usize,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Upstream's flag, accepted so its DaemonSet arguments work: files are always returned
    /// to the driver, which writes them atomically.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub driver_writes_secrets: Option<bool>,
    /// Upstream's Kubernetes client QPS, accepted and unused (this client is not rate limited).
    #[arg(long, hide = true)]
    pub qps: Option<u32>,
    /// Upstream's Kubernetes client burst, accepted and unused.
    #[arg(long, hide = true)]
    pub burst: Option<u32>,
    /// Upstream's EKS add-on version (its User-Agent), accepted and unused.
    #[arg(long, hide = true)]
    pub eks_addon_version: Option<String>,
}

impl Args {
    /// Logs the upstream-only flags that were given and what they do here (nothing).
    fn note_upstream_flags(&self) {
        let given = [
            (
                "--driver-writes-secrets",
                self.driver_writes_secrets.is_some(),
            ),
            ("--qps", self.qps.is_some()),
            ("--burst", self.burst.is_some()),
            ("--eks-addon-version", self.eks_addon_version.is_some()),
        ];
        for (flag, _) in given.iter().filter(|(_, set)| *set) {
            tracing::info!(
                flag,
                "{flag} is an upstream provider flag, accepted for compatibility and ignored here"
            );
        }
    }
}

/// `--max-concurrent-mounts`: 1 to 4096.
fn parse_mount_slots(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number of mounts from 1 to 4096")),
    }
}

/// A duration flag: the shared grammar (`500ms`, `5s`, `2m`, `1m30s`), at most a day.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = bootstrap_common::parse_duration(s)?;
    if d > Duration::from_secs(86_400) {
        return Err(format!("{s:?} is out of range (at most 24h)"));
    }
    Ok(d)
}

/// Sets up tracing on stderr; `RUST_LOG` overrides the default `info` (see [`log_filter`]),
/// under the [`body_clamp`] whatever it says.
pub fn init_logging(format: LogFormat) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let rust_log = std::env::var("RUST_LOG").ok();
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = subscriber(format, rust_log.as_deref(), std::io::stderr, ansi).try_init();
}

/// The daemon's subscriber: `format` lines to `writer`, filtered by `rust_log` (see
/// [`log_filter`]) and by [`body_clamp`].
pub fn subscriber<W>(
    format: LogFormat,
    rust_log: Option<&str>,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    let filter = log_filter(rust_log);
    // fmt's own filter defaults to INFO, which silently capped RUST_LOG=debug/trace: open it
    // and let `filter` (RUST_LOG) and the clamp decide.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish().with(filter).with(body_clamp())),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .finish()
                .with(filter)
                .with(body_clamp()),
        ),
    }
}

/// Targets that log whole HTTP requests and responses (bodies included) at `trace`: the AWS
/// SDK's orchestrator prints the request it transmits — STS AssumeRoleWithWebIdentity's body
/// holds the pod's web identity token — and the response it reads, whose body holds the
/// secret value or the session's keys. They are held at `debug` whatever `RUST_LOG` asks
/// (`tests/provider_logging.rs` runs real SDK calls at `RUST_LOG=trace` to find them).
pub const BODY_LOGGING_TARGETS: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_config",
];

/// A filter that passes everything except the [`BODY_LOGGING_TARGETS`] above `debug`.
pub fn body_clamp() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(
            BODY_LOGGING_TARGETS
                .iter()
                .map(|t| (*t, LevelFilter::DEBUG)),
        )
}

/// The log filter from `RUST_LOG`: a level (`debug`) or comma-separated `target=level`
/// directives with an optional default level (`aws_csi_provider=debug,warn`); unset or not
/// parsable: `info`; set and empty: errors only. Target directives, without the span and
/// field directives of tracing's `EnvFilter` (its regex engine is code resident on every node).
pub fn log_filter(value: Option<&str>) -> Targets {
    let info = || Targets::new().with_default(LevelFilter::INFO);
    let Some(value) = value else {
        return info();
    };
    let directives: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Targets::new().with_default(LevelFilter::ERROR);
    }
    if !directives.iter().all(|d| valid_directive(d)) {
        return info();
    }
    directives.join(",").parse().unwrap_or_else(|_| info())
}

/// `level`, `target` or `target=level`, targets of Rust path characters (`Targets` would read
/// anything without `=` as a target; `EnvFilter` refused such values, and so do we).
fn valid_directive(directive: &str) -> bool {
    let (target, level) = match directive.split_once('=') {
        Some((target, level)) => (target.trim(), Some(level.trim())),
        None => (directive, None),
    };
    let target_ok = !target.is_empty()
        && target
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'));
    target_ok && level.is_none_or(|l| l.parse::<LevelFilter>().is_ok())
}

/// Runs the provider until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), String> {
    args.note_upstream_flags();
    let metrics = Arc::new(Metrics::new());
    let agent = PodIdentityAgent::new(
        args.pod_identity_http_timeout,
        args.pod_identity_endpoint.clone(),
    )?
    .with_retries(args.pod_identity_attempts, Duration::from_millis(200));
    let default_region = std::env::var("AWS_REGION")
        .ok()
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty());
    let mounter = Arc::new(Mounter::new(
        MountConfig {
            default_region,
            max_response_bytes: args.max_response_bytes,
            deadline: args.mount_deadline,
            concurrency: args.max_concurrency.max(1),
            credential_scope: args.credential_cache_scope,
            credential_max_age: args.credential_max_age,
            max_concurrent_mounts: args.max_concurrent_mounts,
        },
        Arc::new(SdkFactory::from_env()?),
        Arc::new(KubeLookup::new()),
        agent,
        metrics.clone(),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // glibc keeps freed pages resident; give them back now and then (cheap when idle).
    let trim = tokio::spawn(async {
        let mut every = tokio::time::interval(Duration::from_secs(10));
        loop {
            every.tick().await;
            crate::runtime::release_free_memory();
        }
    });
    let metrics_task = args.metrics_addr.map(|addr| {
        let m = metrics.clone();
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(addr, m, stop).await {
                tracing::error!(%addr, error = %e, "metrics endpoint failed");
            }
        })
    });
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        provider_volume = %args.provider_volume.display(),
        pod_identity_endpoint = args.pod_identity_endpoint.as_deref().unwrap_or("link-local agent"),
        "starting aws-csi-provider"
    );
    // Start-up is over: give its code back before the socket appears.
    crate::runtime::release_startup_code();
    let ready = metrics.clone();
    let result = server::serve_unix(
        &args.provider_volume,
        mounter,
        move || ready.set_ready(true),
        stopped(stop_rx),
    )
    .await
    .map_err(|e| {
        format!(
            "serving on {}: {e}",
            args.provider_volume.join(server::SOCKET_NAME).display()
        )
    });
    metrics.set_ready(false);
    trim.abort();
    if let Some(task) = metrics_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    tracing::info!("aws-csi-provider stopped");
    result
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, want) in [
            ("500ms", Duration::from_millis(500)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("3", Duration::from_secs(3)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["0s", "5d", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rust_log_filters() {
        let enabled = |value: Option<&str>, target: &str, level: LevelFilter| {
            log_filter(value).would_enable(target, &level.into_level().expect("a level"))
        };
        let provider = "aws_csi_provider::mount";
        assert!(enabled(None, provider, LevelFilter::INFO));
        assert!(!enabled(None, provider, LevelFilter::DEBUG));
        assert!(enabled(Some("debug"), "rustls::client", LevelFilter::DEBUG));
        assert!(enabled(Some("DEBUG"), provider, LevelFilter::DEBUG));
        assert!(!enabled(Some("warn"), provider, LevelFilter::INFO));
        let scoped = Some("aws_csi_provider=debug");
        assert!(enabled(scoped, provider, LevelFilter::DEBUG));
        assert!(!enabled(scoped, "hyper::proto", LevelFilter::ERROR));
        let mixed = Some("aws_csi_provider=trace,warn");
        assert!(enabled(mixed, provider, LevelFilter::TRACE));
        assert!(enabled(mixed, "h2", LevelFilter::WARN));
        assert!(!enabled(mixed, "h2", LevelFilter::INFO));
        assert!(enabled(Some("not a [filter"), provider, LevelFilter::INFO));
        assert!(!enabled(
            Some("not a [filter"),
            provider,
            LevelFilter::DEBUG
        ));
        assert!(enabled(Some("h2=loud"), provider, LevelFilter::INFO));
        assert!(enabled(Some("hyper"), "hyper::proto", LevelFilter::TRACE));
        assert!(!enabled(Some("hyper"), provider, LevelFilter::ERROR));
        assert!(enabled(Some("debug,"), provider, LevelFilter::DEBUG));
        assert!(enabled(Some(""), provider, LevelFilter::ERROR));
        assert!(!enabled(Some(""), provider, LevelFilter::WARN));
    }

    #[test]
    fn flags_parse() {
        let a = Args::try_parse_from([
            "aws-csi-provider",
            "--provider-volume",
            "/tmp/p",
            "--pod-identity-endpoint",
            "http://127.0.0.1:15023/v1/credentials",
            "--metrics-addr",
            "127.0.0.1:18081",
        ])
        .expect("parses");
        assert_eq!(a.provider_volume, PathBuf::from("/tmp/p"));
        assert_eq!(a.metrics_addr.map(|m| m.port()), Some(18081));
        assert_eq!(a.log_format, LogFormat::Text);
    }

    #[test]
    fn hardening_flags_parse_and_default() {
        let a = Args::try_parse_from(["aws-csi-provider"]).expect("defaults");
        assert_eq!(a.credential_max_age, Duration::from_secs(300));
        assert_eq!(a.max_concurrent_mounts, 32);
        let a = Args::try_parse_from([
            "aws-csi-provider",
            "--credential-max-age=1m",
            "--max-concurrent-mounts=8",
        ])
        .expect("parses");
        assert_eq!(a.credential_max_age, Duration::from_secs(60));
        assert_eq!(a.max_concurrent_mounts, 8);
        for bad in ["--max-concurrent-mounts=0", "--credential-max-age=0s"] {
            assert!(
                Args::try_parse_from(["aws-csi-provider", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn body_logging_targets_stay_at_debug_whatever_rust_log_says() {
        let clamp = body_clamp();
        let trace = tracing::Level::TRACE;
        for target in [
            "aws_smithy_runtime::client::orchestrator",
            "aws_smithy_runtime::client::orchestrator::http",
            "aws_sigv4::http_request::sign",
        ] {
            assert!(!clamp.would_enable(target, &trace), "{target}");
            assert!(
                clamp.would_enable(target, &tracing::Level::DEBUG),
                "{target}"
            );
        }
        assert!(clamp.would_enable("aws_csi_provider::mount", &trace));
        assert!(clamp.would_enable("h2::codec", &trace));
    }

    #[test]
    fn upstream_daemonset_flags_are_accepted() {
        let a = Args::try_parse_from([
            "aws-csi-provider",
            "--provider-volume=/var/run/secrets-store-csi-providers",
            "--driver-writes-secrets",
            "--qps=5",
            "--burst=10",
            "--eks-addon-version=v3.1.1-eksbuild.1",
            "--pod-identity-http-timeout=2s",
        ])
        .expect("upstream's arguments parse");
        assert_eq!(a.driver_writes_secrets, Some(true));
        let a = Args::try_parse_from(["aws-csi-provider", "--driver-writes-secrets=false"])
            .expect("parses");
        assert_eq!(a.driver_writes_secrets, Some(false));
    }
}
