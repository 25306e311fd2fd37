//! The target of a command: who is calling, the EKS cluster (ACTIVE, supported version,
//! endpoint, CA), and a Kubernetes client for it — or, offline, placeholders for an empty
//! account. Every command starts here; everything after works on this value.

use k8s_openapi::api::core::v1::Node;
use kube::Api;

use crate::aws::{self, Clients, ConfigError, ErrorKind, classify, token};
use crate::error::StepError;
use crate::kube::client::{self, ClusterEndpoint, Source};
use crate::plan::{Action, Change, StepOutcome};
use crate::render::metadata_label;

/// The oldest Kubernetes minor the Secrets Store CSI Driver v1.6.0 supports.
pub const MIN_KUBERNETES_MINOR: u32 = 30;
/// Placeholders used in plans made without credentials.
pub const OFFLINE_ACCOUNT: &str = "<account-id>";
pub const OFFLINE_REGION: &str = "<region>";

/// What preflight learned about the cluster.
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    pub name: String,
    pub arn: String,
    pub version: String,
    pub endpoint: String,
    pub certificate_authority: String,
    pub auto_mode: bool,
    /// The cluster's OIDC issuer URL (what IRSA roles trust), when it has one.
    pub oidc_issuer: Option<String>,
    /// The nodes preflight listed (empty offline).
    pub nodes: Vec<NodePlatform>,
}

/// What the provider image check needs to know about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlatform {
    pub name: String,
    /// `kubernetes.io/os` (empty when unlabelled).
    pub os: String,
    /// `kubernetes.io/arch` (empty when unlabelled).
    pub arch: String,
    /// `eks.amazonaws.com/compute-type=fargate`: runs no DaemonSet.
    pub fargate: bool,
}

impl NodePlatform {
    /// From a Node's labels.
    pub fn of(node: &Node) -> Self {
        let label = |k: &str| {
            metadata_label(&node.metadata, k)
                .unwrap_or_default()
                .to_string()
        };
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            os: label("kubernetes.io/os"),
            arch: label("kubernetes.io/arch"),
            fargate: label("eks.amazonaws.com/compute-type") == "fargate",
        }
    }

    /// A Linux EC2 node: where the provider DaemonSet runs and must pull its image.
    pub fn runs_linux_daemonsets(&self) -> bool {
        !self.fargate && self.os == "linux"
    }
}

/// Everything a command works against.
#[derive(Clone)]
pub struct Target {
    pub account: String,
    pub region: String,
    pub cluster: ClusterFacts,
    pub access: Access,
}

/// How a command reaches the cluster's account and API.
#[derive(Clone)]
pub enum Access {
    /// An offline plan (a dry run with no region or no credentials): nothing is read, an empty
    /// account is assumed.
    Offline,
    /// Preflight passed: the AWS clients and the cluster's Kubernetes client.
    Live(Box<Live>),
}

/// What a preflighted command reaches the cluster with.
#[derive(Clone)]
pub struct Live {
    pub aws: Clients,
    pub kube: kube::Client,
}

impl Target {
    /// A plan without AWS or Kubernetes access: an empty account, the cluster assumed fine.
    pub fn offline(cluster: &str, region: Option<&str>) -> Self {
        let region = region.unwrap_or(OFFLINE_REGION).to_string();
        Self {
            account: OFFLINE_ACCOUNT.into(),
            cluster: ClusterFacts {
                name: cluster.into(),
                arn: format!("arn:aws:eks:{region}:{OFFLINE_ACCOUNT}:cluster/{cluster}"),
                version: "<cluster version>".into(),
                endpoint: String::new(),
                certificate_authority: String::new(),
                auto_mode: false,
                oidc_issuer: None,
                nodes: Vec::new(),
            },
            region,
            access: Access::Offline,
        }
    }

    /// The clients of a preflighted target, `None` offline.
    pub fn live(&self) -> Option<&Live> {
        match &self.access {
            Access::Live(live) => Some(live),
            Access::Offline => None,
        }
    }

    pub fn is_offline(&self) -> bool {
        matches!(self.access, Access::Offline)
    }

    /// The AWS clients, `None` offline.
    pub fn aws(&self) -> Option<&Clients> {
        match &self.access {
            Access::Live(live) => Some(&live.aws),
            Access::Offline => None,
        }
    }

    /// The Kubernetes client, `None` offline.
    pub fn kube(&self) -> Option<&kube::Client> {
        match &self.access {
            Access::Live(live) => Some(&live.kube),
            Access::Offline => None,
        }
    }

    pub fn name(&self) -> &str {
        &self.cluster.name
    }
}

/// AWS access for a command: clients, or (dry run only) `None` with the reason for planning
/// offline.
pub async fn connect(
    region: Option<&str>,
    profile: Option<&str>,
    dry_run: bool,
) -> Result<(Option<Clients>, Option<String>), StepError> {
    let config = match aws::load_config(region, profile).await {
        Ok(config) => config,
        Err(ConfigError::NoRegion) if dry_run => {
            return Ok((
                None,
                Some("no AWS region configured: planning offline for an empty account".into()),
            ));
        }
        Err(e) => {
            return Err(StepError::caused_by("cannot reach AWS", e)
                .with_hint("pass --region, set AWS_REGION, or set a region in the profile"));
        }
    };
    if dry_run && aws::check_credentials(&config).await.is_err() {
        return Ok((
            None,
            Some("no AWS credentials: planning offline for an empty account".into()),
        ));
    }
    let clients = Clients::from_config(config).map_err(|e| {
        StepError::caused_by("cannot reach AWS", e).with_hint("pass --region or set AWS_REGION")
    })?;
    Ok((Some(clients), None))
}

/// Preflight: the caller, the cluster, a Kubernetes client and its EC2 nodes. Read-only.
pub async fn preflight(aws: Clients, cluster: &str) -> Result<(Target, StepOutcome), StepError> {
    let identity = aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify("get the caller identity of", "the AWS credentials", e))?;
    let account = identity.account().unwrap_or_default().to_string();
    let mut facts = describe_cluster(&aws, cluster).await?;
    let (kube, source) = kube_client(&aws, &facts).await?;
    facts.nodes = check_nodes(&kube, &facts.name).await?;
    let nodes = facts.nodes.iter().filter(|n| !n.fargate).count();
    let via = match source {
        Source::Kubeconfig { context } => format!("kubeconfig context {context}"),
        Source::EksToken => "an EKS token signed for the caller (no kubeconfig context)".into(),
    };
    let outcome = StepOutcome::with(vec![
        Change::new(
            Action::Check,
            format!("caller {}", identity.arn().unwrap_or("?")),
        ),
        Change::new(Action::Check, format!("EKS cluster {}", facts.name)).note(format!(
            "ACTIVE, Kubernetes {}{}, {nodes} EC2 node(s), reached through {via}",
            facts.version,
            if facts.auto_mode { ", Auto Mode" } else { "" }
        )),
    ]);
    let target = Target {
        account,
        region: aws.region.clone(),
        cluster: facts,
        access: Access::Live(Box::new(Live { aws, kube })),
    };
    Ok((target, outcome))
}

/// What an offline preflight reports: nothing was read.
pub fn offline_outcome(cluster: &str) -> StepOutcome {
    StepOutcome::with(vec![
        Change::new(Action::Check, "caller identity").note(
            "sts:GetCallerIdentity not called: no credentials, planning for an empty account",
        ),
        Change::new(Action::Check, format!("EKS cluster {cluster}")).note(
            "eks:DescribeCluster not called: assumed ACTIVE with a supported Kubernetes version",
        ),
    ])
    .note("offline plan: nothing was read from AWS or Kubernetes")
}

pub async fn describe_cluster(aws: &Clients, name: &str) -> Result<ClusterFacts, StepError> {
    let name = &name.to_string();
    let out = match aws.eks.describe_cluster().name(name).send().await {
        Ok(out) => out,
        Err(e) => {
            let err = classify("describe", format!("EKS cluster {name}"), e);
            if !err.is(ErrorKind::NotFound) {
                return Err(err.into());
            }
            return Err(unknown_cluster(aws, name).await);
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
        oidc_issuer: cluster
            .identity()
            .and_then(|i| i.oidc())
            .and_then(|o| o.issuer())
            .map(str::to_string),
        nodes: Vec::new(),
    })
}

/// The error for a cluster that does not exist, naming the ones that do.
async fn unknown_cluster(aws: &Clients, name: &str) -> StepError {
    let message = format!("EKS cluster {name} was not found in region {}", aws.region);
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
            aws.region
        )
    } else {
        format!("clusters in {}: {}", aws.region, names.join(", "))
    };
    StepError::problem(message).with_hint(hint)
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
    aws: &Clients,
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

/// Lists the nodes; fails when none can run DaemonSets (EC2 nodes, not Fargate).
async fn check_nodes(kube: &kube::Client, cluster: &str) -> Result<Vec<NodePlatform>, StepError> {
    let nodes: Api<Node> = Api::all(kube.clone());
    let list = nodes
        .list(&Default::default())
        .await
        .map_err(crate::kube::KubeError::api(
            "list nodes of",
            format!("cluster {cluster}"),
        ))?;
    let nodes: Vec<NodePlatform> = list.items.iter().map(NodePlatform::of).collect();
    if nodes.iter().all(|n| n.fargate) {
        let fargate_count = list.items.len();
        return Err(StepError::problem(format!(
            "EKS cluster {cluster} has no EC2 nodes ({fargate_count} Fargate node(s)); the CSI driver and the Pod Identity agent run as DaemonSets on EC2 nodes"
        ))
        .with_hint("add a managed node group or Auto Mode node pool, then run again"));
    }
    Ok(nodes)
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
