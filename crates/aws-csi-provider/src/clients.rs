//! AWS client factory: clients share one HTTP connection pool and are reused per credentials.

use std::collections::HashMap;
use std::sync::Mutex;

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

impl SdkFactory {
    /// Loads the base configuration from the environment (endpoints, retry, timeouts).
    pub async fn from_env() -> Self {
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
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
