//! `bootstrap migrate` against the local EKS stand-in: a working IRSA workload (annotated
//! service account, an SPC without usePodIdentity, a pod mounting it) becomes a Pod Identity
//! one that still mounts, the old trust statement kept; the plan alone writes nothing; a second
//! run changes nothing; a workload whose Pod Identity mount fails is rolled back to IRSA; a
//! Deployment scaled to zero and a CronJob between runs are found and migrated; `--remove-irsa`
//! keeps another cluster's and a CI provider's OIDC trust and keeps this cluster's while another
//! annotated service account uses the role; an annotated service account with a class no
//! workload mounts is listed with the reason. Every test cleans up through a guard, on failure
//! too.

mod common;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;
use serde_json::{Value, json};

use common::cli::{faults, json_args, json_of, json_ok, run, writes_during};
use common::fixture::Fixture;

fn migrate(cluster: &str, ns: &str, approve: bool) -> Vec<String> {
    let mut a = json_args("migrate", cluster, &["--namespace", ns]);
    if approve {
        a.push("--approve".into());
    }
    a
}

/// A serial test's IRSA workload. The fixture's guard (its namespace and role) runs before the
/// session's (the secret) and the lock's release.
struct IrsaWorkload {
    fx: Fixture,
    _serial: common::Session,
}

/// The SPC objects of secret `TAG/token`, as file `token`.
fn token_objects(tag: &str) -> String {
    format!("- objectName: \"{tag}/token\"\n  objectType: secretsmanager\n  objectAlias: token\n")
}

/// An IRSA workload in its own namespace, for a test holding the binary's lock: a role trusted
/// through OIDC that reads a secret, an annotated service account, an SPC without
/// usePodIdentity, and a pod mounting it. `None` without the environment.
async fn irsa_workload(prefix: &str) -> Option<IrsaWorkload> {
    let mut serial = common::Session::serial(prefix).await?;
    let (cfg, tag) = (serial.cfg.clone(), serial.tag.clone());
    let value = common::unique("v");
    let name = format!("{tag}/token");
    let arn = serial.cleanup.secret(&cfg, &name, &value).await;
    let fx = Fixture::new(prefix, &[arn], &[], true).await?;
    // The role's trust is IRSA's: an OIDC web identity statement only.
    let account = fx.account();
    let oidc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{account}:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/TEST")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"oidc.eks.us-west-2.amazonaws.com/id/TEST:sub": format!("system:serviceaccount:{}:app", fx.ns)}}}]});
    aws_sdk_iam::Client::new(&cfg)
        .update_assume_role_policy()
        .role_name(&fx.ns)
        .policy_document(oidc.to_string())
        .send()
        .await
        .expect("OIDC trust");
    fx.pod("reader", json!({"objects": token_objects(&tag)}))
        .await;
    let (_, files) = fx.mounted("reader").await;
    assert!(
        files["token"].0 == value.as_bytes(),
        "the IRSA workload works before migrating"
    );
    Some(IrsaWorkload {
        fx,
        _serial: serial,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_irsa_workload_moves_to_pod_identity_and_still_mounts() {
    let Some(workload) = irsa_workload("mig").await else {
        return;
    };
    let fx = &workload.fx;
    let cluster = &fx.env.cluster;

    // The plan alone writes nothing.
    let (out, wrote) = writes_during(run(migrate(cluster, &fx.ns, false))).await;
    let plan = json_ok(&out);
    assert_eq!(plan["workloads"][0]["status"], "planned", "{plan:#}");
    assert!(plan.to_string().contains("usePodIdentity"), "{plan:#}");
    assert!(wrote.is_empty(), "the plan wrote something");

    let out = run(migrate(cluster, &fx.ns, true)).await;
    let done = json_ok(&out);
    let w = &done["workloads"][0];
    assert_eq!(w["status"], "migrated", "{done:#}");
    assert!(
        w["verified"].to_string().contains("token@"),
        "the Pod Identity mount was checked: {w}"
    );

    // The old trust statement is kept, the Pod Identity one added.
    let trust = trust_of(&aws_sdk_iam::Client::new(&fx.cfg), &fx.ns).await;
    let statements = trust["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 2, "{trust}");
    assert!(trust.to_string().contains("AssumeRoleWithWebIdentity"));
    assert!(
        trust
            .to_string()
            .contains("aws:RequestTag/kubernetes-namespace")
    );
    let spc = common::spc_api(&fx.kube, &fx.ns)
        .get("reader")
        .await
        .expect("spc");
    assert_eq!(spc.data["spec"]["parameters"]["usePodIdentity"], "true");
    assert!(
        spc.data["spec"]["parameters"]["objects"]
            .as_str()
            .is_some_and(|o| o.contains("token")),
        "other fields untouched"
    );

    // A second run changes nothing.
    let (out, wrote) = writes_during(run(migrate(cluster, &fx.ns, true))).await;
    let again = json_ok(&out);
    assert_eq!(
        again["workloads"][0]["status"], "already-migrated",
        "{again:#}"
    );
    assert!(wrote.is_empty(), "the second run wrote {wrote:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workload_whose_pod_identity_mount_fails_is_rolled_back_to_irsa() {
    let Some(workload) = irsa_workload("rb").await else {
        return;
    };
    let fx = &workload.fx;
    let (cluster, cfg) = (&fx.env.cluster, &fx.cfg);
    let iam = aws_sdk_iam::Client::new(cfg);
    let before = trust_of(&iam, &fx.ns).await;
    // Pod Identity cannot work: eks-auth refuses every exchange.
    let refusal = json!({"operation": "eks-auth:AssumeRoleForPodIdentity", "kind": "error", "count": -1, "status": 400, "code": "AccessDeniedException"});
    let http = reqwest::Client::new();
    faults(&http, Some(refusal)).await;
    let out = run(migrate(cluster, &fx.ns, true)).await;
    faults(&http, None).await;
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(
        report["workloads"][0]["status"], "rolled-back",
        "{report:#}"
    );
    let after = trust_of(&iam, &fx.ns).await;
    assert!(
        bootstrap::aws::policy::same_policy(&before, &after),
        "trust restored: {after}"
    );
    let spc = common::spc_api(&fx.kube, &fx.ns)
        .get("reader")
        .await
        .expect("spc");
    assert!(
        spc.data["spec"]["parameters"]
            .get("usePodIdentity")
            .is_none_or(Value::is_null),
        "SPC restored: {}",
        spc.data
    );
    let left = common::associations(cfg, cluster, &fx.ns, None).await;
    assert!(left.is_empty(), "the association was removed");
}

/// `migrate --approve --remove-irsa` of namespace `ns`: its report, once it passed and its
/// first workload was migrated.
async fn migrated_removing_irsa(cluster: &str, ns: &str) -> Value {
    let out = run(with_remove_irsa(migrate(cluster, ns, true))).await;
    let report = json_ok(&out);
    assert_eq!(report["workloads"][0]["status"], "migrated", "{report:#}");
    report
}

fn with_remove_irsa(mut args: Vec<String>) -> Vec<String> {
    args.push("--remove-irsa".into());
    args
}

async fn trust_of(iam: &aws_sdk_iam::Client, role: &str) -> Value {
    let got = iam.get_role().role_name(role).send().await.expect("role");
    bootstrap::aws::policy::decode_document(
        got.role()
            .and_then(|r| r.assume_role_policy_document())
            .unwrap_or(""),
    )
    .expect("trust")
}

fn oidc_statement(provider: &str, op: &str, sub_key: &str, subs: Value) -> Value {
    json!({"Effect": "Allow", "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {op: {sub_key: subs}}})
}

/// A pod template that mounts SecretProviderClass `spc` with service account `app`.
fn template(spc: &str) -> Value {
    json!({"spec": {"serviceAccountName": "app",
        "containers": [{"name": "app", "image": "public.ecr.aws/docker/library/busybox:1.37",
            "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}]}],
        "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
            "volumeAttributes": {"secretProviderClass": spc}}}]}})
}

fn annotation(sa: &ServiceAccount) -> Option<String> {
    sa.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("eks.amazonaws.com/role-arn"))
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn workloads_without_pods_migrate_and_remove_irsa_takes_only_this_clusters_last_trust() {
    let mut s = common::session!(serial, "shr");
    let (env, tag, _, _, made) = s.parts();
    let cfg = common::aws().await;
    let secret = made
        .secret(&cfg, &format!("{tag}/token"), &common::unique("v"))
        .await;
    // Two namespaces whose service accounts share one IRSA role; no pod runs in either.
    let Some(fx) = Fixture::new("shr", &[secret], &[], true).await else {
        return;
    };
    let ns2 = common::unique("shr2");
    made.namespaces.push(ns2.clone());
    common::namespace(&fx.kube, &ns2).await;
    let objects = token_objects(tag);
    let pod_spec = template("reader")["spec"].clone();
    let mut job_spec = pod_spec.clone();
    job_spec["restartPolicy"] = json!("Never");
    let spc = |ns: &str| {
        json!({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": {"name": "reader", "namespace": ns},
            "spec": {"provider": "aws", "parameters": {"objects": objects}}})
    };
    common::apply_all(
        &fx.kube,
        "bootstrap-e2e",
        &[
            spc(&fx.ns),
            spc(&ns2),
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "app", "namespace": ns2,
                    "annotations": {"eks.amazonaws.com/role-arn": fx.role_arn}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": fx.ns},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}}}),
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "nightly", "namespace": ns2},
                "spec": {"schedule": "0 0 1 1 *", "suspend": true,
                    "jobTemplate": {"spec": {"template": {"spec": job_spec}}}}}),
        ],
    )
    .await;

    // The role trusts this cluster's issuer for both service accounts, another cluster's
    // issuer and GitHub Actions' OIDC provider.
    let described = common::describe_cluster(&cfg, &env.cluster).await;
    let issuer = described
        .identity()
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .expect("the stand-in's cluster has an OIDC issuer")
        .trim_start_matches("https://")
        .to_string();
    let account = fx.account();
    let provider = |host: &str| format!("arn:aws:iam::{account}:oidc-provider/{host}");
    let sub = |ns: &str| format!("system:serviceaccount:{ns}:app");
    let this_cluster = oidc_statement(
        &provider(&issuer),
        "StringEquals",
        &format!("{issuer}:sub"),
        json!([sub(&fx.ns), sub(&ns2)]),
    );
    let other_cluster = oidc_statement(
        &provider("oidc.eks.eu-west-1.amazonaws.com/id/OTHERCLUSTER"),
        "StringEquals",
        "oidc.eks.eu-west-1.amazonaws.com/id/OTHERCLUSTER:sub",
        json!(sub(&fx.ns)),
    );
    let github = oidc_statement(
        &provider("token.actions.githubusercontent.com"),
        "StringLike",
        "token.actions.githubusercontent.com:sub",
        json!("repo:example/deploy:*"),
    );
    let iam = aws_sdk_iam::Client::new(&cfg);
    let trust = json!({"Version": "2012-10-17",
        "Statement": [this_cluster.clone(), other_cluster.clone(), github.clone()]});
    iam.update_assume_role_policy()
        .role_name(&fx.ns)
        .policy_document(trust.to_string())
        .send()
        .await
        .expect("trust");

    // The first namespace: its scaled-to-zero Deployment is found and migrated; this
    // cluster's OIDC statement stays (the other namespace's service account still uses it).
    // The plan without --approve lists the removal, and journals what the approved run does.
    let logs = tempfile::tempdir().expect("tempdir");
    let (dry_log, real_log) = (logs.path().join("dry.log"), logs.path().join("real.log"));
    let out = common::cli::run_logged(
        with_remove_irsa(migrate(&env.cluster, &fx.ns, false)),
        Some(dry_log.clone()),
    )
    .await;
    let plan = json_of(&out);
    assert_eq!(plan["workloads"][0]["status"], "planned", "{plan:#}");
    assert!(
        plan["workloads"][0]["changes"]
            .to_string()
            .contains("removes the eks.amazonaws.com/role-arn annotation"),
        "the plan lists --remove-irsa's changes: {plan:#}"
    );
    let out = common::cli::run_logged(
        with_remove_irsa(migrate(&env.cluster, &fx.ns, true)),
        Some(real_log.clone()),
    )
    .await;
    assert_eq!(
        common::cli::journal(&dry_log),
        common::cli::journal(&real_log),
        "migrate: the plan's journal is the approved run's"
    );
    assert_eq!(plan["changes"], json_of(&out)["changes"], "same counts");
    let first = json_ok(&out);
    assert_eq!(first["workloads"][0]["status"], "migrated", "{first:#}");
    let w = &first["workloads"][0];
    assert!(w["foundIn"].to_string().contains("Deployment/web"), "{w}");
    assert!(w["verified"].to_string().contains("token@"), "{w}");
    assert!(
        w.to_string().contains(&format!("{ns2}/app")),
        "the plan names who still uses the role: {w}"
    );
    let after_first = trust_of(&iam, &fx.ns).await;
    let statements = after_first["Statement"].as_array().expect("statements");
    for kept in [&this_cluster, &other_cluster, &github] {
        assert!(statements.contains(kept), "kept {kept}: {after_first:#}");
    }
    let sas = |ns: &str| Api::<ServiceAccount>::namespaced(fx.kube.clone(), ns);
    assert_eq!(annotation(&sas(&fx.ns).get("app").await.expect("sa")), None);
    assert_eq!(
        annotation(&sas(&ns2).get("app").await.expect("sa")).as_deref(),
        Some(fx.role_arn.as_str())
    );

    // The second, the last user: its CronJob is found and migrated, and this cluster's
    // statement goes (both subs: the first one moved to Pod Identity on this role); the other
    // cluster's and GitHub's statements stay exactly as they were.
    let second = migrated_removing_irsa(&env.cluster, &ns2).await;
    let w = &second["workloads"][0];
    assert!(w["foundIn"].to_string().contains("CronJob/nightly"), "{w}");
    let after = trust_of(&iam, &fx.ns).await;
    let statements = after["Statement"].as_array().expect("statements");
    assert!(!statements.contains(&this_cluster), "{after:#}");
    assert!(
        !after.to_string().contains(&format!("{issuer}:sub")),
        "{after:#}"
    );
    assert!(statements.contains(&other_cluster), "{after:#}");
    assert!(statements.contains(&github), "{after:#}");
    let pod_identity = statements
        .iter()
        .filter(|s| s["Principal"]["Service"] == "pods.eks.amazonaws.com")
        .count();
    assert_eq!(
        pod_identity, 2,
        "one Pod Identity statement per service account: {after:#}"
    );
    assert!(
        after
            .to_string()
            .contains(&described.arn().unwrap_or("?").to_string()),
        "the Pod Identity statements pin the cluster's ARN: {after:#}"
    );
    assert_eq!(annotation(&sas(&ns2).get("app").await.expect("sa")), None);
    for ns in [&fx.ns, &ns2] {
        let spc = common::spc_api(&fx.kube, ns)
            .get("reader")
            .await
            .expect("spc");
        assert_eq!(
            spc.data["spec"]["parameters"]["usePodIdentity"], "true",
            "{ns}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_annotated_account_whose_class_no_workload_mounts_is_listed_with_the_reason() {
    let mut s = common::session!(serial, "t");
    let (env, ..) = s.parts();
    let Some(fx) = Fixture::new("unt", &[], &[], true).await else {
        return;
    };
    common::apply_all(
        &fx.kube,
        "bootstrap-e2e",
        &[json!({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": {"name": "orphan", "namespace": fx.ns},
            "spec": {"provider": "aws", "parameters": {"objects": "- objectName: x\n  objectType: secretsmanager\n"}}})],
    )
    .await;
    let out = run(migrate(&env.cluster, &fx.ns, false)).await;
    let report = json_ok(&out);
    assert_eq!(report["workloads"], json!([]), "{report:#}");
    let untied = &report["untied"][0];
    assert_eq!(untied["serviceAccount"], "app", "{report:#}");
    assert_eq!(untied["spcs"], json!(["orphan"]), "{report:#}");
    assert_eq!(untied["roleArn"], fx.role_arn.as_str(), "{report:#}");
    assert!(
        untied["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no pod, Deployment") && r.contains("orphan")),
        "{report:#}"
    );
    let text = run(common::cli::args(&[
        "migrate",
        "--cluster",
        &env.cluster,
        "--namespace",
        &fx.ns,
    ]))
    .await;
    let shown = String::from_utf8_lossy(&text.stdout);
    assert!(
        shown.contains("not tied to a workload") && !shown.contains("nothing to migrate"),
        "{shown}"
    );
}
