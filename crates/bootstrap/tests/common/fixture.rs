//! A namespace with a service account whose role reads exactly the given secrets, and pods
//! mounting SecretProviderClasses of the `aws` provider, for end-to-end provider tests.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

/// One namespace with a service account, a role allowed to read exactly `secrets` and
/// `params`, and (for Pod Identity) an association. Its guard removes the namespace (after
/// `bootstrap down` of it), its associations and the role when the fixture is dropped, pass
/// or fail; a test adds what else it makes to `cleanup`.
pub struct Fixture {
    pub env: super::Env,
    pub kube: kube::Client,
    pub cfg: aws_config::SdkConfig,
    pub ns: String,
    pub role_arn: String,
    pub cleanup: super::cleanup::Cleanup,
}

/// A Pod Identity role `name` allowed to read exactly `secret_arns` and `param_arns`; its ARN.
pub async fn reading_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    secret_arns: &[String],
    param_arns: &[String],
) -> String {
    role_with(iam, name, read_statements(secret_arns, param_arns)).await
}

/// The statements of [`reading_role`]'s policy.
pub fn read_statements(secret_arns: &[String], param_arns: &[String]) -> Vec<Value> {
    let mut statements = vec![];
    if !secret_arns.is_empty() {
        statements.push(json!({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": secret_arns}));
    }
    if !param_arns.is_empty() {
        statements.push(json!({"Effect": "Allow", "Action": ["ssm:GetParameters", "ssm:GetParameter"], "Resource": param_arns}));
    }
    statements
}

/// A Pod Identity role `name` with an inline policy of `statements` (none: no policy); its ARN.
pub async fn role_with(iam: &aws_sdk_iam::Client, name: &str, statements: Vec<Value>) -> String {
    role_trusting(iam, name, super::POD_IDENTITY_TRUST, statements).await
}

/// A role `name` with trust policy `trust` and an inline policy `read` of `statements` (none:
/// no policy); its ARN.
pub async fn role_trusting(
    iam: &aws_sdk_iam::Client,
    name: &str,
    trust: &str,
    statements: Vec<Value>,
) -> String {
    let role_arn = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("CreateRole")
        .role
        .expect("role")
        .arn;
    if !statements.is_empty() {
        let policy = json!({"Version": "2012-10-17", "Statement": statements});
        iam.put_role_policy()
            .role_name(name)
            .policy_name("read")
            .policy_document(policy.to_string())
            .send()
            .await
            .expect("PutRolePolicy");
    }
    role_arn
}

impl Fixture {
    pub async fn new(
        prefix: &str,
        secret_arns: &[String],
        param_arns: &[String],
        irsa: bool,
    ) -> Option<Self> {
        Self::with_policy(prefix, read_statements(secret_arns, param_arns), irsa).await
    }

    /// [`Fixture::new`] with a role whose policy is `statements` (e.g. ARN patterns and list
    /// actions on `*`).
    pub async fn with_policy(prefix: &str, statements: Vec<Value>, irsa: bool) -> Option<Self> {
        let env = super::env()?;
        let kube = super::kube().await;
        let cfg = super::aws().await;
        let ns = super::unique(prefix);
        let mut cleanup = super::cleanup::Cleanup::new(&env.cluster);
        cleanup.namespaces.push(ns.clone());
        cleanup.roles.push(ns.clone());
        super::namespace(&kube, &ns).await;
        let iam = aws_sdk_iam::Client::new(&cfg);
        let role_arn = role_with(&iam, &ns, statements).await;
        let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": ns}});
        if irsa {
            sa["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": role_arn});
        } else {
            super::associate(&cfg, &env.cluster, &ns, "app", &role_arn).await;
        }
        let driver = bootstrap::render::csi_driver::render(
            &bootstrap::render::csi_driver::CsiDriverValues::default(),
        )
        .expect("render driver");
        super::apply_all(&kube, "bootstrap-e2e", &driver).await;
        super::drivers_ready(&env).await;
        super::apply_all(&kube, "bootstrap-e2e", &[sa]).await;
        Some(Fixture {
            env,
            kube,
            cfg,
            ns,
            role_arn,
            cleanup,
        })
    }

    /// The account of the fixture's role (from its ARN).
    pub fn account(&self) -> &str {
        self.role_arn.split(':').nth(4).unwrap_or_default()
    }

    /// Applies a SecretProviderClass `name` for provider aws and a pod `name` mounting it.
    pub async fn pod(&self, name: &str, parameters: Value) {
        let spc = json!({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"provider": "aws", "parameters": parameters}});
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": self.ns},
            "spec": {"serviceAccountName": "app",
                "containers": [{"name": "app", "image": "public.ecr.aws/docker/library/busybox:1.37",
                                "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}]}],
                "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
                             "volumeAttributes": {"secretProviderClass": name}}}]}});
        super::apply_all(&self.kube, "bootstrap-e2e", &[spc, pod]).await;
    }

    /// The directory the kubelet shim mounts pod `pod`'s `secrets` volume at.
    fn volume_dir(&self, pod: &Pod) -> String {
        let uid = pod.metadata.uid.as_deref().expect("uid");
        format!(
            "{}/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount",
            self.env.state_dir
        )
    }

    /// Waits (a watch, at most 90 s) for pod `name` to run and returns its volume's directory.
    pub async fn running(&self, name: &str) -> String {
        let pods: Api<Pod> = Api::namespaced(self.kube.clone(), &self.ns);
        let running = await_condition(pods, name, conditions::is_pod_running());
        let pod = tokio::time::timeout(Duration::from_secs(90), running)
            .await
            .unwrap_or_else(|_| {
                panic!("timed out after 90s waiting for pod {name} to run after its mount")
            })
            .unwrap_or_else(|e| panic!("watching pod {name}: {e}"))
            .unwrap_or_else(|| panic!("pod {name} was deleted while waiting for it to run"));
        self.volume_dir(&pod)
    }

    /// Waits for the pod to run and returns (target dir, files by name with their modes).
    pub async fn mounted(&self, name: &str) -> (String, BTreeMap<String, (Vec<u8>, u32)>) {
        let target = self.running(name).await;
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&target).expect("target dir").flatten() {
            let fname = entry.file_name().to_string_lossy().to_string();
            if fname.starts_with("..") {
                continue; // the driver's atomic-writer bookkeeping
            }
            let path = entry.path();
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
            files.insert(fname, (std::fs::read(&path).expect("read"), mode));
        }
        (target, files)
    }

    /// The driver's SecretProviderClassPodStatuses in the fixture's namespace.
    pub fn pod_statuses(&self) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(
            "secrets-store.csi.x-k8s.io",
            "v1",
            "SecretProviderClassPodStatus",
        );
        Api::namespaced_with(self.kube.clone(), &self.ns, &ApiResource::from_gvk(&gvk))
    }

    pub async fn pod_status(&self, name: &str) -> Value {
        let api = self.pod_statuses();
        let id = format!("{name}-{}-{name}", self.ns);
        super::eventually("the SecretProviderClassPodStatus", 30, || {
            let api = api.clone();
            let id = id.clone();
            async move { api.get(&id).await.ok().map(|o| o.data["status"].clone()) }
        })
        .await
    }

    pub async fn delete_pod(&self, name: &str) {
        let pods: Api<Pod> = Api::namespaced(self.kube.clone(), &self.ns);
        pods.delete(name, &DeleteParams::default())
            .await
            .expect("delete pod");
        super::eventually("the pod to go", 60, || {
            let pods = pods.clone();
            let name = name.to_string();
            async move { pods.get_opt(&name).await.ok()?.is_none().then_some(()) }
        })
        .await;
    }

    /// Waits for a FailedMount event on pod `name` and returns its message; checks nothing was mounted.
    pub async fn failed(&self, name: &str) -> String {
        // Skip "driver socket not there yet": the provider's answer is wanted.
        let msg = super::failed_mount(
            &self.kube,
            &self.ns,
            &format!("a FailedMount event on {name}"),
            |e, m| e.involved_object.name.as_deref() == Some(name) && !m.contains("csi.sock"),
        )
        .await;
        let pod = Api::<Pod>::namespaced(self.kube.clone(), &self.ns)
            .get(name)
            .await
            .expect("pod");
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Pending"),
            "{name} must not start"
        );
        let target = self.volume_dir(&pod);
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        assert!(
            !mounts.contains(&target),
            "nothing stays mounted for {name}"
        );
        let leftovers = std::fs::read_dir(&target).map(|d| d.count()).unwrap_or(0);
        assert_eq!(leftovers, 0, "no file is written for {name}");
        msg
    }
}
