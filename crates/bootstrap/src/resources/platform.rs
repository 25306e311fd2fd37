//! The platform every workload needs: the Pod Identity agent add-on, the Secrets Store CSI
//! Driver's objects, and one AWS provider (ours, upstream's, or the EKS add-on).

use serde_json::Value;

use super::provider_image::{self, ImageCheck};
use super::workload::{PlanError, at};
use super::{addon, objects};
use crate::error::StepError;
use crate::plan::{Action, Change, Op, StepOutcome};
use crate::render::csi_driver::{
    self, AWS_TOKEN_AUDIENCES, CRD_NAMES, CsiDriverValues, DAEMONSET_NAME, DRIVER_NAME,
};
use crate::render::provider::{self, ProviderValues};
use crate::render::provider_upstream::{self, UpstreamProviderValues};
use crate::target::Target;
pub use bootstrap_common::names::{AGENT_ADDON, PROVIDER_ADDON};

pub const AGENT_DAEMONSET: &str = "eks-pod-identity-agent";

/// Which provider serves `aws.sock`, with its rendering values.
#[derive(Debug, Clone)]
pub enum ProviderChoice {
    Rust(ProviderValues),
    Upstream(UpstreamProviderValues),
    /// The EKS add-on, which brings the driver along.
    Addon,
}

/// What the platform must be.
#[derive(Debug, Clone)]
pub struct Platform {
    pub driver: CsiDriverValues,
    pub provider: ProviderChoice,
    /// Whether the provider image is checked against the registry before any write.
    pub image_check: ImageCheck,
}

/// A provider DaemonSet to install: its objects, and the other provider that would clash.
#[derive(Debug, Clone)]
pub struct RenderedProvider {
    pub objects: Vec<Value>,
    pub namespace: String,
    pub name: &'static str,
    /// The other provider's DaemonSet name: both would serve `aws.sock`.
    pub other: &'static str,
    /// The `--provider` value that keeps the other one.
    pub other_flag: &'static str,
    /// The image its DaemonSet runs; `None`: this build has no default and none was given.
    pub image: Option<String>,
}

impl RenderedProvider {
    /// Deploys `pinned` (the checked reference at its digest) wherever the DaemonSet's pod
    /// template runs the rendered image.
    pub fn pin_image(&mut self, pinned: &str) {
        let Some(image) = self.image.clone() else {
            return;
        };
        for object in &mut self.objects {
            for list in ["containers", "initContainers"] {
                let Some(containers) = object
                    .pointer_mut(&format!("/spec/template/spec/{list}"))
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                for container in containers {
                    if container["image"].as_str() == Some(image.as_str()) {
                        container["image"] = Value::String(pinned.to_string());
                    }
                }
            }
        }
        self.image = Some(pinned.to_string());
    }
}

/// Ours: its DaemonSet, the one it would clash with, and the `--provider` value keeping that one.
const RUST_NAMES: [&str; 3] = [
    provider::PROVIDER_NAME,
    provider_upstream::UPSTREAM_NAME,
    "upstream",
];
/// Upstream's: its DaemonSet, ours, and the `--provider` value keeping ours.
const UPSTREAM_NAMES: [&str; 3] = [
    provider_upstream::UPSTREAM_NAME,
    provider::PROVIDER_NAME,
    "rust",
];

impl Platform {
    /// Renders the chosen provider (`None` for the add-on), sharing the driver's namespace and
    /// providers directory unless the values say otherwise.
    pub fn render_provider(&self) -> Result<Option<RenderedProvider>, StepError> {
        let driver = &self.driver;
        let driver_namespace = |namespace: &mut Option<String>| {
            namespace
                .get_or_insert_with(|| driver.namespace.clone())
                .clone()
        };
        let (objects, namespace, image, [name, other, other_flag]) = match &self.provider {
            ProviderChoice::Addon => return Ok(None),
            ProviderChoice::Rust(values) => {
                let mut values = values.clone();
                if values.providers_dir == ProviderValues::default().providers_dir {
                    values.providers_dir = driver.providers_dir.clone();
                }
                let namespace = driver_namespace(&mut values.namespace);
                let image = values.image.clone().or_else(provider::configured_image);
                (provider::render(&values)?, namespace, image, RUST_NAMES)
            }
            ProviderChoice::Upstream(values) => {
                let mut values = values.clone();
                values
                    .providers_dir
                    .get_or_insert_with(|| driver.providers_dir.clone());
                let namespace = driver_namespace(&mut values.namespace);
                let image = values
                    .image
                    .clone()
                    .unwrap_or_else(provider_upstream::default_image);
                let objects = provider_upstream::render(&values)?;
                (objects, namespace, Some(image), UPSTREAM_NAMES)
            }
        };
        Ok(Some(RenderedProvider {
            objects,
            namespace,
            name,
            other,
            other_flag,
            image,
        }))
    }
}

/// The agent: built in on EKS Auto Mode; else the add-on, then its DaemonSet rolled out.
pub fn plan_agent(
    cluster: &str,
    auto_mode: bool,
    observed: &addon::AddonState,
) -> Result<StepOutcome, StepError> {
    if auto_mode {
        return Ok(StepOutcome::with(vec![
            Change::new(Action::Check, "Pod Identity agent")
                .note("built into EKS Auto Mode; no add-on needed"),
        ]));
    }
    let change = addon::plan(cluster, AGENT_ADDON, observed)?.op(Op::WaitDaemonSet {
        namespace: "kube-system".into(),
        name: AGENT_DAEMONSET.into(),
    });
    Ok(StepOutcome::with(vec![change]))
}

/// What the driver step observed: the provider add-on (when chosen) or our objects.
pub enum DriverObserved {
    Addon(addon::AddonState),
    Objects(Vec<objects::Observed>),
}

/// The driver: the provider add-on brings it; otherwise our objects, all adopted when a
/// CSIDriver someone else made exists (with a warning when it lacks an AWS audience). Then
/// the CRDs Established and the DaemonSet rolled out.
pub fn plan_driver(
    cluster: &str,
    values: &CsiDriverValues,
    observed: &DriverObserved,
) -> Result<StepOutcome, StepError> {
    let crd_waits = CRD_NAMES.iter().map(|crd| Op::WaitCrdEstablished {
        name: (*crd).to_string(),
    });
    let objects = match observed {
        DriverObserved::Addon(state) => {
            let change = addon::plan(cluster, PROVIDER_ADDON, state)?.ops(crd_waits);
            return Ok(StepOutcome::with(vec![change]).note(
                "the driver comes with the EKS add-on aws-secrets-store-csi-driver-provider",
            ));
        }
        DriverObserved::Objects(objects) => objects,
    };
    let mut changes = objects::plan(objects);
    let mut notes = Vec::new();
    if let Some(existing) = objects
        .iter()
        .find(|o| o.object["kind"] == "CSIDriver")
        .and_then(|o| o.live.as_ref().filter(|_| !o.state.is_ours()))
    {
        objects::adopt_all(
            &mut changes,
            "part of a driver installed outside bootstrap; left as is",
        );
        let present = audiences(existing);
        let missing: Vec<&str> = AWS_TOKEN_AUDIENCES
            .iter()
            .copied()
            .filter(|a| !present.iter().any(|x| x == a))
            .collect();
        if !missing.is_empty() {
            notes.push(format!(
                "warning: the existing CSIDriver {DRIVER_NAME} does not request token audience(s) {}; \
                 mounts with Pod Identity will fail until its tokenRequests include them",
                missing.join(", ")
            ));
        }
    }
    let waits = crd_waits.chain([Op::WaitDaemonSet {
        namespace: values.namespace.clone(),
        name: DAEMONSET_NAME.into(),
    }]);
    append_waits(&mut changes, waits);
    let mut outcome = StepOutcome::with(changes);
    outcome.notes = notes;
    Ok(outcome)
}

/// The provider: refused when the other AWS provider's DaemonSet is there (both would serve
/// `aws.sock`); else its objects, then its DaemonSet rolled out.
pub fn plan_provider(
    rendered: Option<&RenderedProvider>,
    other_present: bool,
    observed: &[objects::Observed],
) -> Result<StepOutcome, StepError> {
    let Some(r) = rendered else {
        return Ok(StepOutcome::with(vec![
            Change::new(Action::Check, format!("EKS add-on {PROVIDER_ADDON}"))
                .note("installed with the driver by the csi-driver step"),
        ]));
    };
    if other_present {
        return Err(StepError::problem(format!(
            "cannot install provider {}: DaemonSet {}/{} already runs an AWS provider, and both would serve the socket aws.sock",
            r.name, r.namespace, r.other
        ))
        .with_hint(format!(
            "remove the other provider first (kubectl delete daemonset -n {} {}), or keep it with --provider {}",
            r.namespace, r.other, r.other_flag
        )));
    }
    let mut changes = objects::plan(observed);
    append_waits(
        &mut changes,
        [Op::WaitDaemonSet {
            namespace: r.namespace.clone(),
            name: r.name.into(),
        }],
    );
    Ok(StepOutcome::with(changes))
}

/// Waits run after the last object is applied: they ride on the last change.
fn append_waits(changes: &mut [Change], waits: impl IntoIterator<Item = Op>) {
    if let Some(last) = changes.last_mut() {
        let taken = std::mem::replace(last, Change::new(Action::Check, String::new()));
        *last = taken.ops(waits);
    }
}

/// The platform's planned changes, by step.
pub struct PlatformPlan {
    pub agent: StepOutcome,
    pub driver: StepOutcome,
    pub provider: StepOutcome,
}

/// Observes (read-only) and plans the agent, the driver and the provider.
pub async fn plan_all(
    platform: &Platform,
    t: &Target,
    dry_run: bool,
) -> Result<PlatformPlan, PlanError> {
    let aws = t.aws();
    let kube = t.kube();
    let cluster = t.name();
    let mut rendered_provider = platform.render_provider().map_err(at("provider"))?;
    let k8s_version = t.cluster.version.clone();
    let agent = async {
        if t.cluster.auto_mode {
            return Ok(None);
        }
        addon::observe(aws, cluster, AGENT_ADDON, &k8s_version)
            .await
            .map(Some)
            .map_err(at("agent-addon"))
    };
    let driver = async {
        let observed = async {
            if matches!(platform.provider, ProviderChoice::Addon) {
                let state = addon::observe(aws, cluster, PROVIDER_ADDON, &k8s_version).await?;
                return Ok::<_, StepError>(DriverObserved::Addon(state));
            }
            let rendered = csi_driver::render(&platform.driver)?;
            Ok(DriverObserved::Objects(
                objects::observe(kube, rendered).await?,
            ))
        };
        observed.await.map_err(at("csi-driver"))
    };
    // The image is checked first, so that the objects observed and planned deploy the digest
    // it resolved (not the tag); the agent and driver are observed meanwhile.
    let provider = async {
        let observed = async {
            let Some(r) = &rendered_provider else {
                return Ok::<_, StepError>((false, Vec::new(), None, None));
            };
            let checked =
                provider_image::check(r.image.as_deref(), t, platform.image_check, dry_run).await?;
            let mut r = r.clone();
            if let Some(pinned) = &checked.pinned {
                r.pin_image(pinned);
            }
            let other = match kube {
                Some(kube) => {
                    let api: kube::Api<k8s_openapi::api::apps::v1::DaemonSet> =
                        kube::Api::namespaced(kube.clone(), &r.namespace);
                    api.get_opt(r.other)
                        .await
                        .map_err(crate::kube::KubeError::api(
                            "read",
                            format!("DaemonSet/{}/{}", r.namespace, r.other),
                        ))?
                        .is_some()
                }
                None => false,
            };
            let objects = objects::observe(kube, r.objects.clone()).await?;
            Ok((other, objects, Some(checked.change), Some(r)))
        };
        observed.await.map_err(at("provider"))
    };
    let (agent, driver, (other_provider, provider_objects, image_checked, pinned_provider)) =
        tokio::try_join!(agent, driver, provider)?;
    if pinned_provider.is_some() {
        rendered_provider = pinned_provider;
    }
    let agent = match agent {
        Some(state) => plan_agent(cluster, false, &state),
        None => plan_agent(
            cluster,
            true,
            &addon::AddonState::Absent {
                default_version: String::new(),
            },
        ),
    }
    .map_err(at("agent-addon"))?;
    Ok(PlatformPlan {
        agent,
        driver: plan_driver(cluster, &platform.driver, &driver).map_err(at("csi-driver"))?,
        provider: plan_provider(
            rendered_provider.as_ref(),
            other_provider,
            &provider_objects,
        )
        .map(|mut outcome| {
            outcome.changes.splice(0..0, image_checked);
            outcome
        })
        .map_err(at("provider"))?,
    })
}

/// The audiences a CSIDriver object requests tokens for.
pub fn audiences(csidriver: &Value) -> Vec<String> {
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
    use crate::kube::apply::ObjectState;

    #[test]
    fn reads_token_audiences() {
        let d = serde_json::json!({"spec": {"tokenRequests": [{"audience": "sts.amazonaws.com"}]}});
        assert_eq!(audiences(&d), ["sts.amazonaws.com"]);
        assert!(audiences(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn a_foreign_driver_is_adopted_whole_with_a_warning_for_a_missing_audience() {
        let values = CsiDriverValues::default();
        let rendered = csi_driver::render(&values).expect("renders");
        let observed: Vec<objects::Observed> = rendered
            .into_iter()
            .map(|object| {
                let foreign = object["kind"] == "CSIDriver";
                objects::Observed {
                    live: foreign.then(|| serde_json::json!({"spec": {"tokenRequests": [{"audience": "sts.amazonaws.com"}]}})),
                    state: if foreign {
                        ObjectState::Differs { ours: false }
                    } else {
                        ObjectState::Absent
                    },
                    object,
                }
            })
            .collect();
        let outcome =
            plan_driver("demo", &values, &DriverObserved::Objects(observed)).expect("plans");
        assert!(
            outcome.all_ops().iter().all(|op| !op.writes()),
            "nothing of a foreign driver is written"
        );
        assert!(outcome.notes[0].contains("pods.eks.amazonaws.com"));
    }

    #[test]
    fn a_second_provider_is_refused_before_anything_is_written() {
        let platform = Platform {
            driver: CsiDriverValues::default(),
            provider: ProviderChoice::Rust(ProviderValues::default()),
            image_check: ImageCheck::Check,
        };
        let r = platform.render_provider().expect("renders").expect("rust");
        let err = plan_provider(Some(&r), true, &[]).expect_err("refused");
        assert!(
            err.hint()
                .is_some_and(|h| h.contains("--provider upstream"))
        );
    }

    #[test]
    fn the_daemonset_deploys_the_checked_digest() {
        let image = "registry.example/team/aws-csi-provider:0.1.0";
        let pinned = "registry.example/team/aws-csi-provider:0.1.0@sha256:abc";
        for provider in [
            ProviderChoice::Rust(ProviderValues {
                image: Some(image.into()),
                ..Default::default()
            }),
            ProviderChoice::Upstream(UpstreamProviderValues {
                image: Some(image.into()),
                ..Default::default()
            }),
        ] {
            let platform = Platform {
                driver: CsiDriverValues::default(),
                provider,
                image_check: ImageCheck::Check,
            };
            let mut r = platform
                .render_provider()
                .expect("renders")
                .expect("a provider");
            r.pin_image(pinned);
            let images: Vec<&str> = r
                .objects
                .iter()
                .filter(|o| o["kind"] == "DaemonSet")
                .flat_map(|o| {
                    o["spec"]["template"]["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                })
                .filter_map(|c| c["image"].as_str())
                .collect();
            assert_eq!(images, [pinned], "{}", r.name);
            assert_eq!(r.image.as_deref(), Some(pinned));
        }
    }
}
