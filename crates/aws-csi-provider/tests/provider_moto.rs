//! The provider against the local moto server (tests/env): the real AWS SDK wire path —
//! BatchGetSecretValue, GetSecretValue by label, SSM GetParameters with decryption, and the
//! classification of real error replies. Skipped when tests/env is not running.

mod provider_support;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_csi_provider::clients::SdkFactory;
use aws_csi_provider::mount::MountConfig;
use provider_support::*;

/// `export NAME='value'` lines of tests/env/state/env.sh.
fn env_file() -> Option<std::collections::HashMap<String, String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/env/state/env.sh");
    let text = std::fs::read_to_string(path).ok()?;
    let mut vars = std::collections::HashMap::new();
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

#[tokio::test]
async fn secrets_manager_and_ssm_through_moto() {
    let Some(vars) = env_file() else {
        bootstrap_common::testenv::skip("tests/env is not up");
        return;
    };
    let (Some(endpoint), Some(key), Some(secret)) = (
        vars.get("AWS_ENDPOINT_URL"),
        vars.get("AWS_ACCESS_KEY_ID"),
        vars.get("AWS_SECRET_ACCESS_KEY"),
    ) else {
        bootstrap_common::testenv::skip("env.sh lacks AWS settings");
        return;
    };
    if std::net::TcpStream::connect(endpoint.trim_start_matches("http://")).is_err() {
        bootstrap_common::testenv::skip(&format!("moto is not reachable at {endpoint}"));
        return;
    }
    let region = vars
        .get("AWS_REGION")
        .cloned()
        .unwrap_or_else(|| "us-west-2".into());
    let admin = Credentials::new(key, secret, None, None, "env");
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.clone()))
        .credentials_provider(admin)
        .load()
        .await;
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let ssm = aws_sdk_ssm::Client::new(&conf);
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let db = format!("provider-test-{run}/db");
    let api = format!("provider-test-{run}-api");
    let param = format!("/provider-test-{run}/url");

    // Setup failures belong to the environment (e.g. moto restarting): skip, don't fail.
    let setup = async {
        sm.create_secret()
            .name(&db)
            .secret_string(r#"{"user":"u1","pass":"s3cr3t-v1"}"#)
            .send()
            .await
            .map_err(|e| format!("create {db}: {e:?}"))?;
        let v2 = sm
            .put_secret_value()
            .secret_id(&db)
            .secret_string(r#"{"user":"u2","pass":"s3cr3t-v2"}"#)
            .send()
            .await
            .map_err(|e| format!("rotate {db}: {e:?}"))?;
        sm.create_secret()
            .name(&api)
            .secret_string("s3cr3t-api")
            .send()
            .await
            .map_err(|e| format!("create {api}: {e:?}"))?;
        ssm.put_parameter()
            .name(&param)
            .value("s3cr3t-param")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .map_err(|e| format!("put {param}: {e:?}"))?;
        ssm.put_parameter()
            .name(&param)
            .value("s3cr3t-param-2")
            .overwrite(true)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .map_err(|e| format!("overwrite {param}: {e:?}"))?;
        Ok::<_, String>(v2)
    };
    let v2 = match setup.await {
        Ok(v2) => v2,
        Err(e) => {
            bootstrap_common::testenv::skip(&format!("moto setup failed: {e}"));
            return;
        }
    };

    let agent = start_agent_with(POD_TOKEN, key, secret, "").await;
    let factory = SdkFactory::new(
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(region.clone()))
            .no_credentials()
            .load()
            .await,
    );
    let mut h = start(
        factory,
        FakeCluster::default(),
        &agent.url,
        MountConfig::default(),
    )
    .await;
    let objects = format!(
        "- {{objectName: '{db}', objectType: secretsmanager, objectAlias: db, jmesPath: [{{path: pass, objectAlias: db-pass}}]}}\n\
         - {{objectName: '{db}', objectType: secretsmanager, objectAlias: db-previous, objectVersionLabel: AWSPREVIOUS}}\n\
         - {{objectName: '{api}', objectType: secretsmanager}}\n\
         - {{objectName: '{param}', objectType: ssmparameter, objectAlias: url}}\n\
         - {{objectName: '{param}', objectType: ssmparameter, objectAlias: url-v1, objectVersion: 1}}"
    );
    let attrs = attributes(
        &[
            ("usePodIdentity", "true"),
            ("region", &region),
            ("objects", &objects),
        ],
        Some(&both_tokens()),
    );
    let resp = mount(&mut h, attrs).await.expect("mount through moto");
    let files: Vec<(&str, &[u8])> = resp
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.contents.as_slice()))
        .collect();
    assert_eq!(files[0], ("db-pass", b"s3cr3t-v2".as_slice()));
    assert_eq!(files[1].0, "db");
    assert_eq!(
        files[2],
        (
            "db-previous",
            br#"{"user":"u1","pass":"s3cr3t-v1"}"#.as_slice()
        )
    );
    assert_eq!(files[4], ("url", b"s3cr3t-param-2".as_slice()));
    // A pinned SSM version is fetched as name:version (moto's reply has no Selector).
    assert_eq!(files[5], ("url-v1", b"s3cr3t-param".as_slice()));
    assert_eq!(resp.object_version[5].version, "1");
    assert_eq!(
        resp.object_version[0].version,
        v2.version_id().unwrap_or_default()
    );
    assert_eq!(resp.object_version[4].version, "2");
    let metrics = h.metrics.render();
    assert!(
        metrics.contains("operation=\"BatchGetSecretValue\",outcome=\"ok\"} 1"),
        "{metrics}"
    );

    // Real "not found" replies are classified as such, for both services.
    for (kind, name) in [
        ("secretsmanager", format!("provider-test-{run}-missing")),
        ("ssmparameter", format!("/provider-test-{run}/missing")),
    ] {
        let objects = format!("- {{objectName: '{name}', objectType: {kind}}}");
        let attrs = attributes(
            &[
                ("usePodIdentity", "true"),
                ("region", &region),
                ("objects", &objects),
            ],
            Some(&both_tokens()),
        );
        let e = mount(&mut h, attrs).await.expect_err("missing object");
        assert_eq!(e.code(), tonic::Code::NotFound, "{kind}: {}", e.message());
        assert!(e.message().contains(&name), "{}", e.message());
    }
    let logs = h.logs.text();
    assert!(
        !logs.contains("s3cr3t") && !logs.contains(secret.as_str()),
        "secret in logs"
    );

    for id in [&db, &api] {
        let _ = sm
            .delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
    let _ = ssm.delete_parameter().name(&param).send().await;
}
