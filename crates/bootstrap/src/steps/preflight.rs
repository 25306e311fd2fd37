//! Preflight: who is calling, is the cluster there and ACTIVE, and a Kubernetes client for it.

use k8s_openapi::api::core::v1::Node;
use kube::Api;

use super::{ClusterFacts, Env, StepError};
use crate::aws::{ErrorKind, classify, token};
use crate::kube::client::{self, ClusterEndpoint, Source};
use crate::plan::{Action, Change, StepOutcome};

/// The oldest Kubernetes minor the Secrets Store CSI Driver v1.6.0 supports.
pub const MIN_KUBERNETES_MINOR: u32 = 30;

pub async fn run(env: &Env) -> Result<StepOutcome, StepError> {
    let Some(aws) = &env.aws else {
        return Ok(StepOutcome::with(vec![
            Change::new(Action::Check, "caller identity")
                .call("sts:GetCallerIdentity")
                .note("not called: no credentials, planning for an empty account"),
            Change::new(
                Action::Check,
                format!("EKS cluster {}", env.settings.cluster),
            )
            .call(format!("eks:DescribeCluster name={}", env.settings.cluster))
            .note("assumed ACTIVE with a supported Kubernetes version"),
        ])
        .note("offline plan: nothing was read from AWS or Kubernetes"));
    };
    let identity = aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify("get the caller identity of", "the AWS credentials", e))?;
    let account = identity.account().unwrap_or_default().to_string();
    let _ = env.facts.account.set(account.clone());
    let cluster = describe_cluster(env).await?;
    check_association(env, &account).await?;
    let (kube, source) = kube_client(env, &cluster).await?;
    let nodes = check_nodes(&kube, &cluster.name).await?;
    let _ = env.facts.kube.set(kube);
    let via = match source {
        Source::Kubeconfig { context } => format!("kubeconfig context {context}"),
        Source::EksToken => "an EKS token signed for the caller (no kubeconfig context)".into(),
    };
    let outcome = StepOutcome::with(vec![
        Change::new(
            Action::Check,
            format!("caller {}", identity.arn().unwrap_or("?")),
        ),
        Change::new(Action::Check, format!("EKS cluster {}", cluster.name)).note(format!(
            "ACTIVE, Kubernetes {}{}, {nodes} EC2 node(s), reached through {via}",
            cluster.version,
            if cluster.auto_mode { ", Auto Mode" } else { "" }
        )),
    ]);
    let _ = env.facts.cluster.set(cluster);
    Ok(outcome)
}

pub(crate) async fn describe_cluster(env: &Env) -> Result<ClusterFacts, StepError> {
    let Some(aws) = &env.aws else {
        return Err(StepError::problem("no AWS access"));
    };
    let name = &env.settings.cluster;
    let out = match aws.eks.describe_cluster().name(name).send().await {
        Ok(out) => out,
        Err(e) => {
            let err = classify("describe", format!("EKS cluster {name}"), e);
            if !err.is(ErrorKind::NotFound) {
                return Err(err.into());
            }
            return Err(unknown_cluster(env, name).await);
        }
    };
    let cluster = out
        .cluster()
        .ok_or_else(|| StepError::problem(format!("EKS returned no cluster for {name}")))?;
    let status = cluster
        .status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    if status != "ACTIVE" {
        return Err(
            StepError::problem(format!("EKS cluster {name} is {status}, not ACTIVE")).with_hint(
                "wait until `aws eks describe-cluster --name NAME` reports ACTIVE, then run again",
            ),
        );
    }
    let version = cluster.version().unwrap_or_default().to_string();
    check_version(name, &version)?;
    Ok(ClusterFacts {
        name: name.clone(),
        arn: cluster.arn().unwrap_or_default().to_string(),
        version,
        endpoint: cluster.endpoint().unwrap_or_default().to_string(),
        certificate_authority: cluster
            .certificate_authority()
            .and_then(|c| c.data())
            .unwrap_or_default()
            .to_string(),
        auto_mode: cluster
            .compute_config()
            .and_then(|c| c.enabled())
            .unwrap_or(false),
    })
}

/// The error for a cluster that does not exist, naming the ones that do.
async fn unknown_cluster(env: &Env, name: &str) -> StepError {
    let message = format!("EKS cluster {name} was not found in region {}", env.region);
    let Some(aws) = &env.aws else {
        return StepError::problem(message);
    };
    let mut names = Vec::new();
    let mut pages = aws.eks.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => names.extend(page.clusters().iter().cloned()),
            Err(_) => break,
        }
    }
    let hint = if names.is_empty() {
        format!(
            "there are no EKS clusters in {}; check --region and --profile",
            env.region
        )
    } else {
        format!("clusters in {}: {}", env.region, names.join(", "))
    };
    StepError::problem(message).with_hint(hint)
}

/// Fails early (before any write) when the service account is already associated with a role
/// other than bootstrap's, unless `--force`.
async fn check_association(env: &Env, account: &str) -> Result<(), StepError> {
    let Some(aws) = &env.aws else { return Ok(()) };
    let s = &env.settings;
    if s.force {
        return Ok(());
    }
    let ours = format!(
        "arn:aws:iam::{account}:role/{}",
        super::iam_role::role_name(&s.cluster, &s.namespace, &s.service_account)
    );
    let listed = aws
        .eks
        .list_pod_identity_associations()
        .cluster_name(&s.cluster)
        .namespace(&s.namespace)
        .service_account(&s.service_account)
        .send()
        .await
        .map_err(|e| {
            classify(
                "list the Pod Identity associations of",
                format!("{}/{}", s.namespace, s.service_account),
                e,
            )
        })?;
    let Some(id) = listed
        .associations()
        .first()
        .and_then(|a| a.association_id())
    else {
        return Ok(());
    };
    let described = aws
        .eks
        .describe_pod_identity_association()
        .cluster_name(&s.cluster)
        .association_id(id)
        .send()
        .await
        .map_err(|e| {
            classify(
                "describe",
                format!(
                    "Pod Identity association {}/{}",
                    s.namespace, s.service_account
                ),
                e,
            )
        })?;
    match described.association().and_then(|a| a.role_arn()) {
        Some(role) if role != ours => Err(super::association::conflict(
            &s.namespace,
            &s.service_account,
            role,
        )),
        _ => Ok(()),
    }
}

/// Rejects Kubernetes versions the driver does not support.
pub fn check_version(cluster: &str, version: &str) -> Result<(), StepError> {
    let minor = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if version.starts_with("1.") && m >= MIN_KUBERNETES_MINOR => Ok(()),
        _ => Err(StepError::problem(format!(
            "EKS cluster {cluster} runs Kubernetes {version:?}; the Secrets Store CSI Driver v1.6.0 needs 1.{MIN_KUBERNETES_MINOR} or newer"
        ))
        .with_hint("upgrade the cluster (aws eks update-cluster-version), then run again")),
    }
}

async fn kube_client(
    env: &Env,
    cluster: &ClusterFacts,
) -> Result<(kube::Client, Source), StepError> {
    let endpoint = ClusterEndpoint {
        name: cluster.name.clone(),
        arn: cluster.arn.clone(),
        endpoint: cluster.endpoint.clone(),
        certificate_authority: cluster.certificate_authority.clone(),
    };
    if let Some(found) = client::from_kubeconfig(&endpoint).await? {
        return Ok(found);
    }
    let Some(aws) = &env.aws else {
        return Err(StepError::problem("no AWS access"));
    };
    let token = token::eks_token(&aws.config, &aws.region, &cluster.name)
        .await
        .map_err(|e| {
            StepError::caused_by(
                format!("failed to authenticate to EKS cluster {}", cluster.name),
                e,
            )
        })?;
    Ok((client::from_endpoint(&endpoint, token)?, Source::EksToken))
}

/// Counts nodes that can run DaemonSets: EC2 nodes, not Fargate.
async fn check_nodes(kube: &kube::Client, cluster: &str) -> Result<usize, StepError> {
    let nodes: Api<Node> = Api::all(kube.clone());
    let list =
        nodes
            .list(&Default::default())
            .await
            .map_err(|source| crate::kube::KubeError::Api {
                action: "list nodes of",
                resource: format!("cluster {cluster}"),
                source,
            })?;
    let fargate = |n: &Node| {
        n.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("eks.amazonaws.com/compute-type"))
            .map(String::as_str)
            == Some("fargate")
    };
    let ec2 = list.items.iter().filter(|n| !fargate(n)).count();
    if ec2 == 0 {
        let fargate_count = list.items.len();
        return Err(StepError::problem(format!(
            "EKS cluster {cluster} has no EC2 nodes ({fargate_count} Fargate node(s)); the CSI driver and the Pod Identity agent run as DaemonSets on EC2 nodes"
        ))
        .with_hint("add a managed node group or Auto Mode node pool, then run again"));
    }
    Ok(ec2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_versions() {
        assert!(check_version("c", "1.30").is_ok());
        assert!(check_version("c", "1.34").is_ok());
        for bad in ["1.29", "1.9", "2", "", "x.y"] {
            let err = check_version("c", bad).expect_err(bad);
            assert!(err.hint().is_some());
        }
    }
}
