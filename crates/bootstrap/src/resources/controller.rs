//! Where `up --controller` installs the controller and how `down` recognises it: its namespace,
//! name (service account, Deployment, RBAC, Lease) and CRDs, shared by every layer.

/// The namespace the controller runs in (beside the driver and the provider).
pub const NAMESPACE: &str = "kube-system";

/// Its service account, Deployment, ClusterRole, Role, bindings, Lease, and the
/// `app.kubernetes.io/name` of all of them.
pub const NAME: &str = "bootstrap-controller";

/// The CustomResourceDefinitions it serves: teams' requests and administrators' allowances.
pub const CRD_NAMES: [&str; 2] = [
    "teamsecrets.bootstrap.podid",
    "secretallowances.bootstrap.podid",
];

/// Whether a Pod Identity association or role serves the controller itself (not a team).
pub fn is_controller(namespace: &str, service_account: &str) -> bool {
    namespace == NAMESPACE && service_account == NAME
}

/// What `up --controller` installs.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallSettings {
    /// The controller's image (the `bootstrap` binary; `image/build.sh --controller`).
    pub image: String,
    /// The IAM path of the roles it makes.
    pub role_path: String,
}
