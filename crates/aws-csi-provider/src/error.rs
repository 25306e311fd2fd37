//! `MountError`: every way a mount fails, each naming the object and the cause, with a hint.

use thiserror::Error;

use super::attributes::ACCEPTED_BOOLS;

/// Why a mount failed. Messages never contain secret values; they may contain object names,
/// regions, ARNs and AWS error codes/messages (which carry no secret material).
#[derive(Debug, Error)]
pub enum MountError {
    #[error("invalid mount attributes: {reason}")]
    Attributes { reason: String },

    #[error("mount attributes lack {key}; hint: {hint}")]
    MissingAttribute {
        key: &'static str,
        hint: &'static str,
    },

    #[error(
        "usePodIdentity {value:?} is not a boolean; accepted values: {ACCEPTED_BOOLS} (leave it empty to use IRSA)"
    )]
    UsePodIdentity { value: String },

    #[error(
        "failoverRegion {region:?} is the same as region; hint: pick a different failover region or remove it"
    )]
    SameFailoverRegion { region: String },

    #[error(
        "no service account token for audience {audience:?}; hint: add {{audience: {audience}}} to spec.tokenRequests of the CSIDriver secrets-store.csi.k8s.io"
    )]
    MissingToken { audience: &'static str },

    #[error(
        "no AWS region: set the `region` parameter of the SecretProviderClass, AWS_REGION on the provider, or the node label topology.kubernetes.io/region{detail}"
    )]
    NoRegion { detail: String },

    #[error("invalid objects: {0}")]
    Objects(#[from] super::objects::ObjectsError),

    #[error("credentials for {identity}: {reason}")]
    Credentials { identity: String, reason: String },

    #[error("Kubernetes lookup of {what} failed: {reason}")]
    Kube { what: String, reason: String },

    #[error("fetching {kind} object {object:?} in {region}: {cause}")]
    Fetch {
        kind: &'static str,
        object: String,
        region: String,
        cause: FetchCause,
    },

    #[error(
        "fetching {kind} prefix object {object:?} in {region}: nothing matches the prefix; hint: check the prefix and the region, or set optional: true to mount nothing then"
    )]
    NoMatch {
        kind: &'static str,
        object: String,
        region: String,
    },

    #[error(
        "object {object:?}: {count} {what} match the prefix, over the limit of {limit} per object; hint: split it into narrower prefixes"
    )]
    TooManyMatches {
        object: String,
        count: String,
        what: &'static str,
        limit: usize,
    },

    #[error("allKeys of object {object:?}: {reason}")]
    AllKeys { object: String, reason: String },

    #[error(
        "file {file:?} of {first} collides with {second}; hint: set objectAlias (a prefix's directory) or rename a key or secret"
    )]
    FileCollision {
        file: String,
        first: String,
        second: String,
    },

    #[error("jmesPath {path:?} of object {object:?}: {reason}")]
    JmesPath {
        object: String,
        path: String,
        reason: String,
    },

    #[error(
        "the mount response would be {size} bytes, over the {limit}-byte limit of the driver; hint: mount fewer or smaller objects, or use jmesPath to select keys"
    )]
    TooLarge { size: usize, limit: usize },

    #[error("file name {name:?} of object {object:?} is not allowed: {reason}")]
    UnsafePath {
        object: String,
        name: String,
        reason: &'static str,
    },

    #[error(
        "the mount did not finish within {secs} s (--mount-deadline); hint: the provider log shows the slow step (Pod Identity agent, STS, Secrets Manager or SSM)"
    )]
    Deadline { secs: u64 },

    #[error(
        "the provider is busy: all {limit} mount slots (--max-concurrent-mounts) stayed taken for {waited_ms} ms; the driver retries the mount; hint: if this persists, raise --max-concurrent-mounts or look for a pod mounting in a loop"
    )]
    Busy { limit: usize, waited_ms: u64 },
}

/// The cause of a failed AWS fetch, split as upstream does: client faults are final.
#[derive(Debug, Clone, Error)]
pub enum FetchCause {
    #[error(
        "not found (ResourceNotFound/ParameterNotFound); hint: check the name, version and region"
    )]
    NotFound,
    #[error(
        "access denied: {message}; hint: allow the role to read this object (and decrypt its KMS key)"
    )]
    AccessDenied { message: String },
    #[error("rejected by AWS: {message}")]
    Client { message: String },
    #[error("{message}")]
    Transient { message: String },
}

impl FetchCause {
    /// Whether the failover region should be tried (5xx, throttling, network).
    pub fn is_retryable(&self) -> bool {
        matches!(self, FetchCause::Transient { .. })
    }
}

impl MountError {
    /// A short, stable code for metrics labels and `MountResponse.error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            MountError::Attributes { .. }
            | MountError::MissingAttribute { .. }
            | MountError::UsePodIdentity { .. }
            | MountError::SameFailoverRegion { .. } => "invalid_attributes",
            MountError::MissingToken { .. } => "missing_token",
            MountError::NoRegion { .. } => "no_region",
            MountError::Objects(_) => "invalid_objects",
            MountError::Credentials { .. } => "credentials",
            MountError::Kube { .. } => "kubernetes",
            MountError::Fetch { cause, .. } => match cause {
                FetchCause::NotFound => "not_found",
                FetchCause::AccessDenied { .. } => "access_denied",
                FetchCause::Client { .. } => "fetch_rejected",
                FetchCause::Transient { .. } => "fetch_failed",
            },
            MountError::JmesPath { .. } => "jmespath",
            MountError::NoMatch { .. } => "not_found",
            MountError::TooManyMatches { .. } => "too_many_matches",
            MountError::AllKeys { .. } => "all_keys",
            MountError::FileCollision { .. } => "file_collision",
            MountError::TooLarge { .. } => "too_large",
            MountError::UnsafePath { .. } => "unsafe_path",
            MountError::Deadline { .. } => "deadline",
            MountError::Busy { .. } => "busy",
        }
    }

    /// Whether the caller (the SPC author) must fix something, as opposed to a transient fault.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            MountError::Credentials { .. }
                | MountError::Kube { .. }
                | MountError::Deadline { .. }
                | MountError::Busy { .. }
                | MountError::Fetch {
                    cause: FetchCause::Transient { .. },
                    ..
                }
        )
    }
}
