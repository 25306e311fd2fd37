use super::*;
use crate::cluster::config::Auth;
use crate::test_server::serve;

fn lookup(url: &str) -> KubeLookup {
    let config = Config {
        server: url.to_string(),
        roots: Vec::new(),
        client_cert: None,
        auth: Auth::None,
    };
    KubeLookup::with_client(KubeClient::new(config).expect("client"))
}

#[tokio::test]
async fn reads_role_annotation_and_node_region() {
    let server = serve(|path| {
        let body = match path {
            "/api/v1/namespaces/demo/serviceaccounts/web" => serde_json::json!({"apiVersion": "v1",
                "kind": "ServiceAccount", "metadata": {"name": "web",
                "annotations": {ROLE_ANNOTATION: "arn:aws:iam::1:role/web"}}}),
            "/api/v1/namespaces/demo/pods/web-0" => serde_json::json!({"apiVersion": "v1",
                "kind": "Pod", "metadata": {"name": "web-0"},
                "spec": {"nodeName": "node-a", "containers": [{"name": "c"}]}}),
            "/api/v1/nodes/node-a" => serde_json::json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "node-a", "labels": {REGION_LABEL: "eu-central-1"}}}),
            _ => return (404, b"{}".to_vec()),
        };
        (200, serde_json::to_vec(&body).unwrap_or_default())
    })
    .await;
    let lookup = lookup(&server.url);
    let role = lookup.role_arn("demo", "web").await.expect("role lookup");
    assert_eq!(role.as_deref(), Some("arn:aws:iam::1:role/web"));
    let region = lookup
        .node_region("demo", "web-0")
        .await
        .expect("region lookup");
    assert_eq!(region.as_deref(), Some("eu-central-1"));
}

#[tokio::test]
async fn not_found_and_forbidden_are_told_apart() {
    let server = serve(|path| {
        if path.contains("serviceaccounts") {
            (
                404,
                br#"{"kind":"Status","message":"serviceaccounts \"gone\" not found"}"#.to_vec(),
            )
        } else {
            (
                403,
                br#"{"kind":"Status","message":"pods \"p\" is forbidden"}"#.to_vec(),
            )
        }
    })
    .await;
    let lookup = lookup(&server.url);
    let e = lookup.role_arn("demo", "gone").await.expect_err("404");
    assert_eq!(
        e,
        format!(
            "serviceaccount demo/gone not found (GET {}/api/v1/namespaces/demo/serviceaccounts/gone: 404 Not Found: serviceaccounts \"gone\" not found)",
            server.url
        )
    );
    let e = lookup.node_region("demo", "p").await.expect_err("403");
    assert!(e.starts_with("get pod demo/p: GET "), "{e}");
    assert!(
        e.ends_with(
            "hint: the provider's ClusterRole needs pods get when the region comes from the node"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn refuses_names_that_would_change_the_path() {
    let server = serve(|_| (200, b"{}".to_vec())).await;
    let lookup = lookup(&server.url);
    for (ns, name) in [
        ("demo", "../nodes/x"),
        ("demo/x", "web"),
        ("demo", "a?b"),
        ("demo", ""),
    ] {
        let e = lookup.role_arn(ns, name).await.expect_err("refused");
        assert!(e.contains("not a valid Kubernetes name"), "{e}");
    }
    assert!(server.seen.lock().expect("seen").is_empty());
}

#[tokio::test]
async fn a_pod_without_a_node_has_no_region() {
    let server = serve(|_| (200, br#"{"metadata":{"name":"p"},"spec":{}}"#.to_vec())).await;
    let region = lookup(&server.url)
        .node_region("demo", "p")
        .await
        .expect("lookup");
    assert_eq!(region, None);
    assert_eq!(server.seen.lock().expect("seen").len(), 1);
}
