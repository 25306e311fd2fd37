//! One workload, planned: its IAM role, its Pod Identity association, its namespace /
//! ServiceAccount / SecretProviderClass, and its sample pod. Observed read-only, then planned;
//! `up` plans one, `onboard` many.

use super::sample::{self, Sample, SamplePlan};
use super::secrets::SecretKind;
use super::{ResolvedSecret, Workload, association, objects, role, role_identity};
use crate::error::StepError;
use crate::plan::StepOutcome;
use crate::render::workload::{self as render, SpcObject, SyncedKey, SyncedSecret, WorkloadValues};
use crate::target::Target;
use bootstrap_common::names::LABEL_CLUSTER;

/// A planning failure and the step it belongs to (nothing was written).
pub type PlanError = (&'static str, StepError);

/// Maps an error to the step it happened in.
pub fn at<E: Into<StepError>>(step: &'static str) -> impl Fn(E) -> PlanError {
    move |e| (step, e.into())
}

/// The SecretProviderClass objects of a workload: one per secret, aliases made unique (a
/// prefix has no alias unless asked: its files go to the mount's root).
pub fn spc_objects(secrets: &[ResolvedSecret]) -> Vec<SpcObject> {
    let mut seen = std::collections::BTreeSet::new();
    secrets
        .iter()
        .map(|s| {
            let x = &s.extras;
            let alias = if x.prefix {
                s.file.alias.clone()
            } else {
                let mut alias = s
                    .file
                    .alias
                    .clone()
                    .unwrap_or_else(|| render::alias_for(&s.object_name));
                let base = alias.clone();
                let mut n = 2;
                while !seen.insert(alias.clone()) {
                    alias = format!("{base}-{n}");
                    n += 1;
                }
                Some(alias)
            };
            SpcObject {
                object_name: s.object_name.clone(),
                object_type: match s.kind {
                    SecretKind::SecretsManager => "secretsmanager".into(),
                    SecretKind::SsmParameter => "ssmparameter".into(),
                },
                object_alias: alias,
                file_permission: s.file.file_permission.clone(),
                jmes_path: s.file.jmes_path.clone(),
                match_prefix: render::flag(x.prefix),
                recursive: (x.prefix && x.direct_children_only).then(|| "false".into()),
                all_keys: render::flag(x.all_keys),
                optional: render::flag(x.optional),
            }
        })
        .collect()
}

/// `secretObjects`: for each secret with `sync`, one key named by its file, or (allKeys) one
/// per JSON key read; Secrets in the order first named. Keys are unique per Secret (the
/// render refuses a duplicate).
pub fn synced_secrets(secrets: &[ResolvedSecret], objects: &[SpcObject]) -> Vec<SyncedSecret> {
    let mut synced: Vec<SyncedSecret> = Vec::new();
    for (s, o) in secrets.iter().zip(objects) {
        let Some(name) = &s.extras.sync else { continue };
        let files: Vec<String> = if s.extras.all_keys {
            s.extras.keys.clone()
        } else {
            o.object_alias.iter().cloned().collect()
        };
        let index = match synced.iter().position(|x| &x.secret_name == name) {
            Some(i) => i,
            None => {
                synced.push(SyncedSecret {
                    secret_name: name.clone(),
                    kind: "Opaque".into(),
                    data: Vec::new(),
                });
                synced.len() - 1
            }
        };
        synced[index]
            .data
            .extend(files.into_iter().map(|f| SyncedKey {
                object_name: f.clone(),
                key: f,
            }));
    }
    synced
}

/// The render values of a workload in a region.
pub fn values(w: &Workload, region: &str) -> WorkloadValues {
    let objects = spc_objects(&w.secrets);
    WorkloadValues {
        service_account: w.service_account.clone(),
        region: region.to_string(),
        secret_objects: synced_secrets(&w.secrets, &objects),
        objects,
        failover_region: w.failover_region.clone(),
        sample_image: w.sample_image.clone(),
        labels: w.labels.clone(),
    }
}

/// A workload's planned changes, by step.
pub struct WorkloadPlan {
    /// The workload's role: the one named for it, or an earlier release's its association names.
    pub role_name: String,
    /// Its ARN: IAM's when it exists, else made from its path (a confined role's is not `/`).
    pub role_arn: String,
    pub role: StepOutcome,
    pub association: StepOutcome,
    pub objects: StepOutcome,
    pub sample: SamplePlan,
    pub sample_spec: Sample,
}

/// Observes (read-only) and plans a workload on a target.
pub async fn plan(w: &Workload, t: &Target, keep_sample: bool) -> Result<WorkloadPlan, PlanError> {
    let aws = t.aws();
    let kube = t.kube();
    let cluster = t.name();
    let mut values = values(w, &t.region);
    values
        .labels
        .insert(LABEL_CLUSTER.to_string(), cluster.to_string());
    let mut spec = role::RoleSpec::for_workload(&t.account, &t.region, cluster, &t.cluster.arn, w);
    if let Some(problem) = crate::aws::policy::inline_size_problem(&spec.inline) {
        return Err((
            "iam-role",
            StepError::problem(format!("role {}: {problem}", spec.name)).with_hint(
                "split the secrets over two service accounts, or read many with a prefix",
            ),
        ));
    }
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
            Some(aws) => association::observe(
                aws,
                cluster,
                &w.service_account.namespace,
                &w.service_account.name,
            )
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
        namespace: w.service_account.namespace.clone(),
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
    // The role the association names, when bootstrap may have made it under another name (an
    // earlier release's): it is the workload's role if its tags or trust say so.
    let associated = match (aws, &live_association) {
        (Some(aws), Some(a)) => match associated_role_name(&a.role_arn, &t.account) {
            Some(name) if name != spec.name => role::observe(aws, name, cluster, false)
                .await
                .map_err(at("iam-role"))?,
            _ => None,
        },
        _ => None,
    };
    let chosen = role_identity::choose(
        cluster,
        &w.service_account.namespace,
        &w.service_account.name,
        w.force,
        live_role,
        live_association.as_ref(),
        associated,
    )
    .map_err(at("iam-role"))?;
    spec.name = chosen.name;
    if let (Some(c), Some(live)) = (&spec.confinement, chosen.live.as_ref())
        && live.owned
        && live.path != c.path
    {
        // IAM cannot move a role to another path; the controller's policy only reaches its own.
        return Err(at("iam-role")(StepError::problem(format!(
            "IAM role {} exists under path {} (made by `bootstrap onboard`?), not under the controller's {}: the controller cannot manage it; remove the team from teams.yaml and `bootstrap down --team` it (or delete the role), then the controller makes its own",
            live.name, live.path, c.path
        ))));
    }
    let role_arn = match &chosen.live {
        Some(live) if !live.arn.is_empty() => live.arn.clone(),
        _ => role::role_arn_in(&t.account, spec.confinement.as_ref(), &spec.name),
    };
    let association = association::plan(
        cluster,
        &w.service_account.namespace,
        &w.service_account.name,
        &role_arn,
        w.target_role_arn.as_deref(),
        w.force,
        live_association.as_ref(),
    )
    .map_err(at("association"))?;
    Ok(WorkloadPlan {
        role_name: spec.name.clone(),
        role_arn: role_arn.clone(),
        role: StepOutcome::with(vec![role::plan(&spec, chosen.live.as_ref())]),
        association: StepOutcome::with(vec![association]),
        objects: StepOutcome::with(objects::plan(&workload_objects)),
        sample: sample::plan(&sample_spec, leftover),
        sample_spec,
    })
}

/// The name of a role in `account` from its ARN (`None` for another account's role).
pub fn associated_role_name<'a>(arn: &'a str, account: &str) -> Option<&'a str> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, service, _, acct, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (service == "iam" && acct == account && resource.starts_with("role/"))
        .then(|| resource.rsplit('/').next())
        .flatten()
        .filter(|n| !n.is_empty())
}

/// The files the mount status lists: one per object, by its alias (jmesPath and allKeys files
/// ride on it); none for a prefix (its files vary) or an optional object (it may be missing).
fn expected_files(o: &SpcObject) -> Option<String> {
    if o.match_prefix.is_some() || o.optional.is_some() {
        return None;
    }
    o.object_alias.clone()
}
