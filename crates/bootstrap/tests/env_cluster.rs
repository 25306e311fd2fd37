//! The local environment's Kubernetes half: server-side apply, CRDs and DaemonSet rollouts
//! on the fake (kwok) EKS nodes, against the real kube-apiserver and controllers.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

const MANAGER: &str = "bootstrap-env-test";

/// Server-side applies `obj` as `name` with the test's one field manager.
async fn apply<K>(api: &Api<K>, name: &str, obj: &serde_json::Value) -> kube::Result<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
}

#[tokio::test]
async fn crd_and_custom_resource_are_server_side_applied_and_established() {
    let mut s = common::session!("t");
    let (_, _, _, client, cleanup) = s.parts();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.envtest.bootstrap.test"},
        "spec": {
            "group": "envtest.bootstrap.test", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}
            }}}]
        }
    });
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let applied = apply(&crds, "widgets.envtest.bootstrap.test", &crd)
        .await
        .expect("server-side apply of the CRD");
    assert_eq!(applied.spec.names.kind, "Widget");
    let established = await_condition(
        crds.clone(),
        "widgets.envtest.bootstrap.test",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(30), established)
        .await
        .expect("CRD not Established within 30s")
        .expect("watch of the CRD");

    // Removed when the test ends, pass or fail.
    let ns = common::make::namespace(client, cleanup, "env-a").await;
    let gvk = GroupVersionKind::gvk("envtest.bootstrap.test", "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let cr = json!({"apiVersion": "envtest.bootstrap.test/v1", "kind": "Widget",
                    "metadata": {"name": "w1"}, "spec": {"size": 3}});
    let first = common::eventually("the Widget kind to be served", 30, || {
        let widgets = widgets.clone();
        let cr = cr.clone();
        async move { apply(&widgets, "w1", &cr).await.ok() }
    })
    .await;
    assert_eq!(first.data["spec"]["size"], 3);
    let managers: Vec<_> = first
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(
        managers,
        vec![MANAGER.to_string()],
        "one field manager owns the object"
    );
    assert_eq!(
        first.metadata.managed_fields.as_ref().unwrap()[0]
            .operation
            .as_deref(),
        Some("Apply")
    );

    // Applying the same document again is a no-op: the object is not rewritten.
    let again = apply(&widgets, "w1", &cr).await.expect("re-apply");
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );
    // A changed field is updated in place.
    let bigger = json!({"apiVersion": "envtest.bootstrap.test/v1", "kind": "Widget",
                        "metadata": {"name": "w1"}, "spec": {"size": 5}});
    let updated = apply(&widgets, "w1", &bigger).await.expect("update");
    assert_eq!(updated.data["spec"]["size"], 5);
    assert_ne!(
        updated.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn fake_eks_nodes_are_ready_and_labelled() {
    let mut s = common::session!("t");
    let (env, _, _, client, _) = s.parts();
    let nodes: Api<Node> = Api::all(client.clone());
    let ready = common::eventually("both fake nodes Ready", 60, || {
        let nodes = nodes.clone();
        async move {
            let list = nodes.list(&ListParams::default()).await.ok()?;
            let ready: Vec<Node> = list
                .items
                .into_iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .collect();
            (ready.len() >= 2).then_some(ready)
        }
    })
    .await;
    for node in &ready {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert!(
            labels.contains_key("eks.amazonaws.com/nodegroup"),
            "{:?}",
            node.metadata.name
        );
        assert_eq!(
            labels
                .get("topology.kubernetes.io/region")
                .map(String::as_str),
            std::env::var("AWS_REGION").ok().as_deref()
        );
        assert!(env.nodes.contains(node.metadata.name.as_ref().unwrap()));
    }
}

#[tokio::test]
async fn daemonset_rolls_out_on_every_fake_node() {
    let mut s = common::session!("t");
    let (env, _, _, client, cleanup) = s.parts();
    // Removed when the test ends, pass or fail.
    let ns = common::make::namespace(client, cleanup, "env-b").await;
    let ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "probe", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "probe", "image": "public.ecr.aws/docker/library/busybox:1.37"}]
                }
            }
        }
    });
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
    apply(&api, "probe", &ds).await.expect("apply DaemonSet");
    let want = env.nodes.len() as i32;
    let status = common::eventually("the DaemonSet to roll out", 90, || {
        let api = api.clone();
        async move {
            let ds = api.get("probe").await.ok()?;
            let st = ds.status?;
            let done = st.desired_number_scheduled == want
                && st.number_ready == want
                && st.updated_number_scheduled == Some(want)
                && st.number_available == Some(want)
                && st.observed_generation >= ds.metadata.generation;
            done.then_some(st)
        }
    })
    .await;
    assert_eq!(status.number_unavailable.unwrap_or(0), 0);
}
