//! Fetching a mount's objects: per region and service, with failover of transient failures.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use aws_credential_types::Credentials;

use super::error::{FetchCause, MountError};
use super::fetch::{self, ByteBudget, Charge, Fetched, Outcome, Target};
use super::metrics::Metrics;
use super::mount::Mounter;
use super::objects::{ObjectKind, ObjectSpec};

impl Mounter {
    /// Fetches every object in the primary region; objects that failed transiently are
    /// retried in the failover region. Returns values in the order of `specs`. A secret
    /// listed several times (aliases) is fetched once; values are charged to the response
    /// limit as they arrive, and the mount fails as soon as they exceed it.
    pub(super) async fn fetch(
        &self,
        specs: &[ObjectSpec],
        region: &str,
        failover: Option<&str>,
        creds: &Credentials,
    ) -> Result<Vec<Fetched>, MountError> {
        let budget = ByteBudget::new(self.config.max_response_bytes);
        let too_large = |b: &ByteBudget| MountError::TooLarge {
            size: b.used(),
            limit: b.limit(),
        };
        let all: Vec<usize> = (0..specs.len()).collect();
        let mut outcomes = self
            .fetch_in(specs, &all, region, false, creds, &budget)
            .await;
        if budget.exhausted() {
            return Err(too_large(&budget));
        }
        let mut regions: Vec<String> = specs.iter().map(|_| region.to_string()).collect();
        if let Some(second) = failover {
            let retry: Vec<usize> = (0..specs.len())
                .filter(|&i| matches!(&outcomes[i], Some(Err(c)) if c.is_retryable()))
                .collect();
            if !retry.is_empty() {
                tracing::warn!(objects = retry.len(), region = second, "failing over");
                let mut second_try = self
                    .fetch_in(specs, &retry, second, true, creds, &budget)
                    .await;
                if budget.exhausted() {
                    return Err(too_large(&budget));
                }
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

    /// Fetches the objects at `indices` in `region`, each distinct (kind, name, version,
    /// label) once; the result is indexed like `specs`.
    async fn fetch_in(
        &self,
        specs: &[ObjectSpec],
        indices: &[usize],
        region: &str,
        use_failover: bool,
        creds: &Credentials,
        budget: &ByteBudget,
    ) -> Vec<Option<Outcome>> {
        let distinct = distinct_targets(specs, indices, use_failover);
        let pick = |kind: ObjectKind| -> (Vec<usize>, Vec<Target<'_>>, Vec<usize>) {
            let mut picked = (Vec::new(), Vec::new(), Vec::new());
            for (d, (k, target, members)) in distinct.iter().enumerate() {
                if *k == kind {
                    picked.0.push(d);
                    picked.1.push(*target);
                    picked.2.push(members.len());
                }
            }
            picked
        };
        let (sm_idx, sm_targets, sm_files) = pick(ObjectKind::SecretsManager);
        let (ssm_idx, ssm_targets, ssm_files) = pick(ObjectKind::SsmParameter);
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
            let charge = Charge {
                budget,
                files: &sm_files,
            };
            let out = fetch::secrets_manager::fetch_all(
                &client,
                &sm_targets,
                conc,
                observer,
                use_batch,
                &denied,
                &charge,
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
            let charge = Charge {
                budget,
                files: &ssm_files,
            };
            fetch::ssm::fetch_all(&client, &ssm_targets, conc, observer, &charge).await
        };
        let (sm_out, ssm_out) = tokio::join!(sm, ssm);
        let mut out: Vec<Option<Outcome>> = specs.iter().map(|_| None).collect();
        for (d, o) in sm_idx
            .into_iter()
            .zip(sm_out)
            .chain(ssm_idx.into_iter().zip(ssm_out))
        {
            let members = &distinct[d].2;
            if let Some((&last, others)) = members.split_last() {
                for &i in others {
                    out[i] = Some(match &o {
                        Ok(f) => Ok(f.copy()),
                        Err(c) => Err(c.clone()),
                    });
                }
                out[last] = Some(o);
            }
        }
        out
    }

    fn lock_denied(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.batch_denied.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The distinct targets among `indices` (by kind, name, version and label), each with the
/// indices of the objects it serves, in first-seen order.
fn distinct_targets<'a>(
    specs: &'a [ObjectSpec],
    indices: &[usize],
    use_failover: bool,
) -> Vec<(ObjectKind, Target<'a>, Vec<usize>)> {
    let mut distinct: Vec<(ObjectKind, Target<'a>, Vec<usize>)> = Vec::new();
    let mut seen: HashMap<(ObjectKind, Target<'a>), usize> = HashMap::with_capacity(indices.len());
    for &i in indices {
        let (name, version, label) = specs[i].target(use_failover);
        let target = Target {
            name,
            version,
            label,
        };
        match seen.entry((specs[i].kind, target)) {
            Entry::Occupied(e) => distinct[*e.get()].2.push(i),
            Entry::Vacant(e) => {
                e.insert(distinct.len());
                distinct.push((specs[i].kind, target, vec![i]));
            }
        }
    }
    distinct
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
