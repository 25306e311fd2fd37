//! `bootstrap doctor`: preflight, one read-only snapshot of the cluster and the account, the
//! diagnosis rules over it, and the checks as text or JSON. Exit 0 only when nothing fails.

use std::fmt::Write;

use serde::Serialize;

use super::ExitStatus;
use crate::config::DoctorSettings;
use crate::diagnose::checks::{self, Check, Status, Summary};
use crate::error::StepError;
use crate::resources::facts;

/// What `doctor --output json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub cluster: String,
    pub region: String,
    pub checks: Vec<Check>,
    pub summary: Summary,
}

/// Connects, preflights (read-only), observes and runs every rule.
pub async fn run(
    s: &DoctorSettings,
    printer: &crate::ui::Printer,
) -> Result<DoctorReport, StepError> {
    let (t, _) = super::connect_cluster(&s.target, "doctor").await?;
    let Some(crate::target::Live { aws, kube }) = t.live() else {
        return Err(StepError::problem(format!(
            "doctor has no AWS or Kubernetes access to cluster {}",
            s.target.cluster
        )));
    };
    printer.status(&format!(
        "checking EKS cluster {} in {} (read-only)",
        t.name(),
        t.region
    ));
    let snapshot = facts::snapshot(&t, aws, kube, s.namespace.as_deref(), s.pod.as_deref()).await;
    let checks = checks::run(&snapshot);
    Ok(DoctorReport {
        cluster: t.name().to_string(),
        region: t.region.clone(),
        summary: Summary::of(&checks),
        checks,
    })
}

/// 0 when nothing failed, 1 otherwise (warnings do not fail).
pub fn exit_status(report: &DoctorReport) -> ExitStatus {
    if report.summary.fail == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

/// The checks as text: status, check, subject; then what was seen and the fix.
pub fn text(report: &DoctorReport) -> String {
    let mut out = format!(
        "bootstrap doctor: EKS cluster {} in {}\n\n",
        report.cluster, report.region
    );
    let width = report
        .checks
        .iter()
        .map(|c| c.check.len())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        let mark = match c.status {
            Status::Pass => "pass",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(out, "{mark}  {:<width$}  {}", c.check, c.subject);
        let _ = writeln!(out, "      saw: {}", c.saw);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "      fix: {fix}");
        }
    }
    let s = report.summary;
    let _ = writeln!(
        out,
        "\n{} passed, {} warning(s), {} failed{}",
        s.pass,
        s.warn,
        s.fail,
        if s.fail == 0 {
            ""
        } else {
            ": run each fix, then doctor again"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_saw_and_fix_and_the_exit_follows_failures() {
        let checks = vec![
            Check::pass("agent.addon", "EKS add-on eks-pod-identity-agent", "ACTIVE"),
            Check::fail(
                "spc.use-pod-identity",
                "SecretProviderClass ns/x",
                "usePodIdentity \"yes\"",
            )
            .fix("kubectl patch"),
        ];
        let mut report = DoctorReport {
            cluster: "demo".into(),
            region: "r".into(),
            summary: Summary::of(&checks),
            checks,
        };
        let text = text(&report);
        assert!(
            text.contains("FAIL  spc.use-pod-identity  SecretProviderClass ns/x"),
            "{text}"
        );
        assert!(text.contains("      fix: kubectl patch"), "{text}");
        assert!(text.contains("1 passed, 0 warning(s), 1 failed"), "{text}");
        assert_eq!(exit_status(&report), ExitStatus::Failure);
        report.checks[1].status = Status::Warn;
        report.summary = Summary::of(&report.checks);
        assert_eq!(exit_status(&report), ExitStatus::Success);
    }
}
