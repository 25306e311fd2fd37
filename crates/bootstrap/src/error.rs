//! The error a step or command fails with: a typed cause from the layer below, or a problem found while
//! checking, each with an optional hint for the user.

use crate::aws::{AwsError, ErrorKind};
use crate::kube::KubeError;
use crate::render::RenderError;

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Something observed is wrong (cluster not ACTIVE, a conflict, a failed verification).
    #[error("{message}")]
    Problem {
        message: String,
        hint: Option<String>,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StepError {
    pub fn problem(message: impl Into<String>) -> Self {
        StepError::Problem {
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// Adds a hint (only to a `Problem`; typed causes derive theirs).
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            StepError::Problem {
                message, source, ..
            } => StepError::Problem {
                message,
                hint: Some(hint.into()),
                source,
            },
            other => other,
        }
    }

    /// Wraps `source` under `message`, keeping it as the cause.
    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StepError::Problem {
            message: message.into(),
            hint: None,
            source: Some(Box::new(source)),
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            StepError::Problem { hint, .. } => hint.clone(),
            StepError::Aws(e) => match e.kind {
                ErrorKind::Credentials => Some(
                    "configure AWS credentials (AWS_PROFILE, aws configure, aws sso login), or \
                     run with --dry-run to see the plan without them"
                        .into(),
                ),
                ErrorKind::AccessDenied
                    if matches!(
                        e.code.as_deref(),
                        Some("InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" | "UnrecognizedClientException")
                    ) =>
                {
                    Some("the AWS credentials are invalid or expired: refresh them (aws sso login, new access keys) or pick another --profile".into())
                }
                ErrorKind::AccessDenied => Some(format!(
                    "the caller lacks permission to {} {}; check its IAM policy",
                    e.action, e.resource
                )),
                ErrorKind::Throttled | ErrorKind::Transient => {
                    Some("this may be temporary: run the same command again".into())
                }
                _ => None,
            },
            StepError::Kube(KubeError::ContextServerMismatch {
                cluster, context, ..
            }) => Some(format!(
                "if {cluster} is the cluster you meant, point a context at it (`aws eks \
                 update-kubeconfig --name {cluster} --region <region>`) or rename or remove the \
                 stale context {context:?}; check --region and --profile otherwise"
            )),
            StepError::Kube(KubeError::Timeout { .. }) => Some(
                "raise --timeout, or inspect the cluster with kubectl (events, pod status)".into(),
            ),
            StepError::Kube(e) if matches!(e.status(), Some(401 | 403)) => Some(
                "the Kubernetes identity lacks access: grant it an EKS access entry with cluster \
                 admin rights, or use a kubeconfig context that has them"
                    .into(),
            ),
            StepError::Kube(e) if matches!(e.status(), Some(429 | 500 | 502 | 503 | 504)) => {
                Some(format!(
                    "the Kubernetes API server kept failing after {} attempts: check its health \
                     (`kubectl get --raw '/readyz?verbose'`), then run the same command again; \
                     it goes on from what is already applied",
                    crate::kube::retry::attempts()
                ))
            }
            StepError::Render(_) => {
                Some("check the --values file against templates/*/README.md".into())
            }
            _ => None,
        }
    }
}
