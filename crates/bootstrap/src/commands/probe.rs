//! The sample-pod probe `up`, `onboard` and `migrate` end with: the pod set up, its mount
//! checked (the files and versions it reports), and the pod torn down, as a [`Probe`] of the
//! executor's check steps.

use crate::service_account::ServiceAccountRef;
use std::time::Duration;

use crate::diagnose::Subject;
use crate::error::StepError;
use crate::plan::{Change, CheckFn, Probe, StepOutcome};
use crate::resources::sample::{self, Sample, SamplePlan};
use crate::target::Target;

/// What a probe's check reports: given the sample and the `file@version` it mounted, it
/// updates the step's outcome (a note on the change, or the versions as the outcome's notes).
pub type Mark = Box<dyn FnOnce(&Sample, Vec<String>, &mut StepOutcome) + Send>;

/// The versions as the outcome's notes (what `onboard` and `migrate` report per team or
/// workload).
pub fn as_notes() -> Mark {
    Box::new(|_, versions, outcome| outcome.notes.extend(versions))
}

/// A probe of `spec` for `service_account`, waiting at most `cap` (or what is left
/// of the run); returns the change it shows in the plan and the probe.
pub fn sample_probe<'a>(
    t: &'a Target,
    planned: SamplePlan,
    spec: Sample,
    service_account: ServiceAccountRef,
    cap: Option<Duration>,
    mark: Mark,
) -> (Change, Probe<'a>) {
    let SamplePlan {
        change,
        setup,
        teardown,
    } = planned;
    let check: CheckFn<'a> = Box::new(move |mut outcome: StepOutcome, remaining| {
        Box::pin(async move {
            let Some(kube) = t.kube() else {
                return Err(StepError::problem(
                    "the sample pod's check needs cluster access",
                ));
            };
            let subject = Subject {
                cluster: t.name(),
                namespace: &service_account.namespace,
                service_account: &service_account.name,
                spc: &spec.spc,
            };
            let timeout = cap.map_or(remaining, |cap| remaining.min(cap));
            let versions = sample::check(t.aws(), kube, &spec, subject, timeout).await?;
            mark(&spec, versions, &mut outcome);
            Ok(outcome)
        })
    });
    (
        change,
        Probe {
            setup,
            check,
            teardown,
        },
    )
}
