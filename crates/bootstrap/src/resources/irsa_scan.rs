//! What `migrate` reads from the cluster (read-only): service accounts annotated with an IAM
//! role, `aws` SecretProviderClasses, and every workload that mounts SecretProviderClasses —
//! running pods and the pod templates of Deployments, StatefulSets, DaemonSets, Jobs and
//! CronJobs, so a Deployment scaled to zero or a CronJob between runs is found too. A list
//! call that fails stops the scan (nothing is guessed from a partial view).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use super::{FoundSpc, FoundWorkload, Scan};
use crate::error::StepError;
use crate::kube::KubeError;
use bootstrap_common::names::IRSA_ROLE_ANNOTATION;

fn spc_api(kube: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass");
    Api::all_with(
        kube.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasses"),
    )
}

/// The files a SecretProviderClass's objects mount, where they can be named (aliases).
fn spc_files(objects: &str) -> Vec<String> {
    let parsed: Vec<Value> = serde_saphyr::from_str(objects).unwrap_or_default();
    parsed
        .iter()
        .filter_map(|o| o["objectAlias"].as_str().map(str::to_string))
        .collect()
}

fn list_error(what: &'static str) -> impl Fn(kube::Error) -> StepError {
    move |source| {
        KubeError::Api {
            action: "list",
            resource: what.to_string(),
            source,
        }
        .into()
    }
}

/// The SecretProviderClasses a pod spec mounts through the Secrets Store CSI driver.
fn mounted_spcs(spec: &PodSpec) -> Vec<String> {
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.csi.as_ref())
        .filter(|c| c.driver == crate::render::csi_driver::DRIVER_NAME)
        .filter_map(|c| {
            c.volume_attributes
                .as_ref()
                .and_then(|a| a.get("secretProviderClass"))
                .cloned()
        })
        .collect()
}

/// A workload from a pod spec, when it mounts any SecretProviderClass.
fn workload(
    kind: &'static str,
    meta: &kube::api::ObjectMeta,
    spec: Option<&PodSpec>,
    node_problem: impl Fn(&PodSpec) -> Option<String>,
) -> Option<FoundWorkload> {
    let spec = spec?;
    let spcs = mounted_spcs(spec);
    if spcs.is_empty() {
        return None;
    }
    #[allow(deprecated)] // `serviceAccount` is the deprecated alias the apiserver still honours
    let service_account = spec
        .service_account_name
        .clone()
        .or_else(|| spec.service_account.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    Some(FoundWorkload {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        service_account,
        spcs,
        node_problem: node_problem(spec),
    })
}

/// Why a pod template cannot use Pod Identity, from its node selector (Windows).
fn template_problem(spec: &PodSpec) -> Option<String> {
    let selector = spec.node_selector.as_ref()?;
    (selector.get("kubernetes.io/os").map(String::as_str) == Some("windows"))
        .then(|| "Windows nodes (its nodeSelector)".to_string())
}

/// Every object of one workload controller kind across namespaces, as its metadata and pod
/// template; a failed list names the kind (`plural`).
async fn templates<K>(
    kube: &kube::Client,
    lp: &ListParams,
    plural: &'static str,
    template: impl Fn(K) -> Option<PodSpec>,
) -> Result<Vec<(kube::api::ObjectMeta, Option<PodSpec>)>, StepError>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(kube.clone());
    let items = api.list(lp).await.map_err(list_error(plural))?.items;
    let split = |mut o: K| (std::mem::take(o.meta_mut()), template(o));
    Ok(items.into_iter().map(split).collect())
}

/// Reads what migration needs: annotated service accounts, `aws` SPCs, and the pods and
/// workload controllers that mount SecretProviderClasses, with their nodes. Read-only.
pub async fn scan(kube: &kube::Client) -> Result<Scan, StepError> {
    let lp = ListParams::default();
    let mut out = Scan::default();
    let sas: Api<ServiceAccount> = Api::all(kube.clone());
    for sa in sas
        .list(&lp)
        .await
        .map_err(list_error("service accounts"))?
        .items
    {
        if let Some(role) = sa
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IRSA_ROLE_ANNOTATION))
        {
            out.annotated.insert(
                (
                    sa.metadata.namespace.clone().unwrap_or_default(),
                    sa.metadata.name.clone().unwrap_or_default(),
                ),
                role.clone(),
            );
        }
    }
    let spcs = match spc_api(kube).list(&lp).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
        Err(e) => return Err(list_error("SecretProviderClasses")(e)),
    };
    for spc in spcs {
        if spc.data["spec"]["provider"] != "aws" {
            continue;
        }
        let params = &spc.data["spec"]["parameters"];
        out.spcs.push(FoundSpc {
            namespace: spc.metadata.namespace.clone().unwrap_or_default(),
            name: spc.metadata.name.clone().unwrap_or_default(),
            use_pod_identity: params["usePodIdentity"].as_str().map(str::to_string),
            files: spc_files(params["objects"].as_str().unwrap_or("")),
        });
    }
    let nodes: Api<Node> = Api::all(kube.clone());
    let node_list = nodes.list(&lp).await.map_err(list_error("nodes"))?.items;
    let node_problem = |spec: &PodSpec| -> Option<String> {
        let name = spec.node_name.as_deref()?;
        let node = node_list
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))?;
        let labels = node.metadata.labels.as_ref()?;
        if labels
            .get("eks.amazonaws.com/compute-type")
            .map(String::as_str)
            == Some("fargate")
        {
            return Some(format!("Fargate node {name}"));
        }
        if labels.get("kubernetes.io/os").map(String::as_str) == Some("windows") {
            return Some(format!("Windows node {name}"));
        }
        None
    };
    let pods: Api<Pod> = Api::all(kube.clone());
    for pod in pods.list(&lp).await.map_err(list_error("pods"))?.items {
        out.workloads.extend(workload(
            "Pod",
            &pod.metadata,
            pod.spec.as_ref(),
            node_problem,
        ));
    }
    let controllers = [
        (
            "Deployment",
            templates(kube, &lp, "Deployments", |d: Deployment| {
                d.spec?.template.spec
            })
            .await?,
        ),
        (
            "StatefulSet",
            templates(kube, &lp, "StatefulSets", |s: StatefulSet| {
                s.spec?.template.spec
            })
            .await?,
        ),
        (
            "DaemonSet",
            templates(kube, &lp, "DaemonSets", |d: DaemonSet| {
                d.spec?.template.spec
            })
            .await?,
        ),
        (
            "Job",
            templates(kube, &lp, "Jobs", |j: Job| j.spec?.template.spec).await?,
        ),
        (
            "CronJob",
            templates(kube, &lp, "CronJobs", |c: CronJob| {
                c.spec?.job_template.spec?.template.spec
            })
            .await?,
        ),
    ];
    for (kind, found) in controllers {
        for (meta, spec) in &found {
            out.workloads
                .extend(workload(kind, meta, spec.as_ref(), template_problem));
        }
    }
    Ok(out)
}
