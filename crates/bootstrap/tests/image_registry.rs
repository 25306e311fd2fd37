//! The image module against the local environment's real registry (Debian's docker-registry,
//! tests/env/up.sh): push the OCI layout image/build.sh made into a new repository, push it
//! again (nothing uploaded twice), check that linux/amd64 passes, that requiring arm64 fails
//! naming it, and that a missing tag is "not found". Skipped without the environment.

mod common;

use std::collections::BTreeSet;

use bootstrap::image::{Credentials, ImageError, ImageRef, check, push};

fn archs(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn push_the_built_layout_then_check_it() {
    let Some(_env) = common::env() else { return };
    let Some((registry, layout)) = common::registry() else {
        return;
    };
    let digest = std::fs::read_to_string(format!("{layout}.digest"))
        .expect("tests/env/image.sh wrote the layout's digest")
        .trim()
        .to_string();
    let creds = Credentials::default().without_docker_config();
    let target =
        ImageRef::parse(&format!("{registry}/{}", common::unique("test/provider"))).unwrap();

    let pushed = push(layout.as_ref(), None, &target, &creds)
        .await
        .expect("push");
    assert_eq!(
        pushed.digest, digest,
        "the registry got the layout's manifest byte for byte"
    );
    assert_eq!(
        pushed.target.tag(),
        Some(env!("CARGO_PKG_VERSION")),
        "the layout's tag"
    );
    assert_eq!(
        (pushed.blobs_uploaded, pushed.blobs_present),
        (2, 0),
        "config + one layer"
    );
    assert_eq!(pushed.ecr_repository_created, None);
    let again = push(layout.as_ref(), None, &target, &creds)
        .await
        .expect("push again");
    assert_eq!((again.blobs_uploaded, again.blobs_present), (0, 2));

    let image = ImageRef::parse(&pushed.image()).unwrap();
    let report = check(&image, &archs(&["amd64"]), &creds)
        .await
        .expect("amd64 is offered");
    assert_eq!(report.digest, digest);
    assert_eq!(report.linux_architectures(), archs(&["amd64"]));
    let by_tag = check(&pushed.target, &archs(&["amd64"]), &creds)
        .await
        .expect("by tag");
    assert_eq!(by_tag.digest, digest);

    let err = check(&image, &archs(&["amd64", "arm64"]), &creds)
        .await
        .unwrap_err();
    let ImageError::MissingArchitectures { missing, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(missing, &archs(&["arm64"]));
    let text = err.to_string();
    assert!(
        text.contains("no linux/arm64 manifest")
            && text.contains(&pushed.target.repository().to_string()),
        "{text}"
    );
    assert!(err.hint().unwrap().contains("kubernetes.io/arch=arm64"));

    let err = check(
        &pushed.target.with_tag("no-such-tag"),
        &archs(&["amd64"]),
        &creds,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err:?}");
}

/// `bootstrap image push` runs through the executor: its dry run journals the push it plans,
/// the real run journals the same and pushes (the registry then serves the digest).
#[tokio::test]
async fn the_push_journals_what_its_dry_run_planned() {
    let Some(_env) = common::env() else { return };
    let Some((registry, layout)) = common::registry() else {
        return;
    };
    let target = format!("{registry}/{}:1", common::unique("test/journal"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (dry_log, real_log) = (dir.path().join("dry.log"), dir.path().join("real.log"));
    let args = |dry: bool| {
        let mut a = common::cli::args(&["image", "push", "--from", &layout, "--to", &target, "-q"]);
        if dry {
            a.push("--dry-run".into());
        }
        a
    };
    let out = common::cli::run_logged(args(true), Some(dry_log.clone())).await;
    common::cli::ok(&out, "image push --dry-run");
    let creds = Credentials::default().without_docker_config();
    let image = ImageRef::parse(&target).unwrap();
    assert!(
        check(&image, &archs(&["amd64"]), &creds).await.is_err(),
        "a dry run pushes nothing"
    );
    let out = common::cli::run_logged(args(false), Some(real_log.clone())).await;
    common::cli::ok(&out, "image push");
    let planned = common::cli::journal(&dry_log);
    assert_eq!(planned.len(), 1, "{planned:?}");
    assert!(planned[0].starts_with("registry: push "), "{planned:?}");
    assert_eq!(planned, common::cli::journal(&real_log));
    check(&image, &archs(&["amd64"]), &creds)
        .await
        .expect("pushed");
}
