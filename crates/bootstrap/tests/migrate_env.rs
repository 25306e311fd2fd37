//! `bootstrap migrate` against the local EKS stand-in: a working IRSA workload (annotated
//! service account, an SPC without usePodIdentity, a pod mounting it) becomes a Pod Identity
//! one that still mounts, the old trust statement kept; the plan alone writes nothing; a second
//! run changes nothing; and a workload whose Pod Identity mount fails is rolled back to IRSA.

mod common;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use common::cli::{control, json_of, run};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn writes_since_reset(http: &reqwest::Client) -> Vec<String> {
    let calls: Value = http
        .get(control("/calls"))
        .send()
        .await
        .expect("calls")
        .json()
        .await
        .expect("json");
    calls
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| {
                    let a = k.split(':').nth(1).unwrap_or(k);
                    ["Create", "Put", "Update", "Delete", "Tag"]
                        .iter()
                        .any(|p| a.starts_with(p))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn migrate(cluster: &str, ns: &str, approve: bool) -> Vec<String> {
    let mut a: Vec<String> = [
        "migrate",
        "--cluster",
        cluster,
        "--namespace",
        ns,
        "--output",
        "json",
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if approve {
        a.push("--approve".into());
    }
    a
}

/// An IRSA workload in its own namespace: a role trusted through OIDC that reads `secret`, an
/// annotated service account, an SPC without usePodIdentity, and a pod mounting it.
async fn irsa_workload(prefix: &str) -> Option<(common::fixture::Fixture, String, String)> {
    let cfg = common::aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let tag = common::unique(prefix);
    let value = common::unique("v");
    let arn = sm
        .create_secret()
        .name(format!("{tag}/token"))
        .secret_string(&value)
        .send()
        .await
        .expect("secret")
        .arn
        .expect("arn");
    let fx = common::fixture::Fixture::new(prefix, &[arn], &[], true).await?;
    // The role's trust is IRSA's: an OIDC web identity statement only.
    let account = fx
        .role_arn
        .split(':')
        .nth(4)
        .unwrap_or_default()
        .to_string();
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
    let objects = format!(
        "- objectName: \"{tag}/token\"\n  objectType: secretsmanager\n  objectAlias: token\n"
    );
    fx.pod("reader", json!({"objects": objects})).await;
    let (_, files) = fx.mounted("reader").await;
    assert!(
        files["token"].0 == value.as_bytes(),
        "the IRSA workload works before migrating"
    );
    Some((fx, tag, value))
}

fn spc_api(kube: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass");
    Api::namespaced_with(
        kube.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasses"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_irsa_workload_moves_to_pod_identity_and_still_mounts() {
    let Some(env) = common::env() else { return };
    let _serial = SERIAL.lock().await;
    let Some((fx, _tag, _)) = irsa_workload("mig").await else {
        return;
    };
    let http = reqwest::Client::new();

    // The plan alone writes nothing.
    http.post(control("/calls/reset"))
        .send()
        .await
        .expect("reset");
    let out = run(migrate(&env.cluster, &fx.ns, false)).await;
    let plan = json_of(&out);
    assert!(out.status.success(), "{plan:#}");
    assert_eq!(plan["workloads"][0]["status"], "planned", "{plan:#}");
    assert!(plan.to_string().contains("usePodIdentity"), "{plan:#}");
    assert!(
        writes_since_reset(&http).await.is_empty(),
        "the plan wrote something"
    );

    let out = run(migrate(&env.cluster, &fx.ns, true)).await;
    let done = json_of(&out);
    assert!(
        out.status.success(),
        "{done:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w = &done["workloads"][0];
    assert_eq!(w["status"], "migrated", "{done:#}");
    assert!(
        w["verified"].to_string().contains("token@"),
        "the Pod Identity mount was checked: {w}"
    );

    // The old trust statement is kept, the Pod Identity one added.
    let cfg = common::aws().await;
    let role = aws_sdk_iam::Client::new(&cfg)
        .get_role()
        .role_name(&fx.ns)
        .send()
        .await
        .expect("role");
    let trust = bootstrap::aws::policy::decode_document(
        role.role()
            .and_then(|r| r.assume_role_policy_document())
            .unwrap_or(""),
    )
    .expect("trust");
    let statements = trust["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 2, "{trust}");
    assert!(trust.to_string().contains("AssumeRoleWithWebIdentity"));
    assert!(
        trust
            .to_string()
            .contains("aws:RequestTag/kubernetes-namespace")
    );
    let spc = spc_api(&fx.kube, &fx.ns).get("reader").await.expect("spc");
    assert_eq!(spc.data["spec"]["parameters"]["usePodIdentity"], "true");
    assert!(
        spc.data["spec"]["parameters"]["objects"]
            .as_str()
            .is_some_and(|o| o.contains("token")),
        "other fields untouched"
    );

    // A second run changes nothing.
    http.post(control("/calls/reset"))
        .send()
        .await
        .expect("reset");
    let out = run(migrate(&env.cluster, &fx.ns, true)).await;
    let again = json_of(&out);
    assert!(out.status.success(), "{again:#}");
    assert_eq!(
        again["workloads"][0]["status"], "already-migrated",
        "{again:#}"
    );
    let wrote = writes_since_reset(&http).await;
    assert!(wrote.is_empty(), "the second run wrote {wrote:?}");
    common::delete_namespace(&fx.kube, &fx.ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workload_whose_pod_identity_mount_fails_is_rolled_back_to_irsa() {
    let Some(env) = common::env() else { return };
    let _serial = SERIAL.lock().await;
    let Some((fx, _tag, _)) = irsa_workload("rb").await else {
        return;
    };
    let http = reqwest::Client::new();
    let cfg = common::aws().await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    let before = iam.get_role().role_name(&fx.ns).send().await.expect("role");
    let before = bootstrap::aws::policy::decode_document(
        before
            .role()
            .and_then(|r| r.assume_role_policy_document())
            .unwrap_or(""),
    )
    .expect("trust");
    // Pod Identity cannot work: eks-auth refuses every exchange.
    http.post(control("/faults"))
        .json(&json!({"operation": "eks-auth:AssumeRoleForPodIdentity", "kind": "error", "count": -1, "status": 400, "code": "AccessDeniedException"}))
        .send()
        .await
        .expect("fault");
    let out = run(migrate(&env.cluster, &fx.ns, true)).await;
    let _ = http.delete(control("/faults")).send().await;
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(
        report["workloads"][0]["status"], "rolled-back",
        "{report:#}"
    );
    let after = iam.get_role().role_name(&fx.ns).send().await.expect("role");
    let after = bootstrap::aws::policy::decode_document(
        after
            .role()
            .and_then(|r| r.assume_role_policy_document())
            .unwrap_or(""),
    )
    .expect("trust");
    assert!(
        bootstrap::aws::policy::same_policy(&before, &after),
        "trust restored: {after}"
    );
    let spc = spc_api(&fx.kube, &fx.ns).get("reader").await.expect("spc");
    assert!(
        spc.data["spec"]["parameters"]
            .get("usePodIdentity")
            .is_none_or(Value::is_null),
        "SPC restored: {}",
        spc.data
    );
    let left = aws_sdk_eks::Client::new(&cfg)
        .list_pod_identity_associations()
        .cluster_name(&env.cluster)
        .namespace(&fx.ns)
        .send()
        .await
        .expect("list");
    assert!(
        left.associations().is_empty(),
        "the association was removed"
    );
    common::delete_namespace(&fx.kube, &fx.ns).await;
}
