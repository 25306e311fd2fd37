//! End to end in the local environment, through the real secrets-store-csi-driver and the
//! kubelet stand-in, the provider's features beyond upstream: a prefix object whose files
//! follow secrets added and removed between re-publishes (driver rotation on), all keys of a
//! JSON secret as files, and an optional missing secret skipped beside a denied one that
//! still fails the mount (the stand-in enforces IAM). Secret values are compared, never
//! printed.
//!
//! The prefix scenario switches the driver to rotation (the guard puts it back, pass or fail):
//! the scenarios of this binary run one at a time.

mod common;
mod rotation;

use std::collections::BTreeMap;
use std::time::Duration;

use common::fixture::Fixture;
use common::make;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";

fn region() -> String {
    std::env::var("AWS_REGION").unwrap_or_default()
}

fn secret_pattern(pattern: &str) -> String {
    format!(
        "arn:aws:secretsmanager:{}:{ACCOUNT}:secret:{pattern}",
        region()
    )
}

/// Waits for pod `name` of `fx` to run and returns its volume's directory.
async fn running(fx: &Fixture, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(fx.kube.clone(), &fx.ns);
    let pod = common::eventually(&format!("pod {name} to run after its mount"), 90, || {
        let pods = pods.clone();
        let name = name.to_string();
        async move {
            let pod = pods.get(&name).await.ok()?;
            (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
        }
    })
    .await;
    let uid = pod.metadata.uid.expect("uid");
    format!(
        "{}/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount",
        fx.env.state_dir
    )
}

/// Every file under `dir` (sub-directories walked), by path relative to the mount; the
/// driver's `..` bookkeeping at the top left out.
fn tree(dir: &str) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &std::path::Path, rel: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(base.join(rel)) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if rel.is_empty() && name.starts_with("..") {
                continue;
            }
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match std::fs::metadata(base.join(&path)) {
                Ok(m) if m.is_dir() => walk(base, &path, out),
                Ok(_) => {
                    if let Ok(data) = std::fs::read(base.join(&path)) {
                        out.insert(path, data);
                    }
                }
                Err(_) => {}
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(std::path::Path::new(dir), "", &mut out);
    out
}

/// The object versions of pod `name`'s SecretProviderClassPodStatus, by id.
async fn versions(fx: &Fixture, name: &str) -> BTreeMap<String, String> {
    fx.pod_status(name).await["objects"]
        .as_array()
        .map(|objs| {
            objs.iter()
                .map(|o| {
                    (
                        o["id"].as_str().unwrap_or_default().to_string(),
                        o["version"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn provider_log(fx: &Fixture) -> String {
    std::fs::read_to_string(format!("{}/logs/aws-csi-provider.log", fx.env.state_dir))
        .unwrap_or_default()
}

fn assert_not_logged(fx: &Fixture, values: &[&String]) {
    let log = provider_log(fx);
    for (i, v) in values.iter().enumerate() {
        assert!(
            !log.contains(v.as_str()),
            "the provider log contains secret value #{i}"
        );
    }
}

#[tokio::test]
async fn a_prefix_mounts_every_secret_under_it_and_follows_additions_and_deletions_between_republishes()
 {
    let mut s = common::session!(serial, "pfx");
    let (env, tag, cfg, _, made) = s.parts();
    let sm = aws_sdk_secretsmanager::Client::new(cfg);
    let ssm = aws_sdk_ssm::Client::new(cfg);
    made.secrets = ["a", "b/nested", "c"]
        .iter()
        .map(|n| format!("{tag}/team/{n}"))
        .collect();
    made.parameters = vec![format!("/{tag}/cfg/x"), format!("/{tag}/cfg/y")];
    let value = |n: &str| common::unique(&format!("v-{}", n.replace('/', "-")));
    let (a, nested, c, x, y) = (
        value("a"),
        value("nested"),
        value("c"),
        value("x"),
        value("y"),
    );
    for (name, v) in [("a", &a), ("b/nested", &nested)] {
        make::secret(&sm, &format!("{tag}/team/{name}"), v).await;
    }
    make::parameter(&ssm, &format!("/{tag}/cfg/x"), &x).await;
    // The policy onboard writes for a prefix: read on the prefix's ARN pattern, the list and
    // batch actions (which have no resource) on *.
    let statements = vec![
        json!({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
               "Resource": secret_pattern(&format!("{tag}/team/*"))}),
        json!({"Effect": "Allow", "Action": ["secretsmanager:ListSecrets", "secretsmanager:BatchGetSecretValue"], "Resource": "*"}),
        json!({"Effect": "Allow", "Action": ["ssm:GetParametersByPath", "ssm:GetParameters"],
               "Resource": [format!("arn:aws:ssm:{}:{ACCOUNT}:parameter/{tag}/cfg/*", region()),
                            format!("arn:aws:ssm:{}:{ACCOUNT}:parameter/{tag}/cfg/", region())]}),
    ];
    let Some(fx) = Fixture::with_policy("e2e-pfx", statements, false).await else {
        return;
    };
    // Re-publishes reach the provider: rotation on, every 2 s (put back by the guard).
    let _restore = rotation::Restore {
        state_dir: env.state_dir.clone(),
    };
    rotation::apply_driver(&fx.kube, &rotation::driver_values(Some("2s"), false)).await;
    for i in 0..env.nodes.len() {
        rotation::process_runs(
            &env.state_dir,
            &format!("csi-driver-{i}"),
            "rotation every 2s",
            |c| c.iter().any(|a| a == "--rotation-poll-interval=2s"),
        )
        .await;
    }
    rotation::drivers_listen(env).await;

    let objects = format!(
        "- objectName: \"{tag}/team/\"\n  objectType: secretsmanager\n  matchPrefix: true\n  objectAlias: team\n\
         - objectName: \"/{tag}/cfg/\"\n  objectType: ssmparameter\n  matchPrefix: true\n  recursive: false\n  objectAlias: cfg\n"
    );
    fx.pod(
        "reader",
        json!({"objects": objects, "usePodIdentity": "true", "region": region()}),
    )
    .await;
    let target = running(&fx, "reader").await;
    let files = tree(&target);
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["cfg/x", "team/a", "team/b/nested"],
        "one file per secret under the prefix, sub-directories kept"
    );
    assert!(files["team/a"] == a.as_bytes() && files["team/b/nested"] == nested.as_bytes());
    assert!(
        files["cfg/x"] == x.as_bytes(),
        "the SSM parameter, decrypted"
    );
    let v = versions(&fx, "reader").await;
    for id in ["team/a", "team/b/nested", "cfg/x"] {
        assert!(
            v.get(id).is_some_and(|v| !v.is_empty()),
            "a version per file: {v:?}"
        );
    }

    // Between re-publishes: one secret added, one deleted, one parameter added.
    make::secret(&sm, &format!("{tag}/team/c"), &c).await;
    sm.delete_secret()
        .secret_id(format!("{tag}/team/a"))
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("DeleteSecret a");
    make::parameter(&ssm, &format!("/{tag}/cfg/y"), &y).await;
    let bound = rotation::POLL + rotation::republish() + Duration::from_secs(20);
    let want = vec!["cfg/x", "cfg/y", "team/b/nested", "team/c"];
    let files = common::eventually(
        "the re-published mount to follow the account",
        bound.as_secs(),
        || {
            let files = tree(&target);
            let names: Vec<&str> = files.keys().map(String::as_str).collect();
            let ok = names == want;
            async move { ok.then_some(files) }
        },
    )
    .await;
    assert!(files["team/c"] == c.as_bytes() && files["cfg/y"] == y.as_bytes());
    assert!(
        !tree(&target).contains_key("team/a"),
        "the deleted secret is gone"
    );
    assert_not_logged(&fx, &[&a, &nested, &c, &x, &y]);
}

#[tokio::test]
async fn all_keys_of_a_json_secret_are_files_with_a_version_each() {
    let mut s = common::session!(serial, "keys");
    let (_, tag, cfg, _, made) = s.parts();
    let sm = aws_sdk_secretsmanager::Client::new(cfg);
    made.secrets = vec![format!("{tag}/db")];
    let password = common::unique("pw");
    let db_secret =
        json!({"username": "app", "password": password, "port": 5432, "tls": {"on": true}});
    let db = make::secret(&sm, &format!("{tag}/db"), db_secret.to_string()).await;
    let arn = db.arn.clone().expect("arn");
    let Some(fx) = Fixture::new("e2e-keys", &[arn], &[], false).await else {
        return;
    };
    let objects = format!(
        "- objectName: \"{tag}/db\"\n  objectType: secretsmanager\n  allKeys: true\n  objectAlias: db.json\n  filePermission: \"0600\"\n"
    );
    fx.pod(
        "reader",
        json!({"objects": objects, "usePodIdentity": "true", "region": region()}),
    )
    .await;
    let (_target, files) = fx.mounted("reader").await;
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["db.json", "password", "port", "tls", "username"]
    );
    let whole: Value = serde_json::from_slice(&files["db.json"].0).expect("the whole secret");
    assert!(
        whole["password"] == json!(password),
        "db.json holds the secret"
    );
    assert!(
        files["password"].0 == password.as_bytes(),
        "a string as it is"
    );
    assert_eq!(files["username"].0, b"app");
    assert_eq!(files["port"].0, b"5432", "a number as JSON text");
    assert_eq!(
        files["tls"].0, br#"{"on":true}"#,
        "an object as compact JSON"
    );
    assert!(files.values().all(|(_, mode)| *mode == 0o600));
    let v = versions(&fx, "reader").await;
    for id in ["db.json", "password", "port", "tls", "username"] {
        assert_eq!(
            v.get(id),
            db.version_id.as_ref(),
            "{id} has the secret's version"
        );
    }
    assert_not_logged(&fx, &[&password]);
}

#[tokio::test]
async fn an_optional_missing_secret_is_skipped_and_a_denied_one_still_fails() {
    let mut s = common::session!(serial, "opt");
    let (_, tag, cfg, _, made) = s.parts();
    let here = common::unique("here");
    let denied = common::unique("denied");
    for (name, v) in [("ok/here", &here), ("other/denied", &denied)] {
        made.secret(cfg, &format!("{tag}/{name}"), v).await;
    }
    // The role reads {tag}/ok/* (where the missing one would be) and nothing of {tag}/other/;
    // BatchGetSecretValue is allowed so that the unpinned secrets go in one batch, each
    // error coming back per id.
    let statements = vec![
        json!({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
               "Resource": secret_pattern(&format!("{tag}/ok/*"))}),
        json!({"Effect": "Allow", "Action": ["secretsmanager:BatchGetSecretValue"], "Resource": "*"}),
    ];
    let Some(fx) = Fixture::with_policy("e2e-opt", statements, false).await else {
        return;
    };
    let entry = |name: &str, alias: &str, optional: bool| {
        format!(
            "- objectName: \"{tag}/{name}\"\n  objectType: secretsmanager\n  objectAlias: {alias}\n  optional: {optional}\n"
        )
    };
    let ok = entry("ok/here", "here", false) + &entry("ok/missing", "missing", true);
    let with_denied = ok.clone() + &entry("other/denied", "denied", true);
    let params =
        |objects: String| json!({"objects": objects, "usePodIdentity": "true", "region": region()});
    fx.pod("skips", params(ok)).await;
    fx.pod("denied", params(with_denied)).await;

    let (_target, files) = fx.mounted("skips").await;
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["here"],
        "the missing optional secret is skipped"
    );
    assert!(files["here"].0 == here.as_bytes());
    let log = provider_log(&fx);
    assert!(
        log.lines().any(|l| l.contains("optional object not found")
            && l.contains(&format!("{tag}/ok/missing"))
            && l.contains(&region())),
        "a warning names the skipped secret and its region"
    );

    let msg = fx.failed("denied").await;
    assert!(
        msg.contains(&format!("{tag}/other/denied")),
        "names the denied secret: {msg}"
    );
    assert!(
        msg.contains("access denied") || msg.contains("AccessDenied"),
        "denied, not missing, although optional: {msg}"
    );
    assert!(
        !msg.contains(&denied) && !msg.contains(&here),
        "no value in the error"
    );
    assert_not_logged(&fx, &[&here, &denied]);
}
