//! Rotation, sync to Kubernetes Secrets and failover through the real secrets-store-csi-driver
//! v1.6.0, for our provider and the upstream one, over Pod Identity and over IRSA; and the
//! environment following the DaemonSets bootstrap renders (flags reach the processes; a flag
//! the process refuses is a crash-looping pod).
//!
//! Driver v1.6.0 semantics these tests rely on (pkg/secrets-store/nodeserver.go): kubelet
//! re-publishes volumes of a CSIDriver with `requiresRepublish: true`; with
//! `--enable-secret-rotation` the driver asks the provider again only when the mount's content
//! is older than `--rotation-poll-interval` (without it, a re-publish of a mounted volume is a
//! no-op); it passes no current object versions, so a provider cannot skip the fetch. Synced
//! Secrets are owned (the driver's patcher, every 5 s) by the SecretProviderClassPodStatus of
//! each pod mounting them, which the pod owns: the garbage collector deletes the Secret when
//! the last such pod is gone.
//!
//! One environment, one scenario at a time (they switch the cluster's provider); a guard puts
//! the environment back (our provider, the default driver, no fault) even when one fails.

mod common;
mod rotation;

use rotation::Provider;
use rotation::scenarios as rotation_scenarios;
use tokio::sync::Mutex;

/// Scenarios change the cluster's driver and provider: one at a time in this binary.
pub static SERIAL: Mutex<()> = Mutex::const_new(());

/// Whether the upstream provider can run here; with BOOTSTRAP_REQUIRE_ENV a missing build
/// fails when its source is present (tests/run.sh builds it), and is skipped otherwise.
fn upstream_runs() -> bool {
    if Provider::Upstream.available() {
        return true;
    }
    let src = std::env::var("BOOTSTRAP_UPSTREAM_SRC_DIR")
        .unwrap_or_else(|_| format!("{}/../../../shared/upstream", env!("CARGO_MANIFEST_DIR")));
    let tarball = format!("{src}/secrets-store-csi-driver-provider-aws-3.1.1.tar.gz");
    if std::path::Path::new(&tarball).exists()
        && std::env::var_os("BOOTSTRAP_REQUIRE_ENV").is_some()
    {
        panic!(
            "the upstream provider is not built but its source {tarball} is here: run tests/env/build.sh upstream-provider"
        );
    }
    bootstrap_common::testenv::skip(
        "the upstream provider is not built (tests/env/build.sh upstream-provider needs its source tarball)",
    );
    false
}

/// A scenario's hold on the environment: the guard that puts it back, dropped first, then
/// the binary's lock (the next scenario starts from the environment put back).
struct Exclusive {
    _restore: rotation::Restore,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

async fn exclusive(env: &common::Env) -> Exclusive {
    let serial = SERIAL.lock().await;
    Exclusive {
        _restore: rotation::Restore {
            state_dir: env.state_dir.clone(),
        },
        _serial: serial,
    }
}

/// Rotation and sync with `provider`, over Pod Identity then over IRSA.
async fn rotation_and_sync(env: &common::Env, provider: Provider) {
    let _exclusive = exclusive(env).await;
    for irsa in [false, true] {
        rotation_scenarios::rotation_and_sync(env, provider, irsa).await;
    }
}

#[tokio::test]
async fn the_environment_runs_the_flags_of_the_daemonsets_and_shows_a_refused_flag_as_a_crash_loop()
{
    let Some(env) = common::env() else { return };
    let _exclusive = exclusive(&env).await;
    rotation_scenarios::daemonsets_are_followed(&env).await;
}

#[tokio::test]
async fn rotation_and_sync_through_the_driver_with_our_provider() {
    let Some(env) = common::env() else { return };
    rotation_and_sync(&env, Provider::Ours).await;
}

#[tokio::test]
async fn rotation_and_sync_through_the_driver_with_the_upstream_provider() {
    let Some(env) = common::env() else { return };
    if !upstream_runs() {
        return;
    }
    rotation_and_sync(&env, Provider::Upstream).await;
}

#[tokio::test]
async fn failover_region_mounts_the_failover_object_with_both_providers() {
    let Some(env) = common::env() else { return };
    let upstream = upstream_runs();
    let _exclusive = exclusive(&env).await;
    let mut providers = vec![Provider::Ours];
    if upstream {
        providers.push(Provider::Upstream);
    }
    for provider in providers {
        for irsa in [false, true] {
            rotation_scenarios::failover(&env, provider, irsa).await;
        }
    }
}
