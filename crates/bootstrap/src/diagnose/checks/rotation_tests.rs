use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::Value;

use super::*;
use crate::diagnose::checks::Status::{self, Pass, Warn};
use crate::diagnose::checks::test_support::{assert_saw, expect, fix, only};
use crate::diagnose::facts::Component;
use crate::render::csi_driver::{self, CsiDriverValues, DEFAULT_ROTATION_INTERVAL, Rotation};

const DS: &str = "kube-system/secrets-store-csi-driver";

fn driver_ds(args: &[&str]) -> DaemonSetFacts {
    DaemonSetFacts {
        namespace: "kube-system".into(),
        name: "secrets-store-csi-driver".into(),
        component: Component::Driver,
        args: args.iter().map(|a| a.to_string()).collect(),
        ..DaemonSetFacts::default()
    }
}

fn csidriver(requires_republish: bool, owned: bool) -> CsiDriverFacts {
    CsiDriverFacts {
        audiences: Vec::new(),
        requires_republish,
        owned,
    }
}

fn run(args: &[&str], republish: bool, owned: bool) -> Vec<Check> {
    let ds = driver_ds(args);
    checks("demo", &[&ds], &csidriver(republish, owned))
}

#[test]
fn rotation_without_requires_republish_warns_with_the_fix() {
    let c = run(
        &[
            "--enable-secret-rotation=true",
            "--rotation-poll-interval=30s",
        ],
        false,
        false,
    );
    let rot = expect(&c, "driver.rotation", Warn);
    assert_saw(rot, &[DS, "never refreshed"]);
    assert_eq!(
        fix(rot),
        r#"kubectl patch csidriver secrets-store.csi.k8s.io --type=merge -p '{"spec":{"requiresRepublish":true}}'"#
    );
    assert!(
        c.iter().all(|c| c.check != "driver.rotation-interval"),
        "no interval advice while nothing re-publishes: {c:#?}"
    );
    // bootstrap's own CSIDriver: re-run up with the interval the driver already uses.
    let c = run(
        &[
            "--enable-secret-rotation",
            "--rotation-poll-interval",
            "30s",
        ],
        false,
        true,
    );
    assert_eq!(
        fix(only(&c, "driver.rotation")),
        "bootstrap up --cluster demo --rotation 30s"
    );
}

#[test]
fn an_interval_longer_than_the_republish_period_warns_with_the_fix() {
    let c = run(
        &[
            "--enable-secret-rotation=true",
            "--rotation-poll-interval=1h",
        ],
        true,
        true,
    );
    expect(&c, "driver.rotation", Pass);
    let interval = expect(&c, "driver.rotation-interval", Warn);
    assert_saw(
        interval,
        &[
            "--rotation-poll-interval=1h is longer than kubelet's re-publish period",
            "minimum age",
            "up to 1h plus one re-publish",
            "without saving AWS calls",
        ],
    );
    assert_eq!(interval.subject, format!("DaemonSet {DS}"));
    assert_eq!(fix(interval), "bootstrap up --cluster demo --rotation 1m");
    // Someone else's driver: say which flag to change where.
    let c = run(
        &[
            "--enable-secret-rotation=true",
            "--rotation-poll-interval=1h",
        ],
        true,
        false,
    );
    assert_eq!(
        fix(only(&c, "driver.rotation-interval")),
        "set --rotation-poll-interval=1m on the secrets-store container of DaemonSet kube-system/secrets-store-csi-driver (Helm chart: --set rotationPollInterval=1m)"
    );
}

#[test]
fn the_boundary_is_the_period_and_the_drivers_default_is_past_it() {
    for (args, want) in [
        (vec!["--rotation-poll-interval=60s"], Pass),
        (vec!["--rotation-poll-interval=1m"], Pass),
        (vec!["--rotation-poll-interval", "15s"], Pass),
        (vec!["--rotation-poll-interval=61s"], Warn),
        (vec!["--rotation-poll-interval=1m1s"], Warn),
        // No flag: the driver's own default, 2m.
        (vec![], Warn),
        // The last occurrence wins, as with Go's flag package.
        (
            vec![
                "--rotation-poll-interval=1h",
                "--rotation-poll-interval=30s",
            ],
            Pass,
        ),
    ] {
        let mut all = vec!["--enable-secret-rotation"];
        all.extend(args.iter().copied());
        let c = run(&all, true, true);
        let got = only(&c, "driver.rotation-interval");
        assert_eq!(got.status, want, "{args:?}: {}", got.saw);
    }
    let c = run(&["--enable-secret-rotation"], true, true);
    assert_saw(
        expect(&c, "driver.rotation-interval", Warn),
        &["--rotation-poll-interval=2m"],
    );
}

#[test]
fn an_unreadable_interval_warns() {
    let c = run(
        &["--enable-secret-rotation", "--rotation-poll-interval=soon"],
        true,
        true,
    );
    let got = expect(&c, "driver.rotation-interval", Warn);
    assert_saw(got, &["cannot be read"]);
    assert_eq!(fix(got), "bootstrap up --cluster demo --rotation 1m");
}

#[test]
fn rotation_off_passes_and_says_what_republish_does() {
    for republish in [false, true] {
        let c = run(&["--rotation-poll-interval=1h"], republish, true);
        assert_eq!(c.len(), 1, "{c:#?}");
        let rot = expect(&c, "driver.rotation", Pass);
        assert!(rot.saw.starts_with("rotation off"), "{}", rot.saw);
    }
}

#[test]
fn each_rotating_driver_daemonset_gets_its_own_interval_check() {
    let quiet = driver_ds(&["--rotation-poll-interval=1h"]);
    let mut fast = driver_ds(&["--enable-secret-rotation", "--rotation-poll-interval=30s"]);
    fast.name = "fast".into();
    let mut slow = driver_ds(&["--enable-secret-rotation", "--rotation-poll-interval=10m"]);
    slow.name = "slow".into();
    let c = checks("demo", &[&quiet, &fast, &slow], &csidriver(true, true));
    let intervals: Vec<(&str, Status)> = c
        .iter()
        .filter(|c| c.check == "driver.rotation-interval")
        .map(|c| (c.subject.as_str(), c.status))
        .collect();
    assert_eq!(
        intervals,
        [
            ("DaemonSet kube-system/fast", Pass),
            ("DaemonSet kube-system/slow", Warn)
        ]
    );
}

/// What `bootstrap up --rotation` renders (the flag's default interval) passes doctor's rule.
#[test]
fn what_up_rotation_renders_passes() {
    let values = CsiDriverValues {
        rotation: Rotation {
            enabled: true,
            poll_interval: DEFAULT_ROTATION_INTERVAL.into(),
        },
        ..CsiDriverValues::default()
    };
    let objects = csi_driver::render(&values).expect("render");
    let ds: Value = objects
        .iter()
        .find(|o| o["kind"] == "DaemonSet")
        .cloned()
        .expect("a DaemonSet");
    let ds: DaemonSet = serde_json::from_value(ds).expect("DaemonSet");
    let republish = objects
        .iter()
        .find(|o| o["kind"] == "CSIDriver")
        .and_then(|o| o["spec"]["requiresRepublish"].as_bool())
        .expect("requiresRepublish");
    let facts = DaemonSetFacts::from_k8s(&ds, &[]);
    let c = checks("demo", &[&facts], &csidriver(republish, true));
    assert!(c.iter().all(|c| c.status == Pass), "{c:#?}");
    assert_eq!(c.len(), 2, "{c:#?}");
}
