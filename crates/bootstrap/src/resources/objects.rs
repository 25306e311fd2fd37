//! Kubernetes objects bootstrap renders: each is observed, then created or updated by
//! server-side apply when it is ours or absent, and adopted (never overwritten) otherwise.

use serde_json::Value;

use crate::error::StepError;
use crate::kube::apply::{self, ObjectState};
use crate::plan::{Action, Change, ObjectRef, Op};
use crate::render::object_ref;

/// An object to have, and its live state.
#[derive(Debug, Clone)]
pub struct Observed {
    pub object: Value,
    pub state: ObjectState,
    /// The live object, when present (for checks such as the CSIDriver's audiences).
    pub live: Option<Value>,
}

/// Observes every object; without cluster access every one is absent.
pub async fn observe(
    kube: Option<&kube::Client>,
    objects: Vec<Value>,
) -> Result<Vec<Observed>, StepError> {
    let mut out = Vec::with_capacity(objects.len());
    for object in objects {
        let live = match kube {
            Some(client) => apply::get(client, &object).await?,
            None => None,
        };
        out.push(Observed {
            state: apply::state_of(&object, live.as_ref()),
            object,
            live,
        });
    }
    Ok(out)
}

/// The action for an object in a given state. Objects we did not make are adopted, never
/// overwritten.
pub fn action_for(state: ObjectState) -> (Action, Option<&'static str>) {
    match state {
        ObjectState::Absent => (Action::Create, None),
        ObjectState::Same { ours: true } => (Action::Unchanged, None),
        ObjectState::Same { ours: false } => (
            Action::Adopt,
            Some("exists, not made by bootstrap; left as is"),
        ),
        ObjectState::Differs { ours: true } => (Action::Update, None),
        ObjectState::Differs { ours: false } => (
            Action::Adopt,
            Some("exists with other settings, not made by bootstrap; left as is"),
        ),
    }
}

/// One change per object: apply what is absent or ours-and-different. The manifest always
/// goes along (`--output-dir` writes every one, for GitOps).
pub fn plan(observed: &[Observed]) -> Vec<Change> {
    observed
        .iter()
        .map(|o| {
            let (action, note) = action_for(o.state);
            let mut change = Change::new(action, object_ref(&o.object));
            if action.writes() {
                change = change.op(Op::Apply {
                    object: o.object.clone(),
                });
            } else {
                change = change.document(o.object.clone());
            }
            if let Some(note) = note {
                change = change.note(note);
            }
            change
        })
        .collect()
}

/// Marks every change as adopted (an install someone else made: write nothing of it).
pub fn adopt_all(changes: &mut [Change], why: &str) {
    for change in changes.iter_mut() {
        if change.action.writes() {
            change.action = Action::Adopt;
            change.ops.clear();
            change.calls.clear();
            change.note = Some(why.to_string());
        }
    }
}

/// Deletes one owned object and waits until it is gone.
pub fn plan_delete(reference: &ObjectRef) -> Change {
    Change::new(Action::Delete, reference.to_string())
        .op(Op::Delete {
            object: reference.clone(),
        })
        .op(Op::WaitGone {
            object: reference.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn others_objects_are_adopted_never_overwritten() {
        for (state, action) in [
            (ObjectState::Absent, Action::Create),
            (ObjectState::Same { ours: true }, Action::Unchanged),
            (ObjectState::Differs { ours: true }, Action::Update),
            (ObjectState::Differs { ours: false }, Action::Adopt),
            (ObjectState::Same { ours: false }, Action::Adopt),
        ] {
            assert_eq!(action_for(state).0, action, "{state:?}");
        }
    }

    #[test]
    fn every_object_carries_its_manifest_but_only_writes_an_apply() {
        let object = |n: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}});
        let observed = vec![
            Observed {
                object: object("a"),
                state: ObjectState::Absent,
                live: None,
            },
            Observed {
                object: object("b"),
                state: ObjectState::Same { ours: true },
                live: None,
            },
        ];
        let mut changes = plan(&observed);
        assert_eq!(changes[0].ops.len(), 1);
        assert_eq!(changes[0].documents.len(), 1);
        assert!(changes[1].ops.is_empty());
        assert_eq!(changes[1].documents.len(), 1);
        adopt_all(&mut changes, "theirs");
        assert_eq!(changes[0].action, Action::Adopt);
        assert!(changes[0].ops.is_empty() && changes[0].calls.is_empty());
    }
}
