//! Steps, the dependency-graph executor and the run report.
//!
//! These types know nothing of the network: a step is a named future with dependencies that
//! yields a [`StepOutcome`] — the changes it planned (and applied, unless dry-running).

mod dag;
mod report;

pub use dag::{Node, Progress, StepFuture, execute};
pub use report::{Changes, Report, StepReport, StepStatus};

use serde::Serialize;
use serde_json::Value;

/// What a step does (or would do) to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Absent: create it.
    Create,
    /// Present and ours, but different: update it.
    Update,
    /// Present and ours, another owner's version must be replaced (`--force`).
    Replace,
    /// Present, ours, as desired: nothing to do.
    Unchanged,
    /// Present but not ours: use it as is, never overwrite.
    Adopt,
    /// Observed or checked only (preflight, verify): no write.
    Check,
}

impl Action {
    /// Whether this action writes.
    pub fn writes(self) -> bool {
        matches!(self, Action::Create | Action::Update | Action::Replace)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Unchanged => "unchanged",
            Action::Adopt => "adopt",
            Action::Check => "check",
        }
    }
}

/// One resource's planned change: the calls that make it and the documents they send.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub action: Action,
    /// e.g. `iam role bootstrap-demo-…` or `DaemonSet/kube-system/secrets-store-csi-driver`.
    pub resource: String,
    /// The write calls (AWS API calls or Kubernetes operations), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// Documents sent (IAM policies, Kubernetes manifests).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<Value>,
    /// Why, for adopt/unchanged/check, or a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Change {
    pub fn new(action: Action, resource: impl Into<String>) -> Self {
        Self {
            action,
            resource: resource.into(),
            calls: Vec::new(),
            documents: Vec::new(),
            note: None,
        }
    }

    pub fn call(mut self, call: impl Into<String>) -> Self {
        self.calls.push(call.into());
        self
    }

    pub fn document(mut self, document: Value) -> Self {
        self.documents.push(document);
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// What a finished step reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepOutcome {
    pub changes: Vec<Change>,
    /// Facts worth showing (e.g. `cluster demo: ACTIVE, Kubernetes 1.34`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl StepOutcome {
    pub fn with(changes: Vec<Change>) -> Self {
        Self {
            changes,
            notes: Vec::new(),
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// The most significant action, for a one-line summary.
    pub fn summary_action(&self) -> Action {
        let order = [
            Action::Replace,
            Action::Create,
            Action::Update,
            Action::Adopt,
            Action::Unchanged,
        ];
        order
            .into_iter()
            .find(|a| self.changes.iter().any(|c| c.action == *a))
            .unwrap_or(Action::Check)
    }
}
