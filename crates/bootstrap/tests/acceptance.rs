//! The acceptance suite: the life of a platform team on whatever cluster the environment points
//! at — the local stand-in, or a real account with `BOOTSTRAP_ACCEPTANCE_REAL=1`. `up` with
//! rotation and sync, a team `onboard`ed and mounting, an IRSA workload `migrate`d, `doctor`
//! clean, a rotation observed, and `down` leaving nothing owned. Run it with
//! `tests/acceptance/run.sh` (which also runs [`cleanup`] on every exit).

mod acceptance_support;
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::{Value, json};

use acceptance_support::{Settings, bootstrap_json, guard, step};
use common::cli::args;

fn random_value() -> String {
    common::unique("acceptance-value")
}

fn dynamic(kube: &kube::Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", kind);
    Api::namespaced_with(
        kube.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// A long-running pod `app` in `ns` with service account `app`, mounting class `spc`.
fn app_pod(s: &Settings, ns: &str, spc: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": ns},
        "spec": {"serviceAccountName": "app",
            "containers": [{"name": "app", "image": s.image, "command": ["sleep", "86400"],
                            "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}]}],
            "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
                         "volumeAttributes": {"secretProviderClass": spc}}}]}})
}

/// Waits for pod `app` in `ns` to run and for its SecretProviderClassPodStatus to say mounted;
/// returns the object versions (id → version) and the pod's uid.
async fn mounted(kube: &kube::Client, ns: &str, spc: &str) -> (BTreeMap<String, String>, String) {
    let pods: Api<Pod> = Api::namespaced(kube.clone(), ns);
    let uid = common::eventually(&format!("pod {ns}/app to run with its mount"), 300, || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("app").await.ok()?;
            (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod.metadata.uid?)
        }
    })
    .await;
    (versions(kube, ns, spc).await, uid)
}

async fn versions(kube: &kube::Client, ns: &str, spc: &str) -> BTreeMap<String, String> {
    let api = dynamic(
        kube,
        ns,
        "SecretProviderClassPodStatus",
        "secretproviderclasspodstatuses",
    );
    let id = format!("app-{ns}-{spc}");
    common::eventually(
        &format!("SecretProviderClassPodStatus {ns}/{id} mounted"),
        120,
        || {
            let api = api.clone();
            let id = id.clone();
            async move {
                let status = api.get(&id).await.ok()?.data["status"].clone();
                (status["mounted"] == true).then_some(())?;
                Some(
                    status["objects"]
                        .as_array()?
                        .iter()
                        .map(|o| {
                            (
                                o["id"].as_str().unwrap_or("").to_string(),
                                o["version"].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect(),
                )
            }
        },
    )
    .await
}

/// On the stand-in: the mounted file `file` of pod uid `uid` equals `want` (compared, never
/// printed). Real clusters: not readable from here (`None`).
fn file_matches(s: &Settings, uid: &str, file: &str, want: &str) -> Option<bool> {
    let dir = s.state_dir.as_ref()?;
    let path = format!("{dir}/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount/{file}");
    Some(std::fs::read(path).is_ok_and(|got| got == want.as_bytes()))
}

/// The stand-in's count of Secrets Manager calls whose action ends with `suffix` (`None` on a
/// real account).
async fn secrets_calls(s: &Settings, suffix: &str) -> Option<u64> {
    s.state_dir.as_ref()?;
    let calls: Value = reqwest::get(common::cli::control("/calls"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        calls
            .as_object()?
            .iter()
            .filter(|(k, _)| k.starts_with("secretsmanager:") && k.ends_with(suffix))
            .filter_map(|(_, v)| v.as_u64())
            .sum(),
    )
}

async fn secret_reads(s: &Settings) -> Option<u64> {
    secrets_calls(s, "GetSecretValue").await
}

async fn doctor_clean(s: &Settings, ns: &str) {
    let report = tokio::task::spawn_blocking({
        let a = args(&[
            "doctor",
            "--cluster",
            &s.cluster,
            "--namespace",
            ns,
            "--output",
            "json",
            "-q",
        ]);
        move || {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            acceptance_support::bootstrap(&a)
        }
    })
    .await
    .expect("join");
    let json: Value = serde_json::from_slice(&report.stdout).expect("doctor prints JSON");
    let not_pass: Vec<&Value> = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] != "pass")
        .collect();
    assert!(
        report.status.success() && not_pass.is_empty(),
        "doctor --namespace {ns} is not clean ({:?}): {not_pass:#?}",
        report.status.code()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn life_of_a_platform_team() {
    let Some(s) = Settings::from_env() else {
        return;
    };
    if std::env::var("BOOTSTRAP_ACCEPTANCE_STEP").as_deref() == Ok("cleanup") {
        return;
    }
    let start = Instant::now();
    let kube = common::kube().await;
    let cfg = common::aws().await;
    let mode = if s.real {
        "a real account"
    } else {
        "the local stand-in"
    };
    step(
        start,
        &format!("cluster {} on {mode}, prefix {}", s.cluster, s.prefix),
    );

    let before = common::inventory::owned_inventory(&cfg, &kube, &s.cluster).await;
    if !before.is_empty() {
        assert!(
            !s.real,
            "the cluster already holds objects bootstrap owns, which the final `bootstrap down` would delete: {before:?}"
        );
        step(
            start,
            &format!("note: bootstrap already owns {before:?}; the final down deletes them"),
        );
    }
    let problems = acceptance_support::cleanup(&s, &kube, &cfg).await;
    assert!(
        problems.is_empty(),
        "leftovers of an earlier run: {problems:?}"
    );
    let calls_before = secrets_calls(&s, "").await;

    step(
        start,
        "up (rotation and sync on), then up again: nothing to change",
    );
    let demo = s.name("demo");
    let mut up = args(&[
        "up",
        "--cluster",
        &s.cluster,
        "--namespace",
        &demo,
        "--create-demo-secret",
        "--rotation",
        "--sync-secrets",
        "--output",
        "json",
        "-q",
        "--timeout",
        "15m",
    ]);
    if let Some(image) = &s.controller_image {
        up.extend(args(&["--controller", "--controller-image", image]));
    }
    let first = bootstrap_json(up.clone()).await;
    assert_eq!(first["verified"], true, "{first:#}");
    let second = bootstrap_json(up).await;
    assert_eq!(
        (
            second["changes"]["created"].as_u64(),
            second["changes"]["updated"].as_u64()
        ),
        (Some(0), Some(0)),
        "{second:#}"
    );

    platform_as_up_left_it(&kube, "up").await;

    step(start, "a team onboarded, and its pod mounting");
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let team = s.name("team");
    let (v1, v2) = (random_value(), random_value());
    let password = json!({"password": v1}).to_string();
    common::create_secret(&cfg, &s.secret("team/db"), &password).await;
    let teams = format!(
        "teams:\n  - name: {team}\n    namespace: {team}\n    serviceAccount: app\n    verify: true\n    secrets:\n      - name: {}\n        alias: db.json\n        jmesPath:\n          - path: password\n            objectAlias: db-password\n",
        s.secret("team/db")
    );
    let file = tempfile::NamedTempFile::new().expect("teams file");
    std::fs::write(file.path(), teams).expect("write teams file");
    let onboarded = bootstrap_json(args(&[
        "onboard",
        "-f",
        file.path().to_str().expect("utf8"),
        "--cluster",
        &s.cluster,
        "--output",
        "json",
        "-q",
    ]))
    .await;
    assert_eq!(onboarded["totals"]["succeeded"], 1, "{onboarded:#}");
    platform_as_up_left_it(&kube, "onboard").await;
    let spcs = dynamic(&kube, &team, "SecretProviderClass", "secretproviderclasses")
        .list(&ListParams::default())
        .await
        .expect("list SPCs");
    let team_spc = match spcs.items.as_slice() {
        [one] => one.metadata.name.clone().expect("name"),
        other => panic!(
            "onboard made {} SecretProviderClasses in {team}",
            other.len()
        ),
    };
    common::apply_all(
        &kube,
        "bootstrap-acceptance",
        &[app_pod(&s, &team, &team_spc)],
    )
    .await;
    let (team_versions, team_uid) = mounted(&kube, &team, &team_spc).await;
    assert!(
        file_matches(&s, &team_uid, "db-password", &v1).unwrap_or(true),
        "the team's pod mounts its password"
    );

    if s.controller_image.is_some() {
        step(
            start,
            "the controller up installed: a team onboards itself with one object",
        );
        team_onboards_itself(&s, &kube, &cfg).await;
    }

    step(
        start,
        "an IRSA workload, mounting, migrated to Pod Identity",
    );
    irsa_workload_migrated(&s, &kube, &cfg).await;

    step(
        start,
        "rotation and sync, as up set them, survived onboard and migrate",
    );
    platform_as_up_left_it(&kube, "migrate").await;

    step(start, "doctor is clean for every namespace of the suite");
    // (The self-onboarded team's namespace is empty by now.)
    for ns in s.namespaces().iter().take(3) {
        doctor_clean(&s, ns).await;
    }

    step(start, "a rotation: the secret changes, the mount follows");
    let reads_before = secret_reads(&s).await;
    sm.put_secret_value()
        .secret_id(s.secret("team/db"))
        .secret_string(json!({"password": v2}).to_string())
        .send()
        .await
        .expect("PutSecretValue");
    let deadline = Instant::now() + s.rotation_timeout;
    let rotated = loop {
        let now = versions(&kube, &team, &team_spc).await;
        let changed = now != team_versions;
        if changed && file_matches(&s, &team_uid, "db-password", &v2).unwrap_or(true) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    if rotated {
        step(start, "rotation observed");
    } else {
        let reads_after = secret_reads(&s).await;
        // The stand-in's kubelet shim may not re-publish volumes yet: then nothing fetched
        // the secret again, and there was nothing to observe (not a pass).
        match (reads_before, reads_after) {
            (Some(b), Some(a)) if a == b => step(
                start,
                &format!(
                    "SKIPPED rotation: in {}s nothing re-read the secret, so this stand-in does not re-publish volumes (requiresRepublish); on a real cluster this is a failure",
                    s.rotation_timeout.as_secs()
                ),
            ),
            _ => panic!(
                "the mount did not follow the rotated secret within {}s (rotation interval 1m plus kubelet's re-publish period)",
                s.rotation_timeout.as_secs()
            ),
        }
    }

    step(start, "down, and nothing owned is left");
    let problems = acceptance_support::cleanup(&s, &kube, &cfg).await;
    assert!(problems.is_empty(), "cleanup: {problems:?}");
    let after = common::inventory::owned_inventory(&cfg, &kube, &s.cluster).await;
    let plan = bootstrap_json(args(&[
        "down",
        "--cluster",
        &s.cluster,
        "--dry-run",
        "--output",
        "json",
        "-q",
    ]))
    .await;
    // What down kept says why (often: another test's hand-made association names the role).
    assert!(
        after.is_empty(),
        "bootstrap still owns {after:?} after down; down keeps: {:#}",
        plan["kept"]
    );
    assert_eq!(
        plan["deleted"],
        json!([]),
        "a second down would delete: {plan:#}"
    );
    if let (Some(b), Some(a)) = (calls_before, secrets_calls(&s, "").await) {
        step(
            start,
            &format!(
                "Secrets Manager calls during the run (the stand-in's counter): {}",
                a - b
            ),
        );
    }
    step(start, "done");
}

/// The driver still rotates (CSIDriver `requiresRepublish`, `--enable-secret-rotation`) and
/// may sync Secrets (`secretprovidersyncing-role`), as `up --rotation --sync-secrets` left it.
/// A SecretAllowance for one namespace, a TeamSecrets object in it: the controller makes a
/// role under its path with its boundary, the object turns Ready with its mount verified (the
/// team's role reads the secret through the provider, within the boundary the stand-in
/// enforces); `down` refuses to run meanwhile; the object deleted, the role is gone.
async fn team_onboards_itself(s: &Settings, kube: &kube::Client, cfg: &aws_config::SdkConfig) {
    use acceptance_support::controller;
    let ns = s.name("self");
    let account = common::account(cfg).await;
    let boundary = format!(
        "arn:aws:iam::{account}:policy/bootstrap-{}-controller-boundary",
        s.cluster
    );
    let iam = aws_sdk_iam::Client::new(cfg);
    assert!(
        iam.get_policy().policy_arn(&boundary).send().await.is_ok(),
        "up --controller made the boundary {boundary}"
    );
    let host = if s.real {
        None
    } else {
        Some(controller::start_on_host(s, kube, &boundary).await)
    };
    common::create_secret(cfg, &s.secret("self/db"), &random_value()).await;
    common::namespace(kube, &ns).await;
    common::apply_all(
        kube,
        "bootstrap-acceptance",
        &[
            json!({"apiVersion": "bootstrap.podid/v1alpha1", "kind": "SecretAllowance",
                   "metadata": {"name": s.name("allow")},
                   "spec": {"namespaces": [ns], "secrets": [s.secret("self/*")]}}),
            json!({"apiVersion": "bootstrap.podid/v1alpha1", "kind": "TeamSecrets",
                   "metadata": {"name": "app", "namespace": ns},
                   "spec": {"serviceAccount": "app", "verify": true,
                            "secrets": [{"name": s.secret("self/db"), "alias": "db"}]}}),
        ],
    )
    .await;
    let api = controller::teamsecrets(kube, &ns);
    let obj = controller::wait_ready(&api, "app", 300, host.as_ref()).await;
    let verified = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Verified"))
        .expect("Verified condition");
    assert_eq!(verified["status"], "True", "{obj:#}");
    let role_arn = obj["status"]["roleArn"].as_str().expect("roleArn");
    assert!(
        role_arn.contains(":role/bootstrap-controller/"),
        "{role_arn}"
    );
    let role_name = role_arn.rsplit('/').next().expect("role name");
    let role = common::role(&iam, role_name)
        .await
        .expect("the team's role");
    assert_eq!(
        role.permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn()),
        Some(boundary.as_str()),
        "the role the controller made carries the boundary"
    );
    if let Some(host) = &host {
        controller::foreign_pod_refused(host, &ns).await;
    }
    controller::down_refuses(s, &ns, "app");
    api.delete("app", &Default::default())
        .await
        .expect("delete TeamSecrets");
    assert!(
        controller::wait_gone(&api, "app", 120).await,
        "the finalizer ran; controller log:\n{}",
        host.as_ref().map(|h| h.tail()).unwrap_or_default()
    );
    assert!(
        common::role(&iam, role_name).await.is_none(),
        "the team's role went with its object"
    );
    controller::allowances(kube)
        .delete(&s.name("allow"), &Default::default())
        .await
        .expect("delete the allowance");
}

async fn platform_as_up_left_it(kube: &kube::Client, after: &str) {
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::rbac::v1::ClusterRole;
    use k8s_openapi::api::storage::v1::CSIDriver;
    let driver = Api::<CSIDriver>::all(kube.clone())
        .get("secrets-store.csi.k8s.io")
        .await
        .expect("the CSIDriver");
    assert_eq!(
        driver.spec.requires_republish,
        Some(true),
        "requiresRepublish is off after {after} (up --rotation turned it on)"
    );
    let ds = Api::<DaemonSet>::namespaced(kube.clone(), "kube-system")
        .get("secrets-store-csi-driver")
        .await
        .expect("the driver's DaemonSet");
    let args: Vec<String> = ds
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| {
            p.containers
                .into_iter()
                .flat_map(|c| c.args.unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        args.iter()
            .any(|a| a.starts_with("--enable-secret-rotation")),
        "the driver does not rotate after {after} (up --rotation turned it on): {args:?}"
    );
    assert!(
        Api::<ClusterRole>::all(kube.clone())
            .get_opt("secretprovidersyncing-role")
            .await
            .expect("get ClusterRole")
            .is_some(),
        "the sync role is gone after {after} (up --sync-secrets made it)"
    );
}

async fn irsa_workload_migrated(s: &Settings, kube: &kube::Client, cfg: &aws_config::SdkConfig) {
    let ns = s.name("irsa");
    let value = random_value();
    let arn = common::create_secret(cfg, &s.secret("irsa/token"), &value).await;
    let account = common::account(cfg).await;
    let issuer = common::describe_cluster(cfg, &s.cluster)
        .await
        .identity
        .and_then(|i| i.oidc)
        .and_then(|o| o.issuer);
    let issuer = match (issuer, s.real) {
        (Some(i), _) => i.trim_start_matches("https://").to_string(),
        (None, false) => "oidc.eks.us-west-2.amazonaws.com/id/ACCEPTANCE".to_string(),
        (None, true) => panic!(
            "cluster {} has no OIDC issuer: IRSA cannot work there",
            s.cluster
        ),
    };
    let provider = format!("arn:aws:iam::{account}:oidc-provider/{issuer}");
    let iam = aws_sdk_iam::Client::new(cfg);
    if s.real {
        iam.get_open_id_connect_provider().open_id_connect_provider_arn(&provider).send().await.unwrap_or_else(|e| {
            panic!("IAM has no OIDC provider {provider} ({e}); register it first: eksctl utils associate-iam-oidc-provider --cluster {} --approve", s.cluster)
        });
    }
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{issuer}:sub"): format!("system:serviceaccount:{ns}:app"), format!("{issuer}:aud"): "sts.amazonaws.com"}}}]});
    let read = common::fixture::read_statements(&[arn], &[]);
    let role_arn =
        common::fixture::role_trusting(&iam, &s.name("irsa"), &trust.to_string(), read).await;
    let objects = format!(
        "- objectName: \"{}\"\n  objectType: secretsmanager\n  objectAlias: token\n",
        s.secret("irsa/token")
    );
    let objs = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": ns, "annotations": {"eks.amazonaws.com/role-arn": role_arn}}}),
        json!({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass", "metadata": {"name": "irsa", "namespace": ns},
               "spec": {"provider": "aws", "parameters": {"objects": objects, "region": cfg.region().map(|r| r.to_string()).unwrap_or_default()}}}),
        app_pod(s, &ns, "irsa"),
    ];
    // A new IAM role takes seconds to be usable on a real account; the pod's mount retries.
    common::apply_all(kube, "bootstrap-acceptance", &objs).await;
    let (_, uid) = mounted(kube, &ns, "irsa").await;
    assert!(
        file_matches(s, &uid, "token", &value).unwrap_or(true),
        "the IRSA workload mounts before migrating"
    );

    let migrated = bootstrap_json(args(&[
        "migrate",
        "--cluster",
        &s.cluster,
        "--namespace",
        &ns,
        "--approve",
        "--output",
        "json",
        "-q",
    ]))
    .await;
    assert_eq!(
        migrated["workloads"][0]["status"], "migrated",
        "{migrated:#}"
    );
    let spc = dynamic(kube, &ns, "SecretProviderClass", "secretproviderclasses")
        .get("irsa")
        .await
        .expect("SPC");
    assert_eq!(spc.data["spec"]["parameters"]["usePodIdentity"], "true");
    let listed = common::associations(cfg, &s.cluster, &ns, Some("app")).await;
    assert_eq!(listed.len(), 1, "migrate made the association");
}

/// What `tests/acceptance/run.sh` runs on every exit: `down`, and the suite's own objects.
#[tokio::test(flavor = "multi_thread")]
async fn cleanup() {
    let Some(s) = Settings::from_env() else {
        return;
    };
    if std::env::var("BOOTSTRAP_ACCEPTANCE_STEP").as_deref() != Ok("cleanup") {
        return;
    }
    let problems =
        acceptance_support::cleanup(&s, &common::kube().await, &common::aws().await).await;
    assert!(problems.is_empty(), "cleanup left: {problems:?}");
}

#[test]
fn the_guard_refuses_a_cluster_outside_the_prefix() {
    assert!(guard("acc-east", "acc").is_ok());
    assert!(guard("acc", "acc").is_ok());
    for (cluster, prefix) in [
        ("prod-east", "acc"),
        ("xacc", "acc"),
        ("acc", "ACC"),
        ("acc", ""),
        ("a", "a/b"),
        ("-x", "-x"),
    ] {
        assert!(guard(cluster, prefix).is_err(), "{cluster} {prefix}");
    }
    let long = "a".repeat(acceptance_support::MAX_PREFIX + 1);
    assert!(guard(&long, &long).is_err());
}

/// The script refuses before it builds, connects or deletes anything.
#[test]
fn the_script_refuses_a_cluster_outside_the_prefix() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/acceptance/run.sh");
    for (cluster, prefix, says) in [
        ("prod-east", "acc", "does not start with the prefix"),
        ("prod-east", "", "BOOTSTRAP_ACCEPTANCE_PREFIX"),
        ("", "acc", "BOOTSTRAP_ACCEPTANCE_CLUSTER"),
        ("Acc-x", "Acc", "prefix"),
    ] {
        let out = std::process::Command::new("bash")
            .arg(script)
            .env("BOOTSTRAP_ACCEPTANCE_REAL", "1")
            .env("BOOTSTRAP_ACCEPTANCE_CLUSTER", cluster)
            .env("BOOTSTRAP_ACCEPTANCE_PREFIX", prefix)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("bash runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cluster} {prefix}: {stderr}");
        assert!(stderr.contains(says), "{cluster} {prefix}: {stderr}");
        // cargo is not on this PATH: had the script gone on to build, it would have failed
        // another way.
        assert!(
            !stderr.contains("[acceptance] building"),
            "refused before anything ran: {stderr}"
        );
    }
}
