//! Shared by the steps that apply rendered objects: observe each one, decide its action,
//! apply the ones that need it (server-side apply, in order), and describe them as changes.

use serde_json::Value;

use super::{Env, StepError};
use crate::kube::apply::{self, ObjectState};
use crate::plan::{Action, Change};
use crate::render::object_ref;

/// One object and what to do with it.
#[derive(Debug, Clone)]
pub struct ObjectPlan {
    pub object: Value,
    pub action: Action,
    pub note: Option<String>,
}

/// The action for an object in a given state. Objects we did not make are adopted, never
/// overwritten.
pub fn action_for(state: ObjectState) -> (Action, Option<String>) {
    match state {
        ObjectState::Absent => (Action::Create, None),
        ObjectState::Same { ours: true } => (Action::Unchanged, None),
        ObjectState::Same { ours: false } => (
            Action::Adopt,
            Some("exists, not made by bootstrap; left as is".into()),
        ),
        ObjectState::Differs { ours: true } => (Action::Update, None),
        ObjectState::Differs { ours: false } => (
            Action::Adopt,
            Some("exists with other settings, not made by bootstrap; left as is".into()),
        ),
    }
}

/// Observes every object (all `Create` when there is no cluster access).
pub async fn plan(env: &Env, objects: Vec<Value>) -> Result<Vec<ObjectPlan>, StepError> {
    let Some(client) = env.kube() else {
        return Ok(objects
            .into_iter()
            .map(|object| ObjectPlan {
                object,
                action: Action::Create,
                note: None,
            })
            .collect());
    };
    let mut plans = Vec::with_capacity(objects.len());
    for object in objects {
        let (action, note) = action_for(apply::observe(client, &object).await?);
        plans.push(ObjectPlan {
            object,
            action,
            note,
        });
    }
    Ok(plans)
}

/// Applies, in order, every object whose action writes (nothing when dry-running).
pub async fn apply(env: &Env, plans: &[ObjectPlan]) -> Result<(), StepError> {
    if env.dry_run() {
        return Ok(());
    }
    let Some(client) = env.kube() else {
        return Ok(());
    };
    for plan in plans.iter().filter(|p| p.action.writes()) {
        apply::apply(client, &plan.object).await?;
    }
    Ok(())
}

/// Describes the objects as changes (the manifest goes along when it would be written).
pub fn changes(plans: &[ObjectPlan]) -> Vec<Change> {
    plans
        .iter()
        .map(|p| {
            // The manifest always goes along (--output-dir writes every one, for GitOps).
            let mut change =
                Change::new(p.action, object_ref(&p.object)).document(p.object.clone());
            if p.action.writes() {
                change = change.call("kubernetes: server-side apply (field manager bootstrap)");
            }
            if let Some(note) = &p.note {
                change = change.note(note.clone());
            }
            change
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn others_objects_are_adopted_never_overwritten() {
        assert_eq!(action_for(ObjectState::Absent).0, Action::Create);
        assert_eq!(
            action_for(ObjectState::Same { ours: true }).0,
            Action::Unchanged
        );
        assert_eq!(
            action_for(ObjectState::Differs { ours: true }).0,
            Action::Update
        );
        assert_eq!(
            action_for(ObjectState::Differs { ours: false }).0,
            Action::Adopt
        );
        assert_eq!(
            action_for(ObjectState::Same { ours: false }).0,
            Action::Adopt
        );
    }

    #[test]
    fn every_object_carries_its_manifest_but_only_writes_a_call() {
        let plans = vec![
            ObjectPlan {
                object: serde_json::json!({"kind": "A", "metadata": {"name": "a"}}),
                action: Action::Create,
                note: None,
            },
            ObjectPlan {
                object: serde_json::json!({"kind": "B", "metadata": {"name": "b"}}),
                action: Action::Unchanged,
                note: None,
            },
        ];
        let changes = changes(&plans);
        assert_eq!(changes[0].documents.len(), 1);
        assert_eq!(changes[1].documents.len(), 1);
        assert!(changes[1].calls.is_empty());
        assert_eq!(changes[1].resource, "B/b");
    }
}
