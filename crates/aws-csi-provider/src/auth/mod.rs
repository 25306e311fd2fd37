//! Credentials for a mount: Pod Identity (agent) or IRSA (STS web identity), cached per identity.

pub mod cache;
pub mod irsa;
pub mod pod_identity;

use aws_credential_types::Credentials;

pub use cache::CredentialCache;
pub use pod_identity::PodIdentityAgent;

/// Who the credentials belong to; the cache key. Secret-free, so it can be logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    PodIdentity {
        namespace: String,
        service_account: String,
    },
    Irsa {
        namespace: String,
        service_account: String,
        role_arn: String,
    },
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::PodIdentity {
                namespace,
                service_account,
            } => write!(
                f,
                "Pod Identity of service account {namespace}/{service_account}"
            ),
            Identity::Irsa {
                namespace,
                service_account,
                role_arn,
            } => write!(
                f,
                "IRSA role {role_arn} of service account {namespace}/{service_account}"
            ),
        }
    }
}

impl Identity {
    /// Short label for metrics.
    pub fn method(&self) -> &'static str {
        match self {
            Identity::PodIdentity { .. } => "pod_identity",
            Identity::Irsa { .. } => "irsa",
        }
    }
}

/// Fresh credentials plus where they came from.
pub type Fetched = Result<Credentials, String>;
