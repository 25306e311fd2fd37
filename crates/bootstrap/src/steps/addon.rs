//! EKS add-ons (the Pod Identity agent, or the provider add-on): adopt if present, else pick
//! the default version for the cluster's Kubernetes version, create, and wait for ACTIVE.

use std::time::{Duration, Instant};

use aws_sdk_eks::types::AddonStatus;

use super::{Env, StepError, tagged_ours};
use crate::aws::{ErrorKind, classify};
use crate::plan::{Action, Change};

/// Observes the add-on and makes it ACTIVE. Returns its change.
pub async fn ensure(env: &Env, addon: &str) -> Result<Change, StepError> {
    let cluster = &env.settings.cluster;
    let resource = format!("EKS add-on {addon}");
    let Some(aws) = &env.aws else {
        return Ok(Change::new(Action::Create, resource)
            .call(format!("eks:DescribeAddonVersions addonName={addon} kubernetesVersion=<cluster version>"))
            .call(format!("eks:CreateAddon clusterName={cluster} addonName={addon} addonVersion=<default> tags=bootstrap.podid/*"))
            .call(format!("eks:DescribeAddon clusterName={cluster} addonName={addon} (until ACTIVE)")));
    };
    match aws
        .eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(addon)
        .send()
        .await
    {
        Ok(out) => {
            let found = out.addon();
            let ours = found
                .and_then(|a| a.tags())
                .is_some_and(|t| tagged_ours(t.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
            let status = found.and_then(|a| a.status()).cloned();
            let version = found
                .and_then(|a| a.addon_version())
                .unwrap_or("?")
                .to_string();
            check_status(addon, status.as_ref())?;
            if status != Some(AddonStatus::Active) && !env.dry_run() {
                wait_active(env, addon).await?;
            }
            let action = if ours {
                Action::Unchanged
            } else {
                Action::Adopt
            };
            let mut change = Change::new(action, resource).note(format!("version {version}"));
            if !ours {
                change = change.note(format!(
                    "version {version}, installed outside bootstrap; adopted"
                ));
            }
            Ok(change)
        }
        Err(e) => {
            let err = classify("describe", resource.clone(), e);
            if !err.is(ErrorKind::NotFound) {
                return Err(err.into());
            }
            let version = default_version(env, addon).await?;
            let change = Change::new(Action::Create, resource.clone()).call(format!(
                "eks:CreateAddon clusterName={cluster} addonName={addon} addonVersion={version}"
            ));
            if env.dry_run() {
                return Ok(change);
            }
            let mut create = aws
                .eks
                .create_addon()
                .cluster_name(cluster)
                .addon_name(addon)
                .addon_version(&version);
            for (k, v) in env.tags() {
                create = create.tags(k, v);
            }
            create
                .send()
                .await
                .map_err(|e| classify("create", resource.clone(), e))?;
            wait_active(env, addon).await?;
            Ok(change)
        }
    }
}

fn check_status(addon: &str, status: Option<&AddonStatus>) -> Result<(), StepError> {
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

/// The default add-on version for the cluster's Kubernetes version.
async fn default_version(env: &Env, addon: &str) -> Result<String, StepError> {
    let Some(aws) = &env.aws else {
        return Ok("<default>".into());
    };
    let k8s = env
        .facts
        .cluster
        .get()
        .map(|c| c.version.clone())
        .unwrap_or_default();
    let out = aws
        .eks
        .describe_addon_versions()
        .addon_name(addon)
        .kubernetes_version(&k8s)
        .send()
        .await
        .map_err(|e| classify("list the versions of", format!("EKS add-on {addon}"), e))?;
    let versions: Vec<_> = out
        .addons()
        .iter()
        .flat_map(|a| a.addon_versions())
        .collect();
    let default = versions
        .iter()
        .find(|v| v.compatibilities().iter().any(|c| c.default_version()))
        .or_else(|| versions.first())
        .and_then(|v| v.addon_version());
    default.map(str::to_string).ok_or_else(|| {
        StepError::problem(format!(
            "EKS offers no version of add-on {addon} for Kubernetes {k8s}"
        ))
        .with_hint("check the cluster version, or install the add-on by hand and run again")
    })
}

/// Polls DescribeAddon until ACTIVE, within the run's timeout.
async fn wait_active(env: &Env, addon: &str) -> Result<(), StepError> {
    let Some(aws) = &env.aws else { return Ok(()) };
    let deadline = env.deadline;
    let mut delay = Duration::from_millis(500);
    loop {
        let out = aws
            .eks
            .describe_addon()
            .cluster_name(&env.settings.cluster)
            .addon_name(addon)
            .send()
            .await
            .map_err(|e| classify("describe", format!("EKS add-on {addon}"), e))?;
        let status = out.addon().and_then(|a| a.status()).cloned();
        check_status(addon, status.as_ref())?;
        if status == Some(AddonStatus::Active) {
            return Ok(());
        }
        if Instant::now() + delay > deadline {
            return Err(StepError::problem(format!(
                "timed out after {}s waiting for EKS add-on {addon} to be ACTIVE (still {})",
                env.settings.timeout.as_secs(),
                status.as_ref().map(|s| s.as_str()).unwrap_or("?")
            ))
            .with_hint("raise --timeout, or check the add-on in the EKS console"));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
