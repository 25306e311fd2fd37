//! `bootstrap migrate`: IRSA → Pod Identity, SecretProviderClasses included. Plans by
//! default; with `--approve` applies each workload's plan, proves it still mounts (a sample
//! pod with the same service account and SecretProviderClass), rolls a failing one back to
//! its IRSA state, and with `--remove-irsa` then removes the annotation and this cluster's
//! OIDC trust for the migrated service accounts (once no other annotated service account of
//! the cluster uses the role; other clusters' and CI providers' statements are kept).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::aws::ErrorKind;
use crate::commands::probe;
use crate::config::MigrateSettings;
use crate::error::StepError;
use crate::plan::{Change, Executor, Interpreter, Op, Step, StepOutcome};
use crate::resources::association;
use crate::resources::irsa::{self, Candidate, ClusterRef, FoundSpc, IrsaRemoval, Scan, Untied};
use crate::resources::sample::{self, Sample};
use crate::target::Target;

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
    /// Every resource the run changed (or, without --approve, would), as every command counts.
    pub changes: crate::plan::Changes,
    pub workloads: Vec<WorkloadResult>,
    /// Annotated service accounts with `aws` SecretProviderClasses on IRSA that no found
    /// workload ties together: not migrated, with the reason.
    pub untied: Vec<Untied>,
    pub seconds: f64,
}

impl MigrateReport {
    pub fn succeeded(&self) -> bool {
        self.workloads
            .iter()
            .all(|w| !matches!(w.status, "rolled-back" | "failed"))
    }
}

/// The trust policy of an IRSA role (read by the one role reader).
async fn trust_of(
    aws: &crate::aws::Clients,
    cluster: &str,
    role_arn: &str,
) -> Result<Value, StepError> {
    let name = role_arn.rsplit('/').next().unwrap_or_default();
    let live =
        crate::resources::role::read(aws, name, cluster, crate::resources::role::Depth::Role)
            .await?
            .ok_or_else(|| {
                StepError::problem(format!("IAM role {name} (of {role_arn}) does not exist"))
            })?;
    live.trust
        .ok_or_else(|| StepError::problem(format!("IAM role {name} has no readable trust policy")))
}

/// A pod with the workload's service account mounting one of its SPCs, to prove the mount.
fn check_pod(c: &Candidate, spc: &FoundSpc, image: &str) -> Sample {
    let name: String = format!("bootstrap-migrate-check-{}", c.service_account.name)
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": c.service_account.namespace,
            "labels": {"app.kubernetes.io/managed-by": "bootstrap", "app.kubernetes.io/component": "verify"}},
        "spec": {"serviceAccountName": c.service_account.name, "automountServiceAccountToken": false,
            "containers": [{"name": "check", "image": image,
                "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}]}],
            "volumes": [{"name": "secrets", "csi": {"driver": crate::render::csi_driver::DRIVER_NAME, "readOnly": true,
                "volumeAttributes": {"secretProviderClass": spc.name}}}]}});
    Sample {
        pod,
        namespace: c.service_account.namespace.clone(),
        name,
        spc: spc.name.clone(),
        expected: spc.files.clone(),
        keep: false,
    }
}

/// What `--remove-irsa` needs across the run.
struct Removal<'a> {
    scan: &'a Scan,
    /// This cluster's OIDC provider ARN (`None`: the cluster has no issuer).
    provider: Option<String>,
    /// Service accounts whose annotation this run removed.
    released: BTreeSet<(String, String)>,
}

/// Decides what `--remove-irsa` may take out of the role's trust for `c`: nothing while
/// another annotated service account of the cluster uses the role; else the `:sub` of `c`
/// and of every service account the trust names that provably moved to Pod Identity on this
/// role (released by this run, or associated with the role and no longer annotated).
async fn removal_for(
    aws: &crate::aws::Clients,
    t: &Target,
    r: &Removal<'_>,
    c: &Candidate,
    trust: &Value,
) -> Result<IrsaRemoval, StepError> {
    let me = (
        c.service_account.namespace.clone(),
        c.service_account.name.clone(),
    );
    let mut except = r.released.clone();
    except.insert(me.clone());
    let others = irsa::other_irsa_users(r.scan, &c.role_arn, &except);
    let mut subs = vec![irsa::trust::sub_of(
        &c.service_account.namespace,
        &c.service_account.name,
    )];
    if others.is_empty()
        && let Some(provider) = &r.provider
    {
        for (ns, sa) in irsa::trust::named_subs(trust, provider) {
            let key = (ns.clone(), sa.clone());
            if key == me || (r.scan.annotated.contains_key(&key) && !r.released.contains(&key)) {
                continue;
            }
            let moved = r.released.contains(&key)
                || association::observe(aws, t.name(), &ns, &sa)
                    .await?
                    .is_some_and(|a| a.role_arn == c.role_arn);
            if moved {
                subs.push(irsa::trust::sub_of(&ns, &sa));
            }
        }
    }
    Ok(IrsaRemoval {
        provider: r.provider.clone(),
        others,
        subs,
    })
}

/// The trust policy `changes` leave on `role` (its last planned update), if they change it.
fn trust_written(changes: &[Change], role_arn: &str) -> Option<Value> {
    let name = role_arn.rsplit('/').next().unwrap_or_default();
    changes
        .iter()
        .flat_map(|c| &c.ops)
        .filter_map(|op| match op {
            Op::UpdateAssumeRolePolicy { role, trust } if role == name => Some(trust.clone()),
            _ => None,
        })
        .next_back()
}

/// A workload's plan: its migration's changes in order, then a sample pod per SecretProviderClass
/// it mounts (one after another: they share a name), proving it still mounts.
async fn workload_graph<'a>(
    t: &'a Target,
    c: &Candidate,
    changes: Vec<Change>,
    spcs: &[FoundSpc],
) -> Result<Vec<Step<'a>>, StepError> {
    let mut steps = vec![Step::apply("migrate", &[], StepOutcome::with(changes))];
    let Some(kube) = t.kube() else {
        return Ok(steps);
    };
    let (mut shown, mut probes) = (Vec::new(), Vec::new());
    for name in &c.spcs {
        let Some(spc) = spcs
            .iter()
            .find(|s| s.namespace == c.service_account.namespace && &s.name == name)
        else {
            continue;
        };
        let probe = check_pod(c, spc, crate::commands::up::SAMPLE_IMAGE);
        let leftover = crate::kube::apply::get(kube, &probe.pod).await?.is_some();
        let (change, probe) = probe::sample_probe(
            t,
            sample::plan(&probe, leftover),
            probe,
            c.service_account.clone(),
            Some(Duration::from_secs(180)),
            probe::as_notes(),
        );
        shown.push(change);
        probes.push(probe);
    }
    if !probes.is_empty() {
        steps.push(Step::check(
            "verify",
            &["migrate"],
            StepOutcome::with(shown),
            probes,
        ));
    }
    Ok(steps)
}

/// Applies one workload's migration, checks the mount, rolls back on failure; with
/// `removal`, then removes its IRSA annotation and (see `removal_for`) OIDC trust, planned
/// again on what the run left (a workload before it may have been rolled back).
async fn migrate_one(
    exec: &Executor<'_>,
    t: &Target,
    c: &Candidate,
    m: irsa::Migration,
    spcs: &[FoundSpc],
    removal: Option<&Removal<'_>>,
) -> (&'static str, Vec<Change>, Option<String>, Vec<String>) {
    let mut changes = m.changes.clone();
    let created_association = changes.iter().any(|ch| {
        ch.ops
            .iter()
            .any(|o| matches!(o, Op::CreatePodIdentityAssociation { .. }))
    });
    let applied = async {
        let steps = workload_graph(t, c, m.changes.clone(), spcs).await?;
        let (reports, error) = exec.run_graph(steps, &()).await;
        if let Some((_, e)) = error {
            return Err(e);
        }
        Ok::<_, StepError>(
            reports
                .iter()
                .filter(|r| r.name == "verify")
                .filter_map(|r| r.outcome())
                .flat_map(|o| o.notes.clone())
                .collect::<Vec<String>>(),
        )
    }
    .await;
    match applied {
        Ok(verified) => {
            if let Some(r) = removal
                && let Some(aws) = t.aws()
            {
                let removal = async {
                    let trust = trust_of(aws, t.name(), &c.role_arn).await?;
                    let decided = removal_for(aws, t, r, c, &trust).await?;
                    let more = irsa::plan_remove_irsa(c, &trust, &decided);
                    let step = Step::apply("remove-irsa", &[], StepOutcome::with(more.clone()));
                    if let (_, Some((_, e))) = exec.run_graph(vec![step], &()).await {
                        return Err(e);
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
                && let Some(aws) = t.aws()
                && let Ok(Some(live)) = association::observe(
                    aws,
                    t.name(),
                    &c.service_account.namespace,
                    &c.service_account.name,
                )
                .await
            {
                rollback.push(Op::DeletePodIdentityAssociation {
                    cluster: t.name().to_string(),
                    id: live.id,
                    namespace: c.service_account.namespace.clone(),
                    service_account: c.service_account.name.clone(),
                });
            }
            let undo = Change::new(crate::plan::Action::Update, "rollback").ops(rollback);
            let step = Step::apply("rollback", &[], StepOutcome::with(vec![undo]));
            let (_, undone) = exec.run_graph(vec![step], &()).await;
            let mut text = err.to_string();
            if let Some(hint) = err.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            match undone {
                None => ("rolled-back", changes, Some(text), Vec::new()),
                Some((_, e)) => (
                    "failed",
                    changes,
                    Some(format!("{text}; and the rollback failed: {e}")),
                    Vec::new(),
                ),
            }
        }
    }
}

/// The plan of one workload without `--approve`: its migration, then (with `--remove-irsa`)
/// the removal, decided on the trust the migration leaves and on the workloads planned
/// before it as released; `trusts` carries each role's trust from one workload to the next.
async fn plan_one(
    exec: &Executor<'_>,
    t: &Target,
    c: &Candidate,
    m: irsa::Migration,
    spcs: &[FoundSpc],
    removal: Option<&mut Removal<'_>>,
    trusts: &mut std::collections::BTreeMap<String, Value>,
) -> Result<Vec<Change>, StepError> {
    let migration = m.changes;
    let trust_after =
        trust_written(&migration, &c.role_arn).or_else(|| trusts.get(&c.role_arn).cloned());
    let mut more = Vec::new();
    if let (Some(r), Some(aws), Some(trust)) = (removal, t.aws(), &trust_after) {
        let decided = removal_for(aws, t, r, c, trust).await?;
        more = irsa::plan_remove_irsa(c, trust, &decided);
        r.released.insert((
            c.service_account.namespace.clone(),
            c.service_account.name.clone(),
        ));
    }
    if let Some(trust) = trust_written(&more, &c.role_arn).or(trust_after) {
        trusts.insert(c.role_arn.clone(), trust);
    }
    // Journaled as the approved run would be: the migration, its sample pods, the removal.
    let mut steps = workload_graph(t, c, migration.clone(), spcs).await?;
    if !more.is_empty() {
        let deps: Vec<&'static str> = steps.iter().map(|s| s.name()).collect();
        steps.push(Step::apply(
            "remove-irsa",
            &deps,
            StepOutcome::with(more.clone()),
        ));
    }
    if let (_, Some((_, e))) = exec.run_graph(steps, &()).await {
        return Err(e);
    }
    Ok(migration.into_iter().chain(more).collect())
}

/// Scans, plans and (with `approve`) migrates each workload on a target.
pub async fn run_on(
    s: &MigrateSettings,
    t: &Target,
    interpreter: &dyn Interpreter,
) -> Result<MigrateReport, StepError> {
    let started = Instant::now();
    let Some(crate::target::Live { aws, kube }) = t.live() else {
        return Err(StepError::problem("migrate needs AWS and cluster access"));
    };
    let found = irsa::scan::scan(kube).await?;
    let exec = Executor::new(!s.approve, Some(interpreter), started + s.timeout);
    let cluster = ClusterRef {
        name: t.name(),
        arn: &t.cluster.arn,
        account: &t.account,
    };
    let mut trusts: std::collections::BTreeMap<String, Value> = Default::default();
    let mut removal = if s.remove_irsa {
        let issuer = irsa::oidc_issuer(aws, t.name()).await?;
        Some(Removal {
            scan: &found,
            provider: issuer.map(|i| irsa::trust::provider_arn(&t.cluster.arn, &t.account, &i)),
            released: BTreeSet::new(),
        })
    } else {
        None
    };
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
            // Without --approve, a role's trust as the workloads planned before it leave it.
            let trust = match trusts.get(&c.role_arn) {
                Some(trust) if !s.approve => trust.clone(),
                _ => trust_of(aws, t.name(), &c.role_arn).await?,
            };
            if !s.approve {
                trusts.insert(c.role_arn.clone(), trust.clone());
            }
            let live = association::observe(
                aws,
                t.name(),
                &c.service_account.namespace,
                &c.service_account.name,
            )
            .await?;
            irsa::plan(&c, cluster, &trust, live.as_ref(), &found.spcs).map_err(StepError::problem)
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
        // Already migrated but still annotated: `--remove-irsa` still has work (after a check).
        if !writes && removal.is_none() {
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
            let (status, changes, error) =
                match plan_one(&exec, t, &c, m, &found.spcs, removal.as_mut(), &mut trusts).await {
                    Ok(changes) => ("planned", changes, None),
                    Err(e) => ("skipped", Vec::new(), Some(e.to_string())),
                };
            workloads.push(WorkloadResult {
                candidate: c,
                status,
                changes,
                error,
                verified: Vec::new(),
            });
            continue;
        }
        let (status, changes, error, verified) =
            migrate_one(&exec, t, &c, m, &found.spcs, removal.as_ref()).await;
        if let Some(r) = removal.as_mut()
            && status == "migrated"
        {
            r.released.insert((
                c.service_account.namespace.clone(),
                c.service_account.name.clone(),
            ));
        }
        workloads.push(WorkloadResult {
            candidate: c,
            status,
            changes,
            error,
            verified,
        });
    }
    let changes = crate::plan::Changes::of(
        workloads
            .iter()
            .filter(|w| w.status != "rolled-back")
            .flat_map(|w| &w.changes),
    );
    Ok(MigrateReport {
        cluster: t.name().to_string(),
        approve: s.approve,
        changes,
        workloads,
        untied: irsa::untied(&found, s.namespace.as_deref()),
        seconds: (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    })
}

/// Connects, preflights and runs `migrate`.
pub async fn run(s: &MigrateSettings) -> Result<MigrateReport, StepError> {
    let (t, backends) = super::connect_cluster(&s.target, "migrate").await?;
    run_on(s, &t, &backends).await
}

/// The text report.
pub fn text(report: &MigrateReport) -> String {
    let mut out = String::new();
    if report.workloads.is_empty() && report.untied.is_empty() {
        out.push_str(
            "no IRSA workload with an aws SecretProviderClass found (pods, Deployments, StatefulSets, DaemonSets, Jobs, CronJobs): nothing to migrate\n",
        );
    }
    for w in &report.workloads {
        let c = &w.candidate;
        out.push_str(&format!(
            "{} (role {}; {}; used by {}): {}\n",
            c.service_account,
            c.role_arn,
            c.spcs.join(", "),
            c.found_in.join(", "),
            w.status
        ));
        for ch in &w.changes {
            let verb = if report.approve {
                ch.action.as_str()
            } else {
                ch.action.would()
            };
            crate::ui::write_change(&mut out, verb, ch);
        }
        if !w.verified.is_empty() {
            out.push_str(&format!("  mounted {}\n", w.verified.join(", ")));
        }
        if let Some(e) = &w.error {
            let label = if w.status == "skipped" {
                "cannot migrate"
            } else {
                "error"
            };
            out.push_str(&format!("  {label}: {e}\n"));
        }
    }
    for u in &report.untied {
        let Untied {
            service_account,
            role_arn,
            reason,
            ..
        } = u;
        let spcs = u.spcs.join(", ");
        out.push_str(&format!(
            "{service_account} (role {role_arn}; {spcs}): not tied to a workload\n"
        ));
        out.push_str(&format!("  cannot migrate: {reason}\n"));
    }
    if !report.approve && report.workloads.iter().any(|w| w.status == "planned") {
        out.push_str(
            "\nPlan only: no changes were applied. Run again with --approve to migrate.\n",
        );
    }
    out
}
