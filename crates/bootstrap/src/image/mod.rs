//! The provider image, seen from a registry: parse references, check that an image exists
//! for every architecture the cluster's nodes run (before anything is applied), push an OCI
//! layout built by image/build.sh into a registry (ECR included), and the default provider
//! image, which a build sets once (`BOOTSTRAP_RELEASE_PROVIDER_IMAGE` at compile time).
//!
//! ```no_run
//! # async fn demo() -> Result<(), bootstrap::image::ImageError> {
//! use bootstrap::image::{check, Credentials, ImageRef};
//! let image = ImageRef::parse("127.0.0.1:15050/bootstrap/aws-csi-provider:0.1.0")?;
//! let archs = ["amd64".to_string()].into();
//! let report = check(&image, &archs, &Credentials::default()).await?;
//! println!("{} offers {:?}", report.pinned(), report.linux_architectures());
//! # Ok(()) }
//! ```

mod auth;
mod error;
mod push;
mod reference;
mod registry;

#[cfg(test)]
mod ecr_tests;
#[cfg(test)]
mod fake_registry_tests;

use std::fmt;

pub use auth::{AuthSource, Credentials};
pub use error::{ImageError, Operation};
pub use push::{PushReport, create_ecr_repository, ecr_repository_missing, push, resolve_target};
pub use reference::{ImageRef, RegistryKind, registry_kind};
pub use registry::{ImageReport, Platform, check, inspect};

/// The default provider image compiled into this build: set by the release workflow
/// (`BOOTSTRAP_RELEASE_PROVIDER_IMAGE=REGISTRY/REPO:TAG@DIGEST cargo build`), absent otherwise.
pub const BUILD_PROVIDER_IMAGE: Option<&str> = option_env!("BOOTSTRAP_RELEASE_PROVIDER_IMAGE");

/// What this build knows about the provider image to deploy by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultProviderImage {
    Configured(ImageRef),
    /// No release registry was configured when this binary was built.
    NotConfigured,
}

impl DefaultProviderImage {
    /// The image, or [`ImageError::NoDefaultImage`] (with its hint) when none is configured.
    pub fn require(&self) -> Result<&ImageRef, ImageError> {
        match self {
            DefaultProviderImage::Configured(image) => Ok(image),
            DefaultProviderImage::NotConfigured => Err(ImageError::NoDefaultImage),
        }
    }
}

impl fmt::Display for DefaultProviderImage {
    /// The image, or the sentence a `--dry-run` shows instead of a made-up one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultProviderImage::Configured(image) => write!(f, "{image}"),
            DefaultProviderImage::NotConfigured => {
                f.write_str("<no release registry configured in this build: pass --provider-image>")
            }
        }
    }
}

/// The default provider image of this build, from the one place it is set.
pub fn default_provider_image() -> Result<DefaultProviderImage, ImageError> {
    from_build_value(BUILD_PROVIDER_IMAGE)
}

fn from_build_value(value: Option<&str>) -> Result<DefaultProviderImage, ImageError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => ImageRef::parse(v).map(DefaultProviderImage::Configured),
        None => Ok(DefaultProviderImage::NotConfigured),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_image_comes_from_the_build_or_says_it_is_not_configured() {
        assert_eq!(
            from_build_value(None).unwrap(),
            DefaultProviderImage::NotConfigured
        );
        assert_eq!(
            from_build_value(Some("  ")).unwrap(),
            DefaultProviderImage::NotConfigured
        );
        let not = DefaultProviderImage::NotConfigured;
        assert!(
            not.to_string()
                .contains("no release registry configured in this build")
        );
        let err = not.require().unwrap_err();
        assert!(err.to_string().contains("no release registry configured"));
        assert!(err.hint().unwrap().contains("--provider-image"));

        let set = from_build_value(Some("ghcr.io/o/aws-csi-provider:0.1.0")).unwrap();
        assert_eq!(set.to_string(), "ghcr.io/o/aws-csi-provider:0.1.0");
        assert!(from_build_value(Some("http://nope")).is_err());
        // Whatever this build was given parses.
        default_provider_image().expect("BOOTSTRAP_RELEASE_PROVIDER_IMAGE of this build parses");
    }
}
