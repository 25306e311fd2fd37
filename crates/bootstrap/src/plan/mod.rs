//! Plans: typed operations ([`Op`]), the changes they make to resources, the steps that group
//! them into a graph ([`Step`]), the one executor that runs graphs and the run report.
//!
//! Nothing here knows the network: operations are data, and the [`Executor`] hands them to an
//! [`Interpreter`] (the AWS and Kubernetes ones live with their clients).

mod dag;
mod exec;
mod graph;
mod op;
mod report;

pub use dag::{Progress, failed_on_err};
pub use exec::{Executor, Interpreter, retryable};
pub use graph::{CheckFn, Probe, Step};
pub use op::{AddonGoal, Backend, NewAssociation, ObjectRef, Op};
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
    /// Owned by bootstrap: delete it (`down`).
    Delete,
    /// Present, but `down` leaves it (not ours, or still in use): the note says why.
    Keep,
}

impl Action {
    /// Whether this action writes.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Action::Create | Action::Update | Action::Replace | Action::Delete
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Unchanged => "unchanged",
            Action::Adopt => "adopt",
            Action::Check => "check",
            Action::Delete => "delete",
            Action::Keep => "keep",
        }
    }

    /// How a dry run says it: what would happen, never a word that reads as done.
    pub fn would(self) -> &'static str {
        match self {
            Action::Create => "would create",
            Action::Update => "would update",
            Action::Replace => "would replace",
            Action::Unchanged => "unchanged",
            Action::Adopt => "would adopt",
            Action::Check => "would check",
            Action::Delete => "would delete",
            Action::Keep => "would keep",
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
    /// The operations behind `calls`, in order: what the executor runs.
    #[serde(skip)]
    pub ops: Vec<Op>,
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
            ops: Vec::new(),
            note: None,
        }
    }

    /// Adds an operation: its plan line goes to `calls`, its document (if any) along.
    pub fn op(mut self, op: Op) -> Self {
        self.calls.push(op.to_string());
        if let Some(doc) = op.document() {
            self.documents.push(doc);
        }
        self.ops.push(op);
        self
    }

    pub fn ops(self, ops: impl IntoIterator<Item = Op>) -> Self {
        ops.into_iter().fold(self, Change::op)
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

    /// Every operation of every change, in order.
    pub fn all_ops(&self) -> Vec<Op> {
        self.changes.iter().flat_map(|c| c.ops.clone()).collect()
    }

    /// The most significant action, for a one-line summary.
    pub fn summary_action(&self) -> Action {
        let order = [
            Action::Delete,
            Action::Replace,
            Action::Create,
            Action::Update,
            Action::Keep,
            Action::Adopt,
            Action::Unchanged,
        ];
        order
            .into_iter()
            .find(|a| self.changes.iter().any(|c| c.action == *a))
            .unwrap_or(Action::Check)
    }
}
