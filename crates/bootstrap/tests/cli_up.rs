//! Runs the real `bootstrap` binary with no AWS credentials and no kubeconfig: help, the
//! offline dry run (text, JSON, --output-dir), completions, and bad input.

mod common;

use std::process::Output;

use common::cli::offline as bootstrap;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `bootstrap up --cluster demo --dry-run` offline, with `extra` flags.
fn dry_run(extra: &[&str]) -> Output {
    let mut args = vec!["up", "--cluster", "demo", "--dry-run"];
    args.extend_from_slice(extra);
    bootstrap(&args)
}

/// The stdout of a run that must have succeeded (its stderr in the failure).
fn succeeded(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", stderr(out));
    stdout(out)
}

/// The stdout of a run that must have succeeded, as one JSON document.
fn json_report(out: &Output) -> serde_json::Value {
    serde_json::from_str(&succeeded(out)).expect("stdout is one JSON document")
}

#[test]
fn help_lists_the_commands_and_flags() {
    let out = bootstrap(&["--help"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("up"));
    assert!(stdout(&out).contains("completions"));
    let out = bootstrap(&["up", "--help"]);
    assert!(out.status.success());
    for flag in [
        "--cluster",
        "--dry-run",
        "--output",
        "--output-dir",
        "--secret",
        "--provider",
        "--rotation",
        "--values",
        "--force",
    ] {
        assert!(stdout(&out).contains(flag), "{flag} missing from up --help");
    }
}

#[test]
fn dry_run_without_credentials_prints_the_full_plan() {
    let out = dry_run(&["--no-progress"]);
    let text = succeeded(&out);
    for expected in [
        "sts:GetCallerIdentity",
        "eks:CreateAddon",
        "CustomResourceDefinition/secretproviderclasses.secrets-store.csi.x-k8s.io",
        "DaemonSet/kube-system/secrets-store-csi-driver",
        "DaemonSet/kube-system/aws-csi-provider",
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "pods.eks.amazonaws.com",
        "eks:CreatePodIdentityAssociation",
        "SecretProviderClass/bootstrap-demo/bootstrap-demo-app",
        "usePodIdentity",
        "Dry run: no changes were applied.",
    ] {
        assert!(text.contains(expected), "{expected} missing from the plan");
    }
    assert!(stderr(&out).contains("planning offline"));
}

#[test]
fn dry_run_json_has_the_documented_shape() {
    let json = json_report(&dry_run(&["--output", "json", "--region", "eu-west-1"]));
    assert!(json["changes"]["created"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(json["changes"]["updated"], 0);
    assert!(json["changes"]["unchanged"].is_u64());
    assert_eq!(json["verified"], false);
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["region"], "eu-west-1");
    let steps = json["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 9);
    assert!(steps.iter().all(|s| s["status"] == "done"));
    let text = json.to_string();
    assert!(text.contains("arn:aws:secretsmanager:eu-west-1:"));
    assert!(
        !text.contains("\"password\""),
        "no secret value in the plan"
    );
}

#[test]
fn dry_run_writes_manifests_for_gitops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("manifests");
    succeeded(&dry_run(&[
        "-q",
        "--output-dir",
        target.to_str().expect("utf8"),
    ]));
    let mut files: Vec<String> = std::fs::read_dir(&target)
        .expect("dir written")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    assert!(
        files[0].contains("customresourcedefinition"),
        "CRDs first: {files:?}"
    );
    assert!(
        !files.iter().any(|f| f.contains("verify")),
        "no sample pod: {files:?}"
    );
    let spc = files
        .iter()
        .find(|f| f.contains("secretproviderclass_bootstrap-demo"))
        .expect("SPC file");
    let text = std::fs::read_to_string(target.join(spc)).expect("read");
    assert!(text.contains("usePodIdentity"));
}

#[test]
fn completions_are_generated() {
    let out = bootstrap(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("bootstrap"));
}

#[test]
fn invalid_names_are_user_errors() {
    for (args, needle) in [
        (
            vec!["up", "--cluster", "bad name", "--dry-run"],
            "--cluster",
        ),
        (
            vec![
                "up",
                "--cluster",
                "demo",
                "--namespace",
                "Team_A",
                "--dry-run",
            ],
            "--namespace",
        ),
        (
            vec![
                "up",
                "--cluster",
                "demo",
                "--secret",
                "arn:aws:s3:::bucket",
                "--dry-run",
            ],
            "--secret",
        ),
        (
            vec!["up", "--cluster", "demo", "--timeout", "soon", "--dry-run"],
            "--timeout",
        ),
    ] {
        let out = bootstrap(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.starts_with("error: invalid "), "{err}");
        assert!(err.contains(needle) && err.contains("Caused by:"), "{err}");
    }
}

#[test]
fn a_real_run_without_a_region_explains_how_to_set_one() {
    let out = bootstrap(&["up", "--cluster", "demo", "--no-progress"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("error: cannot reach AWS"), "{err}");
    assert!(err.contains("no AWS region is configured"), "{err}");
    assert!(err.contains("hint: pass --region"), "{err}");
}

#[test]
fn the_offline_plan_is_stable() {
    let text = succeeded(&dry_run(&["--region", "eu-west-1", "-q"]));
    // The tree of steps, resources and calls; the documents (which include templates other
    // work owns) are checked by the render unit tests instead.
    let tree = text.split("\nDocuments (").next().unwrap_or_default();
    insta::assert_snapshot!("offline_plan", tree);
}

#[test]
fn the_example_values_file_is_accepted() {
    let values = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/values.yaml");
    let text = succeeded(&dry_run(&["--output", "json", "--values", values]));
    assert!(text.contains(
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/csi-secrets-store/driver:v1.6.0"
    ));
    assert!(text.contains("--enable-secret-rotation=true"));
}

#[test]
fn a_secret_in_another_region_is_refused() {
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf";
    let out = dry_run(&["--region", "us-west-2", "-q", "--secret", arn]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("is in region eu-west-1, but the cluster is in us-west-2"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn dry_run_with_the_upstream_provider_plans_its_daemonset_and_rbac() {
    const UPSTREAM_IMAGE: &str =
        "public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws:3.1.1";
    let (_dir, values) = common::make::temp_file(
        "values.yaml",
        "upstreamProvider:\n  priorityClassName: system-node-critical\n  extraArgs: [\"--qps=10\"]\n",
    );
    let json = json_report(&dry_run(&[
        "--provider",
        "upstream",
        "--values",
        values.to_str().expect("utf8"),
        "--output",
        "json",
    ]));
    let provider = json["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "provider"))
        .expect("provider step");
    let changes = provider["detail"]["changes"].as_array().expect("changes");
    let resources: Vec<&str> = changes
        .iter()
        .filter_map(|c| c["resource"].as_str())
        .collect();
    let image_check = format!("provider image {UPSTREAM_IMAGE}");
    assert_eq!(
        resources,
        [
            image_check.as_str(),
            "ServiceAccount/kube-system/csi-secrets-store-provider-aws",
            "ClusterRole/csi-secrets-store-provider-aws-cluster-role",
            "ClusterRoleBinding/csi-secrets-store-provider-aws-cluster-rolebinding",
            "DaemonSet/kube-system/csi-secrets-store-provider-aws",
        ]
    );
    // Offline, the image is named but not checked; every object is created.
    assert_eq!(changes[0]["action"], "check");
    assert!(
        changes[0]["note"]
            .as_str()
            .unwrap_or_default()
            .contains("not checked: planning offline")
    );
    assert!(changes[1..].iter().all(|c| c["action"] == "create"));
    let ds = &changes[4]["documents"][0];
    let pod = &ds["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], UPSTREAM_IMAGE);
    assert_eq!(
        container["args"],
        serde_json::json!([
            "--provider-volume=/var/run/secrets-store-csi-providers",
            "--qps=10"
        ])
    );
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(
        container["resources"]["limits"],
        serde_json::json!({"cpu": "50m", "memory": "100Mi"})
    );
    // Only the upstream provider: ours is not installed alongside it.
    assert!(!json.to_string().contains("aws-csi-provider"));

    let text = succeeded(&dry_run(&[
        "--provider",
        "upstream",
        "--provider-image",
        "mirror.example/aws-provider:3.1.1",
        "--no-progress",
    ]));
    assert!(text.contains("DaemonSet/kube-system/csi-secrets-store-provider-aws"));
    assert!(text.contains("mirror.example/aws-provider:3.1.1"));
}
