//! Per-identity credential cache: one fetch in flight per identity, reuse until near expiry.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;

use super::Identity;

/// Credentials are refreshed this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

type Slot = Arc<tokio::sync::Mutex<Option<Credentials>>>;

/// Caches credentials per [`Identity`]. Credentials without an expiry are never cached.
#[derive(Default)]
pub struct CredentialCache {
    slots: Mutex<HashMap<Identity, Slot>>,
}

/// Whether a cached value was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
}

impl CredentialCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns cached credentials for `identity` if still fresh, else runs `fetch` (at most one
    /// fetch per identity at a time) and caches its result.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        identity: &Identity,
        fetch: F,
    ) -> Result<(Credentials, CacheOutcome), String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Credentials, String>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.len() >= MAX_SLOTS && !slots.contains_key(identity) {
                evict(&mut slots);
            }
            slots.entry(identity.clone()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some(creds) = guard.as_ref()
            && is_fresh(creds, SystemTime::now())
        {
            return Ok((creds.clone(), CacheOutcome::Hit));
        }
        let creds = fetch().await?;
        *guard = creds.expiry().map(|_| creds.clone());
        Ok((creds, CacheOutcome::Miss))
    }

    /// Drops the cached credentials of `identity` (e.g. after AWS rejected them).
    pub fn invalidate(&self, identity: &Identity) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(identity);
    }
}

/// Identities cached at most; past it stale and idle entries go first, then all.
pub const MAX_SLOTS: usize = 4096;

/// Makes room: drops the slots nobody is using whose credentials are missing or stale; if
/// that is not enough (every pod still fresh), starts over.
fn evict(slots: &mut HashMap<Identity, Slot>) {
    let now = SystemTime::now();
    slots.retain(|_, slot| {
        Arc::strong_count(slot) > 1
            || slot
                .try_lock()
                .map(|c| c.as_ref().is_some_and(|c| is_fresh(c, now)))
                .unwrap_or(true)
    });
    if slots.len() >= MAX_SLOTS {
        slots.clear();
    }
}

/// Fresh means: has an expiry, and it is more than [`REFRESH_MARGIN`] away.
pub fn is_fresh(creds: &Credentials, now: SystemTime) -> bool {
    creds.expiry().is_some_and(|exp| {
        exp.duration_since(now)
            .is_ok_and(|left| left > REFRESH_MARGIN)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn creds(ttl: Duration) -> Credentials {
        Credentials::new(
            "AKID",
            "SECRET",
            Some("TOKEN".into()),
            Some(SystemTime::now() + ttl),
            "test",
        )
    }

    fn id() -> Identity {
        Identity::PodIdentity {
            namespace: "ns".into(),
            service_account: "sa".into(),
            pod: None,
        }
    }

    #[tokio::test]
    async fn caches_until_near_expiry() {
        let cache = CredentialCache::new();
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            let (_, _) = cache
                .get_or_fetch(&id(), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(creds(Duration::from_secs(3600)))
                })
                .await
                .expect("creds");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache.invalidate(&id());
        let (_, outcome) = cache
            .get_or_fetch(&id(), || async { Ok(creds(Duration::from_secs(60))) })
            .await
            .expect("creds");
        assert_eq!(outcome, CacheOutcome::Miss);
        // 60 s left is inside the refresh margin: fetched again.
        let (_, outcome) = cache
            .get_or_fetch(&id(), || async { Ok(creds(Duration::from_secs(3600))) })
            .await
            .expect("creds");
        assert_eq!(outcome, CacheOutcome::Miss);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache = CredentialCache::new();
        let r = cache
            .get_or_fetch(&id(), || async { Err("boom".to_string()) })
            .await;
        assert!(r.is_err());
        let (_, outcome) = cache
            .get_or_fetch(&id(), || async { Ok(creds(Duration::from_secs(3600))) })
            .await
            .expect("creds");
        assert_eq!(outcome, CacheOutcome::Miss);
    }
}
