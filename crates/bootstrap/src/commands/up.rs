//! `bootstrap up`: the platform and one workload. Preflight makes the target; every resource
//! is observed and planned before anything is written (a conflict or a missing secret stops
//! the run with nothing half-made); then the planned operations run as a dependency graph
//! (the add-on wait overlaps IAM and manifests) and a sample pod proves the mount.

use std::time::{Duration, Instant};

use crate::commands::controller::install;
use crate::commands::probe;
use crate::config::{ProviderKind, UpSettings};
use crate::error::StepError;
use crate::plan::{
    Action, Change, Executor, Interpreter, Progress, Report, Step, StepOutcome, StepReport,
    StepStatus,
};
use crate::resources::platform::{self, Platform, PlatformPlan, ProviderChoice};
use crate::resources::sample::{Sample, SamplePlan};
use crate::resources::workload::{self, PlanError, WorkloadPlan, at};
use crate::resources::{Workload, secrets};
use crate::service_account::ServiceAccountRef;
use crate::target::{self, Target};

/// The step names, in report order.
pub const STEPS: [&str; 9] = [
    "preflight",
    "secrets",
    "agent-addon",
    "csi-driver",
    "provider",
    "iam-role",
    "association",
    "workload",
    "verify",
];

/// The steps `--controller` adds, before `verify`.
pub const CONTROLLER_STEPS: [&str; 3] = ["controller-iam", "controller-association", "controller"];

/// The step names of a run with these settings, in report order.
pub fn steps_of(s: &UpSettings) -> Vec<&'static str> {
    let (before, verify) = STEPS.split_at(STEPS.len() - 1);
    let mut names = before.to_vec();
    if s.controller.is_some() {
        names.extend(CONTROLLER_STEPS);
    }
    names.extend(verify);
    names
}

/// The image of the verification pod (it only has to start; it never reads the files).
pub const SAMPLE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// The platform the settings ask for.
pub fn platform(s: &UpSettings) -> Platform {
    let provider = match s.provider {
        ProviderKind::Addon => ProviderChoice::Addon,
        ProviderKind::Rust => {
            let mut values = s.provider_values.clone();
            if let Some(image) = &s.provider_image {
                values.image = Some(image.clone());
            }
            ProviderChoice::Rust(values)
        }
        ProviderKind::Upstream => {
            let mut values = s.upstream_provider_values.clone();
            if let Some(image) = &s.provider_image {
                values.image = Some(image.clone());
            }
            ProviderChoice::Upstream(values)
        }
    };
    Platform {
        driver: s.csi_driver.clone(),
        provider,
        image_check: s.image_check,
    }
}

/// Every step's planned changes, before anything is written.
pub struct Planned {
    pub secrets: StepOutcome,
    pub platform: PlatformPlan,
    pub workload: WorkloadPlan,
    pub workload_value: Workload,
    /// `--controller`'s install.
    pub controller: Option<install::InstallPlan>,
}

/// Resolves the secrets and observes every resource (read-only), then plans each one.
pub async fn plan_all(s: &UpSettings, t: &Target) -> Result<Planned, PlanError> {
    let aws = t.aws();
    let cluster = t.name();
    // Secrets first: a missing one fails before anything else is even read.
    let mut secret_changes = Vec::new();
    let mut resolved = Vec::new();
    for secret in &s.secrets {
        let found = secrets::resolve(
            aws,
            &t.region,
            &t.account,
            t.region == target::OFFLINE_REGION,
            secret,
        )
        .await
        .map_err(at("secrets"))?;
        secret_changes.push(Change::new(Action::Check, format!("secret {}", found.arn)));
        resolved.push(found);
    }
    if s.create_demo_secret {
        let state = secrets::observe_demo(aws, cluster)
            .await
            .map_err(at("secrets"))?;
        secret_changes.insert(0, secrets::plan_demo(cluster, state));
        resolved.insert(0, secrets::demo_secret(&t.region, &t.account, cluster));
    }
    let workload = Workload {
        service_account: ServiceAccountRef::new(&s.namespace, &s.service_account),
        secrets: resolved,
        force: s.force,
        sample_image: s
            .sample_image
            .clone()
            .unwrap_or_else(|| SAMPLE_IMAGE.into()),
        ..Workload::default()
    };
    let wanted = platform(s);
    let controller = async {
        match &s.controller {
            Some(settings) => install::plan(t, settings).await.map(Some),
            None => Ok(None),
        }
    };
    let (platform, planned, controller) = tokio::try_join!(
        platform::plan_all(&wanted, t, s.dry_run),
        workload::plan(&workload, t, s.keep_sample),
        controller,
    )?;
    Ok(Planned {
        secrets: StepOutcome::with(secret_changes),
        platform,
        workload: planned,
        workload_value: workload,
        controller,
    })
}

/// The verify step: the sample pod's setup, the mount check, then its teardown (always).
fn verify<'a>(t: &'a Target, planned: SamplePlan, spec: Sample, workload: Workload) -> Step<'a> {
    let mark: probe::Mark = Box::new(|spec, versions, outcome| {
        let mut note = format!("mounted {}", versions.join(", "));
        if spec.keep {
            note.push_str("; pod kept (--keep-sample)");
        }
        for change in &mut outcome.changes {
            change.note = Some(note.clone());
        }
    });
    let (change, probe) =
        probe::sample_probe(t, planned, spec, workload.service_account, None, mark);
    Step::check(
        "verify",
        &["agent-addon", "provider", "association", "workload"],
        StepOutcome::with(vec![change]),
        vec![probe],
    )
}

/// The graph of the planned steps. Every write waits for the secrets (checked first).
fn graph(t: &Target, p: Planned) -> Vec<Step<'_>> {
    let Planned {
        secrets,
        platform:
            PlatformPlan {
                agent,
                driver,
                provider,
            },
        workload:
            WorkloadPlan {
                role_name: _,
                role_arn: _,
                role,
                association,
                objects: workload,
                sample,
                sample_spec,
            },
        workload_value,
        controller,
    } = p;
    let mut steps = vec![
        Step::apply("secrets", &[], secrets),
        Step::apply("agent-addon", &["secrets"], agent),
        Step::apply("csi-driver", &["secrets"], driver),
        Step::apply("provider", &["csi-driver"], provider),
        Step::apply("iam-role", &["secrets"], role),
        Step::apply("association", &["iam-role"], association),
        Step::apply("workload", &["csi-driver", "secrets"], workload),
    ];
    if let Some(c) = controller {
        // Its role and association before its pods start (they would start without
        // credentials); the add-on before them too (the agent serves those credentials).
        steps.push(Step::apply("controller-iam", &["secrets"], c.iam));
        steps.push(Step::apply(
            "controller-association",
            &["controller-iam"],
            c.association,
        ));
        steps.push(Step::apply(
            "controller",
            &["agent-addon", "csi-driver", "controller-association"],
            c.objects,
        ));
    }
    steps.push(verify(t, sample, sample_spec, workload_value));
    steps
}

/// The result of `up`: its report, the error that stopped it, and the executed journal.
pub struct UpRun {
    pub report: Report,
    pub error: Option<(&'static str, StepError)>,
    /// The writes executed (or, dry, planned), in the order they ran.
    pub journal: Vec<String>,
}

/// Plans, then runs (or, dry, records) everything against a target.
pub async fn run_on(
    s: &UpSettings,
    t: &Target,
    preflight: StepReport,
    interpreter: Option<&dyn Interpreter>,
    progress: &dyn Progress,
) -> UpRun {
    let start = Instant::now();
    let exec = Executor::new(s.dry_run, interpreter, start + s.timeout);
    let mut steps = vec![preflight];
    let (rest, error) = match plan_all(s, t).await {
        Ok(planned) => exec.run_graph(graph(t, planned), progress).await,
        Err((step, e)) => {
            // Planning failed: that step failed, the others never ran; nothing was written.
            let reports = steps_of(s)[1..]
                .iter()
                .map(|name| {
                    let status = if *name == step {
                        StepStatus::Failed(e.to_string())
                    } else {
                        StepStatus::Skipped
                    };
                    StepReport::new(name, status, Duration::ZERO)
                })
                .collect();
            (reports, Some((step, e)))
        }
    };
    steps.extend(rest);
    let verified = !exec.dry_run()
        && error.is_none()
        && steps
            .iter()
            .any(|st| st.name == "verify" && matches!(st.status, StepStatus::Done(_)));
    let report = Report {
        cluster: t.name().to_string(),
        region: t.region.clone(),
        dry_run: exec.dry_run(),
        offline: t.is_offline(),
        changes: Report::count(&steps),
        steps,
        verified,
        seconds: round(start.elapsed()),
        error: error.as_ref().map(|(step, e)| format!("{step}: {e}")),
    };
    UpRun {
        report,
        error,
        journal: exec.journal(),
    }
}

fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// Connects (or plans offline), preflights, and runs `up`.
pub async fn run(s: &UpSettings, printer: &crate::ui::Printer) -> Result<UpRun, StepError> {
    let (aws, note) = super::connect(&s.target, s.dry_run).await?;
    if let Some(note) = note {
        printer.status(&format!("note: {note}"));
    }
    let progress = printer.progress();
    let started = Instant::now();
    let Some(aws) = aws else {
        let t = Target::offline(&s.target.cluster, s.target.region.as_deref());
        let pre = StepReport::new(
            "preflight",
            StepStatus::Done(target::offline_outcome(&s.target.cluster)),
            Duration::ZERO,
        );
        return Ok(run_on(s, &t, pre, None, &progress).await);
    };
    progress.started("preflight");
    let found = target::preflight(aws, &s.target.cluster).await;
    let (t, outcome) = crate::plan::failed_on_err(&progress, "preflight", started, found)?;
    let status = StepStatus::Done(outcome);
    progress.finished("preflight", &status, started.elapsed());
    let pre = StepReport::new("preflight", status, started.elapsed());
    let backends = crate::interp::Backends::of(&t)?;
    Ok(run_on(s, &t, pre, Some(&backends), &progress).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn settings(extra: &[&str]) -> UpSettings {
        let mut argv = vec!["bootstrap", "up", "--cluster", "demo", "--dry-run"];
        argv.extend_from_slice(extra);
        let Command::Up(args) = Cli::try_parse_from(argv).expect("parses").command else {
            panic!("up")
        };
        crate::config::resolve_up(&args).expect("valid")
    }

    async fn offline(extra: &[&str]) -> UpRun {
        let s = settings(extra);
        let t = Target::offline(&s.target.cluster, None);
        let pre = StepReport::new(
            "preflight",
            StepStatus::Done(target::offline_outcome(&s.target.cluster)),
            Duration::ZERO,
        );
        run_on(&s, &t, pre, None, &()).await
    }

    #[tokio::test]
    async fn offline_dry_run_plans_every_step_for_an_empty_account() {
        let run = offline(&[]).await;
        assert!(
            run.error.is_none(),
            "{:?}",
            run.error.map(|e| e.1.to_string())
        );
        let report = run.report;
        let names: Vec<_> = report.steps.iter().map(|s| s.name).collect();
        assert_eq!(names, STEPS);
        assert!(report.offline && report.dry_run && !report.verified);
        assert!(report.changes.created >= 15, "{:?}", report.changes);
        assert_eq!(report.changes.updated, 0);
        let json = serde_json::to_string(&report).expect("json");
        assert!(json.contains("iam:CreateRole"));
        assert!(json.contains("pods.eks.amazonaws.com"));
        assert!(json.contains("aws:RequestTag/kubernetes-namespace"));
        assert!(json.contains("eks:CreatePodIdentityAssociation"));
        assert!(json.contains("\"usePodIdentity\":\"true\""));
        assert!(
            !json.contains("SecretString\":"),
            "no secret value in the plan"
        );
    }

    #[tokio::test]
    async fn the_provider_addon_brings_the_driver() {
        let run = offline(&["--provider", "addon"]).await;
        assert!(run.error.is_none());
        let json = serde_json::to_string(&run.report).expect("json");
        assert!(json.contains("addonName=aws-secrets-store-csi-driver-provider"));
        assert!(!json.contains("DaemonSet/kube-system/secrets-store-csi-driver"));
    }

    #[tokio::test]
    async fn the_upstream_provider_replaces_ours_in_the_plan() {
        let run = offline(&["--provider", "upstream"]).await;
        assert!(
            run.error.is_none(),
            "{:?}",
            run.error.map(|e| e.1.to_string())
        );
        let json = serde_json::to_string(&run.report).expect("json");
        assert!(json.contains("DaemonSet/kube-system/csi-secrets-store-provider-aws"));
        assert!(json.contains(
            "public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws:3.1.1"
        ));
        assert!(!json.contains("DaemonSet/kube-system/aws-csi-provider"));
        assert!(json.contains("DaemonSet/kube-system/secrets-store-csi-driver"));
        assert!(json.contains("--provider-volume=/var/run/secrets-store-csi-providers"));
    }

    #[tokio::test]
    async fn the_graph_overlaps_the_addon_with_iam_and_manifests() {
        let s = settings(&[]);
        let t = Target::offline(&s.target.cluster, None);
        let planned = plan_all(&s, &t).await.expect("plans");
        let nodes = graph(&t, planned);
        let deps = |n: &str| {
            nodes
                .iter()
                .find(|x| x.name() == n)
                .map(|x| x.deps().to_vec())
                .unwrap_or_default()
        };
        assert_eq!(deps("agent-addon"), ["secrets"]);
        assert!(!deps("iam-role").contains(&"agent-addon"));
        assert!(!deps("csi-driver").contains(&"agent-addon"));
        assert!(deps("verify").contains(&"agent-addon"));
    }

    #[tokio::test]
    async fn the_dry_run_journal_is_every_planned_write_and_nothing_else() {
        let run = offline(&[]).await;
        let mut planned: Vec<String> = run
            .report
            .steps
            .iter()
            .filter_map(|s| s.outcome())
            .flat_map(|o| o.all_ops())
            .filter(|op| op.writes())
            .map(|op| op.to_string())
            .collect();
        assert!(planned.iter().any(|l| l.starts_with("iam:CreateRole")));
        assert!(
            planned
                .iter()
                .any(|l| l.starts_with("kubernetes: delete Pod/")),
            "sample teardown"
        );
        // Steps run at once, so the journal's order is the graph's; its lines are the plan's.
        let mut journal = run.journal.clone();
        journal.sort();
        planned.sort();
        assert_eq!(journal, planned);
    }
}
