//! Plans as graphs of steps: a name, the steps it waits for, its planned changes (whose
//! operations are what it writes) and, for a check such as a sample pod, the check between
//! its set-up and tear-down operations. Every command that writes hands its graph to
//! [`Executor::run_graph`], the one place that runs plans.

use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;

use super::dag::{self, Node};
use super::op::Op;
use super::report::StepReport;
use super::{Executor, Progress, StepOutcome};
use crate::error::StepError;

/// A check run between a step's set-up and tear-down: given the planned outcome and the time
/// left, it returns the outcome to report (a note, the versions mounted) or why it failed.
pub type CheckFn<'a> = Box<
    dyn FnOnce(StepOutcome, Duration) -> BoxFuture<'a, Result<StepOutcome, StepError>> + Send + 'a,
>;

/// A check with what it needs made first and removed after (a sample pod): `setup`, then the
/// check (never in a dry run), then `teardown` even when the check failed.
pub struct Probe<'a> {
    pub setup: Vec<Op>,
    pub check: CheckFn<'a>,
    pub teardown: Vec<Op>,
}

enum Work<'a> {
    /// Every change's operations: `parallel` changes at once, each one's operations in order.
    Apply { parallel: usize },
    /// The probes, one after another.
    Check(Vec<Probe<'a>>),
}

/// One step of a plan.
pub struct Step<'a> {
    name: &'static str,
    deps: Vec<&'static str>,
    outcome: StepOutcome,
    work: Work<'a>,
}

impl<'a> Step<'a> {
    /// A step that runs its changes' operations, one change after another.
    pub fn apply(name: &'static str, deps: &[&'static str], outcome: StepOutcome) -> Self {
        Self {
            name,
            deps: deps.to_vec(),
            outcome,
            work: Work::Apply { parallel: 1 },
        }
    }

    /// Runs up to `n` of its changes at once (they are independent: namespaces, roles...).
    pub fn parallel(mut self, n: usize) -> Self {
        if let Work::Apply { parallel } = &mut self.work {
            *parallel = n.max(1);
        }
        self
    }

    /// A check step: `outcome` shows what it plans (its changes' operations are the probes'
    /// set-ups and tear-downs); a dry run records them and says the check was not run.
    pub fn check(
        name: &'static str,
        deps: &[&'static str],
        outcome: StepOutcome,
        probes: Vec<Probe<'a>>,
    ) -> Self {
        Self {
            name,
            deps: deps.to_vec(),
            outcome,
            work: Work::Check(probes),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn deps(&self) -> &[&'static str] {
        &self.deps
    }
}

impl<'e> Executor<'e> {
    /// Runs a plan: each step once the steps it waits for are done, at once with every other
    /// ready step; a failure stops new steps and skips its dependents. Returns one report per
    /// step, in the order given, and the first error with its step.
    pub async fn run_graph<'a>(
        &'a self,
        steps: Vec<Step<'a>>,
        progress: &dyn Progress,
    ) -> (Vec<StepReport>, Option<(&'static str, StepError)>)
    where
        'e: 'a,
    {
        let nodes = steps
            .into_iter()
            .map(|step| {
                let Step {
                    name,
                    deps,
                    outcome,
                    work,
                } = step;
                Node::new(name, &deps, Box::pin(self.run_step(outcome, work)))
            })
            .collect();
        dag::execute(nodes, progress).await
    }

    async fn run_step<'a>(
        &'a self,
        outcome: StepOutcome,
        work: Work<'a>,
    ) -> Result<StepOutcome, StepError> {
        match work {
            Work::Apply { parallel: 1 } => {
                self.run(&outcome.all_ops()).await?;
                Ok(outcome)
            }
            Work::Apply { parallel } => {
                let batches: Vec<Vec<Op>> = outcome.changes.iter().map(|c| c.ops.clone()).collect();
                let runs = batches
                    .into_iter()
                    .map(|ops| async move { self.run(&ops).await });
                let results: Vec<Result<(), StepError>> = futures::stream::iter(runs)
                    .buffer_unordered(parallel)
                    .collect()
                    .await;
                results.into_iter().collect::<Result<Vec<()>, _>>()?;
                Ok(outcome)
            }
            Work::Check(probes) => {
                let mut outcome = outcome;
                if self.dry_run() {
                    for probe in probes {
                        self.run(&probe.setup).await?;
                        self.run(&probe.teardown).await?;
                    }
                    for change in &mut outcome.changes {
                        change.note = Some("not run in a dry run".into());
                    }
                    return Ok(outcome);
                }
                for probe in probes {
                    self.run(&probe.setup).await?;
                    let checked = (probe.check)(outcome, self.remaining()).await;
                    self.run(&probe.teardown).await?;
                    outcome = checked?;
                }
                Ok(outcome)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Change, ObjectRef, StepStatus};
    use std::time::Instant;

    fn apply_op(name: &str) -> Op {
        Op::Apply {
            object: serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "x"}}),
        }
    }

    fn delete_op(name: &str) -> Op {
        Op::Delete {
            object: ObjectRef::new("v1", "ConfigMap", Some("x"), name),
        }
    }

    #[tokio::test]
    async fn a_dry_run_journals_setup_and_teardown_of_a_check_and_never_checks() {
        let exec = Executor::new(true, None, Instant::now() + Duration::from_secs(5));
        let change = Change::new(Action::Check, "sample")
            .op(apply_op("probe"))
            .op(delete_op("probe"));
        let steps = vec![
            Step::apply(
                "objects",
                &[],
                StepOutcome::with(vec![Change::new(Action::Create, "a").op(apply_op("a"))]),
            ),
            Step::check(
                "verify",
                &["objects"],
                StepOutcome::with(vec![change]),
                vec![Probe {
                    setup: vec![apply_op("probe")],
                    check: Box::new(|_, _| Box::pin(async { panic!("a dry run never checks") })),
                    teardown: vec![delete_op("probe")],
                }],
            ),
        ];
        let (reports, error) = exec.run_graph(steps, &()).await;
        assert!(error.is_none());
        assert_eq!(exec.journal().len(), 3, "{:?}", exec.journal());
        let verify = reports[1].outcome().expect("done");
        assert_eq!(
            verify.changes[0].note.as_deref(),
            Some("not run in a dry run")
        );
    }

    /// Fails every apply of a ConfigMap named `bad`.
    struct FailsBad;

    /// A real (not dry) run over [`FailsBad`].
    fn failing_bad() -> Executor<'static> {
        Executor::new(
            false,
            Some(&FailsBad),
            Instant::now() + Duration::from_secs(5),
        )
    }

    impl crate::plan::Interpreter for FailsBad {
        fn execute<'a>(&'a self, op: &'a Op, _: Instant) -> BoxFuture<'a, Result<(), StepError>> {
            Box::pin(async move {
                if op.to_string().contains("bad") {
                    return Err(StepError::problem("bad broke"));
                }
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_failed_check_still_tears_down_and_fails_its_step() {
        let exec = failing_bad();
        let steps = vec![Step::check(
            "verify",
            &[],
            StepOutcome::default(),
            vec![
                Probe {
                    setup: vec![apply_op("probe")],
                    check: Box::new(|_, _| {
                        Box::pin(async { Err(StepError::problem("did not mount")) })
                    }),
                    teardown: vec![delete_op("probe")],
                },
                Probe {
                    setup: vec![apply_op("second")],
                    check: Box::new(|_, _| Box::pin(async { panic!("not after a failure") })),
                    teardown: Vec::new(),
                },
            ],
        )];
        let (reports, error) = exec.run_graph(steps, &()).await;
        let (step, err) = error.expect("failed");
        assert_eq!(step, "verify");
        assert!(err.to_string().contains("did not mount"));
        assert!(matches!(reports[0].status, StepStatus::Failed(_)));
        assert_eq!(exec.journal().len(), 2, "set up and torn down");
    }

    #[tokio::test]
    async fn parallel_changes_all_run_and_one_failure_fails_the_step() {
        let exec = failing_bad();
        let changes: Vec<Change> = ["a", "bad", "c", "d"]
            .iter()
            .map(|n| Change::new(Action::Delete, *n).op(delete_op(n)))
            .collect();
        let steps = vec![
            Step::apply("delete", &[], StepOutcome::with(changes)).parallel(4),
            Step::apply("after", &["delete"], StepOutcome::default()),
        ];
        let (reports, error) = exec.run_graph(steps, &()).await;
        assert_eq!(error.map(|(s, _)| s), Some("delete"));
        assert_eq!(exec.journal().len(), 3, "the others ran");
        assert!(matches!(reports[1].status, StepStatus::Skipped));
    }
}
