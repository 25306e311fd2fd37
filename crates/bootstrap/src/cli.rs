//! clap definitions of the `bootstrap` command line (definitions only, no logic).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Which AWS provider for the Secrets Store CSI Driver to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// bootstrap's own Rust provider (aws-csi-provider).
    Rust,
    /// The upstream Go provider (aws/secrets-store-csi-driver-provider-aws).
    Upstream,
    /// The EKS add-on aws-secrets-store-csi-driver-provider.
    Addon,
}

/// How to print the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Take an existing EKS cluster to working EKS Pod Identity + Secrets Store CSI in one command.
#[derive(Debug, Parser)]
#[command(name = "bootstrap", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print only errors and the final result.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail (repeat for debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Never draw progress bars, even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// With `--output json`, include the rendered documents of resources that do not change
    /// too (by default only those of writes are printed).
    #[arg(long, global = true)]
    pub show_manifests: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install and verify Pod Identity + Secrets Store CSI on a cluster (safe to re-run).
    Up(Box<UpArgs>),
    /// Remove what bootstrap created on a cluster, and nothing else (safe to re-run).
    ///
    /// Discovers bootstrap's resources from their tags and labels (no state file) and deletes
    /// them in reverse order: the controller (`up --controller`), sample pods,
    /// SecretProviderClasses, service accounts and namespaces it created, Pod Identity
    /// associations, IAM roles, the controller's permissions boundary, the provider, the
    /// driver, the add-ons it created, the demo secret. What it adopted or did not create
    /// stays, and is listed with the reason. While a TeamSecrets object (a team's request to
    /// the controller) exists, it deletes nothing and names them.
    Down(Box<DownArgs>),
    /// Onboard many teams onto Pod Identity from one file (safe to re-run).
    ///
    /// Per team: an IAM role only that team's service account can use (trust scoped by the
    /// Pod Identity session tags), an inline policy on exactly its secrets (or, with `abac`,
    /// on secrets tagged for it), the association, the namespace, the ServiceAccount (unless
    /// `existing: true`) and a SecretProviderClass with usePodIdentity "true". The platform is
    /// `up`'s, checked and adopted. `bootstrap onboard --print-schema` prints the file's JSON
    /// Schema; examples/teams.yaml is a commented example.
    Onboard(Box<OnboardArgs>),
    /// Move IRSA workloads to Pod Identity, SecretProviderClasses included (plans unless --approve).
    ///
    /// Finds service accounts annotated eks.amazonaws.com/role-arn whose pods mount `aws`
    /// SecretProviderClasses without usePodIdentity "true" (the silent IRSA fallback). Per
    /// workload: adds a Pod Identity statement, scoped by session tags, to the role's trust
    /// (every existing statement kept), creates the association, and sets usePodIdentity "true"
    /// on its SecretProviderClasses touching no other field. With --approve it then proves
    /// each workload still mounts, and rolls a failing one back to IRSA.
    Migrate(Box<MigrateArgs>),
    /// The provider image: copy it into a registry your nodes can pull from, or inspect one.
    ///
    /// `bootstrap image push --to REGISTRY/REPO` copies the OCI layout image/build.sh wrote
    /// (digests kept; into private ECR it creates the repository, tagged as bootstrap's, with
    /// scan-on-push) and prints the `--provider-image` to pass to `up`. `bootstrap image
    /// inspect REF` prints the digest and platforms a registry serves for REF.
    Image(Box<ImageArgs>),
    /// Run the controller: teams onboard themselves with a TeamSecrets object in their namespace.
    ///
    /// Watches TeamSecrets objects (namespaced: a service account and the secrets it reads, the
    /// entries of a team in teams.yaml) and reconciles each as `onboard` does a team, within
    /// what SecretAllowance objects (cluster-scoped, written by administrators) allow its
    /// namespace; without any allowance nothing is created. Status conditions say what is
    /// ready and why not; a finalizer deletes what an object made when it is deleted; a resync
    /// repairs drift. One replica leads (a coordination.k8s.io Lease). `--print-crds` prints
    /// the two CustomResourceDefinitions.
    Controller(Box<ControllerArgs>),
    /// Print shell completions.
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Say what is wrong with Pod Identity + Secrets Store CSI on a cluster, and how to fix it.
    ///
    /// Read-only. Checks the Pod Identity agent, the driver (token audiences, rotation, sync
    /// RBAC), the AWS provider on every driver node, Fargate and Windows nodes, every
    /// SecretProviderClass of provider aws, and every service account those classes serve
    /// (association or IRSA annotation, the role's trust and its policies against each object);
    /// with --pod, maps that pod's FailedMount events to the cause. Exit 0 when nothing fails.
    Doctor(Box<DoctorArgs>),
}

/// The cluster a command acts on, and the AWS configuration that reaches it (one set of flags
/// for every command that needs a cluster).
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The EKS cluster's name.
    #[arg(long, env = "BOOTSTRAP_CLUSTER")]
    pub cluster: String,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Where AWS calls go: the region and the profile.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// AWS region (default: AWS_REGION, then the profile's region).
    #[arg(long)]
    pub region: Option<String>,
    /// AWS profile from the shared config files.
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub target: ClusterArgs,
    /// Namespace of the workload.
    #[arg(long, default_value = "bootstrap-demo")]
    pub namespace: String,
    /// ServiceAccount of the workload.
    #[arg(long, default_value = "demo-app")]
    pub service_account: String,
    /// A secret the workload reads: Secrets Manager name or ARN, SSM parameter ARN, or
    /// `ssm:NAME` (repeatable). Without any, a demo secret is created.
    #[arg(long = "secret", value_name = "NAME|ARN")]
    pub secrets: Vec<String>,
    /// Create (and own) a demo secret in Secrets Manager for the workload.
    #[arg(long)]
    pub create_demo_secret: bool,
    /// Which provider to install.
    #[arg(long, value_enum, default_value_t = ProviderKind::Rust)]
    pub provider: ProviderKind,
    /// Container image of the provider, e.g. a mirror the nodes can pull (default: for
    /// --provider rust, $BOOTSTRAP_PROVIDER_IMAGE, then the image this release was built with;
    /// `bootstrap image push` copies one into your registry).
    #[arg(long, value_name = "REF")]
    pub provider_image: Option<String>,
    /// Do not ask the registry whether the provider image exists for every node architecture
    /// (for air-gapped clusters whose nodes pre-pull it).
    #[arg(long)]
    pub skip_image_check: bool,
    /// Also sync mounted secrets into Kubernetes Secrets (driver RBAC for secrets).
    #[arg(long)]
    pub sync_secrets: bool,
    /// Turn on secret rotation: kubelet re-publishes mounts about every minute, and a
    /// re-publish fetches again once the mounted content is older than INTERVAL (default 1m;
    /// a longer one delays rotation without saving calls).
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1,
          default_missing_value = crate::render::csi_driver::DEFAULT_ROTATION_INTERVAL)]
    pub rotation: Option<String>,
    /// Helm-style values for what bootstrap renders (see templates/*/README.md).
    #[arg(long, value_name = "FILE")]
    pub values: Option<PathBuf>,
    /// Keep the verification pod instead of deleting it.
    #[arg(long)]
    pub keep_sample: bool,
    /// Replace a Pod Identity association of the service account that uses another role.
    #[arg(long)]
    pub force: bool,
    /// Overall time limit, e.g. 10m, 90s.
    #[arg(long, default_value = "10m")]
    pub timeout: String,
    /// Print the full plan and change nothing (works without credentials).
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// With --dry-run: write the rendered manifests to DIR (for GitOps).
    #[arg(long, value_name = "DIR", requires = "dry_run")]
    pub output_dir: Option<PathBuf>,
    /// Also install the controller (`bootstrap controller`): its CRDs (TeamSecrets,
    /// SecretAllowance), RBAC, a two-replica Deployment in kube-system, its own Pod Identity
    /// role, and the permissions boundary every role it makes carries.
    #[arg(long)]
    pub controller: bool,
    /// The controller's image: the `bootstrap` binary (`image/build.sh --controller`, then
    /// `bootstrap image push`). Default: BOOTSTRAP_CONTROLLER_IMAGE.
    #[arg(long, value_name = "REF", requires = "controller")]
    pub controller_image: Option<String>,
    /// The IAM path of the roles the controller makes (its policy allows no other).
    #[arg(
        long,
        default_value = "/bootstrap-controller/",
        value_name = "PATH",
        requires = "controller"
    )]
    pub controller_role_path: String,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub target: ClusterArgs,
    /// Remove only this namespace's workload (its objects, association and role); keeps the
    /// platform.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Remove one team onboarded from a teams file (its SecretProviderClass, its
    /// ServiceAccount if bootstrap made it, its association and role); keeps the rest.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["namespace", "workloads_only"])]
    pub team: Option<String>,
    /// Remove workloads and keep the platform (add-ons, driver, provider).
    #[arg(long)]
    pub workloads_only: bool,
    /// Also delete a namespace bootstrap created that now holds objects it did not create
    /// (they are listed first). Without it such namespaces stay.
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation (needed when stdin is a terminal and not --dry-run).
    #[arg(short, long)]
    pub yes: bool,
    /// Overall time limit, e.g. 10m, 90s.
    #[arg(long, default_value = "10m")]
    pub timeout: String,
    /// Print what would be deleted and kept; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct OnboardArgs {
    /// The teams file (see examples/teams.yaml).
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present = "print_schema"
    )]
    pub file: Option<PathBuf>,
    /// Print the JSON Schema of the teams file and exit.
    #[arg(long)]
    pub print_schema: bool,
    /// Print the file's teams as TeamSecrets objects (for `bootstrap controller` and GitOps)
    /// and exit: a v1 List for `kubectl apply -f -`. Needs no cluster or credentials.
    #[arg(long)]
    pub emit_manifests: bool,
    /// The EKS cluster's name (wins over the file's `cluster`).
    #[arg(long, env = "BOOTSTRAP_CLUSTER")]
    pub cluster: Option<String>,
    /// AWS region (wins over the file's `region`) and profile.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Teams onboarded at once (they share one set of AWS clients).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Delete teams bootstrap onboarded that the file no longer lists (otherwise reported).
    #[arg(long)]
    pub prune: bool,
    /// Container image of the provider when the platform is installed or updated (as `up`:
    /// default $BOOTSTRAP_PROVIDER_IMAGE, then the image this release was built with).
    #[arg(long, value_name = "REF")]
    pub provider_image: Option<String>,
    /// Do not check the provider image against the registry (as `up`).
    #[arg(long)]
    pub skip_image_check: bool,
    /// Overall time limit, e.g. 20m.
    #[arg(long, default_value = "30m")]
    pub timeout: String,
    /// Print the plan for every team and change nothing (works without credentials).
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The EKS cluster's name.
    #[arg(
        long,
        env = "BOOTSTRAP_CLUSTER",
        required_unless_present_any = ["print_crds", "print_rbac"]
    )]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Print the TeamSecrets and SecretAllowance CustomResourceDefinitions and exit.
    #[arg(long)]
    pub print_crds: bool,
    /// Print the controller's service account (in --lease-namespace), its ClusterRole and
    /// binding, and its Role on the Lease, and exit (`kubectl apply -f -`).
    #[arg(long, conflicts_with = "print_crds")]
    pub print_rbac: bool,
    /// The managed policy every role the controller makes is bounded by (its ARN). The
    /// controller's own policy (--print-iam-policy) lets it create roles only with this
    /// boundary and under --role-path, so a compromised controller cannot mint a wider role.
    #[arg(
        long,
        env = "BOOTSTRAP_PERMISSIONS_BOUNDARY",
        value_name = "ARN",
        required_unless_present_any = ["unconfined", "print_crds", "print_rbac"]
    )]
    pub permissions_boundary: Option<String>,
    /// The IAM path of the roles the controller makes.
    #[arg(long, default_value = "/bootstrap-controller/", value_name = "PATH")]
    pub role_path: String,
    /// Make roles without a permissions boundary, at path `/` (trying the controller out
    /// with an administrator's credentials; never in production).
    #[arg(long, conflicts_with = "permissions_boundary")]
    pub unconfined: bool,
    /// Print the IAM policy the controller's own role needs (confined to --role-path and
    /// --permissions-boundary) and exit.
    #[arg(long, requires = "permissions_boundary", conflicts_with = "print_crds")]
    pub print_iam_policy: bool,
    /// Objects reconciled at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// How often every object is reconciled again, repairing drift (e.g. 5m).
    #[arg(long, default_value = "5m")]
    pub resync: String,
    /// Time limit of one object's reconcile (e.g. 5m).
    #[arg(long, default_value = "5m")]
    pub timeout: String,
    /// The namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kube-system")]
    pub lease_namespace: String,
    /// The Lease's name (replicas of one controller share it).
    #[arg(long, default_value = "bootstrap-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: the host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Reconcile without leader election (one replica only).
    #[arg(long)]
    pub no_leader_election: bool,
    /// Serve Prometheus metrics (reconciles, errors, refusals, in flight, AWS calls) here,
    /// e.g. 0.0.0.0:9090.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub target: ClusterArgs,
    /// Only this namespace's workloads.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Apply the plan (without it, migrate only prints it).
    #[arg(long)]
    pub approve: bool,
    /// After a workload's mount check passes, remove its IRSA annotation and OIDC trust
    /// (without --approve, the plan lists what it would remove).
    #[arg(long)]
    pub remove_irsa: bool,
    /// Overall time limit, e.g. 15m.
    #[arg(long, default_value = "15m")]
    pub timeout: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub target: ClusterArgs,
    /// Only this namespace's SecretProviderClasses and workloads (the platform is always
    /// checked).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Also explain this pod's failed mounts (its FailedMount events); needs --namespace.
    #[arg(long, value_name = "POD", requires = "namespace")]
    pub pod: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn rotation_takes_an_optional_interval() {
        let cli = Cli::try_parse_from(["bootstrap", "up", "--cluster", "c", "--rotation"])
            .expect("parses");
        let Command::Up(up) = cli.command else {
            panic!("up")
        };
        assert_eq!(up.rotation.as_deref(), Some("1m"));
        assert_eq!(up.provider, ProviderKind::Rust);
    }

    #[test]
    fn output_dir_needs_dry_run() {
        assert!(
            Cli::try_parse_from(["bootstrap", "up", "--cluster", "c", "--output-dir", "x"])
                .is_err()
        );
    }
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Copy the provider image from an OCI layout into REGISTRY/REPO[:TAG].
    Push(ImagePushArgs),
    /// Show the digest and platforms a registry serves for an image reference.
    Inspect(ImageInspectArgs),
}

#[derive(Debug, Args)]
#[command(
    mut_arg("region", |a| a.help("AWS region for ECR (default: the registry's own region)")),
    mut_arg("profile", |a| a.help("AWS profile from the shared config files (ECR only)"))
)]
pub struct ImagePushArgs {
    /// Where to: REGISTRY/REPO[:TAG] (the tag defaults to the layout's), e.g.
    /// 123456789012.dkr.ecr.us-west-2.amazonaws.com/aws-csi-provider.
    #[arg(long, value_name = "REF")]
    pub to: String,
    /// The OCI image layout to copy (what image/build.sh writes).
    #[arg(long, value_name = "DIR", default_value = "target/image/oci")]
    pub from: PathBuf,
    /// Which tag of the layout to copy (default: its only image).
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// Tag an ECR repository this push creates with this cluster, so that its `bootstrap
    /// down` deletes the repository (never one bootstrap did not create).
    #[arg(long, env = "BOOTSTRAP_CLUSTER")]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Print the calls the push would make (the repository it would create), push nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(
    mut_arg("region", |a| a.help("AWS region for ECR (default: the registry's own region)")),
    mut_arg("profile", |a| a.help("AWS profile from the shared config files (ECR only)"))
)]
pub struct ImageInspectArgs {
    /// The image: [REGISTRY/]REPO[:TAG][@sha256:DIGEST].
    pub image: String,
    /// Fail unless the image offers linux/ARCH (repeatable), as `up` checks it.
    #[arg(long = "arch", value_name = "ARCH")]
    pub archs: Vec<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}
