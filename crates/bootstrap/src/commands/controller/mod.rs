//! `bootstrap controller`: teams onboard themselves. Each TeamSecrets object is reconciled as
//! `onboard` reconciles a team — the same planners, the same executor — within what the
//! SecretAllowance objects allow its namespace; its status says what is ready and why not; a
//! finalizer deletes what it made; a periodic resync repairs drift; one replica leads.

pub mod allowance;
pub mod crd;
pub mod iam;
pub mod install;
pub mod lease;
pub mod rbac;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::utils::Predicate;
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};
use kube::{Resource, ResourceExt};

use crate::commands::onboard::{self, LABEL_OWNER, LABEL_TEAM};
use crate::config::ControllerSettings;
use crate::error::StepError;
use crate::interp::Backends;
use crate::plan::{Executor, Step, StepOutcome};
use crate::target::Target;
use crate::ui::Printer;
use crd::{SecretAllowance, TeamSecrets, TeamSecretsStatus};
use status::Refusal;

/// The finalizer on every TeamSecrets object the controller has seen.
pub const FINALIZER: &str = "bootstrap.podid/cleanup";

/// Counters, served in Prometheus' text format with `--metrics-addr`.
#[derive(Default)]
pub struct Metrics {
    pub reconciles: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicU64,
    pub refused: AtomicU64,
}

impl Metrics {
    /// The exposition text; `queued`: objects waiting for a reconcile ([`queue_depth`]).
    pub fn render(&self, aws_calls: u64, queued: u64) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# TYPE bootstrap_controller_reconciles_total counter\n\
             bootstrap_controller_reconciles_total {}\n\
             # TYPE bootstrap_controller_reconcile_errors_total counter\n\
             bootstrap_controller_reconcile_errors_total {}\n\
             # TYPE bootstrap_controller_refused_total counter\n\
             bootstrap_controller_refused_total {}\n\
             # TYPE bootstrap_controller_reconciles_in_flight gauge\n\
             bootstrap_controller_reconciles_in_flight {}\n\
             # TYPE bootstrap_controller_aws_calls_total counter\n\
             bootstrap_controller_aws_calls_total {}\n\
             # HELP bootstrap_controller_queue_depth TeamSecrets objects waiting for a reconcile: a spec or deletion not handled yet, or a retry after a failure (in flight not counted).\n\
             # TYPE bootstrap_controller_queue_depth gauge\n\
             bootstrap_controller_queue_depth {}\n",
            get(&self.reconciles),
            get(&self.errors),
            get(&self.refused),
            get(&self.in_flight),
            aws_calls,
            queued,
        )
    }
}

/// Whether an object waits for a reconcile: its current spec not reconciled yet (no status for
/// its generation), its deletion not handled (our finalizer still on it), or never seen (no
/// finalizer yet).
pub fn waiting(obj: &TeamSecrets) -> bool {
    let finalized = obj.finalizers().iter().any(|f| f == FINALIZER);
    if obj.meta().deletion_timestamp.is_some() {
        return finalized;
    }
    let observed = obj.status.as_ref().and_then(|s| s.observed_generation);
    !finalized || observed != obj.meta().generation
}

/// The queue depth: objects that wait ([`waiting`]) or are backing off after failures, less
/// those being reconciled now.
pub fn queue_depth<'a>(
    objects: impl IntoIterator<Item = &'a TeamSecrets>,
    backing_off: &HashMap<String, u32>,
    in_flight: u64,
) -> u64 {
    let waiting = objects
        .into_iter()
        .filter(|o| waiting(o) || backing_off.contains_key(&key(o)))
        .count() as u64;
    waiting.saturating_sub(in_flight)
}

/// Serves `GET /metrics` (any path) on `addr` until the process ends.
async fn serve_metrics(addr: std::net::SocketAddr, ctx: Arc<Context>) -> Result<(), StepError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        StepError::problem(format!("--metrics-addr {addr}: cannot listen: {e}"))
            .with_hint("pick a free port, or leave --metrics-addr out")
    })?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let queued = {
                    let objects = ctx.store.state();
                    let failures = ctx.failures.lock().map(|f| f.clone()).unwrap_or_default();
                    let in_flight = ctx.metrics.in_flight.load(Ordering::Relaxed);
                    queue_depth(objects.iter().map(|o| o.as_ref()), &failures, in_flight)
                };
                let body = ctx
                    .metrics
                    .render(ctx.backends.aws.progress.calls(), queued);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// What every reconcile shares: the connected target, its backends, the settings.
pub struct Context {
    target: Target,
    backends: Backends,
    kube: kube::Client,
    settings: ControllerSettings,
    recorder: Recorder,
    metrics: Metrics,
    /// Failures in a row per object (its backoff).
    failures: Mutex<HashMap<String, u32>>,
    /// The watched objects (the controller's cache), for the queue depth.
    store: reflector::Store<TeamSecrets>,
}

/// Why a reconcile failed (the controller retries it with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Step(#[from] StepError),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// Connects, waits for leadership, and reconciles until stopped (SIGTERM, Ctrl-C) or until
/// leadership is lost.
pub async fn run(s: ControllerSettings, printer: Printer) -> crate::commands::ExitStatus {
    match serve(s, &printer).await {
        Ok(()) => crate::commands::ExitStatus::Success,
        Err(e) => crate::commands::fail(&printer, &e),
    }
}

async fn serve(s: ControllerSettings, printer: &Printer) -> Result<(), StepError> {
    let (target, backends) = crate::commands::connect_cluster(&s.target, "controller").await?;
    let kube = target
        .kube()
        .cloned()
        .ok_or_else(|| StepError::problem("controller: no Kubernetes client after preflight"))?;
    check_crds(&kube).await?;
    let elector = lease::Elector::new(
        kube.clone(),
        &s.lease_namespace,
        &s.lease_name,
        &s.identity,
        Duration::from_secs(15),
        target.name(),
    );
    match &s.confinement {
        Some(c) => printer.status(&format!(
            "controller {}: roles under {} bounded by {}",
            s.identity, c.path, c.boundary
        )),
        None => printer.status(&format!(
            "warning: controller {}: --unconfined: roles are made without a permissions boundary; a compromised controller could make any role its own credentials allow",
            s.identity
        )),
    }
    if s.leader_election {
        printer.status(&format!(
            "controller {}: waiting to lead (Lease {}/{})",
            s.identity, s.lease_namespace, s.lease_name
        ));
        elector.acquire().await?;
    }
    printer.status(&format!(
        "controller {}: reconciling TeamSecrets on cluster {} ({} at once, resync every {}s)",
        s.identity,
        target.name(),
        s.concurrency,
        s.resync.as_secs()
    ));
    let recorder = Recorder::new(
        kube.clone(),
        Reporter {
            controller: "bootstrap-controller".into(),
            instance: Some(s.identity.clone()),
        },
    );
    let concurrency = s.concurrency as u16;
    let leading = s.leader_election;
    let (reader, writer) = reflector::store();
    let ctx = Arc::new(Context {
        target,
        backends,
        kube: kube.clone(),
        settings: s,
        recorder,
        metrics: Metrics::default(),
        failures: Mutex::new(HashMap::new()),
        store: reader.clone(),
    });
    if let Some(addr) = ctx.settings.metrics_addr {
        serve_metrics(addr, ctx.clone()).await?;
    }
    // A changed allowance re-checks every object (a widened one lets a refused team in).
    let allowances = watcher::watcher(
        Api::<SecretAllowance>::all(kube.clone()),
        watcher::Config::default(),
    )
    .filter_map(|e| async move { e.ok().map(|_| ()) });
    // Reconciled when the spec (generation) or the finalizers change, never because of the
    // status it wrote itself (that would observe AWS again for nothing); drift is found by the
    // resync each reconcile requeues.
    let triggers = watcher::watcher(
        Api::<TeamSecrets>::all(kube.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects()
    .predicate_filter(
        predicates::generation.combine(predicates::finalizers),
        Default::default(),
    );
    let work = Controller::for_stream(triggers, reader)
        .with_config(controller::Config::default().concurrency(concurrency))
        .reconcile_all_on(allowances)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("controller: {e}");
            }
        });
    if leading {
        tokio::select! {
            () = work => Ok(()),
            lost = elector.hold() => Err(lost.with_hint("the controller stopped reconciling; its Deployment restarts it as a follower")),
        }
    } else {
        work.await;
        Ok(())
    }
}

/// The CRDs must be installed (by `up --controller`, or `--print-crds | kubectl apply -f -`).
async fn check_crds(kube: &kube::Client) -> Result<(), StepError> {
    let api: Api<TeamSecrets> = Api::all(kube.clone());
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(StepError::problem(
            "the TeamSecrets CustomResourceDefinition is not installed",
        )
        .with_hint("bootstrap controller --print-crds | kubectl apply -f -")),
        Err(source) => Err(crate::kube::KubeError::Api {
            action: "list",
            resource: "TeamSecrets".into(),
            source,
        }
        .into()),
    }
}

fn key(obj: &TeamSecrets) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

async fn reconcile(obj: Arc<TeamSecrets>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<TeamSecrets> = Api::namespaced(ctx.kube.clone(), &ns);
    ctx.metrics.reconciles.fetch_add(1, Ordering::Relaxed);
    ctx.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let result = finalizer(&api, FINALIZER, obj.clone(), |event| async {
        match event {
            Event::Apply(o) => apply(&o, &ctx).await,
            Event::Cleanup(o) => cleanup(&o, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => ReconcileError::Finalizer(other.to_string()),
    });
    ctx.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    if let Ok(action) = &result {
        tracing::info!("TeamSecrets {}: reconciled; next: {action:?}", key(&obj));
        if let Ok(mut failures) = ctx.failures.lock() {
            failures.remove(&key(&obj));
        }
    }
    result
}

/// Per-object exponential backoff: 5 s, 10 s, 20 s … up to 5 minutes.
fn error_policy(obj: Arc<TeamSecrets>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.metrics.errors.fetch_add(1, Ordering::Relaxed);
    let n = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(key(&obj)).or_insert(0);
            *n += 1;
            *n
        })
        .unwrap_or(1);
    let delay = backoff(n);
    tracing::warn!(
        "TeamSecrets {}: {err}; retrying in {}s",
        key(&obj),
        delay.as_secs()
    );
    Action::requeue(delay)
}

/// The delay after `n` failures in a row.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(
        5u64.saturating_mul(1 << n.saturating_sub(1).min(6))
            .min(300),
    )
}

async fn apply(obj: &TeamSecrets, ctx: &Context) -> Result<Action, ReconcileError> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let previous = obj.status.clone().unwrap_or_default();
    let generation = obj.meta().generation;
    let now = Timestamp::now().to_string();
    let resync = Action::requeue(ctx.settings.resync);
    let refusal = match crd::team_of(obj) {
        Err(e) => Err(Refusal::Invalid(e)),
        Ok(team) => match allowance::check(&allowances(ctx).await?, &ns, &team) {
            Err(why) => Err(Refusal::NotAllowed(why)),
            Ok(()) => match claimant(ctx, &ns, team.service_account.name(), &name).await? {
                Some(other) => Err(Refusal::Conflict(other)),
                None => Ok(team),
            },
        },
    };
    let mut team = match refusal {
        Ok(team) => team,
        Err(refusal) => {
            ctx.metrics.refused.fetch_add(1, Ordering::Relaxed);
            let status = status::refused(&refusal, generation, &previous, &now);
            if status.conditions != previous.conditions || status.last_error != previous.last_error
            {
                let reason = status.conditions[0].reason.clone();
                event(
                    ctx,
                    obj,
                    EventType::Warning,
                    &reason,
                    status.last_error.clone(),
                )
                .await;
            }
            write_status(ctx, &ns, &name, &status).await?;
            return Ok(resync);
        }
    };
    team.confinement = ctx.settings.confinement.clone();
    let deadline = Instant::now() + ctx.settings.timeout;
    let exec = Executor::new(false, Some(&ctx.backends), deadline);
    let result =
        onboard::onboard_team(&exec, &ctx.target, &team, crate::commands::up::SAMPLE_IMAGE).await;
    tracing::info!(
        "TeamSecrets {ns}/{name}: {} created, {} updated, {} unchanged{}",
        result.created,
        result.updated,
        result.unchanged,
        result
            .error
            .as_deref()
            .map(|e| format!("; failed: {e}"))
            .unwrap_or_default()
    );
    // The planned role's ARN; when planning itself failed, the one it would make.
    let role_arn = if result.role_arn.is_empty() {
        crate::resources::role::role_arn_in(
            &ctx.target.account,
            ctx.settings.confinement.as_ref(),
            &crate::resources::role::role_name(ctx.target.name(), &ns, team.service_account.name()),
        )
    } else {
        result.role_arn.clone()
    };
    let spc = format!("bootstrap-{}", team.service_account.name());
    let status = status::from_result(
        &result,
        team.verify,
        &role_arn,
        &spc,
        generation,
        &previous,
        &now,
    );
    for change in &result.changes {
        use crate::plan::Action as A;
        if matches!(
            change.action,
            A::Create | A::Update | A::Replace | A::Delete
        ) {
            event(
                ctx,
                obj,
                EventType::Normal,
                &format!("{:?}", change.action),
                Some(change.resource.clone()),
            )
            .await;
        }
    }
    write_status(ctx, &ns, &name, &status).await?;
    match &result.error {
        None => Ok(resync),
        Some(e) => {
            event(ctx, obj, EventType::Warning, "Failed", Some(e.clone())).await;
            Err(StepError::problem(e.clone()).into())
        }
    }
}

/// Deletes what the object made — its team's SecretProviderClass, ServiceAccount (when made),
/// association and role, each only when bootstrap made it for this namespace and service
/// account — unless another owner holds them.
async fn cleanup(obj: &TeamSecrets, ctx: &Context) -> Result<Action, ReconcileError> {
    let ns = obj.namespace().unwrap_or_default();
    let sa = obj.spec.service_account.clone();
    if let Some(other) = claimant(ctx, &ns, &sa, &obj.name_any()).await? {
        event(
            ctx,
            obj,
            EventType::Normal,
            "Released",
            Some(format!("nothing deleted: {other}")),
        )
        .await;
        return Ok(Action::await_change());
    }
    let changes = onboard::plan_prune(&ctx.target, &ns, &sa).await?;
    let count = changes.len();
    let exec = Executor::new(
        false,
        Some(&ctx.backends),
        Instant::now() + ctx.settings.timeout,
    );
    let (_, error) = exec
        .run_graph(
            vec![Step::apply("prune", &[], StepOutcome::with(changes))],
            &(),
        )
        .await;
    if let Some((_, e)) = error {
        return Err(e.into());
    }
    event(
        ctx,
        obj,
        EventType::Normal,
        "Deleted",
        Some(format!("{count} resources deleted")),
    )
    .await;
    Ok(Action::await_change())
}

async fn allowances(ctx: &Context) -> Result<Vec<crd::SecretAllowanceSpec>, StepError> {
    let api: Api<SecretAllowance> = Api::all(ctx.kube.clone());
    api.list(&ListParams::default())
        .await
        .map(|l| l.items.into_iter().map(|a| a.spec).collect())
        .map_err(|source| {
            crate::kube::KubeError::Api {
                action: "list",
                resource: "SecretAllowances".into(),
                source,
            }
            .into()
        })
}

/// Who else holds the service account's team: a teams file's team, or another TeamSecrets
/// object of the namespace (read from the SecretProviderClass's labels).
async fn claimant(
    ctx: &Context,
    ns: &str,
    sa: &str,
    me: &str,
) -> Result<Option<String>, StepError> {
    let spc = serde_json::json!({
        "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
        "metadata": {"name": format!("bootstrap-{sa}"), "namespace": ns},
    });
    let Some(live) = crate::kube::apply::get(&ctx.kube, &spc).await? else {
        return Ok(None);
    };
    let labels = &live["metadata"]["labels"];
    Ok(
        match (labels[LABEL_OWNER].as_str(), labels[LABEL_TEAM].as_str()) {
            (Some(owner), _) if owner == me => None,
            (Some(owner), _) => Some(format!(
                "service account {ns}/{sa} is TeamSecrets {ns}/{owner}'s"
            )),
            (None, Some(team)) => Some(format!(
                "service account {ns}/{sa} is team {team}'s, onboarded from a teams file"
            )),
            (None, None) => None,
        },
    )
}

async fn write_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    status: &TeamSecretsStatus,
) -> Result<(), StepError> {
    let api: Api<TeamSecrets> = Api::namespaced(ctx.kube.clone(), ns);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await
    .map(|_| ())
    .map_err(|source| {
        crate::kube::KubeError::Api {
            action: "update the status of",
            resource: format!("TeamSecrets {ns}/{name}"),
            source,
        }
        .into()
    })
}

async fn event(
    ctx: &Context,
    obj: &TeamSecrets,
    kind: EventType,
    reason: &str,
    note: Option<String>,
) {
    let reference = obj.object_ref(&());
    let ev = KubeEvent {
        type_: kind,
        reason: reason.to_string(),
        note: note.map(|n| n.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
        tracing::debug!("event on TeamSecrets {}: {e}", key(obj));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, generation: i64, observed: Option<i64>, finalized: bool) -> TeamSecrets {
        let mut o: TeamSecrets = serde_json::from_value(serde_json::json!({
            "apiVersion": "bootstrap.podid/v1alpha1", "kind": "TeamSecrets",
            "metadata": {"name": name, "namespace": "team", "generation": generation},
            "spec": {"serviceAccount": "app", "secrets": []},
        }))
        .expect("a TeamSecrets");
        if finalized {
            o.metadata.finalizers = Some(vec![FINALIZER.into()]);
        }
        o.status = observed.map(|g| TeamSecretsStatus {
            observed_generation: Some(g),
            ..TeamSecretsStatus::default()
        });
        o
    }

    #[test]
    fn the_queue_holds_unseen_edited_deleted_and_failing_objects_less_those_in_flight() {
        let settled = object("settled", 2, Some(2), true);
        let edited = object("edited", 3, Some(2), true);
        let unseen = object("unseen", 1, None, false);
        let failing = object("failing", 1, Some(1), true);
        let mut deleted = object("deleted", 1, Some(1), true);
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        let mut released = deleted.clone();
        released.metadata.finalizers = None;
        let all = [&settled, &edited, &unseen, &failing, &deleted, &released];
        let none = HashMap::new();
        assert_eq!(queue_depth(all, &none, 0), 3, "edited, unseen, deleted");
        let backing_off = HashMap::from([("team/failing".to_string(), 2)]);
        assert_eq!(queue_depth(all, &backing_off, 0), 4);
        assert_eq!(queue_depth(all, &backing_off, 1), 3, "one in flight");
        assert_eq!(queue_depth([&settled], &none, 5), 0, "never below zero");
    }

    #[test]
    fn metrics_name_every_series_once() {
        let m = Metrics::default();
        m.reconciles.fetch_add(3, Ordering::Relaxed);
        let text = m.render(7, 2);
        for line in [
            "bootstrap_controller_reconciles_total 3",
            "bootstrap_controller_aws_calls_total 7",
            "bootstrap_controller_queue_depth 2",
        ] {
            assert_eq!(text.lines().filter(|l| *l == line).count(), 1, "{text}");
        }
    }

    #[test]
    fn backoff_doubles_from_five_seconds_to_five_minutes() {
        let d: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(d, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX).as_secs(), 300);
    }
}
