//! A Pod Identity association of a service account with its role. Another role already
//! associated is a conflict (with a hint) unless forced, which updates it.

use aws_sdk_eks::types::PodIdentityAssociationSummary;

use super::owned;
use crate::aws::{Clients, classify};
use crate::error::StepError;
use crate::plan::{Action, Change, Op};

/// An association as EKS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveAssociation {
    pub id: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    pub target_role_arn: Option<String>,
    pub owned: bool,
}

/// Reads the association of `namespace/service_account` (at most one exists).
pub async fn observe(
    aws: &Clients,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> Result<Option<LiveAssociation>, StepError> {
    let listed = list(aws, cluster, namespace, service_account).await?;
    match listed.first().and_then(|a| a.association_id()) {
        Some(id) => describe(aws, cluster, id).await,
        None => Ok(None),
    }
}

/// Whether `namespace/service_account` has an association (one list call, no describe).
pub async fn exists(
    aws: &Clients,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> Result<bool, StepError> {
    Ok(!list(aws, cluster, namespace, service_account)
        .await?
        .is_empty())
}

/// The associations EKS lists for `namespace/service_account`.
async fn list(
    aws: &Clients,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> Result<Vec<PodIdentityAssociationSummary>, StepError> {
    let listed = aws
        .eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .namespace(namespace)
        .service_account(service_account)
        .send()
        .await
        .map_err(|e| {
            classify(
                "list the Pod Identity associations of",
                format!("{namespace}/{service_account}"),
                e,
            )
        })?;
    Ok(listed.associations().to_vec())
}

/// Reads one association by id (`None` when it is gone).
pub async fn describe(
    aws: &Clients,
    cluster: &str,
    id: &str,
) -> Result<Option<LiveAssociation>, StepError> {
    let out = match aws
        .eks
        .describe_pod_identity_association()
        .cluster_name(cluster)
        .association_id(id)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let err = classify("describe", format!("Pod Identity association {id}"), e);
            return if err.is(crate::aws::ErrorKind::NotFound) {
                Ok(None)
            } else {
                Err(err.into())
            };
        }
    };
    Ok(out.association().map(|a| LiveAssociation {
        id: id.to_string(),
        namespace: a.namespace().unwrap_or_default().to_string(),
        service_account: a.service_account().unwrap_or_default().to_string(),
        role_arn: a.role_arn().unwrap_or_default().to_string(),
        target_role_arn: a.target_role_arn().map(str::to_string),
        owned: a
            .tags()
            .is_some_and(|t| owned(t.iter().map(|(k, v)| (k.as_str(), v.as_str())), cluster)),
    }))
}

/// The error for a service account already associated with another role.
pub fn conflict(ns: &str, sa: &str, other_role: &str) -> StepError {
    StepError::problem(format!(
        "service account {ns}/{sa} is already associated with another role: {other_role}"
    ))
    .with_hint("pass --force to point the association at bootstrap's role, or use another --service-account")
}

/// Create when absent; unchanged when it names `role_arn`; a conflict otherwise, unless
/// `force` (then updated).
pub fn plan(
    cluster: &str,
    namespace: &str,
    service_account: &str,
    role_arn: &str,
    target_role_arn: Option<&str>,
    force: bool,
    observed: Option<&LiveAssociation>,
) -> Result<Change, StepError> {
    let resource = format!("Pod Identity association {namespace}/{service_account}");
    let Some(live) = observed else {
        return Ok(
            Change::new(Action::Create, resource).op(Op::CreatePodIdentityAssociation(
                crate::plan::NewAssociation {
                    cluster: cluster.into(),
                    namespace: namespace.into(),
                    service_account: service_account.into(),
                    role_arn: role_arn.into(),
                    target_role_arn: target_role_arn.map(str::to_string),
                },
            )),
        );
    };
    if live.role_arn == role_arn {
        if live.target_role_arn.as_deref() == target_role_arn {
            return Ok(Change::new(Action::Unchanged, resource).note(format!("id {}", live.id)));
        }
        // Our role already: only the target role changed (no --force needed).
        return Ok(
            Change::new(Action::Update, resource).op(Op::UpdatePodIdentityAssociation {
                cluster: cluster.into(),
                id: live.id.clone(),
                role_arn: role_arn.into(),
                target_role_arn: target_role_arn.map(str::to_string),
            }),
        );
    }
    if !force {
        return Err(conflict(namespace, service_account, &live.role_arn));
    }
    Ok(Change::new(Action::Replace, resource)
        .op(Op::UpdatePodIdentityAssociation {
            cluster: cluster.into(),
            id: live.id.clone(),
            role_arn: role_arn.into(),
            target_role_arn: target_role_arn.map(str::to_string),
        })
        .note(format!("replaces role {} (--force)", live.role_arn)))
}

/// Deletes an association bootstrap created.
pub fn plan_delete(cluster: &str, live: &LiveAssociation) -> Option<Change> {
    live.owned.then(|| {
        Change::new(
            Action::Delete,
            format!(
                "Pod Identity association {}/{}",
                live.namespace, live.service_account
            ),
        )
        .op(Op::DeletePodIdentityAssociation {
            cluster: cluster.into(),
            id: live.id.clone(),
            namespace: live.namespace.clone(),
            service_account: live.service_account.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(role: &str, owned: bool) -> LiveAssociation {
        LiveAssociation {
            id: "a-1".into(),
            namespace: "ns".into(),
            service_account: "sa".into(),
            role_arn: role.into(),
            target_role_arn: None,
            owned,
        }
    }

    /// The plan of ns/sa's association with role `arn:r` against `live`.
    fn plan_against(force: bool, live: &LiveAssociation) -> Result<Change, StepError> {
        plan("c", "ns", "sa", "arn:r", None, force, Some(live))
    }

    #[test]
    fn same_role_is_unchanged_another_is_a_conflict_unless_forced() {
        let same = plan_against(false, &live("arn:r", true)).expect("ok");
        assert_eq!(same.action, Action::Unchanged);
        assert!(same.ops.is_empty());
        let err = plan_against(false, &live("arn:other", false)).expect_err("conflict");
        assert!(err.to_string().contains("arn:other"));
        assert!(err.hint().is_some_and(|h| h.contains("--force")));
        let forced = plan_against(true, &live("arn:other", false)).expect("forced");
        assert_eq!(forced.action, Action::Replace);
        assert!(forced.calls[0].contains("associationId=a-1"));
    }

    #[test]
    fn only_owned_associations_are_deleted() {
        assert!(plan_delete("c", &live("arn:r", false)).is_none());
        let del = plan_delete("c", &live("arn:r", true)).expect("owned");
        assert!(del.calls[0].starts_with("eks:DeletePodIdentityAssociation"));
    }
}
