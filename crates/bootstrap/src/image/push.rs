//! Copies an OCI image layout (what image/build.sh writes: one image, or a multi-arch index)
//! into `REGISTRY/REPO[:TAG]` byte for byte, so digests are kept; blobs the registry already
//! has are not uploaded again. When the target is a private ECR registry and the repository
//! does not exist, it is created first: tagged as bootstrap's, scan-on-push on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oci_client::RegistryOperation;
use reqwest::header::HeaderValue;
use serde::{Deserialize, Serialize};

use super::auth::{AuthSource, Credentials};
use super::error::{ImageError, Operation};
use super::reference::ImageRef;
use super::registry::{AnyManifest, Platform, PlatformJson, classify, client_for, pinned};

/// What a push did; serialized, what `image push --output json` prints of it after the
/// pinned reference.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// Where it went, with the tag.
    #[serde(skip)]
    pub target: ImageRef,
    /// The digest of the pushed manifest or index (the layout's own).
    pub digest: String,
    #[serde(skip)]
    pub media_type: String,
    pub platforms: BTreeSet<Platform>,
    pub blobs_uploaded: usize,
    pub blobs_present: usize,
    /// An ECR repository this push created (tagged as bootstrap's).
    pub ecr_repository_created: Option<String>,
    #[serde(skip)]
    pub auth: AuthSource,
}

impl PushReport {
    /// The reference to deploy: `REGISTRY/REPO:TAG@sha256:…` (`--provider-image`).
    pub fn image(&self) -> String {
        pinned(&self.target, &self.digest)
    }
}

/// Pushes the image tagged `tag` in the layout at `layout` (or its only image when `tag` is
/// `None`) to `target`, whose repository must exist (an ECR repository is made by `image
/// push`'s plan, `resources::image_push`). The target's tag, when written, wins; else the
/// layout's tag is used (see [`resolve_target`]; a resolved target resolves to itself).
pub async fn push(
    layout: &Path,
    tag: Option<&str>,
    target: &ImageRef,
    credentials: &Credentials,
) -> Result<PushReport, ImageError> {
    let layout = Layout::open(layout)?;
    let (root, target) = layout.select_for(tag, target)?;
    let resolved = credentials.resolve(&target).await?;
    let client = client_for(&target, true);
    client
        .auth(target.oci(), &resolved.auth, RegistryOperation::Push)
        .await
        .map_err(|e| classify(e, &target, Operation::Push, &resolved.source))?;
    let mut pusher = Pusher {
        layout: &layout,
        client: &client,
        target: &target,
        auth: &resolved.source,
        uploaded: 0,
        present: 0,
        platforms: BTreeSet::new(),
    };
    pusher.push_manifest(&root, &target, 0).await?;
    Ok(PushReport {
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        platforms: pusher.platforms,
        blobs_uploaded: pusher.uploaded,
        blobs_present: pusher.present,
        ecr_repository_created: None,
        auth: resolved.source.clone(),
        target,
    })
}

/// The reference an image is pushed to: `target` as given when it names a tag, else with the
/// layout's tag (or `latest`); a digest is refused. Checks the layout and its selection first.
pub fn resolve_target(
    layout: &Path,
    tag: Option<&str>,
    target: &ImageRef,
) -> Result<ImageRef, ImageError> {
    let (_, target) = Layout::open(layout)?.select_for(tag, target)?;
    Ok(target)
}

struct Pusher<'a> {
    layout: &'a Layout,
    client: &'a oci_client::Client,
    target: &'a ImageRef,
    auth: &'a AuthSource,
    uploaded: usize,
    present: usize,
    platforms: BTreeSet<Platform>,
}

impl Pusher<'_> {
    /// Pushes a manifest's blobs (or an index's manifests), then the manifest itself as
    /// `at` (the tag for the root, the digest for an index's children).
    async fn push_manifest(
        &mut self,
        desc: &LayoutDescriptor,
        at: &ImageRef,
        depth: usize,
    ) -> Result<(), ImageError> {
        if depth > 2 {
            return Err(self.layout.error("indexes nested more than twice".into()));
        }
        let body = self.layout.blob(&desc.digest, desc.size)?;
        let manifest: AnyManifest = serde_json::from_slice(&body).map_err(|e| {
            self.layout
                .error(format!("manifest {} is not JSON: {e}", desc.digest))
        })?;
        if let Some(children) = &manifest.manifests {
            for child in children {
                let child_desc = LayoutDescriptor {
                    media_type: child.media_type.clone(),
                    digest: child.digest.clone(),
                    size: child.size,
                };
                let at = self.target.with_digest(&child.digest);
                Box::pin(self.push_manifest(&child_desc, &at, depth + 1)).await?;
            }
        } else {
            let config = manifest.config.as_ref().ok_or_else(|| {
                self.layout
                    .error(format!("manifest {} has no config", desc.digest))
            })?;
            let config_body = self.layout.blob(&config.digest, config.size)?;
            if let Ok(p) = serde_json::from_slice::<PlatformJson>(&config_body) {
                self.platforms.insert(Platform::from(p));
            }
            self.upload_if_missing(&config.digest, config.size).await?;
            for layer in manifest.layers.iter().flatten() {
                self.upload_if_missing(&layer.digest, layer.size).await?;
            }
        }
        let content_type = HeaderValue::from_str(&desc.media_type).map_err(|_| {
            self.layout.error(format!(
                "media type {:?} is not a header value",
                desc.media_type
            ))
        })?;
        self.client
            .push_manifest_raw(at.oci(), body, content_type)
            .await
            .map_err(|e| classify(e, self.target, Operation::Push, self.auth))?;
        Ok(())
    }

    /// Uploads a blob unless the repository has it already.
    async fn upload_if_missing(&mut self, digest: &str, size: i64) -> Result<(), ImageError> {
        let exists = self
            .client
            .blob_exists(self.target.oci(), digest)
            .await
            .map_err(|e| classify(e, self.target, Operation::Push, self.auth))?;
        if exists {
            self.present += 1;
            return Ok(());
        }
        let data = self.layout.blob(digest, size)?;
        self.client
            .push_blob(self.target.oci(), data, digest)
            .await
            .map_err(|e| classify(e, self.target, Operation::Push, self.auth))?;
        self.uploaded += 1;
        Ok(())
    }
}

fn ecr_error(
    target: &ImageRef,
    account: &str,
    region: &str,
) -> impl Fn(&'static str, Box<dyn std::error::Error + Send + Sync>) -> ImageError {
    let repository = format!("{} ({account}, {region})", target.repository());
    move |action, e| ImageError::Ecr {
        action,
        repository: repository.clone(),
        source: e,
    }
}

fn ecr_client(
    credentials: &Credentials,
    target: &ImageRef,
    region: &str,
) -> Result<aws_sdk_ecr::Client, ImageError> {
    credentials
        .ecr_client(region)
        .ok_or_else(|| ImageError::Credentials {
            registry: target.registry().into(),
            from: "AWS configuration".into(),
            reason:
                "pushing to ECR needs AWS credentials (to create the repository and get a token)"
                    .into(),
        })
}

/// Whether the target's ECR repository is missing (a read: `DescribeRepositories`).
pub async fn ecr_repository_missing(
    credentials: &Credentials,
    target: &ImageRef,
    account: &str,
    region: &str,
) -> Result<bool, ImageError> {
    let ecr = ecr_client(credentials, target, region)?;
    match ecr
        .describe_repositories()
        .registry_id(account)
        .repository_names(target.repository())
        .send()
        .await
    {
        Ok(_) => Ok(false),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception()) =>
        {
            Ok(true)
        }
        Err(e) => Err(ecr_error(target, account, region)(
            "describing",
            Box::new(sdk_error(e)),
        )),
    }
}

/// Creates the target's ECR repository, tagged as bootstrap's (and the cluster's), scanning
/// on push.
pub async fn create_ecr_repository(
    credentials: &Credentials,
    target: &ImageRef,
    account: &str,
    region: &str,
    cluster: Option<&str>,
) -> Result<(), ImageError> {
    use aws_sdk_ecr::types::{ImageScanningConfiguration, Tag};
    let ecr = ecr_client(credentials, target, region)?;
    let fail = ecr_error(target, account, region);
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let managed = tag(
        bootstrap_common::names::TAG_MANAGED_BY,
        bootstrap_common::names::MANAGED_BY_VALUE,
    )
    .map_err(|e| fail("creating", Box::new(e)))?;
    let mut tags = vec![managed];
    if let Some(cluster) = cluster {
        tags.push(
            tag(bootstrap_common::names::TAG_CLUSTER, cluster)
                .map_err(|e| fail("creating", Box::new(e)))?,
        );
    }
    ecr.create_repository()
        .registry_id(account)
        .repository_name(target.repository())
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(true)
                .build(),
        )
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| fail("creating", Box::new(sdk_error(e))))?;
    Ok(())
}

/// An SDK error as text with its whole chain (the SDK's Display alone says "service error").
fn sdk_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> std::io::Error {
    std::io::Error::other(aws_smithy_types::error::display::DisplayErrorContext(e).to_string())
}

/// An OCI image layout on disk: `oci-layout`, `index.json`, `blobs/ALG/HEX`.
struct Layout {
    path: PathBuf,
    index: LayoutIndex,
}

#[derive(Deserialize)]
struct LayoutIndex {
    manifests: Vec<LayoutEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutEntry {
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct LayoutDescriptor {
    media_type: String,
    digest: String,
    size: i64,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

impl Layout {
    fn open(path: &Path) -> Result<Self, ImageError> {
        let err = |reason: String| ImageError::Layout {
            path: path.to_path_buf(),
            reason,
        };
        let marker = std::fs::read_to_string(path.join("oci-layout"))
            .map_err(|e| err(format!("no oci-layout file ({e}): not an OCI image layout")))?;
        if !marker.contains("imageLayoutVersion") {
            return Err(err("its oci-layout file has no imageLayoutVersion".into()));
        }
        let index = std::fs::read(path.join("index.json"))
            .map_err(|e| err(format!("cannot read index.json: {e}")))?;
        let index: LayoutIndex = serde_json::from_slice(&index)
            .map_err(|e| err(format!("index.json is not an image index: {e}")))?;
        Ok(Layout {
            path: path.to_path_buf(),
            index,
        })
    }

    fn error(&self, reason: String) -> ImageError {
        ImageError::Layout {
            path: self.path.clone(),
            reason,
        }
    }

    /// The image `tag` selects (see [`Layout::select`]) and the reference it is pushed to
    /// (see [`resolve_target`]).
    fn select_for(
        &self,
        tag: Option<&str>,
        target: &ImageRef,
    ) -> Result<(LayoutDescriptor, ImageRef), ImageError> {
        let (root, layout_tag) = self.select(tag)?;
        if target.digest().is_some() {
            return Err(ImageError::InvalidReference {
                reference: target.to_string(),
                reason: "a push target names a tag, not a digest".into(),
            });
        }
        let target = if target.has_explicit_tag() {
            target.clone()
        } else {
            target.with_tag(layout_tag.as_deref().unwrap_or("latest"))
        };
        Ok((root, target))
    }

    /// The image tagged `tag`, or the only one; with its tag.
    fn select(&self, tag: Option<&str>) -> Result<(LayoutDescriptor, Option<String>), ImageError> {
        let tags: Vec<&str> = self
            .index
            .manifests
            .iter()
            .filter_map(|m| m.annotations.get(REF_NAME).map(String::as_str))
            .collect();
        let entry = match tag {
            Some(t) => self
                .index
                .manifests
                .iter()
                .find(|m| m.annotations.get(REF_NAME).map(String::as_str) == Some(t))
                .ok_or_else(|| {
                    self.error(format!("no image tagged {t:?} (tags: {})", tags.join(", ")))
                })?,
            None => match self.index.manifests.as_slice() {
                [only] => only,
                [] => return Err(self.error("index.json lists no image".into())),
                _ => {
                    return Err(self.error(format!(
                        "it holds several images: name one by tag ({})",
                        tags.join(", ")
                    )));
                }
            },
        };
        Ok((
            LayoutDescriptor {
                media_type: entry.media_type.clone(),
                digest: entry.digest.clone(),
                size: entry.size,
            },
            entry.annotations.get(REF_NAME).cloned(),
        ))
    }

    /// A blob's bytes, checked against the descriptor's size.
    fn blob(&self, digest: &str, size: i64) -> Result<Vec<u8>, ImageError> {
        let (alg, hex) = digest
            .split_once(':')
            .filter(|(a, h)| {
                !a.is_empty() && !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .ok_or_else(|| self.error(format!("{digest:?} is not a digest")))?;
        let path = self.path.join("blobs").join(alg).join(hex);
        let data = std::fs::read(&path)
            .map_err(|e| self.error(format!("blob {digest} is missing or unreadable: {e}")))?;
        if i64::try_from(data.len()).ok() != Some(size) {
            return Err(self.error(format!(
                "blob {digest} has {} bytes, its descriptor says {size}",
                data.len()
            )));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_layout(dir: &Path, index: &str) {
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(dir.join("index.json"), index).unwrap();
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    }

    #[test]
    fn layouts_select_by_tag_or_the_only_image() {
        let dir = tempfile::tempdir().unwrap();
        write_layout(
            dir.path(),
            r#"{"schemaVersion":2,"manifests":[
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":2,"annotations":{"org.opencontainers.image.ref.name":"0.1.0"}},
                {"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:bb","size":3,"annotations":{"org.opencontainers.image.ref.name":"multi"}}]}"#,
        );
        let layout = Layout::open(dir.path()).unwrap();
        let (desc, tag) = layout.select(Some("multi")).unwrap();
        assert_eq!(
            (desc.digest.as_str(), tag.as_deref()),
            ("sha256:bb", Some("multi"))
        );
        let err = layout.select(None).unwrap_err().to_string();
        assert!(
            err.contains("several images") && err.contains("0.1.0, multi"),
            "{err}"
        );
        let err = layout.select(Some("nope")).unwrap_err().to_string();
        assert!(err.contains("no image tagged \"nope\""), "{err}");
    }

    #[test]
    fn blobs_are_checked_against_their_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        write_layout(dir.path(), r#"{"schemaVersion":2,"manifests":[]}"#);
        std::fs::write(dir.path().join("blobs/sha256/abc"), b"12345").unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        assert_eq!(layout.blob("sha256:abc", 5).unwrap(), b"12345");
        assert!(
            layout
                .blob("sha256:abc", 4)
                .unwrap_err()
                .to_string()
                .contains("5 bytes")
        );
        assert!(layout.blob("sha256:../x", 1).is_err());
        assert!(
            layout
                .select(None)
                .unwrap_err()
                .to_string()
                .contains("lists no image")
        );
    }

    #[test]
    fn a_directory_that_is_not_a_layout_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = Layout::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("not an OCI image layout"), "{err}");
        assert!(err.hint().unwrap().contains("image/build.sh"));
    }
}
