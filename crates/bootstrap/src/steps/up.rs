//! `up`: connect (or plan offline), wire the steps into the dependency graph, run it, report.

use std::time::Instant;

use super::{Env, StepError};
use crate::aws::{self, Clients, ConfigError};
use crate::config::UpSettings;
use crate::plan::{self, Node, Progress, Report, StepStatus};

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

/// Builds the environment: live AWS access, or (dry run only) an offline plan when there is no
/// region or no credentials. Returns a note saying why it went offline.
pub async fn connect(settings: UpSettings) -> Result<(Env, Option<String>), StepError> {
    let config =
        match aws::load_config(settings.region.as_deref(), settings.profile.as_deref()).await {
            Ok(config) => config,
            Err(ConfigError::NoRegion) if settings.dry_run => {
                return Ok((
                    Env::offline(settings),
                    Some("no AWS region configured: planning offline for an empty account".into()),
                ));
            }
            Err(e) => {
                return Err(StepError::caused_by("cannot reach AWS", e)
                    .with_hint("pass --region, set AWS_REGION, or set a region in the profile"));
            }
        };
    if settings.dry_run && aws::check_credentials(&config).await.is_err() {
        let mut env = Env::offline(settings);
        if let Some(region) = config.region() {
            env.region = region.to_string();
        }
        return Ok((
            env,
            Some("no AWS credentials: planning offline for an empty account".into()),
        ));
    }
    let clients = Clients::from_config(config).map_err(|e| {
        StepError::caused_by("cannot reach AWS", e).with_hint("pass --region or set AWS_REGION")
    })?;
    Ok((Env::live(settings, clients), None))
}

/// The graph: independent steps run at once (the add-on wait overlaps IAM and manifests).
/// Every writing step waits for preflight and the secrets, so bad input fails before any write.
pub fn graph(env: &Env) -> Vec<Node<'_, StepError>> {
    vec![
        Node::new("preflight", &[], Box::pin(super::preflight::run(env))),
        Node::new(
            "secrets",
            &["preflight"],
            Box::pin(super::secrets::run(env)),
        ),
        Node::new(
            "agent-addon",
            &["preflight", "secrets"],
            Box::pin(super::agent_addon::run(env)),
        ),
        Node::new(
            "csi-driver",
            &["preflight", "secrets"],
            Box::pin(super::csi_driver::run(env)),
        ),
        Node::new(
            "provider",
            &["csi-driver"],
            Box::pin(super::provider::run(env)),
        ),
        Node::new(
            "iam-role",
            &["secrets"],
            Box::pin(super::iam_role::run(env)),
        ),
        Node::new(
            "association",
            &["iam-role"],
            Box::pin(super::association::run(env)),
        ),
        Node::new(
            "workload",
            &["csi-driver", "secrets"],
            Box::pin(super::workload::run(env)),
        ),
        Node::new(
            "verify",
            &["agent-addon", "provider", "association", "workload"],
            Box::pin(super::verify::run(env)),
        ),
    ]
}

/// Runs `up` and returns its report and the error that stopped it, if any.
pub async fn run(
    env: &Env,
    progress: &dyn Progress,
) -> (Report, Option<(&'static str, StepError)>) {
    let start = Instant::now();
    let (steps, error) = plan::execute(graph(env), progress).await;
    let verified = !env.dry_run()
        && error.is_none()
        && steps
            .iter()
            .any(|s| s.name == "verify" && matches!(s.status, StepStatus::Done(_)));
    let report = Report {
        cluster: env.settings.cluster.clone(),
        region: env.region.clone(),
        dry_run: env.dry_run(),
        offline: env.is_offline(),
        changes: Report::count(&steps),
        steps,
        verified,
        seconds: (start.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        error: error.as_ref().map(|(step, e)| format!("{step}: {e}")),
    };
    (report, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn offline_env(extra: &[&str]) -> Env {
        let mut argv = vec!["bootstrap", "up", "--cluster", "demo", "--dry-run"];
        argv.extend_from_slice(extra);
        let Command::Up(args) = Cli::try_parse_from(argv).expect("parses").command else {
            panic!("up")
        };
        Env::offline(crate::config::resolve_up(&args).expect("valid"))
    }

    #[tokio::test]
    async fn offline_dry_run_plans_every_step_for_an_empty_account() {
        let env = offline_env(&[]);
        let (report, error) = run(&env, &()).await;
        assert!(error.is_none(), "{:?}", error.map(|e| e.1.to_string()));
        let names: Vec<_> = report.steps.iter().map(|s| s.name).collect();
        assert_eq!(names, STEPS);
        assert!(report.offline && report.dry_run && !report.verified);
        assert!(report.changes.created >= 15, "{:?}", report.changes);
        assert_eq!(report.changes.updated, 0);
        let json = serde_json::to_string(&report).expect("json");
        assert!(json.contains("iam:CreateRole"));
        assert!(json.contains("pods.eks.amazonaws.com"));
        assert!(json.contains("eks:CreatePodIdentityAssociation"));
        assert!(json.contains("\"usePodIdentity\":\"true\""));
        assert!(
            !json.contains("SecretString\":"),
            "no secret value in the plan"
        );
    }

    #[tokio::test]
    async fn the_provider_addon_brings_the_driver() {
        let env = offline_env(&["--provider", "addon"]);
        let (report, error) = run(&env, &()).await;
        assert!(error.is_none());
        let json = serde_json::to_string(&report).expect("json");
        assert!(json.contains("addonName=aws-secrets-store-csi-driver-provider"));
        assert!(!json.contains("DaemonSet/kube-system/secrets-store-csi-driver"));
    }

    #[tokio::test]
    async fn the_upstream_provider_replaces_ours_in_the_plan() {
        let env = offline_env(&["--provider", "upstream"]);
        let (report, error) = run(&env, &()).await;
        assert!(error.is_none(), "{:?}", error.map(|e| e.1.to_string()));
        let json = serde_json::to_string(&report).expect("json");
        assert!(json.contains("DaemonSet/kube-system/csi-secrets-store-provider-aws"));
        assert!(json.contains(
            "public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws:3.1.1"
        ));
        assert!(!json.contains("DaemonSet/kube-system/aws-csi-provider"));
        // The driver is still ours, and the provider shares its providers directory.
        assert!(json.contains("DaemonSet/kube-system/secrets-store-csi-driver"));
        assert!(json.contains("--provider-volume=/var/run/secrets-store-csi-providers"));
    }

    #[tokio::test]
    async fn the_graph_overlaps_the_addon_with_iam_and_manifests() {
        let env = offline_env(&[]);
        let nodes = graph(&env);
        let deps = |n: &str| {
            nodes
                .iter()
                .find(|x| x.name == n)
                .map(|x| x.deps.clone())
                .unwrap_or_default()
        };
        // Inputs (the secrets) are checked before anything is written: nothing half-made.
        assert_eq!(deps("agent-addon"), ["preflight", "secrets"]);
        assert!(!deps("iam-role").contains(&"agent-addon"));
        assert!(!deps("csi-driver").contains(&"agent-addon"));
        assert!(deps("verify").contains(&"agent-addon"));
    }
}
