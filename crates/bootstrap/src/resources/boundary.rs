//! The controller's permissions boundary: a customer managed policy `up --controller` makes
//! (tagged as bootstrap's for the cluster), bounding every role the controller creates to
//! reading secrets and parameters — whatever inline policy a compromised controller writes.

use serde_json::{Value, json};

use super::owned;
use crate::aws::policy::{POD_IDENTITY_PRINCIPAL, already, decode_document};
use crate::aws::{Clients, ErrorKind, classify};
use crate::error::StepError;
use crate::plan::{Action, Change, Op};

/// The boundary's name for a cluster (one per cluster: its controller's).
pub fn name(cluster: &str) -> String {
    format!("bootstrap-{cluster}-controller-boundary")
}

/// A customer managed policy's ARN at path `/`.
pub fn arn_of(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:policy/{name}")
}

/// The most a controller-made role may do: read secrets (Secrets Manager) and parameters
/// (SSM), decrypt through those two services only, and assume cross-account target roles
/// (Pod Identity's role chaining). No IAM, no writes, no other service. Each role's own
/// inline policy narrows this to its team's secrets.
pub fn document() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": "arn:aws:secretsmanager:*:*:secret:*",
            },
            {
                // AWS authorizes these only on "*"; each value still needs GetSecretValue.
                "Sid": "ListAndBatchSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:ListSecrets", "secretsmanager:BatchGetSecretValue"],
                "Resource": "*",
            },
            {
                "Sid": "ReadParameters",
                "Effect": "Allow",
                "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
                "Resource": "arn:aws:ssm:*:*:parameter/*",
            },
            {
                "Sid": "DecryptThroughSecretServicesOnly",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": "arn:aws:kms:*:*:key/*",
                "Condition": {"StringLike": {"kms:ViaService": [
                    "secretsmanager.*.amazonaws.com",
                    "ssm.*.amazonaws.com",
                ]}},
            },
            {
                "Sid": "CrossAccountTargetRoles",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Resource": "arn:aws:iam::*:role/*",
            },
        ],
    })
}

/// The description IAM shows.
pub fn description(cluster: &str) -> String {
    format!(
        "Permissions boundary of the roles bootstrap's controller makes on cluster {cluster} (managed by bootstrap; trusted by {POD_IDENTITY_PRINCIPAL} roles only)"
    )
}

/// A managed policy as IAM has it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LivePolicy {
    pub arn: String,
    /// Tagged as bootstrap's, for this cluster.
    pub owned: bool,
    pub default_version: String,
    /// Every version that is not the default (deleted before the policy, oldest first).
    pub other_versions: Vec<String>,
    /// The default version's document.
    pub document: Option<Value>,
}

/// Reads the policy at `arn` (its tags, versions and default document). `None`: absent.
pub async fn observe(
    aws: &Clients,
    arn: &str,
    cluster: &str,
) -> Result<Option<LivePolicy>, StepError> {
    let what = || format!("IAM policy {arn}");
    let policy = match aws.iam.get_policy().policy_arn(arn).send().await {
        Ok(out) => match out.policy {
            Some(p) => p,
            None => return Ok(None),
        },
        Err(e) => {
            let err = classify("read", what(), e);
            return if err.is(ErrorKind::NotFound) {
                Ok(None)
            } else {
                Err(err.into())
            };
        }
    };
    // GetPolicy returns the tags in AWS; ListPolicyTags is the documented read of them.
    let tags = aws
        .iam
        .list_policy_tags()
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| classify("list the tags of", what(), e))?;
    let owned = owned(tags.tags().iter().map(|t| (t.key(), t.value())), cluster);
    let default_version = policy.default_version_id().unwrap_or("v1").to_string();
    let versions = aws
        .iam
        .list_policy_versions()
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| classify("list the versions of", what(), e))?;
    let mut other_versions: Vec<String> = versions
        .versions()
        .iter()
        .filter(|v| !v.is_default_version())
        .filter_map(|v| v.version_id().map(str::to_string))
        .collect();
    other_versions.sort_by_key(|v| v.trim_start_matches('v').parse::<u32>().unwrap_or(0));
    let document = aws
        .iam
        .get_policy_version()
        .policy_arn(arn)
        .version_id(&default_version)
        .send()
        .await
        .map_err(|e| classify("read the default version of", what(), e))?
        .policy_version
        .and_then(|v| v.document)
        .and_then(|d| decode_document(&d));
    Ok(Some(LivePolicy {
        arn: arn.to_string(),
        owned,
        default_version,
        other_versions,
        document,
    }))
}

/// The change that makes the boundary `document()`. One that exists and is not bootstrap's is
/// refused: the controller's role would then be confined by a policy nobody here controls.
pub fn plan(cluster: &str, arn: &str, observed: Option<&LivePolicy>) -> Result<Change, StepError> {
    let name = name(cluster);
    let resource = format!("IAM policy {name} (permissions boundary)");
    let Some(live) = observed else {
        return Ok(Change::new(Action::Create, resource).op(Op::CreatePolicy {
            name,
            arn: arn.to_string(),
            description: description(cluster),
            document: document(),
        }));
    };
    if !live.owned {
        return Err(StepError::problem(format!(
            "IAM policy {arn} exists and was not made by bootstrap for cluster {cluster}: it will not be used as the controller's permissions boundary"
        ))
        .with_hint(format!(
            "delete or rename that policy, or tag it {}={} and {}={cluster} if it is a boundary you reviewed",
            bootstrap_common::names::TAG_MANAGED_BY,
            bootstrap_common::names::MANAGED_BY_VALUE,
            bootstrap_common::names::TAG_CLUSTER,
        )));
    }
    if already(live.document.as_ref(), &document()) {
        return Ok(Change::new(Action::Unchanged, resource));
    }
    // IAM keeps five versions: drop the oldest non-default ones first, so the new one fits
    // and only the current and the previous version remain.
    let mut ops: Vec<Op> = live
        .other_versions
        .iter()
        .map(|v| Op::DeletePolicyVersion {
            policy_arn: arn.to_string(),
            version: v.clone(),
        })
        .collect();
    ops.push(Op::CreatePolicyVersion {
        policy_arn: arn.to_string(),
        document: document(),
    });
    Ok(Change::new(Action::Update, resource).ops(ops))
}

/// Deletes an owned boundary: its old versions, then the policy. `None` when not ours.
pub fn plan_delete(live: &LivePolicy) -> Option<Change> {
    if !live.owned {
        return None;
    }
    let ops = live
        .other_versions
        .iter()
        .map(|v| Op::DeletePolicyVersion {
            policy_arn: live.arn.clone(),
            version: v.clone(),
        })
        .chain([Op::DeletePolicy {
            policy_arn: live.arn.clone(),
        }]);
    Some(Change::new(Action::Delete, format!("IAM policy {}", live.arn)).ops(ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:iam::123456789012:policy/bootstrap-prod-controller-boundary";

    fn live(owned: bool, document: Value, others: &[&str]) -> LivePolicy {
        LivePolicy {
            arn: ARN.into(),
            owned,
            default_version: "v3".into(),
            other_versions: others.iter().map(|v| v.to_string()).collect(),
            document: Some(document),
        }
    }

    #[test]
    fn the_boundary_grants_reads_only_and_no_iam() {
        let doc = document();
        for st in doc["Statement"].as_array().unwrap() {
            assert_eq!(st["Effect"], "Allow");
            let actions = st["Action"].to_string();
            for forbidden in ["iam:", "Put", "Create", "Delete", "Update", "*\""] {
                assert!(!actions.contains(forbidden), "{forbidden} in {st}");
            }
        }
        let text = doc.to_string();
        assert!(
            text.contains("kms:ViaService"),
            "decrypt only via the services"
        );
    }

    #[test]
    fn absent_is_created_same_is_unchanged_changed_gets_a_version() {
        let create = plan("prod", ARN, None).unwrap();
        assert_eq!(create.action, Action::Create);
        assert!(
            create.ops[0]
                .to_string()
                .starts_with("iam:CreatePolicy PolicyName=bootstrap-prod-controller-boundary")
        );
        let same = plan("prod", ARN, Some(&live(true, document(), &[]))).unwrap();
        assert_eq!(same.action, Action::Unchanged);
        assert!(same.ops.is_empty());
        let widened = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        let update = plan("prod", ARN, Some(&live(true, widened, &["v1", "v2"]))).unwrap();
        assert_eq!(update.action, Action::Update);
        let lines: Vec<String> = update.ops.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            lines,
            [
                format!("iam:DeletePolicyVersion PolicyArn={ARN} VersionId=v1"),
                format!("iam:DeletePolicyVersion PolicyArn={ARN} VersionId=v2"),
                format!("iam:CreatePolicyVersion PolicyArn={ARN} SetAsDefault=true"),
            ]
        );
    }

    #[test]
    fn a_policy_of_that_name_not_ours_is_refused_and_never_deleted() {
        let theirs = live(false, document(), &[]);
        let e = plan("prod", ARN, Some(&theirs)).unwrap_err().to_string();
        assert!(e.contains("not made by bootstrap"), "{e}");
        assert!(plan_delete(&theirs).is_none());
        let ours = plan_delete(&live(true, document(), &["v1"])).unwrap();
        let lines: Vec<String> = ours.ops.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            lines,
            [
                format!("iam:DeletePolicyVersion PolicyArn={ARN} VersionId=v1"),
                format!("iam:DeletePolicy PolicyArn={ARN}"),
            ]
        );
    }
}
