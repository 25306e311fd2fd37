//! `bootstrap up` against the local EKS stand-in (tests/env). Skipped, with the reason
//! printed, when `BOOTSTRAP_TEST_CLUSTER` is unset (the CI harness sets it after sourcing
//! tests/env/state/env.sh).

mod common;

use std::process::Command;

use common::cli::{
    bootstrap, calls, ensure_up, json_of, json_ok, ok, reset_calls, run, up_args, writes,
};

/// A namespace `PREFIX-PID` for the test's own workload, which the session's guard removes
/// (with the role and association `up` makes there) when the test ends, pass or fail.
fn namespace(s: &mut common::Session, prefix: &str) -> String {
    let ns = format!("{prefix}-{}", std::process::id());
    s.cleanup.namespaces.push(ns.clone());
    ns
}

/// After `up` of the demo workload (the platform in place), [`namespace`] `prefix`: the
/// cluster and the namespace.
async fn up_then_namespace(s: &mut common::Session, prefix: &str) -> (String, String) {
    ensure_up(s.cluster()).await;
    (s.cluster().to_string(), namespace(s, prefix))
}

/// The environment's cluster, or `None` (the reason printed) when it is not up.
fn cluster() -> Option<String> {
    common::env().map(|env| env.cluster)
}

#[tokio::test(flavor = "multi_thread")]
async fn up_verifies_then_a_second_run_writes_nothing() {
    let s = common::session!(serial, "up");
    let cluster = s.cluster().to_string();
    let out = run(up_args(&cluster, None, &["--output", "json"])).await;
    let first = json_ok(&out);
    assert_eq!(first["verified"], true);

    let http = reqwest::Client::new();
    reset_calls(&http).await;
    let out = run(up_args(&cluster, None, &["--output", "json"])).await;
    let second = json_ok(&out);
    assert_eq!(second["verified"], true);
    assert_eq!(second["changes"]["created"], 0, "{second:#}");
    assert_eq!(second["changes"]["updated"], 0, "{second:#}");
    let wrote = writes(&http).await;
    assert!(
        wrote.is_empty(),
        "the second run wrote: {wrote:?} (all calls: {})",
        calls(&http).await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_role_association_and_spc_are_exactly_as_specified() {
    let s = common::session!(serial, "up");
    let cluster = s.cluster().to_string();
    let out = run(up_args(&cluster, None, &["--output", "json"])).await;
    ok(&out, "up");
    let config = common::aws().await;
    let iam = aws_sdk_iam::Client::new(&config);
    let name = bootstrap::resources::role::role_name(&cluster, "bootstrap-demo", "demo-app");
    let role = common::role(&iam, &name).await.expect("role exists");
    let trust =
        bootstrap::aws::policy::decode_document(role.assume_role_policy_document().unwrap_or(""))
            .expect("trust");
    let expected = trust_for(&trust_account(&role), &cluster).await;
    assert!(
        bootstrap::aws::policy::same_policy(&trust, &expected),
        "{trust}"
    );
    assert_eq!(
        role.description(),
        Some(
            bootstrap::resources::role::role_description(&cluster, "bootstrap-demo", "demo-app")
                .as_str()
        )
    );
    let tags: Vec<(&str, &str)> = role.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert!(tags.contains(&("bootstrap.podid/managed-by", "bootstrap")));
    assert!(tags.contains(&("bootstrap.podid/cluster", cluster.as_str())));
    let inline = iam
        .get_role_policy()
        .role_name(&name)
        .policy_name("bootstrap-read-secrets")
        .send()
        .await
        .expect("policy");
    let policy =
        bootstrap::aws::policy::decode_document(inline.policy_document()).expect("policy json");
    let text = policy.to_string();
    assert!(text.contains("secretsmanager:GetSecretValue"), "{policy}");
    // Reads are on exact ARNs; the one "*" is BatchGetSecretValue, which reads nothing alone.
    for statement in policy["Statement"].as_array().expect("statements") {
        if statement["Resource"] == "*" {
            assert_eq!(
                statement["Action"],
                serde_json::json!(["secretsmanager:BatchGetSecretValue"]),
                "{policy}"
            );
        }
    }
    let assoc = common::associations(&config, &cluster, "bootstrap-demo", Some("demo-app")).await;
    assert_eq!(assoc.len(), 1);
    let kube = kube::Client::try_default().await.expect("kubeconfig");
    let spcs = common::spc_api(&kube, "bootstrap-demo");
    let spc = spcs.get("bootstrap-demo-app").await.expect("SPC exists");
    assert_eq!(spc.data["spec"]["provider"], "aws");
    assert_eq!(spc.data["spec"]["parameters"]["usePodIdentity"], "true");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let Some(cluster) = cluster() else { return };
    let out = bootstrap(&["up", "--cluster", "no-such-cluster", "-q"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("error: EKS cluster no-such-cluster was not found"),
        "{err}"
    );
    assert!(
        err.contains("hint: clusters in") && err.contains(&cluster),
        "{err}"
    );
    let out = bootstrap(
        &[
            "up",
            "--cluster",
            &cluster,
            "--secret",
            "no/such/secret",
            "-q",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("Secrets Manager secret no/such/secret was not found"),
        "{err}"
    );
    let out = bootstrap(
        &[
            "up",
            "--cluster",
            &cluster,
            "--service-account",
            "Not_Valid",
            "-q",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn another_roles_association_is_a_conflict_until_forced() {
    let mut s = common::session!(serial, "up");
    let cluster = s.cluster().to_string();
    // `--force` points the hand-made association at bootstrap's role; that association is not
    // bootstrap's, so a later full `down` keeps the role it names. Removed here, pass or fail.
    let ns = namespace(&mut s, "conflict");
    let other = "arn:aws:iam::123456789012:role/someone-else";
    common::associate(&common::aws().await, &cluster, &ns, "app", other).await;
    let args = up_args(&cluster, Some(&ns), &[]);
    let out = run(args.clone()).await;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "service account {ns}/app is already associated with another role: {other}"
        )),
        "{err}"
    );
    assert!(err.contains("hint: pass --force"), "{err}");
    // Nothing half-made: the conflict is found before any write.
    let iam = aws_sdk_iam::Client::new(&common::aws().await);
    let role = bootstrap::resources::role::role_name(&cluster, &ns, "app");
    assert!(
        common::role(&iam, &role).await.is_none(),
        "role {role} was created before the conflict was found"
    );
    let mut forced = args;
    forced.push("--force".into());
    let out = run(forced).await;
    ok(&out, "up --force");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_kubeconfig_up_signs_its_own_eks_token() {
    let s = common::session!(serial, "up");
    let cluster = s.cluster().to_string();
    let home = tempfile::tempdir().expect("tempdir");
    let home_dir = home.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .args([
                "up",
                "--cluster",
                &cluster,
                "--create-demo-secret",
                "--output",
                "json",
                "-q",
                "--timeout",
                "3m",
            ])
            .env("KUBECONFIG", home_dir.join("absent"))
            .env("HOME", &home_dir)
            .output()
            .expect("bootstrap runs")
    })
    .await
    .expect("join");
    let report = json_ok(&out);
    assert_eq!(report["verified"], true);
    let via = report["steps"][0]["detail"]["changes"][1]["note"]
        .as_str()
        .unwrap_or_default();
    assert!(via.contains("EKS token"), "{via}");
}

/// A pre-existing SecretProviderClass without `usePodIdentity` (someone else's, so `up` adopts
/// it and leaves it as is): the sample pod cannot mount, and `up` says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_verification_names_its_cause() {
    let mut s = common::session!(serial, "up");
    let (cluster, ns) = up_then_namespace(&mut s, "no-podid").await;
    let kube = kube::Client::try_default().await.expect("kubeconfig");
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(kube.clone());
    let pp = kube::api::PostParams::default();
    namespaces
        .create(
            &pp,
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))
                .expect("namespace"),
        )
        .await
        .expect("create the namespace");
    let spcs = common::spc_api(&kube, &ns);
    let objects =
        format!("- objectName: \"bootstrap/{cluster}/demo\"\n  objectType: \"secretsmanager\"\n");
    let spc: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": {"name": "bootstrap-app", "namespace": ns},
        "spec": {"provider": "aws", "parameters": {"objects": objects}},
    }))
    .expect("spc");
    spcs.create(&pp, &spc).await.expect("create the SPC");

    let started = std::time::Instant::now();
    let json = ["--output", "json", "--timeout", "5m"];
    let out = run(up_args(&cluster, Some(&ns), &json)).await;
    let took = started.elapsed();
    let report = json_of(&out);
    // A mount that keeps failing ends the wait well before --timeout (5m).
    assert!(took < std::time::Duration::from_secs(120), "took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(report["verified"], false, "{report:#}");
    let workload = report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "workload"))
        .expect("workload step");
    // Read as JSON, not as text: key order is serde_json's (sorted unless a dependency turns
    // on preserve_order, which differs between `cargo build` and `cargo test` builds).
    let spc_ref = format!("SecretProviderClass/{ns}/bootstrap-app");
    let adopted = workload["detail"]["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["resource"] == spc_ref.as_str() && c["action"] == "adopt");
    assert!(
        adopted,
        "the SPC must be adopted, not overwritten: {workload}"
    );
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("verify: verification failed for pod")
            && error.contains(&format!(
                "SecretProviderClass {ns}/bootstrap-app does not use Pod Identity (usePodIdentity is not set"
            )),
        "{error}"
    );
    // The pod's events carry the provider's own words (the kubelet shim records FailedMount).
    assert!(
        error.contains("an IAM role must be associated with service account"),
        "{error}"
    );
    assert!(
        stderr.contains("hint: set parameters.usePodIdentity: \"true\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("has failed to mount its secrets for"),
        "{stderr}"
    );
    assert!(!stderr.contains("SecretString"), "{stderr}");
}

/// `--provider upstream` where our provider already runs: both would serve `aws.sock`, so the
/// plan stops at the provider step and says which DaemonSet is in the way. (The stand-in's call
/// counters are shared with other suites, so "no write" is not asserted here: it is a dry run.)
#[tokio::test(flavor = "multi_thread")]
async fn a_second_aws_provider_is_refused_with_a_hint() {
    let s = common::session!(serial, "up");
    let cluster = s.cluster().to_string();
    // Our provider runs (whatever ran before this test).
    ensure_up(&cluster).await;
    let out = run(up_args(
        &cluster,
        None,
        &[
            "--provider",
            "upstream",
            // Upstream's image is on public.ecr.aws, which this machine cannot reach.
            "--skip-image-check",
            "--dry-run",
            "--output",
            "json",
        ],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report = json_of(&out);
    assert_eq!(report["verified"], false);
    assert!(
        stderr.contains(
            "cannot install provider csi-secrets-store-provider-aws: DaemonSet kube-system/aws-csi-provider already runs an AWS provider"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: remove the other provider first"),
        "{stderr}"
    );
    let provider = report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "provider"))
        .expect("provider step");
    assert_eq!(provider["status"], "failed", "{provider}");
}

/// A service account with everything but its Pod Identity association: the steps of `up` run
/// through the library, the association step left out, then the verify step. (Deleting the
/// association after a verified run would not do: the provider and the agent reuse the
/// credentials they already have until they expire, as on EKS.)
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_association_is_named_as_the_cause() {
    use bootstrap::commands::up;
    use bootstrap::plan::Executor;
    use bootstrap::resources::sample;
    use bootstrap::target;
    let mut s = common::session!(serial, "up");
    // The steps make a role, a secret and objects there: removed at the end, pass or fail.
    let (cluster, ns) = up_then_namespace(&mut s, "no-assoc").await;
    let argv = [
        "bootstrap",
        "up",
        "--cluster",
        &cluster,
        "--namespace",
        &ns,
        "--service-account",
        "app",
        "--create-demo-secret",
        "--timeout",
        "5m",
    ];
    let cli = <bootstrap::cli::Cli as clap::Parser>::try_parse_from(argv).expect("parses");
    let bootstrap::cli::Command::Up(args) = cli.command else {
        panic!("up")
    };
    let settings = bootstrap::config::resolve_up(&args).expect("settings");
    let (aws, offline) = target::connect(settings.target.region.as_deref(), None, false)
        .await
        .expect("connects");
    assert!(offline.is_none());
    let (t, _) = target::preflight(aws.expect("aws"), &cluster)
        .await
        .expect("preflight");
    let planned = up::plan_all(&settings, &t).await.expect("plans");
    let backends = bootstrap::interp::Backends::of(&t).expect("a live target");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let exec = Executor::new(false, Some(&backends), deadline);
    // Everything but the association step.
    for outcome in [
        &planned.secrets,
        &planned.workload.role,
        &planned.workload.objects,
    ] {
        exec.run(&outcome.all_ops()).await.expect("applies");
    }
    exec.run(&planned.workload.sample.setup)
        .await
        .expect("sample pod");
    let kube = t.kube().cloned().expect("kube client");
    let subject = bootstrap::diagnose::Subject {
        cluster: &cluster,
        namespace: &ns,
        service_account: "app",
        spc: &planned.workload.sample_spec.spc,
    };
    let result = sample::check(
        t.aws(),
        &kube,
        &planned.workload.sample_spec,
        subject,
        std::time::Duration::from_secs(240),
    )
    .await;
    let _ = exec.run(&planned.workload.sample.teardown).await;
    let err = result.expect_err("no association: the mount fails");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "service account {ns}/app has no Pod Identity association on cluster {cluster}"
        )),
        "{message}"
    );
    // The provider's own words, from the pod's FailedMount events.
    assert!(
        message.contains("No Pod Identity Association exists for service account app"),
        "{message}"
    );
    assert!(
        err.hint()
            .is_some_and(|h| h.contains("re-run bootstrap up")),
        "{:?}",
        err.hint()
    );
}

/// The account in a role's ARN.
fn trust_account(role: &aws_sdk_iam::types::Role) -> String {
    role.arn().split(':').nth(4).unwrap_or_default().to_string()
}

/// The trust policy bootstrap writes for the demo workload (the cluster pinned by its ARN,
/// as the stand-in's DescribeCluster reports it).
async fn trust_for(account: &str, cluster: &str) -> serde_json::Value {
    let described = common::describe_cluster(&common::aws().await, cluster).await;
    let cluster_arn = described.arn().expect("the cluster's ARN");
    bootstrap::aws::policy::pod_identity_trust(&bootstrap::aws::policy::TrustScope {
        account,
        cluster,
        cluster_arn,
        namespace: "bootstrap-demo",
        service_account: "demo-app",
    })
}
