//! `bootstrap down` against the local EKS stand-in: `up` then `down` leaves nothing bootstrap
//! owns (IAM, EKS add-ons and associations, Secrets Manager, the cluster) while what it
//! adopted or never made survives; `up` killed mid-run is cleaned up too; a second `down` is
//! a no-op; and each command executes exactly the operations its dry run printed.

mod common;

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use common::cli::{
    args, journal, json_args, json_of, killed_when, ok, run_logged as run, teams_file, up_args,
};
use common::inventory::{foreign_agent_addon, owned_inventory, owned_workloads};

const AGENT: &str = "eks-pod-identity-agent";

/// The write operations a dry run's JSON report plans (every `calls` line but waits).
fn planned_writes(report: &Value) -> Vec<String> {
    let mut lines: Vec<String> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| {
            s["detail"]["changes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|c| c["calls"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_str().map(str::to_string))
        .filter(|c| !c.starts_with("wait:"))
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn up_then_down_leaves_nothing_owned_and_everything_else() {
    let mut s = common::session!(serial, "dn");
    let (env, tag, cfg, kube, cleanup) = s.parts();
    let cluster = env.cluster.clone();
    let eks = aws_sdk_eks::Client::new(cfg);
    let iam = aws_sdk_iam::Client::new(cfg);
    let ns = format!("{tag}-app");
    let foreign_ns = format!("{tag}-theirs");
    let unrelated = format!("{tag}-unrelated");
    let lookalike = format!("bootstrap-{cluster}-{tag}-lookalike");
    // Removed when the test ends, pass or fail.
    cleanup.namespaces = vec![ns.clone(), foreign_ns.clone()];
    cleanup.roles = vec![unrelated.clone(), lookalike.clone()];

    // What exists before, and must survive: the agent add-on someone else installed, an
    // unrelated role, a role whose name looks like ours, a foreign SPC elsewhere.
    foreign_agent_addon(&eks, &cluster).await;
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    .to_string();
    for name in [&unrelated, &lookalike] {
        iam.create_role()
            .role_name(name)
            .assume_role_policy_document(&trust)
            .send()
            .await
            .expect("create a role bootstrap does not own");
    }

    // up, after its dry run: the same operations.
    let up = |dry: bool| {
        let json = ["--output", "json", "--timeout", "4m"];
        let dry_json = ["--output", "json", "--timeout", "4m", "--dry-run"];
        up_args(&cluster, Some(&ns), if dry { &dry_json } else { &json })
    };
    let dry = run(up(true), None).await;
    ok(&dry, "up --dry-run");
    let planned = planned_writes(&json_of(&dry));
    let dir = tempfile::tempdir().expect("tempdir");
    let up_log = dir.path().join("up.ops");
    let out = run(up(false), Some(up_log.clone())).await;
    ok(&out, "up");
    assert_eq!(json_of(&out)["verified"], true);
    assert_eq!(
        journal(&up_log),
        planned,
        "up executed exactly what its dry run printed"
    );
    let agent = json_of(&out)["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == "agent-addon")
        .cloned()
        .expect("agent step");
    assert_eq!(agent["detail"]["changes"][0]["action"], "adopt", "{agent}");

    // Created after up: a foreign SPC in another namespace, a foreign object in ours.
    common::namespace(kube, &foreign_ns).await;
    let spc = json!({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
        "metadata": {"name": "theirs", "namespace": foreign_ns},
        "spec": {"provider": "aws", "parameters": {"objects": "- objectName: x\n  objectType: secretsmanager\n"}}});
    common::spc_api(kube, &foreign_ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(spc).expect("spc"),
        )
        .await
        .expect("create the foreign SPC");
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(kube.clone(), &ns);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "app-config"}, "data": {"k": "v"}}))
            .expect("cm"),
    )
    .await
    .expect("create a foreign ConfigMap in bootstrap's namespace");

    // down: dry run, then the real one executes exactly that.
    let down = |dry: bool| {
        let mut a = json_args("down", &cluster, &["--yes", "--timeout", "4m"]);
        if dry {
            a.push("--dry-run".into());
        }
        a
    };
    let dry = run(down(true), None).await;
    ok(&dry, "down --dry-run");
    let planned = planned_writes(&json_of(&dry));
    assert!(
        planned.iter().any(|l| l.starts_with("iam:DeleteRole")),
        "{planned:?}"
    );
    let down_log = dir.path().join("down.ops");
    let out = run(down(false), Some(down_log.clone())).await;
    ok(&out, "down");
    let report = json_of(&out);
    assert_eq!(
        journal(&down_log),
        planned,
        "down executed exactly what its dry run printed"
    );
    let kept = report["kept"].to_string();
    assert!(
        kept.contains(&format!("Namespace/{ns}")) && kept.contains("ConfigMap/app-config"),
        "{kept}"
    );
    assert!(kept.contains(&format!("{foreign_ns}/theirs")), "{kept}");
    assert!(kept.contains(AGENT), "{kept}");

    // Nothing owned is left but what the foreign objects keep: our namespace (with their
    // ConfigMap) and the driver whose CRDs their SPC needs.
    let left = owned_inventory(cfg, kube, &cluster).await;
    let expected_left = |item: &String| {
        item == &format!("Namespace/{ns}")
            || item.starts_with("CustomResourceDefinition/")
            || item.contains("secrets-store-csi-driver")
            || item.contains("secretprovider")
            || item.starts_with("CSIDriver/")
    };
    let unexpected: Vec<&String> = left.iter().filter(|i| !expected_left(i)).collect();
    assert!(
        unexpected.is_empty(),
        "owned resources left after down: {unexpected:?}"
    );
    for name in [&unrelated, &lookalike] {
        assert!(
            common::role(&iam, name).await.is_some(),
            "the unrelated role {name} survives"
        );
    }
    let agent = eks
        .describe_addon()
        .cluster_name(&cluster)
        .addon_name(AGENT)
        .send()
        .await;
    assert!(agent.is_ok(), "the adopted agent add-on survives");
    common::spc_api(kube, &foreign_ns)
        .get("theirs")
        .await
        .expect("the foreign SPC survives");
    cms.get("app-config")
        .await
        .expect("the foreign ConfigMap survives");

    // A second down changes nothing.
    let out = run(down(false), None).await;
    ok(&out, "second down");
    assert_eq!(
        json_of(&out)["changes"]["deleted"],
        0,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Cleanup: without the foreign SPC, --force removes the namespace and the driver too.
    common::spc_api(kube, &foreign_ns)
        .delete("theirs", &Default::default())
        .await
        .expect("delete SPC");
    common::delete_namespace(kube, &foreign_ns).await;
    let mut a = down(false);
    a.push("--force".into());
    a.push("--workloads-only".into());
    let out = run(a, None).await;
    ok(&out, "down --force --workloads-only");
    let workloads = owned_workloads(cfg, kube, &cluster).await;
    assert!(
        workloads.is_empty(),
        "left after down --force: {workloads:?}"
    );
}

/// Starts `up`, kills it with SIGKILL once its journal holds `after` executed writes.
async fn killed_up(cluster: &str, ns: &str, after: usize, log: &std::path::Path) {
    let up = up_args(cluster, Some(ns), &[]);
    killed_when(&up, log, Duration::from_secs(180), |lines| {
        lines.len() >= after
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn up_killed_at_three_points_then_down_leaves_nothing_owned() {
    let mut s = common::session!(serial, "t");
    let (env, _, cfg, kube, cleanup) = s.parts();
    let cluster = env.cluster.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    // After the first write (the demo secret), midway (roles, add-ons, manifests), and late
    // (workload objects applied, the sample pod on its way).
    for (i, after) in [1usize, 6, 22].into_iter().enumerate() {
        let ns = common::unique(&format!("kill{i}"));
        cleanup.namespaces.push(ns.clone());
        let log = dir.path().join(format!("kill{i}.ops"));
        killed_up(&cluster, &ns, after, &log).await;
        let done = journal(&log).len();
        assert!(
            done >= after.min(1),
            "up was killed before writing anything ({done})"
        );
        let out = run(common::cli::down_workloads_args(&cluster), None).await;
        ok(&out, "down after a killed up");
        let left = owned_workloads(cfg, kube, &cluster).await;
        assert!(
            left.is_empty(),
            "after up killed at write {after} ({done} done), down left: {left:?}"
        );
    }
}

/// `down --namespace` keeps (and says why) a namespace whose contents it cannot read — a kind
/// whose list fails (a CRD with a broken conversion webhook) or an API group whose discovery
/// fails (an aggregated API with no backend) — or that holds objects labelled
/// `managed-by=bootstrap` that are not bootstrap's: a ConfigMap (a kind bootstrap never makes
/// in a namespace) and a SecretProviderClass labelled for another cluster.
#[tokio::test(flavor = "multi_thread")]
async fn down_keeps_a_namespace_it_cannot_read_or_prove_ours() {
    let mut s = common::session!(serial, "fc");
    let (env, tag, cfg, kube, cleanup) = s.parts();
    let cluster = env.cluster.clone();
    let ns = tag.clone();
    let group = format!("{tag}.bootstrap.test");
    let agg_group = format!("{tag}-agg.bootstrap.test");
    let crd_name = format!("widgets.{group}");
    cleanup.namespaces = vec![ns.clone()];
    cleanup.cluster_objects = vec![
        (
            "apiregistration.k8s.io/v1".into(),
            "APIService".into(),
            "apiservices".into(),
            format!("v1.{agg_group}"),
        ),
        (
            "apiextensions.k8s.io/v1".into(),
            "CustomResourceDefinition".into(),
            "customresourcedefinitions".into(),
            crd_name.clone(),
        ),
    ];
    let secret = format!("{tag}/db");
    cleanup.secret(cfg, &secret, &common::unique("v")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = teams_file(dir.path(), &[(tag, &ns, "app", &secret)]);
    let out = run(
        args(&[
            "onboard",
            "-f",
            file.to_str().expect("utf8"),
            "--cluster",
            &cluster,
            "-q",
        ]),
        None,
    )
    .await;
    ok(&out, "onboard");

    // Look-alikes: labelled managed-by=bootstrap, but not bootstrap's.
    let lookalike_spc = json!({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
        "metadata": {"name": "elsewhere", "namespace": ns, "labels": {
            "app.kubernetes.io/managed-by": "bootstrap", "bootstrap.podid/cluster": "another-cluster"}},
        "spec": {"provider": "aws", "parameters": {"objects": "- objectName: x\n  objectType: secretsmanager\n"}}});
    let lookalike_cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "lookalike", "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "bootstrap"}},
        "data": {"k": "v"}});
    // A kind that cannot be listed: v2 is preferred, objects are stored as v1, and the
    // conversion webhook has no backend.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                "clientConfig": {"service": {"namespace": "default", "name": "nowhere", "path": "/convert"}}}},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                {"name": "v2", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    common::apply_all(
        kube,
        "bootstrap-env-test",
        &[lookalike_spc, lookalike_cm, crd],
    )
    .await;
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "theirs", "namespace": ns}});
    common::apply_all(kube, "bootstrap-env-test", &[widget]).await;
    let widgets = |version: &str| -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(&group, version, "Widget");
        Api::namespaced_with(
            kube.clone(),
            &ns,
            &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
        )
    };
    assert!(
        widgets("v2").list(&Default::default()).await.is_err(),
        "listing the preferred version must fail for this test to mean anything"
    );

    let down = |extra: &[&str]| {
        let mut a = json_args("down", &cluster, &["--namespace", &ns, "--yes"]);
        a.extend(args(extra));
        a
    };
    let out = run(down(&[]), None).await;
    ok(&out, "down --namespace");
    let report = json_of(&out);
    let reason = report["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["resource"] == format!("Namespace/{ns}"))
        .map(|k| k["reason"].to_string())
        .unwrap_or_else(|| panic!("the namespace is not kept: {report:#}"));
    for expected in [
        "ConfigMap/lookalike",
        "SecretProviderClass/elsewhere",
        "Widget",
    ] {
        assert!(reason.contains(expected), "{expected} not in: {reason}");
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(kube.clone());
    namespaces.get(&ns).await.expect("the namespace stays");
    widgets("v1")
        .get("theirs")
        .await
        .expect("the unlistable Widget survives");
    common::spc_api(kube, &ns)
        .get("elsewhere")
        .await
        .expect("another cluster's SecretProviderClass survives");
    assert!(
        common::spc_api(kube, &ns)
            .get("bootstrap-app")
            .await
            .is_err(),
        "bootstrap's own SecretProviderClass is deleted"
    );

    // An aggregated API with no backend: its group cannot be discovered — an unknown too.
    let apiservice = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": format!("v1.{agg_group}")},
        "spec": {"group": agg_group, "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15,
            "insecureSkipTLSVerify": true, "service": {"namespace": "default", "name": "nowhere", "port": 443}}});
    common::apply_all(kube, "bootstrap-env-test", &[apiservice]).await;
    let out = run(down(&["--dry-run"]), None).await;
    ok(&out, "down --namespace with a broken aggregated API");
    let report = json_of(&out);
    assert!(
        report["kept"].to_string().contains(&agg_group),
        "{report:#}"
    );
    // Cleanup happens in the guard (the APIService and CRD first, then down --force).
    drop(std::mem::take(cleanup));
    assert!(
        namespaces
            .get_opt(&ns)
            .await
            .ok()
            .flatten()
            .is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "the guard's down --force removed the namespace"
    );
}
