//! Verify: a sample pod mounts the SecretProviderClass; its SecretProviderClassPodStatus must
//! say mounted, with every expected object and its version. Values are never read.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use super::{Env, StepError, workload};
use crate::kube::apply;
use crate::plan::{Action, Change, StepOutcome};
use crate::render::workload::render_sample_pod;

pub async fn run(env: &Env) -> Result<StepOutcome, StepError> {
    let values = workload::values(env);
    let mut pod = render_sample_pod(&values)?;
    let (ns, spc) = (values.namespace.clone(), values.spc_name());
    let check = Change::new(Action::Check, format!("sample pod {ns}/{}", values.sample_pod_name()))
        .call("kubernetes: create the pod, wait until it runs, read its SecretProviderClassPodStatus, delete it")
        .document(pod.clone());
    let (Some(kube), false) = (env.kube(), env.dry_run()) else {
        return Ok(StepOutcome::with(vec![check.note("not run in a dry run")]));
    };
    let name = format!(
        "{}-{}",
        values
            .sample_pod_name()
            .chars()
            .take(56)
            .collect::<String>(),
        suffix()
    );
    pod["metadata"]["name"] = Value::String(name.clone());
    apply::apply(kube, &pod).await?;
    let result = observe_mount(
        kube,
        &ns,
        &name,
        &spc,
        &values
            .objects
            .iter()
            .map(|o| o.object_alias.clone())
            .collect::<Vec<_>>(),
        env.remaining(),
    )
    .await;
    let subject = Subject {
        cluster: &env.settings.cluster,
        namespace: &ns,
        service_account: &values.service_account,
        spc: &spc,
    };
    let result = match result {
        Ok(versions) => Ok(versions),
        Err(err) => Err(explain(env, kube, subject, &name, err).await),
    };
    if !env.settings.keep_sample {
        apply::delete(kube, &pod).await?;
    }
    let versions = result?;
    let mut change = Change::new(Action::Check, format!("sample pod {ns}/{name}"))
        .note(format!("mounted {}", versions.join(", ")));
    if env.settings.keep_sample {
        change = change.note(format!(
            "mounted {}; pod kept (--keep-sample)",
            versions.join(", ")
        ));
    }
    Ok(StepOutcome::with(vec![change]))
}

fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:05x}", nanos & 0xfffff)
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
        let found =
            api.get_opt(&status_name)
                .await
                .map_err(|source| crate::kube::KubeError::Api {
                    action: "read",
                    resource: format!("SecretProviderClassPodStatus/{ns}/{status_name}"),
                    source,
                })?;
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
    let events: Api<Event> = Api::namespaced(kube.clone(), ns);
    let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    events.list(&params).await.is_ok_and(|l| {
        l.items.iter().any(|e| {
            e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("FailedMount")
        })
    })
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

/// What a failed verification looked at to name the likely cause. `None` means "could not
/// tell" (not readable, or no AWS access).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Observed {
    /// The SecretProviderClass's `usePodIdentity` parameter (`Some(None)`: not set).
    pub use_pod_identity: Option<Option<String>>,
    /// Whether a Pod Identity association exists for the service account.
    pub association: Option<bool>,
    /// The audiences the CSIDriver requests tokens for.
    pub audiences: Option<Vec<String>>,
    /// The pod's warning events, deduplicated, oldest first.
    pub warnings: Vec<String>,
}

/// The workload a verification was about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub cluster: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub spc: &'a str,
}

/// The likely cause (a statement of fact when one was observed) and what to do about it.
/// Checked in order: the SecretProviderClass, the association, the token audiences, then the
/// pod's warning events.
pub fn diagnose(o: &Observed, w: Subject<'_>) -> (String, String) {
    let (ns, sa, spc) = (w.namespace, w.service_account, w.spc);
    if let Some(value) = &o.use_pod_identity
        && value.as_deref() != Some("true")
    {
        let is = value
            .as_deref()
            .map_or("not set".to_string(), |v| format!("{v:?}"));
        return (
            format!(
                "SecretProviderClass {ns}/{spc} does not use Pod Identity (usePodIdentity is {is}, must be \"true\"), so the provider fell back to IRSA"
            ),
            format!(
                "set parameters.usePodIdentity: \"true\" in SecretProviderClass {ns}/{spc}; it was not made by bootstrap, so bootstrap left it as is (delete it and re-run bootstrap up to have bootstrap create it)"
            ),
        );
    }
    if o.association == Some(false) {
        return (
            format!(
                "service account {ns}/{sa} has no Pod Identity association on cluster {}, so the Pod Identity agent refuses its token",
                w.cluster
            ),
            format!(
                "re-run bootstrap up (it creates the association), or check who deleted it: aws eks list-pod-identity-associations --cluster-name {} --namespace {ns} --service-account {sa}",
                w.cluster
            ),
        );
    }
    if let Some(audiences) = &o.audiences
        && !audiences.iter().any(|a| a == "pods.eks.amazonaws.com")
    {
        return (
            format!(
                "the CSIDriver {} does not request a token for audience pods.eks.amazonaws.com, so Pod Identity cannot work",
                crate::render::csi_driver::DRIVER_NAME
            ),
            "add pods.eks.amazonaws.com to the CSIDriver's tokenRequests (bootstrap up does, unless the driver was installed by someone else)".into(),
        );
    }
    (
        "the pod did not mount its secrets".into(),
        likely_cause(&o.warnings.join(" | ")),
    )
}

/// Looks at the SecretProviderClass, the association, the CSIDriver and the pod's events, and
/// turns a failed verification into one that names the likely cause.
async fn explain(
    env: &Env,
    kube: &kube::Client,
    w: Subject<'_>,
    pod: &str,
    err: StepError,
) -> StepError {
    let observed = Observed {
        use_pod_identity: spc_use_pod_identity(kube, w.namespace, w.spc).await,
        association: association_exists(env, w).await,
        audiences: driver_audiences(kube).await,
        warnings: warnings(kube, w.namespace, pod).await,
    };
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

/// The pod's warning messages, oldest first, without repeats.
async fn warnings(kube: &kube::Client, ns: &str, pod: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(kube.clone(), ns);
    let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    let Ok(list) = events.list(&params).await else {
        return Vec::new();
    };
    let mut found: Vec<(Option<String>, String)> = list
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| {
            let when = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                .or_else(|| {
                    e.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                });
            e.message.map(|m| (when, m))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut messages: Vec<String> = Vec::new();
    for (_, message) in found {
        if !messages.contains(&message) {
            messages.push(message);
        }
    }
    messages
}

/// The latest warning, and how many there were: a retried mount repeats itself (with new
/// request ids), so one is enough to read.
pub fn summarize_warnings(warnings: &[String]) -> Option<String> {
    let latest = warnings.last()?;
    Some(match warnings.len() {
        1 => format!("its warning: {latest}"),
        n => format!("its latest warning (of {n}): {latest}"),
    })
}

async fn spc_use_pod_identity(kube: &kube::Client, ns: &str, spc: &str) -> Option<Option<String>> {
    let gvk = GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasses");
    let api: Api<DynamicObject> = Api::namespaced_with(kube.clone(), ns, &ar);
    let found = api.get_opt(spc).await.ok()??;
    let value = found
        .data
        .pointer("/spec/parameters/usePodIdentity")
        .cloned();
    Some(value.map(|v| match v {
        Value::String(s) => s,
        other => other.to_string(),
    }))
}

async fn association_exists(env: &Env, w: Subject<'_>) -> Option<bool> {
    let aws = env.aws.as_ref()?;
    let listed = aws
        .eks
        .list_pod_identity_associations()
        .cluster_name(w.cluster)
        .namespace(w.namespace)
        .service_account(w.service_account)
        .send()
        .await
        .ok()?;
    Some(!listed.associations().is_empty())
}

async fn driver_audiences(kube: &kube::Client) -> Option<Vec<String>> {
    let drivers: Api<k8s_openapi::api::storage::v1::CSIDriver> = Api::all(kube.clone());
    let driver = drivers
        .get_opt(crate::render::csi_driver::DRIVER_NAME)
        .await
        .ok()??;
    Some(
        driver
            .spec
            .token_requests
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.audience)
            .collect(),
    )
}

/// A likely cause from the pod's warning events.
pub fn likely_cause(events: &str) -> String {
    let e = events.to_ascii_lowercase();
    if e.contains("provider not found") || e.contains("aws.sock") {
        "the driver cannot reach the AWS provider's socket: check that the provider DaemonSet runs and uses the driver's providers directory".into()
    } else if e.contains("pods.eks.amazonaws.com") || e.contains("token") && e.contains("audience")
    {
        "no token for audience pods.eks.amazonaws.com reached the provider: the CSIDriver's tokenRequests must list it".into()
    } else if e.contains("usepodidentity") {
        "the SecretProviderClass's usePodIdentity parameter is invalid: it must be \"true\"".into()
    } else if e.contains("association") || e.contains("assumerole") || e.contains("credentials") {
        "the Pod Identity association or the agent is not working: check the association for the service account and the eks-pod-identity-agent pods".into()
    } else if e.contains("accessdenied") || e.contains("not authorized") {
        "the role cannot read the secret: check its inline policy".into()
    } else {
        "describe the pod (kubectl describe pod) and read the CSI driver and provider logs".into()
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

    const SUBJECT: Subject<'static> = Subject {
        cluster: "demo",
        namespace: "ns",
        service_account: "app",
        spc: "bootstrap-app",
    };

    #[test]
    fn observed_misconfigurations_come_before_events() {
        let healthy = Observed {
            use_pod_identity: Some(Some("true".into())),
            association: Some(true),
            audiences: Some(vec![
                "sts.amazonaws.com".into(),
                "pods.eks.amazonaws.com".into(),
            ]),
            warnings: vec!["MountVolume.SetUp failed: provider not found".into()],
        };
        let (cause, hint) = diagnose(&healthy, SUBJECT);
        assert_eq!(cause, "the pod did not mount its secrets");
        assert!(hint.contains("socket"), "{hint}");

        let no_spc_flag = Observed {
            use_pod_identity: Some(None),
            association: Some(false),
            ..healthy.clone()
        };
        let (cause, hint) = diagnose(&no_spc_flag, SUBJECT);
        assert!(
            cause.starts_with("SecretProviderClass ns/bootstrap-app does not use Pod Identity (usePodIdentity is not set"),
            "{cause}"
        );
        assert!(hint.contains("usePodIdentity: \"true\""), "{hint}");
        let wrong = Observed {
            use_pod_identity: Some(Some("false".into())),
            ..healthy.clone()
        };
        assert!(
            diagnose(&wrong, SUBJECT)
                .0
                .contains("usePodIdentity is \"false\"")
        );

        let no_association = Observed {
            association: Some(false),
            ..healthy.clone()
        };
        let (cause, hint) = diagnose(&no_association, SUBJECT);
        assert_eq!(
            cause,
            "service account ns/app has no Pod Identity association on cluster demo, so the Pod Identity agent refuses its token"
        );
        assert!(hint.contains("bootstrap up"), "{hint}");

        let no_audience = Observed {
            audiences: Some(vec!["sts.amazonaws.com".into()]),
            ..healthy.clone()
        };
        assert!(
            diagnose(&no_audience, SUBJECT)
                .0
                .contains("pods.eks.amazonaws.com")
        );

        // Nothing could be read: fall back to the events.
        let unknown = Observed {
            warnings: vec!["failed to assume role: credentials".into()],
            ..Observed::default()
        };
        assert!(diagnose(&unknown, SUBJECT).1.contains("association"));
    }

    #[test]
    fn only_the_latest_warning_is_quoted() {
        assert_eq!(summarize_warnings(&[]), None);
        assert_eq!(
            summarize_warnings(&["a".into()]).as_deref(),
            Some("its warning: a")
        );
        assert_eq!(
            summarize_warnings(&["a".into(), "b".into()]).as_deref(),
            Some("its latest warning (of 2): b")
        );
    }

    #[test]
    fn causes_from_events() {
        assert!(likely_cause("provider not found").contains("socket"));
        assert!(likely_cause("failed to assume role: credentials").contains("association"));
        assert!(likely_cause("").contains("describe the pod"));
    }
}
