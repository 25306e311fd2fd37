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
    let result = match result {
        Ok(versions) => Ok(versions),
        Err(err) => Err(explain(kube, &ns, &name, err).await),
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
    crate::kube::wait::pod_running(kube, ns, pod, timeout).await?;
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

/// Adds what the pod's events say, and a likely cause, to a failed verification.
async fn explain(kube: &kube::Client, ns: &str, pod: &str, err: StepError) -> StepError {
    let events: Api<Event> = Api::namespaced(kube.clone(), ns);
    let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    let messages: Vec<String> = events
        .list(&params)
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .filter_map(|e| e.message)
                .collect()
        })
        .unwrap_or_default();
    let joined = messages.join(" | ");
    let mut hint = likely_cause(&joined);
    let drivers: Api<k8s_openapi::api::storage::v1::CSIDriver> = Api::all(kube.clone());
    if let Ok(Some(driver)) = drivers
        .get_opt(crate::render::csi_driver::DRIVER_NAME)
        .await
    {
        let audiences: Vec<String> = driver
            .spec
            .token_requests
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.audience)
            .collect();
        if !audiences.iter().any(|a| a == "pods.eks.amazonaws.com") {
            hint = "the CSIDriver does not request a token for audience pods.eks.amazonaws.com, \
                    so Pod Identity cannot work: add it to its tokenRequests"
                .into();
        }
    }
    let message = if joined.is_empty() {
        format!("verification failed for pod {ns}/{pod}")
    } else {
        format!("verification failed for pod {ns}/{pod}; its warnings: {joined}")
    };
    StepError::Problem {
        message,
        hint: Some(hint),
        source: Some(Box::new(err)),
    }
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

    #[test]
    fn causes_from_events() {
        assert!(likely_cause("provider not found").contains("socket"));
        assert!(likely_cause("failed to assume role: credentials").contains("association"));
        assert!(likely_cause("").contains("describe the pod"));
    }
}
