//! Fetching a mount's objects: per region and service, with failover of transient failures.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use aws_credential_types::Credentials;

use futures::stream::{self, StreamExt};

use super::error::{FetchCause, MountError};
use super::fetch::prefix::{Listing, PrefixFailure, PrefixOutcome};
use super::fetch::{self, ByteBudget, Charge, Got, Outcome, Target};
use super::metrics::Metrics;
use super::mount::Mounter;
use super::objects::{Expand, ObjectKind, ObjectSpec};

/// The result for one object: a value, or the matches of a prefix object.
enum Slot {
    One(Outcome),
    Many(PrefixOutcome),
}

impl Slot {
    fn is_retryable(&self) -> bool {
        match self {
            Slot::One(Err(c)) => c.is_retryable(),
            Slot::Many(Err(f)) => f.is_retryable(),
            _ => false,
        }
    }
}

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
    ) -> Result<Vec<Got>, MountError> {
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
                .filter(|&i| outcomes[i].as_ref().is_some_and(Slot::is_retryable))
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
    /// label) once, prefix objects each by its listing; the result is indexed like `specs`.
    async fn fetch_in(
        &self,
        specs: &[ObjectSpec],
        indices: &[usize],
        region: &str,
        use_failover: bool,
        creds: &Credentials,
        budget: &ByteBudget,
    ) -> Vec<Option<Slot>> {
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
        // Empty (no allocation) when the SecretProviderClass has no prefix object.
        let prefixed: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| matches!(specs[i].expand, Expand::Prefix { .. }))
            .collect();
        let listings = async {
            if prefixed.is_empty() {
                return Vec::new();
            }
            let has = |k: ObjectKind| prefixed.iter().any(|&i| specs[i].kind == k);
            let sm =
                has(ObjectKind::SecretsManager).then(|| self.aws.secrets_manager(region, creds));
            let ssm = has(ObjectKind::SsmParameter).then(|| self.aws.ssm(region, creds));
            let calls: Vec<_> = prefixed
                .iter()
                .map(|&i| {
                    let (sm, ssm) = (sm.as_ref(), ssm.as_ref());
                    async move {
                        let spec = &specs[i];
                        let Expand::Prefix { recursive } = spec.expand else {
                            return (
                                i,
                                Err(PrefixFailure::Call(FetchCause::Transient {
                                    message: "not a prefix object".into(),
                                })),
                            );
                        };
                        let listing = Listing {
                            prefix: &spec.object.name,
                            recursive,
                            observer,
                            budget,
                        };
                        let got = match (spec.kind, sm, ssm) {
                            (ObjectKind::SecretsManager, Some(c), _) => {
                                fetch::prefix::secrets_manager(c, listing).await
                            }
                            (ObjectKind::SsmParameter, _, Some(c)) => {
                                fetch::prefix::ssm(c, listing).await
                            }
                            _ => Err(PrefixFailure::Call(FetchCause::Transient {
                                message: "no client".into(),
                            })),
                        };
                        (i, got)
                    }
                })
                .collect();
            stream::iter(calls)
                .buffered(conc.max(1))
                .collect::<Vec<_>>()
                .await
        };
        let (sm_out, ssm_out, listed) = tokio::join!(sm, ssm, listings);
        let mut out: Vec<Option<Slot>> = specs.iter().map(|_| None).collect();
        for (i, listing) in listed {
            out[i] = Some(Slot::Many(listing));
        }
        for (d, o) in sm_idx
            .into_iter()
            .zip(sm_out)
            .chain(ssm_idx.into_iter().zip(ssm_out))
        {
            let members = &distinct[d].2;
            if let Some((&last, others)) = members.split_last() {
                for &i in others {
                    out[i] = Some(Slot::One(match &o {
                        Ok(f) => Ok(f.copy()),
                        Err(c) => Err(c.clone()),
                    }));
                }
                out[last] = Some(Slot::One(o));
            }
        }
        out
    }

    fn lock_denied(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.batch_denied.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The distinct targets among `indices` (by kind, name, version and label), each with the
/// indices of the objects it serves, in first-seen order; prefix objects are listed instead.
fn distinct_targets<'a>(
    specs: &'a [ObjectSpec],
    indices: &[usize],
    use_failover: bool,
) -> Vec<(ObjectKind, Target<'a>, Vec<usize>)> {
    let mut distinct: Vec<(ObjectKind, Target<'a>, Vec<usize>)> = Vec::new();
    let mut seen: HashMap<(ObjectKind, Target<'a>), usize> = HashMap::with_capacity(indices.len());
    for &i in indices {
        if matches!(specs[i].expand, Expand::Prefix { .. }) {
            continue;
        }
        let target = Target::from(specs[i].target(use_failover));
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

/// Turns per-object outcomes into values, or the first error (in object order). An optional
/// object that does not exist is skipped with a warning; every other error fails the mount.
fn collect(
    specs: &[ObjectSpec],
    outcomes: Vec<Option<Slot>>,
    regions: &[String],
) -> Result<Vec<Got>, MountError> {
    let mut values = Vec::with_capacity(specs.len());
    for ((spec, outcome), region) in specs.iter().zip(outcomes).zip(regions) {
        let fetch_error = |object: String, cause: FetchCause| MountError::Fetch {
            kind: spec.kind.as_str(),
            object,
            region: region.clone(),
            cause,
        };
        let missing = match &outcome {
            Some(Slot::One(Err(FetchCause::NotFound)))
            | Some(Slot::Many(Err(PrefixFailure::Call(FetchCause::NotFound)))) => true,
            Some(Slot::Many(Ok(v))) => v.is_empty(),
            _ => false,
        };
        if missing && spec.optional {
            tracing::warn!(
                object = %spec.object.name,
                kind = spec.kind.as_str(),
                region = %region,
                "optional object not found: skipped, the mount goes on without it"
            );
            values.push(Got::Skipped);
            continue;
        }
        let got = match outcome {
            Some(Slot::One(Ok(v))) => Got::One(v),
            Some(Slot::Many(Ok(v))) if !v.is_empty() => Got::Many(v),
            Some(Slot::Many(Ok(_))) => {
                return Err(MountError::NoMatch {
                    kind: spec.kind.as_str(),
                    object: spec.object.name.clone(),
                    region: region.clone(),
                });
            }
            Some(Slot::One(Err(cause))) | Some(Slot::Many(Err(PrefixFailure::Call(cause)))) => {
                return Err(fetch_error(spec.object.name.clone(), cause));
            }
            Some(Slot::Many(Err(PrefixFailure::Entry { name, cause }))) => {
                return Err(MountError::Fetch {
                    kind: spec.kind.as_str(),
                    object: name,
                    region: format!("{region} (listed under prefix {:?})", &spec.object.name),
                    cause,
                });
            }
            Some(Slot::Many(Err(PrefixFailure::TooMany { count, capped }))) => {
                return Err(MountError::TooManyMatches {
                    object: spec.object.name.clone(),
                    count: if capped {
                        format!("{count} or more")
                    } else {
                        count.to_string()
                    },
                    what: match spec.kind {
                        ObjectKind::SecretsManager => "secrets",
                        ObjectKind::SsmParameter => "parameters",
                    },
                    limit: crate::objects::MAX_PREFIX_MATCHES,
                });
            }
            None => {
                return Err(fetch_error(
                    spec.object.name.clone(),
                    FetchCause::Transient {
                        message: "no result".into(),
                    },
                ));
            }
        };
        values.push(got);
    }
    Ok(values)
}
