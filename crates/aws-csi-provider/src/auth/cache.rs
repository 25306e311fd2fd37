//! Per-identity credential cache: one fetch in flight per identity; a session is reused only
//! for a request carrying a token it was made from, and for at most `max_age`.
//!
//! Anyone who can reach the provider socket can name any pod (namespace, name, uid) in a
//! request, so a cached session must not be handed out on the pod's name alone: each session
//! remembers the SHA-256 digests of the service-account tokens the agent (or STS) accepted
//! for it, and a request whose token's digest is not among them is a miss — its token goes to
//! the agent, which refuses a forged one. The tokens themselves are never stored.
//!
//! Memory: one entry per pod (identity) mounted within `max_age`, at most [`MAX_SLOTS`]. An
//! entry is the credentials (their session token is most of it), the SHA-256 digests of the
//! tokens, and the SHA-256 of the identity as its key (not the identity's strings).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Identity;
use bootstrap_common::secret::SecretString;

/// Credentials are refreshed this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How long a session is reused at most by default (`--credential-max-age`): a deleted or
/// retargeted association stops working on remounts within this time.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// Token digests remembered per session (a pod's token refreshed by kubelet, or the pods of a
/// service account under `--credential-cache-scope service-account`); the oldest goes first.
const MAX_TOKENS: usize = 16;

/// SHA-256 of a token: what a session is bound to.
type TokenDigest = [u8; 32];

/// A cached session: the credentials, when they were made, and the tokens proven to own them.
struct Session {
    creds: Credentials,
    made: Instant,
    tokens: Vec<(TokenDigest, Instant)>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Session>>>;

/// SHA-256 of an [`Identity`]'s fields: the cache key (32 bytes instead of its four or five
/// strings; a collision would need a SHA-256 collision, and a session is still bound to its
/// tokens).
type IdentityKey = [u8; 32];

/// The entries and when stale ones were last dropped.
struct Slots {
    map: HashMap<IdentityKey, Slot>,
    swept: Instant,
}

/// Caches credentials per [`Identity`]. Credentials without an expiry are never cached.
pub struct CredentialCache {
    slots: Mutex<Slots>,
    max_age: Duration,
    bound: usize,
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_AGE)
    }
}

/// Whether a cached value was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
}

fn digest(token: &SecretString) -> TokenDigest {
    Sha256::digest(token.expose().as_bytes()).into()
}

fn key(identity: &Identity) -> IdentityKey {
    fn field(h: &mut Sha256, s: &str) {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    let mut h = Sha256::new();
    match identity.role_arn() {
        None => h.update([0]),
        Some(role_arn) => {
            h.update([1]);
            field(&mut h, role_arn);
        }
    }
    let (namespace, service_account, pod) = identity.account();
    field(&mut h, namespace);
    field(&mut h, service_account);
    match pod {
        None => h.update([0]),
        Some(p) => {
            h.update([1]);
            field(&mut h, &p.name);
            field(&mut h, &p.uid);
        }
    }
    h.finalize().into()
}

impl Session {
    /// Fresh: AWS's expiry is more than [`REFRESH_MARGIN`] away and it is younger than
    /// `max_age`.
    fn fresh(&self, now: SystemTime, max_age: Duration) -> bool {
        is_fresh(&self.creds, now) && self.made.elapsed() < max_age
    }

    /// Whether `token` was accepted for this session within `max_age` (constant time per
    /// comparison, so timing says nothing about how much of a digest matched).
    fn owned_by(&self, token: &TokenDigest, max_age: Duration) -> bool {
        self.tokens.iter().fold(false, |found, (d, at)| {
            let same: bool = d[..].ct_eq(&token[..]).into();
            found | (same && at.elapsed() < max_age)
        })
    }
}

impl CredentialCache {
    /// A cache whose sessions are reused for at most `max_age`, of at most [`MAX_SLOTS`]
    /// identities.
    pub fn new(max_age: Duration) -> Self {
        Self::with_bound(max_age, MAX_SLOTS)
    }

    /// The same with at most `bound` identities.
    pub fn with_bound(max_age: Duration, bound: usize) -> Self {
        Self {
            slots: Mutex::new(Slots {
                map: HashMap::new(),
                swept: Instant::now(),
            }),
            max_age,
            bound: bound.max(1),
        }
    }

    /// Identities cached now.
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the cached credentials of `identity` if they are fresh and were made from (or
    /// proven to belong to) `token`; otherwise runs `fetch` with that token (at most one fetch
    /// per identity at a time). A successful fetch caches its credentials; a failed one leaves
    /// the cached session untouched, so a forged request cannot evict a pod's session.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        identity: &Identity,
        token: &SecretString,
        fetch: F,
    ) -> Result<(Credentials, CacheOutcome), String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Credentials, String>>,
    {
        let slot = {
            let key = key(identity);
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if !slots.map.contains_key(&key) {
                if slots.map.len() >= self.bound {
                    slots.evict(self.max_age, self.bound);
                } else if slots.swept.elapsed() >= self.max_age {
                    slots.drop_stale(self.max_age);
                }
            }
            slots.map.entry(key).or_default().clone()
        };
        let token = digest(token);
        let mut guard = slot.lock().await;
        let fresh = guard
            .as_ref()
            .filter(|s| s.fresh(SystemTime::now(), self.max_age));
        if let Some(session) = fresh
            && session.owned_by(&token, self.max_age)
        {
            return Ok((session.creds.clone(), CacheOutcome::Hit));
        }
        let creds = fetch().await?;
        if creds.expiry().is_none() {
            return Ok((creds, CacheOutcome::Miss));
        }
        let now = Instant::now();
        // Tokens proven for the current session stay valid while they are young enough:
        // another token of the same identity (kubelet refreshed it, or another pod of the
        // service account) does not lock them out.
        let mut tokens: Vec<(TokenDigest, Instant)> = match guard.take() {
            Some(old) if old.fresh(SystemTime::now(), self.max_age) => old
                .tokens
                .into_iter()
                .filter(|(d, at)| {
                    at.elapsed() < self.max_age && !bool::from(d[..].ct_eq(&token[..]))
                })
                .collect(),
            _ => Vec::new(),
        };
        if tokens.len() >= MAX_TOKENS {
            tokens.remove(0);
        }
        tokens.push((token, now));
        tokens.shrink_to_fit();
        *guard = Some(Session {
            creds: creds.clone(),
            made: now,
            tokens,
        });
        Ok((creds, CacheOutcome::Miss))
    }

    /// Drops the cached credentials of `identity` (e.g. after AWS rejected them).
    pub fn invalidate(&self, identity: &Identity) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.map.remove(&key(identity));
    }
}

/// Identities cached at most. A node runs at most a few hundred pods (EKS's largest
/// `maxPods` is 737; 110 by default), so this holds every pod of a node; past it, entries
/// that are stale go first, then the oldest, each costing its pod one more credential
/// exchange at its next mount. Under `--credential-cache-scope service-account` an entry
/// is a service account.
pub const MAX_SLOTS: usize = 1024;

impl Slots {
    /// Drops the slots nobody is using whose credentials are missing or stale (they are
    /// never handed out again).
    fn drop_stale(&mut self, max_age: Duration) {
        let now = SystemTime::now();
        self.map.retain(|_, slot| {
            Arc::strong_count(slot) > 1
                || slot
                    .try_lock()
                    .map(|c| c.as_ref().is_some_and(|s| s.fresh(now, max_age)))
                    .unwrap_or(true)
        });
        self.swept = Instant::now();
    }

    /// Makes room under `bound`: the stale first; if every pod is still fresh, the oldest
    /// sessions nobody is using, down to three quarters of the bound (so the next new pods
    /// do not each pay for a sweep).
    fn evict(&mut self, max_age: Duration, bound: usize) {
        self.drop_stale(max_age);
        if self.map.len() < bound {
            return;
        }
        let mut idle: Vec<(Instant, IdentityKey)> = self
            .map
            .iter()
            .filter(|(_, slot)| Arc::strong_count(slot) == 1)
            .filter_map(|(k, slot)| {
                let made = slot.try_lock().ok()?.as_ref().map(|s| s.made)?;
                Some((made, *k))
            })
            .collect();
        idle.sort_unstable();
        let target = bound - bound / 4;
        let excess = self.map.len().saturating_sub(target);
        for (_, k) in idle.into_iter().take(excess) {
            self.map.remove(&k);
        }
        if self.map.len() >= bound {
            // Every entry is in use (more mounts in flight than the bound): start over.
            self.map.clear();
        }
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
#[path = "cache_tests.rs"]
mod tests;
