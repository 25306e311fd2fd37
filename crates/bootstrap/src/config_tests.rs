//! Unit tests of settings resolution.

use super::*;
use clap::Parser;

fn up(args: &[&str]) -> Result<UpSettings, ConfigError> {
    let mut argv = vec!["bootstrap", "up"];
    argv.extend_from_slice(args);
    let cli = crate::cli::Cli::try_parse_from(argv).expect("parses");
    let crate::cli::Command::Up(up) = cli.command else {
        panic!("up")
    };
    resolve_up(&up)
}

#[test]
fn durations() {
    for (text, secs) in [("90s", 90), ("10m", 600), ("1m30s", 90), ("45", 45)] {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_secs(secs)),
            "{text}"
        );
    }
    for bad in ["", "m", "10x", "0s", "5m3"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn defaults_create_a_demo_secret() {
    let s = up(&["--cluster", "demo", "--region", "eu-west-1"]).expect("valid");
    assert!(s.create_demo_secret);
    assert_eq!(s.namespace, "bootstrap-demo");
    assert_eq!(s.timeout, Duration::from_secs(600));
    assert!(!s.csi_driver.rotation.enabled);
    let s = up(&["--cluster", "demo", "--secret", "x", "--rotation", "1m"]).expect("valid");
    assert!(!s.create_demo_secret);
    assert!(s.csi_driver.rotation.enabled);
}

#[test]
fn invalid_names_are_rejected_with_the_flag() {
    for (args, flag) in [
        (vec!["--cluster", "bad name"], "--cluster"),
        (vec!["--cluster", "c", "--namespace", "Bad"], "--namespace"),
        (
            vec!["--cluster", "c", "--service-account", "a_b"],
            "--service-account",
        ),
        (vec!["--cluster", "c", "--timeout", "soon"], "--timeout"),
        (vec!["--cluster", "c", "--region", "US EAST"], "--region"),
    ] {
        let err = up(&args).expect_err("invalid");
        assert!(err.to_string().contains(flag), "{err}");
    }
}

#[test]
fn values_file_sections_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("values.yaml");
    std::fs::write(&path, "csiDriver:\n  imageRegistry: mirror.local\n").expect("write");
    let s = up(&[
        "--cluster",
        "c",
        "--values",
        path.to_str().expect("utf8"),
        "--sync-secrets",
    ])
    .expect("valid");
    assert_eq!(s.csi_driver.image_registry, "mirror.local");
    assert!(s.csi_driver.sync_secrets);
    std::fs::write(&path, "csiDriver:\n  imageRegistri: typo\n").expect("write");
    let err = up(&["--cluster", "c", "--values", path.to_str().expect("utf8")]).expect_err("typo");
    assert!(matches!(err, ConfigError::ParseValues { .. }));
}
