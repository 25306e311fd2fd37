//! `bootstrap migrate`: IRSA → Pod Identity, SecretProviderClasses included. Plans by
//! default; with `--approve` applies each workload's plan, proves it still mounts (a sample
//! pod with the same service account and SecretProviderClass), rolls a failing one back to
//! its IRSA state, and with `--remove-irsa` then removes the annotation and the OIDC trust.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde::Serialize;
use serde_json::{Value, json};

use crate::aws::{ErrorKind, classify, policy};
use crate::config::MigrateSettings;
use crate::diagnose::Subject;
use crate::error::StepError;
use crate::kube::KubeError;
use crate::plan::{Change, Executor, Interpreter, Op};
use crate::resources::association;
use crate::resources::irsa::{self, Candidate, FoundPod, FoundSpc, Scan};
use crate::resources::sample::{self, Sample};
use crate::target::{self, Target};
use bootstrap_common::names::IRSA_ROLE_ANNOTATION;

/// One workload's outcome.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadResult {
    #[serde(flatten)]
    pub candidate: Candidate,
    /// `planned`, `migrated`, `already-migrated`, `rolled-back`, `failed` or `skipped`.
    pub status: &'static str,
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verified: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateReport {
    pub cluster: String,
    pub approve: bool,
    pub workloads: Vec<WorkloadResult>,
    pub seconds: f64,
}

impl MigrateReport {
    pub fn succeeded(&self) -> bool {
        self.workloads
            .iter()
            .all(|w| !matches!(w.status, "rolled-back" | "failed"))
    }
}

fn spc_api(kube: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass");
    Api::all_with(
        kube.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasses"),
    )
}

/// The files a SecretProviderClass's objects mount, where they can be named (aliases).
fn spc_files(objects: &str) -> Vec<String> {
    let parsed: Vec<Value> = serde_saphyr::from_str(objects).unwrap_or_default();
    parsed
        .iter()
        .filter_map(|o| o["objectAlias"].as_str().map(str::to_string))
        .collect()
}

/// Reads what migration needs: annotated service accounts, `aws` SPCs, the pods that mount
/// SecretProviderClasses and their nodes. Read-only.
pub async fn scan(kube: &kube::Client) -> Result<Scan, StepError> {
    let api_err = |what: &'static str| {
        move |source| KubeError::Api {
            action: "list",
            resource: what.to_string(),
            source,
        }
    };
    let lp = ListParams::default();
    let sas: Api<ServiceAccount> = Api::all(kube.clone());
    let mut out = Scan::default();
    for sa in sas
        .list(&lp)
        .await
        .map_err(api_err("service accounts"))?
        .items
    {
        if let Some(role) = sa
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IRSA_ROLE_ANNOTATION))
        {
            out.annotated.insert(
                (
                    sa.metadata.namespace.clone().unwrap_or_default(),
                    sa.metadata.name.clone().unwrap_or_default(),
                ),
                role.clone(),
            );
        }
    }
    let spcs = match spc_api(kube).list(&lp).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
        Err(e) => return Err(api_err("SecretProviderClasses")(e).into()),
    };
    for spc in spcs {
        if spc.data["spec"]["provider"] != "aws" {
            continue;
        }
        let params = &spc.data["spec"]["parameters"];
        out.spcs.push(FoundSpc {
            namespace: spc.metadata.namespace.clone().unwrap_or_default(),
            name: spc.metadata.name.clone().unwrap_or_default(),
            use_pod_identity: params["usePodIdentity"].as_str().map(str::to_string),
            files: spc_files(params["objects"].as_str().unwrap_or("")),
        });
    }
    let nodes: Api<Node> = Api::all(kube.clone());
    let node_list = nodes.list(&lp).await.map_err(api_err("nodes"))?.items;
    let node_problem = |name: &str| -> Option<String> {
        let node = node_list
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))?;
        let labels = node.metadata.labels.as_ref()?;
        if labels
            .get("eks.amazonaws.com/compute-type")
            .map(String::as_str)
            == Some("fargate")
        {
            return Some(format!("Fargate node {name}"));
        }
        if labels.get("kubernetes.io/os").map(String::as_str) == Some("windows") {
            return Some(format!("Windows node {name}"));
        }
        None
    };
    let pods: Api<Pod> = Api::all(kube.clone());
    for pod in pods.list(&lp).await.map_err(api_err("pods"))?.items {
        let Some(spec) = &pod.spec else { continue };
        let spcs: Vec<String> = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.csi.as_ref())
            .filter(|c| c.driver == crate::render::csi_driver::DRIVER_NAME)
            .filter_map(|c| {
                c.volume_attributes
                    .as_ref()
                    .and_then(|a| a.get("secretProviderClass"))
                    .cloned()
            })
            .collect();
        if spcs.is_empty() {
            continue;
        }
        out.pods.push(FoundPod {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            service_account: spec
                .service_account_name
                .clone()
                .unwrap_or_else(|| "default".into()),
            spcs,
            node_problem: spec.node_name.as_deref().and_then(node_problem),
        });
    }
    Ok(out)
}

async fn trust_of(aws: &crate::aws::Clients, role_arn: &str) -> Result<Value, StepError> {
    let name = role_arn.rsplit('/').next().unwrap_or_default();
    let out = aws
        .iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(|e| classify("read", format!("IAM role {name}"), e))?;
    out.role()
        .and_then(|r| r.assume_role_policy_document())
        .and_then(policy::decode_document)
        .ok_or_else(|| StepError::problem(format!("IAM role {name} has no readable trust policy")))
}

/// A pod with the workload's service account mounting one of its SPCs, to prove the mount.
fn check_pod(c: &Candidate, spc: &FoundSpc, image: &str) -> Sample {
    let name: String = format!("bootstrap-migrate-check-{}", c.service_account)
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": c.namespace,
            "labels": {"app.kubernetes.io/managed-by": "bootstrap", "app.kubernetes.io/component": "verify"}},
        "spec": {"serviceAccountName": c.service_account,
            "containers": [{"name": "check", "image": image,
                "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}]}],
            "volumes": [{"name": "secrets", "csi": {"driver": crate::render::csi_driver::DRIVER_NAME, "readOnly": true,
                "volumeAttributes": {"secretProviderClass": spc.name}}}]}});
    Sample {
        pod,
        namespace: c.namespace.clone(),
        name,
        spc: spc.name.clone(),
        expected: spc.files.clone(),
        keep: false,
    }
}

/// Applies one workload's migration, checks the mount, rolls back on failure.
async fn migrate_one(
    exec: &Executor<'_>,
    t: &Target,
    c: &Candidate,
    m: irsa::Migration,
    spcs: &[FoundSpc],
    remove_irsa: bool,
) -> (&'static str, Vec<Change>, Option<String>, Vec<String>) {
    let mut changes = m.changes.clone();
    let created_association = changes.iter().any(|ch| {
        ch.ops
            .iter()
            .any(|o| matches!(o, Op::CreatePodIdentityAssociation { .. }))
    });
    let applied = async {
        for change in &m.changes {
            exec.run(&change.ops).await?;
        }
        let (Some(kube), Some(aws)) = (t.kube.as_ref(), t.aws.as_ref()) else {
            return Ok(Vec::new());
        };
        let mut verified = Vec::new();
        for name in &c.spcs {
            let Some(spc) = spcs
                .iter()
                .find(|s| s.namespace == c.namespace && &s.name == name)
            else {
                continue;
            };
            let probe = check_pod(c, spc, crate::commands::up::SAMPLE_IMAGE);
            let leftover = crate::kube::apply::get(kube, &probe.pod).await?.is_some();
            let plan = sample::plan(&probe, leftover);
            exec.run(&plan.setup).await?;
            let subject = Subject {
                cluster: t.name(),
                namespace: &c.namespace,
                service_account: &c.service_account,
                spc: &spc.name,
            };
            let checked = sample::check(
                Some(aws),
                kube,
                &probe,
                subject,
                exec.remaining().min(Duration::from_secs(180)),
            )
            .await;
            exec.run(&plan.teardown).await?;
            verified.extend(checked?);
        }
        Ok::<_, StepError>(verified)
    }
    .await;
    match applied {
        Ok(verified) => {
            if remove_irsa && let Some(aws) = t.aws.as_ref() {
                let removal = async {
                    let trust = trust_of(aws, &c.role_arn).await?;
                    let more = irsa::plan_remove_irsa(c, &trust);
                    for change in &more {
                        exec.run(&change.ops).await?;
                    }
                    Ok::<_, StepError>(more)
                }
                .await;
                match removal {
                    Ok(more) => changes.extend(more),
                    Err(e) => {
                        return (
                            "failed",
                            changes,
                            Some(format!(
                                "migrated and verified, but removing IRSA failed: {e}"
                            )),
                            verified,
                        );
                    }
                }
            }
            ("migrated", changes, None, verified)
        }
        Err(err) => {
            // Back to the IRSA state: trust and SPCs as they were, our association gone.
            let mut rollback = m.rollback.clone();
            if created_association
                && let Some(aws) = t.aws.as_ref()
                && let Ok(Some(live)) =
                    association::observe(aws, t.name(), &c.namespace, &c.service_account).await
            {
                rollback.push(Op::DeletePodIdentityAssociation {
                    cluster: t.name().to_string(),
                    id: live.id,
                    namespace: c.namespace.clone(),
                    service_account: c.service_account.clone(),
                });
            }
            let undone = exec.run(&rollback).await;
            let mut text = err.to_string();
            if let Some(hint) = err.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            match undone {
                Ok(()) => ("rolled-back", changes, Some(text), Vec::new()),
                Err(e) => (
                    "failed",
                    changes,
                    Some(format!("{text}; and the rollback failed: {e}")),
                    Vec::new(),
                ),
            }
        }
    }
}

/// Scans, plans and (with `approve`) migrates each workload on a target.
pub async fn run_on(
    s: &MigrateSettings,
    t: &Target,
    interpreter: &dyn Interpreter,
) -> Result<MigrateReport, StepError> {
    let started = Instant::now();
    let (Some(aws), Some(kube)) = (t.aws.as_ref(), t.kube.as_ref()) else {
        return Err(StepError::problem("migrate needs AWS and cluster access"));
    };
    let found = scan(kube).await?;
    let exec = Executor::new(!s.approve, Some(interpreter), started + s.timeout);
    let mut workloads = Vec::new();
    for c in irsa::candidates(&found, &t.account, s.namespace.as_deref()) {
        if c.cannot.is_some() {
            workloads.push(WorkloadResult {
                error: c.cannot.clone(),
                candidate: c,
                status: "skipped",
                changes: Vec::new(),
                verified: Vec::new(),
            });
            continue;
        }
        let planned = async {
            let trust = trust_of(aws, &c.role_arn).await?;
            let live =
                association::observe(aws, t.name(), &c.namespace, &c.service_account).await?;
            irsa::plan(&c, t.name(), &t.account, &trust, live.as_ref(), &found.spcs)
                .map_err(StepError::problem)
        }
        .await;
        let m = match planned {
            Ok(m) => m,
            Err(e) => {
                let kind_denied =
                    matches!(&e, StepError::Aws(a) if a.kind == ErrorKind::AccessDenied);
                workloads.push(WorkloadResult {
                    error: Some(if kind_denied {
                        format!("{e} (the caller needs iam:GetRole)")
                    } else {
                        e.to_string()
                    }),
                    candidate: c,
                    status: "skipped",
                    changes: Vec::new(),
                    verified: Vec::new(),
                });
                continue;
            }
        };
        let writes = m.changes.iter().any(|ch| !ch.ops.is_empty());
        if !writes {
            workloads.push(WorkloadResult {
                candidate: c,
                status: "already-migrated",
                changes: m.changes,
                error: None,
                verified: Vec::new(),
            });
            continue;
        }
        if !s.approve {
            workloads.push(WorkloadResult {
                candidate: c,
                status: "planned",
                changes: m.changes,
                error: None,
                verified: Vec::new(),
            });
            continue;
        }
        let (status, changes, error, verified) =
            migrate_one(&exec, t, &c, m, &found.spcs, s.remove_irsa).await;
        workloads.push(WorkloadResult {
            candidate: c,
            status,
            changes,
            error,
            verified,
        });
    }
    Ok(MigrateReport {
        cluster: t.name().to_string(),
        approve: s.approve,
        workloads,
        seconds: (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    })
}

/// Connects, preflights and runs `migrate`.
pub async fn run(s: &MigrateSettings) -> Result<MigrateReport, StepError> {
    let (aws, _) = target::connect(s.region.as_deref(), s.profile.as_deref(), false).await?;
    let aws = aws.ok_or_else(|| StepError::problem("migrate needs AWS access"))?;
    let (t, _) = target::preflight(aws, &s.cluster).await?;
    let backends = crate::interp::Backends {
        aws: t
            .aws
            .clone()
            .ok_or_else(|| StepError::problem("no AWS access"))?,
        kube: t.kube.clone(),
        cluster: t.name().to_string(),
    };
    run_on(s, &t, &backends).await
}

/// The text report.
pub fn text(report: &MigrateReport) -> String {
    let mut out = String::new();
    if report.workloads.is_empty() {
        out.push_str(
            "no IRSA workload with an aws SecretProviderClass found: nothing to migrate\n",
        );
    }
    for w in &report.workloads {
        let c = &w.candidate;
        out.push_str(&format!(
            "{}/{} (role {}; {}): {}\n",
            c.namespace,
            c.service_account,
            c.role_arn,
            c.spcs.join(", "),
            w.status
        ));
        for ch in &w.changes {
            out.push_str(&format!(
                "  {:<13} {}\n",
                if report.approve {
                    ch.action.as_str()
                } else {
                    ch.action.would()
                },
                ch.resource
            ));
            for call in &ch.calls {
                out.push_str(&format!("      → {call}\n"));
            }
        }
        if !w.verified.is_empty() {
            out.push_str(&format!("  mounted {}\n", w.verified.join(", ")));
        }
        if let Some(e) = &w.error {
            out.push_str(&format!(
                "  {}: {e}\n",
                if w.status == "skipped" {
                    "cannot migrate"
                } else {
                    "error"
                }
            ));
        }
    }
    if !report.approve && report.workloads.iter().any(|w| w.status == "planned") {
        out.push_str(
            "\nPlan only: no changes were applied. Run again with --approve to migrate.\n",
        );
    }
    out
}
