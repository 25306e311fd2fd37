//! The scenarios of rotation_env.rs, each for one provider and one auth mode. Secret values
//! are compared, never printed; measurements go to stderr as `[measure]` lines.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use super::{
    POLL, Provider, apply_driver, apply_provider, calls, driver_values, drivers_listen, fault,
    from_daemonset, process_runs, provider_log_len, provider_log_since, provider_serves, publishes,
    republish,
};
use crate::common::{self, Env, cleanup::Cleanup, fixture::Fixture, make};

/// Scheduling and mount time on a loaded 2-core machine, on top of the rotation interval and
/// one re-publish period.
const SLACK: Duration = Duration::from_secs(6);
const ACCOUNT: &str = "123456789012";

fn auth(irsa: bool) -> &'static str {
    if irsa { "irsa" } else { "pod-identity" }
}

fn pod(ns: &str, name: &str, spc: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"serviceAccountName": "app",
            "containers": [{"name": "app", "image": "public.ecr.aws/docker/library/busybox:1.37",
                            "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": true}]}],
            "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
                         "volumeAttributes": {"secretProviderClass": spc}}}]}})
}

fn spc(ns: &str, name: &str, parameters: Value, secret_objects: Value) -> Value {
    json!({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"provider": "aws", "parameters": parameters, "secretObjects": secret_objects}})
}

/// The files of a mount (the driver's `..` bookkeeping left out).
fn files(target: &str) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(target)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with(".."))
                .filter_map(|e| {
                    let data = std::fs::read(e.path()).ok()?;
                    Some((e.file_name().to_string_lossy().into_owned(), data))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn backend_op(op: &str) -> bool {
    [
        "secretsmanager:",
        "ssm:",
        "sts:",
        "unknown:",
        "eks-auth:",
        "eks-pod-identity-agent:",
    ]
    .iter()
    .any(|p| op.starts_with(p))
}

/// Driver v1.6 DaemonSet flags and our provider's reach the running processes; a flag the
/// provider refuses is a crash-looping pod until the DaemonSet is fixed.
pub async fn daemonsets_are_followed(env: &Env) {
    let kube = common::kube().await;
    let has = |c: &[String], a: &str| c.iter().any(|x| x == a);
    apply_driver(&kube, &driver_values(Some("7s"), false)).await;
    for i in 0..env.nodes.len() {
        process_runs(
            &env.state_dir,
            &format!("csi-driver-{i}"),
            "rotation every 7s",
            |c| has(c, "--rotation-poll-interval=7s") && has(c, "--enable-secret-rotation=true"),
        )
        .await;
    }
    apply_driver(&kube, &driver_values(None, false)).await;
    for (i, node) in env.nodes.iter().enumerate() {
        let c = process_runs(
            &env.state_dir,
            &format!("csi-driver-{i}"),
            "no rotation",
            |c| !c.iter().any(|a| a.contains("rotation")),
        )
        .await;
        assert!(
            has(&c, &format!("--nodeid={node}")),
            "driver {i} runs for its node: {c:?}"
        );
    }

    let ours = |deadline: &str, log: &str, extra: Vec<String>| {
        bootstrap::render::provider::render(&bootstrap::render::provider::ProviderValues {
            image: Some("127.0.0.1/bootstrap/aws-csi-provider:env".into()),
            mount_deadline: deadline.into(),
            log_format: log.into(),
            extra_args: extra,
            ..Default::default()
        })
        .expect("render our provider")
    };
    common::apply_all(
        &kube,
        "bootstrap-rotation-test",
        &ours("9s", "text", vec![]),
    )
    .await;
    process_runs(
        &env.state_dir,
        "aws-csi-provider",
        "--mount-deadline=9s",
        |c| has(c, "--mount-deadline=9s") && has(c, "--log-format=text"),
    )
    .await;
    provider_serves(&env.state_dir, Provider::Ours, from_daemonset).await;

    // A flag the provider refuses: on a node, a container that exits at once, restarted with
    // back-off. The DaemonSet's pod says so.
    let bad = vec!["--no-such-flag".to_string()];
    common::apply_all(&kube, "bootstrap-rotation-test", &ours("9s", "text", bad)).await;
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "kube-system");
    let lp = ListParams::default().labels("app.kubernetes.io/name=aws-csi-provider");
    let status = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == "provider").cloned())
    };
    let looping = common::eventually("a provider pod in CrashLoopBackOff", 60, || {
        let (pods, lp) = (pods.clone(), lp.clone());
        async move {
            pods.list(&lp).await.ok()?.items.into_iter().find(|p| {
                status(p).is_some_and(|c| {
                    c.restart_count >= 1
                        && c.state
                            .as_ref()
                            .and_then(|s| s.waiting.as_ref())
                            .and_then(|w| w.reason.as_deref())
                            == Some("CrashLoopBackOff")
                })
            })
        }
    })
    .await;
    let ready = looping
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    assert!(!ready, "a crash-looping provider pod is not Ready");

    common::apply_all(
        &kube,
        "bootstrap-rotation-test",
        &ours("9s", "text", vec![]),
    )
    .await;
    provider_serves(&env.state_dir, Provider::Ours, |c| {
        from_daemonset(c) && !has(c, "--no-such-flag")
    })
    .await;
    common::eventually("every provider pod Ready again", 90, || {
        let (pods, lp) = (pods.clone(), lp.clone());
        async move {
            let items = pods.list(&lp).await.ok()?.items;
            let all = !items.is_empty()
                && items.iter().all(|p| {
                    p.metadata.deletion_timestamp.is_none() && status(p).is_some_and(|c| c.ready)
                });
            all.then_some(())
        }
    })
    .await;
}

/// What a quiet re-publish cost, per backend operation.
pub type Cost = BTreeMap<String, f64>;

/// Rotation of a Secrets Manager secret, an SSM parameter and a JSON secret split by jmesPath,
/// a quiet re-publish's cost, and a synced Secret that follows and goes with the last pod.
pub async fn rotation_and_sync(env: &Env, provider: Provider, irsa: bool) -> Cost {
    let who = format!("{} provider over {}", provider.name(), auth(irsa));
    let cfg = common::aws().await;
    let region = std::env::var("AWS_REGION").unwrap_or_default();
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let ssm = aws_sdk_ssm::Client::new(&cfg);
    let tag = common::unique(&format!("rot-{}", provider.name()));
    let plain = [common::unique("plain-v1"), common::unique("plain-v2")];
    let pw = [common::unique("pw-v1"), common::unique("pw-v2")];
    let param = [common::unique("param-v1"), common::unique("param-v2")];
    let json_of = |pw: &str| json!({"user": "app", "password": pw}).to_string();
    // Removed when the scenario ends, pass or fail (after the fixture's namespace and role).
    let mut made = Cleanup::new(&env.cluster);
    made.secrets = vec![format!("{tag}/plain"), format!("{tag}/json")];
    made.parameters = vec![format!("/{tag}/param")];
    let mut arns = vec![];
    for (name, value) in [("plain", plain[0].clone()), ("json", json_of(&pw[0]))] {
        let out = make::secret(&sm, &format!("{tag}/{name}"), value).await;
        arns.push(out.arn.expect("arn"));
    }
    let param_name = format!("/{tag}/param");
    make::parameter(&ssm, &param_name, &param[0]).await;
    let param_arn = format!("arn:aws:ssm:{region}:{ACCOUNT}:parameter/{tag}/param");
    let prefix = format!(
        "rot-{}-{}",
        provider.name(),
        if irsa { "irsa" } else { "pi" }
    );
    let fx = Fixture::new(&prefix, &arns, &[param_arn], irsa)
        .await
        .expect("the environment");

    apply_driver(&fx.kube, &driver_values(Some("2s"), true)).await;
    for i in 0..env.nodes.len() {
        process_runs(
            &env.state_dir,
            &format!("csi-driver-{i}"),
            "rotation every 2s",
            |c| c.iter().any(|a| a == "--rotation-poll-interval=2s"),
        )
        .await;
    }
    drivers_listen(env).await;
    apply_provider(&fx.kube, provider, &[]).await;
    provider_serves(&env.state_dir, provider, from_daemonset).await;

    let objects = format!(
        "- objectName: \"{tag}/plain\"\n  objectType: secretsmanager\n  objectAlias: plain\n\
         - objectName: \"/{tag}/param\"\n  objectType: ssmparameter\n  objectAlias: param\n\
         - objectName: \"{tag}/json\"\n  objectType: secretsmanager\n  objectAlias: json\n  jmesPath:\n    - path: password\n      objectAlias: json-password\n"
    );
    let mut parameters = json!({"objects": objects, "region": region});
    if !irsa {
        parameters["usePodIdentity"] = json!("true");
    }
    let synced = "synced";
    let data = json!([{"objectName": "plain", "key": "plain"}, {"objectName": "param", "key": "param"},
                      {"objectName": "json-password", "key": "password"}]);
    let objs = vec![
        spc(
            &fx.ns,
            "rot",
            parameters,
            json!([{"secretName": synced, "type": "Opaque", "data": data}]),
        ),
        pod(&fx.ns, "a", "rot"),
        pod(&fx.ns, "b", "rot"),
    ];
    common::apply_all(&fx.kube, "bootstrap-rotation-test", &objs).await;
    let (ta, _) = fx.mounted("a").await;
    let (tb, _) = fx.mounted("b").await;
    let holds = |f: &BTreeMap<String, Vec<u8>>, v: usize| {
        f.get("plain").is_some_and(|x| x == plain[v].as_bytes())
            && f.get("param").is_some_and(|x| x == param[v].as_bytes())
            && f.get("json-password")
                .is_some_and(|x| x == pw[v].as_bytes())
    };
    assert!(holds(&files(&ta), 0), "{who}: pod a mounts every object");
    assert!(holds(&files(&tb), 0), "{who}: pod b mounts every object");

    let secrets: Api<Secret> = Api::namespaced(fx.kube.clone(), &fx.ns);
    let synced_holds = |s: &Secret, v: usize| {
        s.data.as_ref().is_some_and(|d| {
            d.get("plain").is_some_and(|x| x.0 == plain[v].as_bytes())
                && d.get("param").is_some_and(|x| x.0 == param[v].as_bytes())
                && d.get("password").is_some_and(|x| x.0 == pw[v].as_bytes())
        })
    };
    let owned = common::eventually(
        "the synced Secret, owned by both pods' statuses",
        60,
        || {
            let secrets = secrets.clone();
            async move {
                let s = secrets.get_opt(synced).await.ok()??;
                let owners = s.metadata.owner_references.as_ref().map_or(0, |o| o.len());
                (owners == 2).then_some(s)
            }
        },
    )
    .await;
    assert!(
        synced_holds(&owned, 0),
        "{who}: the synced Secret has the mounted values"
    );

    // Quiet: re-publishes reach the provider (the content is older than the poll interval),
    // nothing changes, and each costs what the stand-in counts.
    let (pa, pb) = (
        publishes(&env.state_dir, &ta),
        publishes(&env.state_dir, &tb),
    );
    let before = calls().await;
    common::eventually(
        &format!("{who}: three quiet re-publishes of each pod"),
        60,
        || {
            let n = (
                publishes(&env.state_dir, &ta),
                publishes(&env.state_dir, &tb),
            );
            async move { (n.0 >= pa + 3 && n.1 >= pb + 3).then_some(()) }
        },
    )
    .await;
    let after = calls().await;
    let n = (publishes(&env.state_dir, &ta) - pa + publishes(&env.state_dir, &tb) - pb) as f64;
    let cost: Cost = after
        .iter()
        .filter(|(op, _)| backend_op(op))
        .map(|(op, c)| {
            (
                op.clone(),
                (c - before.get(op).copied().unwrap_or(0)) as f64 / n,
            )
        })
        .filter(|(_, c)| *c > 0.0)
        .collect();
    eprintln!("[measure] {who}: per quiet re-publish {cost:?} (over {n} re-publishes)");
    assert!(
        holds(&files(&ta), 0) && holds(&files(&tb), 0),
        "{who}: nothing changes"
    );
    let quiet = secrets.get(synced).await.expect("synced Secret");
    assert_eq!(
        quiet.metadata.resource_version, owned.metadata.resource_version,
        "{who}: the synced Secret is not rewritten when nothing changed"
    );

    // Rotation: every file follows within the poll interval plus one re-publish.
    make::secret_version(&sm, &format!("{tag}/plain"), &plain[1]).await;
    make::secret_version(&sm, &format!("{tag}/json"), json_of(&pw[1])).await;
    make::parameter(&ssm, &param_name, &param[1]).await;
    let rotated = Instant::now();
    let bound = POLL + republish() + SLACK;
    common::eventually(
        &format!("{who}: the rotated values in both mounts"),
        bound.as_secs() + 1,
        || {
            let ok = holds(&files(&ta), 1) && holds(&files(&tb), 1);
            async move { ok.then_some(()) }
        },
    )
    .await;
    let took = rotated.elapsed();
    eprintln!(
        "[measure] {who}: rotation visible in the mounts after {} ms",
        took.as_millis()
    );
    assert!(
        took <= bound,
        "{who}: rotation took {took:?}, more than {bound:?}"
    );
    common::eventually(
        &format!("{who}: the synced Secret follows the rotation"),
        30,
        || {
            let secrets = secrets.clone();
            async move {
                secrets
                    .get_opt(synced)
                    .await
                    .ok()?
                    .filter(|s| synced_holds(s, 1))
            }
        },
    )
    .await;

    // The synced Secret goes with the last pod that mounts it (garbage collection of its
    // owners, the pods' SecretProviderClassPodStatuses), not with the first. Driver v1.6.0
    // rewrites the Secret on a rotation with a plain Update that drops its owner references;
    // its patcher adds them back within 5 s (controllers/secretproviderclasspodstatus_
    // controller.go). Pods deleted in that window leave the Secret without owners: nothing
    // deletes it then. So the owners are waited for here, as a user would have to.
    owners_are_back(&secrets, synced, 2, &who).await;
    fx.delete_pod("a").await;
    let statuses = fx.pod_statuses();
    let status_a = format!("a-{}-rot", fx.ns);
    gone(
        &statuses,
        &status_a,
        &format!("{who}: pod a's status collected"),
        60,
    )
    .await;
    assert!(
        secrets.get_opt(synced).await.expect("get Secret").is_some(),
        "{who}: the synced Secret stays while pod b mounts it"
    );
    owners_are_back(&secrets, synced, 1, &who).await;
    fx.delete_pod("b").await;
    let what = format!("{who}: the synced Secret deleted with the last pod");
    gone(&secrets, synced, &what, 90).await;

    cost
}

/// Waits (at most `secs` seconds, failing as `what`) until `holds` accepts what `api` has as
/// `name` (`None`: no such object).
async fn until<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    secs: u64,
    holds: impl Fn(Option<K>) -> bool,
) where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let holds = &holds;
    common::eventually(what, secs, || {
        let (api, name) = (api.clone(), name.to_string());
        async move { holds(api.get_opt(&name).await.ok()?).then_some(()) }
    })
    .await;
}

/// Waits (at most `secs` seconds, failing as `what`) until `api` has no object `name`.
async fn gone<K>(api: &Api<K>, name: &str, what: &str, secs: u64)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    until(api, name, what, secs, |o| o.is_none()).await;
}

/// Waits until the synced Secret has `n` owner references (the driver's patcher, every 5 s).
async fn owners_are_back(secrets: &Api<Secret>, name: &str, n: usize, who: &str) {
    let what = format!("{who}: {n} owners on the synced Secret");
    until(secrets, name, &what, 30, |s| {
        s.is_some_and(|s| s.metadata.owner_references.map_or(0, |o| o.len()) == n)
    })
    .await;
}

/// The primary region failing (every Secrets Manager call signed for it answers 500), a
/// `failoverRegion` mount gets the `failoverObject` from the failover region, and the
/// provider's log says it failed over.
pub async fn failover(env: &Env, provider: Provider, irsa: bool) {
    let who = format!("{} provider over {}", provider.name(), auth(irsa));
    let cfg = common::aws().await;
    let primary = std::env::var("AWS_REGION").unwrap_or_default();
    let second = if primary == "us-east-1" {
        "us-east-2"
    } else {
        "us-east-1"
    };
    let tag = common::unique(&format!("fo-{}", provider.name()));
    let values = [common::unique("primary"), common::unique("failover")];
    // By ARN: one secret in each region.
    let mut made = Cleanup::new(&env.cluster);
    let mut arns = vec![];
    for (region, value) in [(primary.as_str(), &values[0]), (second, &values[1])] {
        let conf = aws_sdk_secretsmanager::config::Builder::from(&cfg)
            .region(aws_sdk_secretsmanager::config::Region::new(
                region.to_string(),
            ))
            .build();
        let sm = aws_sdk_secretsmanager::Client::from_conf(conf);
        let arn = make::secret(&sm, &format!("{tag}/db"), value)
            .await
            .arn
            .expect("arn");
        made.secrets.push(arn.clone());
        arns.push(arn);
    }
    let prefix = format!(
        "fo-{}-{}",
        provider.name(),
        if irsa { "irsa" } else { "pi" }
    );
    let fx = Fixture::new(&prefix, &arns, &[], irsa)
        .await
        .expect("the environment");
    apply_provider(&fx.kube, provider, &[]).await;
    provider_serves(&env.state_dir, provider, from_daemonset).await;

    fault(
        json!({"operation": "secretsmanager:*", "kind": "error", "count": -1, "region": primary}),
    )
    .await;
    let mark = provider_log_len(&env.state_dir);
    let objects = format!(
        "- objectName: \"{}\"\n  objectAlias: db\n  failoverObject:\n    objectName: \"{}\"\n",
        arns[0], arns[1]
    );
    let mut parameters = json!({"objects": objects, "region": primary, "failoverRegion": second});
    if !irsa {
        parameters["usePodIdentity"] = json!("true");
    }
    let objs = vec![
        spc(&fx.ns, "fo", parameters, json!([])),
        pod(&fx.ns, "fo", "fo"),
    ];
    common::apply_all(&fx.kube, "bootstrap-rotation-test", &objs).await;
    let (target, _) = fx.mounted("fo").await;
    assert!(
        files(&target)
            .get("db")
            .is_some_and(|v| v == values[1].as_bytes()),
        "{who}: the failover object is mounted while {primary} fails"
    );
    let log = provider_log_since(&env.state_dir, mark);
    match provider {
        Provider::Ours => assert!(
            log.lines()
                .any(|l| l.contains("failing over") && l.contains(second)),
            "{who}: the provider's log says it failed over to {second}"
        ),
        // Upstream fetches every object from every region on each mount (primary, then
        // failover; provider/secrets_manager_provider.go) and logs the failing region's error
        // as a warning ("us-west-2: Failed fetching secret ..."); it never says which region
        // served the object. Ours asks the failover region only for what failed, and logs the
        // failover with its region.
        Provider::Upstream => assert!(
            log.lines()
                .any(|l| l.contains(&format!("{primary}: Failed fetching"))
                    && l.contains("StatusCode: 500")),
            "{who}: the provider's log has the primary region's failure"
        ),
    }
    let _ = reqwest::Client::new()
        .delete(common::cli::control("/faults"))
        .send()
        .await;
}
