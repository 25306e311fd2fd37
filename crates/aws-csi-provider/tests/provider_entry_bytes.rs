//! What one more pod costs the provider's per-pod state, in heap bytes (counted by this test
//! binary's allocator): an entry of the credential cache and a client of the client cache.
//! `cargo test -p aws-csi-provider --test provider_entry_bytes -- --nocapture` prints them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_csi_provider::auth::cache::CredentialCache;
use aws_csi_provider::auth::{Identity, PodKey};
use aws_csi_provider::clients::{AwsFactory, SdkFactory, base_config};
use bootstrap_common::secret::SecretString;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Pods added per measurement (the cache's own bound is larger).
const PODS: usize = 512;
/// A Pod Identity session token is about this long (the agent's `Token`).
const SESSION_TOKEN_BYTES: usize = 1100;

fn creds(n: usize) -> Credentials {
    Credentials::new(
        format!("ASIA{n:016}"),
        "s".repeat(40),
        Some("T".repeat(SESSION_TOKEN_BYTES)),
        Some(SystemTime::now() + Duration::from_secs(3600)),
        "test",
    )
}

fn pod(n: usize) -> Identity {
    Identity::PodIdentity {
        namespace: "payments".into(),
        service_account: "payments-api".into(),
        pod: Some(PodKey {
            name: format!("payments-api-7f9c8d6b5-{n:05}"),
            uid: format!("6f1c2d3e-4b5a-4c6d-8e9f-{n:012}"),
        }),
    }
}

fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// One test, so no other test allocates while this one counts.
#[tokio::test(flavor = "current_thread")]
async fn bytes_per_pod() {
    let cache = CredentialCache::default();
    // Warm up (the map's first allocation, the runtime's).
    let token = SecretString::new("x".repeat(900));
    cache
        .get_or_fetch(&pod(usize::MAX), &token, || async { Ok(creds(0)) })
        .await
        .unwrap();
    let before = live();
    for n in 0..PODS {
        let c = creds(n);
        cache
            .get_or_fetch(&pod(n), &token, || async { Ok(c) })
            .await
            .unwrap();
    }
    let per_entry = (live() - before) / PODS as isize;
    let overhead = per_entry - SESSION_TOKEN_BYTES as isize;
    println!(
        "credential cache: {per_entry} bytes per pod ({SESSION_TOKEN_BYTES} of them the \
         session token, {overhead} the rest)"
    );
    // Credentials (token, keys, expiry), two digests, the slot and its map bucket.
    assert!(overhead < 900, "{overhead} bytes besides the session token");

    let factory = SdkFactory::new(base_config(|_| None).unwrap());
    let _ = factory.secrets_manager("us-west-2", &creds(usize::MAX));
    let before = live();
    let clients = 32;
    for n in 0..clients {
        let _ = factory.secrets_manager("us-west-2", &creds(n));
    }
    let per_client = (live() - before) / clients as isize;
    println!("client cache: {per_client} bytes per pod (a Secrets Manager client)");
    assert!(per_client > 0);
}
