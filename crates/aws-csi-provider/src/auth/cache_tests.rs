//! Unit tests of the credential cache: expiry, token binding, age cap, failures.

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

fn tok(s: &str) -> SecretString {
    SecretString::new(s.to_string())
}

const HOUR: Duration = Duration::from_secs(3600);

/// What a look-up of `token` in `cache` makes of a fetcher that answers `answer`.
async fn look_up(
    cache: &CredentialCache,
    token: &str,
    answer: Result<Credentials, String>,
) -> Result<CacheOutcome, String> {
    let (id, token) = (id(), tok(token));
    let fetched = cache.get_or_fetch(&id, &token, || async { answer }).await;
    fetched.map(|(_, outcome)| outcome)
}

#[tokio::test]
async fn caches_until_near_expiry() {
    let cache = CredentialCache::default();
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        let (_, _) = cache
            .get_or_fetch(&id(), &tok("t"), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(creds(HOUR))
            })
            .await
            .expect("creds");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    cache.invalidate(&id());
    let first = look_up(&cache, "t", Ok(creds(Duration::from_secs(60)))).await;
    assert_eq!(first, Ok(CacheOutcome::Miss));
    // 60 s left is inside the refresh margin: fetched again.
    let again = look_up(&cache, "t", Ok(creds(HOUR))).await;
    assert_eq!(again, Ok(CacheOutcome::Miss));
}

#[tokio::test]
async fn errors_are_not_cached() {
    let cache = CredentialCache::default();
    let failed = look_up(&cache, "t", Err("boom".to_string())).await;
    assert_eq!(failed, Err("boom".to_string()));
    let after = look_up(&cache, "t", Ok(creds(HOUR))).await;
    assert_eq!(after, Ok(CacheOutcome::Miss));
}

#[tokio::test]
async fn a_session_is_bound_to_the_token_it_was_made_from() {
    let cache = CredentialCache::default();
    cache
        .get_or_fetch(&id(), &tok("kubelet-token"), || async { Ok(creds(HOUR)) })
        .await
        .expect("first fetch");
    // Another token for the same identity is never served from the cache: it goes to the
    // fetcher (the agent), and when that refuses it the caller gets the refusal.
    let asked = AtomicUsize::new(0);
    let forged = cache
        .get_or_fetch(&id(), &tok("forged"), || async {
            asked.fetch_add(1, Ordering::SeqCst);
            Err("agent: invalid token".to_string())
        })
        .await;
    assert_eq!(forged.err().as_deref(), Some("agent: invalid token"));
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // The refused attempt did not evict the pod's session: kubelet's token still hits.
    let (_, outcome) = cache
        .get_or_fetch(&id(), &tok("kubelet-token"), || async {
            panic!("the pod's own token must hit the cache")
        })
        .await
        .expect("remount");
    assert_eq!(outcome, CacheOutcome::Hit);
    // A token the agent accepts (kubelet refreshed it) joins the session; both hit after.
    let refreshed = look_up(&cache, "refreshed", Ok(creds(HOUR))).await;
    assert_eq!(refreshed, Ok(CacheOutcome::Miss));
    for t in ["kubelet-token", "refreshed"] {
        let hit = look_up(&cache, t, Err("not asked".to_string())).await;
        assert_eq!(hit, Ok(CacheOutcome::Hit), "{t}");
    }
}

#[tokio::test]
async fn token_digests_per_session_are_bounded() {
    let cache = CredentialCache::default();
    for i in 0..(MAX_TOKENS + 4) {
        cache
            .get_or_fetch(&id(), &tok(&format!("t{i}")), || async { Ok(creds(HOUR)) })
            .await
            .expect("fetch");
    }
    // The oldest were forgotten (a miss), the newest are remembered (a hit).
    let miss = look_up(&cache, "t0", Err("asked".to_string())).await;
    assert_eq!(miss, Err("asked".to_string()));
    let last = format!("t{}", MAX_TOKENS + 3);
    let hit = look_up(&cache, &last, Err("asked".to_string())).await;
    assert_eq!(hit, Ok(CacheOutcome::Hit));
}

#[tokio::test]
async fn sessions_are_reused_for_at_most_max_age() {
    let cache = CredentialCache::new(Duration::from_millis(30));
    let calls = AtomicUsize::new(0);
    let fetch = || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(creds(HOUR))
    };
    cache
        .get_or_fetch(&id(), &tok("t"), fetch)
        .await
        .expect("first");
    // Older than max_age (the credentials themselves have an hour left): fetched again.
    std::thread::sleep(Duration::from_millis(40));
    let (_, outcome) = cache
        .get_or_fetch(&id(), &tok("t"), fetch)
        .await
        .expect("second");
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // And a long max age keeps it.
    let cache = CredentialCache::new(HOUR);
    cache
        .get_or_fetch(&id(), &tok("t"), fetch)
        .await
        .expect("first");
    let (_, outcome) = cache
        .get_or_fetch(&id(), &tok("t"), fetch)
        .await
        .expect("second");
    assert_eq!(outcome, CacheOutcome::Hit);
}

#[test]
fn digests_are_of_the_token_and_never_the_token() {
    let d = digest(&tok("abc"));
    // SHA-256("abc"), FIPS 180-2 test vector.
    assert_eq!(d[..4], [0xba, 0x78, 0x16, 0xbf]);
    assert_ne!(digest(&tok("abd")), d);
}

fn pod(n: usize) -> Identity {
    Identity::PodIdentity {
        namespace: "ns".into(),
        service_account: "sa".into(),
        pod: Some(super::super::PodKey {
            name: format!("web-{n}"),
            uid: format!("uid-{n}"),
        }),
    }
}

async fn mount(cache: &CredentialCache, n: usize, ttl: Duration) -> CacheOutcome {
    cache
        .get_or_fetch(&pod(n), &tok(&format!("t{n}")), || async { Ok(creds(ttl)) })
        .await
        .expect("creds")
        .1
}

#[tokio::test]
async fn the_cache_never_holds_more_than_its_bound() {
    let cache = CredentialCache::with_bound(HOUR, 8);
    for n in 0..100 {
        assert_eq!(mount(&cache, n, HOUR).await, CacheOutcome::Miss);
        assert!(cache.len() <= 8, "{} entries after pod {n}", cache.len());
        // The pod just mounted is cached: its remount is a hit.
        assert_eq!(mount(&cache, n, HOUR).await, CacheOutcome::Hit);
    }
    assert_eq!(CredentialCache::default().bound, MAX_SLOTS);
}

#[tokio::test]
async fn past_the_bound_the_oldest_sessions_go_first() {
    let cache = CredentialCache::with_bound(HOUR, 8);
    for n in 0..8 {
        mount(&cache, n, HOUR).await;
    }
    assert_eq!(cache.len(), 8);
    // A ninth pod: the two oldest go (down to 6), then it is added.
    mount(&cache, 8, HOUR).await;
    assert_eq!(cache.len(), 7);
    for n in 2..9 {
        assert_eq!(mount(&cache, n, HOUR).await, CacheOutcome::Hit, "pod {n}");
    }
    assert_eq!(
        mount(&cache, 0, HOUR).await,
        CacheOutcome::Miss,
        "the oldest"
    );
}

#[tokio::test]
async fn stale_sessions_are_dropped_before_the_bound_is_reached() {
    let max_age = Duration::from_millis(50);
    let cache = CredentialCache::with_bound(max_age, 1024);
    for n in 0..5 {
        mount(&cache, n, HOUR).await;
    }
    assert_eq!(cache.len(), 5);
    tokio::time::sleep(max_age * 2).await;
    // A new pod after max_age: the five sessions it outlived are gone.
    mount(&cache, 5, HOUR).await;
    assert_eq!(cache.len(), 1);
}

#[test]
fn identities_are_keyed_by_every_field() {
    let irsa = |role: &str, name: &str| Identity::Irsa {
        namespace: "ns".into(),
        service_account: "sa".into(),
        role_arn: role.into(),
        pod: Some(super::super::PodKey {
            name: name.into(),
            uid: "u".into(),
        }),
    };
    let keys = [
        key(&pod(1)),
        key(&pod(2)),
        key(&irsa("arn:r", "web-1")),
        key(&irsa("arn:r2", "web-1")),
        key(&irsa("arn:r", "web-2")),
        key(&id()),
    ];
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_eq!(key(&pod(1)), key(&pod(1)));
    // Length-prefixed: moving a character between fields changes the key.
    let split = |ns: &str, sa: &str| Identity::PodIdentity {
        namespace: ns.into(),
        service_account: sa.into(),
        pod: None,
    };
    assert_ne!(key(&split("ab", "c")), key(&split("a", "bc")));
}
