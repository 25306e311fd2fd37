//! The controller's own IAM policy: it may make and change roles only under its path and with
//! its permissions boundary, and can never widen, remove or replace that boundary.

use serde_json::{Value, json};

use crate::resources::role::Confinement;

/// The account a managed policy's ARN names (`arn:aws:iam::ACCOUNT:policy/NAME`).
pub fn account_of(policy_arn: &str) -> Option<&str> {
    policy_arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// The policy of the controller's role on `cluster` (any region of the boundary's account).
///
/// - roles: `iam:CreateRole` and `iam:PutRolePermissionsBoundary` only with
///   `iam:PermissionsBoundary` = the boundary, and every write on a role only under the path
///   and only while the role carries that boundary; `iam:PassRole` of those roles only to Pod
///   Identity;
/// - the boundary itself: never edited, deleted or detached (explicit denies, which win over
///   any other grant the role gets by mistake);
/// - Pod Identity associations of this cluster only;
/// - secrets: metadata only (names, ARNs, keys' ARNs), never a value.
pub fn controller_policy(cluster: &str, c: &Confinement) -> Result<Value, String> {
    let account = account_of(&c.boundary).ok_or_else(|| {
        format!(
            "permissions boundary {:?} names no account (arn:aws:iam::ACCOUNT:policy/NAME)",
            c.boundary
        )
    })?;
    let roles = format!("arn:aws:iam::{account}:role{}*", c.path);
    // A role that does not exist yet has no path to be authorized on: its reads are checked
    // against `role/NAME`. Reads only, of bootstrap's role names.
    let unmade = format!("arn:aws:iam::{account}:role/bootstrap-*");
    let bounded = json!({"StringEquals": {"iam:PermissionsBoundary": c.boundary}});
    let cluster_arn = format!("arn:aws:eks:*:{account}:cluster/{cluster}");
    let associations = format!("arn:aws:eks:*:{account}:podidentityassociation/{cluster}/*");
    Ok(json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CreateOnlyBoundedRolesUnderThePath",
                "Effect": "Allow",
                "Action": ["iam:CreateRole", "iam:PutRolePermissionsBoundary"],
                "Resource": roles,
                "Condition": bounded,
            },
            {
                "Sid": "ChangeOnlyBoundedRolesUnderThePath",
                "Effect": "Allow",
                "Action": [
                    "iam:PutRolePolicy",
                    "iam:DeleteRolePolicy",
                    "iam:UpdateAssumeRolePolicy",
                    "iam:UpdateRoleDescription",
                    "iam:TagRole",
                    "iam:DeleteRole",
                ],
                "Resource": roles,
                "Condition": bounded,
            },
            {
                "Sid": "ReadRolesUnderThePath",
                "Effect": "Allow",
                "Action": [
                    "iam:GetRole",
                    "iam:GetRolePolicy",
                    "iam:ListRolePolicies",
                    "iam:ListAttachedRolePolicies",
                ],
                "Resource": [roles, unmade],
            },
            {
                "Sid": "PassRolesOnlyToPodIdentity",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": roles,
                "Condition": {"StringEquals": {"iam:PassedToService": crate::aws::policy::POD_IDENTITY_PRINCIPAL}},
            },
            {
                "Sid": "NeverWidenOrDropTheBoundary",
                "Effect": "Deny",
                "Action": [
                    "iam:CreatePolicyVersion",
                    "iam:DeletePolicy",
                    "iam:DeletePolicyVersion",
                    "iam:SetDefaultPolicyVersion",
                ],
                "Resource": c.boundary,
            },
            {
                "Sid": "NeverUnboundARole",
                "Effect": "Deny",
                "Action": ["iam:DeleteRolePermissionsBoundary", "iam:AttachRolePolicy"],
                "Resource": "*",
            },
            {
                "Sid": "ThisClustersAssociations",
                "Effect": "Allow",
                "Action": [
                    "eks:DescribeCluster",
                    "eks:ListPodIdentityAssociations",
                    "eks:DescribePodIdentityAssociation",
                    "eks:CreatePodIdentityAssociation",
                    "eks:UpdatePodIdentityAssociation",
                    "eks:DeletePodIdentityAssociation",
                    "eks:TagResource",
                ],
                "Resource": [cluster_arn, associations],
            },
            {
                // List and Describe actions: names, ARNs and key ARNs, never a value; IAM
                // authorizes the list actions only on "*".
                "Sid": "SecretMetadataOnly",
                "Effect": "Allow",
                "Action": [
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:ListSecrets",
                    "ssm:DescribeParameters",
                ],
                "Resource": "*",
            },
        ],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confinement() -> Confinement {
        Confinement::new(
            "/bootstrap-controller/",
            "arn:aws:iam::123456789012:policy/bootstrap-boundary",
        )
        .unwrap()
    }

    fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
    }

    #[test]
    fn every_role_write_needs_the_boundary_and_the_path() {
        let p = controller_policy("prod", &confinement()).unwrap();
        for st in p["Statement"].as_array().unwrap() {
            let actions: Vec<&str> = match &st["Action"] {
                Value::String(a) => vec![a.as_str()],
                v => v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect(),
            };
            let writes_roles = actions.iter().any(|a| {
                a.starts_with("iam:")
                    && !a.starts_with("iam:Get")
                    && !a.starts_with("iam:List")
                    && *a != "iam:PassRole"
            });
            if st["Effect"] == "Allow" && writes_roles {
                assert_eq!(
                    st["Resource"], "arn:aws:iam::123456789012:role/bootstrap-controller/*",
                    "{st}"
                );
                assert_eq!(
                    st["Condition"]["StringEquals"]["iam:PermissionsBoundary"],
                    "arn:aws:iam::123456789012:policy/bootstrap-boundary",
                    "{st}"
                );
            }
            // Nothing grants attaching a managed policy (an admin policy would escape the
            // inline-only review) or any IAM action on "*".
            if st["Effect"] == "Allow" {
                assert!(!actions.contains(&"iam:AttachRolePolicy"), "{st}");
                assert!(
                    st["Resource"] != "*" || actions.iter().all(|a| !a.starts_with("iam:")),
                    "{st}"
                );
            }
        }
    }

    #[test]
    fn the_boundary_cannot_be_edited_or_removed() {
        let p = controller_policy("prod", &confinement()).unwrap();
        let deny = statement(&p, "NeverWidenOrDropTheBoundary");
        assert_eq!(deny["Effect"], "Deny");
        assert_eq!(
            deny["Resource"],
            "arn:aws:iam::123456789012:policy/bootstrap-boundary"
        );
        assert!(
            deny["Action"]
                .as_array()
                .unwrap()
                .contains(&json!("iam:CreatePolicyVersion"))
        );
        let unbound = statement(&p, "NeverUnboundARole");
        assert!(
            unbound["Action"]
                .as_array()
                .unwrap()
                .contains(&json!("iam:DeleteRolePermissionsBoundary"))
        );
    }

    #[test]
    fn associations_of_its_own_cluster_only_and_no_secret_values() {
        let p = controller_policy("prod", &confinement()).unwrap();
        let eks = statement(&p, "ThisClustersAssociations");
        assert_eq!(
            eks["Resource"],
            json!([
                "arn:aws:eks:*:123456789012:cluster/prod",
                "arn:aws:eks:*:123456789012:podidentityassociation/prod/*"
            ])
        );
        let text = p.to_string();
        for value_read in ["GetSecretValue", "ssm:GetParameter", "kms:Decrypt"] {
            assert!(!text.contains(value_read), "{value_read} in {text}");
        }
    }

    #[test]
    fn bad_paths_and_arns_are_refused_before_any_call() {
        for path in ["bootstrap", "/a//b/", "/no-trailing", "/sp ace/"] {
            let e = Confinement::new(path, "arn:aws:iam::123456789012:policy/b").unwrap_err();
            assert!(e.contains("not an IAM path"), "{path}: {e}");
        }
        for arn in [
            "bootstrap-boundary",
            "arn:aws:iam::123456789012:role/b",
            "arn:aws:s3:::bucket",
        ] {
            let e = Confinement::new("/b/", arn).unwrap_err();
            assert!(e.contains("not a managed policy ARN"), "{arn}: {e}");
        }
        let no_account = Confinement::new("/b/", "arn:aws:iam:::policy/b").unwrap();
        assert!(controller_policy("prod", &no_account).is_err());
    }
}
