//! One workload, planned: its IAM role, its Pod Identity association, its namespace /
//! ServiceAccount / SecretProviderClass, and its sample pod. Observed read-only, then planned;
//! `up` plans one, `onboard` many.

use super::sample::{self, Sample, SamplePlan};
use super::{ResolvedSecret, Workload, association, objects, role};
use crate::config::SecretKind;
use crate::error::StepError;
use crate::plan::StepOutcome;
use crate::render::workload::{self as render, SpcObject, WorkloadValues};
use crate::target::Target;

/// A planning failure and the step it belongs to (nothing was written).
pub type PlanError = (&'static str, StepError);

/// Maps an error to the step it happened in.
pub fn at<E: Into<StepError>>(step: &'static str) -> impl Fn(E) -> PlanError {
    move |e| (step, e.into())
}

/// The SecretProviderClass objects of a workload: one per secret, aliases made unique.
pub fn spc_objects(secrets: &[ResolvedSecret]) -> Vec<SpcObject> {
    let mut seen = std::collections::BTreeSet::new();
    secrets
        .iter()
        .map(|s| {
            let mut alias = s
                .alias
                .clone()
                .unwrap_or_else(|| render::alias_for(&s.object_name));
            let base = alias.clone();
            let mut n = 2;
            while !seen.insert(alias.clone()) {
                alias = format!("{base}-{n}");
                n += 1;
            }
            SpcObject {
                object_name: s.object_name.clone(),
                object_type: match s.kind {
                    SecretKind::SecretsManager => "secretsmanager".into(),
                    SecretKind::SsmParameter => "ssmparameter".into(),
                },
                object_alias: alias,
                file_permission: s.file_permission.clone(),
                jmes_path: s.jmes_path.clone(),
            }
        })
        .collect()
}

/// The render values of a workload in a region.
pub fn values(w: &Workload, region: &str) -> WorkloadValues {
    WorkloadValues {
        namespace: w.namespace.clone(),
        service_account: w.service_account.clone(),
        region: region.to_string(),
        objects: spc_objects(&w.secrets),
        sample_image: w.sample_image.clone(),
        labels: w.labels.clone(),
    }
}

/// A workload's planned changes, by step.
pub struct WorkloadPlan {
    pub role: StepOutcome,
    pub association: StepOutcome,
    pub objects: StepOutcome,
    pub sample: SamplePlan,
    pub sample_spec: Sample,
}

/// Observes (read-only) and plans a workload on a target.
pub async fn plan(w: &Workload, t: &Target, keep_sample: bool) -> Result<WorkloadPlan, PlanError> {
    let aws = t.aws.as_ref();
    let kube = t.kube.as_ref();
    let cluster = t.name();
    let values = values(w, &t.region);
    let spec = role::RoleSpec::for_workload(&t.account, &t.region, cluster, &t.cluster.arn, w);
    let role_arn = role::role_arn(&t.account, &spec.name);
    let live_role = async {
        match aws {
            Some(aws) => role::observe(aws, &spec.name, cluster, false)
                .await
                .map_err(at("iam-role")),
            None => Ok(None),
        }
    };
    let live_association = async {
        match aws {
            Some(aws) => association::observe(aws, cluster, &w.namespace, &w.service_account)
                .await
                .map_err(at("association")),
            None => Ok(None),
        }
    };
    let workload_objects = async {
        let mut rendered = render::render(&values).map_err(at("workload"))?;
        if w.existing_service_account {
            // Someone else owns it (Helm, the team): never created, labelled or deleted.
            rendered.retain(|o| o["kind"] != "ServiceAccount");
        }
        objects::observe(kube, rendered)
            .await
            .map_err(at("workload"))
    };
    let mut pod = render::render_sample_pod(&values).map_err(at("verify"))?;
    let pod_name = values.sample_pod_name();
    pod["metadata"]["name"] = serde_json::Value::String(pod_name.clone());
    let sample_spec = Sample {
        pod,
        namespace: w.namespace.clone(),
        name: pod_name,
        spc: values.spc_name(),
        expected: values.objects.iter().flat_map(expected_files).collect(),
        keep: keep_sample,
    };
    let leftover = async {
        match kube {
            Some(kube) => crate::kube::apply::get(kube, &sample_spec.pod)
                .await
                .map(|p| p.is_some())
                .map_err(at("verify")),
            None => Ok(false),
        }
    };
    let (live_role, live_association, workload_objects, leftover) =
        tokio::try_join!(live_role, live_association, workload_objects, leftover)?;
    let association = association::plan(
        cluster,
        &w.namespace,
        &w.service_account,
        &role_arn,
        w.target_role_arn.as_deref(),
        w.force,
        live_association.as_ref(),
    )
    .map_err(at("association"))?;
    Ok(WorkloadPlan {
        role: StepOutcome::with(vec![role::plan(&spec, live_role.as_ref())]),
        association: StepOutcome::with(vec![association]),
        objects: StepOutcome::with(objects::plan(&workload_objects)),
        sample: sample::plan(&sample_spec, leftover),
        sample_spec,
    })
}

/// The files the mount status lists: one per object, by its alias (jmesPath files ride on it).
fn expected_files(o: &SpcObject) -> Option<String> {
    Some(o.object_alias.clone())
}
