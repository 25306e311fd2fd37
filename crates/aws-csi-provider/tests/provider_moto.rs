//! The provider against the local moto server (tests/env): the real AWS SDK wire path —
//! BatchGetSecretValue, GetSecretValue by label, SSM GetParameters with decryption, and the
//! classification of real error replies. Skipped when tests/env is not running.

mod provider_support;

use provider_support::moto::{moto, run_id, set_up};
use provider_support::*;

#[tokio::test]
async fn secrets_manager_and_ssm_through_moto() {
    let Some(moto) = moto().await else { return };
    let run = run_id();
    let db = format!("provider-test-{run}/db");
    let api = format!("provider-test-{run}-api");
    let param = format!("/provider-test-{run}/url");
    let mut made = moto.made();
    made.secrets = vec![db.clone(), api.clone()];
    made.parameters = vec![param.clone()];

    // Setup failures belong to the environment (e.g. moto restarting): skip, don't fail.
    let setup = async {
        moto.create_secret(&db, r#"{"user":"u1","pass":"s3cr3t-v1"}"#)
            .await?;
        let v2 = (moto.secrets_manager().put_secret_value())
            .secret_id(&db)
            .secret_string(r#"{"user":"u2","pass":"s3cr3t-v2"}"#)
            .send()
            .await
            .map_err(|e| format!("rotate {db}: {e:?}"))?;
        moto.create_secret(&api, "s3cr3t-api").await?;
        moto.put_parameter(&param, "s3cr3t-param", false).await?;
        moto.put_parameter(&param, "s3cr3t-param-2", true).await?;
        Ok::<_, String>(v2)
    };
    let Some(v2) = set_up(setup.await) else {
        return;
    };

    let (_agent, mut h) = moto.provider().await;
    let objects = format!(
        "- {{objectName: '{db}', objectType: secretsmanager, objectAlias: db, jmesPath: [{{path: pass, objectAlias: db-pass}}]}}\n\
         - {{objectName: '{db}', objectType: secretsmanager, objectAlias: db-previous, objectVersionLabel: AWSPREVIOUS}}\n\
         - {{objectName: '{api}', objectType: secretsmanager}}\n\
         - {{objectName: '{param}', objectType: ssmparameter, objectAlias: url}}\n\
         - {{objectName: '{param}', objectType: ssmparameter, objectAlias: url-v1, objectVersion: 1}}"
    );
    let attrs = attrs_with(&[("region", &moto.region)], &objects, &both_tokens());
    let resp = mount(&mut h, attrs).await.expect("mount through moto");
    let files = files_of(&resp);
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
        let attrs = attrs_with(&[("region", &moto.region)], &objects, &both_tokens());
        let e = mount(&mut h, attrs).await.expect_err("missing object");
        assert_eq!(e.code(), tonic::Code::NotFound, "{kind}: {}", e.message());
        assert_says(&e, &[&name]);
    }
    moto.assert_no_secret_in(&h.logs.text());
}

/// The features beyond upstream on moto's real wire answers: a prefix of 23 secrets read in two
/// BatchGetSecretValue pages (a name filter), an SSM path read by GetParametersByPath (recursive
/// and not), all keys of a JSON secret, an optional missing secret skipped; then the next
/// mount follows a secret added and one deleted under the prefix.
#[tokio::test]
async fn prefix_all_keys_and_optional_through_moto() {
    let Some(moto) = moto().await else { return };
    let run = run_id();
    let prefix = format!("provider-feat-{run}/team/");
    let mut made = moto.made();
    made.secrets = (0..23).map(|i| format!("{prefix}s{i:02}")).collect();
    made.secrets.push(format!("{prefix}deep/one"));
    made.secrets.push(format!("{prefix}added"));
    made.secrets.push(format!("provider-feat-{run}/json"));
    made.parameters = vec![
        format!("/provider-feat-{run}/cfg/a"),
        format!("/provider-feat-{run}/cfg/sub/b"),
    ];
    let setup = async {
        for name in made.secrets.iter().filter(|n| !n.ends_with("added")) {
            let value = if name.ends_with("/json") {
                r#"{"user":"app","pass":"s3cr3t-pass","port":5432}"#.to_string()
            } else {
                format!("s3cr3t-{name}")
            };
            moto.create_secret(name, &value).await?;
        }
        for name in &made.parameters {
            moto.put_parameter(name, &format!("s3cr3t-{name}"), false)
                .await?;
        }
        Ok::<_, String>(())
    };
    if set_up(setup.await).is_none() {
        return;
    }
    let (_agent, mut h) = moto.provider().await;
    let objects = format!(
        "- {{objectName: '{prefix}', objectType: secretsmanager, matchPrefix: true, objectAlias: team}}\n\
         - {{objectName: '/provider-feat-{run}/cfg/', objectType: ssmparameter, matchPrefix: true, objectAlias: cfg}}\n\
         - {{objectName: '/provider-feat-{run}/cfg', objectType: ssmparameter, matchPrefix: true, recursive: false, objectAlias: top}}\n\
         - {{objectName: 'provider-feat-{run}/json', objectType: secretsmanager, allKeys: true, objectAlias: json}}\n\
         - {{objectName: 'provider-feat-{run}/missing', objectType: secretsmanager, optional: true}}"
    );
    let attrs = || attrs_with(&[("region", &moto.region)], &objects, &both_tokens());
    let resp = mount(&mut h, attrs()).await.expect("mount through moto");
    let files = files_of(&resp);
    let names: Vec<&str> = files.iter().map(|f| f.0).collect();
    let team: Vec<&&str> = names.iter().filter(|n| n.starts_with("team/")).collect();
    assert_eq!(team.len(), 24, "23 + deep/one: {names:?}");
    assert_eq!(*team[0], "team/deep/one");
    let deep = files.iter().find(|f| f.0 == "team/deep/one").expect("deep");
    assert_eq!(deep.1, format!("s3cr3t-{prefix}deep/one").as_bytes());
    for want in [
        "cfg/a",
        "cfg/sub/b",
        "top/a",
        "json",
        "pass",
        "port",
        "user",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    assert!(!names.contains(&"top/sub/b"), "recursive: false");
    let pass = files.iter().find(|f| f.0 == "pass").expect("pass");
    assert_eq!(pass.1, b"s3cr3t-pass");
    assert_eq!(resp.object_version.len(), resp.files.len());
    let metrics = h.metrics.render();
    assert!(
        metrics.contains("operation=\"BatchGetSecretValue\",outcome=\"ok\"} 3"),
        "24 matches in two pages of 20, and one batch of the two named secrets: {metrics}"
    );
    assert!(
        metrics.contains("operation=\"GetParametersByPath\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(h.logs.text().contains("optional object not found"));

    // The next mount follows the account: one added, one deleted.
    (moto
        .create_secret(&format!("{prefix}added"), "s3cr3t-added")
        .await)
        .expect("create added");
    (moto.delete_secret(&format!("{prefix}s00")).await).expect("delete s00");
    let resp = mount(&mut h, attrs()).await.expect("remount");
    let names: Vec<&str> = resp.files.iter().map(|f| f.path.as_str()).collect();
    assert!(
        names.contains(&"team/added") && !names.contains(&"team/s00"),
        "{names:?}"
    );
    moto.assert_no_secret_in(&h.logs.text());
}
