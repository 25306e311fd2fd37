//! `bootstrap controller` against the local EKS stand-in, as host processes with the
//! environment's credentials: two replicas, one leader; a TeamSecrets object converges (role,
//! association, SecretProviderClass, status Ready, its pod mounts); an alias edit is one
//! SecretProviderClass update; a policy widened behind its back is repaired on resync; a
//! request outside the SecretAllowance is refused in its status with nothing created; a second
//! object claiming the same service account is refused and its deletion deletes nothing; the
//! leader SIGKILLed → the other replica takes the Lease and carries on; the object deleted →
//! everything it made is gone.

mod common;
mod gitops_examples;

use std::process::{Child, Command, Stdio};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};

/// The replicas; killed, and the test's objects stripped of the finalizer, when the test ends
/// (passed or not) — before the cleanup guard removes the namespace and the CRDs.
struct Replicas {
    children: Vec<Child>,
    namespace: String,
    /// Each replica's stderr, shown when the test fails.
    logs: Vec<std::path::PathBuf>,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            for log in &self.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("--- {} (last 60 lines) ---", log.display());
                for line in &lines[lines.len().saturating_sub(60)..] {
                    eprintln!("{line}");
                }
            }
        }
        let ns = self.namespace.clone();
        common::block_on_own_thread(move || async move {
            let api = teamsecrets(&common::kube().await, &ns);
            if let Ok(list) = api.list(&Default::default()).await {
                for o in list.items {
                    let name = o.metadata.name.unwrap_or_default();
                    let none = json!({"metadata": {"finalizers": null}});
                    let _ = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&none))
                        .await;
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                }
            }
        });
    }
}

fn teamsecrets(kube: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("bootstrap.podid", "v1alpha1", "TeamSecrets");
    Api::namespaced_with(
        kube.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "teamsecrets"),
    )
}

/// The controller's own AWS identity: an IAM user holding exactly the policy
/// `controller --print-iam-policy` prints, and the boundary and path it is confined to.
struct Identity {
    key: String,
    secret: String,
    boundary: String,
    path: String,
    /// Its namespace (service account, Lease) and a kubeconfig with that service account's
    /// token: the Kubernetes side of its identity, bound by `controller --print-rbac`.
    namespace: String,
    kubeconfig: std::path::PathBuf,
}

fn replica(
    cluster: &str,
    me: &Identity,
    lease: &str,
    identity: &str,
    metrics: u16,
    log: &std::path::Path,
) -> Child {
    let metrics = format!("127.0.0.1:{metrics}");
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args([
            "controller",
            "--cluster",
            cluster,
            "--permissions-boundary",
            &me.boundary,
            "--role-path",
            &me.path,
            "--metrics-addr",
            &metrics,
            "--lease-namespace",
            &me.namespace,
            "--lease-name",
            lease,
            "--identity",
            identity,
            "--resync",
            "15s",
            "--timeout",
            "4m",
        ])
        .env("RUST_LOG", "info")
        .env("KUBECONFIG", &me.kubeconfig)
        .env("AWS_ACCESS_KEY_ID", &me.key)
        .env("AWS_SECRET_ACCESS_KEY", &me.secret)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("bootstrap controller starts")
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET /metrics` of a replica, as Prometheus would scrape it: metric name → value.
fn scrape(port: u16) -> std::collections::HashMap<String, f64> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics port");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    conn.read_to_string(&mut text).expect("response");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

async fn holder(kube: &kube::Client, ns: &str, lease: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(kube.clone(), ns);
    api.get_opt(lease)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Waits until the object's status describes its current generation with `Ready` = `ready`;
/// on timeout, fails showing the status it has.
async fn settled(api: &Api<DynamicObject>, name: &str, ready: &str, secs: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        if let Some(obj) = api
            .get(name)
            .await
            .ok()
            .and_then(|o| serde_json::to_value(o).ok())
        {
            let current = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
            if current && condition(&obj, "Ready").is_some_and(|c| c["status"] == ready) {
                return obj;
            }
            last = obj;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!(
        "timed out after {secs}s waiting for TeamSecrets {name} Ready={ready}; status: {:#}",
        last["status"]
    );
}

async fn role_policy(iam: &aws_sdk_iam::Client, role: &str) -> Option<(String, String)> {
    let names = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .ok()?
        .policy_names;
    let name = names.first()?.clone();
    let doc = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(&name)
        .send()
        .await
        .ok()?
        .policy_document;
    Some((name, common::url_decode(&doc)))
}

#[tokio::test(flavor = "multi_thread")]
async fn teams_onboard_themselves_within_their_allowance() {
    let mut s = common::session!("ctl");
    let (env, ns, cfg, kube, cleanup) = s.parts();
    let ns = ns.clone();
    let iam = aws_sdk_iam::Client::new(cfg);
    let lease = format!("{ns}-lease");
    let allowance = format!("{ns}-allow");
    cleanup.namespaces.push(ns.clone());
    for plural in ["teamsecrets", "secretallowances"] {
        cleanup.cluster_objects.push((
            "apiextensions.k8s.io/v1".into(),
            "CustomResourceDefinition".into(),
            "customresourcedefinitions".into(),
            format!("{plural}.bootstrap.podid"),
        ));
    }
    cleanup.cluster_objects.push((
        "bootstrap.podid/v1alpha1".into(),
        "SecretAllowance".into(),
        "secretallowances".into(),
        allowance.clone(),
    ));

    // The platform (agent, driver, provider) as `up` makes it; the CRDs as --print-crds prints them.
    common::cli::ensure_up(&env.cluster).await;
    let out = common::cli::run(common::cli::args(&["controller", "--print-crds"])).await;
    common::cli::ok(&out, "controller --print-crds");
    let crds = common::cli::json_of(&out)["items"]
        .as_array()
        .expect("a List")
        .clone();
    common::apply_all(kube, "controller-env-test", &crds).await;
    common::eventually("the CRDs served", 60, || async {
        let allowances = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("bootstrap.podid", "v1alpha1", "SecretAllowance"),
            "secretallowances",
        );
        let all: Api<DynamicObject> = Api::all_with(kube.clone(), &allowances);
        teamsecrets(kube, &ns)
            .list(&Default::default())
            .await
            .ok()?;
        all.list(&Default::default()).await.ok().map(drop)
    })
    .await;
    common::namespace(kube, &ns).await;
    // The GitOps examples, against our CRDs and Argo CD's and Flux's own.
    let upstream = gitops_examples::upstream_crds();
    gitops_examples::install(kube, cleanup, &upstream).await;
    let all_crds: Vec<Value> = crds.iter().chain(&upstream).cloned().collect();
    let tried = gitops_examples::are_valid(kube, &ns, &all_crds).await;
    assert!(tried >= 7, "every example object tried: {tried}");
    let db = cleanup
        .secret(cfg, &format!("{ns}/db"), "controller-test-value")
        .await;
    let outside = cleanup
        .secret(cfg, &format!("{ns}-other/db"), "not for them")
        .await;
    assert!(db.contains(":secret:") && outside.contains(":secret:"));
    common::apply_all(
        kube,
        "controller-env-test",
        &[json!({
            "apiVersion": "bootstrap.podid/v1alpha1", "kind": "SecretAllowance",
            "metadata": {"name": allowance},
            "spec": {"namespaces": [ns], "secrets": ["{namespace}/*"]},
        })],
    )
    .await;

    // The controller's identity: a boundary (what any role it makes can ever do) and a user
    // with exactly the policy --print-iam-policy prints for it.
    let path = format!("/bootstrap-{ns}/");
    let boundary = iam
        .create_policy()
        .policy_name(format!("{ns}-boundary"))
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret",
                           "secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets",
                           "ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath",
                           "kms:Decrypt"],
                "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .expect("boundary policy")
        .policy
        .and_then(|p| p.arn)
        .expect("boundary ARN");
    cleanup.policies.push(boundary.clone());
    let out = common::cli::run(common::cli::args(&[
        "controller",
        "--cluster",
        &env.cluster,
        "--permissions-boundary",
        &boundary,
        "--role-path",
        &path,
        "--print-iam-policy",
    ]))
    .await;
    common::cli::ok(&out, "controller --print-iam-policy");
    let own_policy = common::cli::json_of(&out);
    let user = format!("{ns}-controller");
    let key = cleanup.user(&iam, &user).await;
    iam.put_user_policy()
        .user_name(&user)
        .policy_name("bootstrap-controller")
        .policy_document(own_policy.to_string())
        .send()
        .await
        .expect("controller policy");
    let logs = tempfile::tempdir().expect("tempdir");
    let me = Identity {
        key: key.access_key_id().to_string(),
        secret: key.secret_access_key().to_string(),
        boundary: boundary.clone(),
        path: path.clone(),
        namespace: ns.clone(),
        kubeconfig: controller_kubeconfig(kube, cleanup, &ns, &lease, logs.path()).await,
    };

    // Two replicas, one Lease: one leads.
    let mut replicas = Replicas {
        children: Vec::new(),
        namespace: ns.clone(),
        logs: Vec::new(),
    };
    let mut ports = Vec::new();
    for id in ["ctl-a", "ctl-b"] {
        replicas.logs.push(logs.path().join(id));
        let port = free_port();
        ports.push(port);
        replicas.children.push(replica(
            &env.cluster,
            &me,
            &lease,
            id,
            port,
            &logs.path().join(id),
        ));
    }
    let leader = common::eventually("a leader", 60, || holder(kube, &ns, &lease)).await;
    assert!(leader == "ctl-a" || leader == "ctl-b", "{leader}");

    // A team's object converges, and its pod mounts.
    let api = teamsecrets(kube, &ns);
    let team = |sa: &str, secrets: Value, verify: bool| {
        json!({"apiVersion": "bootstrap.podid/v1alpha1", "kind": "TeamSecrets",
               "metadata": {"name": sa, "namespace": ns},
               "spec": {"serviceAccount": sa, "secrets": secrets, "verify": verify}})
    };
    common::apply_all(
        kube,
        "team",
        &[team(
            "app",
            json!([{"name": format!("{ns}/db"), "alias": "db"}]),
            true,
        )],
    )
    .await;
    let obj = settled(&api, "app", "True", 300).await;
    let verified = condition(&obj, "Verified").expect("Verified");
    assert_eq!(verified["status"], "True", "{obj:#}");
    assert!(
        verified["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("db@")),
        "{obj:#}"
    );
    assert!(
        !obj.to_string().contains("controller-test-value"),
        "no secret value in status"
    );
    let role_arn = obj["status"]["roleArn"]
        .as_str()
        .expect("roleArn")
        .to_string();
    let role = role_arn.rsplit('/').next().expect("role name").to_string();
    let account = boundary.split(':').nth(4).expect("account").to_string();
    assert_eq!(role_arn, format!("arn:aws:iam::{account}:role{path}{role}"));
    let made = common::role(&iam, &role)
        .await
        .expect("the team's role exists");
    assert_eq!(made.path(), path);
    assert_eq!(
        made.permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn()),
        Some(boundary.as_str()),
        "the role the controller made is bounded"
    );
    confinement_holds(&me, &role, &account).await;
    // The leader's metrics count what it did.
    let metrics = scrape(ports[usize::from(leader == "ctl-b")]);
    assert!(
        metrics["bootstrap_controller_reconciles_total"] >= 1.0,
        "{metrics:?}"
    );
    assert!(
        metrics["bootstrap_controller_aws_calls_total"] >= 3.0,
        "{metrics:?}"
    );
    assert!(metrics.contains_key("bootstrap_controller_reconcile_errors_total"));
    assert!(metrics.contains_key("bootstrap_controller_reconciles_in_flight"));
    // The one object is Ready for its generation: nothing waits.
    assert_eq!(
        metrics["bootstrap_controller_queue_depth"], 0.0,
        "{metrics:?}"
    );
    let associations = common::associations(cfg, &env.cluster, &ns, None).await;
    assert_eq!(associations.len(), 1);
    let spcs = common::spc_api(kube, &ns);
    let spc = spcs
        .get("bootstrap-app")
        .await
        .expect("the team's SecretProviderClass");
    assert_eq!(
        spc.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("bootstrap.podid/teamsecrets"))
            .map(String::as_str),
        Some("app")
    );

    // An alias edit: one SecretProviderClass update, nothing created.
    let edit = json!({"spec": {"secrets": [{"name": format!("{ns}/db"), "alias": "database"}], "verify": false}});
    api.patch("app", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("edit");
    let obj = settled(&api, "app", "True", 120).await;
    assert_eq!(
        (
            obj["status"]["created"].as_u64(),
            obj["status"]["updated"].as_u64()
        ),
        (Some(0), Some(1)),
        "{obj:#}"
    );
    let spc = serde_json::to_value(spcs.get("bootstrap-app").await.expect("spc")).expect("json");
    assert!(spc.to_string().contains("database"), "{spc:#}");

    // Outside the allowance: refused, nothing made.
    common::apply_all(
        kube,
        "team",
        &[team(
            "nosy",
            json!([{"name": format!("{ns}-other/db")}]),
            false,
        )],
    )
    .await;
    let refused = settled(&api, "nosy", "False", 60).await;
    assert_eq!(
        condition(&refused, "Ready").expect("Ready")["reason"],
        "NotAllowed",
        "{refused:#}"
    );
    assert!(
        refused["status"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("{ns}-other/db")))
    );
    assert!(spcs.get_opt("bootstrap-nosy").await.expect("get").is_none());
    let nosy_role = role.replace("app", "nosy");
    assert!(
        common::role(&iam, &nosy_role).await.is_none(),
        "no role for a refused request"
    );

    // A second object claiming app's service account: refused; deleting it deletes nothing.
    let mut thief = team("app", json!([{"name": format!("{ns}/db")}]), false);
    thief["metadata"]["name"] = json!("thief");
    common::apply_all(kube, "team", &[thief]).await;
    let conflict = settled(&api, "thief", "False", 60).await;
    assert_eq!(
        condition(&conflict, "Ready").expect("Ready")["reason"],
        "Conflict",
        "{conflict:#}"
    );
    api.delete("thief", &DeleteParams::default())
        .await
        .expect("delete thief");
    common::eventually("thief gone", 60, || async {
        api.get_opt("thief").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        common::role(&iam, &role).await.is_some(),
        "app's role survives the thief's deletion"
    );

    // The leader SIGKILLed in the middle of a reconcile (a new team's role made, its mount not
    // yet proven): the other replica takes the Lease, finishes it with no duplicate and no
    // leftover, and repairs drift on resync.
    assert_eq!(role, format!("bootstrap-{}.{ns}.app", env.cluster));
    let late_role = format!("bootstrap-{}.{ns}.late", env.cluster);
    common::apply_all(
        kube,
        "team",
        &[team("late", json!([{"name": format!("{ns}/db")}]), true)],
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while common::role(&iam, &late_role).await.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "late's role never made"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let index = if leader == "ctl-a" { 0 } else { 1 };
    replicas.children[index].kill().expect("SIGKILL the leader");
    let at_kill = serde_json::to_value(api.get("late").await.expect("late")).expect("json");
    assert!(
        condition(&at_kill, "Ready").is_none_or(|c| c["status"] != "True"),
        "killed after the reconcile ended, not in it: {at_kill:#}"
    );
    let _ = replicas.children[index].wait();
    let other = if index == 0 { "ctl-b" } else { "ctl-a" };
    common::eventually("the other replica leads", 60, || async {
        (holder(kube, &ns, &lease).await.as_deref() == Some(other)).then_some(())
    })
    .await;
    let late = settled(&api, "late", "True", 300).await;
    assert_eq!(
        condition(&late, "Verified").expect("Verified")["status"],
        "True"
    );
    let late_associations = common::associations(cfg, &env.cluster, &ns, Some("late")).await;
    assert_eq!(late_associations.len(), 1, "no duplicate");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(kube.clone(), &ns);
    common::eventually("no verification pod left", 60, || async {
        pods.list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    let (policy, good) = role_policy(&iam, &role).await.expect("the role's policy");
    let wide = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    iam.put_role_policy()
        .role_name(&role)
        .policy_name(&policy)
        .policy_document(wide.to_string())
        .send()
        .await
        .expect("widen");
    // Repaired: the document is the one the controller wrote (GetSecretValue on the team's
    // secret only; BatchGetSecretValue and nothing else on "*").
    let good: Value = serde_json::from_str(&good).expect("policy JSON");
    assert!(good.to_string().contains(&format!("{ns}/db")), "{good:#}");
    common::eventually("the policy repaired", 90, || async {
        let (_, now) = role_policy(&iam, &role).await?;
        (serde_json::from_str::<Value>(&now).ok()? == good).then_some(())
    })
    .await;

    // Deleted: everything they made goes.
    for name in ["app", "late"] {
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    common::eventually("the objects gone", 120, || async {
        (api.get_opt("app").await.ok()?.is_none() && api.get_opt("late").await.ok()?.is_none())
            .then_some(())
    })
    .await;
    for r in [&role, &late_role] {
        assert!(common::role(&iam, r).await.is_none(), "role {r} is deleted");
    }
    assert!(spcs.get_opt("bootstrap-app").await.expect("get").is_none());
    let associations = common::associations(cfg, &env.cluster, &ns, None).await;
    assert!(associations.is_empty());
    drop(replicas);
}

/// With the controller's own credentials, the stand-in's IAM enforcement refuses what a
/// compromised controller would try: a role without the boundary, a role outside its path, a
/// role bounded by another policy, dropping a role's boundary, and editing the boundary.
async fn confinement_holds(me: &Identity, made: &str, account: &str) {
    use aws_sdk_iam::error::ProvideErrorMetadata;
    let creds = aws_sdk_iam::config::Credentials::new(&me.key, &me.secret, None, None, "test");
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(creds)
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}]})
    .to_string();
    let admin = format!("arn:aws:iam::{account}:policy/AdministratorAccess");
    // An attempt's outcome: its error code, or Ok if it was let through.
    fn code<T, E: ProvideErrorMetadata>(
        sent: Result<T, aws_sdk_iam::error::SdkError<E>>,
    ) -> Result<(), String> {
        sent.map(drop)
            .map_err(|e| e.code().unwrap_or("(no code)").to_string())
    }
    let create = |suffix: &str, path: Option<&str>, boundary: Option<&str>| {
        iam.create_role()
            .role_name(format!("{made}-{suffix}"))
            .set_path(path.map(str::to_string))
            .set_permissions_boundary(boundary.map(str::to_string))
            .assume_role_policy_document(&trust)
            .send()
    };
    let widened = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "*", "Resource": "*"}]});
    let attempts: Vec<(&str, Result<(), String>)> = vec![
        (
            "CreateRole without the boundary",
            code(create("nb", Some(&me.path), None).await),
        ),
        (
            "CreateRole outside the path",
            code(create("root", None, Some(&me.boundary)).await),
        ),
        (
            "CreateRole bounded by another policy",
            code(create("ob", Some(&me.path), Some(&admin)).await),
        ),
        (
            "DeleteRolePermissionsBoundary",
            code(
                iam.delete_role_permissions_boundary()
                    .role_name(made)
                    .send()
                    .await,
            ),
        ),
        (
            "CreatePolicyVersion of the boundary",
            code(
                iam.create_policy_version()
                    .policy_arn(&me.boundary)
                    .policy_document(widened.to_string())
                    .set_as_default(true)
                    .send()
                    .await,
            ),
        ),
    ];
    for (what, outcome) in attempts {
        assert_eq!(outcome.expect_err(what), "AccessDenied", "{what}");
    }
}

/// The controller's Kubernetes identity as `controller --print-rbac` makes it (its service
/// account in `ns`, its ClusterRole, its Role on the Lease), and a kubeconfig that is exactly
/// that service account: the environment's server and CA, a token from the TokenRequest API.
async fn controller_kubeconfig(
    kube: &kube::Client,
    cleanup: &mut common::cleanup::Cleanup,
    ns: &str,
    lease: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let out = common::cli::run(common::cli::args(&[
        "controller",
        "--print-rbac",
        "--lease-namespace",
        ns,
        "--lease-name",
        lease,
    ]))
    .await;
    common::cli::ok(&out, "controller --print-rbac");
    let items = common::cli::json_of(&out)["items"]
        .as_array()
        .expect("a List")
        .clone();
    for (kind, plural) in [
        ("ClusterRole", "clusterroles"),
        ("ClusterRoleBinding", "clusterrolebindings"),
    ] {
        cleanup.cluster_objects.push((
            "rbac.authorization.k8s.io/v1".into(),
            kind.into(),
            plural.into(),
            "bootstrap-controller".into(),
        ));
    }
    common::apply_all(kube, "controller-env-test", &items).await;
    let sas: Api<ServiceAccount> = Api::namespaced(kube.clone(), ns);
    let token = sas
        .create_token_request(
            "bootstrap-controller",
            &Default::default(),
            &TokenRequest::default(),
        )
        .await
        .expect("TokenRequest")
        .status
        .expect("token")
        .token;
    let admin = std::env::var("KUBECONFIG").expect("KUBECONFIG (env.sh)");
    let mut config: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(&admin).expect("the environment's kubeconfig"),
    )
    .expect("kubeconfig YAML");
    let user = &mut config["users"][0]["user"];
    assert!(user.is_object(), "a user in {admin}");
    *user = json!({ "token": token });
    let path = dir.join("controller.kubeconfig");
    std::fs::write(&path, config.to_string()).expect("write kubeconfig");
    path
}
