//! `bootstrap doctor` against the local EKS stand-in: it passes on a cluster fresh from `up`,
//! and flags, each with its fix, an SPC with `usePodIdentity: "yes"`, a service account whose
//! SPC expects Pod Identity but has no association, a CSIDriver without the
//! pods.eks.amazonaws.com audience, a role whose policy misses one of the SPC's secrets, and a
//! node where the driver runs without a provider pod. Bad input exits 2. No secret value is
//! ever printed.

mod common;

use std::process::Output;

use common::cli::{args, ensure_up, json_of, offline, run};
use common::fixture::Fixture;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

const DEMO_NS: &str = "bootstrap-demo";

/// Runs `doctor --output json` with `extra` flags: the exit code and the report.
async fn doctor(cluster: &str, extra: &[&str]) -> (Option<i32>, Value, Output) {
    let mut a = args(&["doctor", "--cluster", cluster, "--output", "json", "-q"]);
    a.extend(extra.iter().map(|s| s.to_string()));
    let out = run(a).await;
    (out.status.code(), json_of(&out), out)
}

fn checks(report: &Value) -> Vec<Value> {
    report["checks"].as_array().cloned().unwrap_or_default()
}

/// The checks named `name` whose subject contains `subject`.
fn find(report: &Value, name: &str, subject: &str) -> Vec<Value> {
    checks(report)
        .into_iter()
        .filter(|c| c["check"] == name && c["subject"].as_str().unwrap_or("").contains(subject))
        .collect()
}

fn one(report: &Value, name: &str, subject: &str) -> Value {
    let found = find(report, name, subject);
    assert_eq!(
        found.len(),
        1,
        "one {name} check about {subject:?} in {}",
        serde_json::to_string_pretty(report).unwrap_or_default()
    );
    found[0].clone()
}

fn failed(report: &Value) -> Vec<Value> {
    checks(report)
        .into_iter()
        .filter(|c| c["status"] == "fail")
        .collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn assert_no_value(out: &Output, values: &[String]) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for v in values {
        assert!(!all.contains(v.as_str()), "a secret value was printed");
    }
}

/// A workload whose mount fails, and what doctor says of it.
struct Broken {
    fx: Fixture,
    /// The secrets' ARNs and values (which doctor must never print), in the order named.
    arns: Vec<String>,
    values: Vec<String>,
    /// The pod's FailedMount message.
    event: String,
    /// `doctor --namespace NS --pod app`: its exit code, report and output.
    code: Option<i32>,
    report: Value,
    out: Output,
    /// The serial test's session: its guard removes the secrets after the fixture's.
    _session: common::Session,
}

impl Broken {
    /// The subject of the pod's checks: `NS/app`.
    fn subject(&self) -> String {
        format!("{}/app", self.fx.ns)
    }

    /// The one check `name` about the pod, after asserting that doctor exited 1, that the
    /// check failed, that what it saw contains `saw` and its fix contains `fix`.
    fn failing(&self, name: &str, saw: &str, fix: &str) -> Value {
        assert_eq!(self.code, Some(1), "doctor exits 1 for a failed check");
        let c = one(&self.report, name, &self.subject());
        assert_eq!(c["status"], "fail", "{c}");
        assert!(text(&c["saw"]).contains(saw), "{c}");
        assert!(text(&c["fix"]).contains(fix), "{c}");
        c
    }
}

/// For a serial test, on a cluster from `up`: secrets `TAG/SUFFIX` for each of `suffixes`, a
/// fixture `prefix` whose role reads the first `readable` of them (its service account
/// IRSA-annotated with `irsa`, else associated), and pod `app` mounting all of them with
/// `usePodIdentity` `use_pod_identity`; once its mount failed, doctor of the pod. `None`
/// without the environment.
async fn broken(
    prefix: &str,
    suffixes: &[&str],
    readable: usize,
    irsa: bool,
    use_pod_identity: &str,
) -> Option<Broken> {
    let mut s = common::Session::serial(prefix).await?;
    ensure_up(s.cluster()).await;
    let (mut arns, mut values) = (vec![], vec![]);
    for suffix in suffixes {
        let value = common::unique("doctor-value");
        let name = format!("{}/{suffix}", s.tag);
        arns.push(s.cleanup.secret(&s.cfg, &name, &value).await);
        values.push(value);
    }
    let fx = Fixture::new(prefix, &arns[..readable], &[], irsa).await?;
    let region = std::env::var("AWS_REGION").unwrap_or_default();
    let mounted: Vec<&str> = arns.iter().map(String::as_str).collect();
    fx.pod("app", spc_params(&region, Some(use_pod_identity), &mounted))
        .await;
    let event = fx.failed("app").await;
    let (code, report, out) = doctor(s.cluster(), &["--namespace", &fx.ns, "--pod", "app"]).await;
    Some(Broken {
        fx,
        arns,
        values,
        event,
        code,
        report,
        out,
        _session: s,
    })
}

fn spc_params(region: &str, use_pod_identity: Option<&str>, names: &[&str]) -> Value {
    let objects: String = names
        .iter()
        .map(|n| format!("- objectName: \"{n}\"\n  objectType: secretsmanager\n"))
        .collect();
    let mut p = json!({"region": region, "objects": objects});
    if let Some(v) = use_pod_identity {
        p["usePodIdentity"] = json!(v);
    }
    p
}

#[test]
fn bad_input_exits_2_before_any_call() {
    for bad in [
        vec!["doctor", "--cluster", "not a name"],
        vec!["doctor", "--cluster", "c", "--pod", "p"],
        vec!["doctor", "--cluster", "c", "--namespace", "Bad_NS"],
    ] {
        let out = offline(&bad);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_on_a_cluster_fresh_from_up() {
    let mut s = common::session!(serial, "t");
    let (env, ..) = s.parts();
    ensure_up(&env.cluster).await;

    let (code, report, out) = doctor(&env.cluster, &["--namespace", DEMO_NS]).await;
    assert!(failed(&report).is_empty(), "{:#?}", failed(&report));
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for c in checks(&report) {
        let mut keys: Vec<&String> = c.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["check", "fix", "saw", "status", "subject"], "{c}");
    }
    assert_eq!(report["summary"]["fail"], 0);
    // The platform's checks, by area.
    for (area, names) in [
        ("agent", &["addon", "daemonset", "ipv6"][..]),
        (
            "driver",
            &["installed", "token-audiences", "rotation", "secret-sync"],
        ),
        ("provider", &["installed", "nodes"]),
        ("nodes", &["compute"]),
    ] {
        for name in names.iter().map(|n| format!("{area}.{n}")) {
            assert!(!find(&report, &name, "").is_empty(), "no {name} check");
        }
    }
    // The demo workload: its class, and the service account it serves, all pass.
    let spc = format!("{DEMO_NS}/bootstrap-demo-app");
    for name in ["spc.use-pod-identity", "spc.objects", "spc.region"] {
        assert_eq!(one(&report, name, &spc)["status"], "pass");
    }
    let sa = format!("{DEMO_NS}/demo-app");
    for name in ["sa.association", "sa.trust", "sa.policy"] {
        let c = one(&report, name, &sa);
        assert_eq!(c["status"], "pass", "{c}");
    }
    assert!(text(&one(&report, "sa.policy", &sa)["saw"]).contains("conditions were not evaluated"));

    // The whole cluster: the platform passes (other tests' namespaces may hold broken
    // workloads on purpose).
    let (_, all, _) = doctor(&env.cluster, &[]).await;
    let platform_failures: Vec<Value> = failed(&all)
        .into_iter()
        .filter(|c| !text(&c["check"]).starts_with("spc.") && !text(&c["check"]).starts_with("sa."))
        .collect();
    assert!(platform_failures.is_empty(), "{platform_failures:#?}");

    // Text output: one block per check, the counts last.
    let out = run(args(&[
        "doctor",
        "--cluster",
        &env.cluster,
        "--namespace",
        DEMO_NS,
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pass  agent.addon"), "{stdout}");
    assert!(stdout.contains("      saw: "), "{stdout}");
    assert!(stdout.trim_end().ends_with("0 failed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn use_pod_identity_yes_is_flagged_quoting_it_and_its_pod_explained() {
    let Some(b) = broken("dr-yes", &["yes"], 1, false, "yes").await else {
        return;
    };
    let patch = "patch secretproviderclass app";
    let not_a_boolean = r#"usePodIdentity "yes" is not a boolean"#;
    let c = b.failing("spc.use-pod-identity", not_a_boolean, patch);
    assert_eq!(
        text(&c["fix"]),
        format!(
            r#"kubectl -n {} patch secretproviderclass app --type=merge -p '{{"spec":{{"parameters":{{"usePodIdentity":"true"}}}}}}'"#,
            b.fx.ns
        )
    );
    b.failing("pod.mount", "usePodIdentity parameter is invalid", patch);
    assert_no_value(&b.out, &b.values);
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_without_an_association_is_flagged_with_the_create_command() {
    // IRSA-annotated service account, no association; its class says Pod Identity.
    let Some(b) = broken("dr-noassoc", &["noassoc"], 1, true, "true").await else {
        return;
    };
    let create = "aws eks create-pod-identity-association";
    let c = b.failing("sa.association", "no Pod Identity association", create);
    assert_eq!(
        text(&c["fix"]),
        format!(
            "aws eks create-pod-identity-association --cluster-name {} --namespace {} --service-account app --role-arn {}",
            b.fx.env.cluster, b.fx.ns, b.fx.role_arn
        ),
        "the annotated role is the one to associate"
    );
    b.failing("pod.mount", "refused the token", create);
    assert_no_value(&b.out, &b.values);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_whose_policy_misses_one_secret_is_flagged_naming_it() {
    let Some(b) = broken("dr-policy", &["allowed", "missed"], 1, false, "true").await else {
        return;
    };
    let (allowed, missed) = (b.arns[0].as_str(), b.arns[1].as_str());
    let sa = b.subject();
    assert_eq!(one(&b.report, "sa.association", &sa)["status"], "pass");
    assert_eq!(one(&b.report, "sa.trust", &sa)["status"], "pass");
    let role = format!("--role-name {}", b.fx.ns);
    let not_read = format!("secretsmanager:GetSecretValue on {missed}");
    let c = b.failing("sa.policy", &not_read, &role);
    let saw = text(&c["saw"]);
    assert!(
        !saw.contains(&format!("GetSecretValue on {allowed}")),
        "{saw}"
    );
    let fix = text(&c["fix"]);
    assert!(
        fix.starts_with(&format!("aws iam put-role-policy {role}")),
        "{fix}"
    );
    assert!(fix.contains(missed) && !fix.contains(allowed), "{fix}");
    assert!(b.event.contains("access denied"), "{}", b.event);
    let cannot_read = format!("the role cannot read {missed}");
    let pod = b.failing("pod.mount", &cannot_read, &role);
    assert!(text(&pod["fix"]).contains(missed), "{pod}");
    assert_no_value(&b.out, &b.values);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_csidriver_without_the_pod_identity_audience_is_flagged() {
    let mut s = common::session!(serial, "t");
    let (env, _, _, kube, ..) = s.parts();
    ensure_up(&env.cluster).await;
    let drivers: Api<CSIDriver> = Api::all(kube.clone());
    let name = "secrets-store.csi.k8s.io";
    // tokenRequests is mutable (Kubernetes >= 1.21): a merge patch replaces the list.
    let only_sts = json!({"spec": {"tokenRequests": [{"audience": "sts.amazonaws.com"}]}});
    drivers
        .patch(name, &PatchParams::default(), &Patch::Merge(&only_sts))
        .await
        .expect("patch the CSIDriver");

    let (code, report, _) = doctor(&env.cluster, &["--namespace", DEMO_NS]).await;
    let both = json!({"spec": {"tokenRequests": [{"audience": "sts.amazonaws.com"}, {"audience": "pods.eks.amazonaws.com"}]}});
    drivers
        .patch(name, &PatchParams::default(), &Patch::Merge(&both))
        .await
        .expect("restore the CSIDriver");

    assert_eq!(code, Some(1));
    let c = one(&report, "driver.token-audiences", name);
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        text(&c["saw"]).contains("missing pods.eks.amazonaws.com"),
        "{c}"
    );
    assert_eq!(
        text(&c["fix"]),
        format!("bootstrap up --cluster {}", env.cluster),
        "bootstrap's own driver: up restores it"
    );
    let (code, _, _) = doctor(&env.cluster, &["--namespace", DEMO_NS]).await;
    assert_eq!(code, Some(0), "restored");
}

fn third_node(region: &str) -> (String, Value) {
    let name = format!("ip-10-0-3-13.{region}.compute.internal");
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": format!("{region}c"),
                "node.kubernetes.io/instance-type": "m5.large", "type": "kwok"}},
        "spec": {"providerID": format!("aws:///{region}c/i-0doctor0000000003")}});
    (name, node)
}

/// Sets the affinity of the provider's DaemonSet to `affinity`; `why` names the change in a
/// failure.
async fn set_provider_affinity(ds: &Api<DaemonSet>, affinity: &Value, why: &str) {
    let patch = json!({"spec": {"template": {"spec": {"affinity": affinity}}}});
    ds.patch(
        "aws-csi-provider",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap_or_else(|e| panic!("{why}: {e}"));
}

async fn ready_pod_on(kube: &kube::Client, ns: &str, prefix: &str, node: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(kube.clone(), ns);
    let Ok(list) = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
    else {
        return false;
    };
    list.items.iter().any(|p| {
        p.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with(prefix))
            && p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_where_the_driver_runs_without_a_provider_pod_is_flagged() {
    let mut s = common::session!(serial, "t");
    let (env, _, _, kube, cleanup) = s.parts();
    ensure_up(&env.cluster).await;
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-west-2".into());
    let (node_name, node) = third_node(&region);
    // The node goes when the test ends, pass or fail.
    cleanup.cluster_objects.push((
        "v1".into(),
        "Node".into(),
        "nodes".into(),
        node_name.clone(),
    ));
    let nodes: Api<Node> = Api::all(kube.clone());
    nodes
        .patch(
            &node_name,
            &PatchParams::apply("doctor-env-test").force(),
            &Patch::Apply(&node),
        )
        .await
        .expect("register a third kwok node");
    // The provider skips it (an extra affinity term); the driver and the agent run there.
    let ds: Api<DaemonSet> = Api::namespaced(kube.clone(), "kube-system");
    let original = ds
        .get("aws-csi-provider")
        .await
        .expect("the provider DaemonSet");
    let affinity = serde_json::to_value(
        original
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.affinity.clone()),
    )
    .expect("affinity");
    let mut skipping = affinity.clone();
    let terms = skipping
        .pointer_mut("/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchExpressions")
        .and_then(Value::as_array_mut)
        .expect("the provider's node affinity");
    terms
        .push(json!({"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [node_name]}));
    set_provider_affinity(&ds, &skipping, "make the provider skip the node").await;
    // The affinity patch rolls the provider's pods on the other nodes too: wait until each of
    // them runs a ready one again, or doctor sees those nodes without a provider as well.
    let others = env.nodes.clone();
    common::eventually(
        "the driver and the agent to run on the third node, the provider on the others",
        90,
        || {
            let kube = kube.clone();
            let node_name = node_name.clone();
            let others = others.clone();
            async move {
                let driver =
                    ready_pod_on(&kube, "kube-system", "secrets-store-csi-driver", &node_name)
                        .await;
                let agent =
                    ready_pod_on(&kube, "kube-system", "eks-pod-identity-agent", &node_name).await;
                let provider =
                    ready_pod_on(&kube, "kube-system", "aws-csi-provider", &node_name).await;
                for other in &others {
                    if !ready_pod_on(&kube, "kube-system", "aws-csi-provider", other).await {
                        return None;
                    }
                }
                // Rolled out: every scheduled pod is of the new template and ready (an old
                // pod still ready on another node would be replaced while doctor looks).
                let ds: Api<DaemonSet> = Api::namespaced(kube.clone(), "kube-system");
                let d = ds.get("aws-csi-provider").await.ok()?;
                let st = d.status?;
                let rolled = st.observed_generation >= d.metadata.generation
                    && st.updated_number_scheduled == Some(st.desired_number_scheduled)
                    && st.number_ready == st.desired_number_scheduled;
                (driver && agent && !provider && rolled).then_some(())
            }
        },
    )
    .await;

    let (code, report, _) = doctor(&env.cluster, &["--namespace", DEMO_NS]).await;
    set_provider_affinity(&ds, &affinity, "restore the provider's affinity").await;
    let _ = nodes.delete(&node_name, &Default::default()).await;
    // Pod GC removes the pods left on the deleted node; wait for it (best effort).
    let pods: Api<Pod> = Api::all(kube.clone());
    for _ in 0..150 {
        let left = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={node_name}")))
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }

    assert_eq!(code, Some(1));
    let c = one(&report, "provider.nodes", "secrets-store-csi-driver");
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        text(&c["saw"]).contains(&format!(
            "the driver runs on {node_name} with no ready AWS provider pod"
        )),
        "{c}"
    );
    assert!(
        text(&c["fix"]).contains("describe daemonset aws-csi-provider"),
        "{c}"
    );
    assert_eq!(
        one(&report, "agent.daemonset", "eks-pod-identity-agent")["status"],
        "pass"
    );
}
