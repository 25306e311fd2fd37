//! The executor: the one place that decides whether operations run (dry-run and offline plans
//! only record them), retries what IAM's eventual consistency makes fail for a while, and
//! keeps the journal of what was executed (`BOOTSTRAP_OPS_LOG` writes it to a file).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use bootstrap_common::Backoff;

use super::op::Op;
use crate::aws::ErrorKind;
use crate::error::StepError;

/// Runs operations against real systems (one implementation per set of backends).
pub trait Interpreter: Send + Sync {
    fn execute<'a>(&'a self, op: &'a Op, deadline: Instant)
    -> BoxFuture<'a, Result<(), StepError>>;

    /// Whether a call of these backends succeeded at or after `t` (see [`paced`]).
    fn progressed_since(&self, _t: Instant) -> bool {
        false
    }
}

/// Runs plans: records them in a dry run, executes them otherwise.
pub struct Executor<'a> {
    dry_run: bool,
    interpreter: Option<&'a dyn Interpreter>,
    deadline: Instant,
    retry: Backoff,
    journal: Mutex<Vec<String>>,
    journal_file: Option<PathBuf>,
}

impl<'a> Executor<'a> {
    /// `interpreter` is `None` for an offline plan (which is always a dry run).
    pub fn new(dry_run: bool, interpreter: Option<&'a dyn Interpreter>, deadline: Instant) -> Self {
        Self {
            dry_run: dry_run || interpreter.is_none(),
            interpreter,
            deadline,
            retry: Backoff::default(),
            journal: Mutex::new(Vec::new()),
            journal_file: std::env::var_os("BOOTSTRAP_OPS_LOG").map(PathBuf::from),
        }
    }

    /// Another schedule for IAM's eventual consistency (tests use millisecond ones).
    pub fn with_retry(mut self, retry: Backoff) -> Self {
        self.retry = retry;
        self
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// What is left of the run's time (at least a second, so a wait can look once).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1))
    }

    /// The write operations executed (or, in a dry run, planned) so far, in order.
    pub fn journal(&self) -> Vec<String> {
        self.journal.lock().map(|j| j.clone()).unwrap_or_default()
    }

    /// Runs the operations in order; stops at the first that fails for good.
    pub async fn run(&self, ops: &[Op]) -> Result<(), StepError> {
        for op in ops {
            self.run_one(op).await?;
        }
        Ok(())
    }

    async fn run_one(&self, op: &Op) -> Result<(), StepError> {
        let Some(interpreter) = self.interpreter.filter(|_| !self.dry_run) else {
            self.record(op);
            return Ok(());
        };
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let err = match interpreter.execute(op, self.deadline).await {
                Ok(()) => {
                    self.record(op);
                    return Ok(());
                }
                Err(err) => err,
            };
            let delay = if retryable(op, &err) {
                self.retry.next_delay(attempt)
            } else {
                self.pace(&err, started)
            };
            match delay {
                Some(delay) if Instant::now() + delay < self.deadline => {
                    tracing::info!("retrying in {delay:?} ({attempt}): {op}: {err}");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => return Err(err),
            }
        }
    }

    /// Runs `read` (observations only, so safe to repeat: a plan's reads) under the paced rule
    /// of the writes: still throttled after the SDK's retries while other calls of the run
    /// succeed, it is read again on the capped step until the deadline; any other failure,
    /// or throttling while nothing succeeds, is returned at once.
    pub async fn paced_read<T, F: Future<Output = Result<T, StepError>>>(
        &self,
        read: impl Fn() -> F,
    ) -> Result<T, StepError> {
        loop {
            let started = Instant::now();
            let err = match read().await {
                Err(err) => err,
                done => return done,
            };
            match self.pace(&err, started) {
                Some(delay) if Instant::now() + delay < self.deadline => {
                    tracing::info!("reading again in {delay:?}: {err}");
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(err),
            }
        }
    }

    /// The wait before trying again a call that failed with `err` after starting at `started`,
    /// when AWS is pacing the run ([`paced`]) and other calls succeeded meanwhile.
    fn pace(&self, err: &StepError, started: Instant) -> Option<Duration> {
        (paced(err)
            && self
                .interpreter
                .is_some_and(|i| i.progressed_since(started)))
        .then(|| self.retry.paced_delay())
    }

    fn record(&self, op: &Op) {
        if !op.writes() {
            return;
        }
        let line = op.to_string();
        if let Some(path) = &self.journal_file
            && let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
        if let Ok(mut journal) = self.journal.lock() {
            journal.push(line);
        }
    }
}

/// Whether a failure is AWS pacing the run: still throttled when the SDK's retries ran out.
/// It is tried again, on the capped step, only while other calls of the run succeed (the
/// service is up and serving the run at its rate; many teams share one IAM rate limit). When
/// nothing succeeded during the failed attempt, throttling is a fault like any other and the
/// step fails within the SDK's budget.
pub fn paced(err: &StepError) -> bool {
    matches!(err, StepError::Aws(aws) if aws.kind == ErrorKind::Throttled)
}

/// Whether trying again may help: IAM's eventual consistency (a new role not yet visible to
/// EKS, or not yet deletable) for the calls that meet it. Throttling, 5xx and dropped
/// connections are retried once, below, by the SDK and the Kubernetes client on the same
/// schedule; trying them again here would multiply the two budgets (except [`paced`] calls).
pub fn retryable(op: &Op, err: &StepError) -> bool {
    let StepError::Aws(aws) = err else {
        return false;
    };
    match op {
        Op::CreatePodIdentityAssociation { .. } | Op::UpdatePodIdentityAssociation { .. } => {
            aws.code.as_deref() == Some("InvalidParameterException")
                || aws.kind == ErrorKind::NotFound
        }
        Op::DeleteRole { .. } => aws.code.as_deref() == Some("DeleteConflict"),
        Op::PutRolePolicy { .. } | Op::UpdateAssumeRolePolicy { .. } => {
            aws.kind == ErrorKind::NotFound
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{AwsError, ServiceMessage};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Fails the first `failures` calls with `kind`, then succeeds; counts calls. `others_succeed`:
    /// other calls of the run succeed meanwhile.
    struct Flaky {
        failures: u32,
        kind: ErrorKind,
        calls: AtomicU32,
        others_succeed: bool,
    }

    impl Default for Flaky {
        fn default() -> Self {
            Self {
                failures: 0,
                kind: ErrorKind::Client,
                calls: AtomicU32::new(0),
                others_succeed: false,
            }
        }
    }

    impl Flaky {
        fn new(failures: u32, kind: ErrorKind, others_succeed: bool) -> Self {
            Self {
                failures,
                kind,
                others_succeed,
                ..Self::default()
            }
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    /// [`policy_op`] run (not dry) over `flaky` on the [`fast`] schedule: the result and the
    /// journal.
    async fn run_policy(flaky: &Flaky, deadline: Instant) -> (Result<(), StepError>, Vec<String>) {
        let exec = Executor::new(false, Some(flaky), deadline).with_retry(fast());
        let result = exec.run(&[policy_op()]).await;
        (result, exec.journal())
    }

    impl Interpreter for Flaky {
        fn execute<'a>(&'a self, _: &'a Op, _: Instant) -> BoxFuture<'a, Result<(), StepError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                if n < self.failures {
                    return Err(StepError::Aws(AwsError {
                        action: "do",
                        resource: "thing".into(),
                        kind: self.kind,
                        code: None,
                        source: ServiceMessage("no".into()),
                    }));
                }
                Ok(())
            })
        }

        fn progressed_since(&self, _: Instant) -> bool {
            self.others_succeed
        }
    }

    fn fast() -> Backoff {
        Backoff {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            budget: Duration::from_millis(5),
        }
    }

    fn role_op() -> Op {
        Op::DeleteRole { role: "r".into() }
    }

    #[tokio::test]
    async fn a_dry_run_records_and_never_calls() {
        let flaky = Flaky::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let exec = Executor::new(true, Some(&flaky), deadline);
        exec.run(&[role_op(), Op::WaitCrdEstablished { name: "x".into() }])
            .await
            .expect("dry");
        assert_eq!(flaky.calls(), 0);
        assert_eq!(
            exec.journal(),
            ["iam:DeleteRole RoleName=r"],
            "waits are not writes"
        );
    }

    fn policy_op() -> Op {
        Op::PutRolePolicy {
            role: "r".into(),
            policy: "p".into(),
            document: serde_json::json!({}),
        }
    }

    #[tokio::test]
    async fn eventual_consistency_is_retried_within_the_budget_other_faults_are_not() {
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(fast().attempts(), 4);
        let not_yet = Flaky::new(3, ErrorKind::NotFound, false);
        let (result, _) = run_policy(&not_yet, deadline).await;
        result.expect("fourth try works");
        assert_eq!(not_yet.calls(), 4);

        let too_long = Flaky::new(4, ErrorKind::NotFound, false);
        let (result, journal) = run_policy(&too_long, deadline).await;
        assert!(result.is_err(), "past the budget");
        assert_eq!(too_long.calls(), 4);
        assert!(journal.is_empty(), "a failed op is not journaled");

        // Throttling and 5xx were retried by the SDK below on the same schedule: once only.
        for kind in [
            ErrorKind::Throttled,
            ErrorKind::Transient,
            ErrorKind::Client,
        ] {
            let failing = Flaky::new(1, kind, false);
            assert!(run_policy(&failing, deadline).await.0.is_err(), "{kind:?}");
            assert_eq!(failing.calls(), 1, "{kind:?}");
        }
    }

    /// A plan's reads (in a dry run too) follow the writes' paced rule: many teams planning
    /// against one IAM rate limit wait their turn instead of failing their team.
    #[tokio::test]
    async fn a_throttled_read_waits_its_turn_while_other_calls_succeed() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let op = role_op();
        for (kind, others_succeed, reads, ok) in [
            (ErrorKind::Throttled, true, 13, true),
            (ErrorKind::Throttled, false, 1, false),
            (ErrorKind::Transient, true, 1, false),
            (ErrorKind::NotFound, true, 1, false),
        ] {
            let flaky = Flaky::new(12, kind, others_succeed);
            let exec = Executor::new(true, Some(&flaky), deadline).with_retry(fast());
            let result = exec.paced_read(|| flaky.execute(&op, deadline)).await;
            assert_eq!(
                result.is_ok(),
                ok,
                "{kind:?}, others succeed: {others_succeed}"
            );
            assert_eq!(
                flaky.calls(),
                reads,
                "{kind:?}, others succeed: {others_succeed}"
            );
        }
        let past = Instant::now();
        let flaky = Flaky::new(12, ErrorKind::Throttled, true);
        let exec = Executor::new(true, Some(&flaky), past).with_retry(fast());
        let result = exec.paced_read(|| flaky.execute(&op, past)).await;
        assert!(result.is_err(), "no read again past the deadline");
        assert_eq!(flaky.calls(), 1);
    }

    #[tokio::test]
    async fn throttling_waits_its_turn_while_other_calls_succeed_and_fails_when_none_do() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let paced = Flaky::new(12, ErrorKind::Throttled, true);
        let (result, journal) = run_policy(&paced, deadline).await;
        result.expect("a rate limit the run shares is waited out, past the fault budget");
        assert_eq!(paced.calls(), 13);
        assert_eq!(journal.len(), 1);

        for (flaky, why) in [
            (
                Flaky::new(12, ErrorKind::Throttled, false),
                "throttled while nothing succeeds: a fault, failed after the SDK's budget",
            ),
            (
                Flaky::new(12, ErrorKind::Transient, true),
                "a 5xx is a fault whatever other calls do",
            ),
        ] {
            assert!(run_policy(&flaky, deadline).await.0.is_err(), "{why}");
            assert_eq!(flaky.calls(), 1, "{why}");
        }

        let late = Instant::now() + Duration::from_millis(50);
        let endless = Flaky::new(u32::MAX, ErrorKind::Throttled, true);
        assert!(
            run_policy(&endless, late).await.0.is_err(),
            "the deadline bounds the wait"
        );
    }
}
