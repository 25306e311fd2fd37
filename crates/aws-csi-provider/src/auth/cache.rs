//! Per-identity credential cache: one fetch in flight per identity; a session is reused only
//! for a request carrying a token it was made from, and for at most `max_age`.
//!
//! Anyone who can reach the provider socket can name any pod (namespace, name, uid) in a
//! request, so a cached session must not be handed out on the pod's name alone: each session
//! remembers the SHA-256 digests of the service-account tokens the agent (or STS) accepted
//! for it, and a request whose token's digest is not among them is a miss — its token goes to
//! the agent, which refuses a forged one. The tokens themselves are never stored.

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

/// Caches credentials per [`Identity`]. Credentials without an expiry are never cached.
pub struct CredentialCache {
    slots: Mutex<HashMap<Identity, Slot>>,
    max_age: Duration,
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
    /// A cache whose sessions are reused for at most `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self {
            slots: Mutex::default(),
            max_age,
        }
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
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.len() >= MAX_SLOTS && !slots.contains_key(identity) {
                evict(&mut slots, self.max_age);
            }
            slots.entry(identity.clone()).or_default().clone()
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
        slots.remove(identity);
    }
}

/// Identities cached at most; past it stale and idle entries go first, then all.
pub const MAX_SLOTS: usize = 4096;

/// Makes room: drops the slots nobody is using whose credentials are missing or stale; if
/// that is not enough (every pod still fresh), starts over.
fn evict(slots: &mut HashMap<Identity, Slot>, max_age: Duration) {
    let now = SystemTime::now();
    slots.retain(|_, slot| {
        Arc::strong_count(slot) > 1
            || slot
                .try_lock()
                .map(|c| c.as_ref().is_some_and(|s| s.fresh(now, max_age)))
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
#[path = "cache_tests.rs"]
mod tests;
