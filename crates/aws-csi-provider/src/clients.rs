//! AWS client factory: clients share one HTTP connection pool and are reused per credentials.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::Region;
use aws_config::SdkConfig;
use aws_credential_types::Credentials;

/// Makes AWS clients for a region and credentials. Injected so tests can use mocked clients.
pub trait AwsFactory: Send + Sync {
    fn secrets_manager(&self, region: &str, creds: &Credentials) -> aws_sdk_secretsmanager::Client;
    fn ssm(&self, region: &str, creds: &Credentials) -> aws_sdk_ssm::Client;
    /// STS for AssumeRoleWithWebIdentity (an unsigned call).
    fn sts(&self, region: &str) -> aws_sdk_sts::Client;
}

/// Clients from a base [`SdkConfig`] (so `AWS_ENDPOINT_URL*`, retries and the HTTP client come
/// from the environment once), cached by (service, region, access key id).
pub struct SdkFactory {
    base: SdkConfig,
    sm: Mutex<HashMap<(String, String), aws_sdk_secretsmanager::Client>>,
    ssm: Mutex<HashMap<(String, String), aws_sdk_ssm::Client>>,
    sts: Mutex<HashMap<String, aws_sdk_sts::Client>>,
}

/// Cached clients per service before the cache is emptied (credentials rotate; keys pile up).
const MAX_CLIENTS: usize = 512;

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
    /// Loads the base configuration from the environment (endpoints, retry, timeouts).
    pub async fn from_env() -> Self {
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .http_client(http_client())
            .no_credentials()
            .load()
            .await;
        Self::new(base)
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

impl AwsFactory for SdkFactory {
    fn secrets_manager(&self, region: &str, creds: &Credentials) -> aws_sdk_secretsmanager::Client {
        cached(&self.sm, region, creds, || {
            let conf = aws_sdk_secretsmanager::config::Builder::from(&self.base)
                .region(Region::new(region.to_string()))
                .credentials_provider(creds.clone())
                .build();
            aws_sdk_secretsmanager::Client::from_conf(conf)
        })
    }

    fn ssm(&self, region: &str, creds: &Credentials) -> aws_sdk_ssm::Client {
        cached(&self.ssm, region, creds, || {
            let conf = aws_sdk_ssm::config::Builder::from(&self.base)
                .region(Region::new(region.to_string()))
                .credentials_provider(creds.clone())
                .build();
            aws_sdk_ssm::Client::from_conf(conf)
        })
    }

    fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        let mut map = self.sts.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(region.to_string())
            .or_insert_with(|| {
                let conf = aws_sdk_sts::config::Builder::from(&self.base)
                    .region(Region::new(region.to_string()))
                    .build();
                aws_sdk_sts::Client::from_conf(conf)
            })
            .clone()
    }
}
