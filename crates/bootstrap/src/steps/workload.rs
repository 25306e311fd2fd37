//! The workload's namespace, ServiceAccount and SecretProviderClass (`usePodIdentity: "true"`).

use super::{Env, StepError, manifests};
use crate::config::SecretKind;
use crate::plan::StepOutcome;
use crate::render::workload::{self, SpcObject, WorkloadValues};

/// The image of the verification pod (it only has to start; it never reads the files).
pub const SAMPLE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// The workload values from the settings and the resolved secrets.
pub fn values(env: &Env) -> WorkloadValues {
    let mut seen = std::collections::BTreeSet::new();
    let objects = env
        .facts
        .secrets
        .get()
        .map(|secrets| {
            secrets
                .iter()
                .map(|s| {
                    let mut alias = workload::alias_for(&s.arn);
                    let base = alias.clone();
                    let mut n = 2;
                    while !seen.insert(alias.clone()) {
                        alias = format!("{base}-{n}");
                        n += 1;
                    }
                    SpcObject {
                        object_name: s.arn.clone(),
                        object_type: match s.kind {
                            SecretKind::SecretsManager => "secretsmanager".into(),
                            SecretKind::SsmParameter => "ssmparameter".into(),
                        },
                        object_alias: alias,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    WorkloadValues {
        namespace: env.settings.namespace.clone(),
        service_account: env.settings.service_account.clone(),
        region: env.region.clone(),
        objects,
        sample_image: env
            .settings
            .sample_image
            .clone()
            .unwrap_or_else(|| SAMPLE_IMAGE.into()),
        labels: Default::default(),
    }
}

pub async fn run(env: &Env) -> Result<StepOutcome, StepError> {
    let plans = manifests::plan(env, workload::render(&values(env))?).await?;
    manifests::apply(env, &plans).await?;
    Ok(StepOutcome::with(manifests::changes(&plans)))
}
