//! An EKS add-on (the Pod Identity agent, or the provider add-on): adopted when present,
//! else created at the default version for the cluster's Kubernetes version and waited for.

use aws_sdk_eks::types::{Addon, AddonStatus};

use super::owned;
use crate::aws::{AwsError, Clients, ErrorKind, classify};
use crate::error::StepError;
use crate::plan::{Action, AddonGoal, Change, Op};

/// An add-on as EKS reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum AddonState {
    /// Absent; the version a create would install.
    Absent { default_version: String },
    Present {
        owned: bool,
        status: Option<AddonStatus>,
        version: String,
    },
}

/// Reads the add-on; when absent, its default version for `kubernetes_version`. Offline
/// (`aws` is `None`) it is absent at `<default>`.
pub async fn observe(
    aws: Option<&Clients>,
    cluster: &str,
    addon: &str,
    kubernetes_version: &str,
) -> Result<AddonState, StepError> {
    let Some(aws) = aws else {
        return Ok(AddonState::Absent {
            default_version: "<default>".into(),
        });
    };
    match describe(aws, cluster, addon).await? {
        Some(state) => Ok(state),
        None => Ok(AddonState::Absent {
            default_version: default_version(aws, addon, kubernetes_version).await?,
        }),
    }
}

/// Reads the add-on; `None` when EKS has no such add-on on the cluster.
pub async fn describe(
    aws: &Clients,
    cluster: &str,
    addon: &str,
) -> Result<Option<AddonState>, StepError> {
    let Some(found) = read(aws, cluster, addon).await? else {
        return Ok(None);
    };
    Ok(Some(AddonState::Present {
        owned: found
            .tags()
            .is_some_and(|t| owned(t.iter().map(|(k, v)| (k.as_str(), v.as_str())), cluster)),
        status: found.status().cloned(),
        version: found.addon_version().unwrap_or("?").to_string(),
    }))
}

/// The one DescribeAddon: the add-on as EKS reports it, `None` when the cluster has none.
pub async fn read(aws: &Clients, cluster: &str, addon: &str) -> Result<Option<Addon>, AwsError> {
    match aws
        .eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(addon)
        .send()
        .await
    {
        Ok(out) => Ok(out.addon().cloned()),
        Err(e) => {
            let err = classify("describe", format!("EKS add-on {addon}"), e);
            if err.is(ErrorKind::NotFound) {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

async fn default_version(aws: &Clients, addon: &str, k8s: &str) -> Result<String, StepError> {
    let out = aws
        .eks
        .describe_addon_versions()
        .addon_name(addon)
        .kubernetes_version(k8s)
        .send()
        .await
        .map_err(|e| classify("list the versions of", format!("EKS add-on {addon}"), e))?;
    let versions: Vec<_> = out
        .addons()
        .iter()
        .flat_map(|a| a.addon_versions())
        .collect();
    versions
        .iter()
        .find(|v| v.compatibilities().iter().any(|c| c.default_version()))
        .or_else(|| versions.first())
        .and_then(|v| v.addon_version())
        .map(str::to_string)
        .ok_or_else(|| {
            StepError::problem(format!(
                "EKS offers no version of add-on {addon} for Kubernetes {k8s}"
            ))
            .with_hint("check the cluster version, or install the add-on by hand and run again")
        })
}

/// Fails on states an install cannot proceed from.
pub fn check_status(addon: &str, status: Option<&AddonStatus>) -> Result<(), StepError> {
    match status {
        Some(
            AddonStatus::CreateFailed
            | AddonStatus::Degraded
            | AddonStatus::UpdateFailed
            | AddonStatus::DeleteFailed,
        ) => {
            let s = status.map(|s| s.as_str()).unwrap_or("?");
            Err(StepError::problem(format!("EKS add-on {addon} is {s}")).with_hint(format!(
                "see its health issues with `aws eks describe-addon --cluster-name CLUSTER --addon-name {addon}`"
            )))
        }
        Some(AddonStatus::Deleting) => Err(StepError::problem(format!(
            "EKS add-on {addon} is being deleted"
        ))
        .with_hint("wait for the deletion to finish, then run again")),
        _ => Ok(()),
    }
}

/// Create when absent (then wait for ACTIVE); adopt or keep otherwise (waiting if it is not
/// ACTIVE yet). Fails on a failed or deleting add-on.
pub fn plan(cluster: &str, addon: &str, observed: &AddonState) -> Result<Change, StepError> {
    let resource = format!("EKS add-on {addon}");
    let wait = Op::WaitAddon {
        cluster: cluster.into(),
        addon: addon.into(),
        until: AddonGoal::Active,
    };
    match observed {
        AddonState::Absent { default_version } => Ok(Change::new(Action::Create, resource)
            .op(Op::CreateAddon {
                cluster: cluster.into(),
                addon: addon.into(),
                version: default_version.clone(),
            })
            .op(wait)),
        AddonState::Present {
            owned,
            status,
            version,
        } => {
            check_status(addon, status.as_ref())?;
            let (action, note) = if *owned {
                (Action::Unchanged, format!("version {version}"))
            } else {
                (
                    Action::Adopt,
                    format!("version {version}, installed outside bootstrap; adopted"),
                )
            };
            let mut change = Change::new(action, resource).note(note);
            if status.as_ref() != Some(&AddonStatus::Active) {
                change = change.op(wait);
            }
            Ok(change)
        }
    }
}

/// Deletes an add-on bootstrap created, and waits until EKS has removed it.
pub fn plan_delete(cluster: &str, addon: &str, observed: &AddonState) -> Option<Change> {
    match observed {
        AddonState::Present { owned: true, .. } => Some(
            Change::new(Action::Delete, format!("EKS add-on {addon}"))
                .op(Op::DeleteAddon {
                    cluster: cluster.into(),
                    addon: addon.into(),
                })
                .op(Op::WaitAddon {
                    cluster: cluster.into(),
                    addon: addon.into(),
                    until: AddonGoal::Gone,
                }),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_is_created_then_waited_for() {
        let c = plan(
            "demo",
            "eks-pod-identity-agent",
            &AddonState::Absent {
                default_version: "v1.3.0".into(),
            },
        )
        .expect("plan");
        assert_eq!(c.action, Action::Create);
        assert!(c.calls[0].contains("addonVersion=v1.3.0"));
        assert!(c.calls[1].starts_with("wait:"));
    }

    #[test]
    fn adopted_addons_are_never_deleted_and_failed_ones_stop_the_plan() {
        let theirs = AddonState::Present {
            owned: false,
            status: Some(AddonStatus::Active),
            version: "v1".into(),
        };
        let c = plan("demo", "a", &theirs).expect("plan");
        assert_eq!(c.action, Action::Adopt);
        assert!(c.ops.is_empty(), "active and adopted: no call, no wait");
        assert!(plan_delete("demo", "a", &theirs).is_none());
        let failed = AddonState::Present {
            owned: true,
            status: Some(AddonStatus::CreateFailed),
            version: "v1".into(),
        };
        assert!(plan("demo", "a", &failed).is_err());
        let del = plan_delete("demo", "a", &failed).expect("ours");
        assert_eq!(del.ops.len(), 2);
    }
}
