//! The registry side of an image check: resolve a reference's manifest or index (OCI and
//! Docker media types), list the platforms it offers, and compare them with the
//! architectures the cluster's nodes need. Registry errors become [`ImageError`]s that say
//! whether the image is missing, the pull was denied, or the registry could not be reached.

use std::collections::BTreeSet;
use std::fmt;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use serde::Deserialize;

use super::auth::{AuthSource, Credentials};
use super::error::{ImageError, Operation};
use super::reference::{ImageRef, RegistryKind};

/// Manifest media types a check accepts: indexes / lists first, then single manifests.
pub(crate) const MANIFEST_TYPES: &[&str] = &[
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
];

/// One platform an image offers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// As its text, `os/architecture[/variant]`.
impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What a registry serves for a reference.
#[derive(Debug, Clone)]
pub struct ImageReport {
    pub reference: ImageRef,
    /// The digest of the manifest or index the reference resolves to.
    pub digest: String,
    pub media_type: String,
    pub platforms: BTreeSet<Platform>,
    /// How the registry was authenticated to (no secret).
    pub auth: AuthSource,
}

impl ImageReport {
    /// The architectures offered for linux (what `kubernetes.io/arch` compares with).
    pub fn linux_architectures(&self) -> BTreeSet<String> {
        self.platforms
            .iter()
            .filter(|p| p.os == "linux")
            .map(|p| p.architecture.clone())
            .collect()
    }

    /// The reference pinned to the digest: `REGISTRY/REPO[:TAG]@sha256:…`.
    pub fn pinned(&self) -> String {
        pinned(&self.reference, &self.digest)
    }
}

pub(crate) fn pinned(reference: &ImageRef, digest: &str) -> String {
    let mut s = format!("{}/{}", reference.registry(), reference.repository());
    if let Some(tag) = reference.tag().filter(|_| reference.digest().is_none()) {
        s.push(':');
        s.push_str(tag);
    }
    s.push('@');
    s.push_str(digest);
    s
}

/// Checks that `reference` resolves and offers a linux manifest for every architecture in
/// `required_archs` (values of `kubernetes.io/arch`: amd64, arm64, ...).
pub async fn check(
    reference: &ImageRef,
    required_archs: &BTreeSet<String>,
    credentials: &Credentials,
) -> Result<ImageReport, ImageError> {
    let report = inspect(reference, credentials).await?;
    let offered = report.linux_architectures();
    let missing: BTreeSet<String> = required_archs.difference(&offered).cloned().collect();
    if !missing.is_empty() {
        return Err(ImageError::MissingArchitectures {
            image: reference.to_string(),
            missing,
            offered,
        });
    }
    Ok(report)
}

/// Resolves `reference` and lists its platforms, with no requirement.
pub async fn inspect(
    reference: &ImageRef,
    credentials: &Credentials,
) -> Result<ImageReport, ImageError> {
    let resolved = credentials.resolve(reference).await?;
    let client = client_for(reference, false);
    let oci = reference.oci();
    let (body, digest) = client
        .pull_manifest_raw(oci, &resolved.auth, MANIFEST_TYPES)
        .await
        .map_err(|e| classify(e, reference, Operation::Pull, &resolved.source))?;
    let manifest: AnyManifest =
        serde_json::from_slice(&body).map_err(|e| ImageError::Manifest {
            image: reference.to_string(),
            reason: format!("not a manifest or index: {e}"),
        })?;
    let media_type = manifest.kind(reference)?;
    let platforms = if let Some(entries) = manifest.manifests {
        entries
            .into_iter()
            .filter_map(|e| e.platform)
            // Attestations and other non-runnable entries (buildx writes unknown/unknown).
            .filter(|p| p.os != "unknown" && p.architecture != "unknown")
            .map(Platform::from)
            .collect()
    } else {
        let config = manifest.config.ok_or_else(|| ImageError::Manifest {
            image: reference.to_string(),
            reason: "an image manifest without a config".into(),
        })?;
        let mut out = Vec::new();
        client
            .pull_blob(oci, config.digest.as_str(), &mut out)
            .await
            .map_err(|e| classify(e, reference, Operation::Pull, &resolved.source))?;
        let config: PlatformJson =
            serde_json::from_slice(&out).map_err(|e| ImageError::Manifest {
                image: reference.to_string(),
                reason: format!("its config {} has no os/architecture: {e}", config.digest),
            })?;
        BTreeSet::from([Platform::from(config)])
    };
    Ok(ImageReport {
        reference: reference.clone(),
        digest,
        media_type,
        platforms,
        auth: resolved.source,
    })
}

/// An oci-client for the reference's registry: plain HTTP for loopback registries only;
/// monolithic blob uploads on push (ECR rejects chunks under 5 MiB, oci-client's are 4 MiB).
pub(crate) fn client_for(reference: &ImageRef, push: bool) -> oci_client::Client {
    let protocol = if reference.kind() == RegistryKind::Loopback {
        ClientProtocol::HttpsExcept(vec![
            reference.registry().to_string(),
            reference.api_host().to_string(),
        ])
    } else {
        ClientProtocol::Https
    };
    oci_client::Client::new(ClientConfig {
        protocol,
        use_monolithic_push: push,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        user_agent: concat!("bootstrap/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    })
}

/// Registry errors as the user needs them: missing, denied, unreachable, or other.
pub(crate) fn classify(
    err: OciDistributionError,
    reference: &ImageRef,
    operation: Operation,
    auth: &AuthSource,
) -> ImageError {
    let image = reference.to_string();
    let registry = reference.registry().to_string();
    let denied = |detail: String| ImageError::Denied {
        image: image.clone(),
        registry: registry.clone(),
        operation,
        auth: auth.clone(),
        detail,
    };
    let not_found = |detail: String| ImageError::NotFound {
        image: image.clone(),
        registry: registry.clone(),
        detail,
    };
    match err {
        OciDistributionError::UnauthorizedError { .. } => denied("401 Unauthorized".into()),
        OciDistributionError::AuthenticationFailure(reason) => denied(format!(
            "the token endpoint refused: {}",
            first_line(&reason)
        )),
        OciDistributionError::ImageManifestNotFoundError(reason) => not_found(reason),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let detail = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                not_found(detail)
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                denied(detail)
            } else {
                ImageError::Registry {
                    action: action(operation),
                    image,
                    source: Box::new(OciDistributionError::RegistryError {
                        envelope,
                        url: String::new(),
                    }),
                }
            }
        }
        OciDistributionError::ServerError {
            code: 404, message, ..
        } => not_found(format!("404 {}", first_line(&message))),
        OciDistributionError::ServerError {
            code: 401 | 403,
            message,
            ..
        } => denied(first_line(&message).to_string()),
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            ImageError::Unreachable {
                image,
                registry,
                operation,
                source: Box::new(e),
            }
        }
        other => ImageError::Registry {
            action: action(operation),
            image,
            source: Box::new(other),
        },
    }
}

fn action(operation: Operation) -> &'static str {
    match operation {
        Operation::Pull => "resolving the manifest",
        Operation::Push => "pushing",
    }
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(200) {
        Some((cut, _)) => &line[..cut],
        None => line,
    }
}

/// A manifest or an index, Docker or OCI, with only what a check reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AnyManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub schema_version: Option<i64>,
    #[serde(default)]
    pub manifests: Option<Vec<IndexEntry>>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
}

impl AnyManifest {
    /// The media type, written or implied (OCI allows omitting it).
    pub(crate) fn kind(&self, reference: &ImageRef) -> Result<String, ImageError> {
        if self.schema_version == Some(1) {
            return Err(ImageError::Manifest {
                image: reference.to_string(),
                reason: "a Docker schema 1 manifest (deprecated, unsupported): push it again with a current client".into(),
            });
        }
        Ok(match (&self.media_type, &self.manifests) {
            (Some(m), _) => m.clone(),
            (None, Some(_)) => OCI_IMAGE_INDEX_MEDIA_TYPE.to_string(),
            (None, None) => OCI_IMAGE_MEDIA_TYPE.to_string(),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexEntry {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub digest: String,
    pub size: i64,
}

#[derive(Deserialize)]
pub(crate) struct PlatformJson {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl From<PlatformJson> for Platform {
    fn from(p: PlatformJson) -> Self {
        Platform {
            os: p.os,
            architecture: p.architecture,
            variant: p.variant.filter(|v| !v.is_empty()),
        }
    }
}
