//! Resolves flags, files (teams.yaml) and environment into one settings struct.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{DoctorArgs, DownArgs, MigrateArgs, OnboardArgs, UpArgs};
/// The settings carry the command line's choices as the CLI spells them.
pub use crate::cli::{OutputFormat, ProviderKind};
use crate::render::csi_driver::{CsiDriverValues, Rotation};
use crate::render::names;
use crate::render::provider::ProviderValues;
use crate::render::provider_upstream::UpstreamProviderValues;
use crate::resources::secrets::SecretRef;

/// Bad input, found before anything is touched.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {what}")]
    Invalid {
        what: &'static str,
        #[source]
        source: InvalidValue,
    },
    #[error("failed to read values file {path}")]
    ReadValues {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse values file {path}")]
    ParseValues {
        path: PathBuf,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
}

/// The reason a value was rejected (the `Caused by:` line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(what: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what,
        source: InvalidValue(problem.into()),
    }
}

/// The `--values` file: one section per thing bootstrap renders.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ValuesFile {
    pub csi_driver: CsiDriverValues,
    pub provider: ProviderValues,
    /// Values of the upstream provider (`--provider upstream`).
    pub upstream_provider: UpstreamProviderValues,
    /// Image of the verification pod (it only has to start; mirror it for air-gapped clusters).
    pub sample_image: Option<String>,
}

/// Everything `up` needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct UpSettings {
    /// The cluster; its region from `--region` or the environment (the AWS config may still
    /// supply one later).
    pub target: ClusterSettings,
    pub namespace: String,
    pub service_account: String,
    pub secrets: Vec<SecretRef>,
    pub create_demo_secret: bool,
    pub provider: ProviderKind,
    pub provider_image: Option<String>,
    pub image_check: ImageCheck,
    pub csi_driver: CsiDriverValues,
    pub provider_values: ProviderValues,
    pub upstream_provider_values: UpstreamProviderValues,
    pub sample_image: Option<String>,
    pub keep_sample: bool,
    pub force: bool,
    pub timeout: Duration,
    pub dry_run: bool,
    pub output: OutputFormat,
    pub output_dir: Option<PathBuf>,
    /// `--controller`: what to install of it.
    pub controller: Option<crate::resources::controller::InstallSettings>,
}

pub use bootstrap_common::parse_duration;

use crate::resources::provider_image::ImageCheck;

/// `BOOTSTRAP_PROVIDER_IMAGE`: our provider's image when `--provider-image` is not given.
fn provider_image_from_env() -> Option<String> {
    std::env::var("BOOTSTRAP_PROVIDER_IMAGE")
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Rejects a `--provider-image` that is no image reference (exit 2, before any call).
fn checked_image(image: Option<String>) -> Result<Option<String>, ConfigError> {
    if let Some(reference) = &image
        && let Err(e) = crate::image::ImageRef::parse(reference)
    {
        let hint = e.hint().unwrap_or_default();
        return Err(invalid("--provider-image", format!("{e}; {hint}")));
    }
    Ok(image)
}

fn image_check(skip: bool) -> ImageCheck {
    if skip {
        ImageCheck::Skip
    } else {
        ImageCheck::Check
    }
}

/// An EKS cluster name: 1–100 letters, digits, `-` or `_`, starting alphanumeric.
pub fn cluster_name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    (!ok).then(|| {
        format!(
            "cluster name {name:?} is not a valid EKS cluster name: use 1-100 letters, digits, \
             '-' and '_', starting with a letter or digit"
        )
    })
}

/// Reads the environment's region the way the AWS SDK does first (`AWS_REGION`, then
/// `AWS_DEFAULT_REGION`); the profile's region is resolved later by the AWS config loader.
pub fn region_from_env() -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
}

/// The cluster and AWS settings every cluster command resolves the same way: the name checked,
/// the region from the flag or the environment (and checked), the profile.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub cluster: String,
    pub region: Option<String>,
    pub profile: Option<String>,
}

impl ClusterSettings {
    pub fn resolve(args: &crate::cli::ClusterArgs) -> Result<Self, ConfigError> {
        if let Some(problem) = cluster_name_problem(&args.cluster) {
            return Err(invalid("--cluster", problem));
        }
        let region = args.aws.region.clone().or_else(region_from_env);
        if let Some(r) = &region
            && !r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid(
                "--region",
                format!("{r:?} is not an AWS region name"),
            ));
        }
        Ok(Self {
            cluster: args.cluster.clone(),
            region,
            profile: args.aws.profile.clone(),
        })
    }
}

/// Merges flags, the values file and the environment into [`UpSettings`].
pub fn resolve_up(args: &UpArgs) -> Result<UpSettings, ConfigError> {
    let target = ClusterSettings::resolve(&args.target)?;
    if let Some(problem) = names::label_problem("namespace", &args.namespace) {
        return Err(invalid("--namespace", problem));
    }
    if let Some(problem) = names::subdomain_problem("ServiceAccount", &args.service_account) {
        return Err(invalid("--service-account", problem));
    }
    let secrets = args
        .secrets
        .iter()
        .map(|s| SecretRef::parse(s).map_err(|p| invalid("--secret", p)))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = parse_duration(&args.timeout).map_err(|p| invalid("--timeout", p))?;
    let values = match &args.values {
        Some(path) => read_values(path)?,
        None => ValuesFile::default(),
    };
    let mut csi_driver = values.csi_driver;
    if let Some(interval) = &args.rotation {
        parse_duration(interval).map_err(|p| invalid("--rotation", p))?;
        csi_driver.rotation = Rotation {
            enabled: true,
            poll_interval: interval.clone(),
        };
    }
    csi_driver.sync_secrets |= args.sync_secrets;
    Ok(UpSettings {
        target,
        namespace: args.namespace.clone(),
        service_account: args.service_account.clone(),
        create_demo_secret: args.create_demo_secret || secrets.is_empty(),
        secrets,
        provider: args.provider,
        provider_image: checked_image(args.provider_image.clone().or_else(|| {
            (args.provider == ProviderKind::Rust)
                .then(provider_image_from_env)
                .flatten()
        }))?,
        image_check: image_check(args.skip_image_check),
        csi_driver,
        provider_values: values.provider,
        upstream_provider_values: values.upstream_provider,
        sample_image: values.sample_image,
        keep_sample: args.keep_sample,
        force: args.force,
        timeout,
        dry_run: args.dry_run,
        output: args.output,
        output_dir: args.output_dir.clone(),
        controller: controller_install(args)?,
    })
}

/// `--controller`'s settings: an image reference (flag or BOOTSTRAP_CONTROLLER_IMAGE) and a
/// valid IAM path, both checked before any call.
fn controller_install(
    args: &UpArgs,
) -> Result<Option<crate::resources::controller::InstallSettings>, ConfigError> {
    if !args.controller {
        return Ok(None);
    }
    let from_env = std::env::var("BOOTSTRAP_CONTROLLER_IMAGE")
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    let Some(image) = args.controller_image.clone().or(from_env) else {
        return Err(invalid(
            "--controller-image",
            "--controller needs the controller's image: pass --controller-image REGISTRY/REPO:TAG \
             (build it with image/build.sh --controller, copy it with `bootstrap image push`) or set BOOTSTRAP_CONTROLLER_IMAGE",
        ));
    };
    if let Err(e) = crate::image::ImageRef::parse(&image) {
        return Err(invalid("--controller-image", e.to_string()));
    }
    // The path alone is checked here; the boundary's ARN needs the account (preflight).
    crate::resources::role::Confinement::new(
        &args.controller_role_path,
        "arn:aws:iam::000000000000:policy/check",
    )
    .map_err(|e| invalid("--controller-role-path", e))?;
    Ok(Some(crate::resources::controller::InstallSettings {
        image,
        role_path: args.controller_role_path.clone(),
    }))
}

/// Everything `down` needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct DownSettings {
    pub target: ClusterSettings,
    pub namespace: Option<String>,
    pub team: Option<String>,
    pub workloads_only: bool,
    pub force: bool,
    pub yes: bool,
    pub timeout: Duration,
    pub dry_run: bool,
    pub output: OutputFormat,
}

/// Validates `down`'s flags.
pub fn resolve_down(args: &DownArgs) -> Result<DownSettings, ConfigError> {
    let target = ClusterSettings::resolve(&args.target)?;
    let namespace = namespace_flag(&args.namespace)?;
    let timeout = parse_duration(&args.timeout).map_err(|p| invalid("--timeout", p))?;
    Ok(DownSettings {
        target,
        namespace,
        team: args.team.clone(),
        workloads_only: args.workloads_only,
        force: args.force,
        yes: args.yes,
        timeout,
        dry_run: args.dry_run,
        output: args.output,
    })
}

/// Everything `controller` needs.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    pub target: ClusterSettings,
    pub concurrency: usize,
    pub resync: Duration,
    pub timeout: Duration,
    pub lease_namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub leader_election: bool,
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The path and boundary of the roles it makes; `None` only with `--unconfined`.
    pub confinement: Option<crate::resources::role::Confinement>,
}

pub fn resolve_controller(
    args: &crate::cli::ControllerArgs,
) -> Result<ControllerSettings, ConfigError> {
    let target = ClusterSettings::resolve(&crate::cli::ClusterArgs {
        cluster: args.cluster.clone().unwrap_or_default(),
        aws: crate::cli::AwsArgs {
            region: args.aws.region.clone(),
            profile: args.aws.profile.clone(),
        },
    })?;
    let resync = parse_duration(&args.resync).map_err(|p| invalid("--resync", p))?;
    let timeout = parse_duration(&args.timeout).map_err(|p| invalid("--timeout", p))?;
    if let Some(problem) = names::label_problem("namespace", &args.lease_namespace) {
        return Err(invalid("--lease-namespace", problem));
    }
    let confinement = match &args.permissions_boundary {
        Some(boundary) => Some(
            crate::resources::role::Confinement::new(&args.role_path, boundary)
                .map_err(|p| invalid("--permissions-boundary/--role-path", p))?,
        ),
        None => None,
    };
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "bootstrap".into());
        format!("{host}-{}", std::process::id())
    });
    Ok(ControllerSettings {
        target,
        concurrency: usize::from(args.concurrency),
        resync,
        timeout,
        lease_namespace: args.lease_namespace.clone(),
        lease_name: args.lease_name.clone(),
        identity,
        leader_election: !args.no_leader_election,
        metrics_addr: args.metrics_addr,
        confinement,
    })
}

/// Everything `onboard` needs: the validated teams and the flags.
#[derive(Debug, Clone)]
pub struct OnboardSettings {
    pub target: ClusterSettings,
    pub teams: Vec<crate::teams::Team>,
    pub concurrency: usize,
    pub prune: bool,
    pub provider_image: Option<String>,
    pub image_check: ImageCheck,
    pub timeout: Duration,
    pub dry_run: bool,
    pub output: OutputFormat,
}

/// Why `onboard`'s input was refused (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum OnboardInputError {
    #[error(transparent)]
    Teams(#[from] crate::teams::TeamsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no cluster given: pass --cluster or set `cluster` in {0}")]
    NoCluster(PathBuf),
}

/// Reads and validates the teams file and merges it with the flags (flags win).
pub fn resolve_onboard(args: &OnboardArgs) -> Result<OnboardSettings, OnboardInputError> {
    let path = args.file.clone().unwrap_or_default();
    let file = crate::teams::load(&path)?;
    let cluster = args
        .cluster
        .clone()
        .or(file.cluster.clone())
        .ok_or_else(|| OnboardInputError::NoCluster(path.clone()))?;
    if let Some(problem) = cluster_name_problem(&cluster) {
        return Err(invalid("--cluster", problem).into());
    }
    let timeout = parse_duration(&args.timeout).map_err(|p| invalid("--timeout", p))?;
    let target = ClusterSettings {
        cluster,
        region: (args.aws.region.clone())
            .or(file.region.clone())
            .or_else(region_from_env),
        profile: args.aws.profile.clone(),
    };
    Ok(OnboardSettings {
        target,
        teams: file.teams.into_iter().map(|t| t.value).collect(),
        concurrency: usize::from(args.concurrency),
        prune: args.prune,
        provider_image: args.provider_image.clone().or_else(provider_image_from_env),
        image_check: image_check(args.skip_image_check),
        timeout,
        dry_run: args.dry_run,
        output: args.output,
    })
}

/// Everything `migrate` needs.
#[derive(Debug, Clone)]
pub struct MigrateSettings {
    pub target: ClusterSettings,
    pub namespace: Option<String>,
    pub approve: bool,
    pub remove_irsa: bool,
    pub timeout: Duration,
    pub output: OutputFormat,
}

/// Validates `migrate`'s flags.
pub fn resolve_migrate(args: &MigrateArgs) -> Result<MigrateSettings, ConfigError> {
    let target = ClusterSettings::resolve(&args.target)?;
    let namespace = namespace_flag(&args.namespace)?;
    Ok(MigrateSettings {
        target,
        namespace,
        approve: args.approve,
        remove_irsa: args.remove_irsa,
        timeout: parse_duration(&args.timeout).map_err(|p| invalid("--timeout", p))?,
        output: args.output,
    })
}

/// An optional `--namespace`, checked as a namespace name.
fn namespace_flag(namespace: &Option<String>) -> Result<Option<String>, ConfigError> {
    if let Some(ns) = namespace
        && let Some(problem) = names::label_problem("namespace", ns)
    {
        return Err(invalid("--namespace", problem));
    }
    Ok(namespace.clone())
}

fn read_values(path: &PathBuf) -> Result<ValuesFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadValues {
        path: path.clone(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|source| ConfigError::ParseValues {
        path: path.clone(),
        source: Box::new(source),
    })
}

/// Everything `doctor` needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct DoctorSettings {
    pub target: ClusterSettings,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub output: OutputFormat,
}

/// Validates `doctor`'s flags.
pub fn resolve_doctor(args: &DoctorArgs) -> Result<DoctorSettings, ConfigError> {
    let target = ClusterSettings::resolve(&args.target)?;
    let namespace = namespace_flag(&args.namespace)?;
    if let Some(pod) = &args.pod
        && let Some(problem) = names::subdomain_problem("pod", pod)
    {
        return Err(invalid("--pod", problem));
    }
    if args.pod.is_some() && args.namespace.is_none() {
        return Err(invalid(
            "--pod",
            "--pod needs --namespace (the pod's namespace)",
        ));
    }
    Ok(DoctorSettings {
        target,
        namespace,
        pod: args.pod.clone(),
        output: args.output,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
