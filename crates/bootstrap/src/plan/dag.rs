//! The dependency-graph executor: runs each step once its dependencies succeeded, at once
//! with every other ready step; a failure stops new steps and marks dependents skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::StepOutcome;
use super::report::{StepReport, StepStatus};

/// A step's work.
pub type StepFuture<'a, E> = Pin<Box<dyn Future<Output = Result<StepOutcome, E>> + Send + 'a>>;

/// A step in the graph: a name, the names it depends on, and its work.
pub struct Node<'a, E> {
    pub name: &'static str,
    pub deps: Vec<&'static str>,
    pub work: StepFuture<'a, E>,
}

impl<'a, E> Node<'a, E> {
    pub fn new(name: &'static str, deps: &[&'static str], work: StepFuture<'a, E>) -> Self {
        Self {
            name,
            deps: deps.to_vec(),
            work,
        }
    }
}

/// Told when steps start and end (the UI draws progress from it).
pub trait Progress: Sync {
    fn started(&self, step: &'static str);
    fn finished(&self, step: &'static str, status: &StepStatus, elapsed: Duration);
}

/// Passes `result` on, first reporting `step` failed (since `started`) when it is an error.
pub fn failed_on_err<T, E: std::fmt::Display>(
    progress: &dyn Progress,
    step: &'static str,
    started: std::time::Instant,
    result: Result<T, E>,
) -> Result<T, E> {
    if let Err(e) = &result {
        let status = StepStatus::Failed(e.to_string());
        progress.finished(step, &status, started.elapsed());
    }
    result
}

/// A [`Progress`] that ignores everything.
impl Progress for () {
    fn started(&self, _: &'static str) {}
    fn finished(&self, _: &'static str, _: &StepStatus, _: Duration) {}
}

/// Runs the graph. Returns one report per node, in the order given, and the first error.
/// Nodes whose dependency is unknown or failed are skipped.
pub async fn execute<'a, E: std::fmt::Display>(
    nodes: Vec<Node<'a, E>>,
    progress: &dyn Progress,
) -> (Vec<StepReport>, Option<(&'static str, E)>) {
    let order: Vec<&'static str> = nodes.iter().map(|n| n.name).collect();
    let mut pending: BTreeMap<&'static str, Node<'a, E>> =
        nodes.into_iter().map(|n| (n.name, n)).collect();
    let mut done: BTreeSet<&'static str> = BTreeSet::new();
    let mut reports: BTreeMap<&'static str, StepReport> = BTreeMap::new();
    let mut first_error = None;
    let mut running = FuturesUnordered::new();
    loop {
        if first_error.is_none() {
            let ready: Vec<&'static str> = pending
                .values()
                .filter(|n| n.deps.iter().all(|d| done.contains(d)))
                .map(|n| n.name)
                .collect();
            for name in ready {
                if let Some(node) = pending.remove(name) {
                    progress.started(name);
                    let start = Instant::now();
                    running.push(async move { (name, node.work.await, start.elapsed()) });
                }
            }
        }
        let Some((name, result, elapsed)) = running.next().await else {
            break;
        };
        let status = match result {
            Ok(outcome) => {
                done.insert(name);
                StepStatus::Done(outcome)
            }
            Err(err) => {
                let status = StepStatus::Failed(err.to_string());
                if first_error.is_none() {
                    first_error = Some((name, err));
                }
                status
            }
        };
        progress.finished(name, &status, elapsed);
        reports.insert(name, StepReport::new(name, status, elapsed));
    }
    for (name, _) in pending {
        reports.insert(
            name,
            StepReport::new(name, StepStatus::Skipped, Duration::ZERO),
        );
    }
    let ordered = order
        .into_iter()
        .filter_map(|n| reports.remove(n))
        .collect();
    (ordered, first_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn step<'a>(
        log: Arc<Mutex<Vec<String>>>,
        name: &'static str,
        ms: u64,
        fail: bool,
    ) -> StepFuture<'a, String> {
        Box::pin(async move {
            log.lock().expect("log").push(format!("start {name}"));
            tokio::time::sleep(Duration::from_millis(ms)).await;
            log.lock().expect("log").push(format!("end {name}"));
            if fail {
                Err(format!("{name} broke"))
            } else {
                Ok(StepOutcome::default())
            }
        })
    }

    /// A node: its name, what it depends on, how long its step takes (ms), whether it fails.
    type Spec = (&'static str, &'static [&'static str], u64, bool);

    /// Executes the nodes `specs` describe, each step logging its start and end; returns the
    /// reports, the first error and the log.
    async fn run(specs: &[Spec]) -> (Vec<StepReport>, Option<(&'static str, String)>, Vec<String>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let nodes = specs
            .iter()
            .map(|&(name, deps, ms, fail)| Node::new(name, deps, step(log.clone(), name, ms, fail)))
            .collect();
        let (reports, err) = execute(nodes, &()).await;
        let log = log.lock().expect("log").clone();
        (reports, err, log)
    }

    #[tokio::test]
    async fn independent_steps_overlap_and_dependents_wait() {
        let (reports, err, log) = run(&[
            ("a", &[], 10, false),
            ("slow", &["a"], 200, false),
            ("b", &["a"], 10, false),
            ("c", &["b"], 10, false),
            ("end", &["slow", "c"], 1, false),
        ])
        .await;
        assert!(err.is_none());
        let pos = |s: &str| log.iter().position(|l| l == s).expect("logged");
        // The overlap itself: b and slow both start before slow ends (run one at a time, b
        // would start only after "end slow").
        assert!(
            pos("start b") < pos("end slow"),
            "b overlapped slow: {log:?}"
        );
        assert!(
            pos("start slow") < pos("end b"),
            "slow overlapped b: {log:?}"
        );
        assert!(pos("end c") < pos("end slow"), "c ran during slow: {log:?}");
        assert!(pos("end slow") < pos("start end"));
        let names: Vec<_> = reports.iter().map(|r| r.name).collect();
        assert_eq!(names, ["a", "slow", "b", "c", "end"]);
    }

    #[tokio::test]
    async fn a_failure_skips_dependents_and_is_returned() {
        let (reports, err, log) = run(&[("a", &[], 1, true), ("b", &["a"], 1, false)]).await;
        assert_eq!(err, Some(("a", "a broke".to_string())));
        assert!(matches!(reports[0].status, StepStatus::Failed(_)));
        assert!(matches!(reports[1].status, StepStatus::Skipped));
        assert!(!log.contains(&"start b".to_string()));
    }
}
