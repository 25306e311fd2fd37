//! `up --controller`: the controller's permissions boundary, its own Pod Identity role (with
//! `--print-iam-policy`'s policy) and association, its CRDs, RBAC and a two-replica Deployment,
//! observed and planned like the rest of `up` and run by the same executor.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{crd, iam, rbac};
use crate::error::StepError;
use crate::plan::{Action, Op, StepOutcome};
use crate::resources::controller::{CRD_NAMES, NAME, NAMESPACE};
use crate::resources::role::{Confinement, RoleSpec};
use crate::resources::workload::{PlanError, at};
use crate::resources::{Workload, association, boundary, objects, role};
use crate::service_account::ServiceAccountRef;
use crate::target::Target;
use bootstrap_common::names::LABEL_CLUSTER;

pub use crate::resources::controller::InstallSettings;

/// The port its metrics are served on.
pub const METRICS_PORT: u16 = 9090;

/// The planned changes, by step.
pub struct InstallPlan {
    /// The boundary policy and the controller's role.
    pub iam: StepOutcome,
    pub association: StepOutcome,
    /// CRDs, RBAC, Deployment (then the CRDs Established and the rollout).
    pub objects: StepOutcome,
}

/// Labels every installed object carries: bootstrap's, for this cluster, component `NAME`.
fn labelled(mut object: Value, cluster: &str) -> Value {
    let mut extra = BTreeMap::new();
    extra.insert(LABEL_CLUSTER.to_string(), cluster.to_string());
    let labels = crate::render::base_labels(NAME, &extra);
    let meta = &mut object["metadata"];
    if !meta["labels"].is_object() {
        meta["labels"] = json!({});
    }
    for (k, v) in labels {
        meta["labels"][k] = Value::String(v);
    }
    object
}

/// The Deployment: two replicas (one leads through the Lease), spread over nodes, as the
/// non-root user of the image, nothing writable, no privilege.
pub fn deployment(t_cluster: &str, region: &str, image: &str, confinement: &Confinement) -> Value {
    let selector = json!({"app.kubernetes.io/name": NAME});
    let field = |path: &str| json!({"valueFrom": {"fieldRef": {"fieldPath": path}}});
    let mut pod_name = field("metadata.name");
    pod_name["name"] = json!("POD_NAME");
    let mut pod_namespace = field("metadata.namespace");
    pod_namespace["name"] = json!("POD_NAMESPACE");
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {
                    "app.kubernetes.io/name": NAME,
                    "app.kubernetes.io/part-of": "bootstrap",
                }},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": selector},
                        },
                    }]}},
                    "containers": [{
                        "name": "controller",
                        "image": image,
                        "args": [
                            "controller",
                            "--cluster", t_cluster,
                            "--region", region,
                            "--permissions-boundary", confinement.boundary,
                            "--role-path", confinement.path,
                            "--metrics-addr", format!("0.0.0.0:{METRICS_PORT}"),
                        ],
                        "env": [pod_name, pod_namespace],
                        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
                        "livenessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"},
                                          "periodSeconds": 20},
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        },
    })
}

/// The name of the admission policy (and its binding) on the controller's pods.
pub const POD_POLICY: &str = "bootstrap-controller-pods";

/// What the apiserver lets the controller's service account do with pods, whatever its RBAC
/// (which must grant pod creation in every team's namespace, for the verification pod): only
/// the verification pod — the sample image with its own command, no API token, no host
/// namespaces, no privilege, no volume but the Secrets Store CSI driver's. A compromised
/// controller can then run no code as another namespace's service account, and read no mount
/// (it may not exec or read logs).
pub fn pod_policy(sample_image: &str) -> Vec<Value> {
    let user = format!("system:serviceaccount:{NAMESPACE}:{NAME}");
    let rule =
        |expression: String, message: &str| json!({"expression": expression, "message": message});
    vec![
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": POD_POLICY},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["pods"],
                }]},
                "matchConditions": [{
                    "name": "made-by-the-controller",
                    "expression": format!("request.userInfo.username == '{user}'"),
                }],
                "validations": [
                    rule(
                        format!("object.spec.containers.all(c, c.image == '{sample_image}' && !has(c.command) && !has(c.args))"),
                        "the controller may only run the verification image, with its own command",
                    ),
                    rule(
                        "!has(object.spec.initContainers) && !has(object.spec.ephemeralContainers)".into(),
                        "the controller may add no init or ephemeral container",
                    ),
                    rule(
                        "has(object.spec.automountServiceAccountToken) && object.spec.automountServiceAccountToken == false".into(),
                        "the controller's pods carry no API token (automountServiceAccountToken: false)",
                    ),
                    rule(
                        "!has(object.spec.volumes) || object.spec.volumes.all(v, has(v.csi) && v.csi.driver == 'secrets-store.csi.k8s.io')".into(),
                        "the controller's pods mount only Secrets Store CSI volumes",
                    ),
                    rule(
                        "!(has(object.spec.hostNetwork) && object.spec.hostNetwork) && !(has(object.spec.hostPID) && object.spec.hostPID) && !(has(object.spec.hostIPC) && object.spec.hostIPC)".into(),
                        "the controller's pods share no host namespace",
                    ),
                    rule(
                        "object.spec.containers.all(c, !has(c.securityContext) || ((!has(c.securityContext.privileged) || !c.securityContext.privileged) && (!has(c.securityContext.allowPrivilegeEscalation) || !c.securityContext.allowPrivilegeEscalation) && !has(c.securityContext.capabilities)))".into(),
                        "the controller's pods are not privileged",
                    ),
                ],
            },
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": POD_POLICY},
            "spec": {"policyName": POD_POLICY, "validationActions": ["Deny"]},
        }),
    ]
}

/// Every Kubernetes object of the install, in apply order, labelled as bootstrap's.
pub fn kube_objects(
    cluster: &str,
    region: &str,
    image: &str,
    confinement: &Confinement,
) -> Vec<Value> {
    crd::crds()
        .into_iter()
        .chain(rbac::objects(NAMESPACE, NAMESPACE, NAME))
        .chain(pod_policy(crate::commands::up::SAMPLE_IMAGE))
        .chain([deployment(cluster, region, image, confinement)])
        .map(|o| labelled(o, cluster))
        .collect()
}

/// The controller's confinement on a cluster: its boundary (by ARN) and role path.
pub fn confinement(t: &Target, s: &InstallSettings) -> Result<Confinement, StepError> {
    let arn = boundary::arn_of(&t.account, &boundary::name(t.name()));
    Confinement::new(&s.role_path, &arn)
        .map_err(|e| StepError::problem(format!("--controller-role-path: {e}")))
}

/// The controller's own role: Pod Identity trust of its service account, its policy.
pub fn role_spec(t: &Target, c: &Confinement) -> Result<RoleSpec, StepError> {
    let w = Workload {
        service_account: ServiceAccountRef::new(NAMESPACE, NAME),
        ..Workload::default()
    };
    let mut spec = RoleSpec::for_workload(&t.account, &t.region, t.name(), &t.cluster.arn, &w);
    spec.description = format!(
        "bootstrap's controller on cluster {} (managed by bootstrap): makes roles only under {} bounded by {}",
        t.name(),
        c.path,
        c.boundary
    );
    spec.inline = iam::controller_policy(t.name(), c).map_err(StepError::problem)?;
    spec.policy_name = NAME;
    Ok(spec)
}

/// Adopting another's RBAC, admission policy or Deployment would run the controller with
/// permissions, or an image, nobody here reviewed: any such object stops the install.
pub fn refuse_foreign(changes: &[crate::plan::Change]) -> Result<(), StepError> {
    match changes.iter().find(|c| c.action == Action::Adopt) {
        None => Ok(()),
        Some(foreign) => Err(StepError::problem(format!(
            "{} exists and was not made by bootstrap: the controller will not be installed beside it",
            foreign.resource
        ))
        .with_hint("delete it (it may be an earlier hand-made install: `bootstrap controller --print-rbac` objects), then run up --controller again")),
    }
}

/// Observes (read-only) and plans the install.
pub async fn plan(t: &Target, s: &InstallSettings) -> Result<InstallPlan, PlanError> {
    let cluster = t.name();
    let c = confinement(t, s).map_err(at("controller-iam"))?;
    let spec = role_spec(t, &c).map_err(at("controller-iam"))?;
    let role_arn = role::role_arn(&t.account, &spec.name);
    let aws = t.aws();
    let (live_boundary, live_role, live_association) = match aws {
        Some(aws) => tokio::try_join!(
            async {
                boundary::observe(aws, &c.boundary, cluster)
                    .await
                    .map_err(at("controller-iam"))
            },
            async {
                role::observe_spec(aws, &spec, cluster)
                    .await
                    .map_err(at("controller-iam"))
            },
            async {
                association::observe(aws, cluster, NAMESPACE, NAME)
                    .await
                    .map_err(at("controller-association"))
            },
        )?,
        None => (None, None, None),
    };
    let observed = objects::observe(t.kube(), kube_objects(cluster, &t.region, &s.image, &c))
        .await
        .map_err(at("controller"))?;
    let boundary_change = boundary::plan(cluster, &c.boundary, live_boundary.as_ref())
        .map_err(at("controller-iam"))?;
    let role_change = role::plan(&spec, live_role.as_ref());
    if role_change.action == Action::Adopt {
        return Err((
            "controller-iam",
            StepError::problem(format!(
                "IAM role {} exists and was not made by bootstrap for cluster {cluster}: the controller will not run with a role nobody here reviewed",
                spec.name
            ))
            .with_hint("delete that role, or run the controller elsewhere (`bootstrap controller --print-iam-policy` prints what its role needs)"),
        ));
    }
    let association_change = association::plan(
        cluster,
        NAMESPACE,
        NAME,
        &role_arn,
        None,
        false,
        live_association.as_ref(),
    )
    .map_err(at("controller-association"))?;
    let mut changes = objects::plan(&observed);
    refuse_foreign(&changes).map_err(at("controller"))?;
    let waits = CRD_NAMES
        .iter()
        .map(|name| Op::WaitCrdEstablished {
            name: (*name).to_string(),
        })
        .chain([Op::WaitDeployment {
            namespace: NAMESPACE.into(),
            name: NAME.into(),
        }]);
    if let Some(last) = changes.pop() {
        changes.push(last.ops(waits));
    }
    Ok(InstallPlan {
        iam: StepOutcome::with(vec![boundary_change, role_change]),
        association: StepOutcome::with(vec![association_change]),
        objects: StepOutcome::with(changes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> Confinement {
        Confinement::new(
            "/bootstrap-controller/",
            "arn:aws:iam::123456789012:policy/bootstrap-prod-controller-boundary",
        )
        .unwrap()
    }

    #[test]
    fn the_controllers_role_is_its_service_accounts_with_its_own_policy() {
        let t = Target::offline("prod", None);
        let s = InstallSettings {
            image: "r.example/bootstrap:1".into(),
            role_path: "/bootstrap-controller/".into(),
        };
        let c = confinement(&t, &s).unwrap();
        assert!(
            c.boundary
                .ends_with(":policy/bootstrap-prod-controller-boundary")
        );
        let spec = role_spec(&t, &c).unwrap();
        let lines: Vec<String> = role::plan(&spec, None)
            .ops
            .iter()
            .map(|o| o.to_string())
            .collect();
        assert!(
            lines.contains(&format!(
                "iam:PutRolePolicy RoleName={} PolicyName=bootstrap-controller",
                spec.name
            )),
            "{lines:?}"
        );
        let trust = spec.trust.to_string();
        assert!(
            trust.contains("kube-system") && trust.contains(NAME),
            "{trust}"
        );
        assert!(spec.inline.to_string().contains("iam:PermissionsBoundary"));
    }

    #[test]
    fn an_object_of_the_install_someone_else_made_stops_it() {
        use crate::kube::apply::ObjectState;
        let objs = kube_objects("prod", "eu-west-1", "r.example/bootstrap:1", &c());
        let observed = |theirs: bool| -> Vec<objects::Observed> {
            objs.iter()
                .map(|o| objects::Observed {
                    object: o.clone(),
                    state: if theirs && o["kind"] == "ClusterRole" {
                        ObjectState::Differs { ours: false }
                    } else {
                        ObjectState::Absent
                    },
                    live: None,
                })
                .collect()
        };
        assert!(refuse_foreign(&objects::plan(&observed(false))).is_ok());
        let e = refuse_foreign(&objects::plan(&observed(true))).unwrap_err();
        assert!(
            e.to_string()
                .contains("ClusterRole/bootstrap-controller exists"),
            "{e}"
        );
    }

    #[test]
    fn every_object_is_labelled_ours_for_the_cluster() {
        let objs = kube_objects("prod", "eu-west-1", "r.example/bootstrap:1", &c());
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding",
                "Deployment"
            ]
        );
        for o in &objs {
            let labels = &o["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/managed-by"], "bootstrap", "{o}");
            assert_eq!(labels[LABEL_CLUSTER], "prod", "{o}");
            assert_eq!(labels["app.kubernetes.io/name"], NAME, "{o}");
        }
        let crds: Vec<&str> = objs[..2]
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(crds, CRD_NAMES);
    }

    #[test]
    fn the_deployment_runs_confined_unprivileged_and_elected() {
        let d = deployment("prod", "eu-west-1", "r.example/bootstrap:1", &c());
        let pod = &d["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
        assert_eq!(args[0], "controller");
        assert_eq!(after("--cluster"), "prod");
        assert_eq!(after("--region"), "eu-west-1");
        assert_eq!(after("--role-path"), "/bootstrap-controller/");
        assert_eq!(
            after("--permissions-boundary"),
            "arn:aws:iam::123456789012:policy/bootstrap-prod-controller-boundary"
        );
        assert!(!args.contains(&"--unconfined") && !args.contains(&"--no-leader-election"));
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(pod["serviceAccountName"], NAME);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let sc = &container["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        // The Lease identity and namespace come from the pod (POD_NAME / POD_NAMESPACE).
        let env: Vec<&str> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(env, ["POD_NAME", "POD_NAMESPACE"]);
        // The selector matches the template (else the apiserver refuses the Deployment).
        for (k, v) in d["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&d["spec"]["template"]["metadata"]["labels"][k], v);
        }
    }
}
