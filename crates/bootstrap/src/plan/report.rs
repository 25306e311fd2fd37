//! The run report: per-step status and timing, change counts, and its JSON shape.

use std::time::Duration;

use serde::Serialize;

use super::{Action, Change, StepOutcome};

/// How a step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase", tag = "status", content = "detail")]
pub enum StepStatus {
    Done(StepOutcome),
    Failed(String),
    Skipped,
}

/// One step's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub name: &'static str,
    #[serde(flatten)]
    pub status: StepStatus,
    pub seconds: f64,
}

impl StepReport {
    pub fn new(name: &'static str, status: StepStatus, elapsed: Duration) -> Self {
        Self {
            name,
            status,
            seconds: (elapsed.as_secs_f64() * 100.0).round() / 100.0,
        }
    }

    pub fn outcome(&self) -> Option<&StepOutcome> {
        match &self.status {
            StepStatus::Done(o) => Some(o),
            _ => None,
        }
    }
}

/// Counts of resources by what happened to them (or, in a dry run, would): the one summary
/// every command's JSON report carries as `changes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub kept: usize,
}

/// The whole run, as printed at the end (`--output json` serializes this).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cluster: String,
    pub region: String,
    pub dry_run: bool,
    /// True when the plan was made without AWS or Kubernetes access (an empty account assumed).
    pub offline: bool,
    pub changes: Changes,
    pub steps: Vec<StepReport>,
    pub verified: bool,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Changes {
    /// Counts one more change by its action (checks count nowhere).
    pub fn add(&mut self, change: &Change) {
        match change.action {
            Action::Create => self.created += 1,
            Action::Update | Action::Replace => self.updated += 1,
            Action::Unchanged | Action::Adopt => self.unchanged += 1,
            Action::Delete => self.deleted += 1,
            Action::Keep => self.kept += 1,
            Action::Check => {}
        }
    }

    /// The counts of a list of changes.
    pub fn of<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Self {
        let mut counted = Self::default();
        for change in changes {
            counted.add(change);
        }
        counted
    }
}

impl Report {
    /// Counts the changes of every finished step.
    pub fn count(steps: &[StepReport]) -> Changes {
        Changes::of(
            steps
                .iter()
                .filter_map(StepReport::outcome)
                .flat_map(|o| &o.changes),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_changes_and_serializes_the_documented_shape() {
        let outcome = StepOutcome::with(vec![
            Change::new(Action::Create, "a"),
            Change::new(Action::Update, "b"),
            Change::new(Action::Adopt, "c"),
            Change::new(Action::Unchanged, "d"),
            Change::new(Action::Check, "e"),
        ]);
        let steps = vec![
            StepReport::new("x", StepStatus::Done(outcome), Duration::from_millis(1234)),
            StepReport::new("y", StepStatus::Skipped, Duration::ZERO),
        ];
        let changes = Report::count(&steps);
        assert_eq!(
            changes,
            Changes {
                created: 1,
                updated: 1,
                unchanged: 2,
                ..Changes::default()
            }
        );
        let report = Report {
            cluster: "demo".into(),
            region: "us-east-1".into(),
            dry_run: false,
            offline: false,
            changes,
            steps,
            verified: true,
            seconds: 1.0,
            error: None,
        };
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["changes"]["created"], 1);
        assert_eq!(json["verified"], true);
        assert_eq!(json["steps"][0]["name"], "x");
        assert_eq!(json["steps"][0]["status"], "done");
        assert_eq!(json["steps"][0]["seconds"], 1.23);
        assert_eq!(json["steps"][1]["status"], "skipped");
    }
}
