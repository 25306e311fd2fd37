use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::*;
use crate::test_server::{Seen, serve};

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

/// An HTTP endpoint that answers every request with a 400 (not retried) and records them.
async fn endpoint() -> (String, Seen) {
    let server = serve(|_| {
        let body = r#"{"__type":"ValidationException","message":"stand-in"}"#;
        (400, body.as_bytes().to_vec())
    })
    .await;
    (server.url, server.seen)
}

/// How many requests `seen` recorded.
fn hits(seen: &Seen) -> usize {
    seen.lock().expect("requests seen").len()
}

fn creds() -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        "secret",
        None,
        Some(SystemTime::now() + Duration::from_secs(3600)),
        "test",
    )
}

/// The hand-built configuration sends each service where `AWS_ENDPOINT_URL_<SERVICE>` says,
/// and the rest where `AWS_ENDPOINT_URL` says (what aws-config's loader did).
#[tokio::test]
async fn endpoint_urls_per_service_and_global() {
    let (global, global_hits) = endpoint().await;
    let (sm, sm_hits) = endpoint().await;
    let (sts, sts_hits) = endpoint().await;
    let factory = SdkFactory::new(
        base_config(env_of(&[
            ("AWS_ENDPOINT_URL", &global),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &sm),
            ("AWS_ENDPOINT_URL_STS", &sts),
        ]))
        .unwrap(),
    );
    let sm_call = factory
        .secrets_manager("eu-west-1", &creds())
        .get_secret_value()
        .secret_id("x")
        .send()
        .await;
    assert!(sm_call.is_err(), "the stand-in answers 400");
    let ssm_call = factory
        .ssm("eu-west-1", &creds())
        .get_parameter()
        .name("x")
        .send()
        .await;
    assert!(ssm_call.is_err());
    let sts_call = factory
        .sts("eu-west-1")
        .assume_role_with_web_identity()
        .role_arn("arn:aws:iam::111122223333:role/x")
        .role_session_name("s")
        .web_identity_token("t")
        .send()
        .await;
    assert!(sts_call.is_err());
    assert_eq!(hits(&sm_hits), 1, "Secrets Manager");
    assert_eq!(hits(&global_hits), 1, "SSM, at the global URL");
    assert_eq!(hits(&sts_hits), 1, "STS");
}

#[test]
fn ignore_configured_endpoint_urls_drops_them() {
    let env = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:2"),
    ];
    let base = base_config(env_of(&env)).unwrap();
    assert_eq!(base.endpoint_url(), Some("http://127.0.0.1:1"));
    let key = |id| {
        ServiceConfigKey::builder()
            .service_id(id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .unwrap()
    };
    let loaded = |base: &SdkConfig, id| base.service_config().unwrap().load_config(key(id));
    assert_eq!(loaded(&base, "SSM").as_deref(), Some("http://127.0.0.1:2"));
    assert_eq!(loaded(&base, "STS").as_deref(), Some("http://127.0.0.1:1"));

    let ignored = [
        env.as_slice(),
        &[("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE")],
    ]
    .concat();
    let base = base_config(env_of(&ignored)).unwrap();
    assert_eq!(base.endpoint_url(), None);
    assert_eq!(loaded(&base, "SSM"), None);
}

#[test]
fn retries_timeouts_and_flags_as_aws_config_set_them() {
    let base = base_config(env_of(&[])).unwrap();
    let retry = base.retry_config().unwrap();
    assert_eq!(
        (retry.mode(), retry.max_attempts()),
        (RetryMode::Standard, 3)
    );
    assert_eq!(
        base.timeout_config().unwrap().connect_timeout(),
        Some(CONNECT_TIMEOUT)
    );
    assert_eq!((base.use_fips(), base.use_dual_stack()), (None, None));
    assert!(base.credentials_provider().is_none());

    let base = base_config(env_of(&[
        ("AWS_MAX_ATTEMPTS", "5"),
        ("AWS_RETRY_MODE", "adaptive"),
        ("AWS_USE_FIPS_ENDPOINT", "true"),
        ("AWS_USE_DUALSTACK_ENDPOINT", "False"),
    ]))
    .unwrap();
    let retry = base.retry_config().unwrap();
    assert_eq!(
        (retry.mode(), retry.max_attempts()),
        (RetryMode::Adaptive, 5)
    );
    assert_eq!(
        (base.use_fips(), base.use_dual_stack()),
        (Some(true), Some(false))
    );

    for bad in [
        ("AWS_MAX_ATTEMPTS", "0"),
        ("AWS_MAX_ATTEMPTS", "many"),
        ("AWS_RETRY_MODE", "eager"),
        ("AWS_USE_FIPS_ENDPOINT", "yes"),
    ] {
        let err = base_config(env_of(&[bad])).unwrap_err();
        assert!(err.starts_with(bad.0), "{err}");
    }
}

#[tokio::test]
async fn the_client_cache_is_bounded() {
    let factory = SdkFactory::new(base_config(env_of(&[])).unwrap());
    for n in 0..(3 * MAX_CLIENTS) {
        let creds = Credentials::new(format!("ASIA{n:016}"), "s", None, None, "test");
        let _ = factory.secrets_manager("us-west-2", &creds);
        let _ = factory.ssm("us-west-2", &creds);
        assert!(factory.sm.lock().unwrap().len() <= MAX_CLIENTS);
        assert!(factory.ssm.lock().unwrap().len() <= MAX_CLIENTS);
    }
    // The same credentials again: the cached client (one entry, not two).
    let creds = Credentials::new("ASIA-AGAIN", "s", None, None, "test");
    let before = factory.sm.lock().unwrap().len();
    let _ = factory.secrets_manager("us-west-2", &creds);
    let _ = factory.secrets_manager("us-west-2", &creds);
    let expected = if before >= MAX_CLIENTS { 1 } else { before + 1 };
    assert_eq!(factory.sm.lock().unwrap().len(), expected);
}
