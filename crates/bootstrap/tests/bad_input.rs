//! The CLI's bad-input corpus: flags and teams files, listed with the clear error each must
//! give (exit 2, the flag or file position named, nothing contacted), then fuzzed flag values
//! (never a panic; exit 0 or 2, and a 2 names the flag). `BOOTSTRAP_BAD_INPUT_REPORT=FILE`
//! writes the listed corpus as the markdown table of bench/RESULTS.md.

mod common;

use std::process::Output;

use proptest::prelude::*;

use common::cli::offline as bootstrap;

/// One listed bad input: what is run, and what its error must say.
struct Bad {
    input: &'static str,
    args: &'static [&'static str],
    /// A teams or values file written first; `{file}` in `args` is its path.
    file: Option<&'static str>,
    expect: &'static [&'static str],
}

const fn bad(
    input: &'static str,
    args: &'static [&'static str],
    expect: &'static [&'static str],
) -> Bad {
    Bad {
        input,
        args,
        file: None,
        expect,
    }
}

const fn bad_file(
    input: &'static str,
    args: &'static [&'static str],
    file: &'static str,
    expect: &'static [&'static str],
) -> Bad {
    Bad {
        input,
        args,
        file: Some(file),
        expect,
    }
}

/// A teams file given to `onboard -f FILE --dry-run`.
const fn teams_file(
    input: &'static str,
    file: &'static str,
    expect: &'static [&'static str],
) -> Bad {
    bad_file(
        input,
        &["onboard", "-f", "{file}", "--dry-run"],
        file,
        expect,
    )
}

const CORPUS: &[Bad] = &[
    bad(
        "cluster name with `!`",
        &["up", "--cluster", "bad_name!", "--dry-run"],
        &[
            "invalid --cluster",
            "bad_name!",
            "not a valid EKS cluster name",
        ],
    ),
    bad(
        "empty cluster name",
        &["up", "--cluster", "", "--dry-run"],
        &["invalid --cluster", "not a valid EKS cluster name"],
    ),
    bad(
        "cluster name of 101 characters",
        &[
            "up",
            "--cluster",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "--dry-run",
        ],
        &["invalid --cluster", "1-100"],
    ),
    bad(
        "namespace with capitals",
        &["up", "--cluster", "c", "--namespace", "Bad_NS", "--dry-run"],
        &[
            "invalid --namespace",
            "Bad_NS",
            "not a valid Kubernetes name",
        ],
    ),
    bad(
        "namespace path traversal",
        &["down", "--cluster", "c", "--namespace", "../x", "--dry-run"],
        &["invalid --namespace", "../x"],
    ),
    bad(
        "service account with capitals",
        &[
            "up",
            "--cluster",
            "c",
            "--service-account",
            "A",
            "--dry-run",
        ],
        &["invalid --service-account", "\"A\""],
    ),
    bad(
        "unknown duration unit",
        &["up", "--cluster", "c", "--timeout", "10x", "--dry-run"],
        &["invalid --timeout", "unknown unit \"x\""],
    ),
    bad(
        "zero rotation interval",
        &["up", "--cluster", "c", "--rotation", "0s", "--dry-run"],
        &["invalid --rotation", "\"0s\""],
    ),
    bad(
        "an IAM ARN as a secret",
        &[
            "up",
            "--cluster",
            "c",
            "--secret",
            "arn:aws:iam::1:role/x",
            "--dry-run",
        ],
        &[
            "invalid --secret",
            "is not a Secrets Manager secret or SSM parameter ARN",
        ],
    ),
    bad(
        "empty secret name",
        &["up", "--cluster", "c", "--secret", "", "--dry-run"],
        &["invalid --secret", "must not be empty"],
    ),
    bad(
        "image reference with a scheme",
        &[
            "up",
            "--cluster",
            "c",
            "--provider-image",
            "HTTP://x",
            "--dry-run",
        ],
        &[
            "invalid --provider-image",
            "HTTP://x",
            "[REGISTRY/]REPOSITORY",
        ],
    ),
    bad(
        "unknown provider",
        &["up", "--cluster", "c", "--provider", "nope", "--dry-run"],
        &["invalid value 'nope'", "rust"],
    ),
    bad(
        "--output-dir without --dry-run",
        &["up", "--cluster", "c", "--output-dir", "/tmp/x"],
        &["--dry-run"],
    ),
    bad(
        "missing values file",
        &[
            "up",
            "--cluster",
            "c",
            "--values",
            "/nonexistent/values.yaml",
            "--dry-run",
        ],
        &[
            "failed to read values file /nonexistent/values.yaml",
            "No such file",
        ],
    ),
    bad_file(
        "values file with an unknown key",
        &["up", "--cluster", "c", "--values", "{file}", "--dry-run"],
        "provider:\n  imagee: x\n",
        &["failed to parse values file", "imagee"],
    ),
    bad(
        "onboard concurrency 0",
        &["onboard", "--concurrency", "0", "-f", "x.yaml"],
        &["'0'", "1..=256"],
    ),
    bad(
        "missing teams file",
        &["onboard", "-f", "/nonexistent/teams.yaml", "--dry-run"],
        &["failed to read /nonexistent/teams.yaml"],
    ),
    teams_file(
        "teams file: unknown field",
        "cluster: demo\nteams:\n  - name: a\n    namespace: a\n    serviceAccount: app\n    secret: [{name: s}]\n",
        &["line 6 column 5", "unknown field `secret`"],
    ),
    teams_file(
        "teams file: not YAML",
        "cluster: demo\nteams: [\n",
        &["line 2 column 8", "unclosed bracket"],
    ),
    teams_file(
        "teams file: bad namespace",
        "cluster: demo\nteams:\n  - name: a\n    namespace: Payments\n    serviceAccount: app\n    secrets: [{name: s}]\n",
        &["team \"a\"", "Payments"],
    ),
    teams_file(
        "teams file: the same team twice",
        "cluster: demo\nteams:\n  - name: a\n    namespace: a\n    serviceAccount: app\n    secrets: [{name: s}]\n  - name: a\n    namespace: b\n    serviceAccount: app\n    secrets: [{name: s}]\n",
        &["input.yaml:7:5", "another team has the same name"],
    ),
    teams_file(
        "teams file: alias escaping the mount",
        "cluster: demo\nteams:\n  - name: a\n    namespace: a\n    serviceAccount: app\n    secrets: [{name: s, alias: ../../etc/passwd}]\n",
        &["team \"a\"", "alias"],
    ),
    teams_file(
        "teams file: file mode not octal",
        "cluster: demo\nteams:\n  - name: a\n    namespace: a\n    serviceAccount: app\n    secrets: [{name: s, filePermission: \"0999\"}]\n",
        &["team \"a\"", "0999"],
    ),
    teams_file(
        "teams file: allKeys on a prefix",
        "cluster: demo\nteams:\n  - namespace: a\n    serviceAccount: app\n    secrets:\n      - s\n      - {prefix: teams/a/, allKeys: true}\n",
        &[
            "input.yaml:7:9",
            "team \"a\"",
            "`allKeys` applies to one secret",
        ],
    ),
    teams_file(
        "teams file: failoverRegion is the cluster's region",
        "cluster: demo\nregion: eu-west-1\nteams:\n  - namespace: a\n    serviceAccount: app\n    failoverRegion: eu-west-1\n    secrets: [s]\n",
        &["input.yaml:4:5", "team \"a\"", "is the cluster's region"],
    ),
    bad(
        "image push to a reference with a space",
        &["image", "push", "--to", "a b"],
        &["invalid image reference \"a b\""],
    ),
    bad(
        "image push from a directory that is no OCI layout",
        &[
            "image",
            "push",
            "--to",
            "r.example/p@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "--from",
            "/nonexistent",
        ],
        &["OCI layout /nonexistent"],
    ),
];

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_listed_bad_input_gets_its_clear_error_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rows = Vec::new();
    for b in CORPUS {
        let path = dir.path().join("input.yaml");
        if let Some(content) = b.file {
            std::fs::write(&path, content).expect("write the file");
        }
        let path = path.to_string_lossy().into_owned();
        let args: Vec<&str> = b
            .args
            .iter()
            .map(|a| if *a == "{file}" { path.as_str() } else { a })
            .collect();
        let out = bootstrap(&args);
        let stderr = text(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: exit {:?}: {stderr}",
            b.input,
            out.status.code()
        );
        for want in b.expect {
            assert!(
                stderr.contains(want),
                "{}: {want:?} not in: {stderr}",
                b.input
            );
        }
        assert!(!stderr.contains("panicked"), "{}: {stderr}", b.input);
        let first: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Caused by") && !l.starts_with("For more"))
            .take(2)
            .collect();
        rows.push(format!(
            "| {} | `bootstrap {}` | {} | {} |",
            b.input,
            b.args.join(" ").replace('|', "\\|"),
            out.status.code().unwrap_or(-1),
            first.join(" — ").replace(&path, "FILE").replace('|', "\\|")
        ));
    }
    if let Some(report) = std::env::var_os("BOOTSTRAP_BAD_INPUT_REPORT") {
        let mut table =
            String::from("| Input | Command | Exit | Error (first lines) |\n|---|---|---|---|\n");
        for r in rows {
            table.push_str(&r);
            table.push('\n');
        }
        std::fs::write(report, table).expect("write the report");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any value of a validated flag: no panic, exit 0 (a valid value, offline plan) or 2
    /// naming the flag; never a failure of the run itself.
    #[test]
    fn fuzzed_flag_values_are_accepted_or_refused_by_name(
        flag in prop::sample::select(vec!["--cluster", "--namespace", "--service-account", "--timeout", "--rotation", "--secret", "--provider-image"]),
        value in "\\PC{0,40}",
    ) {
        // `--flag=VALUE`: a value starting with `-` is still this flag's value.
        let given = format!("{flag}={value}");
        let mut args = vec!["up", "--dry-run", "--output", "json", given.as_str()];
        if flag != "--cluster" {
            args.push("--cluster=c");
        }
        let out = bootstrap(&args);
        let code = out.status.code();
        prop_assert!(code == Some(0) || code == Some(2), "{flag}={value:?}: exit {code:?}: {}", text(&out));
        if code == Some(2) {
            let stderr = text(&out);
            prop_assert!(stderr.contains(flag), "{flag}={value:?}: {stderr}");
        }
    }
}
