//! The Secrets Store CSI Driver: render, adopt an existing install or server-side apply ours,
//! then wait for the CRDs to be Established and the DaemonSet to roll out.

use serde_json::Value;

use super::manifests::{self, ObjectPlan};
use super::{Env, StepError};
use crate::cli::ProviderKind;
use crate::kube::apply::{self, ObjectState};
use crate::plan::{Action, StepOutcome};
use crate::render::csi_driver::{
    self, AWS_TOKEN_AUDIENCES, CRD_NAMES, DAEMONSET_NAME, DRIVER_NAME,
};

pub async fn run(env: &Env) -> Result<StepOutcome, StepError> {
    let values = &env.settings.csi_driver;
    if env.settings.provider == ProviderKind::Addon {
        // The provider add-on brings its own driver: install it here, render nothing.
        let change = super::addon::ensure(env, super::provider::PROVIDER_ADDON).await?;
        let outcome = StepOutcome::with(vec![change])
            .note("the driver comes with the EKS add-on aws-secrets-store-csi-driver-provider");
        if let (Some(kube), false) = (env.kube(), env.dry_run()) {
            for crd in CRD_NAMES {
                crate::kube::wait::crd_established(kube, crd, env.remaining()).await?;
            }
        }
        return Ok(outcome);
    }
    let objects = csi_driver::render(values)?;
    let mut plans = manifests::plan(env, objects).await?;
    let mut notes = Vec::new();
    if let Some(existing) = foreign_driver(env, &plans).await? {
        // Someone else installed the driver: adopt all of it, write nothing.
        for plan in &mut plans {
            if plan.action.writes() || plan.action == Action::Update {
                plan.action = Action::Adopt;
                plan.note = Some("part of a driver installed outside bootstrap; left as is".into());
            }
        }
        let missing: Vec<&str> = AWS_TOKEN_AUDIENCES
            .iter()
            .copied()
            .filter(|a| !audiences(&existing).iter().any(|x| x == a))
            .collect();
        if !missing.is_empty() {
            notes.push(format!(
                "warning: the existing CSIDriver {DRIVER_NAME} does not request token audience(s) {}; \
                 mounts with Pod Identity will fail until its tokenRequests include them",
                missing.join(", ")
            ));
        }
    }
    manifests::apply(env, &plans).await?;
    if let (Some(kube), false) = (env.kube(), env.dry_run()) {
        for crd in CRD_NAMES {
            crate::kube::wait::crd_established(kube, crd, env.remaining()).await?;
        }
        let nodes = crate::kube::wait::daemonset_ready(
            kube,
            &values.namespace,
            DAEMONSET_NAME,
            env.remaining(),
        )
        .await?;
        notes.push(format!("driver DaemonSet ready on {nodes} node(s)"));
    }
    let mut outcome = StepOutcome::with(manifests::changes(&plans));
    outcome.notes = notes;
    Ok(outcome)
}

/// The live CSIDriver object when it exists and is not ours.
async fn foreign_driver(env: &Env, plans: &[ObjectPlan]) -> Result<Option<Value>, StepError> {
    let Some(kube) = env.kube() else {
        return Ok(None);
    };
    let Some(plan) = plans.iter().find(|p| p.object["kind"] == "CSIDriver") else {
        return Ok(None);
    };
    let live = apply::get(kube, &plan.object).await?;
    Ok(live.filter(|l| {
        !matches!(
            apply::state_of(&plan.object, Some(l)),
            ObjectState::Same { ours: true } | ObjectState::Differs { ours: true }
        )
    }))
}

fn audiences(csidriver: &Value) -> Vec<String> {
    csidriver
        .pointer("/spec/tokenRequests")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|t| t["audience"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_token_audiences() {
        let d = serde_json::json!({"spec": {"tokenRequests": [{"audience": "sts.amazonaws.com"}]}});
        assert_eq!(audiences(&d), ["sts.amazonaws.com"]);
        assert!(audiences(&serde_json::json!({})).is_empty());
    }
}
