//! The things bootstrap manages, one module each: `observe` (read-only calls; offline means
//! absent), a pure `plan(desired, observed)` and a pure `plan_delete(observed)` (owned things
//! only), both returning [`Change`](crate::plan::Change)s made of typed operations.
//!
//! A workload (namespace, service account, secrets) is a value: `up` plans the platform and one
//! workload, `down` the deletion of everything discovered as owned.

pub mod addon;
pub mod association;
pub mod boundary;
pub mod controller;
pub mod discover;
pub mod facts;
pub mod image_push;
pub mod irsa;
pub mod namespace_scan;
pub mod objects;
pub mod platform;
pub mod provider_image;
pub mod role;
pub mod role_identity;
pub mod sample;
pub mod secrets;
pub mod teardown;
pub mod teardown_controller;
pub mod teardown_roles;
pub mod workload;

use bootstrap_common::names::{MANAGED_BY_VALUE, TAG_CLUSTER, TAG_MANAGED_BY};
use secrets::SecretKind;

use crate::service_account::ServiceAccountRef;

/// How a secret is written in the mount (the teams file's per-secret file options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileOptions {
    /// The file name (default: derived from the secret's name).
    pub alias: Option<String>,
    /// `filePermission`, four octal digits.
    pub file_permission: Option<String>,
    /// JSON keys written as files of their own.
    pub jmes_path: Vec<crate::render::workload::JmesEntry>,
}

/// A secret a workload reads, resolved to the ARN its policy grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSecret {
    pub kind: SecretKind,
    /// Name as the provider's `objectName` (a full ARN: exact and region-checked), or the
    /// demo secret's name.
    pub object_name: String,
    /// The ARN the read policy grants (the demo secret's ends in `-??????`, AWS's suffix).
    pub arn: String,
    /// A customer-managed KMS key protecting it, if any.
    pub kms_key_arn: Option<String>,
    /// How it is written in the mount: file name, permission, JSON keys as files.
    pub file: FileOptions,
    /// The teams file's options beyond one exact secret (prefix, allKeys, optional, sync,
    /// failover replica).
    pub extras: secrets::SecretExtras,
}

impl ResolvedSecret {
    /// A secret with no per-object options.
    pub fn plain(
        kind: SecretKind,
        object_name: String,
        arn: String,
        kms_key_arn: Option<String>,
    ) -> Self {
        Self {
            kind,
            object_name,
            arn,
            kms_key_arn,
            file: FileOptions::default(),
            extras: Default::default(),
        }
    }
}

/// One application's access: a service account in a namespace that reads some secrets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workload {
    pub service_account: ServiceAccountRef,
    pub secrets: Vec<ResolvedSecret>,
    /// Point an existing association of another role at ours (`--force`).
    pub force: bool,
    /// The verification pod's image.
    pub sample_image: String,
    /// The service account exists and is someone else's: never created, labelled or deleted.
    pub existing_service_account: bool,
    /// Cross-account: the association's target role (assumed by the Pod Identity role).
    pub target_role_arn: Option<String>,
    /// Read secrets by tag (ABAC on the session tags) instead of by listed ARNs.
    pub abac: bool,
    /// The SecretProviderClass's `failoverRegion`; the role also reads the replicas there.
    pub failover_region: Option<String>,
    /// Extra labels on the workload's objects (e.g. the team).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The role's path and permissions boundary (the controller's roles); `None` for `onboard`.
    pub confinement: Option<role::Confinement>,
}

#[cfg(test)]
impl Workload {
    /// A workload of `namespace`/`service_account` reading one Secrets Manager secret by ARN.
    pub fn reading(namespace: &str, service_account: &str, arn: &str) -> Self {
        Self {
            service_account: ServiceAccountRef::new(namespace, service_account),
            secrets: vec![ResolvedSecret::plain(
                SecretKind::SecretsManager,
                arn.into(),
                arn.into(),
                None,
            )],
            sample_image: "pause".into(),
            ..Self::default()
        }
    }
}

/// Whether AWS tags mark a resource as made by bootstrap for this cluster.
pub fn owned<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>, cluster: &str) -> bool {
    let (mut ours, mut this_cluster) = (false, false);
    for (k, v) in tags {
        ours |= k == TAG_MANAGED_BY && v == MANAGED_BY_VALUE;
        this_cluster |= k == TAG_CLUSTER && v == cluster;
    }
    ours && this_cluster
}

/// Whether AWS tags mark a resource as made by bootstrap (for any cluster).
pub fn made_by_bootstrap<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    tags.into_iter()
        .any(|(k, v)| k == TAG_MANAGED_BY && v == MANAGED_BY_VALUE)
}

#[cfg(test)]
#[path = "mock_tests.rs"]
mod mock_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_needs_both_tags_and_this_cluster() {
        let tags = [(TAG_MANAGED_BY, "bootstrap"), (TAG_CLUSTER, "demo")];
        assert!(owned(tags, "demo"));
        assert!(!owned(tags, "prod"), "another cluster's resource");
        assert!(!owned([(TAG_CLUSTER, "demo")], "demo"));
        assert!(!owned(
            [(TAG_MANAGED_BY, "terraform"), (TAG_CLUSTER, "demo")],
            "demo"
        ));
        assert!(made_by_bootstrap(tags));
    }
}
