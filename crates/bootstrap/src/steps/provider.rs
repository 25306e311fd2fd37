//! The AWS provider for the driver: our Rust provider (default, `templates/provider/`) or the
//! upstream one (`--provider upstream`, `templates/provider-upstream/`), each a DaemonSet + RBAC;
//! or the EKS add-on `aws-secrets-store-csi-driver-provider`.

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::Value;

use super::{Env, StepError, manifests};
use crate::cli::ProviderKind;
use crate::plan::{Action, Change, StepOutcome};
use crate::render::provider::{self, ProviderValues};
use crate::render::provider_upstream::{self, UpstreamProviderValues};

pub const PROVIDER_ADDON: &str = "aws-secrets-store-csi-driver-provider";

/// A provider to install as a DaemonSet: its objects and the DaemonSet's namespace and name.
struct Rendered {
    objects: Vec<Value>,
    namespace: String,
    name: &'static str,
    /// The other provider's DaemonSet name: both would serve `aws.sock`.
    other: &'static str,
    /// The `--provider` value that keeps the other one.
    other_flag: &'static str,
}

/// Renders the chosen provider with the settings' values (`None` for the add-on).
fn render(env: &Env) -> Result<Option<Rendered>, StepError> {
    let s = &env.settings;
    let driver = &s.csi_driver;
    match s.provider {
        ProviderKind::Addon => Ok(None),
        ProviderKind::Rust => {
            let mut values: ProviderValues = s.provider_values.clone();
            if let Some(image) = &s.provider_image {
                values.image = Some(image.clone());
            }
            if values.providers_dir == ProviderValues::default().providers_dir {
                values.providers_dir = driver.providers_dir.clone();
            }
            let namespace = values
                .namespace
                .get_or_insert_with(|| driver.namespace.clone())
                .clone();
            Ok(Some(Rendered {
                objects: provider::render(&values)?,
                namespace,
                name: provider::PROVIDER_NAME,
                other: provider_upstream::UPSTREAM_NAME,
                other_flag: "upstream",
            }))
        }
        ProviderKind::Upstream => {
            let mut values: UpstreamProviderValues = s.upstream_provider_values.clone();
            if let Some(image) = &s.provider_image {
                values.image = Some(image.clone());
            }
            values
                .providers_dir
                .get_or_insert_with(|| driver.providers_dir.clone());
            let namespace = values
                .namespace
                .get_or_insert_with(|| driver.namespace.clone())
                .clone();
            Ok(Some(Rendered {
                objects: provider_upstream::render(&values)?,
                namespace,
                name: provider_upstream::UPSTREAM_NAME,
                other: provider::PROVIDER_NAME,
                other_flag: "rust",
            }))
        }
    }
}

pub async fn run(env: &Env) -> Result<StepOutcome, StepError> {
    let Some(rendered) = render(env)? else {
        return Ok(StepOutcome::with(vec![
            Change::new(Action::Check, format!("EKS add-on {PROVIDER_ADDON}"))
                .note("installed with the driver by the csi-driver step"),
        ]));
    };
    if let Some(kube) = env.kube() {
        refuse_a_second_provider(kube, &rendered).await?;
    }
    let plans = manifests::plan(env, rendered.objects).await?;
    manifests::apply(env, &plans).await?;
    let mut outcome = StepOutcome::with(manifests::changes(&plans));
    if let (Some(kube), false) = (env.kube(), env.dry_run()) {
        let nodes = crate::kube::wait::daemonset_ready(
            kube,
            &rendered.namespace,
            rendered.name,
            env.remaining(),
        )
        .await?;
        outcome = outcome.note(format!("provider DaemonSet ready on {nodes} node(s)"));
    }
    Ok(outcome)
}

/// Two AWS providers on a node would both serve `<providers dir>/aws.sock`: when the other
/// one's DaemonSet runs in the same namespace, stop before writing anything.
async fn refuse_a_second_provider(kube: &kube::Client, r: &Rendered) -> Result<(), StepError> {
    let api: kube::Api<DaemonSet> = kube::Api::namespaced(kube.clone(), &r.namespace);
    let found = api
        .get_opt(r.other)
        .await
        .map_err(|source| crate::kube::KubeError::Api {
            action: "read",
            resource: format!("DaemonSet/{}/{}", r.namespace, r.other),
            source,
        })?;
    if found.is_none() {
        return Ok(());
    }
    Err(StepError::problem(format!(
        "cannot install provider {}: DaemonSet {}/{} already runs an AWS provider, and both would serve the socket aws.sock",
        r.name, r.namespace, r.other
    ))
    .with_hint(format!(
        "remove the other provider first (kubectl delete daemonset -n {} {}), or keep it with --provider {}",
        r.namespace, r.other, r.other_flag
    )))
}
