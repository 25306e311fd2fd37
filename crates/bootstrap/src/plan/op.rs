//! Operations: the write calls (and the waits between them) that a plan is made of. Plans are
//! lists of [`Op`]; `Display` is the plan line, and the executor runs exactly these values.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

pub use crate::render::ObjectRef;

/// What an add-on wait waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddonGoal {
    Active,
    Gone,
}

/// One write call, or one wait for the world to catch up with the previous writes.
/// A Pod Identity association to create (tagged as bootstrap's for the cluster).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewAssociation {
    pub cluster: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_role_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// Tagged as bootstrap's for the cluster and with the workload it serves.
    CreateRole {
        name: String,
        description: String,
        trust: Value,
        namespace: String,
        service_account: String,
        /// The role's path and permissions boundary (the controller's confinement); absent:
        /// `/` and none, as `onboard` makes roles.
        #[serde(flatten)]
        confinement: Option<crate::aws::confinement::Confinement>,
    },
    /// Sets the permissions boundary of a confined role made without it (or with another).
    PutRolePermissionsBoundary {
        role: String,
        boundary: String,
    },
    /// Tags a role of an earlier release with the workload it serves.
    TagRole {
        role: String,
        namespace: String,
        service_account: String,
    },
    UpdateAssumeRolePolicy {
        role: String,
        trust: Value,
    },
    UpdateRoleDescription {
        role: String,
        description: String,
    },
    PutRolePolicy {
        role: String,
        policy: String,
        document: Value,
    },
    DeleteRolePolicy {
        role: String,
        policy: String,
    },
    DetachRolePolicy {
        role: String,
        policy_arn: String,
    },
    DeleteRole {
        role: String,
    },
    /// A customer managed policy (the controller's permissions boundary), tagged as
    /// bootstrap's for the cluster.
    CreatePolicy {
        name: String,
        /// Its ARN (computed: account and name), to recognise it when a concurrent run made it.
        arn: String,
        description: String,
        document: Value,
    },
    /// A new default version of a managed policy bootstrap made.
    CreatePolicyVersion {
        policy_arn: String,
        document: Value,
    },
    /// A version that is no longer the default (IAM keeps at most five).
    DeletePolicyVersion {
        policy_arn: String,
        version: String,
    },
    DeletePolicy {
        policy_arn: String,
    },
    /// An ECR repository `bootstrap image push` created, with the images in it.
    DeleteEcrRepository {
        repository: String,
    },
    /// The repository `bootstrap image push` pushes to, tagged as bootstrap's (and with the
    /// cluster, whose `down` then deletes it), scanning on push.
    CreateEcrRepository {
        account: String,
        region: String,
        repository: String,
        cluster: Option<String>,
    },
    /// An OCI layout's image (the one tagged `tag`, or its only one) pushed to `target`.
    PushImage {
        layout: String,
        tag: Option<String>,
        target: String,
    },
    CreateAddon {
        cluster: String,
        addon: String,
        version: String,
    },
    DeleteAddon {
        cluster: String,
        addon: String,
    },
    CreatePodIdentityAssociation(NewAssociation),
    UpdatePodIdentityAssociation {
        cluster: String,
        id: String,
        role_arn: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        target_role_arn: Option<String>,
    },
    DeletePodIdentityAssociation {
        cluster: String,
        id: String,
        namespace: String,
        service_account: String,
    },
    /// A demo secret; its random value is made when the call is sent, never held in a plan.
    CreateDemoSecret {
        name: String,
    },
    /// `ForceDeleteWithoutRecovery`: only ever planned for demo secrets bootstrap created.
    DeleteSecret {
        name: String,
    },
    /// Server-side apply with field manager `bootstrap`.
    Apply {
        object: Value,
    },
    Delete {
        object: ObjectRef,
    },
    /// A JSON merge patch (to remove a field bootstrap set, or restore one on rollback).
    MergePatch {
        object: ObjectRef,
        patch: Value,
    },
    WaitAddon {
        cluster: String,
        addon: String,
        until: AddonGoal,
    },
    WaitCrdEstablished {
        name: String,
    },
    WaitDaemonSet {
        namespace: String,
        name: String,
    },
    WaitDeployment {
        namespace: String,
        name: String,
    },
    WaitGone {
        object: ObjectRef,
    },
}

/// Which interpreter runs an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Aws,
    Kubernetes,
    /// An image registry (ECR or another), with the push's own credentials.
    Registry,
}

impl Op {
    /// Whether the operation changes anything (waits only read).
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Op::WaitAddon { .. }
                | Op::WaitCrdEstablished { .. }
                | Op::WaitDaemonSet { .. }
                | Op::WaitDeployment { .. }
                | Op::WaitGone { .. }
        )
    }

    pub fn backend(&self) -> Backend {
        match self {
            Op::Apply { .. }
            | Op::Delete { .. }
            | Op::MergePatch { .. }
            | Op::WaitCrdEstablished { .. }
            | Op::WaitDaemonSet { .. }
            | Op::WaitDeployment { .. }
            | Op::WaitGone { .. } => Backend::Kubernetes,
            Op::CreateEcrRepository { .. } | Op::PushImage { .. } => Backend::Registry,
            _ => Backend::Aws,
        }
    }

    /// The document the operation sends, if any (policies, manifests), for the plan output.
    pub fn document(&self) -> Option<Value> {
        match self {
            Op::CreateRole { trust, .. } => {
                Some(serde_json::json!({"AssumeRolePolicyDocument": trust}))
            }
            Op::UpdateAssumeRolePolicy { trust, .. } => Some(trust.clone()),
            Op::PutRolePolicy { document, .. }
            | Op::CreatePolicy { document, .. }
            | Op::CreatePolicyVersion { document, .. } => {
                Some(serde_json::json!({"PolicyDocument": document}))
            }
            Op::Apply { object } => Some(object.clone()),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const TAGS: &str = "tags=bootstrap.podid/managed-by,bootstrap.podid/cluster";
        use bootstrap_common::names::{TAG_NAMESPACE, TAG_SERVICE_ACCOUNT};
        match self {
            Op::CreateRole {
                name,
                description,
                namespace,
                service_account,
                confinement,
                ..
            } => {
                write!(
                    f,
                    "iam:CreateRole RoleName={name} Description=\"{description}\" {TAGS},{TAG_NAMESPACE}={namespace},{TAG_SERVICE_ACCOUNT}={service_account}"
                )?;
                match confinement {
                    Some(c) => write!(f, " Path={} PermissionsBoundary={}", c.path, c.boundary),
                    None => Ok(()),
                }
            }
            Op::PutRolePermissionsBoundary { role, boundary } => write!(
                f,
                "iam:PutRolePermissionsBoundary RoleName={role} PermissionsBoundary={boundary}"
            ),
            Op::TagRole {
                role,
                namespace,
                service_account,
            } => write!(
                f,
                "iam:TagRole RoleName={role} tags={TAG_NAMESPACE}={namespace},{TAG_SERVICE_ACCOUNT}={service_account}"
            ),
            Op::UpdateAssumeRolePolicy { role, .. } => {
                write!(f, "iam:UpdateAssumeRolePolicy RoleName={role}")
            }
            Op::UpdateRoleDescription { role, description } => write!(
                f,
                "iam:UpdateRoleDescription RoleName={role} Description=\"{description}\""
            ),
            Op::PutRolePolicy { role, policy, .. } => {
                write!(f, "iam:PutRolePolicy RoleName={role} PolicyName={policy}")
            }
            Op::DeleteRolePolicy { role, policy } => {
                write!(
                    f,
                    "iam:DeleteRolePolicy RoleName={role} PolicyName={policy}"
                )
            }
            Op::DetachRolePolicy { role, policy_arn } => write!(
                f,
                "iam:DetachRolePolicy RoleName={role} PolicyArn={policy_arn}"
            ),
            Op::DeleteRole { role } => write!(f, "iam:DeleteRole RoleName={role}"),
            Op::CreatePolicy {
                name, description, ..
            } => write!(
                f,
                "iam:CreatePolicy PolicyName={name} Description=\"{description}\" {TAGS}"
            ),
            Op::CreatePolicyVersion { policy_arn, .. } => write!(
                f,
                "iam:CreatePolicyVersion PolicyArn={policy_arn} SetAsDefault=true"
            ),
            Op::DeletePolicyVersion {
                policy_arn,
                version,
            } => write!(
                f,
                "iam:DeletePolicyVersion PolicyArn={policy_arn} VersionId={version}"
            ),
            Op::DeletePolicy { policy_arn } => {
                write!(f, "iam:DeletePolicy PolicyArn={policy_arn}")
            }
            Op::CreateEcrRepository {
                account,
                region,
                repository,
                cluster,
            } => write!(
                f,
                "ecr:CreateRepository RegistryId={account} Region={region} RepositoryName={repository} ImageScanningConfiguration.ScanOnPush=true Tags={}{}",
                bootstrap_common::names::TAG_MANAGED_BY,
                cluster
                    .as_deref()
                    .map(|c| format!(",{}={c}", bootstrap_common::names::TAG_CLUSTER))
                    .unwrap_or_default()
            ),
            Op::PushImage {
                layout,
                tag,
                target,
            } => write!(
                f,
                "registry: push {layout}{} to {target} (missing blobs, then the manifests)",
                tag.as_deref()
                    .map(|t| format!(" (tag {t})"))
                    .unwrap_or_default()
            ),
            Op::DeleteEcrRepository { repository } => {
                write!(
                    f,
                    "ecr:DeleteRepository RepositoryName={repository} Force=true"
                )
            }
            Op::CreateAddon {
                cluster,
                addon,
                version,
            } => write!(
                f,
                "eks:CreateAddon clusterName={cluster} addonName={addon} addonVersion={version} {TAGS}"
            ),
            Op::DeleteAddon { cluster, addon } => {
                write!(f, "eks:DeleteAddon clusterName={cluster} addonName={addon}")
            }
            Op::CreatePodIdentityAssociation(a) => write!(
                f,
                "eks:CreatePodIdentityAssociation clusterName={} namespace={} serviceAccount={} roleArn={}{} {TAGS}",
                a.cluster,
                a.namespace,
                a.service_account,
                a.role_arn,
                target(&a.target_role_arn)
            ),
            Op::UpdatePodIdentityAssociation {
                cluster,
                id,
                role_arn,
                target_role_arn,
            } => write!(
                f,
                "eks:UpdatePodIdentityAssociation clusterName={cluster} associationId={id} roleArn={role_arn}{}",
                target(target_role_arn)
            ),
            Op::DeletePodIdentityAssociation {
                cluster,
                id,
                namespace,
                service_account,
            } => write!(
                f,
                "eks:DeletePodIdentityAssociation clusterName={cluster} associationId={id} ({namespace}/{service_account})"
            ),
            Op::CreateDemoSecret { name } => write!(
                f,
                "secretsmanager:CreateSecret Name={name} SecretString=<random, never shown> {TAGS}"
            ),
            Op::DeleteSecret { name } => write!(
                f,
                "secretsmanager:DeleteSecret SecretId={name} ForceDeleteWithoutRecovery=true"
            ),
            Op::Apply { object } => write!(
                f,
                "kubernetes: server-side apply {} (field manager bootstrap)",
                ObjectRef::of(object)
            ),
            Op::Delete { object } => write!(f, "kubernetes: delete {object}"),
            Op::MergePatch { object, patch } => {
                write!(f, "kubernetes: merge patch {object} {patch}")
            }
            Op::WaitAddon {
                cluster,
                addon,
                until,
            } => match until {
                AddonGoal::Active => write!(
                    f,
                    "wait: eks:DescribeAddon clusterName={cluster} addonName={addon} until ACTIVE"
                ),
                AddonGoal::Gone => write!(
                    f,
                    "wait: eks:DescribeAddon clusterName={cluster} addonName={addon} until gone"
                ),
            },
            Op::WaitCrdEstablished { name } => {
                write!(f, "wait: CustomResourceDefinition/{name} Established")
            }
            Op::WaitDaemonSet { namespace, name } => {
                write!(f, "wait: DaemonSet/{namespace}/{name} rolled out")
            }
            Op::WaitDeployment { namespace, name } => {
                write!(f, "wait: Deployment/{namespace}/{name} rolled out")
            }
            Op::WaitGone { object } => write!(f, "wait: {object} gone"),
        }
    }
}

fn target(arn: &Option<String>) -> String {
    arn.as_ref()
        .map(|a| format!(" targetRoleArn={a}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_lines_name_the_call_and_the_resource() {
        let op = Op::CreatePodIdentityAssociation(NewAssociation {
            cluster: "demo".into(),
            namespace: "ns".into(),
            service_account: "sa".into(),
            role_arn: "arn:aws:iam::1:role/r".into(),
            target_role_arn: None,
        });
        assert_eq!(
            op.to_string(),
            "eks:CreatePodIdentityAssociation clusterName=demo namespace=ns serviceAccount=sa roleArn=arn:aws:iam::1:role/r tags=bootstrap.podid/managed-by,bootstrap.podid/cluster"
        );
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}});
        assert_eq!(
            Op::Apply {
                object: pod.clone()
            }
            .to_string(),
            "kubernetes: server-side apply Pod/n/p (field manager bootstrap)"
        );
        let r = ObjectRef::of(&pod);
        assert_eq!(r.stub()["metadata"]["namespace"], "n");
        assert!(!Op::WaitGone { object: r }.writes());
        assert_eq!(Op::DeleteRole { role: "r".into() }.backend(), Backend::Aws);
    }

    #[test]
    fn a_demo_secret_plan_never_holds_a_value() {
        let op = Op::CreateDemoSecret {
            name: "bootstrap/demo/demo".into(),
        };
        let json = serde_json::to_string(&op).expect("json");
        assert!(!json.to_lowercase().contains("secretstring"));
        assert!(op.to_string().contains("never shown"));
    }
}
