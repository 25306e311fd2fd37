//! The AWS provider for the driver: our Rust provider (default) or the upstream one, rendered
//! from `templates/provider/`; or the EKS add-on `aws-secrets-store-csi-driver-provider`.

use super::{Env, StepError, manifests};
use crate::cli::ProviderKind;
use crate::plan::{Action, Change, StepOutcome};
use crate::render::provider::{self, ProviderValues};

pub const PROVIDER_ADDON: &str = "aws-secrets-store-csi-driver-provider";

pub async fn run(env: &Env) -> Result<StepOutcome, StepError> {
    match env.settings.provider {
        ProviderKind::Addon => Ok(StepOutcome::with(vec![
            Change::new(Action::Check, format!("EKS add-on {PROVIDER_ADDON}"))
                .note("installed with the driver by the csi-driver step"),
        ])),
        kind => {
            let mut values: ProviderValues = env.settings.provider_values.clone();
            if let Some(image) = &env.settings.provider_image {
                values.image = Some(image.clone());
            }
            if values.providers_dir == ProviderValues::default().providers_dir {
                values.providers_dir = env.settings.csi_driver.providers_dir.clone();
            }
            if values.namespace.is_none() {
                values.namespace = Some(env.settings.csi_driver.namespace.clone());
            }
            if kind == ProviderKind::Upstream {
                return Err(
                    StepError::problem("--provider upstream is not implemented yet")
                        .with_hint("use --provider rust (the default) or --provider addon"),
                );
            }
            let plans = manifests::plan(env, provider::render(&values)?).await?;
            manifests::apply(env, &plans).await?;
            let mut outcome = StepOutcome::with(manifests::changes(&plans));
            if let (Some(kube), false) = (env.kube(), env.dry_run()) {
                let namespace = values.namespace.as_deref().unwrap_or("kube-system");
                let nodes = crate::kube::wait::daemonset_ready(
                    kube,
                    namespace,
                    provider::PROVIDER_NAME,
                    env.remaining(),
                )
                .await?;
                outcome = outcome.note(format!("provider DaemonSet ready on {nodes} node(s)"));
            }
            Ok(outcome)
        }
    }
}
