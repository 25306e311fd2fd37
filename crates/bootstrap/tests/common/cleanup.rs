//! A guard that removes what an env test made — when it passes and when an assertion fails:
//! `bootstrap down --namespace NS --force` for each namespace (bootstrap's objects, association
//! and role), then, directly, the IAM roles and users, associations, secrets, SSM parameters,
//! ECR repositories, namespaces and cluster-scoped objects the test made by hand. Every env
//! test that makes any of these registers it here before making it.

use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretError;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};

/// What to remove on drop.
#[derive(Default)]
pub struct Cleanup {
    pub cluster: String,
    /// Each gets `bootstrap down --namespace NS --force --yes`, then is deleted.
    pub namespaces: Vec<String>,
    /// IAM roles made by hand (inline policies deleted first).
    pub roles: Vec<String>,
    /// Secrets Manager secrets, by name or ARN (deleted without recovery).
    pub secrets: Vec<String>,
    /// SSM parameters, by name.
    pub parameters: Vec<String>,
    /// ECR repositories (deleted with their images).
    pub repositories: Vec<String>,
    /// IAM users (their access keys and inline policies deleted first).
    pub users: Vec<String>,
    /// IAM managed policies made by hand, by ARN (after the roles and users).
    pub policies: Vec<String>,
    /// Runs `bootstrap down --workloads-only --force` first: every workload bootstrap owns on
    /// the cluster, for a test that makes too many namespaces to remove one by one (only where
    /// no other test of the binary runs at the same time).
    pub all_workloads: bool,
    /// Cluster-scoped objects made by hand: (apiVersion, kind, plural, name).
    pub cluster_objects: Vec<(String, String, String, String)>,
}

impl Cleanup {
    pub fn new(cluster: &str) -> Self {
        let mut this = Self::default();
        this.cluster = cluster.into();
        this
    }

    /// Creates Secrets Manager secret `name` holding `value`, registered for removal before it
    /// is made; returns its ARN.
    pub async fn secret(&mut self, cfg: &aws_config::SdkConfig, name: &str, value: &str) -> String {
        self.secrets.push(name.to_string());
        super::create_secret(cfg, name, value).await
    }

    /// Creates IAM user `name`, registered for removal before it is made, and an access key of
    /// it; returns the key.
    pub async fn user(
        &mut self,
        iam: &aws_sdk_iam::Client,
        name: &str,
    ) -> aws_sdk_iam::types::AccessKey {
        self.users.push(name.to_string());
        let created = iam.create_user().user_name(name).send().await;
        created.unwrap_or_else(|e| panic!("CreateUser {name}: {e:?}"));
        let key = iam.create_access_key().user_name(name).send().await;
        let key = key.unwrap_or_else(|e| panic!("CreateAccessKey {name}: {e:?}"));
        key.access_key
            .unwrap_or_else(|| panic!("CreateAccessKey {name}: no key"))
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.is_empty() {
            return;
        }
        let mut this = std::mem::take(self);
        let done = super::block_on_own_thread(move || async move {
            this.run().await;
            // Emptied, so that dropping it here does not clean up (and spawn) once more.
            this.forget();
        });
        if !done {
            eprintln!("the cleanup guard panicked: some of what the test made may be left");
        }
    }
}

impl Cleanup {
    /// Empties the guard: nothing is removed when it is dropped.
    fn forget(&mut self) {
        self.namespaces.clear();
        self.roles.clear();
        self.secrets.clear();
        self.parameters.clear();
        self.repositories.clear();
        self.users.clear();
        self.policies.clear();
        self.cluster_objects.clear();
        self.all_workloads = false;
    }

    fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
            && self.roles.is_empty()
            && self.secrets.is_empty()
            && self.parameters.is_empty()
            && self.repositories.is_empty()
            && self.users.is_empty()
            && self.policies.is_empty()
            && self.cluster_objects.is_empty()
            && !self.all_workloads
    }

    /// `bootstrap down` with `scope` (`--namespace NS` or `--workloads-only`), its outcome
    /// ignored: what it leaves, the direct deletions below remove.
    fn down(&self, scope: &[&str]) {
        let mut args = vec!["down", "--cluster", &self.cluster, "--force", "--yes", "-q"];
        args.extend_from_slice(scope);
        let _ = super::cli::bootstrap(&args, None);
    }

    async fn run(&self) {
        let kube = super::kube().await;
        self.delete_cluster_objects(&kube).await;
        if self.all_workloads {
            self.down(&["--workloads-only"]);
        }
        for ns in &self.namespaces {
            self.down(&["--namespace", ns]);
        }
        let cfg = super::aws().await;
        self.delete_namespaces(&cfg, &kube).await;
        let iam = aws_sdk_iam::Client::new(&cfg);
        delete_each(&self.roles, |role| delete_role(&iam, role)).await;
        delete_each(&self.users, |user| delete_user(&iam, user)).await;
        delete_each(&self.policies, |arn| {
            iam.delete_policy().policy_arn(arn).send()
        })
        .await;
        delete_each(&self.secrets, |secret| delete_secret(&cfg, secret)).await;
        let ssm = aws_sdk_ssm::Client::new(&cfg);
        delete_each(&self.parameters, |name| {
            ssm.delete_parameter().name(name).send()
        })
        .await;
        let ecr = aws_sdk_ecr::Client::new(&cfg);
        delete_each(&self.repositories, |name| {
            ecr.delete_repository()
                .repository_name(name)
                .force(true)
                .send()
        })
        .await;
    }

    /// The cluster-scoped objects, a CRD's conversion webhook dropped first.
    async fn delete_cluster_objects(&self, kube: &kube::Client) {
        for (api_version, kind, plural, name) in &self.cluster_objects {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let api: Api<DynamicObject> = Api::all_with(
                kube.clone(),
                &ApiResource::from_gvk_with_plural(&gvk, plural),
            );
            if kind == "CustomResourceDefinition" {
                // A broken conversion webhook would stall the deletion of its objects.
                let none = serde_json::json!({"spec": {"conversion": {"strategy": "None", "webhook": null}}});
                let _ = api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&none))
                    .await;
            }
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
    }

    /// What `down` left of each namespace: its associations, then the namespace.
    async fn delete_namespaces(&self, cfg: &aws_config::SdkConfig, kube: &kube::Client) {
        let eks = aws_sdk_eks::Client::new(cfg);
        for ns in &self.namespaces {
            if let Ok(list) = eks
                .list_pod_identity_associations()
                .cluster_name(&self.cluster)
                .namespace(ns)
                .send()
                .await
            {
                let ids = list
                    .associations()
                    .iter()
                    .filter_map(|a| a.association_id());
                delete_each(ids, |id| {
                    eks.delete_pod_identity_association()
                        .cluster_name(&self.cluster)
                        .association_id(id)
                        .send()
                })
                .await;
            }
            super::delete_namespace(kube, ns).await;
        }
    }
}

/// A Secrets Manager client in the region of `secret`: the configuration's, or the region of
/// a secret given by ARN.
fn secrets_client(cfg: &aws_config::SdkConfig, secret: &str) -> aws_sdk_secretsmanager::Client {
    let mut conf = aws_sdk_secretsmanager::config::Builder::from(cfg);
    if let Some(region) = secret
        .strip_prefix("arn:")
        .and_then(|a| a.split(':').nth(2))
    {
        conf = conf.region(aws_sdk_secretsmanager::config::Region::new(
            region.to_string(),
        ));
    }
    aws_sdk_secretsmanager::Client::from_conf(conf.build())
}

/// Deletes `secret` without recovery, its replicas first: Secrets Manager refuses to delete a
/// primary that still has replica regions (the replicas would outlive the test).
async fn delete_secret(
    cfg: &aws_config::SdkConfig,
    secret: &str,
) -> Result<(), aws_sdk_secretsmanager::error::SdkError<DeleteSecretError>> {
    let sm = secrets_client(cfg, secret);
    if let Ok(described) = sm.describe_secret().secret_id(secret).send().await {
        let replicas: Vec<String> = described
            .replication_status()
            .iter()
            .filter_map(|r| r.region().map(str::to_string))
            .collect();
        if !replicas.is_empty() {
            let _ = sm
                .remove_regions_from_replication()
                .secret_id(secret)
                .set_remove_replica_regions(Some(replicas))
                .send()
                .await;
        }
    }
    sm.delete_secret()
        .secret_id(secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .map(drop)
}

/// Awaits `delete(item)` for each of `items` in turn, ignoring failures: the guard removes
/// what it can, and what is already gone (or was never made) is no reason to stop.
async fn delete_each<I, F: Future>(items: impl IntoIterator<Item = I>, delete: impl Fn(I) -> F) {
    for item in items {
        let _ = delete(item).await;
    }
}

/// Deletes IAM role `role` after its inline policies (those that can be listed).
pub async fn delete_role(
    iam: &aws_sdk_iam::Client,
    role: &str,
) -> Result<(), aws_sdk_iam::error::SdkError<aws_sdk_iam::operation::delete_role::DeleteRoleError>>
{
    if let Ok(list) = iam.list_role_policies().role_name(role).send().await {
        delete_each(list.policy_names(), |p| {
            iam.delete_role_policy()
                .role_name(role)
                .policy_name(p)
                .send()
        })
        .await;
    }
    iam.delete_role().role_name(role).send().await.map(drop)
}

/// Deletes IAM user `user` after its access keys and inline policies, ignoring failures.
async fn delete_user(iam: &aws_sdk_iam::Client, user: &str) {
    if let Ok(keys) = iam.list_access_keys().user_name(user).send().await {
        let ids = keys
            .access_key_metadata()
            .iter()
            .filter_map(|k| k.access_key_id());
        delete_each(ids, |id| {
            iam.delete_access_key()
                .user_name(user)
                .access_key_id(id)
                .send()
        })
        .await;
    }
    if let Ok(listed) = iam.list_user_policies().user_name(user).send().await {
        delete_each(listed.policy_names(), |p| {
            iam.delete_user_policy()
                .user_name(user)
                .policy_name(p)
                .send()
        })
        .await;
    }
    let _ = iam.delete_user().user_name(user).send().await;
}
