//! Waits with timeouts: CRDs Established, DaemonSets and Deployments rolled out, pods running.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::runtime::wait::{Condition, await_condition, conditions};

use super::KubeError;

async fn wait_for<K, C>(
    api: Api<K>,
    name: &str,
    cond: C,
    what: String,
    timeout: Duration,
) -> Result<Option<K>, KubeError>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    C: Condition<K>,
{
    match tokio::time::timeout(timeout, await_condition(api, name, cond)).await {
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(source)) => Err(KubeError::Wait { what, source }),
        Err(_) => Err(KubeError::Timeout {
            what,
            seconds: timeout.as_secs(),
        }),
    }
}

/// Waits until the CRD is Established.
pub async fn crd_established(
    client: &kube::Client,
    name: &str,
    timeout: Duration,
) -> Result<(), KubeError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_for(
        api,
        name,
        conditions::is_crd_established(),
        format!("CRD {name} to be Established"),
        timeout,
    )
    .await?;
    Ok(())
}

/// Whether a DaemonSet has rolled out: the controller saw the latest spec and every scheduled
/// pod is updated and available.
pub fn daemonset_rolled_out(ds: &DaemonSet) -> bool {
    let generation = ds.metadata.generation.unwrap_or(0);
    let Some(status) = &ds.status else {
        return false;
    };
    status.observed_generation.unwrap_or(0) >= generation
        && status.updated_number_scheduled.unwrap_or(0) >= status.desired_number_scheduled
        && status.number_available.unwrap_or(0) >= status.desired_number_scheduled
}

/// Waits until the DaemonSet rolled out; returns how many nodes it runs on.
pub async fn daemonset_ready(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<i32, KubeError> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    let cond = |ds: Option<&DaemonSet>| ds.is_some_and(daemonset_rolled_out);
    let ds = wait_for(
        api,
        name,
        cond,
        format!("DaemonSet {namespace}/{name} to roll out"),
        timeout,
    )
    .await?;
    Ok(ds
        .and_then(|d| d.status)
        .map_or(0, |s| s.desired_number_scheduled))
}

/// Whether a Deployment has rolled out: the controller saw the latest spec, every replica is
/// updated, and as many are available as it asks for.
pub fn deployment_rolled_out(d: &Deployment) -> bool {
    let generation = d.metadata.generation.unwrap_or(0);
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return false;
    };
    status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) >= wanted
        && status.available_replicas.unwrap_or(0) >= wanted
}

/// Waits until the Deployment rolled out.
pub async fn deployment_ready(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), KubeError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let cond = |d: Option<&Deployment>| d.is_some_and(deployment_rolled_out);
    wait_for(
        api,
        name,
        cond,
        format!("Deployment {namespace}/{name} to roll out"),
        timeout,
    )
    .await?;
    Ok(())
}

/// Waits until the pod runs (or has finished successfully).
pub async fn pod_running(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Option<Pod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let cond = |p: Option<&Pod>| {
        conditions::is_pod_running().matches_object(p)
            || p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Succeeded")
    };
    wait_for(
        api,
        name,
        cond,
        format!("pod {namespace}/{name} to run"),
        timeout,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetStatus;

    #[test]
    fn a_deployment_rolls_out_when_every_replica_is_updated_and_available() {
        use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
        let mut d = Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        };
        d.metadata.generation = Some(3);
        assert!(!deployment_rolled_out(&d), "no status yet");
        d.status = Some(DeploymentStatus {
            observed_generation: Some(3),
            updated_replicas: Some(2),
            available_replicas: Some(1),
            ..Default::default()
        });
        assert!(!deployment_rolled_out(&d), "one of two available");
        d.status.as_mut().unwrap().available_replicas = Some(2);
        assert!(deployment_rolled_out(&d));
        d.metadata.generation = Some(4);
        assert!(!deployment_rolled_out(&d), "an older generation's status");
    }

    #[test]
    fn rollout_needs_the_latest_generation_and_available_pods() {
        let mut ds = DaemonSet::default();
        ds.metadata.generation = Some(2);
        assert!(!daemonset_rolled_out(&ds));
        ds.status = Some(DaemonSetStatus {
            observed_generation: Some(2),
            desired_number_scheduled: 3,
            updated_number_scheduled: Some(3),
            number_available: Some(2),
            ..Default::default()
        });
        assert!(!daemonset_rolled_out(&ds));
        if let Some(s) = ds.status.as_mut() {
            s.number_available = Some(3);
        }
        assert!(daemonset_rolled_out(&ds));
        if let Some(s) = ds.status.as_mut() {
            s.observed_generation = Some(1);
        }
        assert!(!daemonset_rolled_out(&ds));
    }
}
