//! The verification pod: one pod with the workload's service account and SecretProviderClass.
//! It is created, must run, and its SecretProviderClassPodStatus must say mounted with every
//! expected object and a version; then it is deleted (unless kept). Values are never read.

use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

use super::facts;
use crate::aws::Clients;
use crate::diagnose::{Subject, diagnose, summarize_warnings};
use crate::error::StepError;
use crate::plan::{Action, Change, ObjectRef, Op};

/// The sample pod of a workload.
#[derive(Debug, Clone)]
pub struct Sample {
    pub pod: Value,
    pub namespace: String,
    pub name: String,
    pub spc: String,
    /// The files the mount must list.
    pub expected: Vec<String>,
    /// Keep the pod after a successful check (`--keep-sample`).
    pub keep: bool,
}

impl Sample {
    pub fn reference(&self) -> ObjectRef {
        ObjectRef::of(&self.pod)
    }
}

/// What to run around the check: a leftover pod of a crashed run goes first, then the pod is
/// applied; afterwards it is deleted unless kept.
#[derive(Debug, Clone)]
pub struct SamplePlan {
    pub change: Change,
    pub setup: Vec<Op>,
    pub teardown: Vec<Op>,
}

/// `leftover`: a pod of that name exists already (from an interrupted run).
pub fn plan(sample: &Sample, leftover: bool) -> SamplePlan {
    let reference = sample.reference();
    let mut setup = Vec::new();
    if leftover {
        setup.push(Op::Delete {
            object: reference.clone(),
        });
        setup.push(Op::WaitGone {
            object: reference.clone(),
        });
    }
    setup.push(Op::Apply {
        object: sample.pod.clone(),
    });
    let mut teardown = Vec::new();
    if !sample.keep {
        teardown.push(Op::Delete {
            object: reference.clone(),
        });
    }
    let change = Change::new(Action::Check, format!("sample pod {reference}"))
        .ops(setup.clone())
        .ops(teardown.clone())
        .note("runs, mounts the secrets, SecretProviderClassPodStatus mounted with every object");
    SamplePlan {
        change,
        setup,
        teardown,
    }
}

/// Waits for the pod to run and its mount to be reported; names the likely cause otherwise.
/// Returns `file@version` for each object.
pub async fn check(
    aws: Option<&Clients>,
    kube: &kube::Client,
    sample: &Sample,
    subject: Subject<'_>,
    timeout: Duration,
) -> Result<Vec<String>, StepError> {
    match observe_mount(
        kube,
        &sample.namespace,
        &sample.name,
        &sample.spc,
        &sample.expected,
        timeout,
    )
    .await
    {
        Ok(versions) => Ok(versions),
        Err(err) => Err(explain(aws, kube, subject, &sample.name, err).await),
    }
}

/// Waits for the pod, then for a mounted status listing every expected file. Returns
/// `file@version` for each.
async fn observe_mount(
    kube: &kube::Client,
    ns: &str,
    pod: &str,
    spc: &str,
    expected: &[String],
    timeout: Duration,
) -> Result<Vec<String>, StepError> {
    wait_running(kube, ns, pod, timeout).await?;
    let gvk = GroupVersionKind::gvk(
        "secrets-store.csi.x-k8s.io",
        "v1",
        "SecretProviderClassPodStatus",
    );
    let ar = ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasspodstatuses");
    let api: Api<DynamicObject> = Api::namespaced_with(kube.clone(), ns, &ar);
    let status_name = format!("{pod}-{ns}-{spc}");
    let deadline = Instant::now() + timeout.min(Duration::from_secs(60));
    loop {
        let found = api
            .get_opt(&status_name)
            .await
            .map_err(crate::kube::KubeError::api(
                "read",
                format!("SecretProviderClassPodStatus/{ns}/{status_name}"),
            ))?;
        if let Some(found) = found {
            let status = found.data.get("status").cloned().unwrap_or(Value::Null);
            if status["mounted"] == true {
                return check_objects(&status, expected);
            }
        }
        if Instant::now() > deadline {
            return Err(StepError::problem(format!(
                "pod {ns}/{pod} runs but its SecretProviderClassPodStatus {status_name} does not say mounted"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long the sample pod's mount may keep failing before verification stops waiting: enough
/// for a new association or role to propagate (kubelet retries with backoff), far short of the
/// default `--timeout`.
const MOUNT_FAILURE_GRACE: Duration = Duration::from_secs(45);
const POLL: Duration = Duration::from_secs(5);

/// Waits until the pod runs; gives up early when its mount has kept failing (FailedMount
/// events) for [`MOUNT_FAILURE_GRACE`].
async fn wait_running(
    kube: &kube::Client,
    ns: &str,
    pod: &str,
    timeout: Duration,
) -> Result<(), StepError> {
    let deadline = Instant::now() + timeout;
    let mut failing_since: Option<Instant> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match crate::kube::wait::pod_running(kube, ns, pod, left.min(POLL)).await {
            Ok(_) => return Ok(()),
            Err(crate::kube::KubeError::Timeout { .. }) if left > POLL => {}
            Err(crate::kube::KubeError::Timeout { what, .. }) => {
                return Err(crate::kube::KubeError::Timeout {
                    what,
                    seconds: timeout.as_secs(),
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        }
        if failed_mount(kube, ns, pod).await {
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= MOUNT_FAILURE_GRACE {
                return Err(StepError::problem(format!(
                    "pod {ns}/{pod} has failed to mount its secrets for {}s (FailedMount events)",
                    since.elapsed().as_secs()
                )));
            }
        }
    }
}

/// Whether the pod has a FailedMount warning.
async fn failed_mount(kube: &kube::Client, ns: &str, pod: &str) -> bool {
    facts::warning_events(kube, ns, pod, Some("FailedMount"))
        .await
        .is_ok_and(|w| !w.is_empty())
}

/// Every expected file must be listed with a version.
pub fn check_objects(status: &Value, expected: &[String]) -> Result<Vec<String>, StepError> {
    let objects: Vec<(String, String)> = status["objects"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|o| {
                    (
                        o["id"].as_str().unwrap_or("").to_string(),
                        o["version"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| !objects.iter().any(|(id, _)| id == *e))
        .collect();
    if !missing.is_empty() {
        return Err(StepError::problem(format!(
            "the mount is missing {}",
            missing
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint("check the SecretProviderClass objects and the provider's logs"));
    }
    Ok(objects
        .into_iter()
        .map(|(id, v)| format!("{id}@{v}"))
        .collect())
}

/// Looks at the SecretProviderClass, the association, the CSIDriver and the pod's events, and
/// turns a failed verification into one that names the likely cause.
pub async fn explain(
    aws: Option<&Clients>,
    kube: &kube::Client,
    w: Subject<'_>,
    pod: &str,
    err: StepError,
) -> StepError {
    let observed = facts::verify_facts(aws, kube, w, pod).await;
    let (cause, hint) = diagnose(&observed, w);
    let mut message = format!("verification failed for pod {}/{pod}: {cause}", w.namespace);
    if let Some(summary) = summarize_warnings(&observed.warnings) {
        message.push_str("; ");
        message.push_str(&summary);
    }
    StepError::Problem {
        message,
        hint: Some(hint),
        source: Some(Box::new(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_must_list_every_expected_file() {
        let status =
            serde_json::json!({"mounted": true, "objects": [{"id": "db", "version": "v1"}]});
        assert_eq!(
            check_objects(&status, &["db".into()]).expect("ok"),
            ["db@v1"]
        );
        assert!(check_objects(&status, &["db".into(), "api".into()]).is_err());
    }

    #[test]
    fn a_leftover_pod_goes_first_and_a_kept_one_stays() {
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}});
        let mut sample = Sample {
            pod,
            namespace: "n".into(),
            name: "p".into(),
            spc: "s".into(),
            expected: vec![],
            keep: false,
        };
        let fresh = plan(&sample, false);
        assert_eq!(fresh.setup.len(), 1);
        assert_eq!(fresh.teardown.len(), 1);
        let again = plan(&sample, true);
        assert!(matches!(again.setup[0], Op::Delete { .. }));
        assert!(matches!(again.setup[2], Op::Apply { .. }));
        sample.keep = true;
        assert!(plan(&sample, false).teardown.is_empty());
    }
}
