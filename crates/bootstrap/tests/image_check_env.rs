//! `up`'s provider image check against the local environment's real registry: with a node
//! labelled `kubernetes.io/arch=arm64` and the amd64-only image, `up` fails before any write,
//! naming the node and the architecture; `bootstrap image push` copies the layout into a new
//! repository of that registry, and the pushed image passes the check for the amd64 nodes.
//! Its own test binary: the extra node must not be seen by another test's `up`.

mod common;

use std::process::Output;

use common::cli::{args, run_logged as run};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the binary with `args`, which must succeed, and parses its stdout as JSON.
async fn json_report(args: Vec<String>) -> Value {
    let out = run(args, None).await;
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Removes the extra node (and any pod DaemonSets put on it) even when an assertion fails.
struct NodeGuard {
    name: String,
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        let name = self.name.clone();
        common::block_on_own_thread(move || async move {
            let kube = common::kube().await;
            let nodes: Api<Node> = Api::all(kube.clone());
            let _ = nodes.delete(&name, &DeleteParams::default()).await;
            // Pods DaemonSets made for it: bound to it, or still pending with an
            // affinity to it (the scheduler had not bound them yet).
            let pods: Api<Pod> = Api::all(kube.clone());
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for p in list.items {
                    let spec = p.spec.as_ref();
                    let bound = spec.and_then(|s| s.node_name.as_deref()) == Some(name.as_str());
                    let aimed = spec
                        .and_then(|s| s.affinity.as_ref())
                        .and_then(|a| serde_json::to_string(a).ok())
                        .is_some_and(|a| a.contains(&format!("\"{name}\"")));
                    if !bound && !aimed {
                        continue;
                    }
                    let ns = p.metadata.namespace.clone().unwrap_or_default();
                    let api: Api<Pod> = Api::namespaced(kube.clone(), &ns);
                    let _ = api
                        .delete(
                            &p.metadata.name.unwrap_or_default(),
                            &DeleteParams::default().grace_period(0),
                        )
                        .await;
                }
            }
        });
    }
}

#[tokio::test]
async fn an_arm64_node_and_an_amd64_only_image_fail_before_any_write_then_a_push_passes() {
    let mut s = common::session!("t");
    let (env, _, _, kube, ..) = s.parts();
    let Some((registry, layout)) = common::registry() else {
        return;
    };
    let repo = common::unique("imgcheck/aws-csi-provider");
    let to = format!("{registry}/{repo}");

    // `image push` into the local registry: the --provider-image to use, pinned.
    let push = [
        "image", "push", "--from", &layout, "--to", &to, "--output", "json",
    ];
    let out = json_report(args(&push)).await;
    let image = out["provider_image"]
        .as_str()
        .expect("provider_image")
        .to_string();
    assert!(image.starts_with(&format!("{to}:")), "{image}");
    assert!(image.contains("@sha256:"), "pinned to the digest: {image}");
    assert_eq!(out["platforms"], json!(["linux/amd64"]));

    // An arm64 node joins: the amd64-only image cannot run there.
    let nodes: Api<Node> = Api::all(kube.clone());
    let node_name = common::unique("graviton");
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node_name, "labels": {
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "arm64",
            "kubernetes.io/hostname": node_name,
        }},
    }))
    .expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create the arm64 node");
    let guard = NodeGuard {
        name: node_name.clone(),
    };

    let journal = std::env::temp_dir().join(format!("{}.ops", common::unique("imgcheck")));
    let namespace = common::unique("imgcheck");
    // `up` of the namespace with provider image `image`, then `extra` flags.
    let up = |image: &str, extra: &[&str]| {
        let mut a = args(&["up", "--cluster", &env.cluster, "--namespace", &namespace]);
        a.extend(args(&["--provider-image", image, "--no-progress"]));
        a.extend(args(extra));
        a
    };
    let failed = run(up(&image, &[]), Some(journal.clone())).await;
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("step provider failed"), "{stderr}");
    assert!(
        stderr.contains(&image) || stderr.contains(&to),
        "names the image: {stderr}"
    );
    assert!(
        stderr.contains("linux/arm64"),
        "names the architecture: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{node_name} (arm64)")),
        "names the node: {stderr}"
    );
    for n in &env.nodes {
        assert!(
            !stderr.contains(n.as_str()),
            "amd64 node {n} is not blamed: {stderr}"
        );
    }
    assert!(stderr.contains("hint:"), "says what to do: {stderr}");
    let written = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(
        written.trim().is_empty(),
        "nothing was written before the check failed: {written}"
    );
    let _ = std::fs::remove_file(&journal);

    // The arm64 node leaves: the pushed image passes for every amd64 node.
    drop(guard);
    common::eventually("the arm64 node is gone", 30, || {
        let nodes = nodes.clone();
        let name = node_name.clone();
        async move {
            nodes
                .get_opt(&name)
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    })
    .await;
    // And the DaemonSets forget it: none still counts a pod for it (the tests after this one
    // wait for their rollouts). Readiness is theirs to wait for.
    let daemonsets: Api<DaemonSet> = Api::namespaced(kube.clone(), "kube-system");
    let want = env.nodes.len() as i32;
    common::eventually("the DaemonSets to forget the arm64 node", 60, || {
        let daemonsets = daemonsets.clone();
        async move {
            let list = daemonsets.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .all(|d| {
                    d.status
                        .as_ref()
                        .is_none_or(|s| s.desired_number_scheduled <= want)
                })
                .then_some(())
        }
    })
    .await;
    let report = json_report(up(&image, &["--dry-run", "--output", "json"])).await;
    let provider = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "provider")
        .expect("a provider step");
    let check = provider["detail"]["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["resource"] == format!("provider image {image}"))
        .unwrap_or_else(|| panic!("the image check line: {provider}"));
    let note = check["note"].as_str().unwrap_or_default();
    assert!(
        note.contains(&format!("linux/amd64 for {} node(s)", env.nodes.len())),
        "{note}"
    );

    // Named by its tag only, the image is deployed at the digest the check resolved: a tag
    // moved between the check and the nodes' pulls cannot swap the image.
    let (by_tag, digest) = image.split_once('@').expect("a pinned reference");
    let plan = ["--dry-run", "--show-manifests", "--output", "json"];
    let report = json_report(up(by_tag, &plan)).await;
    let changes: Vec<Value> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == "provider")
        .flat_map(|s| {
            s["detail"]["changes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let pinned = format!("{by_tag}@{digest}");
    let check = changes
        .iter()
        .find(|c| c["resource"] == format!("provider image {by_tag}"))
        .unwrap_or_else(|| panic!("the image check line: {changes:?}"));
    assert!(
        check["note"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("deployed as {pinned}")),
        "{check}"
    );
    let daemonset = changes
        .iter()
        .find(|c| {
            c["resource"]
                .as_str()
                .is_some_and(|r| r.starts_with("DaemonSet/"))
        })
        .unwrap_or_else(|| panic!("the provider DaemonSet: {changes:?}"));
    let documents = daemonset["documents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !documents.is_empty(),
        "the DaemonSet's manifest: {daemonset}"
    );
    for document in &documents {
        assert_eq!(
            document["spec"]["template"]["spec"]["containers"][0]["image"], pinned,
            "{daemonset}"
        );
    }
}

#[tokio::test]
async fn down_plans_to_delete_only_the_ecr_repositories_bootstrap_created_for_its_cluster() {
    let mut s = common::session!("t");
    let (env, _, cfg, _, cleanup) = s.parts();
    use aws_sdk_ecr::types::Tag;
    let ecr = aws_sdk_ecr::Client::new(cfg);
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().expect("tag");
    let ours = common::unique("owned/aws-csi-provider");
    let other_cluster = common::unique("elsewhere/aws-csi-provider");
    let untagged = common::unique("theirs/aws-csi-provider");
    cleanup.repositories = vec![ours.clone(), other_cluster.clone(), untagged.clone()];
    for (name, tags) in [
        (
            &ours,
            vec![
                tag("bootstrap.podid/managed-by", "bootstrap"),
                tag("bootstrap.podid/cluster", &env.cluster),
            ],
        ),
        (
            &other_cluster,
            vec![
                tag("bootstrap.podid/managed-by", "bootstrap"),
                tag("bootstrap.podid/cluster", "another-cluster"),
            ],
        ),
        (&untagged, Vec::new()),
    ] {
        ecr.create_repository()
            .repository_name(name)
            .set_tags(Some(tags))
            .send()
            .await
            .expect("create an ECR repository");
    }
    let down = [
        "down",
        "--cluster",
        &env.cluster,
        "--dry-run",
        "--output",
        "json",
    ];
    let report = json_report(args(&down)).await;
    let deleted = report["deleted"].to_string();
    assert!(
        deleted.contains(&format!("ECR repository {ours}")),
        "{deleted}"
    );
    assert!(
        !deleted.contains(&other_cluster),
        "another cluster's: {deleted}"
    );
    assert!(!deleted.contains(&untagged), "not bootstrap's: {deleted}");
}
