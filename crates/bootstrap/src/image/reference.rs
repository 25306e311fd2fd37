//! Image references, `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`, with Docker's defaults (no
//! registry → docker.io, a one-part name → library/NAME, no tag nor digest → latest), and the
//! kind of registry they point at: private ECR (whose tokens come from the ECR API), public
//! ECR, Docker Hub, a loopback registry (plain HTTP) or any other.

use std::fmt;

use super::error::ImageError;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    inner: oci_client::Reference,
    explicit_tag: bool,
}

/// Where a reference's registry is, as far as credentials and transport go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryKind {
    /// `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]`: tokens from GetAuthorizationToken.
    Ecr {
        account: String,
        region: String,
    },
    /// `public.ecr.aws`: anonymous pulls through its token endpoint.
    EcrPublic,
    /// docker.io (index.docker.io).
    DockerHub,
    /// localhost, 127.0.0.0/8 or [::1]: spoken to over plain HTTP.
    Loopback,
    Other,
}

impl ImageRef {
    /// Parses a reference; errors say what is wrong with it.
    pub fn parse(reference: &str) -> Result<Self, ImageError> {
        let trimmed = reference.trim();
        let invalid = |reason: String| ImageError::InvalidReference {
            reference: reference.to_string(),
            reason,
        };
        if trimmed.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if trimmed.contains("://") {
            return Err(invalid(
                "a reference has no scheme (drop the http:// or https://)".into(),
            ));
        }
        let inner: oci_client::Reference = trimmed.parse().map_err(|e| invalid(format!("{e}")))?;
        // The distribution spec allows lowercase repository names only (the parser does not check).
        if inner.repository().bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid(format!(
                "repository {:?} has uppercase letters; repository names are lowercase",
                inner.repository()
            )));
        }
        // The tag is explicit when the last path segment, before any digest, has a colon.
        let name = trimmed.split('@').next().unwrap_or(trimmed);
        let explicit_tag = name
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        Ok(ImageRef {
            inner,
            explicit_tag,
        })
    }

    /// The registry as written (docker.io for Docker Hub), with its port.
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The repository within the registry (library/NAME for official Docker Hub images).
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag: the one written, or `latest` when neither tag nor digest was.
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// Whether the tag was written (as opposed to Docker's `latest` default).
    pub fn has_explicit_tag(&self) -> bool {
        self.explicit_tag
    }

    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Self {
        self.in_same_repository(oci_client::Reference::with_tag, tag, true)
    }

    /// The same repository at a digest (and no tag).
    pub fn with_digest(&self, digest: &str) -> Self {
        self.in_same_repository(oci_client::Reference::with_digest, digest, false)
    }

    /// This registry and repository, at what `at` makes of `version` (a tag or a digest).
    fn in_same_repository(
        &self,
        at: fn(String, String, String) -> oci_client::Reference,
        version: &str,
        explicit_tag: bool,
    ) -> Self {
        ImageRef {
            inner: at(
                self.registry().to_string(),
                self.repository().to_string(),
                version.to_string(),
            ),
            explicit_tag,
        }
    }

    pub fn kind(&self) -> RegistryKind {
        registry_kind(self.registry())
    }

    pub(crate) fn oci(&self) -> &oci_client::Reference {
        &self.inner
    }

    /// The host the client talks to (Docker Hub's API lives at index.docker.io).
    pub(crate) fn api_host(&self) -> &str {
        self.inner.resolve_registry()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.whole())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// The kind of a registry host (with or without a port).
pub fn registry_kind(registry: &str) -> RegistryKind {
    let host = host_of(registry);
    if matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        return RegistryKind::DockerHub;
    }
    if host == "public.ecr.aws" {
        return RegistryKind::EcrPublic;
    }
    if host == "localhost" || host == "::1" || host.starts_with("127.") {
        return RegistryKind::Loopback;
    }
    // ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() >= 6
        && parts[0].len() == 12
        && parts[0].bytes().all(|b| b.is_ascii_digit())
        && parts[1] == "dkr"
        && (parts[2] == "ecr" || parts[2] == "ecr-fips")
        && parts[4] == "amazonaws"
        && parts[5] == "com"
        && (parts.len() == 6 || (parts.len() == 7 && parts[6] == "cn"))
    {
        return RegistryKind::Ecr {
            account: parts[0].to_string(),
            region: parts[3].to_string(),
        };
    }
    RegistryKind::Other
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>, bool) {
        let r = ImageRef::parse(s).expect(s);
        (
            r.registry().into(),
            r.repository().into(),
            r.tag().map(String::from),
            r.digest().map(String::from),
            r.has_explicit_tag(),
        )
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_defaults_apply() {
        assert_eq!(
            parts("busybox"),
            (
                "docker.io".into(),
                "library/busybox".into(),
                Some("latest".into()),
                None,
                false
            )
        );
        assert_eq!(
            parts("bitnami/redis:7"),
            (
                "docker.io".into(),
                "bitnami/redis".into(),
                Some("7".into()),
                None,
                true
            )
        );
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.api_host(), "index.docker.io");
    }

    #[test]
    fn registries_ports_tags_and_digests() {
        assert_eq!(
            parts("127.0.0.1:15050/bootstrap/aws-csi-provider:0.1.0"),
            (
                "127.0.0.1:15050".into(),
                "bootstrap/aws-csi-provider".into(),
                Some("0.1.0".into()),
                None,
                true
            )
        );
        assert_eq!(
            parts(&format!(
                "public.ecr.aws/aws-secrets-manager/provider@{DIGEST}"
            )),
            (
                "public.ecr.aws".into(),
                "aws-secrets-manager/provider".into(),
                None,
                Some(DIGEST.into()),
                false
            )
        );
        let both = ImageRef::parse(&format!("ghcr.io/o/p:1.2@{DIGEST}")).unwrap();
        assert_eq!((both.tag(), both.digest()), (Some("1.2"), Some(DIGEST)));
        // A registry port is not a tag.
        assert!(
            !ImageRef::parse("localhost:5000/app")
                .unwrap()
                .has_explicit_tag()
        );
    }

    #[test]
    fn bad_references_say_why() {
        for bad in [
            "",
            "http://registry/app:1",
            "UPPER/case:1",
            "app:bad tag",
            "a@sha256:12",
        ] {
            let err = ImageRef::parse(bad).expect_err(bad);
            assert!(
                matches!(err, ImageError::InvalidReference { .. }),
                "{bad}: {err}"
            );
            assert!(err.hint().is_some());
        }
    }

    #[test]
    fn registry_kinds() {
        assert_eq!(
            registry_kind("123456789012.dkr.ecr.us-west-2.amazonaws.com"),
            RegistryKind::Ecr {
                account: "123456789012".into(),
                region: "us-west-2".into()
            }
        );
        assert_eq!(
            registry_kind("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
            RegistryKind::Ecr {
                account: "123456789012".into(),
                region: "us-gov-west-1".into()
            }
        );
        assert_eq!(
            registry_kind("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            RegistryKind::Ecr {
                account: "123456789012".into(),
                region: "cn-north-1".into()
            }
        );
        assert_eq!(
            registry_kind("12345.dkr.ecr.us-west-2.amazonaws.com"),
            RegistryKind::Other
        );
        assert_eq!(registry_kind("public.ecr.aws"), RegistryKind::EcrPublic);
        assert_eq!(registry_kind("docker.io"), RegistryKind::DockerHub);
        assert_eq!(registry_kind("127.0.0.1:15050"), RegistryKind::Loopback);
        assert_eq!(registry_kind("localhost:5000"), RegistryKind::Loopback);
        assert_eq!(registry_kind("[::1]:5000"), RegistryKind::Loopback);
        assert_eq!(registry_kind("ghcr.io"), RegistryKind::Other);
    }

    #[test]
    fn retagging_keeps_the_repository() {
        let r = ImageRef::parse("ghcr.io/o/p").unwrap();
        assert_eq!(r.with_tag("2").to_string(), "ghcr.io/o/p:2");
        assert_eq!(
            r.with_digest(DIGEST).to_string(),
            format!("ghcr.io/o/p@{DIGEST}")
        );
    }
}
