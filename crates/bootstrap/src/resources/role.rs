//! A workload's IAM role: a deterministic name, trust in `pods.eks.amazonaws.com` scoped to
//! the workload by session tags, and one inline least-privilege policy on exact secret ARNs.

use serde_json::Value;

use super::facts::problem;
use super::secrets::SecretKind;
use super::{ResolvedSecret, Workload, owned};
use crate::aws::policy::{self, Grants, TrustScope};
use crate::aws::{AwsError, Clients, ErrorKind, classify};
use crate::diagnose::iam::NamedPolicy;
use crate::error::StepError;
use crate::plan::{Action, Change, Op};
use crate::service_account::ServiceAccountRef;
use bootstrap_common::names::{TAG_NAMESPACE, TAG_SERVICE_ACCOUNT};

/// The inline policy's name on the role.
pub const POLICY_NAME: &str = "bootstrap-read-secrets";

pub use super::role_identity::role_name;

/// The role's ARN, computed (never looked up): account + name.
pub fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

/// The role's IAM description: what it is for, and that bootstrap manages it.
pub fn role_description(cluster: &str, namespace: &str, service_account: &str) -> String {
    format!(
        "EKS Pod Identity role for {namespace}/{service_account} on cluster {cluster} (managed by bootstrap)"
    )
}

pub use crate::aws::confinement::Confinement;

/// A role's ARN under a path (`/` when unconfined).
pub fn role_arn_in(account: &str, confinement: Option<&Confinement>, name: &str) -> String {
    let path = confinement.map_or("/", |c| c.path.as_str());
    format!("arn:aws:iam::{account}:role{path}{name}")
}

/// What the role must be.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpec {
    pub name: String,
    /// The workload it serves (its `bootstrap.podid/namespace` and `service-account` tags).
    pub service_account: ServiceAccountRef,
    pub description: String,
    pub trust: Value,
    pub inline: Value,
    /// The inline policy's name: [`POLICY_NAME`] for a workload's read policy.
    pub policy_name: &'static str,
    /// Path and permissions boundary (the controller's roles); `None`: `/`, no boundary.
    pub confinement: Option<Confinement>,
}

impl RoleSpec {
    /// The role of a workload on a cluster (name and ARN) in an account and region.
    pub fn for_workload(
        account: &str,
        region: &str,
        cluster: &str,
        cluster_arn: &str,
        w: &Workload,
    ) -> Self {
        let scope = TrustScope {
            account,
            cluster,
            cluster_arn,
            namespace: &w.service_account.namespace,
            service_account: &w.service_account.name,
        };
        Self {
            name: role_name(
                cluster,
                &w.service_account.namespace,
                &w.service_account.name,
            ),
            service_account: w.service_account.clone(),
            description: role_description(
                cluster,
                &w.service_account.namespace,
                &w.service_account.name,
            ),
            trust: policy::pod_identity_trust(&scope),
            inline: {
                let mut grants = grants(&w.secrets, region);
                grants.failover_region = w.failover_region.clone();
                if w.abac {
                    policy::read_secrets_by_tag_policy(&grants, account)
                } else {
                    policy::read_secrets_policy(&grants)
                }
            },
            policy_name: POLICY_NAME,
            confinement: w.confinement.clone(),
        }
    }
}

/// The grants for a workload's secrets: each exact ARN, each prefix's pattern (SSM: the path
/// and `path/*`), and each replica's ARN and customer key (the caller sets the failover region).
pub fn grants(secrets: &[ResolvedSecret], region: &str) -> Grants {
    let mut g = Grants {
        region: region.to_string(),
        ..Grants::default()
    };
    for s in secrets {
        let x = &s.extras;
        let arns = std::iter::once(&s.arn).chain(&x.replica_arn);
        for arn in arns {
            match (&s.kind, x.prefix) {
                (SecretKind::SecretsManager, false) => g.secret_arns.push(arn.clone()),
                (SecretKind::SsmParameter, false) => g.parameter_arns.push(arn.clone()),
                (SecretKind::SecretsManager, true) => g.secret_prefixes.push(arn.clone()),
                (SecretKind::SsmParameter, true) => {
                    g.parameter_paths.push(arn.clone());
                    g.parameter_paths.push(format!("{arn}/*"));
                }
            }
        }
        g.kms_key_arns.extend(
            s.kms_key_arn
                .iter()
                .chain(&x.replica_kms_key_arn)
                .chain(&x.prefix_kms_key_arns)
                .cloned(),
        );
    }
    g
}

/// A role as it is in IAM.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveRole {
    pub name: String,
    pub arn: String,
    /// Tagged as bootstrap's, for this cluster.
    pub owned: bool,
    /// The workload its `bootstrap.podid/namespace` and `service-account` tags name, when it
    /// has both (roles made before this release have none).
    pub tagged_for: Option<ServiceAccountRef>,
    pub description: Option<String>,
    /// Its path (`/` unless made confined).
    pub path: String,
    /// Its permissions boundary's ARN, if any.
    pub boundary: Option<String>,
    pub trust: Option<Value>,
    /// Our inline policy's document, if present.
    pub inline: Option<Value>,
    /// Every inline policy name (read only for deletion).
    pub inline_names: Vec<String>,
    /// Attached managed policy ARNs (read only for deletion).
    pub attached: Vec<String>,
    /// Every permission policy's document ([`Depth::Permissions`] only).
    pub policies: Vec<NamedPolicy>,
    /// Policies that exist but could not be read, with the reason ([`Depth::Permissions`]).
    pub unread: Vec<String>,
}

/// How much of a role [`read`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The role alone: its tags, path, boundary and trust policy.
    Role,
    /// The role, and our inline policy when the role is ours: what a plan compares.
    Plan,
    /// As `Plan`, and the names of every inline and attached policy: what a delete removes.
    Delete,
    /// Every permission, whoever made the role: each inline policy's document and the default
    /// version of each attached policy (what doctor judges). A policy that cannot be read is
    /// listed in [`LiveRole::unread`] with the reason.
    Permissions,
}

/// Reads the role (and, with `for_delete`, the names of all its policies). `None`: absent.
pub async fn observe(
    aws: &Clients,
    name: &str,
    cluster: &str,
    for_delete: bool,
) -> Result<Option<LiveRole>, StepError> {
    let depth = if for_delete {
        Depth::Delete
    } else {
        Depth::Plan
    };
    Ok(read(aws, name, cluster, depth).await?)
}

/// Reads the role `spec` describes, with its inline policy of `spec.policy_name`, for a plan.
pub async fn observe_spec(
    aws: &Clients,
    spec: &RoleSpec,
    cluster: &str,
) -> Result<Option<LiveRole>, StepError> {
    Ok(read_named(aws, &spec.name, cluster, Depth::Plan, spec.policy_name).await?)
}

/// The one reader of IAM roles: the role, then as much of its policies as `depth` asks.
/// `None`: absent.
pub async fn read(
    aws: &Clients,
    name: &str,
    cluster: &str,
    depth: Depth,
) -> Result<Option<LiveRole>, AwsError> {
    read_named(aws, name, cluster, depth, POLICY_NAME).await
}

/// [`read`], its inline policy being `policy_name`.
async fn read_named(
    aws: &Clients,
    name: &str,
    cluster: &str,
    depth: Depth,
    policy_name: &str,
) -> Result<Option<LiveRole>, AwsError> {
    let resource = format!("IAM role {name}");
    let role = match aws.iam.get_role().role_name(name).send().await {
        Ok(out) => match out.role() {
            Some(role) => role.clone(),
            None => return Ok(None),
        },
        Err(e) => {
            let err = classify("read", resource, e);
            return if err.is(ErrorKind::NotFound) {
                Ok(None)
            } else {
                Err(err)
            };
        }
    };
    let tag = |k: &str| {
        role.tags()
            .iter()
            .find(|t| t.key() == k)
            .map(|t| t.value().to_string())
    };
    let mut live = LiveRole {
        name: name.to_string(),
        arn: role.arn().to_string(),
        owned: owned(role.tags().iter().map(|t| (t.key(), t.value())), cluster),
        tagged_for: tag(TAG_NAMESPACE)
            .zip(tag(TAG_SERVICE_ACCOUNT))
            .map(|(namespace, name)| ServiceAccountRef { namespace, name }),
        description: role.description().map(str::to_string),
        path: role.path().to_string(),
        boundary: role
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_string),
        trust: role
            .assume_role_policy_document()
            .and_then(policy::decode_document),
        ..LiveRole::default()
    };
    if depth == Depth::Permissions {
        read_permissions(aws, &mut live).await?;
        return Ok(Some(live));
    }
    if !live.owned || depth == Depth::Role {
        return Ok(Some(live));
    }
    live.inline = match aws
        .iam
        .get_role_policy()
        .role_name(name)
        .policy_name(policy_name)
        .send()
        .await
    {
        Ok(out) => policy::decode_document(out.policy_document()),
        Err(e) => {
            let err = classify("read the inline policy of", format!("IAM role {name}"), e);
            if !err.is(ErrorKind::NotFound) {
                return Err(err);
            }
            None
        }
    };
    if depth == Depth::Delete {
        live.inline_names = inline_names(aws, name).await?;
        live.attached = attached_arns(aws, name).await?;
    }
    Ok(Some(live))
}

async fn inline_names(aws: &Clients, name: &str) -> Result<Vec<String>, AwsError> {
    let listed = aws
        .iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| classify("list the inline policies of", format!("IAM role {name}"), e))?;
    Ok(listed.policy_names().to_vec())
}

async fn attached_arns(aws: &Clients, name: &str) -> Result<Vec<String>, AwsError> {
    let attached = aws
        .iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| {
            classify(
                "list the policies attached to",
                format!("IAM role {name}"),
                e,
            )
        })?;
    Ok(attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_string))
        .collect())
}

/// Every inline policy, then the default version of every attached policy, in IAM's order.
async fn read_permissions(aws: &Clients, live: &mut LiveRole) -> Result<(), AwsError> {
    let name = live.name.clone();
    live.inline_names = inline_names(aws, &name).await?;
    for policy in live.inline_names.clone() {
        match aws
            .iam
            .get_role_policy()
            .role_name(&name)
            .policy_name(&policy)
            .send()
            .await
        {
            Ok(out) => match policy::decode_document(out.policy_document()) {
                Some(document) => {
                    if policy == POLICY_NAME {
                        live.inline = Some(document.clone());
                    }
                    live.policies.push(NamedPolicy {
                        source: format!("inline policy {policy}"),
                        document,
                    });
                }
                None => live
                    .unread
                    .push(format!("inline policy {policy} (not JSON)")),
            },
            Err(e) => live.unread.push(format!(
                "inline policy {policy} ({})",
                problem(&classify("read", format!("inline policy {policy}"), e))
            )),
        }
    }
    live.attached = attached_arns(aws, &name).await?;
    for policy_arn in live.attached.clone() {
        match attached_document(aws, &policy_arn).await {
            Ok(document) => live.policies.push(NamedPolicy {
                source: format!("attached policy {policy_arn}"),
                document,
            }),
            Err(why) => live
                .unread
                .push(format!("attached policy {policy_arn} ({why})")),
        }
    }
    Ok(())
}

/// The document of a managed policy's default version.
async fn attached_document(aws: &Clients, arn: &str) -> Result<Value, String> {
    let policy = aws
        .iam
        .get_policy()
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| problem(&classify("read", format!("IAM policy {arn}"), e)))?;
    let version = policy
        .policy()
        .and_then(|p| p.default_version_id())
        .ok_or("no default version")?;
    let out = aws
        .iam
        .get_policy_version()
        .policy_arn(arn)
        .version_id(version)
        .send()
        .await
        .map_err(|e| {
            problem(&classify(
                "read",
                format!("version {version} of IAM policy {arn}"),
                e,
            ))
        })?;
    out.policy_version()
        .and_then(|v| v.document())
        .and_then(policy::decode_document)
        .ok_or_else(|| "its document is not JSON".into())
}

/// The change that makes the role match `desired`.
pub fn plan(desired: &RoleSpec, observed: Option<&LiveRole>) -> Change {
    let name = &desired.name;
    let resource = format!("IAM role {name}");
    let Some(live) = observed else {
        return Change::new(Action::Create, resource)
            .op(Op::CreateRole {
                name: name.clone(),
                description: desired.description.clone(),
                trust: desired.trust.clone(),
                namespace: desired.service_account.namespace.clone(),
                service_account: desired.service_account.name.clone(),
                confinement: desired.confinement.clone(),
            })
            .op(put_policy(desired));
    };
    if !live.owned {
        return Change::new(Action::Adopt, resource).note(
            "exists, not made by bootstrap for this cluster: left as is (make sure it trusts pods.eks.amazonaws.com and can read the secrets)",
        );
    }
    let mut ops = Vec::new();
    if let Some(c) = &desired.confinement
        && live.boundary.as_deref() != Some(c.boundary.as_str())
    {
        // First, so that no write below widens a role the boundary does not yet bound.
        ops.push(Op::PutRolePermissionsBoundary {
            role: name.clone(),
            boundary: c.boundary.clone(),
        });
    }
    if !policy::already(live.trust.as_ref(), &desired.trust) {
        ops.push(Op::UpdateAssumeRolePolicy {
            role: name.clone(),
            trust: desired.trust.clone(),
        });
    }
    if !policy::already(live.inline.as_ref(), &desired.inline) {
        ops.push(put_policy(desired));
    }
    if live.description.as_deref() != Some(desired.description.as_str()) {
        ops.push(Op::UpdateRoleDescription {
            role: name.clone(),
            description: desired.description.clone(),
        });
    }
    if live.tagged_for.as_ref() != Some(&desired.service_account) {
        // A role of an earlier release (identified by its association and trust): tagged
        // with the workload it serves, so that `down --namespace` finds it by its tags.
        ops.push(Op::TagRole {
            role: name.clone(),
            namespace: desired.service_account.namespace.clone(),
            service_account: desired.service_account.name.clone(),
        });
    }
    if ops.is_empty() {
        Change::new(Action::Unchanged, resource)
    } else {
        Change::new(Action::Update, resource).ops(ops)
    }
}

fn put_policy(desired: &RoleSpec) -> Op {
    Op::PutRolePolicy {
        role: desired.name.clone(),
        policy: desired.policy_name.into(),
        document: desired.inline.clone(),
    }
}

/// Deletes an owned role: inline policies first, managed policies detached (never deleted),
/// then the role. `None` for a role bootstrap does not own.
pub fn plan_delete(live: &LiveRole) -> Option<Change> {
    if !live.owned {
        return None;
    }
    let role = live.name.clone();
    let mut change = Change::new(Action::Delete, format!("IAM role {role}"));
    for policy in &live.inline_names {
        change = change.op(Op::DeleteRolePolicy {
            role: role.clone(),
            policy: policy.clone(),
        });
    }
    for policy_arn in &live.attached {
        change = change.op(Op::DetachRolePolicy {
            role: role.clone(),
            policy_arn: policy_arn.clone(),
        });
    }
    if !live.attached.is_empty() {
        change = change.note(format!(
            "detaches {} managed polic(ies) attached outside bootstrap (the policies stay)",
            live.attached.len()
        ));
    }
    Some(change.op(Op::DeleteRole { role }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_names_the_workload_and_the_cluster() {
        let d = role_description("demo", "bootstrap-demo", "demo-app");
        assert_eq!(
            d,
            "EKS Pod Identity role for bootstrap-demo/demo-app on cluster demo (managed by bootstrap)"
        );
        let long = role_description(&"c".repeat(100), &"n".repeat(63), &"s".repeat(253));
        assert!(long.len() <= 1000);
    }

    /// The live role `up` made from `desired`: owned, tagged, its policies as planned.
    fn as_planned(desired: &RoleSpec) -> LiveRole {
        LiveRole {
            name: desired.name.clone(),
            owned: true,
            description: Some(desired.description.clone()),
            trust: Some(desired.trust.clone()),
            inline: Some(desired.inline.clone()),
            tagged_for: Some(ServiceAccountRef::new("ns", "sa")),
            ..LiveRole::default()
        }
    }

    fn spec() -> RoleSpec {
        let w = Workload::reading("ns", "sa", "arn:aws:secretsmanager:r:1:secret:x-abcdef");
        RoleSpec::for_workload("1", "r", "demo", "arn:aws:eks:r:1:cluster/demo", &w)
    }

    fn resolved(
        kind: SecretKind,
        arn: &str,
        extras: super::super::secrets::SecretExtras,
    ) -> ResolvedSecret {
        ResolvedSecret {
            extras,
            ..ResolvedSecret::plain(kind, arn.into(), arn.into(), None)
        }
    }

    fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
        policy["Statement"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["Sid"] == sid))
            .unwrap_or_else(|| panic!("no {sid} in {policy:#}"))
    }

    /// Prefixes, replicas and keys: the team reads exactly its prefix's pattern (both regions
    /// with a failover region), lists and batches on "*" (no value by themselves), and decrypts
    /// with each customer key through each region's service.
    #[test]
    fn a_prefix_grants_its_pattern_and_a_failover_region_its_replicas_and_keys() {
        use super::super::secrets::{self, SecretExtras, SecretRef};
        let account = "123456789012";
        let sm = SecretRef::parse_prefix("teams/payments/").expect("prefix");
        let ssm = SecretRef::parse_prefix("ssm:/teams/payments/").expect("path");
        let prefix = |r: &SecretRef, region: &str| secrets::prefix_arn(region, account, r);
        // A prefix read in eu-west-1, replicated to us-west-2.
        let replicated_prefix = |kind, r: &SecretRef| {
            let extras = SecretExtras {
                prefix: true,
                replica_arn: Some(prefix(r, "us-west-2")),
                ..Default::default()
            };
            resolved(kind, &prefix(r, "eu-west-1"), extras)
        };
        let exact = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:teams/payments/db-AbCdEf";
        let secrets = vec![
            replicated_prefix(SecretKind::SecretsManager, &sm),
            replicated_prefix(SecretKind::SsmParameter, &ssm),
            ResolvedSecret {
                kms_key_arn: Some("arn:aws:kms:eu-west-1:123456789012:key/k1".into()),
                ..resolved(
                    SecretKind::SecretsManager,
                    exact,
                    SecretExtras {
                        replica_arn: Some(secrets::in_region(exact, "us-west-2")),
                        replica_kms_key_arn: Some(
                            "arn:aws:kms:us-west-2:123456789012:key/k2".into(),
                        ),
                        ..Default::default()
                    },
                )
            },
        ];
        let mut g = grants(&secrets, "eu-west-1");
        g.failover_region = Some("us-west-2".into());
        let p = policy::read_secrets_policy(&g);
        assert_eq!(
            statement(&p, "ReadSecretsUnderPrefixes")["Resource"],
            serde_json::json!([
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:teams/payments/*",
                "arn:aws:secretsmanager:us-west-2:123456789012:secret:teams/payments/*"
            ])
        );
        assert_eq!(
            statement(&p, "ReadSecrets")["Resource"],
            serde_json::json!([
                exact,
                "arn:aws:secretsmanager:us-west-2:123456789012:secret:teams/payments/db-AbCdEf"
            ])
        );
        let paths = statement(&p, "ReadParametersUnderPaths");
        assert_eq!(
            paths["Action"],
            serde_json::json!([
                "ssm:GetParametersByPath",
                "ssm:GetParameters",
                "ssm:GetParameter"
            ])
        );
        assert_eq!(
            paths["Resource"],
            serde_json::json!([
                "arn:aws:ssm:eu-west-1:123456789012:parameter/teams/payments",
                "arn:aws:ssm:eu-west-1:123456789012:parameter/teams/payments/*",
                "arn:aws:ssm:us-west-2:123456789012:parameter/teams/payments",
                "arn:aws:ssm:us-west-2:123456789012:parameter/teams/payments/*"
            ])
        );
        let kms = statement(&p, "DecryptViaService");
        assert_eq!(
            kms["Resource"],
            serde_json::json!([
                "arn:aws:kms:eu-west-1:123456789012:key/k1",
                "arn:aws:kms:us-west-2:123456789012:key/k2"
            ])
        );
        assert_eq!(
            kms["Condition"]["StringEquals"]["kms:ViaService"],
            serde_json::json!([
                "secretsmanager.eu-west-1.amazonaws.com",
                "ssm.eu-west-1.amazonaws.com",
                "secretsmanager.us-west-2.amazonaws.com",
                "ssm.us-west-2.amazonaws.com"
            ])
        );
        // "*" only for the list and batch actions, which return no value by themselves.
        for st in p["Statement"].as_array().expect("statements") {
            let resources = st["Resource"].to_string();
            if resources.contains("\"*\"") {
                assert!(
                    st["Action"] == serde_json::json!(["secretsmanager:ListSecrets"])
                        || st["Action"]
                            == serde_json::json!(["secretsmanager:BatchGetSecretValue"]),
                    "{st}"
                );
            }
        }
        // Nothing wider than the prefix: a sibling's name is outside every pattern.
        assert!(!p.to_string().contains("teams/payments*"), "{p}");
    }

    #[test]
    fn a_workload_without_the_new_options_gets_the_same_policy() {
        // The document as this release wrote it before prefixes and failover regions.
        let expected = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadSecrets", "Effect": "Allow",
             "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
             "Resource": ["arn:aws:secretsmanager:r:1:secret:x-abcdef"]},
            {"Sid": "BatchReadSecrets", "Effect": "Allow",
             "Action": ["secretsmanager:BatchGetSecretValue"], "Resource": "*"}]});
        assert_eq!(spec().inline, expected);
    }

    #[test]
    fn absent_is_created_with_its_policy_same_is_unchanged() {
        let desired = spec();
        let create = plan(&desired, None);
        assert_eq!(create.action, Action::Create);
        assert!(matches!(create.ops[0], Op::CreateRole { .. }));
        assert!(matches!(create.ops[1], Op::PutRolePolicy { .. }));
        let live = as_planned(&desired);
        let same = plan(&desired, Some(&live));
        assert_eq!(same.action, Action::Unchanged);
        assert!(same.ops.is_empty());
        let create = create.calls.join("\n");
        assert!(
            create.contains("bootstrap.podid/namespace=ns")
                && create.contains("bootstrap.podid/service-account=sa"),
            "{create}"
        );
    }

    #[test]
    fn a_role_of_an_earlier_release_only_gets_the_workload_tags() {
        let desired = spec();
        let live = LiveRole {
            name: "bootstrap-demo-ns-sa".into(),
            owned: true,
            description: Some(desired.description.clone()),
            trust: Some(desired.trust.clone()),
            inline: Some(desired.inline.clone()),
            ..LiveRole::default()
        };
        let desired = RoleSpec {
            name: live.name.clone(),
            ..desired
        };
        let change = plan(&desired, Some(&live));
        assert_eq!(change.action, Action::Update);
        assert_eq!(
            change.calls,
            [
                "iam:TagRole RoleName=bootstrap-demo-ns-sa tags=bootstrap.podid/namespace=ns,bootstrap.podid/service-account=sa"
            ]
        );
    }

    #[test]
    fn an_old_unscoped_trust_is_updated_in_place_and_nothing_else() {
        let desired = spec();
        let old_trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
        let live = LiveRole {
            trust: Some(old_trust),
            ..as_planned(&desired)
        };
        let change = plan(&desired, Some(&live));
        assert_eq!(change.action, Action::Update);
        assert_eq!(change.ops.len(), 1);
        assert!(matches!(change.ops[0], Op::UpdateAssumeRolePolicy { .. }));
    }

    #[test]
    fn a_trust_without_the_cluster_arn_is_updated_once_then_left_alone() {
        let desired = spec();
        let mut before = desired.trust.clone();
        before["Statement"][0]["Condition"]["StringEquals"]
            .as_object_mut()
            .expect("conditions")
            .remove("aws:RequestTag/eks-cluster-arn");
        let mut live = LiveRole {
            trust: Some(before),
            ..as_planned(&desired)
        };
        let change = plan(&desired, Some(&live));
        let [Op::UpdateAssumeRolePolicy { trust, .. }] = change.ops.as_slice() else {
            panic!("one trust update: {change:?}")
        };
        live.trust = Some(trust.clone());
        assert!(
            plan(&desired, Some(&live)).ops.is_empty(),
            "then zero writes"
        );
    }

    #[test]
    fn foreign_roles_are_adopted_and_never_deleted() {
        let live = LiveRole {
            name: "theirs".into(),
            owned: false,
            ..LiveRole::default()
        };
        assert_eq!(plan(&spec(), Some(&live)).action, Action::Adopt);
        assert!(plan_delete(&live).is_none());
        let ours = LiveRole {
            name: "ours".into(),
            owned: true,
            inline_names: vec!["a".into(), "b".into()],
            attached: vec!["arn:aws:iam::aws:policy/x".into()],
            ..LiveRole::default()
        };
        let del = plan_delete(&ours).expect("owned");
        let lines: Vec<String> = del.ops.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("iam:DeleteRolePolicy"));
        assert!(lines[2].starts_with("iam:DetachRolePolicy"));
        assert_eq!(
            lines[3], "iam:DeleteRole RoleName=ours",
            "policies first, role last"
        );
    }
}
