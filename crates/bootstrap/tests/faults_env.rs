//! Faults against the local EKS stand-in.
//!
//! - Two `up` runs on one cluster at once (always), from no agent add-on and no demo secret:
//!   both end well, one role and one association, and the end state is a clean run's.
//! - The fault matrix (`#[ignore]`d: `BOOTSTRAP_FAULTS=1 tests/run.sh`, or `-- --ignored`;
//!   about 40 minutes): for every step of `up` and
//!   `down`, 500s past the retry budget and throttling within it, on its AWS calls and (through
//!   the stand-in's proxy of the apiserver) on its Kubernetes calls; for every step that
//!   writes, a SIGKILL after its first write. After each fault a re-run must end in
//!   exactly the owned inventory of a clean run, and `down` must then leave nothing owned.
//!   `BOOTSTRAP_FAULTS_REPORT=FILE` writes the outcome as the markdown table of
//!   bench/RESULTS.md.
//! - The platform steps (agent add-on, driver, provider) run last, each from a cluster
//!   without the platform and without the agent add-on, comparing the whole owned inventory;
//!   the environment's platform (a foreign agent add-on, bootstrap's driver and provider) is
//!   restored at the end. `BOOTSTRAP_FAULTS=platform` runs only those, `=kube` only the
//!   Kubernetes API cases, `=aws` all but those.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use Fault::{KillAfter, ServerErrors, Throttle};
use common::cli::{control, faults, journal_in_order, killed_when, ok, run, run_via};
use common::inventory::{foreign_agent_addon, no_agent_addon, owned_inventory, platform_item};

fn up_args(cluster: &str, ns: &str) -> Vec<String> {
    common::cli::up_args(cluster, Some(ns), &["--no-progress"])
}

fn down_args(cluster: &str) -> Vec<String> {
    common::cli::down_workloads_args(cluster)
}

/// `down` of everything bootstrap owns on the cluster, the platform included.
fn down_full_args(cluster: &str) -> Vec<String> {
    let mut a = down_args(cluster);
    a.retain(|x| x != "--workloads-only");
    a
}

/// Everything bootstrap owns (platform included), the namespace written `<ns>` and the
/// random suffix of DaemonSet pods `*`.
async fn full_state(cluster: &str, ns: &str) -> BTreeSet<String> {
    let cfg = common::aws().await;
    let kube = common::kube().await;
    owned_inventory(&cfg, &kube, cluster)
        .await
        .into_iter()
        .map(|i| match i.strip_prefix("Pod/kube-system/") {
            Some(pod) => format!(
                "Pod/kube-system/{}-*",
                pod.rsplit_once('-').map_or(pod, |(ds, _)| ds)
            ),
            None => i.replace(ns, "<ns>"),
        })
        .collect()
}

/// The workload part of the owned inventory (everything but the shared platform).
async fn owned_workloads(cluster: &str) -> BTreeSet<String> {
    let cfg = common::aws().await;
    let kube = common::kube().await;
    owned_inventory(&cfg, &kube, cluster)
        .await
        .into_iter()
        .filter(|i| !platform_item(i))
        .collect()
}

/// What bootstrap owns for namespace `ns` (and the cluster's demo secret), with the namespace
/// written `<ns>`: every case uses its own namespace, and the end states must be equal but
/// for it.
async fn workload_state(cluster: &str, ns: &str) -> BTreeSet<String> {
    owned_workloads(cluster)
        .await
        .into_iter()
        .filter(|i| i.contains(ns) || i.starts_with("secret "))
        .map(|i| i.replace(ns, "<ns>"))
        .collect()
}

async fn nothing_left(cluster: &str, what: &str) {
    let left = owned_workloads(cluster).await;
    assert!(left.is_empty(), "{what}: down left {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_ups_at_once_both_end_with_one_role_and_one_association() {
    let mut s = common::session!(serial, "t");
    let (env, _, _, _, cleanup) = s.parts();
    let cluster = env.cluster.clone();
    let ns = common::unique("twice");
    // Removed when the test ends, pass or fail (the test's own `down` removes it on success).
    cleanup.namespaces = vec![ns.clone()];
    // No agent add-on either: both runs create it (and the demo secret, role, association).
    let eks = aws_sdk_eks::Client::new(&common::aws().await);
    no_agent_addon(&eks, &cluster).await;
    let (a, b) = tokio::join!(run(up_args(&cluster, &ns)), run(up_args(&cluster, &ns)));
    ok(&a, "the first of two concurrent ups");
    ok(&b, "the second of two concurrent ups");
    let state = workload_state(&cluster, &ns).await;
    let roles: Vec<&String> = state.iter().filter(|i| i.starts_with("iam role")).collect();
    let associations: Vec<&String> = state
        .iter()
        .filter(|i| i.starts_with("association"))
        .collect();
    assert_eq!(roles.len(), 1, "{state:?}");
    assert_eq!(associations, ["association <ns>/app"], "{state:?}");
    // The stand-in's association list has no duplicate for the service account either.
    let listed = common::associations(&common::aws().await, &cluster, &ns, None).await;
    assert_eq!(listed.len(), 1);
    // A third run is a no-op on the same state.
    let again = run(up_args(&cluster, &ns)).await;
    ok(&again, "a third up");
    assert_eq!(workload_state(&cluster, &ns).await, state);
    ok(&run(down_args(&cluster)).await, "down");
    nothing_left(&cluster, "after two concurrent ups").await;
    // The environment's agent add-on again: installed by someone else.
    foreign_agent_addon(&eks, &cluster).await;
}

/// One injected fault.
#[derive(Clone, Copy)]
enum Fault {
    /// 500 InternalFailure until cleared: past every retry budget, the run fails.
    ServerErrors(&'static str),
    /// Throttling for this many calls: within the budget, the run succeeds by itself.
    Throttle(&'static str, u32),
    /// SIGKILL right after the first write whose journal line starts with this.
    KillAfter(&'static str),
}

impl Fault {
    /// A fault of the Kubernetes API (operations `kube:VERB PATH`, injected by the stand-in's
    /// proxy of the apiserver): the case's runs go through that proxy.
    fn on_kube(&self) -> bool {
        matches!(self, Fault::ServerErrors(op) | Fault::Throttle(op, _) if op.starts_with("kube:"))
    }

    fn describe(&self) -> String {
        match self {
            Fault::ServerErrors(op) => format!("500 on `{op}` until cleared"),
            Fault::Throttle(op, n) => format!("throttling ×{n} on `{op}`"),
            Fault::KillAfter(prefix) => format!("SIGKILL after the first `{prefix}…` write"),
        }
    }
}

#[derive(Clone)]
struct Case {
    command: &'static str,
    step: &'static str,
    fault: Fault,
    /// A platform step: `up` starts from a cluster without the platform (and without the
    /// agent add-on), `down` removes the platform too, and the whole owned inventory counts.
    platform: bool,
}

/// The faults injected into one step of a command, a case each.
struct Step {
    command: &'static str,
    step: &'static str,
    faults: &'static [Fault],
}

impl Step {
    /// Its cases, on a platform step or not.
    fn cases(&self, platform: bool) -> impl Iterator<Item = Case> + '_ {
        self.faults.iter().map(move |&fault| Case {
            command: self.command,
            step: self.step,
            fault,
            platform,
        })
    }
}

/// Step `step` of `up` with `faults`.
const fn up(step: &'static str, faults: &'static [Fault]) -> Step {
    Step {
        command: "up",
        step,
        faults,
    }
}

/// Step `step` of `down` with `faults`.
const fn down(step: &'static str, faults: &'static [Fault]) -> Step {
    Step {
        command: "down",
        step,
        faults,
    }
}

/// The platform steps: run after the workload cases, from a cluster without the platform.
const PLATFORM_STEPS: &[Step] = &[
    up(
        "agent-addon",
        &[
            ServerErrors("eks:CreateAddon"),
            Throttle("eks:CreateAddon", 3),
            KillAfter("eks:CreateAddon"),
        ],
    ),
    up(
        "csi-driver",
        &[KillAfter(
            "kubernetes: server-side apply CustomResourceDefinition/",
        )],
    ),
    up(
        "provider",
        &[KillAfter(
            "kubernetes: server-side apply DaemonSet/kube-system/aws-csi-provider",
        )],
    ),
    down(
        "addons",
        &[
            ServerErrors("eks:DeleteAddon"),
            KillAfter("eks:DeleteAddon"),
        ],
    ),
    down(
        "provider",
        &[KillAfter(
            "kubernetes: delete DaemonSet/kube-system/aws-csi-provider",
        )],
    ),
    down(
        "csi-driver",
        &[KillAfter("kubernetes: delete CustomResourceDefinition/")],
    ),
];

/// Every AWS-calling step of `up` and `down` with 500s and throttling, every writing step with
/// a SIGKILL after its first write.
const STEPS: &[Step] = &[
    up(
        "secrets",
        &[
            ServerErrors("secretsmanager:CreateSecret"),
            Throttle("secretsmanager:CreateSecret", 3),
            KillAfter("secretsmanager:"),
        ],
    ),
    up(
        "iam-role",
        &[
            ServerErrors("iam:CreateRole"),
            ServerErrors("iam:PutRolePolicy"),
            Throttle("iam:*", 4),
            KillAfter("iam:CreateRole"),
        ],
    ),
    up(
        "association",
        &[
            ServerErrors("eks:CreatePodIdentityAssociation"),
            Throttle("eks:CreatePodIdentityAssociation", 3),
            KillAfter("eks:CreatePodIdentityAssociation"),
        ],
    ),
    up(
        "workload",
        &[
            KillAfter("kubernetes: server-side apply Namespace/"),
            KillAfter("kubernetes: server-side apply SecretProviderClass/"),
        ],
    ),
    up(
        "verify",
        &[
            ServerErrors("eks-auth:AssumeRoleForPodIdentity"),
            Throttle("eks-auth:AssumeRoleForPodIdentity", 2),
            KillAfter("kubernetes: server-side apply Pod/"),
        ],
    ),
    down(
        "associations",
        &[
            ServerErrors("eks:DeletePodIdentityAssociation"),
            Throttle("eks:DeletePodIdentityAssociation", 3),
        ],
    ),
    down(
        "iam-roles",
        &[
            ServerErrors("iam:DeleteRole"),
            Throttle("iam:*", 4),
            KillAfter("iam:DeleteRolePolicy"),
        ],
    ),
    down(
        "demo-secret",
        &[ServerErrors("secretsmanager:DeleteSecret")],
    ),
    down(
        "serviceaccounts",
        &[KillAfter("kubernetes: delete ServiceAccount/")],
    ),
    down("namespaces", &[KillAfter("kubernetes: delete Namespace/")]),
];

/// The Kubernetes steps' API faults, through the stand-in's proxy of the apiserver: 500s past
/// the client's budget (9 attempts) and 429s within it, on the calls each step makes (`<ns>` is
/// the case's namespace). `down`'s sample-pods step has no call to fault: `up` deletes its
/// verify pod, so there is never a pod to delete.
const KUBE_STEPS: &[Step] = &[
    up("planning (reads)", &[Throttle("kube:GET *", 6)]),
    up(
        "workload",
        &[
            ServerErrors("kube:PATCH /api/v1/namespaces/<ns>/serviceaccounts/app"),
            Throttle("kube:PATCH /api/v1/namespaces/<ns>*", 4),
            ServerErrors(
                "kube:PATCH /apis/secrets-store.csi.x-k8s.io/v1/namespaces/<ns>/secretproviderclasses/*",
            ),
        ],
    ),
    up(
        "verify",
        &[
            ServerErrors("kube:PATCH /api/v1/namespaces/<ns>/pods/*"),
            Throttle("kube:WATCH /api/v1/namespaces/<ns>/pods", 3),
        ],
    ),
    down(
        "secretproviderclasses",
        &[ServerErrors(
            "kube:DELETE /apis/secrets-store.csi.x-k8s.io/v1/namespaces/<ns>/secretproviderclasses/*",
        )],
    ),
    down(
        "serviceaccounts",
        &[ServerErrors(
            "kube:DELETE /api/v1/namespaces/<ns>/serviceaccounts/*",
        )],
    ),
    down(
        "namespaces",
        &[ServerErrors("kube:DELETE /api/v1/namespaces/<ns>")],
    ),
    down("every delete", &[Throttle("kube:DELETE *", 4)]),
    down("planning (reads)", &[Throttle("kube:GET *", 6)]),
];

/// The platform steps' Kubernetes API faults (like [`PLATFORM_STEPS`]).
const KUBE_PLATFORM_STEPS: &[Step] = &[
    up(
        "csi-driver",
        &[
            ServerErrors("kube:PATCH /apis/apiextensions.k8s.io/v1/customresourcedefinitions/*"),
            Throttle(
                "kube:PATCH /apis/apps/v1/namespaces/kube-system/daemonsets/secrets-store-csi-driver",
                3,
            ),
        ],
    ),
    up(
        "provider",
        &[
            ServerErrors(
                "kube:PATCH /apis/apps/v1/namespaces/kube-system/daemonsets/aws-csi-provider",
            ),
            Throttle(
                "kube:WATCH /apis/apps/v1/namespaces/kube-system/daemonsets",
                3,
            ),
        ],
    ),
    down(
        "provider",
        &[ServerErrors(
            "kube:DELETE /apis/apps/v1/namespaces/kube-system/daemonsets/aws-csi-provider",
        )],
    ),
    down(
        "csi-driver",
        &[ServerErrors(
            "kube:DELETE /apis/apiextensions.k8s.io/v1/customresourcedefinitions/*",
        )],
    ),
];

/// Runs `args` with a journal, killing the process right after the first journal line that
/// starts with `prefix`; returns whether it was killed (false: it ended first).
async fn killed_after(args: Vec<String>, prefix: &str, log: &std::path::Path) -> bool {
    killed_when(&args, log, Duration::from_secs(240), |lines| {
        lines.iter().any(|l| l.starts_with(prefix))
    })
    .await
}

/// How long a platform case's re-run may keep meeting the environment's driver without its
/// SecretProviderClass informer (its back-off was about 35 s).
const DRIVER_RELIST: Duration = Duration::from_secs(180);

/// A run that failed because the environment's driver did not find the SecretProviderClass
/// (its informer had not re-listed since the CRD came back).
fn driver_lacks_the_class(out: &std::process::Output) -> bool {
    !out.status.success()
        && String::from_utf8_lossy(&out.stderr)
            .contains("SecretProviderClass.secrets-store.csi.x-k8s.io")
}

/// What one case did: the faulted run's exit, and the re-run's.
struct Row {
    case: String,
    faulted: String,
    converged: bool,
    left_nothing: bool,
    seconds: f64,
}

async fn run_case(
    c: &Case,
    cluster: &str,
    http: &reqwest::Client,
    clean: &BTreeSet<String>,
) -> Row {
    let started = Instant::now();
    let ns = common::unique("fault");
    // Removed when the case ends, pass or fail (its own `down` removes it when it passes).
    let mut cleanup = common::cleanup::Cleanup::new(cluster);
    cleanup.namespaces = vec![ns.clone()];
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("ops");
    let eks = aws_sdk_eks::Client::new(&common::aws().await);
    // Kubernetes faults need every run of the case to go through the proxy.
    let via = c.fault.on_kube().then(|| {
        std::path::PathBuf::from(
            std::env::var_os("BOOTSTRAP_ENV_KUBE_PROXY_KUBECONFIG")
                .expect("env.sh exports BOOTSTRAP_ENV_KUBE_PROXY_KUBECONFIG"),
        )
    });
    let run = |a: Vec<String>| run_via(a, None, via.clone());
    if c.platform && c.command == "up" {
        ok(
            &run(down_full_args(cluster)).await,
            "down before a platform case",
        );
        no_agent_addon(&eks, cluster).await;
    }
    if c.command == "down" {
        ok(&run(up_args(cluster, &ns)).await, "up before a down fault");
    }
    let command = match (c.command, c.platform) {
        ("up", _) => up_args(cluster, &ns),
        (_, true) => down_full_args(cluster),
        _ => down_args(cluster),
    };
    let faulted = match c.fault {
        Fault::ServerErrors(op) => {
            faults(
                http,
                Some(
                    json!({"operation": op.replace("<ns>", &ns), "kind": "error", "status": 500,
                            "code": "InternalFailure", "count": -1}),
                ),
            )
            .await;
            let out = run_via(command.clone(), Some(log.clone()), via.clone()).await;
            faults(http, None).await;
            assert!(
                !out.status.success(),
                "{} with {}: succeeded despite the faults",
                c.command,
                c.fault.describe()
            );
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(
                stderr.contains(&format!("step {} failed", c.step)),
                "{} with {}: the failure names another step: {stderr}",
                c.command,
                c.fault.describe()
            );
            if c.fault.on_kube() {
                assert!(
                    stderr.contains("the Kubernetes API answered 500 InternalError")
                        && stderr.contains("kept failing after 9 attempts"),
                    "{} with {}: the error does not say what answered and what to do: {stderr}",
                    c.command,
                    c.fault.describe()
                );
            }
            format!(
                "exit {} at step {}",
                out.status.code().unwrap_or(-1),
                c.step
            )
        }
        Fault::Throttle(op, n) => {
            faults(
                http,
                Some(json!({"operation": op.replace("<ns>", &ns), "kind": "throttle", "count": n})),
            )
            .await;
            let out = run_via(command.clone(), Some(log.clone()), via.clone()).await;
            let left: Value = http
                .get(control("/faults"))
                .send()
                .await
                .expect("the control API answers")
                .json()
                .await
                .expect("faults JSON");
            faults(http, None).await;
            ok(&out, &format!("{} with {}", c.command, c.fault.describe()));
            // The throttles were met (a rule is gone once its count is used up).
            assert_eq!(
                left["faults"].as_array().map(Vec::len),
                Some(0),
                "{} with {}: not every throttle was met: {left}",
                c.command,
                c.fault.describe()
            );
            "exit 0 (retried)".to_string()
        }
        Fault::KillAfter(prefix) => {
            let killed = killed_after(command.clone(), prefix, &log).await;
            assert!(
                killed,
                "{} ended before writing `{prefix}…`: {:?}",
                c.command,
                journal_in_order(&log)
            );
            format!("killed after {} write(s)", journal_in_order(&log).len())
        }
    };
    // The re-run converges: up to a clean run's end state, down to nothing.
    let mut again = run(command.clone()).await;
    // The environment's driver is a host process that outlives its CRDs: after `down` deleted
    // them and `up` re-created them, its SecretProviderClass informer re-lists only after a
    // back-off (about 35 s), and until then a mount finds no class. A real cluster's driver
    // pods are deleted with the CRDs and start after them. The re-run is repeated until the
    // driver finds the class again (at most DRIVER_RELIST), noted in the table.
    let mut reruns = 1;
    let relist_deadline = Instant::now() + DRIVER_RELIST;
    while c.platform && driver_lacks_the_class(&again) && Instant::now() < relist_deadline {
        tokio::time::sleep(Duration::from_secs(5)).await;
        again = run(command.clone()).await;
        reruns += 1;
    }
    ok(
        &again,
        &format!("{} re-run after {}", c.command, c.fault.describe()),
    );
    let converged = if c.command == "up" {
        let state = if c.platform {
            full_state(cluster, &ns).await
        } else {
            workload_state(cluster, &ns).await
        };
        assert_eq!(
            &state,
            clean,
            "up after {} converged to another state",
            c.fault.describe()
        );
        true
    } else if c.platform {
        full_state(cluster, &ns).await.is_empty()
    } else {
        workload_state(cluster, &ns).await.is_empty()
    };
    let (after, left) = if c.platform {
        let after = run(down_full_args(cluster)).await;
        (after, full_state(cluster, &ns).await)
    } else {
        (
            run(down_args(cluster)).await,
            owned_workloads(cluster).await,
        )
    };
    ok(&after, "down after the case");
    Row {
        case: format!("`{}` {} — {}", c.command, c.step, c.fault.describe()),
        faulted: if reruns > 1 {
            format!("{faulted}; re-run {reruns} times (the environment's driver cache, see below)")
        } else {
            faulted
        },
        converged,
        left_nothing: left.is_empty(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Runs `cases` one after another, each of which must converge to `clean` and leave nothing.
async fn run_cases(
    cases: &[Case],
    cluster: &str,
    http: &reqwest::Client,
    clean: &BTreeSet<String>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for c in cases {
        let row = run_case(c, cluster, http, clean).await;
        assert!(row.converged && row.left_nothing, "{}", row.case);
        eprintln!("fault case passed in {:.0}s: {}", row.seconds, row.case);
        rows.push(row);
    }
    rows
}

/// `up` of service account `app` in a new namespace `unique(prefix)`, registered with
/// `cleanup` first; fails the test with `what` unless it passed. The namespace.
async fn up_in_new_namespace(
    cluster: &str,
    cleanup: &mut common::cleanup::Cleanup,
    prefix: &str,
    what: &str,
) -> String {
    let ns = common::unique(prefix);
    cleanup.namespaces.push(ns.clone());
    ok(&run(up_args(cluster, &ns)).await, what);
    ns
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "the fault matrix takes about 40 minutes: `BOOTSTRAP_FAULTS=1 tests/run.sh`, or `cargo test -p bootstrap --test faults_env -- --ignored` with the environment up"]
async fn every_fault_of_up_and_down_converges() {
    let mut s = common::session!(serial, "t");
    let (env, _, _, _, cleanup) = s.parts();
    let cluster = env.cluster.clone();
    // The matrix's own namespaces, removed when it ends, pass or fail.
    let http = reqwest::Client::new();
    faults(&http, None).await;
    // The clean end state every case must reach.
    ok(&run(down_args(&cluster)).await, "down before the matrix");
    let ns = up_in_new_namespace(&cluster, cleanup, "clean", "a clean up").await;
    let clean = workload_state(&cluster, &ns).await;
    assert!(
        clean.iter().any(|i| i.starts_with("iam role")) && clean.contains("association <ns>/app"),
        "{clean:?}"
    );
    ok(&run(down_args(&cluster)).await, "down after the clean up");
    nothing_left(&cluster, "after the clean up").await;

    // BOOTSTRAP_FAULTS=platform runs the platform cases only, =kube the Kubernetes API cases
    // only, =aws all but those; anything else (1, or unset) runs every case.
    let mode = std::env::var("BOOTSTRAP_FAULTS").unwrap_or_default();
    let pick = |steps: &'static [Step], platform: bool| -> Vec<Case> {
        steps
            .iter()
            .flat_map(|s| s.cases(platform))
            .filter(|c| match mode.as_str() {
                "platform" => platform,
                "kube" => c.fault.on_kube(),
                "aws" => !c.fault.on_kube(),
                _ => true,
            })
            .collect()
    };
    let workload_cases = [pick(STEPS, false), pick(KUBE_STEPS, false)].concat();
    let platform_cases = [pick(PLATFORM_STEPS, true), pick(KUBE_PLATFORM_STEPS, true)].concat();
    let mut rows = run_cases(&workload_cases, &cluster, &http, &clean).await;

    // The platform steps, from a cluster without the platform (nor an agent add-on).
    let eks = aws_sdk_eks::Client::new(&common::aws().await);
    ok(&run(down_full_args(&cluster)).await, "down of the platform");
    no_agent_addon(&eks, &cluster).await;
    let ns = up_in_new_namespace(&cluster, cleanup, "cleanp", "a clean up with the platform").await;
    let clean_full = full_state(&cluster, &ns).await;
    assert!(
        clean_full.contains("addon eks-pod-identity-agent")
            && clean_full.iter().any(|i| i.contains("aws-csi-provider"))
            && clean_full
                .iter()
                .any(|i| i.starts_with("CustomResourceDefinition/")),
        "{clean_full:?}"
    );
    ok(
        &run(down_full_args(&cluster)).await,
        "down after the clean up",
    );
    let left = full_state(&cluster, &ns).await;
    assert!(left.is_empty(), "down of everything left {left:?}");
    rows.extend(run_cases(&platform_cases, &cluster, &http, &clean_full).await);
    // Back to the environment's platform for the tests after this one: a foreign agent
    // add-on, bootstrap's driver and provider.
    foreign_agent_addon(&eks, &cluster).await;
    up_in_new_namespace(&cluster, cleanup, "restore", "up restoring the platform").await;
    ok(
        &run(down_args(&cluster)).await,
        "down of the restoring workload",
    );

    if let Some(path) = std::env::var_os("BOOTSTRAP_FAULTS_REPORT") {
        let mut table = String::from(
            "| Case | Faulted run | Re-run converged to the clean state | `down` left nothing | Seconds |\n|---|---|---|---|---|\n",
        );
        for r in &rows {
            table.push_str(&format!(
                "| {} | {} | {} | {} | {:.0} |\n",
                r.case,
                r.faulted,
                if r.converged { "yes" } else { "NO" },
                if r.left_nothing { "yes" } else { "NO" },
                r.seconds
            ));
        }
        std::fs::write(path, table).expect("write the fault report");
    }
}
