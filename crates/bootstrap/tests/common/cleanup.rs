//! A guard that removes what an env test made — when it passes and when an assertion fails:
//! `bootstrap down --namespace NS --force` for each namespace (bootstrap's objects, association
//! and role), then, directly, the IAM roles, associations, secrets, namespaces and cluster-scoped
//! objects the test made by hand.

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
    /// Secrets Manager secrets (deleted without recovery).
    pub secrets: Vec<String>,
    /// Cluster-scoped objects made by hand: (apiVersion, kind, plural, name).
    pub cluster_objects: Vec<(String, String, String, String)>,
}

impl Cleanup {
    pub fn new(cluster: &str) -> Self {
        let mut this = Self::default();
        this.cluster = cluster.into();
        this
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.namespaces.is_empty()
            && self.roles.is_empty()
            && self.secrets.is_empty()
            && self.cluster_objects.is_empty()
        {
            return;
        }
        let mut this = std::mem::take(self);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(this.run());
            // Emptied, so that dropping it here does not clean up (and spawn) once more.
            this.namespaces.clear();
            this.roles.clear();
            this.secrets.clear();
            this.cluster_objects.clear();
        })
        .join();
    }
}

impl Cleanup {
    async fn run(&self) {
        let kube = super::kube().await;
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
        for ns in &self.namespaces {
            let _ = super::cli::bootstrap(
                &[
                    "down",
                    "--cluster",
                    &self.cluster,
                    "--namespace",
                    ns,
                    "--force",
                    "--yes",
                    "-q",
                ],
                None,
            );
        }
        let cfg = super::aws().await;
        let eks = aws_sdk_eks::Client::new(&cfg);
        for ns in &self.namespaces {
            if let Ok(list) = eks
                .list_pod_identity_associations()
                .cluster_name(&self.cluster)
                .namespace(ns)
                .send()
                .await
            {
                for a in list.associations() {
                    if let Some(id) = a.association_id() {
                        let _ = eks
                            .delete_pod_identity_association()
                            .cluster_name(&self.cluster)
                            .association_id(id)
                            .send()
                            .await;
                    }
                }
            }
            super::delete_namespace(&kube, ns).await;
        }
        let iam = aws_sdk_iam::Client::new(&cfg);
        for role in &self.roles {
            if let Ok(list) = iam.list_role_policies().role_name(role).send().await {
                for p in list.policy_names() {
                    let _ = iam
                        .delete_role_policy()
                        .role_name(role)
                        .policy_name(p)
                        .send()
                        .await;
                }
            }
            let _ = iam.delete_role().role_name(role).send().await;
        }
        let sm = aws_sdk_secretsmanager::Client::new(&cfg);
        for secret in &self.secrets {
            let _ = sm
                .delete_secret()
                .secret_id(secret)
                .force_delete_without_recovery(true)
                .send()
                .await;
        }
    }
}
