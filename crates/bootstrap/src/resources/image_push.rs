//! `image push` as a plan the one executor runs: the ECR repository when it is missing, then
//! the push. [`Registry`] interprets those two operations with the push's own credentials
//! (the registry's region may not be the cluster's).

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use futures::future::BoxFuture;

use crate::error::StepError;
use crate::image::{self as push, Credentials, ImageError, ImageRef, PushReport, RegistryKind};
use crate::plan::{Action, Change, Interpreter, Op, Step, StepOutcome};

/// What `image push` will do: the resolved target and the steps that get the image there.
pub struct PushPlan {
    pub target: ImageRef,
    /// The ECR repository it creates, if any.
    pub creates_repository: Option<String>,
    pub steps: Vec<(&'static str, Vec<Change>)>,
}

impl PushPlan {
    /// The graph the executor runs: the repository first, then the push.
    pub fn graph<'a>(&self) -> Vec<Step<'a>> {
        let mut previous: Vec<&'static str> = Vec::new();
        self.steps
            .iter()
            .map(|(name, changes)| {
                let step = Step::apply(name, &previous, StepOutcome::with(changes.clone()));
                previous = vec![name];
                step
            })
            .collect()
    }
}

/// Plans a push (reads only: the layout, and for ECR whether the repository exists).
pub async fn plan_push(
    layout: &Path,
    tag: Option<&str>,
    target: &ImageRef,
    credentials: &Credentials,
    cluster: Option<&str>,
) -> Result<PushPlan, ImageError> {
    let target = push::resolve_target(layout, tag, target)?;
    let mut steps = Vec::new();
    let mut creates_repository = None;
    if let RegistryKind::Ecr { account, region } = target.kind() {
        let repository = target.repository().to_string();
        let resource = format!("ECR repository {repository} ({account}, {region})");
        let change =
            if push::ecr_repository_missing(credentials, &target, &account, &region).await? {
                creates_repository = Some(repository.clone());
                Change::new(Action::Create, resource).op(Op::CreateEcrRepository {
                    account,
                    region,
                    repository,
                    cluster: cluster.map(str::to_string),
                })
            } else {
                Change::new(Action::Unchanged, resource).note("exists")
            };
        steps.push(("ecr-repository", vec![change]));
    }
    let push = Change::new(Action::Update, format!("image {target}")).op(Op::PushImage {
        layout: layout.display().to_string(),
        tag: tag.map(str::to_string),
        target: target.to_string(),
    });
    steps.push(("push", vec![push]));
    Ok(PushPlan {
        target,
        creates_repository,
        steps,
    })
}

/// Runs the registry operations of a push plan; keeps the push's report.
pub struct Registry<'a> {
    credentials: &'a Credentials,
    target: &'a ImageRef,
    pushed: Mutex<Option<PushReport>>,
}

impl<'a> Registry<'a> {
    pub fn new(credentials: &'a Credentials, target: &'a ImageRef) -> Self {
        Self {
            credentials,
            target,
            pushed: Mutex::new(None),
        }
    }

    /// The report of the push, once it ran.
    pub fn pushed(&self) -> Option<PushReport> {
        self.pushed.lock().ok().and_then(|mut p| p.take())
    }
}

/// An image error as a step's error, its hint kept.
fn step_error(e: ImageError) -> StepError {
    let hint = e.hint();
    StepError::Problem {
        message: e.to_string(),
        hint,
        source: Some(Box::new(e)),
    }
}

impl Interpreter for Registry<'_> {
    fn execute<'b>(&'b self, op: &'b Op, _: Instant) -> BoxFuture<'b, Result<(), StepError>> {
        Box::pin(async move {
            match op {
                Op::CreateEcrRepository {
                    account,
                    region,
                    cluster,
                    ..
                } => push::create_ecr_repository(
                    self.credentials,
                    self.target,
                    account,
                    region,
                    cluster.as_deref(),
                )
                .await
                .map_err(step_error),
                Op::PushImage { layout, tag, .. } => {
                    let report = push::push(
                        Path::new(layout),
                        tag.as_deref(),
                        self.target,
                        self.credentials,
                    )
                    .await
                    .map_err(step_error)?;
                    if let Ok(mut pushed) = self.pushed.lock() {
                        *pushed = Some(report);
                    }
                    Ok(())
                }
                other => Err(StepError::problem(format!(
                    "{other}: not an image registry operation"
                ))),
            }
        })
    }
}
