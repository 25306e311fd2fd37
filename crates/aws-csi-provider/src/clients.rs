//! AWS client factory: clients share one HTTP connection pool and are reused per credentials.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::retry::{RetryConfig, RetryMode};
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SdkConfig;
use aws_types::region::Region;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

/// Makes AWS clients for a region and credentials. Injected so tests can use mocked clients.
pub trait AwsFactory: Send + Sync {
    fn secrets_manager(&self, region: &str, creds: &Credentials) -> aws_sdk_secretsmanager::Client;
    fn ssm(&self, region: &str, creds: &Credentials) -> aws_sdk_ssm::Client;
    /// STS for AssumeRoleWithWebIdentity (an unsigned call).
    fn sts(&self, region: &str) -> aws_sdk_sts::Client;
}

/// Clients from a base [`SdkConfig`] (so `AWS_ENDPOINT_URL*`, retries and the HTTP client come
/// from the environment once, see [`base_config`]), cached by (service, region, access key id).
pub struct SdkFactory {
    base: SdkConfig,
    sm: Mutex<HashMap<(String, String), aws_sdk_secretsmanager::Client>>,
    ssm: Mutex<HashMap<(String, String), aws_sdk_ssm::Client>>,
    sts: Mutex<HashMap<String, aws_sdk_sts::Client>>,
}

/// Cached clients per service before the cache is emptied (credentials rotate; keys pile up).
/// Every new pod brings new credentials, so each is a client (its configuration layers and
/// runtime plugins, kilobytes: `tests/provider_entry_bytes.rs`); a mount takes its client once,
/// so the cache only spares a remount building one (microseconds, no I/O: the connection pool
/// is the base configuration's, shared). 512 made it the largest per-pod memory after a few
/// hundred pods.
pub const MAX_CLIENTS: usize = 64;

/// Idle connections kept per host (hyper's default is unbounded): a burst of concurrent mounts
/// opens one connection per call in flight, and each idle one keeps its TLS state and read
/// buffer (grown to the largest response it carried) until the idle timeout.
pub const POOL_MAX_IDLE_PER_HOST: usize = 8;
/// How long an idle connection is kept (hyper's default: 90 s).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The SDK's default HTTPS client (hyper 1, rustls with aws-lc, the proxy from the
/// environment), with a bounded idle pool.
fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::{Builder, ConnectorBuilder, tls};
    Builder::new()
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build_with_connector_fn(|settings, components| {
            let mut builder = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ));
            builder.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                builder.set_sleep_impl(components.sleep_impl());
            }
            builder.set_proxy_config(Some(ProxyConfig::from_env()));
            builder.build()
        })
}

impl SdkFactory {
    /// The base configuration from the process environment ([`base_config`]); a variable set
    /// to the empty string counts as unset (a DaemonSet's `value: ""`).
    pub fn from_env() -> Result<Self, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Ok(Self::new(base_config(env)?))
    }

    pub fn new(base: SdkConfig) -> Self {
        Self {
            base,
            sm: Mutex::default(),
            ssm: Mutex::default(),
            sts: Mutex::default(),
        }
    }
}

/// The SDK's connect timeout default (what `aws-config` sets; the SDK's own is none).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The base [`SdkConfig`], built by hand from the settings the provider honours, read through
/// `env` (the process environment in production):
///
/// - `AWS_ENDPOINT_URL`, and per service `AWS_ENDPOINT_URL_SECRETS_MANAGER`,
///   `AWS_ENDPOINT_URL_SSM`, `AWS_ENDPOINT_URL_STS` (which win), unless
///   `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`;
/// - `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT`;
/// - `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE` (standard, 3 attempts by default), a 3.1 s connect
///   timeout;
/// - the HTTPS client of [`http_client`], no credentials (each client gets its own) and a
///   placeholder region (each client gets the mount's).
///
/// Not `aws_config::defaults(..).load()`: that links the default credential and region
/// chains (IMDS, ECS, SSO, profile files, web identity) although the provider never uses them,
/// ≈1 MB of code resident in every node's provider. The one setting that difference drops is
/// the shared config file (`~/.aws/config`, `AWS_PROFILE`): nothing in the provider's
/// container has one. Invalid values are refused here (aws-config panicked on them).
pub fn base_config(env: impl Fn(&str) -> Option<String>) -> Result<SdkConfig, String> {
    let flag = |name: &str| -> Result<Option<bool>, String> {
        match env(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(format!("{name}={v:?} is not true or false")),
        }
    };
    let ignore_endpoints = flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")?.unwrap_or(false);
    let mut retry = RetryConfig::standard();
    if let Some(v) = env("AWS_MAX_ATTEMPTS") {
        match v.parse::<u32>() {
            Ok(n) if n > 0 => retry = retry.with_max_attempts(n),
            _ => return Err(format!("AWS_MAX_ATTEMPTS={v:?} is not a positive number")),
        }
    }
    if let Some(v) = env("AWS_RETRY_MODE") {
        let mode: RetryMode = v
            .parse()
            .map_err(|e| format!("AWS_RETRY_MODE={v:?}: {e}"))?;
        retry = retry.with_retry_mode(mode);
    }
    let endpoints = EnvEndpoints::read(&env, ignore_endpoints);
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .http_client(http_client())
        .retry_config(retry)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        );
    builder.set_endpoint_url(endpoints.global.clone());
    builder.set_use_fips(flag("AWS_USE_FIPS_ENDPOINT")?);
    builder.set_use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT")?);
    Ok(builder.service_config(endpoints).build())
}

/// The endpoint URLs the environment sets, read once: the global `AWS_ENDPOINT_URL` and the
/// per-service `AWS_ENDPOINT_URL_<SERVICE ID>` of the three services the provider calls.
/// Each client asks for its service's when it is built from the [`SdkConfig`].
#[derive(Debug, Default)]
struct EnvEndpoints {
    global: Option<String>,
    per_service: Vec<(String, String)>,
}

/// The services the provider calls, by SDK service id (`AWS_ENDPOINT_URL_` + upper case, `_`
/// for spaces).
const SERVICE_IDS: [&str; 3] = ["Secrets Manager", "SSM", "STS"];

impl EnvEndpoints {
    fn read(env: &impl Fn(&str) -> Option<String>, ignore: bool) -> Self {
        if ignore {
            return Self::default();
        }
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        Self {
            global: set("AWS_ENDPOINT_URL"),
            per_service: SERVICE_IDS
                .iter()
                .filter_map(|id| {
                    let var = format!("AWS_ENDPOINT_URL_{}", id.to_uppercase().replace(' ', "_"));
                    set(&var).map(|url| (id.to_string(), url))
                })
                .collect(),
        }
    }
}

impl LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != "AWS_ENDPOINT_URL" {
            return None;
        }
        self.per_service
            .iter()
            .find(|(id, _)| id == key.service_id())
            .map(|(_, url)| url.clone())
            .or_else(|| self.global.clone())
    }
}

fn cached<C: Clone>(
    map: &Mutex<HashMap<(String, String), C>>,
    region: &str,
    creds: &Credentials,
    make: impl FnOnce() -> C,
) -> C {
    let key = (region.to_string(), creds.access_key_id().to_string());
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = map.get(&key) {
        return c.clone();
    }
    if map.len() >= MAX_CLIENTS {
        map.clear();
    }
    let client = make();
    map.insert(key, client.clone());
    client
}

impl SdkFactory {
    /// The base configuration for `region`, signing with `creds` when given.
    fn regional(&self, region: &str, creds: Option<&Credentials>) -> SdkConfig {
        let mut builder = self
            .base
            .to_builder()
            .region(Region::new(region.to_string()));
        if let Some(creds) = creds {
            builder = builder.credentials_provider(SharedCredentialsProvider::new(creds.clone()));
        }
        builder.build()
    }
}

impl AwsFactory for SdkFactory {
    fn secrets_manager(&self, region: &str, creds: &Credentials) -> aws_sdk_secretsmanager::Client {
        cached(&self.sm, region, creds, || {
            aws_sdk_secretsmanager::Client::new(&self.regional(region, Some(creds)))
        })
    }

    fn ssm(&self, region: &str, creds: &Credentials) -> aws_sdk_ssm::Client {
        cached(&self.ssm, region, creds, || {
            aws_sdk_ssm::Client::new(&self.regional(region, Some(creds)))
        })
    }

    fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        let mut map = self.sts.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(region.to_string())
            .or_insert_with(|| aws_sdk_sts::Client::new(&self.regional(region, None)))
            .clone()
    }
}

#[cfg(test)]
#[path = "clients_tests.rs"]
mod tests;
