//! The deletion plan of `down`, from an [`Inventory`]: owned things only, in reverse
//! dependency order, keeping (with the reason) a namespace that holds someone else's objects
//! and the driver's CRDs while a SecretProviderClass bootstrap does not own needs them.

use super::controller::is_controller;
use super::discover::{Inventory, OwnedObject};
use super::{addon, association, objects, secrets};
use crate::plan::{Action, Change};

/// What `down` removes.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this namespace's workload (its objects, association and role).
    pub namespace: Option<String>,
    /// Keep the platform (add-ons, driver, provider).
    pub workloads_only: bool,
    /// Delete owned namespaces even when they hold objects bootstrap does not own.
    pub force: bool,
}

/// The steps of `down` in order, each with its changes, and what stays.
#[derive(Debug, Clone, Default)]
pub struct Teardown {
    pub steps: Vec<(&'static str, Vec<Change>)>,
    pub kept: Vec<Change>,
}

/// The step names of `down`, in order.
pub const STEPS: [&str; 12] = [
    "controller",
    "sample-pods",
    "secretproviderclasses",
    "serviceaccounts",
    "namespaces",
    "associations",
    "iam-roles",
    "controller-boundary",
    "provider",
    "csi-driver",
    "addons",
    "ecr-repositories",
];

fn keep(resource: impl Into<String>, why: impl Into<String>) -> Change {
    Change::new(Action::Keep, resource).note(why)
}

pub fn plan(inv: &Inventory, cluster: &str, scope: &Scope) -> Teardown {
    let in_scope = |ns: Option<&str>| match (&scope.namespace, ns) {
        (None, _) => true,
        (Some(want), Some(ns)) => want == ns,
        (Some(_), None) => false,
    };
    let mut t = Teardown::default();
    let scoped = scope.workloads_only || scope.namespace.is_some();
    // The controller first, so that it does not act while its teams' things go.
    let controller = super::teardown_controller::plan(inv, scoped);
    t.steps.push(("controller", controller.objects));
    t.kept.extend(controller.kept);
    let workload = |kind: &str| -> Vec<&OwnedObject> {
        inv.objects
            .iter()
            .filter(|o| !o.platform() && o.reference.kind == kind)
            .filter(|o| {
                let ns = if kind == "Namespace" {
                    Some(o.reference.name.as_str())
                } else {
                    o.reference.namespace.as_deref()
                };
                in_scope(ns)
            })
            .collect()
    };
    let deletes = |list: Vec<&OwnedObject>| -> Vec<Change> {
        list.iter()
            .map(|o| objects::plan_delete(&o.reference))
            .collect()
    };
    t.steps.push(("sample-pods", deletes(workload("Pod"))));
    t.steps.push((
        "secretproviderclasses",
        deletes(workload("SecretProviderClass")),
    ));
    t.steps
        .push(("serviceaccounts", deletes(workload("ServiceAccount"))));

    // Namespaces: only when nothing foreign is inside (unless forced).
    let mut namespaces = Vec::new();
    let mut deleted_namespaces = Vec::new();
    for ns in workload("Namespace") {
        let name = &ns.reference.name;
        let foreign = inv
            .foreign_in_namespace
            .get(name)
            .cloned()
            .unwrap_or_default();
        let unknown = inv
            .unknown_in_namespace
            .get(name)
            .cloned()
            .unwrap_or_default();
        if (foreign.is_empty() && unknown.is_empty()) || scope.force {
            let mut change = objects::plan_delete(&ns.reference);
            if !foreign.is_empty() || !unknown.is_empty() {
                change = change.note(format!(
                    "--force: also deletes what bootstrap did not create: {}",
                    foreign
                        .iter()
                        .cloned()
                        .chain(unknown.iter().map(|u| format!("whatever is in {u}")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            namespaces.push(change);
            deleted_namespaces.push(name.clone());
        } else {
            let mut why = Vec::new();
            if !foreign.is_empty() {
                why.push(format!(
                    "holds objects bootstrap did not create: {}",
                    foreign.join(", ")
                ));
            }
            if !unknown.is_empty() {
                why.push(format!(
                    "could not check what else it holds: {} (fix access to those kinds and re-run)",
                    unknown.join("; ")
                ));
            }
            t.kept.push(keep(
                ns.reference.to_string(),
                format!(
                    "{} (pass --force to delete whatever is there with it)",
                    why.join("; ")
                ),
            ));
        }
    }
    t.steps.push(("namespaces", namespaces));

    let mut assocs = Vec::new();
    for a in inv
        .associations
        .iter()
        .filter(|a| in_scope(Some(&a.namespace)))
    {
        if scoped && is_controller(&a.namespace, &a.service_account) {
            t.kept.push(keep(
                format!(
                    "Pod Identity association {}/{}",
                    a.namespace, a.service_account
                ),
                "the controller's own (platform kept: --workloads-only or --namespace)",
            ));
            continue;
        }
        match association::plan_delete(cluster, a) {
            Some(change) => assocs.push(change),
            None => t.kept.push(keep(
                format!(
                    "Pod Identity association {}/{}",
                    a.namespace, a.service_account
                ),
                format!("not made by bootstrap (role {})", a.role_arn),
            )),
        }
    }
    t.steps.push(("associations", assocs));

    let (roles, kept_roles) = super::teardown_roles::plan(inv, scope);
    let deleted_roles: Vec<String> = roles
        .iter()
        .map(|c| c.resource.trim_start_matches("IAM role ").to_string())
        .collect();
    t.steps.push(("iam-roles", roles));
    t.kept.extend(kept_roles);
    if !scoped {
        let (boundary, kept) = super::teardown_controller::plan_boundary(inv, &deleted_roles);
        t.steps.push(("controller-boundary", boundary));
        t.kept.extend(kept);
    }

    if scope.workloads_only || scope.namespace.is_some() {
        for (name, _) in &inv.addons {
            t.kept.push(keep(
                format!("EKS add-on {name}"),
                "platform kept (--workloads-only or --namespace)",
            ));
        }
        if inv.objects.iter().any(OwnedObject::platform) {
            t.kept.push(keep(
                "driver and provider",
                "platform kept (--workloads-only or --namespace)",
            ));
        }
        for repo in &inv.ecr_repositories {
            t.kept.push(keep(
                format!("ECR repository {repo}"),
                "platform kept (--workloads-only or --namespace)",
            ));
        }
        if let Some(name) = &inv.demo_secret
            && scope.namespace.is_some()
        {
            t.kept.push(keep(
                format!("secret {name}"),
                "the cluster's demo secret (not part of one namespace)",
            ));
        } else if let Some(name) = &inv.demo_secret {
            t.steps
                .push(("demo-secret", vec![secrets::plan_delete_demo(name)]));
        }
        return t;
    }

    // A foreign SecretProviderClass that survives keeps the CRDs, and the driver they serve.
    let blocking: Vec<String> = inv
        .foreign_spcs
        .iter()
        .filter(|(ns, _)| !deleted_namespaces.contains(ns))
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect();
    let platform = |component: &str| -> Vec<&OwnedObject> {
        let mut list: Vec<&OwnedObject> = inv
            .objects
            .iter()
            .filter(|o| o.platform() && !o.controller() && (component == "driver") == o.driver())
            .collect();
        // DaemonSets first (their pods go), CRDs last.
        let rank = |o: &OwnedObject| match o.reference.kind.as_str() {
            "DaemonSet" => 0,
            "CustomResourceDefinition" => 3,
            "ServiceAccount" => 2,
            _ => 1,
        };
        list.sort_by_key(|o| rank(o));
        list
    };
    t.steps.push(("provider", deletes(platform("provider"))));
    if blocking.is_empty() {
        t.steps.push(("csi-driver", deletes(platform("driver"))));
    } else if !platform("driver").is_empty() {
        t.kept.push(keep(
            "the Secrets Store CSI Driver and its CRDs",
            format!(
                "SecretProviderClasses bootstrap did not create still use them: {} (deleting the CRDs would delete those)",
                blocking.join(", ")
            ),
        ));
        t.steps.push(("csi-driver", Vec::new()));
    }
    let mut addons = Vec::new();
    for (name, state) in &inv.addons {
        match addon::plan_delete(cluster, name, state) {
            Some(change) => addons.push(change),
            None => t.kept.push(keep(
                format!("EKS add-on {name}"),
                "installed outside bootstrap (adopted): left as is",
            )),
        }
    }
    t.steps.push(("addons", addons));
    t.steps.push((
        "ecr-repositories",
        inv.ecr_repositories
            .iter()
            .map(|repo| {
                Change::new(Action::Delete, format!("ECR repository {repo}"))
                    .note("created by `bootstrap image push`; its images go with it")
                    .ops([crate::plan::Op::DeleteEcrRepository {
                        repository: repo.clone(),
                    }])
            })
            .collect(),
    ));
    if let Some(name) = &inv.demo_secret {
        t.steps
            .push(("demo-secret", vec![secrets::plan_delete_demo(name)]));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ObjectRef;
    use crate::resources::addon::AddonState;
    use crate::resources::association::LiveAssociation;

    fn obj(api: &str, kind: &str, ns: Option<&str>, name: &str, component: &str) -> OwnedObject {
        OwnedObject {
            reference: ObjectRef::new(api, kind, ns, name),
            component: component.into(),
        }
    }

    fn inventory() -> Inventory {
        Inventory {
            roles: vec![crate::resources::role::LiveRole {
                name: "bootstrap-c-team-app".into(),
                arn: "arn:aws:iam::1:role/bootstrap-c-team-app".into(),
                owned: true,
                inline_names: vec!["bootstrap-read-secrets".into()],
                ..crate::resources::role::LiveRole::default()
            }],
            associations: vec![
                LiveAssociation {
                    id: "a-1".into(),
                    namespace: "team".into(),
                    service_account: "app".into(),
                    role_arn: "arn:aws:iam::1:role/bootstrap-c-team-app".into(),
                    target_role_arn: None,
                    owned: true,
                },
                LiveAssociation {
                    id: "a-2".into(),
                    namespace: "other".into(),
                    service_account: "x".into(),
                    role_arn: "arn:aws:iam::1:role/theirs".into(),
                    target_role_arn: None,
                    owned: false,
                },
            ],
            addons: vec![(
                "eks-pod-identity-agent".into(),
                AddonState::Present {
                    owned: false,
                    status: None,
                    version: "v1".into(),
                },
            )],
            demo_secret: Some("bootstrap/c/demo".into()),
            objects: vec![
                obj("v1", "Namespace", None, "team", "bootstrap-workload"),
                obj(
                    "v1",
                    "ServiceAccount",
                    Some("team"),
                    "app",
                    "bootstrap-workload",
                ),
                obj(
                    "secrets-store.csi.x-k8s.io/v1",
                    "SecretProviderClass",
                    Some("team"),
                    "bootstrap-app",
                    "bootstrap-workload",
                ),
                obj(
                    "apps/v1",
                    "DaemonSet",
                    Some("kube-system"),
                    "secrets-store-csi-driver",
                    "secrets-store-csi-driver",
                ),
                obj(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    None,
                    "secretproviderclasses.secrets-store.csi.x-k8s.io",
                    "secrets-store-csi-driver",
                ),
                obj(
                    "apps/v1",
                    "DaemonSet",
                    Some("kube-system"),
                    "aws-csi-provider",
                    "aws-csi-provider",
                ),
            ],
            foreign_in_namespace: [("team".to_string(), vec!["ConfigMap/app-config".to_string()])]
                .into_iter()
                .collect(),
            unknown_in_namespace: Default::default(),
            foreign_spcs: vec![("elsewhere".into(), "theirs".into())],
            ecr_repositories: vec!["mirror/aws-csi-provider".into()],
            ..Inventory::default()
        }
    }

    fn forced() -> Scope {
        Scope {
            force: true,
            ..Scope::default()
        }
    }

    fn deleted(t: &Teardown) -> Vec<String> {
        t.steps
            .iter()
            .flat_map(|(_, c)| c.iter().map(|c| c.resource.clone()))
            .collect()
    }

    #[test]
    fn foreign_objects_keep_their_namespace_and_foreign_spcs_keep_the_crds() {
        let t = plan(&inventory(), "c", &Scope::default());
        let gone = deleted(&t);
        assert!(gone.contains(&"ServiceAccount/team/app".to_string()));
        assert!(!gone.iter().any(|r| r == "Namespace/team"), "{gone:?}");
        assert!(!gone.iter().any(|r| r.contains("CustomResourceDefinition")));
        assert!(!gone.iter().any(|r| r.contains("secrets-store-csi-driver")));
        assert!(gone.iter().any(|r| r.contains("aws-csi-provider")));
        assert!(
            !gone.iter().any(|r| r.contains("other/x")),
            "a foreign association"
        );
        assert!(
            !gone.iter().any(|r| r.contains("eks-pod-identity-agent")),
            "adopted add-on"
        );
        let kept: Vec<String> = t
            .kept
            .iter()
            .map(|k| format!("{} {}", k.resource, k.note.clone().unwrap_or_default()))
            .collect();
        assert!(
            kept.iter()
                .any(|k| k.contains("Namespace/team") && k.contains("ConfigMap/app-config"))
        );
        assert!(
            kept.iter()
                .any(|k| k.contains("CRDs") && k.contains("elsewhere/theirs"))
        );
        assert!(kept.iter().any(|k| k.contains("eks-pod-identity-agent")));
        // The ECR repository `image push --cluster c` created goes, after the platform.
        let (_, ecr) = t
            .steps
            .iter()
            .find(|(n, _)| *n == "ecr-repositories")
            .expect("ecr step");
        assert_eq!(ecr.len(), 1);
        assert_eq!(
            ecr[0].ops[0].to_string(),
            "ecr:DeleteRepository RepositoryName=mirror/aws-csi-provider Force=true"
        );
        // Roles after their associations, inline policies before the role.
        let order: Vec<&str> = t.steps.iter().map(|(n, _)| *n).collect();
        let pos = |n: &str| order.iter().position(|x| *x == n).expect(n);
        assert!(pos("associations") < pos("iam-roles"));
        assert!(pos("namespaces") < pos("csi-driver"));
    }

    #[test]
    fn force_deletes_the_namespace_and_then_the_crds_may_go() {
        let mut inv = inventory();
        inv.foreign_spcs = vec![("team".into(), "theirs".into())];
        let t = plan(&inv, "c", &forced());
        let gone = deleted(&t);
        assert!(gone.iter().any(|r| r == "Namespace/team"));
        let crd = gone
            .iter()
            .position(|r| r.contains("CustomResourceDefinition"))
            .expect("crd");
        let ds = gone
            .iter()
            .position(|r| r.contains("DaemonSet/kube-system/secrets-store-csi-driver"))
            .expect("ds");
        assert!(ds < crd, "the DaemonSet before the CRDs");
    }

    #[test]
    fn a_namespace_with_kinds_that_could_not_be_listed_stays() {
        let mut inv = inventory();
        inv.foreign_in_namespace.insert("team".into(), Vec::new());
        inv.unknown_in_namespace.insert(
            "team".into(),
            vec!["Widget (example.com/v2): conversion webhook failed".into()],
        );
        let t = plan(&inv, "c", &Scope::default());
        assert!(!deleted(&t).iter().any(|r| r == "Namespace/team"));
        let why = t
            .kept
            .iter()
            .find(|k| k.resource == "Namespace/team")
            .and_then(|k| k.note.clone())
            .expect("kept with a reason");
        assert!(
            why.contains("Widget") && why.contains("conversion webhook"),
            "{why}"
        );
        let forced = plan(&inv, "c", &forced());
        assert!(deleted(&forced).iter().any(|r| r == "Namespace/team"));
    }

    #[test]
    fn workloads_only_and_one_namespace_keep_the_platform() {
        let t = plan(
            &inventory(),
            "c",
            &Scope {
                workloads_only: true,
                ..Scope::default()
            },
        );
        let gone = deleted(&t);
        assert!(!gone.iter().any(|r| r.contains("DaemonSet")));
        assert!(!gone.iter().any(|r| r.contains("ECR repository")));
        assert!(
            t.kept
                .iter()
                .any(|k| k.resource == "ECR repository mirror/aws-csi-provider")
        );
        assert!(gone.iter().any(|r| r.contains("IAM role")));
        let t = plan(
            &inventory(),
            "c",
            &Scope {
                namespace: Some("other".into()),
                ..Scope::default()
            },
        );
        assert!(
            deleted(&t).is_empty(),
            "nothing owned in namespace other: {:?}",
            deleted(&t)
        );
    }
}
