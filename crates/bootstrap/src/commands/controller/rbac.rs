//! The controller's own Kubernetes permissions: what a reconcile reads and writes, and nothing
//! else (no Secrets, no cluster-wide writes beyond the kinds a team's chain is made of).

use serde_json::{Value, json};

/// The name of the service account, ClusterRole and bindings.
pub use crate::resources::controller::NAME;

/// The rules of the controller's ClusterRole.
fn cluster_rules() -> Value {
    json!([
        // Its own kinds: teams' requests (status and finalizer written), administrators'
        // allowances (read only).
        {"apiGroups": ["bootstrap.podid"], "resources": ["teamsecrets"],
         "verbs": ["get", "list", "watch", "patch", "update"]},
        {"apiGroups": ["bootstrap.podid"], "resources": ["teamsecrets/status"],
         "verbs": ["get", "patch", "update"]},
        {"apiGroups": ["bootstrap.podid"], "resources": ["secretallowances"],
         "verbs": ["get", "list", "watch"]},
        // What a team's chain is made of, in the team's namespace.
        {"apiGroups": ["secrets-store.csi.x-k8s.io"], "resources": ["secretproviderclasses"],
         "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
        {"apiGroups": [""], "resources": ["serviceaccounts"],
         "verbs": ["get", "list", "create", "patch", "update", "delete"]},
        // The verification pod, and the driver's record of its mount.
        {"apiGroups": [""], "resources": ["pods"],
         "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        {"apiGroups": ["secrets-store.csi.x-k8s.io"], "resources": ["secretproviderclasspodstatuses"],
         "verbs": ["get", "list"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]},
        // Preflight: the cluster's nodes (region, readiness) and namespaces.
        {"apiGroups": [""], "resources": ["nodes", "namespaces"], "verbs": ["get", "list"]},
    ])
}

/// Its service account, ClusterRole and binding, and a Role on Leases in `lease_namespace`
/// (the only namespaced grant: election needs no other namespace).
pub fn objects(namespace: &str, lease_namespace: &str, lease_name: &str) -> Vec<Value> {
    let subject = json!([{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]);
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": NAME, "namespace": namespace}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": NAME}, "rules": cluster_rules()}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": NAME},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
               "subjects": subject}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": NAME, "namespace": lease_namespace},
        "rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": [lease_name], "verbs": ["get", "update", "patch"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": NAME, "namespace": lease_namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
               "subjects": subject}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Value> {
        cluster_rules().as_array().unwrap().clone()
    }

    #[test]
    fn no_secrets_no_wildcards_no_rbac_writes() {
        for rule in rules() {
            let text = rule.to_string();
            assert!(!text.contains('*'), "{text}");
            for forbidden in [
                "\"secrets\"",
                "clusterroles",
                "rolebindings",
                "escalate",
                "impersonate",
                "pods/exec",
                "nodes/proxy",
            ] {
                assert!(!text.contains(forbidden), "{forbidden} in {text}");
            }
        }
    }

    #[test]
    fn allowances_and_cluster_objects_are_read_only() {
        let writes = ["create", "patch", "update", "delete"];
        for rule in rules() {
            let resources = rule["resources"].to_string();
            if ["secretallowances", "nodes", "namespaces", "podstatuses"]
                .iter()
                .any(|r| resources.contains(r))
            {
                for verb in rule["verbs"].as_array().unwrap() {
                    assert!(!writes.contains(&verb.as_str().unwrap()), "{rule}");
                }
            }
        }
    }

    #[test]
    fn the_lease_grant_is_one_namespace_and_one_name() {
        let objs = objects("ops", "ops", "bootstrap-controller");
        let role = objs.iter().find(|o| o["kind"] == "Role").unwrap();
        assert_eq!(role["metadata"]["namespace"], "ops");
        let named = &role["rules"][1];
        assert_eq!(named["resourceNames"], json!(["bootstrap-controller"]));
        assert_eq!(role["rules"][0]["verbs"], json!(["create"]));
        for binding in objs
            .iter()
            .filter(|o| o["kind"].as_str().unwrap().ends_with("Binding"))
        {
            assert_eq!(binding["subjects"][0]["name"], NAME);
            assert_eq!(binding["subjects"][0]["namespace"], "ops");
        }
    }
}
