//! The provider image check `up` and `onboard` run before any write: the registry must serve
//! the image (ours, upstream's, or a mirror) for every `kubernetes.io/arch` among the
//! cluster's Linux EC2 nodes, or the run stops naming the image, the architecture, the nodes
//! and the fix. The result is a `check` line of the provider step.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::StepError;
use crate::image::{self, Credentials, ImageError, ImageRef};
use crate::plan::{Action, Change};
use crate::target::{NodePlatform, Target};

/// Whether to ask the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageCheck {
    #[default]
    Check,
    /// `--skip-image-check`: the nodes pre-pull it (air-gapped), nothing is asked.
    Skip,
}

/// The architectures the provider DaemonSet needs, each with the nodes that need it: Linux
/// EC2 nodes (Fargate runs no DaemonSet; Windows nodes get no provider pod). Nodes without an
/// architecture label are left out (the kubelet always sets it).
pub fn architectures(nodes: &[NodePlatform]) -> BTreeMap<String, Vec<String>> {
    let mut by_arch: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in nodes
        .iter()
        .filter(|n| n.runs_linux_daemonsets() && !n.arch.is_empty())
    {
        by_arch
            .entry(n.arch.clone())
            .or_default()
            .push(n.name.clone());
    }
    by_arch
}

/// What checking the provider image found.
#[derive(Debug)]
pub struct Checked {
    /// The plan's `check` line.
    pub change: Change,
    /// The reference pinned to the digest the registry served (`REPO:TAG@sha256:…`): what the
    /// DaemonSet deploys, so nodes run exactly the image that was checked even if the tag
    /// moves. `None` when nothing was resolved (offline, skipped) or the reference already
    /// names a digest.
    pub pinned: Option<String>,
}

impl Checked {
    fn unpinned(change: Change) -> Self {
        Self {
            change,
            pinned: None,
        }
    }
}

/// Checks `image` (`None`: this build has no default and none was given) against the
/// target's nodes. Offline or skipped, it says so instead of asking.
pub async fn check(
    image: Option<&str>,
    t: &Target,
    mode: ImageCheck,
    dry_run: bool,
) -> Result<Checked, StepError> {
    let Some(image) = image else {
        if dry_run {
            return Ok(Checked::unpinned(
                Change::new(Action::Check, "provider image <none>").note(
                    "no release registry configured in this build: a real run needs \
                     --provider-image REGISTRY/REPO:TAG (`bootstrap image push` puts the image there)",
                ),
            ));
        }
        return Err(image_error(ImageError::NoDefaultImage, "", None));
    };
    let line = format!("provider image {image}");
    let reference = ImageRef::parse(image).map_err(|e| image_error(e, image, None))?;
    if mode == ImageCheck::Skip {
        return Ok(Checked::unpinned(Change::new(Action::Check, line).note(
            "not checked (--skip-image-check): every node must already have it or pull it",
        )));
    }
    if t.is_offline() {
        return Ok(Checked::unpinned(Change::new(Action::Check, line).note(
            "not checked: planning offline, no cluster nodes to check against",
        )));
    }
    let by_arch = architectures(&t.cluster.nodes);
    if by_arch.is_empty() {
        return Ok(Checked::unpinned(Change::new(Action::Check, line).note(
            "not checked: no Linux EC2 node with a kubernetes.io/arch label",
        )));
    }
    let archs: BTreeSet<String> = by_arch.keys().cloned().collect();
    let mut credentials = Credentials::default();
    if let Some(aws) = t.aws() {
        credentials = credentials.with_aws(aws.config.clone());
    }
    match image::check(&reference, &archs, &credentials).await {
        Ok(report) => {
            let counts: Vec<String> = by_arch
                .iter()
                .map(|(arch, nodes)| format!("linux/{arch} for {} node(s)", nodes.len()))
                .collect();
            let pinned = reference.digest().is_none().then(|| report.pinned());
            let deployed = pinned
                .as_deref()
                .map(|p| format!("; deployed as {p}"))
                .unwrap_or_default();
            Ok(Checked {
                change: Change::new(Action::Check, line).note(format!(
                    "{} in the registry ({}, credentials: {}){deployed}",
                    counts.join(", "),
                    report.digest,
                    report.auth
                )),
                pinned,
            })
        }
        Err(e) => Err(image_error(e, image, Some(&by_arch))),
    }
}

/// The step error for an image problem: what failed, on which nodes, and the fix.
fn image_error(
    e: ImageError,
    image: &str,
    by_arch: Option<&BTreeMap<String, Vec<String>>>,
) -> StepError {
    let mut message = if image.is_empty() {
        format!("{e}")
    } else {
        format!("the provider image cannot be deployed: {e}")
    };
    let affected: Vec<String> = match (&e, by_arch) {
        (ImageError::MissingArchitectures { missing, .. }, Some(by_arch)) => missing
            .iter()
            .filter_map(|arch| by_arch.get(arch).map(|nodes| (arch, nodes)))
            .map(|(arch, nodes)| format!("{} ({arch})", nodes.join(", ")))
            .collect(),
        (_, Some(by_arch)) => by_arch
            .iter()
            .map(|(arch, nodes)| format!("{} ({arch})", nodes.join(", ")))
            .collect(),
        (_, None) => Vec::new(),
    };
    if !affected.is_empty() {
        message.push_str(&format!(
            "; node(s) that could not run the provider: {}",
            affected.join("; ")
        ));
    }
    message.push_str("; nothing was applied");
    let hint = e.hint().unwrap_or_else(|| {
        "pass another --provider-image, or --skip-image-check if every node pre-pulls it".into()
    });
    let hint = if hint.contains("--skip-image-check") {
        hint
    } else {
        format!("{hint} (--skip-image-check skips this check when the nodes pre-pull the image)")
    };
    StepError::problem(message).with_hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, os: &str, arch: &str, fargate: bool) -> NodePlatform {
        NodePlatform {
            name: name.into(),
            os: os.into(),
            arch: arch.into(),
            fargate,
        }
    }

    #[test]
    fn architectures_of_linux_ec2_nodes_only() {
        let nodes = [
            node("a", "linux", "amd64", false),
            node("b", "linux", "arm64", false),
            node("c", "linux", "amd64", false),
            node("fargate-ip-1", "linux", "amd64", true),
            node("win", "windows", "amd64", false),
            node("unlabelled", "linux", "", false),
        ];
        let by_arch = architectures(&nodes);
        assert_eq!(by_arch.len(), 2);
        assert_eq!(by_arch["amd64"], ["a", "c"]);
        assert_eq!(by_arch["arm64"], ["b"]);
        let only_fargate = architectures(&[node("f", "linux", "arm64", true)]);
        assert!(only_fargate.is_empty());
    }

    #[test]
    fn a_missing_architecture_names_the_nodes_and_the_fix() {
        let by_arch = architectures(&[
            node("ip-1", "linux", "amd64", false),
            node("graviton-1", "linux", "arm64", false),
        ]);
        let e = ImageError::MissingArchitectures {
            image: "r.example/p:1".into(),
            missing: ["arm64".to_string()].into(),
            offered: ["amd64".to_string()].into(),
        };
        let err = image_error(e, "r.example/p:1", Some(&by_arch));
        let text = err.to_string();
        assert!(text.contains("r.example/p:1"), "{text}");
        assert!(text.contains("linux/arm64"), "{text}");
        assert!(text.contains("graviton-1 (arm64)"), "{text}");
        assert!(
            !text.contains("ip-1"),
            "only the nodes that cannot run it: {text}"
        );
        assert!(text.contains("nothing was applied"), "{text}");
        let hint = err.hint().expect("a hint");
        assert!(hint.contains("--provider-image"), "{hint}");
        assert!(hint.contains("--skip-image-check"), "{hint}");
    }

    #[tokio::test]
    async fn no_default_image_is_a_note_in_a_dry_run_and_an_error_otherwise() {
        let t = Target::offline("c", None);
        let planned = check(None, &t, ImageCheck::Check, true).await.unwrap();
        assert!(planned.pinned.is_none());
        let planned = planned.change;
        assert!(
            planned
                .note
                .as_deref()
                .unwrap()
                .contains("no release registry configured"),
            "{planned:?}"
        );
        let err = check(None, &t, ImageCheck::Check, false)
            .await
            .expect_err("a real run needs an image");
        assert!(err.to_string().contains("no release registry configured"));
        assert!(err.hint().unwrap().contains("--provider-image"));
        // Skipping the check does not make a missing image deployable.
        assert!(check(None, &t, ImageCheck::Skip, false).await.is_err());
    }

    #[tokio::test]
    async fn bad_references_fail_and_offline_or_skipped_checks_say_so() {
        let t = Target::offline("c", None);
        let err = check(Some("HTTP://x"), &t, ImageCheck::Check, true)
            .await
            .expect_err("invalid");
        assert!(err.to_string().contains("invalid image reference"), "{err}");
        let offline = check(Some("r.example/p:1"), &t, ImageCheck::Check, true)
            .await
            .unwrap();
        assert!(offline.pinned.is_none(), "nothing resolved, nothing pinned");
        assert!(offline.change.note.unwrap().contains("planning offline"));
        let skipped = check(Some("r.example/p:1"), &t, ImageCheck::Skip, false)
            .await
            .unwrap();
        assert!(skipped.pinned.is_none());
        assert!(skipped.change.note.unwrap().contains("--skip-image-check"));
    }
}
