//! Kubernetes client construction (with bounded retries), server-side apply of rendered
//! documents, and waits.

pub mod apply;
pub mod client;
pub mod retry;
pub mod wait;

/// The one field manager bootstrap applies with.
pub const FIELD_MANAGER: &str = "bootstrap";

/// A failed Kubernetes operation, naming the action and the resource.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("failed to read the kubeconfig")]
    Kubeconfig {
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error(
        "kubeconfig context {context:?} names EKS cluster {cluster} but points at {server}, \
         while DescribeCluster says the cluster's endpoint is {endpoint}: refusing to act on \
         what may be another cluster with the same name"
    )]
    ContextServerMismatch {
        cluster: String,
        context: String,
        server: String,
        endpoint: String,
    },
    #[error("failed to build a Kubernetes client for cluster {cluster}")]
    Client {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to {action} {resource}")]
    Api {
        action: &'static str,
        resource: String,
        #[source]
        source: kube::Error,
    },
    #[error("invalid manifest {resource}")]
    Manifest {
        resource: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
    #[error("failed to wait for {what}")]
    Wait {
        what: String,
        #[source]
        source: kube::runtime::wait::Error,
    },
}

impl KubeError {
    /// What a failed API call becomes: `.map_err(KubeError::api("read", resource))`.
    pub fn api(action: &'static str, resource: String) -> impl FnOnce(kube::Error) -> Self {
        move |source| KubeError::Api {
            action,
            resource,
            source,
        }
    }

    /// The HTTP status the API server answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "mock_tests.rs"]
mod mock_tests;
