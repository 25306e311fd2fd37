//! A TeamSecrets object's status from what a reconcile found: pure. `Ready` and one condition per
//! part, in the order onboard runs them (role, then association and objects, then the mount);
//! a condition's transition time moves only when its status changes.

use super::crd::{Condition, TeamSecretsStatus};
use crate::commands::onboard::TeamResult;

/// The parts, with the executor step each one is.
const PARTS: [(&str, &str); 4] = [
    ("RoleReady", "iam-role"),
    ("AssociationReady", "association"),
    ("ObjectsReady", "workload"),
    ("Verified", "verify"),
];

/// Why a reconcile did not run onboard at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The spec does not validate (the message locates the problem).
    Invalid(String),
    /// Outside every SecretAllowance for the namespace.
    NotAllowed(Vec<String>),
    /// Another owner's team holds the service account's objects.
    Conflict(String),
}

/// The status after onboard ran for the object.
pub fn from_result(
    result: &TeamResult,
    verify: bool,
    role_arn: &str,
    spc: &str,
    generation: Option<i64>,
    previous: &TeamSecretsStatus,
    now: &str,
) -> TeamSecretsStatus {
    let failed = result.failed_step;
    // Parts after a failed one did not run (association and objects run side by side: a
    // failure of one says nothing of the other).
    let failed_rank = failed.map(rank);
    let mut conditions = Vec::new();
    for (kind, step) in PARTS {
        let (status, reason, message) = if step == "verify" && !verify {
            (
                "Unknown",
                "NotRequested",
                "spec.verify is false".to_string(),
            )
        } else if failed == Some(step) || (failed == Some("plan")) {
            ("False", "Failed", result.error.clone().unwrap_or_default())
        } else if failed_rank.is_some_and(|r| rank(step) > r) {
            (
                "Unknown",
                "NotRun",
                format!("waits for {}", failed.unwrap_or("")),
            )
        } else {
            let message = if step == "verify" {
                result.verified.join(", ")
            } else {
                String::new()
            };
            ("True", "Converged", message)
        };
        conditions.push(condition(kind, status, reason, message, generation));
    }
    let ready = match &result.error {
        None => condition("Ready", "True", "Converged", summary(result), generation),
        Some(e) => condition(
            "Ready",
            "False",
            &format!("{}Failed", camel(failed.unwrap_or("plan"))),
            e.clone(),
            generation,
        ),
    };
    conditions.insert(0, ready);
    let (last_error, hint) = match &result.error {
        Some(e) => split_hint(e),
        None => (None, None),
    };
    TeamSecretsStatus {
        observed_generation: generation,
        conditions: stamp(conditions, &previous.conditions, now),
        role_arn: Some(role_arn.to_string()),
        secret_provider_class: Some(spc.to_string()),
        last_error,
        hint: hint.or_else(|| result.hints.first().cloned()),
        ..counts(result, previous, now)
    }
}

/// The counts of this reconcile if it wrote anything, else the last ones that did.
fn counts(result: &TeamResult, previous: &TeamSecretsStatus, now: &str) -> TeamSecretsStatus {
    if result.created + result.updated == 0 && previous.last_change_time.is_some() {
        return TeamSecretsStatus {
            created: previous.created,
            updated: previous.updated,
            unchanged: previous.unchanged,
            last_change_time: previous.last_change_time.clone(),
            ..TeamSecretsStatus::default()
        };
    }
    TeamSecretsStatus {
        created: result.created as u32,
        updated: result.updated as u32,
        unchanged: result.unchanged as u32,
        last_change_time: Some(now.to_string()),
        ..TeamSecretsStatus::default()
    }
}

/// The status of a refused object: `Ready` False with the reason, nothing else known.
pub fn refused(
    refusal: &Refusal,
    generation: Option<i64>,
    previous: &TeamSecretsStatus,
    now: &str,
) -> TeamSecretsStatus {
    let (reason, message, hint) = match refusal {
        Refusal::Invalid(m) => ("Invalid", m.clone(), "fix the spec; nothing was created"),
        Refusal::NotAllowed(list) => (
            "NotAllowed",
            list.join("; "),
            "ask an administrator for a SecretAllowance that covers it; nothing was created",
        ),
        Refusal::Conflict(m) => (
            "Conflict",
            m.clone(),
            "use another service account, or remove the other owner's team first",
        ),
    };
    let mut conditions = vec![condition(
        "Ready",
        "False",
        reason,
        message.clone(),
        generation,
    )];
    for (kind, _) in PARTS {
        conditions.push(condition(
            kind,
            "Unknown",
            reason,
            String::new(),
            generation,
        ));
    }
    TeamSecretsStatus {
        observed_generation: generation,
        conditions: stamp(conditions, &previous.conditions, now),
        last_error: Some(message),
        hint: Some(hint.to_string()),
        ..TeamSecretsStatus::default()
    }
}

fn rank(step: &str) -> u8 {
    match step {
        "plan" => 0,
        "iam-role" => 1,
        "association" | "workload" => 2,
        _ => 3,
    }
}

fn camel(step: &str) -> String {
    step.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn summary(r: &TeamResult) -> String {
    format!(
        "{} created, {} updated, {} unchanged",
        r.created, r.updated, r.unchanged
    )
}

/// `message (hint: …)` as onboard writes it → (message, hint), the hint said for the
/// controller where the command's would mislead.
fn split_hint(text: &str) -> (Option<String>, Option<String>) {
    match text.rsplit_once(" (hint: ") {
        Some((m, h)) => (
            Some(m.to_string()),
            Some(for_the_controller(h.trim_end_matches(')'))),
        ),
        None => (Some(text.to_string()), None),
    }
}

/// A command's hint for a person's kubeconfig (an EKS access entry, another context) names
/// the controller's own RBAC instead: that is what lacks the permission.
fn for_the_controller(hint: &str) -> String {
    if hint.starts_with("the Kubernetes identity lacks access") {
        return "the controller's service account lacks this permission: its RBAC is what `bootstrap controller --print-rbac` prints (`up --controller` applies it; run it again to restore edited RBAC)".to_string();
    }
    hint.to_string()
}

fn condition(
    kind: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: None,
        observed_generation: generation,
    }
}

/// Keeps a condition's transition time when its status did not change.
fn stamp(mut conditions: Vec<Condition>, previous: &[Condition], now: &str) -> Vec<Condition> {
    for c in &mut conditions {
        let before = previous.iter().find(|p| p.type_ == c.type_);
        c.last_transition_time = match before {
            Some(p) if p.status == c.status => p.last_transition_time.clone(),
            _ => Some(now.to_string()),
        };
    }
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(error: Option<&str>, failed: Option<&'static str>) -> TeamResult {
        TeamResult {
            name: "t".into(),
            namespace: "n".into(),
            service_account: "s".into(),
            status: if error.is_some() { "failed" } else { "done" },
            created: 3,
            updated: 1,
            unchanged: 2,
            verified: vec!["db@v1".into()],
            error: error.map(str::to_string),
            hints: vec![],
            changes: vec![],
            seconds: 1.0,
            failed_step: failed,
            role_arn: "arn:r".into(),
        }
    }

    /// The status `from_result` makes of `r` (role `arn:r`, class `bootstrap-s`) after
    /// `previous`.
    fn status(
        r: &TeamResult,
        verify: bool,
        generation: Option<i64>,
        previous: &TeamSecretsStatus,
        now: &str,
    ) -> TeamSecretsStatus {
        from_result(r, verify, "arn:r", "bootstrap-s", generation, previous, now)
    }

    /// [`status`] of a team that had none yet.
    fn fresh(
        r: &TeamResult,
        verify: bool,
        generation: Option<i64>,
        now: &str,
    ) -> TeamSecretsStatus {
        status(r, verify, generation, &Default::default(), now)
    }

    fn get<'a>(s: &'a TeamSecretsStatus, kind: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == kind).expect(kind)
    }

    #[test]
    fn a_converged_team_is_ready_in_every_part() {
        let s = fresh(&result(None, None), true, Some(4), "T1");
        assert_eq!(s.observed_generation, Some(4));
        for kind in [
            "Ready",
            "RoleReady",
            "AssociationReady",
            "ObjectsReady",
            "Verified",
        ] {
            assert_eq!(get(&s, kind).status, "True", "{kind}");
        }
        assert_eq!(get(&s, "Verified").message, "db@v1");
        assert_eq!((s.created, s.updated, s.unchanged), (3, 1, 2));
        let unverified = fresh(&result(None, None), false, None, "T1");
        assert_eq!(get(&unverified, "Verified").reason, "NotRequested");
    }

    #[test]
    fn a_resync_that_writes_nothing_keeps_the_last_change() {
        let changed = fresh(&result(None, None), false, Some(2), "T1");
        assert_eq!(changed.last_change_time.as_deref(), Some("T1"));
        let mut quiet = result(None, None);
        (quiet.created, quiet.updated, quiet.unchanged) = (0, 0, 6);
        let resynced = status(&quiet, false, Some(2), &changed, "T2");
        assert_eq!(
            (resynced.created, resynced.updated, resynced.unchanged),
            (3, 1, 2)
        );
        assert_eq!(resynced.last_change_time.as_deref(), Some("T1"));
        // A first reconcile that finds everything in place says so.
        let first = fresh(&quiet, false, Some(1), "T3");
        assert_eq!((first.created, first.updated, first.unchanged), (0, 0, 6));
        assert_eq!(first.last_change_time.as_deref(), Some("T3"));
        let mut repair = result(None, None);
        (repair.created, repair.updated, repair.unchanged) = (0, 1, 5);
        let repaired = status(&repair, false, Some(2), &resynced, "T4");
        assert_eq!(
            (repaired.updated, repaired.last_change_time.as_deref()),
            (1, Some("T4"))
        );
    }

    #[test]
    fn a_failed_step_is_false_and_what_waits_for_it_is_unknown() {
        let r = result(
            Some("AccessDenied on iam:CreateRole (hint: give it iam:CreateRole)"),
            Some("iam-role"),
        );
        let s = fresh(&r, true, Some(1), "T1");
        assert_eq!(get(&s, "Ready").reason, "IamRoleFailed");
        assert_eq!(get(&s, "RoleReady").status, "False");
        assert_eq!(get(&s, "AssociationReady").status, "Unknown");
        assert_eq!(get(&s, "Verified").status, "Unknown");
        assert_eq!(
            s.last_error.as_deref(),
            Some("AccessDenied on iam:CreateRole")
        );
        assert_eq!(s.hint.as_deref(), Some("give it iam:CreateRole"));
        let (_, kube) = split_hint(
            "forbidden: create pods in team (hint: the Kubernetes identity lacks access: grant it an EKS access entry with cluster admin rights, or use a kubeconfig context that has them)",
        );
        let kube = kube.unwrap();
        assert!(
            kube.contains("--print-rbac") && !kube.contains("access entry"),
            "{kube}"
        );
        let v = fresh(
            &result(Some("not mounted"), Some("verify")),
            true,
            None,
            "T",
        );
        assert_eq!(get(&v, "RoleReady").status, "True");
        assert_eq!(get(&v, "Verified").status, "False");
    }

    #[test]
    fn transition_times_move_only_with_the_status() {
        let first = fresh(&result(None, None), true, Some(1), "T1");
        let again = status(&result(None, None), true, Some(2), &first, "T2");
        assert_eq!(
            get(&again, "Ready").last_transition_time.as_deref(),
            Some("T1")
        );
        let failed = status(
            &result(Some("boom"), Some("workload")),
            true,
            Some(3),
            &again,
            "T3",
        );
        assert_eq!(
            get(&failed, "Ready").last_transition_time.as_deref(),
            Some("T3")
        );
        assert_eq!(
            get(&failed, "RoleReady").last_transition_time.as_deref(),
            Some("T1")
        );
    }

    #[test]
    fn a_refused_object_says_why_and_claims_nothing() {
        let s = refused(
            &Refusal::NotAllowed(vec!["secret a is not allowed".into()]),
            Some(2),
            &Default::default(),
            "T",
        );
        assert_eq!(get(&s, "Ready").reason, "NotAllowed");
        assert!(s.role_arn.is_none());
        assert!(
            s.hint
                .as_deref()
                .is_some_and(|h| h.contains("SecretAllowance"))
        );
    }
}
