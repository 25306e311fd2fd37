//! Rotation rules with the driver v1.6 semantics: kubelet re-publishes the volumes of a
//! CSIDriver with `requiresRepublish: true` (its pod sync loop, about every 60–90 s), and the
//! driver's `--rotation-poll-interval` is the minimum age of a mount's content before such a
//! re-publish calls the provider again (the driver's own rotation loop is gone).
//!
//! The age is measured from the last time the content changed (the driver compares before it
//! writes), so once a quiet mount is older than the interval, every re-publish calls the
//! provider: an interval longer than kubelet's period delays rotation without saving calls.

use std::time::Duration;

use super::Check;
use crate::diagnose::facts::{CsiDriverFacts, DaemonSetFacts, flag_values};
use crate::render::csi_driver::DRIVER_NAME;

/// kubelet's default `--sync-frequency`: how often it re-publishes such volumes (plus up to
/// half of it in jitter). Not visible through the Kubernetes API.
pub const REPUBLISH_PERIOD: Duration = Duration::from_secs(60);
/// The driver's default `--rotation-poll-interval`.
pub const DRIVER_DEFAULT_INTERVAL: &str = "2m";
const PERIOD_TEXT: &str =
    "kubelet's re-publish period (about 60–90 s: its --sync-frequency, default 1m, plus jitter)";

/// The interval a rotating driver DaemonSet runs with (its last `--rotation-poll-interval`, or
/// the driver's default).
fn interval_of(ds: &DaemonSetFacts) -> String {
    flag_values(&ds.args, "rotation-poll-interval")
        .pop()
        .unwrap_or_else(|| DRIVER_DEFAULT_INTERVAL.to_string())
}

fn patch_republish() -> String {
    format!(
        "kubectl patch csidriver {DRIVER_NAME} --type=merge -p '{{\"spec\":{{\"requiresRepublish\":true}}}}'"
    )
}

/// `driver.rotation` (rotation and `requiresRepublish` agree) and, when rotation is on,
/// `driver.rotation-interval` per rotating driver DaemonSet.
pub fn checks(cluster: &str, drivers: &[&DaemonSetFacts], d: &CsiDriverFacts) -> Vec<Check> {
    let subject = format!("CSIDriver {DRIVER_NAME}");
    let rotating: Vec<&DaemonSetFacts> = drivers
        .iter()
        .copied()
        .filter(|ds| ds.flag_on("enable-secret-rotation"))
        .collect();
    let up = |interval: &str| format!("bootstrap up --cluster {cluster} --rotation {interval}");
    let mut out = Vec::new();
    match (rotating.first(), d.requires_republish) {
        (Some(ds), false) => {
            let fix = if d.owned {
                up(&interval_of(ds))
            } else {
                patch_republish()
            };
            out.push(
                Check::warn(
                    "driver.rotation",
                    &subject,
                    format!(
                        "DaemonSet {} runs the driver with --enable-secret-rotation but requiresRepublish is false: since driver v1.6.0 only kubelet's periodic re-publish of volumes whose CSIDriver sets requiresRepublish refreshes a mount (the driver's own rotation loop is gone), so mounted secrets are never refreshed",
                        ds.reference()
                    ),
                )
                .fix(fix),
            );
            return out;
        }
        (None, republish) => {
            let saw = if republish {
                "rotation off (no --enable-secret-rotation): kubelet re-publishes the volumes (requiresRepublish true) but the driver answers without calling the provider, so mounts are never refreshed"
            } else {
                "rotation off (no --enable-secret-rotation), requiresRepublish false: mounts are fetched once, at pod start"
            };
            out.push(Check::pass("driver.rotation", &subject, saw));
            return out;
        }
        (Some(_), true) => out.push(Check::pass(
            "driver.rotation",
            &subject,
            "rotation on (--enable-secret-rotation) and requiresRepublish true: kubelet's re-publishes refresh the mounts",
        )),
    }
    for ds in rotating {
        out.push(interval_check(ds, d.owned, &up));
    }
    out
}

fn interval_check(ds: &DaemonSetFacts, owned: bool, up: &dyn Fn(&str) -> String) -> Check {
    let subject = format!("DaemonSet {}", ds.reference());
    let interval = interval_of(ds);
    let suggested = format!("{}m", REPUBLISH_PERIOD.as_secs() / 60);
    let fix = if owned {
        up(&suggested)
    } else {
        format!(
            "set --rotation-poll-interval={suggested} on the secrets-store container of DaemonSet {} (Helm chart: --set rotationPollInterval={suggested})",
            ds.reference()
        )
    };
    let parsed = match bootstrap_common::parse_duration(&interval) {
        Ok(d) => d,
        Err(why) => {
            return Check::warn(
                "driver.rotation-interval",
                subject,
                format!("--rotation-poll-interval={interval} cannot be read ({why}); the driver refuses a value Go cannot parse and does not start"),
            )
            .fix(fix);
        }
    };
    if parsed > REPUBLISH_PERIOD {
        return Check::warn(
            "driver.rotation-interval",
            subject,
            format!(
                "--rotation-poll-interval={interval} is longer than {PERIOD_TEXT}. Since driver v1.6.0 it is not a poll period but the minimum age of a mount's content before a re-publish fetches again: a rotated secret reaches pods up to {interval} plus one re-publish after the content last changed, and once a mount is older than {interval} every re-publish calls the provider anyway, so the long interval delays rotation without saving AWS calls"
            ),
        )
        .fix(fix);
    }
    Check::pass(
        "driver.rotation-interval",
        subject,
        format!(
            "--rotation-poll-interval={interval}, not longer than {PERIOD_TEXT}: a rotated secret reaches pods within about one re-publish, and each re-publish calls the provider once per mount"
        ),
    )
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod tests;
