//! Credentials for a mount: Pod Identity (agent) or IRSA (STS web identity), cached per identity.

pub mod cache;
pub mod irsa;
pub mod pod_identity;

use aws_credential_types::Credentials;

pub use cache::CredentialCache;
pub use pod_identity::PodIdentityAgent;

/// How widely one credential session is shared: per pod (the default) or per service account.
///
/// Pod Identity sessions carry pod-level tags (`kubernetes-pod-name`, `kubernetes-pod-uid`)
/// that policies may condition on, and IRSA sessions are named after the pod, so one pod's
/// session must not serve another: `Pod` fetches once per pod, then reuses it for its
/// remounts (rotation). `ServiceAccount` shares a session between the pods of one service
/// account — fewer agent/STS calls, safe only when no policy looks at pod tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CacheScope {
    #[default]
    Pod,
    ServiceAccount,
}

/// The pod a session was made for (part of the cache key under [`CacheScope::Pod`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PodKey {
    pub name: String,
    pub uid: String,
}

/// Who the credentials belong to; the cache key. Secret-free, so it can be logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    PodIdentity {
        namespace: String,
        service_account: String,
        pod: Option<PodKey>,
    },
    Irsa {
        namespace: String,
        service_account: String,
        role_arn: String,
        pod: Option<PodKey>,
    },
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.role_arn() {
            None => f.write_str("Pod Identity of ")?,
            Some(role_arn) => write!(f, "IRSA role {role_arn} of ")?,
        }
        let (namespace, service_account, pod) = self.account();
        write!(f, "service account {namespace}/{service_account}")?;
        match pod {
            Some(p) if !p.name.is_empty() => write!(f, " (pod {namespace}/{})", p.name),
            _ => Ok(()),
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

    /// What every identity names: namespace, service account and (per-pod scope) the pod.
    pub fn account(&self) -> (&str, &str, Option<&PodKey>) {
        match self {
            Identity::PodIdentity {
                namespace,
                service_account,
                pod,
            }
            | Identity::Irsa {
                namespace,
                service_account,
                pod,
                ..
            } => (namespace, service_account, pod.as_ref()),
        }
    }

    /// The IRSA role assumed; `None` for Pod Identity.
    pub fn role_arn(&self) -> Option<&str> {
        match self {
            Identity::PodIdentity { .. } => None,
            Identity::Irsa { role_arn, .. } => Some(role_arn),
        }
    }
}

/// Fresh credentials plus where they came from.
pub type Fetched = Result<Credentials, String>;
