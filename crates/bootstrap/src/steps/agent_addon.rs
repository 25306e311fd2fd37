//! The EKS Pod Identity Agent add-on: skipped on Auto Mode (built in), else ensured ACTIVE and
//! its DaemonSet rolled out.

use super::{Env, StepError, addon};
use crate::plan::{Action, Change, StepOutcome};

pub const AGENT_ADDON: &str = "eks-pod-identity-agent";
pub const AGENT_DAEMONSET: &str = "eks-pod-identity-agent";

pub async fn run(env: &Env) -> Result<StepOutcome, StepError> {
    if env.facts.cluster.get().is_some_and(|c| c.auto_mode) {
        return Ok(StepOutcome::with(vec![
            Change::new(Action::Check, "Pod Identity agent")
                .note("built into EKS Auto Mode; no add-on needed"),
        ]));
    }
    let change = addon::ensure(env, AGENT_ADDON).await?;
    let mut outcome = StepOutcome::with(vec![change]);
    if let (Some(kube), false) = (env.kube(), env.dry_run()) {
        let nodes = crate::kube::wait::daemonset_ready(
            kube,
            "kube-system",
            AGENT_DAEMONSET,
            env.remaining(),
        )
        .await?;
        outcome = outcome.note(format!("agent DaemonSet ready on {nodes} node(s)"));
    }
    Ok(outcome)
}
