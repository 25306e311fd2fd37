//! Fetching a mount's objects: per region and service, with failover of transient failures.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_credential_types::Credentials;

use super::error::{FetchCause, MountError};
use super::fetch::{self, Fetched, Outcome, Target};
use super::metrics::Metrics;
use super::mount::Mounter;
use super::objects::{ObjectKind, ObjectSpec};

impl Mounter {
    /// Fetches every object in the primary region; objects that failed transiently are
    /// retried in the failover region. Returns values in the order of `specs`.
    pub(super) async fn fetch(
        &self,
        specs: &[ObjectSpec],
        region: &str,
        failover: Option<&str>,
        creds: &Credentials,
    ) -> Result<Vec<Fetched>, MountError> {
        let all: Vec<usize> = (0..specs.len()).collect();
        let mut outcomes = self.fetch_in(specs, &all, region, false, creds).await;
        let mut regions: Vec<String> = specs.iter().map(|_| region.to_string()).collect();
        if let Some(second) = failover {
            let retry: Vec<usize> = (0..specs.len())
                .filter(|&i| matches!(&outcomes[i], Some(Err(c)) if c.is_retryable()))
                .collect();
            if !retry.is_empty() {
                tracing::warn!(objects = retry.len(), region = second, "failing over");
                let mut second_try = self.fetch_in(specs, &retry, second, true, creds).await;
                for i in retry {
                    if let Some(o) = second_try[i].take() {
                        outcomes[i] = Some(o);
                        regions[i] = format!("failover region {second} (after {region} failed)");
                    }
                }
            }
        }
        collect(specs, outcomes, &regions)
    }

    /// Fetches the objects at `indices` in `region`; the result is indexed like `specs`.
    async fn fetch_in(
        &self,
        specs: &[ObjectSpec],
        indices: &[usize],
        region: &str,
        use_failover: bool,
        creds: &Credentials,
    ) -> Vec<Option<Outcome>> {
        let pick = |kind: ObjectKind| -> (Vec<usize>, Vec<Target<'_>>) {
            indices
                .iter()
                .filter(|&&i| specs[i].kind == kind)
                .map(|&i| {
                    let (name, version, label) = specs[i].target(use_failover);
                    (
                        i,
                        Target {
                            name,
                            version,
                            label,
                        },
                    )
                })
                .unzip()
        };
        let (sm_idx, sm_targets) = pick(ObjectKind::SecretsManager);
        let (ssm_idx, ssm_targets) = pick(ObjectKind::SsmParameter);
        let observer: &Metrics = &self.metrics;
        let conc = self.config.concurrency;
        let sm = async {
            if sm_targets.is_empty() {
                return Vec::new();
            }
            let client = self.aws.secrets_manager(region, creds);
            let key = creds.access_key_id();
            let use_batch = !self.lock_denied().contains(key);
            let denied = AtomicBool::new(false);
            let out = fetch::secrets_manager::fetch_all(
                &client,
                &sm_targets,
                conc,
                observer,
                use_batch,
                &denied,
            )
            .await;
            if denied.load(Ordering::Relaxed) {
                tracing::info!(
                    "BatchGetSecretValue is denied to this role; using GetSecretValue from now on"
                );
                let mut set = self.lock_denied();
                if set.len() > 4096 {
                    set.clear();
                }
                set.insert(key.to_string());
            }
            out
        };
        let ssm = async {
            if ssm_targets.is_empty() {
                return Vec::new();
            }
            let client = self.aws.ssm(region, creds);
            fetch::ssm::fetch_all(&client, &ssm_targets, conc, observer).await
        };
        let (sm_out, ssm_out) = tokio::join!(sm, ssm);
        let mut out: Vec<Option<Outcome>> = specs.iter().map(|_| None).collect();
        for (i, o) in sm_idx
            .into_iter()
            .zip(sm_out)
            .chain(ssm_idx.into_iter().zip(ssm_out))
        {
            out[i] = Some(o);
        }
        out
    }

    fn lock_denied(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.batch_denied.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Turns per-object outcomes into values, or the first error (in object order).
fn collect(
    specs: &[ObjectSpec],
    outcomes: Vec<Option<Outcome>>,
    regions: &[String],
) -> Result<Vec<Fetched>, MountError> {
    let mut values = Vec::with_capacity(specs.len());
    for ((spec, outcome), region) in specs.iter().zip(outcomes).zip(regions) {
        let cause = match outcome {
            Some(Ok(v)) => {
                values.push(v);
                continue;
            }
            Some(Err(cause)) => cause,
            None => FetchCause::Transient {
                message: "no result".into(),
            },
        };
        return Err(MountError::Fetch {
            kind: spec.kind.as_str(),
            object: spec.name.clone(),
            region: region.clone(),
            cause,
        });
    }
    Ok(values)
}
