//! Leader election on a `coordination.k8s.io/v1` Lease, written on kube's API (no extra crate:
//! the loop is small, and the maintained crates pin other kube versions). One replica holds the
//! Lease and renews it; the others wait until it expires. Writes carry the Lease's
//! resourceVersion, so two replicas racing for an expired Lease cannot both win (409).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::error::StepError;

/// What a replica may do with the Lease as it reads it.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Free or expired: take it.
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Another replica holds it (its identity).
    Wait(String),
}

/// Pure: who may hold the Lease at `now`.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() {
        return Decision::Acquire;
    }
    if holder == me {
        return Decision::Renew;
    }
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    match renewed {
        Some(at) if at.as_second() + seconds > now.as_second() => {
            Decision::Wait(holder.to_string())
        }
        _ => Decision::Acquire,
    }
}

/// A replica's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The labels a Lease it creates carries: bootstrap's, for the cluster (so `down` finds it).
    labels: std::collections::BTreeMap<String, String>,
}

impl Elector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
        cluster: &str,
    ) -> Self {
        let mut extra = std::collections::BTreeMap::new();
        extra.insert(
            bootstrap_common::names::LABEL_CLUSTER.to_string(),
            cluster.to_string(),
        );
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            labels: crate::render::base_labels(crate::resources::controller::NAME, &extra),
        }
    }

    /// One attempt: `Ok(true)` when this replica holds the Lease afterwards.
    pub async fn try_hold(&self) -> Result<bool, StepError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.error("read", e))?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        if let Decision::Wait(_) = decision {
            return Ok(false);
        }
        let previous = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let transitions = previous.lease_transitions.unwrap_or(0);
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: match decision {
                Decision::Renew => previous.acquire_time.clone(),
                _ => Some(MicroTime(now)),
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(match decision {
                Decision::Acquire if current.is_some() => transitions + 1,
                _ => transitions,
            }),
            ..LeaseSpec::default()
        };
        let result = match current {
            Some(mut lease) => {
                lease.spec = Some(spec);
                // resourceVersion kept: a concurrent writer makes this a 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        labels: Some(self.labels.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.error("write", e)),
        }
    }

    /// Waits until this replica holds the Lease, saying who holds it meanwhile.
    pub async fn acquire(&self) -> Result<(), StepError> {
        let mut said = false;
        loop {
            if self.try_hold().await? {
                tracing::info!(
                    "leader election: {} holds Lease {}",
                    self.identity,
                    self.name
                );
                return Ok(());
            }
            if !said {
                tracing::info!(
                    "leader election: another replica holds Lease {}; waiting",
                    self.name
                );
                said = true;
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews until renewal fails for longer than the Lease lasts; returns the error then (the
    /// caller stops reconciling: another replica may already lead).
    pub async fn hold(&self) -> StepError {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_hold().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    return StepError::problem(format!(
                        "leader election: Lease {} was taken by another replica",
                        self.name
                    ));
                }
                Err(e) if last_ok.elapsed() >= self.duration * 2 / 3 => return e,
                Err(e) => tracing::warn!("leader election: renewal failed, retrying: {e}"),
            }
        }
    }

    fn error(&self, action: &'static str, source: kube::Error) -> StepError {
        crate::kube::KubeError::Api {
            action,
            resource: format!("Lease {}", self.name),
            source,
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: i64, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("time"))),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_live_lease_of_another_is_waited_for_an_expired_one_taken() {
        let now = Timestamp::from_second(1_000).expect("time");
        assert_eq!(decide(None, "a", now), Decision::Acquire);
        assert_eq!(decide(Some(&spec("a", 990, 15)), "a", now), Decision::Renew);
        assert_eq!(
            decide(Some(&spec("b", 990, 15)), "a", now),
            Decision::Wait("b".into())
        );
        assert_eq!(
            decide(Some(&spec("b", 985, 15)), "a", now),
            Decision::Acquire,
            "expired at 1000"
        );
        assert_eq!(
            decide(Some(&spec("", 999, 15)), "a", now),
            Decision::Acquire,
            "released"
        );
        let no_time = LeaseSpec {
            holder_identity: Some("b".into()),
            ..LeaseSpec::default()
        };
        assert_eq!(decide(Some(&no_time), "a", now), Decision::Acquire);
    }
}
