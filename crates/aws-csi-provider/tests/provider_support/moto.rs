//! The local environment's moto (tests/env) for the provider's tests: its settings read from
//! tests/env/state/env.sh, an admin SDK config, and a run-unique name prefix. `None`, with the
//! reason printed, when the environment is not up.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;

/// moto's endpoint and the environment's keys and region.
pub struct Moto {
    pub endpoint: String,
    pub key: String,
    pub secret: String,
    pub region: String,
    /// An SDK config with the environment's (admin) keys, for setting up secrets.
    pub admin: aws_config::SdkConfig,
}

/// `export NAME='value'` lines of tests/env/state/env.sh.
fn env_file() -> Option<HashMap<String, String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/env/state/env.sh");
    let text = std::fs::read_to_string(path).ok()?;
    let mut vars = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("export ") else {
            continue;
        };
        for assignment in rest.split_whitespace() {
            if let Some((k, v)) = assignment.split_once('=') {
                vars.insert(k.to_string(), v.trim_matches('\'').to_string());
            }
        }
    }
    Some(vars)
}

/// moto, when tests/env is up and moto answers.
pub async fn moto() -> Option<Moto> {
    let skip = |why: &str| {
        bootstrap_common::testenv::skip(why);
        None
    };
    let Some(vars) = env_file() else {
        return skip("tests/env is not up");
    };
    let (Some(endpoint), Some(key), Some(secret)) = (
        vars.get("AWS_ENDPOINT_URL"),
        vars.get("AWS_ACCESS_KEY_ID"),
        vars.get("AWS_SECRET_ACCESS_KEY"),
    ) else {
        return skip("env.sh lacks AWS settings");
    };
    if std::net::TcpStream::connect(endpoint.trim_start_matches("http://")).is_err() {
        return skip(&format!("moto is not reachable at {endpoint}"));
    }
    let region = vars
        .get("AWS_REGION")
        .cloned()
        .unwrap_or_else(|| "us-west-2".into());
    let admin = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.clone()))
        .credentials_provider(Credentials::new(key, secret, None, None, "env"))
        .load()
        .await;
    Some(Moto {
        endpoint: endpoint.clone(),
        key: key.clone(),
        secret: secret.clone(),
        region,
        admin,
    })
}

/// A prefix unique to this run, for names in moto.
pub fn run_id() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The setup's value, or `None` with the test skipped: a setup failure belongs to the
/// environment (e.g. moto restarting), not to the provider.
pub fn set_up<T>(setup: Result<T, String>) -> Option<T> {
    setup
        .map_err(|e| bootstrap_common::testenv::skip(&format!("moto setup failed: {e}")))
        .ok()
}

/// A setup call's outcome; its error says `what` failed.
fn done<T, E: std::fmt::Debug>(what: String, result: Result<T, E>) -> Result<(), String> {
    result.map(drop).map_err(|e| format!("{what}: {e:?}"))
}

/// Deletes the secret `id` at once (no recovery window).
async fn delete_secret(sm: &aws_sdk_secretsmanager::Client, id: &str) -> Result<(), String> {
    let delete = (sm.delete_secret().secret_id(id)).force_delete_without_recovery(true);
    done(format!("delete {id}"), delete.send().await)
}

/// What a test made in moto, deleted when dropped: when the test passes and when it fails.
pub struct Made {
    admin: aws_config::SdkConfig,
    pub secrets: Vec<String>,
    pub parameters: Vec<String>,
}

impl Moto {
    /// The provider over gRPC with AWS clients pointed at moto, and a fake Pod Identity
    /// agent handing out moto's keys for [`super::POD_TOKEN`]; keep the agent alive.
    pub async fn provider(&self) -> (super::FakeAgent, super::Harness) {
        let agent = super::start_agent_with(super::POD_TOKEN, &self.key, &self.secret, "").await;
        let endpoint = self.endpoint.clone();
        let factory = aws_csi_provider::clients::SdkFactory::new(
            // The provider's own configuration, from an environment of AWS_ENDPOINT_URL alone.
            aws_csi_provider::clients::base_config(|name| {
                (name == "AWS_ENDPOINT_URL").then(|| endpoint.clone())
            })
            .expect("base config"),
        );
        let config = aws_csi_provider::mount::MountConfig::default();
        let cluster = super::FakeCluster::default();
        let h = super::start(factory, cluster, &agent.url, config).await;
        (agent, h)
    }

    /// Secrets Manager with the admin keys.
    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.admin)
    }

    /// Creates the secret `name` holding `value`.
    pub async fn create_secret(&self, name: &str, value: &str) -> Result<(), String> {
        let create = (self.secrets_manager().create_secret()).name(name);
        done(
            format!("create {name}"),
            create.secret_string(value).send().await,
        )
    }

    /// Deletes the secret `id` at once (no recovery window).
    pub async fn delete_secret(&self, id: &str) -> Result<(), String> {
        delete_secret(&self.secrets_manager(), id).await
    }

    /// Puts the SecureString parameter `name`; `overwrite` for a next version of one that exists.
    pub async fn put_parameter(
        &self,
        name: &str,
        value: &str,
        overwrite: bool,
    ) -> Result<(), String> {
        let ssm = aws_sdk_ssm::Client::new(&self.admin);
        let put = (ssm.put_parameter().name(name).value(value))
            .set_overwrite(overwrite.then_some(true))
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString);
        let what = if overwrite { "overwrite" } else { "put" };
        done(format!("{what} {name}"), put.send().await)
    }

    /// Asserts that the provider's logs hold no test value (`s3cr3t…`) and not moto's key.
    pub fn assert_no_secret_in(&self, logs: &str) {
        assert!(
            !logs.contains("s3cr3t") && !logs.contains(self.secret.as_str()),
            "secret in logs"
        );
    }

    /// A guard for the secrets and parameters the test is about to make.
    pub fn made(&self) -> Made {
        Made {
            admin: self.admin.clone(),
            secrets: Vec::new(),
            parameters: Vec::new(),
        }
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        let (admin, secrets, parameters) = (
            self.admin.clone(),
            std::mem::take(&mut self.secrets),
            std::mem::take(&mut self.parameters),
        );
        // Drop cannot await, and may run inside the test's runtime: a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let sm = aws_sdk_secretsmanager::Client::new(&admin);
                for id in &secrets {
                    let _ = delete_secret(&sm, id).await;
                }
                let ssm = aws_sdk_ssm::Client::new(&admin);
                for name in &parameters {
                    let _ = ssm.delete_parameter().name(name).send().await;
                }
            });
        })
        .join();
    }
}
