//! The steps of `up`/`down`: observe, compute an action, apply or delete.
//!
//! Each step module has one `run(&Env)` that observes (read-only calls; nothing when offline,
//! which assumes an empty account), computes one [`Action`](crate::plan::Action) per resource,
//! and applies it unless dry-running. [`up::plan`] wires them into the dependency graph.

pub mod addon;
pub mod agent_addon;
pub mod association;
pub mod csi_driver;
mod error;
pub mod iam_role;
pub mod manifests;
pub mod preflight;
pub mod provider;
pub mod secrets;
pub mod up;
pub mod verify;
pub mod workload;

use std::sync::OnceLock;

pub use error::StepError;

use crate::aws::Clients;
use crate::config::UpSettings;

/// AWS tag keys marking what bootstrap created.
pub use bootstrap_common::names::{TAG_CLUSTER, TAG_MANAGED_BY};

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
}

/// A secret the workload reads, resolved to its ARN.
#[derive(Debug, Clone)]
pub struct ResolvedSecret {
    pub kind: crate::config::SecretKind,
    /// Name as the provider's `objectName` (full ARN: exact and region-checked).
    pub arn: String,
    /// A customer-managed KMS key protecting it, if any.
    pub kms_key_arn: Option<String>,
}

/// Facts steps hand to the steps that depend on them.
#[derive(Default)]
pub struct Facts {
    pub account: OnceLock<String>,
    pub cluster: OnceLock<ClusterFacts>,
    pub kube: OnceLock<kube::Client>,
    pub secrets: OnceLock<Vec<ResolvedSecret>>,
    pub role_arn: OnceLock<String>,
}

/// Everything a step can reach.
pub struct Env {
    pub settings: UpSettings,
    pub region: String,
    /// AWS clients; `None` plans offline for an empty account.
    pub aws: Option<Clients>,
    pub facts: Facts,
    /// When the whole run must be done (`--timeout` from the start).
    pub deadline: std::time::Instant,
}

impl Env {
    pub fn offline(settings: UpSettings) -> Self {
        let settings_timeout = settings.timeout;
        let region = settings
            .region
            .clone()
            .unwrap_or_else(|| OFFLINE_REGION.into());
        Self {
            settings,
            region,
            aws: None,
            facts: Facts::default(),
            deadline: std::time::Instant::now() + settings_timeout,
        }
    }

    pub fn live(settings: UpSettings, aws: Clients) -> Self {
        Self {
            region: aws.region.clone(),
            deadline: std::time::Instant::now() + settings.timeout,
            settings,
            aws: Some(aws),
            facts: Facts::default(),
        }
    }

    /// What is left of `--timeout` (at least one second, so a wait can still look once).
    pub fn remaining(&self) -> std::time::Duration {
        self.deadline
            .saturating_duration_since(std::time::Instant::now())
            .max(std::time::Duration::from_secs(1))
    }

    pub fn dry_run(&self) -> bool {
        self.settings.dry_run
    }

    pub fn is_offline(&self) -> bool {
        self.aws.is_none()
    }

    pub fn account(&self) -> &str {
        self.facts
            .account
            .get()
            .map_or(OFFLINE_ACCOUNT, String::as_str)
    }

    pub fn cluster_arn(&self) -> String {
        self.facts
            .cluster
            .get()
            .map(|c| c.arn.clone())
            .unwrap_or_else(|| {
                format!(
                    "arn:aws:eks:{}:{}:cluster/{}",
                    self.region,
                    self.account(),
                    self.settings.cluster
                )
            })
    }

    /// The Kubernetes client, when preflight made one.
    pub fn kube(&self) -> Option<&kube::Client> {
        self.facts.kube.get()
    }

    /// The AWS tags bootstrap puts on what it creates.
    pub fn tags(&self) -> Vec<(String, String)> {
        vec![
            (TAG_MANAGED_BY.into(), "bootstrap".into()),
            (TAG_CLUSTER.into(), self.settings.cluster.clone()),
        ]
    }
}

/// Whether AWS tags mark a resource as bootstrap's.
pub fn tagged_ours<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    tags.into_iter()
        .any(|(k, v)| k == TAG_MANAGED_BY && v == "bootstrap")
}

#[cfg(test)]
#[path = "mock_tests.rs"]
mod mock_tests;
