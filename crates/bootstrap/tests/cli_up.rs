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
    let out = bootstrap(&["up", "--cluster", "demo", "--dry-run", "--no-progress"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
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
    let out = bootstrap(&[
        "up",
        "--cluster",
        "demo",
        "--dry-run",
        "--output",
        "json",
        "--region",
        "eu-west-1",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
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
    let out = bootstrap(&[
        "up",
        "--cluster",
        "demo",
        "--dry-run",
        "-q",
        "--output-dir",
        target.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
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
    let out = bootstrap(&[
        "up",
        "--cluster",
        "demo",
        "--dry-run",
        "--region",
        "eu-west-1",
        "-q",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    // The tree of steps, resources and calls; the documents (which include templates other
    // work owns) are checked by the render unit tests instead.
    let text = stdout(&out);
    let tree = text.split("\nDocuments (").next().unwrap_or_default();
    insta::assert_snapshot!("offline_plan", tree);
}

#[test]
fn the_example_values_file_is_accepted() {
    let values = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/values.yaml");
    let out = bootstrap(&[
        "up",
        "--cluster",
        "demo",
        "--dry-run",
        "--output",
        "json",
        "--values",
        values,
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/csi-secrets-store/driver:v1.6.0"
    ));
    assert!(text.contains("--enable-secret-rotation=true"));
}

#[test]
fn a_secret_in_another_region_is_refused() {
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf";
    let out = bootstrap(&[
        "up",
        "--cluster",
        "demo",
        "--region",
        "us-west-2",
        "--dry-run",
        "-q",
        "--secret",
        arn,
    ]);
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
    let dir = tempfile::tempdir().expect("tempdir");
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "upstreamProvider:\n  priorityClassName: system-node-critical\n  extraArgs: [\"--qps=10\"]\n",
    )
    .expect("write values");
    let out = bootstrap(&[
        "up",
        "--cluster",
        "demo",
        "--dry-run",
        "--provider",
        "upstream",
        "--values",
        values.to_str().expect("utf8"),
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    let provider = json["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "provider"))
        .expect("provider step");
    let changes = provider["detail"]["changes"].as_array().expect("changes");
    let resources: Vec<&str> = changes
        .iter()
        .filter_map(|c| c["resource"].as_str())
        .collect();
    assert_eq!(
        resources,
        [
            "provider image public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws:3.1.1",
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
    assert_eq!(
        container["image"],
        "public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws:3.1.1"
    );
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

    let out = bootstrap(&[
        "up",
        "--cluster",
        "demo",
        "--dry-run",
        "--provider",
        "upstream",
        "--provider-image",
        "mirror.example/aws-provider:3.1.1",
        "--no-progress",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("DaemonSet/kube-system/csi-secrets-store-provider-aws"));
    assert!(text.contains("mirror.example/aws-provider:3.1.1"));
}
