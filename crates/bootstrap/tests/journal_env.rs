//! Against the local stand-in: for `up`, `onboard` and `down`, the executor's journal of a
//! real run equals its dry run's on the same starting state (`migrate`'s is in
//! migrate_env.rs, where its IRSA fixtures live); and the four commands' JSON reports are read
//! by one parser (`changes` with created, updated, deleted, unchanged).

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::cli::{journal, json_args, json_of, ok, run_logged, teams_file};

/// The tests share the cluster's platform: one at a time.
/// The one parser: every writing command's report has `changes` with these four counts.
fn changes_of(report: &Value) -> [u64; 4] {
    ["created", "updated", "deleted", "unchanged"].map(|k| {
        report["changes"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("no changes.{k} in {report:#}"))
    })
}

/// Runs `cmd` dry (with `--dry-run` added) then for real, each journaling to its own file;
/// returns both journals (sorted: steps run at once) and the real run's report.
async fn dry_then_real(
    dir: &Path,
    name: &str,
    cmd: Vec<String>,
    dry_flag: Option<&str>,
) -> (Vec<String>, Vec<String>, Value, Value) {
    let (dry_log, real_log): (PathBuf, PathBuf) = (
        dir.join(format!("{name}-dry.log")),
        dir.join(format!("{name}-real.log")),
    );
    let mut dry = cmd.clone();
    if let Some(flag) = dry_flag {
        dry.push(flag.into());
    }
    let out = run_logged(dry, Some(dry_log.clone())).await;
    ok(&out, &format!("{name} (dry run)"));
    let dry_report = json_of(&out);
    let mut real = cmd;
    if name == "down" {
        real.push("--yes".into());
    }
    let out = run_logged(real, Some(real_log.clone())).await;
    ok(&out, name);
    (
        journal(&dry_log),
        journal(&real_log),
        dry_report,
        json_of(&out),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_run_journals_exactly_what_its_dry_run_planned() {
    let mut s = common::session!(serial, "jr");
    let (env, tag, _, _, cleanup) = s.parts();
    let cfg = common::aws().await;
    let (up_ns, team_ns) = (format!("{tag}-up"), format!("{tag}-team"));
    cleanup.namespaces = vec![up_ns.clone(), team_ns.clone()];
    let secret = format!("{tag}/db");
    cleanup.secret(&cfg, &secret, &common::unique("v")).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let up = json_args(
        "up",
        &env.cluster,
        &[
            "--namespace",
            &up_ns,
            "--service-account",
            "app",
            "--secret",
            &secret,
            "--timeout",
            "5m",
        ],
    );
    let (dry, real, planned, done) = dry_then_real(dir.path(), "up", up, Some("--dry-run")).await;
    assert!(
        real.iter().any(|l| l.starts_with("iam:CreateRole")),
        "{real:#?}"
    );
    assert_eq!(dry, real, "up: the dry run's journal is the real run's");
    assert_eq!(changes_of(&planned), changes_of(&done), "up: same counts");

    let teams = teams_file(dir.path(), &[(tag, &team_ns, "api", &secret)]);
    let teams = teams.to_str().expect("utf-8 path");
    let onboard = json_args("onboard", &env.cluster, &["-f", teams, "--timeout", "5m"]);
    let (dry, real, planned, done) =
        dry_then_real(dir.path(), "onboard", onboard, Some("--dry-run")).await;
    assert!(
        real.iter().any(|l| l.contains("PodIdentityAssociation")),
        "{real:#?}"
    );
    assert_eq!(
        dry, real,
        "onboard: the dry run's journal is the real run's"
    );
    assert_eq!(changes_of(&planned), changes_of(&done));
    assert!(
        changes_of(&done)[0] > 0,
        "onboard created the team: {done:#}"
    );

    for ns in [&up_ns, &team_ns] {
        let down = json_args("down", &env.cluster, &["--namespace", ns]);
        let (dry, real, planned, done) =
            dry_then_real(dir.path(), "down", down, Some("--dry-run")).await;
        assert!(
            real.iter().any(|l| l.starts_with("iam:DeleteRole")),
            "{real:#?}"
        );
        assert_eq!(dry, real, "down: the dry run's journal is the real run's");
        assert_eq!(changes_of(&planned), changes_of(&done));
        assert!(changes_of(&done)[2] > 0, "down deleted: {done:#}");
    }

    // migrate on a cluster with nothing on IRSA in this namespace: the same shape, all zero.
    let migrate = json_args("migrate", &env.cluster, &["--namespace", &up_ns]);
    let out = run_logged(migrate, None).await;
    ok(&out, "migrate");
    assert_eq!(changes_of(&json_of(&out)), [0, 0, 0, 0]);
}
