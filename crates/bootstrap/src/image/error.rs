//! What can go wrong with an image: each error names the image (or layout, or repository),
//! the action, the cause, and [`ImageError::hint`] says what to do. No credential appears.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::auth::AuthSource;

/// Pulling (a check) or pushing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Pull,
    Push,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Pull => "pull",
            Operation::Push => "push",
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error(
        "no release registry configured in this build: there is no default aws-csi-provider image"
    )]
    NoDefaultImage,

    #[error(
        "image {image} has no linux/{} manifest (it offers: {})",
        join(missing),
        if offered.is_empty() { "no linux platform".to_string() } else { join(offered) }
    )]
    MissingArchitectures {
        image: String,
        missing: BTreeSet<String>,
        offered: BTreeSet<String>,
    },

    #[error("image {image} not found in registry {registry}: {detail}")]
    NotFound {
        image: String,
        registry: String,
        detail: String,
    },

    #[error("{operation} of {image} denied by registry {registry} (credentials: {auth}): {detail}")]
    Denied {
        image: String,
        registry: String,
        operation: Operation,
        auth: AuthSource,
        detail: String,
    },

    #[error("cannot reach registry {registry} to {operation} {image}")]
    Unreachable {
        image: String,
        registry: String,
        operation: Operation,
        #[source]
        source: BoxError,
    },

    #[error("{action} of {image} failed")]
    Registry {
        action: &'static str,
        image: String,
        #[source]
        source: BoxError,
    },

    #[error("unexpected manifest for {image}: {reason}")]
    Manifest { image: String, reason: String },

    #[error("cannot get credentials for registry {registry} from {from}: {reason}")]
    Credentials {
        registry: String,
        from: String,
        reason: String,
    },

    #[error("{action} ECR repository {repository} failed")]
    Ecr {
        action: &'static str,
        repository: String,
        #[source]
        source: BoxError,
    },

    #[error("OCI layout {}: {reason}", path.display())]
    Layout { path: PathBuf, reason: String },
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

impl ImageError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ImageError::InvalidReference { .. } => {
                "write it as [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST], e.g. 123456789012.dkr.ecr.us-west-2.amazonaws.com/aws-csi-provider:0.1.0".into()
            }
            ImageError::NoDefaultImage => {
                "pass --provider-image REGISTRY/REPO:TAG; `bootstrap image push --to REGISTRY/REPO` copies an image built by image/build.sh there and prints it (release builds set BOOTSTRAP_RELEASE_PROVIDER_IMAGE at build time)".into()
            }
            ImageError::MissingArchitectures { missing, .. } => format!(
                "nodes labelled kubernetes.io/arch={} could not pull it: push a multi-architecture image (the release workflow builds linux/amd64 and linux/arm64 with image/build.sh) and pass it with --provider-image, or keep the provider off those nodes",
                join(missing)
            ),
            ImageError::NotFound { image, .. } => format!(
                "check the repository and tag of {image}; to put the provider image there, run `bootstrap image push --to {}`",
                image.split(['@']).next().unwrap_or(image)
            ),
            ImageError::Denied { registry, auth, operation, .. } => match auth {
                AuthSource::Anonymous => format!(
                    "{registry} wants credentials: `docker login {registry}` (bootstrap reads ~/.docker/config.json or $DOCKER_CONFIG/config.json)"
                ),
                AuthSource::DockerConfig { path } => format!(
                    "the credentials for {registry} in {} were refused or lack {operation} rights: log in again (`docker login {registry}`)",
                    path.display()
                ),
                AuthSource::CredentialHelper { helper } => format!(
                    "the credentials docker-credential-{helper} gave for {registry} were refused or lack {operation} rights: log in again (`docker login {registry}`)"
                ),
                AuthSource::Ecr { .. } => format!(
                    "the AWS identity needs ecr:GetAuthorizationToken and, on the repository, {}; for another account's repository its repository policy must allow this account",
                    match operation {
                        Operation::Pull => "ecr:BatchGetImage and ecr:GetDownloadUrlForLayer",
                        Operation::Push => "ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload, ecr:BatchCheckLayerAvailability and ecr:PutImage",
                    }
                ),
            },
            ImageError::Unreachable { registry, .. } => format!(
                "check the registry host name and that this machine can reach {registry} (proxy, VPC endpoints); for an air-gapped cluster that pre-pulls images, skip the image check with --skip-image-check"
            ),
            ImageError::Registry { .. } | ImageError::Manifest { .. } => {
                "retry; if it persists, inspect the image with `skopeo inspect --raw docker://IMAGE`".into()
            }
            ImageError::Credentials { .. } => {
                "fix the credential source named above (log in again, or set AWS credentials for ECR), then run again".into()
            }
            ImageError::Ecr { .. } => {
                "the AWS identity needs ecr:DescribeRepositories and ecr:CreateRepository (and ecr:TagResource) in that account and region".into()
            }
            ImageError::Layout { .. } => {
                "build the layout with image/build.sh (it writes target/image/oci), then pass that directory".into()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_architecture_names_the_image_the_architecture_and_a_fix() {
        let err = ImageError::MissingArchitectures {
            image: "127.0.0.1:5000/bootstrap/aws-csi-provider:0.1.0".into(),
            missing: ["arm64".to_string()].into(),
            offered: ["amd64".to_string()].into(),
        };
        assert_eq!(
            err.to_string(),
            "image 127.0.0.1:5000/bootstrap/aws-csi-provider:0.1.0 has no linux/arm64 manifest (it offers: amd64)"
        );
        assert!(err.hint().unwrap().contains("kubernetes.io/arch=arm64"));
    }

    #[test]
    fn a_denied_pull_hints_at_the_credential_source() {
        let err = ImageError::Denied {
            image: "registry.example/team/app:1".into(),
            registry: "registry.example".into(),
            operation: Operation::Pull,
            auth: AuthSource::Anonymous,
            detail: "401 Unauthorized".into(),
        };
        assert!(
            err.to_string()
                .contains("pull of registry.example/team/app:1 denied")
        );
        assert!(
            err.hint()
                .unwrap()
                .contains("docker login registry.example")
        );
    }
}
