//! End to end in the local environment: the real secrets-store-csi-driver mounts a pod's
//! secrets through `aws-csi-provider`, over Pod Identity (the agent endpoint, eks-auth, moto
//! STS with IAM enforced) and over IRSA, and refuses bad input with a clear error and
//! nothing written. Secret values are compared, never printed.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams};
use serde_json::{Value, json};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

/// One namespace with a service account, a role allowed to read exactly `secrets` and
/// `params`, and (for Pod Identity) an association.
struct Fixture {
    env: common::Env,
    kube: kube::Client,
    cfg: aws_config::SdkConfig,
    ns: String,
    role_arn: String,
}

impl Fixture {
    async fn new(
        prefix: &str,
        secret_arns: &[String],
        param_arns: &[String],
        irsa: bool,
    ) -> Option<Self> {
        let env = common::env()?;
        let kube = common::kube().await;
        let cfg = common::aws().await;
        let ns = common::unique(prefix);
        common::namespace(&kube, &ns).await;
        let iam = aws_sdk_iam::Client::new(&cfg);
        let role_arn = iam
            .create_role()
            .role_name(&ns)
            .assume_role_policy_document(TRUST)
            .send()
            .await
            .expect("CreateRole")
            .role
            .expect("role")
            .arn;
        let mut statements = vec![];
        if !secret_arns.is_empty() {
            statements.push(json!({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": secret_arns}));
        }
        if !param_arns.is_empty() {
            statements.push(json!({"Effect": "Allow", "Action": ["ssm:GetParameters", "ssm:GetParameter"], "Resource": param_arns}));
        }
        if !statements.is_empty() {
            let policy = json!({"Version": "2012-10-17", "Statement": statements});
            iam.put_role_policy()
                .role_name(&ns)
                .policy_name("read")
                .policy_document(policy.to_string())
                .send()
                .await
                .expect("PutRolePolicy");
        }
        let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": ns}});
        if irsa {
            sa["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": role_arn});
        } else {
            aws_sdk_eks::Client::new(&cfg)
                .create_pod_identity_association()
                .cluster_name(&env.cluster)
                .namespace(&ns)
                .service_account("app")
                .role_arn(&role_arn)
                .send()
                .await
                .expect("CreatePodIdentityAssociation");
        }
        let driver = bootstrap::render::csi_driver::render(
            &bootstrap::render::csi_driver::CsiDriverValues::default(),
        )
        .expect("render driver");
        common::apply_all(&kube, "bootstrap-e2e", &driver).await;
        common::drivers_ready(&env).await;
        common::apply_all(&kube, "bootstrap-e2e", &[sa]).await;
        Some(Fixture {
            env,
            kube,
            cfg,
            ns,
            role_arn,
        })
    }

    /// Applies a SecretProviderClass `name` for provider aws and a pod `name` mounting it.
    async fn pod(&self, name: &str, parameters: Value) {
        let spc = json!({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"provider": "aws", "parameters": parameters}});
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": self.ns},
            "spec": {"serviceAccountName": "app",
                "containers": [{"name": "app", "image": "public.ecr.aws/docker/library/busybox:1.37",
                                "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}]}],
                "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
                             "volumeAttributes": {"secretProviderClass": name}}}]}});
        common::apply_all(&self.kube, "bootstrap-e2e", &[spc, pod]).await;
    }

    /// Waits for the pod to run and returns (target dir, files by name with their modes).
    async fn mounted(&self, name: &str) -> (String, BTreeMap<String, (Vec<u8>, u32)>) {
        let pods: Api<Pod> = Api::namespaced(self.kube.clone(), &self.ns);
        let pod = common::eventually(&format!("pod {name} to run after its mount"), 90, || {
            let pods = pods.clone();
            let name = name.to_string();
            async move {
                let pod = pods.get(&name).await.ok()?;
                (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
            }
        })
        .await;
        let uid = pod.metadata.uid.expect("uid");
        let target = format!(
            "{}/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount",
            self.env.state_dir
        );
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

    async fn pod_status(&self, name: &str) -> Value {
        let gvk = GroupVersionKind::gvk(
            "secrets-store.csi.x-k8s.io",
            "v1",
            "SecretProviderClassPodStatus",
        );
        let ar = ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasspodstatuses");
        let api: Api<DynamicObject> = Api::namespaced_with(self.kube.clone(), &self.ns, &ar);
        let id = format!("{name}-{}-{name}", self.ns);
        common::eventually("the SecretProviderClassPodStatus", 30, || {
            let api = api.clone();
            let id = id.clone();
            async move { api.get(&id).await.ok().map(|o| o.data["status"].clone()) }
        })
        .await
    }

    async fn delete_pod(&self, name: &str) {
        let pods: Api<Pod> = Api::namespaced(self.kube.clone(), &self.ns);
        pods.delete(name, &DeleteParams::default())
            .await
            .expect("delete pod");
        common::eventually("the pod to go", 60, || {
            let pods = pods.clone();
            let name = name.to_string();
            async move { pods.get_opt(&name).await.ok()?.is_none().then_some(()) }
        })
        .await;
    }

    /// Waits for a FailedMount event on pod `name` and returns its message; checks nothing was mounted.
    async fn failed(&self, name: &str) -> String {
        let events: Api<Event> = Api::namespaced(self.kube.clone(), &self.ns);
        let msg = common::eventually(&format!("a FailedMount event on {name}"), 60, || {
            let events = events.clone();
            let name = name.to_string();
            async move {
                events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find_map(|e| {
                        let m = e.message.unwrap_or_default();
                        // Skip "driver socket not there yet": the provider's answer is wanted.
                        (e.reason.as_deref() == Some("FailedMount")
                            && e.involved_object.name.as_deref() == Some(name.as_str())
                            && !m.contains("csi.sock"))
                        .then_some(m)
                    })
            }
        })
        .await;
        let pod = Api::<Pod>::namespaced(self.kube.clone(), &self.ns)
            .get(name)
            .await
            .expect("pod");
        assert_eq!(
            pod.status.and_then(|s| s.phase).as_deref(),
            Some("Pending"),
            "{name} must not start"
        );
        let uid = pod.metadata.uid.expect("uid");
        let target = format!(
            "{}/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount",
            self.env.state_dir
        );
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

fn objects(yaml: &str) -> String {
    yaml.to_string()
}

#[tokio::test]
async fn pod_identity_mounts_secrets_manager_and_ssm_objects_with_aliases_jmespath_labels_and_modes()
 {
    let Some(_) = common::env() else { return };
    let cfg = common::aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let ssm = aws_sdk_ssm::Client::new(&cfg);
    let tag = common::unique("pi");
    let password = common::unique("pw");
    let db = sm
        .create_secret()
        .name(format!("{tag}/db"))
        .secret_string(json!({"username": "app", "password": password}).to_string())
        .send()
        .await
        .expect("CreateSecret db");
    let api_v1 = common::unique("api-v1");
    let api_v2 = common::unique("api-v2");
    let api = sm
        .create_secret()
        .name(format!("{tag}/api"))
        .secret_string(&api_v1)
        .send()
        .await
        .expect("CreateSecret api");
    let api_put = sm
        .put_secret_value()
        .secret_id(format!("{tag}/api"))
        .secret_string(&api_v2)
        .send()
        .await
        .expect("PutSecretValue");
    let param_value = common::unique("param");
    ssm.put_parameter()
        .name(format!("/{tag}/param"))
        .value(&param_value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("PutParameter");
    let account = "123456789012";
    let region = std::env::var("AWS_REGION").unwrap_or_default();
    let param_arn = format!("arn:aws:ssm:{region}:{account}:parameter/{tag}/param");
    let secret_arns = vec![db.arn.clone().expect("arn"), api.arn.clone().expect("arn")];
    let Some(fx) = Fixture::new(
        "e2e-pi",
        &secret_arns,
        std::slice::from_ref(&param_arn),
        false,
    )
    .await
    else {
        return;
    };

    let objs = objects(&format!(
        r#"
- objectName: "{tag}/db"
  objectType: secretsmanager
  objectAlias: db.json
  filePermission: "0600"
  jmesPath:
    - path: username
      objectAlias: db-user
    - path: password
      objectAlias: db-pass
      filePermission: "0400"
- objectName: "{api_arn}"
  objectAlias: api-previous
  objectVersionLabel: AWSPREVIOUS
- objectName: "{tag}/api"
  objectType: secretsmanager
- objectName: "/{tag}/param"
  objectType: ssmparameter
  objectAlias: param
"#,
        api_arn = api.arn.clone().unwrap()
    ));
    fx.pod(
        "reader",
        json!({"objects": objs, "usePodIdentity": "true", "region": region}),
    )
    .await;
    let (_target, files) = fx.mounted("reader").await;
    let names: Vec<_> = files.keys().cloned().collect();
    let api_file = format!("{tag}_api");
    let mut want = vec![
        "api-previous".to_string(),
        api_file.clone(),
        "db-pass".into(),
        "db-user".into(),
        "db.json".into(),
        "param".into(),
    ];
    want.sort();
    assert_eq!(names, want, "one file per object, path translated");
    let db_json: Value =
        serde_json::from_slice(&files["db.json"].0).expect("db.json is the JSON secret");
    assert!(
        db_json["password"] == json!(password),
        "db.json holds the secret"
    );
    assert!(
        files["db-pass"].0 == password.as_bytes(),
        "jmesPath extracted the password"
    );
    assert_eq!(files["db-user"].0, b"app");
    assert!(
        files["api-previous"].0 == api_v1.as_bytes(),
        "the AWSPREVIOUS label selects the old version"
    );
    assert!(
        files[&api_file].0 == api_v2.as_bytes(),
        "the current version by default"
    );
    assert!(
        files["param"].0 == param_value.as_bytes(),
        "the SSM parameter, decrypted"
    );
    assert_eq!(files["db.json"].1, 0o600);
    assert_eq!(files["db-pass"].1, 0o400);
    assert_eq!(files["param"].1, 0o644, "the default mode");

    let status = fx.pod_status("reader").await;
    assert_eq!(status["mounted"], true);
    let versions: BTreeMap<String, String> = status["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap_or_default().to_string(),
                o["version"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        versions.get(&api_file),
        api_put.version_id.as_ref(),
        "the current VersionId"
    );
    assert_eq!(versions.get("db.json"), db.version_id.as_ref());
    assert_eq!(
        versions.get("param").map(String::as_str),
        Some("1"),
        "the SSM version"
    );

    // Rotation: a new value shows up on the next mount.
    let api_v3 = common::unique("api-v3");
    sm.put_secret_value()
        .secret_id(format!("{tag}/api"))
        .secret_string(&api_v3)
        .send()
        .await
        .expect("rotate");
    fx.delete_pod("reader").await;
    fx.pod(
        "reader",
        json!({"objects": objs, "usePodIdentity": "true", "region": region}),
    )
    .await;
    let (_, files) = fx.mounted("reader").await;
    assert!(
        files[&api_file].0 == api_v3.as_bytes(),
        "the rotated value is mounted"
    );
    assert!(
        files["api-previous"].0 == api_v2.as_bytes(),
        "and AWSPREVIOUS moved on"
    );

    // No secret value in the provider's log.
    let log = std::fs::read_to_string(format!("{}/logs/aws-csi-provider.log", fx.env.state_dir))
        .unwrap_or_default();
    for (what, v) in [
        ("password", &password),
        ("api v1", &api_v1),
        ("api v2", &api_v2),
        ("api v3", &api_v3),
        ("param", &param_value),
    ] {
        assert!(
            !log.contains(v.as_str()),
            "the provider log contains the {what} value"
        );
    }
    let _ = fx.role_arn;
    common::delete_namespace(&fx.kube, &fx.ns).await;
}

#[tokio::test]
async fn irsa_mounts_a_secret_with_the_service_account_role() {
    let Some(_) = common::env() else { return };
    let cfg = common::aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let tag = common::unique("irsa");
    let value = common::unique("irsa-value");
    let s = sm
        .create_secret()
        .name(format!("{tag}/token"))
        .secret_string(&value)
        .send()
        .await
        .expect("CreateSecret");
    let Some(fx) = Fixture::new("e2e-irsa", &[s.arn.expect("arn")], &[], true).await else {
        return;
    };
    let objs = format!(
        "- objectName: \"{tag}/token\"\n  objectType: secretsmanager\n  objectAlias: token\n"
    );
    // usePodIdentity omitted: IRSA, the upstream default.
    fx.pod("reader", json!({"objects": objs})).await;
    let (_, files) = fx.mounted("reader").await;
    assert!(
        files["token"].0 == value.as_bytes(),
        "the IRSA role read the secret"
    );
    assert_eq!(fx.pod_status("reader").await["mounted"], true);
    let _ = &fx.cfg;
    common::delete_namespace(&fx.kube, &fx.ns).await;
}

#[tokio::test]
async fn bad_input_fails_the_mount_with_a_clear_error_and_writes_nothing() {
    let Some(_) = common::env() else { return };
    let cfg = common::aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let tag = common::unique("bad");
    let ok = sm
        .create_secret()
        .name(format!("{tag}/ok"))
        .secret_string("fine")
        .send()
        .await
        .expect("CreateSecret");
    let big = sm
        .create_secret()
        .name(format!("{tag}/big"))
        .secret_string("x".repeat(5 * 1024 * 1024))
        .send()
        .await
        .expect("CreateSecret big");
    let arns = vec![ok.arn.expect("arn"), big.arn.expect("arn")];
    let Some(fx) = Fixture::new("e2e-bad", &arns, &[], false).await else {
        return;
    };
    let one = |name: &str, alias: &str| {
        format!(
            "- objectName: \"{tag}/{name}\"\n  objectType: secretsmanager\n  objectAlias: \"{alias}\"\n"
        )
    };

    fx.pod(
        "bad-flag",
        json!({"objects": one("ok", "ok"), "usePodIdentity": "yes"}),
    )
    .await;
    fx.pod(
        "traversal",
        json!({"objects": one("ok", "../escape"), "usePodIdentity": "true"}),
    )
    .await;
    fx.pod(
        "unknown",
        json!({"objects": one("missing", "missing"), "usePodIdentity": "true"}),
    )
    .await;
    fx.pod(
        "oversized",
        json!({"objects": one("big", "big"), "usePodIdentity": "true"}),
    )
    .await;

    let msg = fx.failed("bad-flag").await;
    assert!(
        msg.contains("usePodIdentity") && msg.contains("\"yes\""),
        "quotes the bad value: {msg}"
    );
    assert!(
        msg.contains("true") && msg.contains("false"),
        "lists accepted values: {msg}"
    );
    let msg = fx.failed("traversal").await;
    assert!(
        msg.contains("../escape") || msg.contains(".."),
        "names the traversal: {msg}"
    );
    let msg = fx.failed("unknown").await;
    assert!(
        msg.contains(&format!("{tag}/missing")),
        "names the missing secret: {msg}"
    );
    assert!(
        !msg.to_lowercase().contains("all regions"),
        "the real cause, not a generic fetch failure: {msg}"
    );
    let msg = fx.failed("oversized").await;
    assert!(
        msg.to_lowercase().contains("size")
            || msg.to_lowercase().contains("large")
            || msg.contains("MiB"),
        "says it is too big: {msg}"
    );
    common::delete_namespace(&fx.kube, &fx.ns).await;
}
