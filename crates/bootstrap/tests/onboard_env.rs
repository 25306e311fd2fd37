//! `bootstrap onboard` against the local EKS stand-in: the example teams file converges (every
//! verifying team's pod mounts its own secret; each team's credentials are denied another
//! team's secret), a re-run writes nothing, an edited file converges and `--prune` removes the
//! dropped team, a malformed file is refused with its location and nothing written, an
//! association of another namespace pointing at a team's role gets no credentials, and 200
//! teams with IAM and EKS throttling injected finish with zero failures.

mod common;

use aws_sdk_secretsmanager::types::Tag;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use common::cli::{
    args, faults, json_args, json_of, json_ok, run, teams_file, teams_yaml, writes_during,
};

fn onboard(file: &std::path::Path, cluster: &str, extra: &[&str]) -> Vec<String> {
    let file = file.to_str().expect("utf8");
    let mut a = json_args("onboard", cluster, &["-f", file, "--timeout", "10m"]);
    a.extend(args(extra));
    a
}

/// The namespaces of the example file's teams.
const EXAMPLE_NAMESPACES: [&str; 6] = [
    "payments",
    "search",
    "billing",
    "analytics",
    "partners",
    "orders",
];

/// The example file with this run's namespaces and secret names.
fn example_for(tag: &str) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/teams.yaml"
    ))
    .expect("examples/teams.yaml");
    let mut text = text.replace("teams/", &format!("{tag}/"));
    for ns in EXAMPLE_NAMESPACES {
        text = text.replace(
            &format!("namespace: {ns}"),
            &format!("namespace: {tag}-{ns}"),
        );
        text = text.replace(&format!("name: {ns}\n"), &format!("name: {tag}-{ns}\n"));
    }
    text
}

/// Credentials the Pod Identity agent gives a service account's token, or its refusal.
async fn agent_credentials(
    env: &common::Env,
    ns: &str,
    sa: &str,
) -> Result<aws_config::SdkConfig, String> {
    let kube = common::kube().await;
    let sas: Api<ServiceAccount> = Api::namespaced(kube, ns);
    let token = common::sa_token(&sas, sa, "pods.eks.amazonaws.com").await;
    let reply = reqwest::Client::new()
        .get(&env.agent_endpoint)
        .header("Authorization", token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !reply.status().is_success() {
        return Err(format!(
            "{}: {}",
            reply.status(),
            reply.text().await.unwrap_or_default()
        ));
    }
    let creds: Value = reply.json().await.map_err(|e| e.to_string())?;
    let text = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
    let base = common::aws().await;
    Ok(stand_in_config(
        base.region().cloned(),
        aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new(
                text("AccessKeyId"),
                text("SecretAccessKey"),
                Some(text("Token")),
                None,
                "pod-identity-agent",
            ),
        ),
    ))
}

/// A config for the stand-in's endpoint in `region` with `credentials`.
fn stand_in_config(
    region: Option<aws_config::Region>,
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .region(region)
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(std::env::var("AWS_ENDPOINT_URL").unwrap_or_default())
        .credentials_provider(credentials)
        .build()
}

/// Creates secret `name` holding `value`, replicated to `region`; its ARN.
async fn create_replicated(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: String,
    region: &str,
) -> String {
    sm.create_secret()
        .name(name)
        .secret_string(value)
        .add_replica_regions(
            aws_sdk_secretsmanager::types::ReplicaRegionType::builder()
                .region(region)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create the replicated secret {name}: {e:?}"))
        .arn()
        .unwrap_or_default()
        .to_string()
}

/// Puts SecureString parameter `name` with a unique value.
async fn put_parameter(ssm: &aws_sdk_ssm::Client, name: &str) {
    ssm.put_parameter()
        .name(name)
        .value(common::unique("p"))
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put parameter {name}: {e:?}"));
}

async fn can_read(cfg: &aws_config::SdkConfig, secret: &str) -> bool {
    aws_sdk_secretsmanager::Client::new(cfg)
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_teams_converge_rerun_edit_and_prune() {
    let mut s = common::session!(serial, "ob");
    let (env, tag, cfg, kube, cleanup) = s.parts();
    let cluster = env.cluster.clone();
    // The teams' namespaces, and the intruder's below: its association names the payments
    // role, so a later full `down` would (rightly) keep that role.
    cleanup.namespaces = EXAMPLE_NAMESPACES
        .iter()
        .chain(&["intruder"])
        .map(|ns| format!("{tag}-{ns}"))
        .collect();
    cleanup.secrets = [
        "payments/db",
        "search/api-key",
        "partners/feed",
        "analytics/warehouse",
    ]
    .iter()
    .map(|s| format!("{tag}/{s}"))
    .collect();
    cleanup.parameters = vec![format!("/{tag}/billing/token")];
    let sm = aws_sdk_secretsmanager::Client::new(cfg);
    let ssm = aws_sdk_ssm::Client::new(cfg);
    for (name, value) in [
        (
            "payments/db",
            json!({"username": "pay", "password": common::unique("pw")}).to_string(),
        ),
        ("search/api-key", common::unique("key")),
        ("partners/feed", common::unique("feed")),
    ] {
        common::create_secret(cfg, &format!("{tag}/{name}"), &value).await;
    }
    sm.create_secret()
        .name(format!("{tag}/analytics/warehouse"))
        .secret_string(common::unique("wh"))
        .tags(
            Tag::builder()
                .key("kubernetes-namespace")
                .value(format!("{tag}-analytics"))
                .build(),
        )
        .tags(
            Tag::builder()
                .key("eks-cluster-name")
                .value(&cluster)
                .build(),
        )
        .send()
        .await
        .expect("create the ABAC secret");
    // The orders team (no verification: its prefix and optional objects are our provider's):
    // its named secrets replicated to its failoverRegion, one a JSON object it syncs by key.
    for (name, value) in [
        ("orders/db", common::unique("db")),
        (
            "orders/config",
            json!({"region": "x", "mode": "y"}).to_string(),
        ),
    ] {
        let arn = create_replicated(&sm, &format!("{tag}/{name}"), value, "us-east-2").await;
        cleanup.secrets.push(arn.clone());
        cleanup
            .secrets
            .push(bootstrap::resources::secrets::in_region(&arn, "us-east-2"));
    }
    put_parameter(&ssm, &format!("/{tag}/billing/token")).await;
    // The search team's service account is Helm's, made before onboarding.
    common::namespace(kube, &format!("{tag}-search")).await;
    let sas: Api<ServiceAccount> = Api::namespaced(kube.clone(), &format!("{tag}-search"));
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "indexer"}})).expect("sa"),
    )
    .await
    .expect("create the existing SA");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = teams_yaml(dir.path(), &example_for(tag));
    let out = run(onboard(&file, &cluster, &[])).await;
    let report = json_ok(&out);
    assert_eq!(report["totals"]["failed"], 0, "{report:#}");
    assert_eq!(report["totals"]["succeeded"], 6);
    for team in report["teams"].as_array().expect("teams") {
        let name = team["name"].as_str().unwrap_or("");
        let verify = !name.ends_with("partners") && !name.ends_with("orders");
        if verify {
            assert!(
                team["verified"].as_array().is_some_and(|v| !v.is_empty()),
                "{team:#}"
            );
        }
    }
    let partners = report["teams"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == format!("{tag}-partners")))
        .expect("partners");
    assert!(
        partners["hints"].to_string().contains("sts:ExternalId"),
        "{partners}"
    );
    // Helm's service account was left as it was: no bootstrap label.
    let indexer = sas.get("indexer").await.expect("SA");
    assert!(
        !indexer
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("app.kubernetes.io/managed-by"),
        "an existing SA must not be labelled"
    );
    // Each team reads its own secret, and not another team's.
    let pay = agent_credentials(env, &format!("{tag}-payments"), "api")
        .await
        .expect("payments creds");
    assert!(can_read(&pay, &format!("{tag}/payments/db")).await);
    assert!(
        !can_read(&pay, &format!("{tag}/search/api-key")).await,
        "payments read search's secret"
    );
    let search = agent_credentials(env, &format!("{tag}-search"), "indexer")
        .await
        .expect("search creds");
    assert!(can_read(&search, &format!("{tag}/search/api-key")).await);
    assert!(!can_read(&search, &format!("{tag}/payments/db")).await);
    let etl = agent_credentials(env, &format!("{tag}-analytics"), "etl")
        .await
        .expect("abac creds");
    assert!(
        can_read(&etl, &format!("{tag}/analytics/warehouse")).await,
        "ABAC read of a tagged secret"
    );
    assert!(
        !can_read(&etl, &format!("{tag}/payments/db")).await,
        "ABAC must not read untagged secrets"
    );

    // A re-run changes nothing.
    let (out, wrote) = writes_during(run(onboard(&file, &cluster, &[]))).await;
    let again = json_ok(&out);
    assert_eq!(again["changes"]["created"], 0, "{again:#}");
    assert_eq!(again["changes"]["updated"], 0, "{again:#}");
    assert!(wrote.is_empty(), "the re-run wrote {wrote:?}");

    // An edited file converges: a changed alias updates the SPC; a dropped team is orphaned
    // until --prune deletes it.
    let edited = example_for(tag)
        .replace("alias: token", "alias: billing-token")
        .split("  # Cross-account")
        .next()
        .expect("before partners")
        .to_string();
    std::fs::write(&file, edited).expect("edit");
    let out = run(onboard(&file, &cluster, &[])).await;
    let changed = json_ok(&out);
    let billing = changed["teams"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == format!("{tag}-billing")))
        .cloned()
        .expect("billing");
    assert_eq!(billing["updated"], 1, "{billing:#}");
    let orphaned = changed["orphaned"].to_string();
    assert!(
        orphaned.contains(&format!("{tag}-partners")) && orphaned.contains("\"pruned\":false"),
        "{orphaned}"
    );
    let out = run(onboard(&file, &cluster, &["--prune"])).await;
    let pruned = json_of(&out);
    assert!(
        pruned["orphaned"].to_string().contains("\"pruned\":true"),
        "{pruned:#}"
    );
    let left = common::associations(cfg, &cluster, &format!("{tag}-partners"), None).await;
    assert!(left.is_empty(), "the pruned team's association is gone");
    let iam = aws_sdk_iam::Client::new(cfg);
    let role = bootstrap::resources::role::role_name(&cluster, &format!("{tag}-partners"), "sync");
    assert!(
        common::role(&iam, &role).await.is_none(),
        "the pruned team's role is gone"
    );

    // down --team removes one team and nothing else.
    let billing_team = format!("{tag}-billing");
    let out = run(args(&[
        "down",
        "--cluster",
        &cluster,
        "--team",
        &billing_team,
        "--yes",
        "-q",
    ]))
    .await;
    assert!(
        out.status.success(),
        "down --team: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let billing = common::associations(cfg, &cluster, &format!("{tag}-billing"), None).await;
    assert!(
        billing.is_empty(),
        "down --team removed the team's association"
    );
    let payments = common::associations(cfg, &cluster, &format!("{tag}-payments"), None).await;
    assert_eq!(payments.len(), 1, "other teams stay");

    // An association of another namespace pointing at a team's role gets no credentials.
    let intruder = format!("{tag}-intruder");
    common::namespace(kube, &intruder).await;
    let isas: Api<ServiceAccount> = Api::namespaced(kube.clone(), &intruder);
    isas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("sa"),
    )
    .await
    .expect("create SA");
    let account = common::account(cfg).await;
    let pay_role = bootstrap::resources::role::role_arn(
        &account,
        &bootstrap::resources::role::role_name(&cluster, &format!("{tag}-payments"), "api"),
    );
    common::associate(cfg, &cluster, &intruder, "x", &pay_role).await;
    let denied = agent_credentials(env, &intruder, "x").await;
    assert!(
        denied.is_err(),
        "a pod of another namespace got the payments role's credentials"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_file_names_line_column_and_field_and_writes_nothing() {
    let mut s = common::session!(serial, "t");
    let (env, ..) = s.parts();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = teams_yaml(
        dir.path(),
        "teams:\n  - name: a\n    namespace: a\n    serviceAccount: app\n    secrets: [{name: x}]\n  - name: b\n    namespace: b\n    serviceAccount: app\n    secret: [{name: y}]\n",
    );
    let (out, wrote) = writes_during(run(onboard(&file, &env.cluster, &[]))).await;
    assert_eq!(out.status.code(), Some(2), "a user error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("teams.yaml"), "{err}");
    assert!(err.contains("line 9 column 5"), "{err}");
    assert!(err.contains("unknown field `secret`"), "{err}");
    assert!(wrote.is_empty(), "nothing is written for a bad file");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_teams_with_throttling_finish_without_failures() {
    let mut s = common::session!(serial, "many");
    let (env, tag, _, _, cleanup) = s.parts();
    let cfg = common::aws().await;
    let http = reqwest::Client::new();
    // 200 teams: too many to remove one namespace at a time, so every workload bootstrap owns
    // goes (as faults_env's `down --workloads-only` does); the platform stays. The tests of
    // this file run one at a time.
    cleanup.all_workloads = true;
    cleanup.secrets = vec![format!("{tag}/shared")];
    common::create_secret(&cfg, &format!("{tag}/shared"), &common::unique("v")).await;
    let mut text = format!("cluster: {}\nteams:\n", env.cluster);
    for i in 0..200 {
        text.push_str(&format!(
            "  - name: t{i}\n    namespace: {tag}-t{i}\n    serviceAccount: app\n    secrets: [{{name: {tag}/shared}}]\n"
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = teams_yaml(dir.path(), &text);
    let throttles = json!([
        {"operation": "iam:*", "kind": "throttle", "count": 60},
        {"operation": "eks:*PodIdentityAssociation*", "kind": "throttle", "count": 60},
    ]);
    faults(&http, Some(throttles)).await;
    let started = std::time::Instant::now();
    let out = run(onboard(&file, &env.cluster, &["--concurrency", "32"])).await;
    faults(&http, None).await;
    let report = json_of(&out);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["totals"]["teams"], 200);
    assert_eq!(
        report["totals"]["failed"],
        0,
        "{:#}",
        report["teams"]
            .as_array()
            .map(|t| t
                .iter()
                .filter(|t| !t["error"].is_null())
                .cloned()
                .collect::<Vec<_>>())
            .unwrap_or_default()
            .len()
    );
    eprintln!(
        "200 teams onboarded in {:.1}s with throttling injected",
        started.elapsed().as_secs_f64()
    );
}

/// Creates secret `name` holding a unique value; its ARN.
async fn create_secret(cfg: &aws_config::SdkConfig, name: &str) -> String {
    common::create_secret(cfg, name, &common::unique("v")).await
}

/// Namespace `T` + service account `a-app` and namespace `T-a` + service account `app` were
/// one role before (`bootstrap-<cluster>-T-a-app`): now each team has its own, each reads only
/// its own secret (IAM enforced by the stand-in), and `down --namespace T` leaves `T-a` whole.
#[tokio::test(flavor = "multi_thread")]
async fn colliding_namespace_and_service_account_joins_get_their_own_roles() {
    let mut s = common::session!(serial, "col");
    let (env, tag, cfg, kube, cleanup) = s.parts();
    let cluster = env.cluster.clone();
    let (ns1, ns2) = (tag.clone(), format!("{tag}-a"));
    cleanup.namespaces = vec![ns1.clone(), ns2.clone()];
    let (s1, s2) = (format!("{tag}/one"), format!("{tag}/two"));
    cleanup.secrets = vec![s1.clone(), s2.clone()];
    create_secret(cfg, &s1).await;
    create_secret(cfg, &s2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = teams_file(
        dir.path(),
        &[("one", &ns1, "a-app", &s1), ("two", &ns2, "app", &s2)],
    );
    let out = run(onboard(&file, &cluster, &[])).await;
    let report = json_ok(&out);
    assert_eq!(report["totals"]["failed"], 0, "{report:#}");

    let role1 = bootstrap::resources::role::role_name(&cluster, &ns1, "a-app");
    let role2 = bootstrap::resources::role::role_name(&cluster, &ns2, "app");
    assert_ne!(role1, role2);
    let iam = aws_sdk_iam::Client::new(cfg);
    for (role, ns, sa, secret) in [(&role1, &ns1, "a-app", &s1), (&role2, &ns2, "app", &s2)] {
        let tags = common::inventory::role_tags(&iam, role).await;
        assert!(
            tags.contains(&("bootstrap.podid/namespace".into(), ns.to_string()))
                && tags.contains(&("bootstrap.podid/service-account".into(), sa.into())),
            "{role}: {tags:?}"
        );
        let policy = iam
            .get_role_policy()
            .role_name(role)
            .policy_name(bootstrap::resources::role::POLICY_NAME)
            .send()
            .await
            .expect("inline policy");
        let doc = common::url_decode(policy.policy_document());
        let other = if secret == &s1 { &s2 } else { &s1 };
        assert!(
            doc.contains(secret.as_str()) && !doc.contains(other.as_str()),
            "{role}: {doc}"
        );
    }
    // IAM enforced: each team's pod credentials read its own secret and not the other's.
    let one = agent_credentials(env, &ns1, "a-app")
        .await
        .expect("team one's credentials");
    let two = agent_credentials(env, &ns2, "app")
        .await
        .expect("team two's credentials");
    assert!(can_read(&one, &s1).await, "team one reads its secret");
    assert!(
        !can_read(&one, &s2).await,
        "team one read team two's secret"
    );
    assert!(can_read(&two, &s2).await, "team two reads its secret");
    assert!(
        !can_read(&two, &s1).await,
        "team two read team one's secret"
    );

    // down --namespace of one leaves the other whole: its role, association and objects.
    let out = run(json_args("down", &cluster, &["--namespace", &ns1, "--yes"])).await;
    json_ok(&out);
    assert!(
        common::role(&iam, &role1).await.is_none(),
        "team one's role is gone"
    );
    assert!(
        common::role(&iam, &role2).await.is_some(),
        "team two's role stays"
    );
    let two = agent_credentials(env, &ns2, "app")
        .await
        .expect("team two still gets credentials");
    assert!(can_read(&two, &s2).await, "team two still reads its secret");
    spc(kube, &ns2, "bootstrap-app").await;
}

async fn spc(kube: &kube::Client, ns: &str, name: &str) -> kube::api::DynamicObject {
    common::spc_api(kube, ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("SecretProviderClass {ns}/{name}: {e}"))
}

/// A role the previous release made — its name `bootstrap-<cluster>-<ns>-<sa>`, tagged
/// managed-by + cluster (no namespace / service-account tags), its trust and inline policy —
/// with the association naming it: `onboard` keeps using that role (no new role, no
/// association created or updated), and a second run writes nothing at all.
#[tokio::test(flavor = "multi_thread")]
async fn a_previous_release_role_is_adopted_without_churn() {
    let mut s = common::session!(serial, "legacy");
    let (env, tag, cfg, _, cleanup) = s.parts();
    let cluster = env.cluster.clone();
    let (ns, sa) = (tag.clone(), "app");
    let legacy = bootstrap::resources::role_identity::legacy_role_name(&cluster, &ns, sa);
    let new_name = bootstrap::resources::role::role_name(&cluster, &ns, sa);
    assert_ne!(legacy, new_name);
    cleanup.namespaces = vec![ns.clone()];
    cleanup.roles = vec![legacy.clone(), new_name.clone()];
    let secret = format!("{tag}/db");
    cleanup.secrets = vec![secret.clone()];
    let secret_arn = create_secret(cfg, &secret).await;
    let account = common::account(cfg).await;
    let region = cfg.region().map(ToString::to_string).unwrap_or_default();

    // What the previous release wrote, literally.
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "EksPodIdentity", "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {
            "aws:SourceAccount": account,
            "aws:RequestTag/eks-cluster-name": cluster,
            "aws:RequestTag/kubernetes-namespace": ns,
            "aws:RequestTag/kubernetes-service-account": sa}}}]});
    let iam = aws_sdk_iam::Client::new(cfg);
    let iam_tag = |k: &str, v: &str| {
        aws_sdk_iam::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .expect("tag")
    };
    let role_arn = iam
        .create_role()
        .role_name(&legacy)
        .description(bootstrap::resources::role::role_description(
            &cluster, &ns, sa,
        ))
        .assume_role_policy_document(trust.to_string())
        .tags(iam_tag("bootstrap.podid/managed-by", "bootstrap"))
        .tags(iam_tag("bootstrap.podid/cluster", &cluster))
        .send()
        .await
        .expect("create the previous release's role")
        .role()
        .map(|r| r.arn().to_string())
        .unwrap_or_default();
    let policy = bootstrap::aws::policy::read_secrets_policy(&bootstrap::aws::policy::Grants {
        secret_arns: vec![secret_arn.clone()],
        region: region.clone(),
        ..Default::default()
    });
    iam.put_role_policy()
        .role_name(&legacy)
        .policy_name(bootstrap::resources::role::POLICY_NAME)
        .policy_document(policy.to_string())
        .send()
        .await
        .expect("its inline policy");
    let eks = aws_sdk_eks::Client::new(cfg);
    eks.create_pod_identity_association()
        .cluster_name(&cluster)
        .namespace(&ns)
        .service_account(sa)
        .role_arn(&role_arn)
        .tags("bootstrap.podid/managed-by", "bootstrap")
        .tags("bootstrap.podid/cluster", &cluster)
        .send()
        .await
        .expect("its association");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = teams_file(dir.path(), &[("legacy", &ns, sa, &secret_arn)]);
    let first_log = dir.path().join("first.ops");
    let out = common::cli::run_logged(onboard(&file, &cluster, &[]), Some(first_log.clone())).await;
    let report = json_ok(&out);
    assert_eq!(report["totals"]["failed"], 0, "{report:#}");
    let first = common::cli::journal(&first_log);
    let churn: Vec<&String> = first
        .iter()
        .filter(|l| {
            l.starts_with("iam:CreateRole")
                || l.starts_with("iam:DeleteRole")
                || l.starts_with("eks:CreatePodIdentityAssociation")
                || l.starts_with("eks:UpdatePodIdentityAssociation")
                || l.starts_with("eks:DeletePodIdentityAssociation")
        })
        .collect();
    assert!(churn.is_empty(), "the first run churned: {churn:?}");
    assert!(
        report["teams"][0]["changes"]
            .to_string()
            .contains(&format!("IAM role {legacy}")),
        "{report:#}"
    );
    assert!(
        common::role(&iam, &new_name).await.is_none(),
        "no second role was made"
    );
    // The same role still serves the pod.
    let creds = agent_credentials(env, &ns, sa)
        .await
        .expect("credentials through the previous release's role");
    assert!(can_read(&creds, &secret).await);

    // A second run: zero writes (the executor's journal and the stand-in's counters agree).
    let second_log = dir.path().join("second.ops");
    let second = common::cli::run_logged(onboard(&file, &cluster, &[]), Some(second_log.clone()));
    let (out, wrote) = writes_during(second).await;
    json_ok(&out);
    assert!(wrote.is_empty(), "the second run wrote {wrote:?}");
    assert!(
        common::cli::journal(&second_log).is_empty(),
        "{:?}",
        common::cli::journal(&second_log)
    );
}

/// Fails the test unless the call `what` failed with AccessDenied (not NotFound or anything
/// else).
fn assert_denied<T, E>(what: &str, sent: Result<T, aws_sdk_ssm::error::SdkError<E>>)
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::fmt::Debug,
{
    let Err(err) = sent else {
        panic!("{what}: allowed, AccessDenied expected")
    };
    assert!(
        err.as_service_error()
            .and_then(|e| e.code())
            .is_some_and(|c| c.contains("AccessDenied")),
        "{what}: AccessDenied, got {err:?}"
    );
}

/// A team using what issue 19 adds — unnamed (named after its namespace), a Secrets Manager
/// prefix, an SSM path, a JSON secret with every key synced to a Secret, an optional secret
/// that does not exist, and a failover region its secrets are replicated to — onboarded with
/// IAM enforced: under the team's role it reads what it asked for (in both regions) and gets
/// AccessDenied one name outside its prefix; the SPC carries the provider's keys; the JSON
/// value is nowhere in the output or the journal; a key added to the secret is planned by a dry
/// run (which reads the key names and writes nothing) and reaches the SPC's secretObjects on the
/// next run, which reports the SPC updated.
#[tokio::test(flavor = "multi_thread")]
async fn a_prefix_team_reads_its_prefix_only_and_syncs_every_key() {
    let mut s = common::session!(serial, "pfx");
    let (env, tag, cfg, kube, cleanup) = s.parts();
    assert_eq!(
        std::env::var("BOOTSTRAP_ENV_IAM_ENFORCED").as_deref(),
        Ok("true"),
        "this test proves a policy: start the environment with IAM enforced (tests/env/up.sh's default)"
    );
    let cluster = env.cluster.clone();
    let region = cfg.region().map(ToString::to_string).unwrap_or_default();
    let failover = if region == "us-east-2" {
        "us-east-1"
    } else {
        "us-east-2"
    };
    let ns = tag.clone();
    cleanup.namespaces = vec![ns.clone()];
    let inside = [format!("{tag}/payments/a"), format!("{tag}/payments/sub/b")];
    let outside = [
        format!("{tag}/payments-other/x"),
        format!("{tag}/payment/x"),
        format!("{tag}/paymentsx"),
    ];
    let cfg_name = format!("{tag}/cfg");
    let (params_in, param_out) = (format!("/{tag}/params/p1"), format!("/{tag}/other/p2"));
    cleanup.parameters = vec![params_in.clone(), param_out.clone()];
    let sm = aws_sdk_secretsmanager::Client::new(cfg);
    let ssm = aws_sdk_ssm::Client::new(cfg);
    for name in inside.iter().chain(&outside) {
        cleanup.secrets.push(name.clone());
        create_secret(cfg, name).await;
    }
    // The JSON secret, replicated to the failover region; its values must never be printed.
    let password = common::unique("never-printed");
    let host = common::unique("never-printed-host");
    let json_value = json!({"host": host, "password": password}).to_string();
    let cfg_arn = create_replicated(&sm, &cfg_name, json_value, failover).await;
    let replica_arn = bootstrap::resources::secrets::in_region(&cfg_arn, failover);
    cleanup.secrets.push(cfg_arn.clone());
    cleanup.secrets.push(replica_arn.clone());
    for p in [&params_in, &param_out] {
        put_parameter(&ssm, p).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = teams_yaml(
        dir.path(),
        &format!(
            "teams:\n  - namespace: {ns}\n    serviceAccount: app\n    failoverRegion: {failover}\n    secrets:\n      - prefix: {tag}/payments/\n      - prefix: \"ssm:/{tag}/params/\"\n      - name: {cfg_name}\n        allKeys: true\n        sync: cfg\n      - name: {tag}/later\n        optional: true\n"
        ),
    );
    // Verbose, so that anything the SDK or bootstrap logs is in stderr for the check below.
    let args = |json: bool| -> Vec<String> {
        let mut a = args(&[
            "onboard",
            "-f",
            file.to_str().expect("utf8"),
            "--cluster",
            &cluster,
            "--timeout",
            "10m",
            // The image is not what this test is about (the environment may run without one).
            "--skip-image-check",
        ]);
        if json {
            a.extend(["--output".into(), "json".into(), "-q".into()]);
        } else {
            a.push("-vv".into());
        }
        a
    };
    let log1 = dir.path().join("first.ops");
    let out = common::cli::run_logged(args(true), Some(log1.clone())).await;
    let report = json_ok(&out);
    let team = &report["teams"][0];
    assert_eq!(team["name"], ns.as_str(), "named after its namespace");
    assert!(
        team["hints"].to_string().contains(&format!("{tag}/later")),
        "the missing optional secret is noted: {team:#}"
    );
    let mut printed = vec![
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        common::cli::journal(&log1).join("\n"),
    ];

    // The SecretProviderClass: the provider's keys, the failover region, secretObjects.
    let live = spc(kube, &ns, "bootstrap-app").await;
    let params = &live.data["spec"]["parameters"];
    assert_eq!(params["failoverRegion"], failover);
    let objects: Vec<Value> =
        serde_saphyr::from_str(params["objects"].as_str().expect("objects")).expect("YAML");
    let find = |name: &str| {
        objects
            .iter()
            .find(|o| o["objectName"].as_str().is_some_and(|n| n.contains(name)))
            .cloned()
            .unwrap_or_else(|| panic!("no object {name}: {objects:?}"))
    };
    assert_eq!(find(&format!("{tag}/payments/"))["matchPrefix"], "true");
    let params_object = find(&format!("/{tag}/params/"));
    assert_eq!(params_object["matchPrefix"], "true");
    assert_eq!(params_object["objectType"], "ssmparameter");
    assert_eq!(find(&cfg_name)["allKeys"], "true");
    assert_eq!(find(&format!("{tag}/later"))["optional"], "true");
    let synced_keys = |spc: &kube::api::DynamicObject| -> Vec<String> {
        spc.data["spec"]["secretObjects"][0]["data"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|k| k["key"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(live.data["spec"]["secretObjects"][0]["secretName"], "cfg");
    assert_eq!(synced_keys(&live), ["host", "password"]);

    // The policy, under enforcement: the team's credentials read what it asked for...
    let creds = agent_credentials(env, &ns, "app")
        .await
        .expect("the team's credentials");
    for name in inside.iter().chain([&cfg_name]) {
        assert!(can_read(&creds, name).await, "the team reads {name}");
    }
    let team_sm = aws_sdk_secretsmanager::Client::new(&creds);
    let batch = team_sm
        .batch_get_secret_value()
        .filters(
            aws_sdk_secretsmanager::types::Filter::builder()
                .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                .values(format!("{tag}/payments/"))
                .build(),
        )
        .send()
        .await
        .expect("a batch read filtered by the prefix (ListSecrets + BatchGetSecretValue)");
    let mut names: Vec<&str> = batch
        .secret_values()
        .iter()
        .filter_map(|v| v.name())
        .collect();
    names.sort();
    assert_eq!(names, [inside[0].as_str(), inside[1].as_str()], "{batch:?}");
    let in_failover = stand_in_config(
        Some(aws_config::Region::new(failover)),
        creds.credentials_provider().expect("credentials"),
    );
    aws_sdk_secretsmanager::Client::new(&in_failover)
        .describe_secret()
        .secret_id(&replica_arn)
        .send()
        .await
        .expect("the team describes the replica in the failover region");
    let team_ssm = aws_sdk_ssm::Client::new(&creds);
    let by_path = team_ssm
        .get_parameters_by_path()
        .path(format!("/{tag}/params/"))
        .with_decryption(true)
        .send()
        .await
        .expect("the team reads its SSM path");
    assert_eq!(by_path.parameters().len(), 1);
    // ... and is denied one name outside its prefix.
    for name in &outside {
        let read = team_sm.get_secret_value().secret_id(name).send().await;
        assert_denied(&format!("{name}, outside the prefix"), read);
    }
    let read = team_ssm
        .get_parameter()
        .name(&param_out)
        .with_decryption(true)
        .send()
        .await;
    assert_denied(&format!("{param_out}, outside the path"), read);
    let policy = aws_sdk_iam::Client::new(cfg)
        .get_role_policy()
        .role_name(bootstrap::resources::role::role_name(&cluster, &ns, "app"))
        .policy_name(bootstrap::resources::role::POLICY_NAME)
        .send()
        .await
        .expect("inline policy");
    let doc = common::url_decode(policy.policy_document());
    assert!(
        doc.contains(&format!("secret:{tag}/payments/*"))
            && !doc.contains(&format!("{tag}/payments*")),
        "{doc}"
    );

    // A key added to the secret: the next run (verbose, text) updates the SPC.
    sm.put_secret_value()
        .secret_id(&cfg_name)
        .secret_string(json!({"host": host, "password": password, "user": "app"}).to_string())
        .send()
        .await
        .expect("add a key");
    // A dry run reads the key names too (a read) and plans the update, writing nothing.
    let mut dry = args(true);
    dry.push("--dry-run".into());
    let (out, wrote) = writes_during(run(dry)).await;
    let planned = json_ok(&out);
    assert_eq!(planned["teams"][0]["updated"], 1, "{planned:#}");
    assert!(wrote.is_empty(), "the dry run wrote {wrote:?}");
    assert_eq!(
        synced_keys(&spc(kube, &ns, "bootstrap-app").await),
        ["host", "password"]
    );
    printed.push(String::from_utf8_lossy(&out.stdout).into_owned());
    printed.push(String::from_utf8_lossy(&out.stderr).into_owned());
    let log2 = dir.path().join("second.ops");
    let out = common::cli::run_logged(args(false), Some(log2.clone())).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("team {ns}")) && stderr.contains("1 updated"),
        "the re-run reports the SPC updated: {stderr}"
    );
    let live = spc(kube, &ns, "bootstrap-app").await;
    assert_eq!(synced_keys(&live), ["host", "password", "user"]);
    printed.extend([
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        common::cli::journal(&log2).join("\n"),
    ]);
    // The check looks at real output: the verbose run's log names the team.
    assert!(printed[6].contains(&ns), "{}", printed[6]);
    for text in &printed {
        for value in [&password, &host] {
            assert!(!text.contains(value.as_str()), "a secret value was printed");
        }
    }
}
