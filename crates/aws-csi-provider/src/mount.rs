//! One mount: attributes → region → objects → credentials → fetch (with failover) → files.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use tracing::Instrument;

use super::attributes::{IRSA_AUDIENCE, MountAttributes, POD_IDENTITY_AUDIENCE, parse_permission};
use super::auth::cache::CacheOutcome;
use super::auth::{CacheScope, CredentialCache, Identity, PodIdentityAgent, PodKey, irsa};
use super::clients::AwsFactory;
use super::cluster::ClusterLookup;
use super::error::{FetchCause, MountError};
use super::metrics::Metrics;
use super::objects::parse_objects;
use super::output::{MountOutput, build_output};
use super::proto::{MountRequest, MountResponse};

/// Tunables of the mount path.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// Region used when the SPC has no `region` (the provider's `AWS_REGION`).
    pub default_region: Option<String>,
    /// Cap on the encoded files of one response (the driver's gRPC limit is 4 MiB).
    pub max_response_bytes: usize,
    /// Deadline for a whole mount.
    pub deadline: Duration,
    /// Parallel AWS calls per mount.
    pub concurrency: usize,
    /// Whether credential sessions are shared per pod or per service account.
    pub credential_scope: CacheScope,
    /// How long a cached credential session is reused at most.
    pub credential_max_age: Duration,
    /// Mounts served at once; the excess waits (see [`MountConfig::queue_wait`]).
    pub max_concurrent_mounts: usize,
}

/// Mounts served at once by default (`--max-concurrent-mounts`).
pub const DEFAULT_MAX_CONCURRENT_MOUNTS: usize = 32;

impl MountConfig {
    /// How long a mount waits for a free slot before failing: half its deadline, so that the
    /// driver gets a clear "busy" answer rather than a deadline.
    pub fn queue_wait(&self) -> Duration {
        self.deadline / 2
    }
}

impl Default for MountConfig {
    fn default() -> Self {
        Self {
            default_region: None,
            max_response_bytes: 4 * 1024 * 1024,
            deadline: Duration::from_secs(30),
            concurrency: 8,
            credential_scope: CacheScope::Pod,
            credential_max_age: crate::auth::cache::DEFAULT_MAX_AGE,
            max_concurrent_mounts: DEFAULT_MAX_CONCURRENT_MOUNTS,
        }
    }
}

/// Everything a mount needs, shared by all requests: caches, clients, metrics.
pub struct Mounter {
    pub config: MountConfig,
    pub aws: Arc<dyn AwsFactory>,
    pub cluster: Arc<dyn ClusterLookup>,
    pub agent: PodIdentityAgent,
    pub credentials: CredentialCache,
    pub metrics: Arc<Metrics>,
    /// Access key ids whose role may not call BatchGetSecretValue (GetSecretValue is used).
    pub batch_denied: Mutex<HashSet<String>>,
    /// One permit per mount being served (`config.max_concurrent_mounts`).
    pub slots: tokio::sync::Semaphore,
}

impl Mounter {
    /// A mounter with an empty credential cache and `config.max_concurrent_mounts` slots.
    pub fn new(
        config: MountConfig,
        aws: Arc<dyn AwsFactory>,
        cluster: Arc<dyn ClusterLookup>,
        agent: PodIdentityAgent,
        metrics: Arc<Metrics>,
    ) -> Self {
        let slots = tokio::sync::Semaphore::new(config.max_concurrent_mounts.max(1));
        Self {
            credentials: CredentialCache::new(config.credential_max_age),
            config,
            aws,
            cluster,
            agent,
            metrics,
            batch_denied: Mutex::default(),
            slots,
        }
    }

    /// Waits for a mount slot, at most [`MountConfig::queue_wait`].
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, MountError> {
        let wait = self.config.queue_wait();
        match tokio::time::timeout(wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(MountError::Busy {
                limit: self.config.max_concurrent_mounts.max(1),
                waited_ms: wait.as_millis() as u64,
            }),
        }
    }

    /// Serves one request: logs with the pod (and SPC when known), records metrics, applies the
    /// deadline. The error never contains secret material.
    pub async fn mount(&self, req: MountRequest) -> Result<MountResponse, MountError> {
        let started = Instant::now();
        // Dropped with this future: a driver that hangs up mid-mount leaves nothing behind.
        let _in_flight = self.metrics.mount_started();
        // Bounded work in flight: parsing, fetching and the response of at most
        // max_concurrent_mounts mounts are held at once; the rest wait, then fail clearly.
        // Refused before its attributes are known: logged, and counted under "unknown".
        let rejected = |e: MountError, why: &str| {
            tracing::warn!(error = %e, "mount rejected: {why}");
            self.metrics
                .mount_done("unknown", started.elapsed().as_secs_f64(), Some(e.code()));
            e
        };
        let _slot = self
            .slot()
            .await
            .map_err(|e| rejected(e, "provider busy"))?;
        let attrs =
            MountAttributes::parse(&req.attributes).map_err(|e| rejected(e, "bad attributes"))?;
        let method = if attrs.use_pod_identity {
            "pod_identity"
        } else {
            "irsa"
        };
        let span = tracing::info_span!(
            "mount",
            pod = %attrs.pod,
            spc = attrs.spc_name.as_deref().unwrap_or("-"),
            volume = volume_name(&req.target_path),
            service_account = %attrs.pod.service_account,
            auth = method,
        );
        let deadline = self.config.deadline;
        let work = async {
            let permission = parse_permission(&req.permission)?;
            self.mount_attrs(&attrs, permission).await
        };
        // The deadline counts from the request: time spent waiting for a slot is part of it.
        let left = deadline.saturating_sub(started.elapsed());
        let result = match tokio::time::timeout(left, work.instrument(span.clone())).await {
            Ok(r) => r,
            Err(_) => Err(MountError::Deadline {
                secs: deadline.as_secs(),
            }),
        };
        let elapsed = started.elapsed();
        let _enter = span.enter();
        match result {
            Ok(out) => {
                tracing::info!(
                    objects = out.versions.len(),
                    files = out.files.len(),
                    bytes = out.bytes,
                    ms = elapsed.as_millis() as u64,
                    "mounted"
                );
                self.metrics.mount_done(method, elapsed.as_secs_f64(), None);
                Ok(MountResponse {
                    object_version: out.versions,
                    error: None,
                    files: out.files,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, cause = e.code(), ms = elapsed.as_millis() as u64, "mount failed");
                self.metrics
                    .mount_done(method, elapsed.as_secs_f64(), Some(e.code()));
                Err(e)
            }
        }
    }

    async fn mount_attrs(
        &self,
        attrs: &MountAttributes,
        permission: u32,
    ) -> Result<MountOutput, MountError> {
        let region = self.resolve_region(attrs).await?;
        let failover = attrs.failover_region.as_deref();
        let specs = parse_objects(
            &attrs.objects,
            attrs.path_translation.as_deref(),
            &region,
            failover,
        )?;
        if specs.is_empty() {
            // Nothing to fetch, so no credentials either (parse_objects warned).
            return Ok(MountOutput::default());
        }
        let (identity, creds) = self.credentials(attrs, &region).await?;
        let fetched = self.fetch(&specs, &region, failover, &creds).await;
        let fetched = match fetched {
            Ok(v) => v,
            Err(e) => {
                if matches!(
                    e,
                    MountError::Fetch {
                        cause: FetchCause::AccessDenied { .. },
                        ..
                    }
                ) {
                    self.credentials.invalidate(&identity);
                }
                return Err(e);
            }
        };
        build_output(&specs, fetched, permission, self.config.max_response_bytes)
    }

    async fn resolve_region(&self, attrs: &MountAttributes) -> Result<String, MountError> {
        if let Some(r) = &attrs.region {
            return Ok(r.clone());
        }
        if let Some(r) = &self.config.default_region {
            return Ok(r.clone());
        }
        let pod = &attrs.pod;
        if pod.name.is_empty() {
            return Err(MountError::NoRegion {
                detail: " (no pod name to find the node)".into(),
            });
        }
        match self.cluster.node_region(&pod.namespace, &pod.name).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(MountError::NoRegion {
                detail: " (the node has no region label)".into(),
            }),
            Err(reason) => Err(MountError::NoRegion {
                detail: format!(" (node lookup failed: {reason})"),
            }),
        }
    }

    async fn credentials(
        &self,
        attrs: &MountAttributes,
        region: &str,
    ) -> Result<(Identity, Credentials), MountError> {
        let (namespace, service_account) = (&attrs.pod.namespace, &attrs.pod.service_account);
        let pod = match self.config.credential_scope {
            CacheScope::Pod => Some(PodKey {
                name: attrs.pod.name.clone(),
                uid: attrs.pod.uid.clone(),
            }),
            CacheScope::ServiceAccount => None,
        };
        let (identity, result) = if attrs.use_pod_identity {
            let token = attrs.token(POD_IDENTITY_AUDIENCE)?;
            let identity = Identity::PodIdentity {
                namespace: namespace.clone(),
                service_account: service_account.clone(),
                pod,
            };
            let r = self
                .credentials
                .get_or_fetch(&identity, &token, || {
                    self.agent.fetch(&token, attrs.address_type)
                })
                .await;
            (identity, r)
        } else {
            let token = attrs.token(IRSA_AUDIENCE)?;
            let role = self
                .cluster
                .role_arn(namespace, service_account)
                .await
                .map_err(|reason| MountError::Kube {
                    what: format!("serviceaccount {}", attrs.pod.account()),
                    reason,
                })?
                .ok_or_else(|| MountError::Credentials {
                    identity: format!("service account {}", attrs.pod.account()),
                    reason: irsa::missing_role(namespace, service_account),
                })?;
            let identity = Identity::Irsa {
                namespace: namespace.clone(),
                service_account: service_account.clone(),
                role_arn: role.clone(),
                pod,
            };
            let sts = self.aws.sts(region);
            let pod_ref = attrs.pod.to_string();
            let r = self
                .credentials
                .get_or_fetch(&identity, &token, || {
                    irsa::assume_role(&sts, &role, &token, &pod_ref)
                })
                .await;
            (identity, r)
        };
        match result {
            Ok((creds, outcome)) => {
                self.metrics
                    .credential_lookup(identity.method(), outcome == CacheOutcome::Hit);
                tracing::debug!(%identity, cached = outcome == CacheOutcome::Hit, "credentials ready");
                Ok((identity, creds))
            }
            Err(reason) => Err(MountError::Credentials {
                identity: identity.to_string(),
                reason,
            }),
        }
    }
}

/// The volume name from a kubelet target path (`…/volumes/kubernetes.io~csi/<name>/mount`); the
/// driver does not pass the SecretProviderClass name, the volume names it in the pod spec.
pub fn volume_name(target_path: &str) -> &str {
    let mut parts = target_path.trim_end_matches('/').rsplit('/');
    match (parts.next(), parts.next()) {
        (Some("mount"), Some(name)) => name,
        _ => "-",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_from_target_paths() {
        let p = "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/secrets-store/mount";
        assert_eq!(volume_name(p), "secrets-store");
        assert_eq!(volume_name("/tmp/x"), "-");
        assert_eq!(volume_name(""), "-");
    }
}
