//! What `down` removes of the controller `up --controller` installed: its objects (Deployment
//! first), its CRDs unless administrators' SecretAllowances would go with them, and its
//! permissions boundary once no role that stays carries it.

use super::boundary;
use super::controller::CRD_NAMES;
use super::discover::{Inventory, OwnedObject};
use super::objects;
use crate::plan::{Action, Change};

/// The controller's deletions and what stays of it.
pub struct ControllerTeardown {
    pub objects: Vec<Change>,
    pub kept: Vec<Change>,
}

fn keep(resource: impl Into<String>, why: impl Into<String>) -> Change {
    Change::new(Action::Keep, resource).note(why)
}

/// Its objects, in order: the Deployment (its pods stop acting), RBAC, service account,
/// Lease, then the CRDs. `scoped` (`--workloads-only`, `--namespace`): all kept.
pub fn plan(inv: &Inventory, scoped: bool) -> ControllerTeardown {
    let mut mine: Vec<&OwnedObject> = inv.objects.iter().filter(|o| o.controller()).collect();
    let mut out = ControllerTeardown {
        objects: Vec::new(),
        kept: Vec::new(),
    };
    if mine.is_empty() {
        return out;
    }
    if scoped {
        out.kept.push(keep(
            "the controller (bootstrap-controller)",
            "platform kept (--workloads-only or --namespace)",
        ));
        return out;
    }
    let rank = |o: &OwnedObject| match o.reference.kind.as_str() {
        "Deployment" => 0,
        "CustomResourceDefinition" => 2,
        _ => 1,
    };
    mine.sort_by_key(|o| rank(o));
    for o in mine {
        let allowance_crd =
            o.reference.kind == "CustomResourceDefinition" && o.reference.name == CRD_NAMES[1];
        if allowance_crd && !inv.allowances.is_empty() {
            out.kept.push(keep(
                o.reference.to_string(),
                format!(
                    "SecretAllowance objects an administrator wrote still exist: {} (deleting the CRD would delete them; delete them first to remove it)",
                    inv.allowances.join(", ")
                ),
            ));
            continue;
        }
        out.objects.push(objects::plan_delete(&o.reference));
    }
    out
}

/// The boundary: deleted when bootstrap made it and no role that stays carries it (IAM refuses
/// to delete a policy in use as a boundary).
pub fn plan_boundary(inv: &Inventory, deleted_roles: &[String]) -> (Vec<Change>, Vec<Change>) {
    let Some(live) = &inv.boundary else {
        return (Vec::new(), Vec::new());
    };
    let resource = format!("IAM policy {}", live.arn);
    if !live.owned {
        return (
            Vec::new(),
            vec![keep(
                resource,
                "not made by bootstrap for this cluster: left as is",
            )],
        );
    }
    let users: Vec<&str> = inv
        .roles
        .iter()
        .filter(|r| r.boundary.as_deref() == Some(live.arn.as_str()))
        .filter(|r| !deleted_roles.contains(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    if !users.is_empty() {
        return (
            Vec::new(),
            vec![keep(
                resource,
                format!(
                    "still the permissions boundary of role(s) this run keeps: {}",
                    users.join(", ")
                ),
            )],
        );
    }
    (
        boundary::plan_delete(live).into_iter().collect(),
        Vec::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ObjectRef;
    use crate::resources::boundary::LivePolicy;
    use crate::resources::role::LiveRole;

    const ARN: &str = "arn:aws:iam::1:policy/bootstrap-c-controller-boundary";

    fn installed() -> Inventory {
        let obj = |api: &str, kind: &str, ns: Option<&str>, name: &str| OwnedObject {
            reference: ObjectRef::new(api, kind, ns, name),
            component: "bootstrap-controller".into(),
        };
        let crd = "apiextensions.k8s.io/v1";
        Inventory {
            objects: vec![
                obj(crd, "CustomResourceDefinition", None, CRD_NAMES[0]),
                obj(crd, "CustomResourceDefinition", None, CRD_NAMES[1]),
                obj(
                    "rbac.authorization.k8s.io/v1",
                    "ClusterRole",
                    None,
                    "bootstrap-controller",
                ),
                obj(
                    "apps/v1",
                    "Deployment",
                    Some("kube-system"),
                    "bootstrap-controller",
                ),
                obj(
                    "coordination.k8s.io/v1",
                    "Lease",
                    Some("kube-system"),
                    "bootstrap-controller",
                ),
            ],
            boundary: Some(LivePolicy {
                arn: ARN.into(),
                owned: true,
                default_version: "v1".into(),
                ..LivePolicy::default()
            }),
            ..Inventory::default()
        }
    }

    fn resources(changes: &[Change]) -> Vec<&str> {
        changes.iter().map(|c| c.resource.as_str()).collect()
    }

    #[test]
    fn the_deployment_goes_first_and_the_crds_last() {
        let t = plan(&installed(), false);
        let r = resources(&t.objects);
        assert_eq!(r[0], "Deployment/kube-system/bootstrap-controller");
        assert!(
            r[3..]
                .iter()
                .all(|x| x.starts_with("CustomResourceDefinition/")),
            "{r:?}"
        );
        assert_eq!(r.len(), 5);
        assert!(t.kept.is_empty());
    }

    #[test]
    fn an_administrators_allowance_keeps_its_crd() {
        let mut inv = installed();
        inv.allowances = vec!["payments".into()];
        let t = plan(&inv, false);
        let r = resources(&t.objects);
        assert!(!r.contains(&"CustomResourceDefinition/secretallowances.bootstrap.podid"));
        assert!(r.contains(&"CustomResourceDefinition/teamsecrets.bootstrap.podid"));
        assert_eq!(t.kept.len(), 1);
        assert!(t.kept[0].note.as_deref().unwrap().contains("payments"));
    }

    #[test]
    fn a_scoped_down_keeps_the_controller() {
        let t = plan(&installed(), true);
        assert!(t.objects.is_empty());
        assert_eq!(t.kept.len(), 1);
    }

    #[test]
    fn the_boundary_stays_while_a_kept_role_carries_it_and_when_not_ours() {
        let mut inv = installed();
        inv.roles = vec![LiveRole {
            name: "team-role".into(),
            owned: true,
            boundary: Some(ARN.into()),
            ..LiveRole::default()
        }];
        let (deletes, kept) = plan_boundary(&inv, &[]);
        assert!(deletes.is_empty());
        assert!(kept[0].note.as_deref().unwrap().contains("team-role"));
        let (deletes, kept) = plan_boundary(&inv, &["team-role".into()]);
        assert_eq!(resources(&deletes), [format!("IAM policy {ARN}").as_str()]);
        assert!(kept.is_empty());
        inv.boundary.as_mut().unwrap().owned = false;
        let (deletes, kept) = plan_boundary(&inv, &["team-role".into()]);
        assert!(deletes.is_empty());
        assert!(
            kept[0]
                .note
                .as_deref()
                .unwrap()
                .contains("not made by bootstrap")
        );
    }
}
