//! `bootstrap onboard -f teams.yaml`: the platform (as `up` makes it: checked, adopted or
//! completed), then every team as a workload — concurrently, with a bound, one shared set of
//! AWS clients — each with its role, association, namespace / ServiceAccount /
//! SecretProviderClass and, when asked, a verified mount. One team's failure stops no other.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde::Serialize;

use crate::commands::probe;
use crate::config::OnboardSettings;
use crate::error::StepError;
use crate::plan::{self, Change, Changes, Executor, Interpreter, Progress, Step, StepOutcome};
use crate::resources::FileOptions;
use crate::resources::platform::{self, Platform, PlatformPlan, ProviderChoice};
use crate::resources::secrets::{SecretExtras, SecretRef};
use crate::resources::workload::WorkloadPlan;
use crate::resources::{
    ResolvedSecret, Workload, association, objects, role, role_identity, secrets, workload,
};
use crate::service_account::ServiceAccountRef;
use crate::target::{self, Target};
use crate::teams::Team;
use bootstrap_common::names::LABEL_MANAGED_BY;

/// The label naming the team a workload's objects belong to.
pub const LABEL_TEAM: &str = "bootstrap.podid/team";
/// The label naming the TeamSecrets object (of the same namespace) that made a team's objects:
/// the controller's teams, which `onboard` neither reports as orphans nor prunes.
pub const LABEL_OWNER: &str = "bootstrap.podid/teamsecrets";

/// One team's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamResult {
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    /// `done`, `failed`, or `planned` (dry run).
    pub status: &'static str,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// The mounted files and versions, when the team asked for verification.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verified: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the team must still do (a target role's trust statement, secret tags for ABAC).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// Every change, for `--output json` and the dry-run plan.
    pub changes: Vec<Change>,
    pub seconds: f64,
    /// The step that failed (`plan`, `iam-role`, `association`, `workload`, `verify`).
    #[serde(skip)]
    pub failed_step: Option<&'static str>,
    /// The team's role ARN as planned (empty when the plan failed).
    #[serde(skip)]
    pub role_arn: String,
}

/// A team in the cluster but not in the file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    pub team: String,
    pub namespace: String,
    pub service_account: String,
    /// Deleted with `--prune`.
    pub pruned: bool,
}

/// The whole run, as `--output json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnboardReport {
    pub cluster: String,
    pub region: String,
    pub dry_run: bool,
    pub platform: Vec<crate::plan::StepReport>,
    pub teams: Vec<TeamResult>,
    pub orphaned: Vec<Orphan>,
    /// Every resource the run changed (platform, teams, pruned teams), as every command counts.
    pub changes: Changes,
    pub totals: Totals,
    pub seconds: f64,
}

/// The teams' tally (what they changed is in the report's `changes`).
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub teams: usize,
    pub succeeded: usize,
    pub failed: usize,
}

impl OnboardReport {
    pub fn succeeded(&self) -> bool {
        self.totals.failed == 0
            && self
                .platform
                .iter()
                .all(|s| !matches!(s.status, crate::plan::StepStatus::Failed(_)))
    }
}

/// The cross-account statement the target role's trust needs (EKS passes this external id).
pub fn target_trust_hint(t: &Target, team: &Team, role_arn: &str) -> String {
    let external_id = format!(
        "{}/{}/{}/{}/{}",
        t.region,
        t.account,
        t.name(),
        team.namespace,
        team.service_account.name()
    );
    let statement = serde_json::json!({
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
    });
    format!(
        "add to the trust policy of {}: {statement}",
        team.target_role_arn.as_deref().unwrap_or("the target role")
    )
}

/// A team's workload value, its secrets resolved (read-only), and notes for the report. A
/// synced `allKeys` secret's key names are read here (GetSecretValue; names kept, the value
/// dropped at once), in a dry run too; without credentials they cannot be, and a note says so.
async fn team_workload(
    t: &Target,
    team: &Team,
    sample_image: &str,
) -> Result<(Workload, Vec<String>), StepError> {
    let offline = t.region == target::OFFLINE_REGION;
    let mut notes = Vec::new();
    if let Some(failover) = &team.failover_region
        && let Some(p) = crate::teams::failover_problem(failover, Some(&t.region))
    {
        return Err(StepError::problem(format!("team {}: {p}", team.name)));
    }
    // The failover region's clients: the replicas' ARNs and keys are read there.
    let failover_clients = match (&team.failover_region, t.aws()) {
        (Some(region), Some(aws)) => Some(
            crate::aws::Clients::from_config(
                aws.config
                    .to_builder()
                    .region(aws_config::Region::new(region.clone()))
                    .build(),
            )
            .map_err(|e| StepError::problem(format!("AWS clients for {region}: {e}")))?,
        ),
        _ => None,
    };
    let mut resolved = Vec::new();
    for spec in team.secret_specs() {
        let secret = spec.secret().cloned().ok_or_else(|| {
            StepError::problem(format!(
                "team {}: {} not validated",
                team.name,
                spec.label()
            ))
        })?;
        let prefix = spec.prefix.is_some();
        let found: ResolvedSecret = if prefix {
            // Nothing to look up: the provider lists what matches at each mount.
            ResolvedSecret::plain(
                secret.kind,
                secret.id.clone(),
                secrets::prefix_arn(&t.region, &t.account, &secret),
                None,
            )
        } else {
            secrets::resolve_maybe(
                t.aws(),
                &t.region,
                &t.account,
                offline,
                &secret,
                spec.optional,
            )
            .await?
        };
        let mut extras = SecretExtras {
            prefix,
            direct_children_only: spec.recursive == Some(false),
            all_keys: spec.all_keys,
            optional: spec.optional,
            missing: found.extras.missing,
            sync: spec.sync.clone(),
            ..SecretExtras::default()
        };
        if let Some(failover) = &team.failover_region {
            (extras.replica_arn, extras.replica_kms_key_arn) = replica(
                &failover_clients,
                failover,
                &t.account,
                spec,
                &secret,
                &found,
            )
            .await?;
        }
        if prefix {
            let recursive = !extras.direct_children_only;
            for aws in t.aws().into_iter().chain(&failover_clients) {
                extras
                    .prefix_kms_key_arns
                    .extend(secrets::prefix_kms_keys(aws, &t.account, &secret, recursive).await?);
            }
        }
        if spec.all_keys && spec.sync.is_some() {
            match t.aws() {
                Some(aws) => extras.keys = key_names(aws, spec, &found).await?,
                None => notes.push(format!(
                    "no credentials: the key names of {} were not read, so the planned Secret {} lists none of them",
                    spec.label(),
                    spec.sync.as_deref().unwrap_or_default()
                )),
            }
        }
        if extras.missing {
            notes.push(format!(
                "optional secret {} does not exist in {} yet: the mount skips it until it does",
                spec.label(),
                t.region
            ));
        }
        resolved.push(ResolvedSecret {
            file: FileOptions {
                alias: spec.alias.clone(),
                file_permission: spec.file_permission.clone(),
                jmes_path: spec.jmes_path.clone(),
            },
            extras,
            ..found
        });
    }
    sync_conflicts(&resolved)?;
    Ok((
        Workload {
            service_account: ServiceAccountRef::new(&team.namespace, team.service_account.name()),
            secrets: resolved,
            force: false,
            sample_image: sample_image.to_string(),
            existing_service_account: team.service_account.existing(),
            target_role_arn: team.target_role_arn.clone(),
            abac: team.abac,
            failover_region: team.failover_region.clone(),
            confinement: team.confinement.clone(),
            labels: [(LABEL_TEAM.to_string(), team.name.clone())]
                .into_iter()
                .chain(
                    team.owner
                        .as_ref()
                        .map(|o| (LABEL_OWNER.to_string(), o.clone())),
                )
                .collect(),
        },
        notes,
    ))
}

/// The replica of a secret in the failover region: its ARN (a prefix's pattern there) and its
/// customer key. Offline, the ARN is the primary's in that region.
async fn replica(
    clients: &Option<crate::aws::Clients>,
    failover: &str,
    account: &str,
    spec: &crate::teams::SecretSpec,
    secret: &SecretRef,
    found: &ResolvedSecret,
) -> Result<(Option<String>, Option<String>), StepError> {
    if spec.prefix.is_some() {
        return Ok((Some(secrets::prefix_arn(failover, account, secret)), None));
    }
    let Some(clients) = clients else {
        return Ok((Some(secrets::in_region(&found.arn, failover)), None));
    };
    let there = SecretRef {
        kind: secret.kind,
        id: secrets::in_region(&secret.id, failover),
    };
    let r = secrets::resolve_maybe(Some(clients), failover, account, false, &there, true).await?;
    if r.extras.missing && !spec.optional {
        let e = StepError::problem(format!(
            "{} has no copy in failoverRegion {failover}",
            spec.label()
        ));
        return Err(match secret.kind {
            secrets::SecretKind::SecretsManager => e.with_hint(format!(
                "replicate it: aws secretsmanager replicate-secret-to-regions --secret-id {} --add-replica-regions Region={failover}",
                secret.id
            )),
            secrets::SecretKind::SsmParameter => e.with_hint(format!(
                "SSM does not replicate: put the parameter in {failover} too (aws ssm put-parameter --region {failover} ...)"
            )),
        });
    }
    Ok((Some(r.arn), r.kms_key_arn))
}

/// A synced `allKeys` secret's top-level key names, each checked as a file and a Secret key.
async fn key_names(
    aws: &crate::aws::Clients,
    spec: &crate::teams::SecretSpec,
    found: &ResolvedSecret,
) -> Result<Vec<String>, StepError> {
    if found.extras.missing {
        return Ok(Vec::new());
    }
    let keys = secrets::json_key_names(aws, &found.object_name).await?;
    for key in &keys {
        if !crate::render::workload::is_secret_key(key) {
            return Err(StepError::problem(format!(
                "secret {}: JSON key {key:?} cannot be a Secret's key (letters, digits, '-', '.', '_')",
                spec.label()
            ))
            .with_hint("rename the key, or sync named files (jmesPath) instead of allKeys"));
        }
    }
    Ok(keys)
}

/// Two secrets syncing one key into one Secret: refused, naming both.
fn sync_conflicts(secrets: &[ResolvedSecret]) -> Result<(), StepError> {
    let objects = workload::spc_objects(secrets);
    let mut seen: std::collections::BTreeMap<(&str, String), &str> = Default::default();
    for (s, o) in secrets.iter().zip(&objects) {
        let Some(sync) = s.extras.sync.as_deref() else {
            continue;
        };
        let keys: Vec<String> = if s.extras.all_keys {
            s.extras.keys.clone()
        } else {
            o.object_alias.iter().cloned().collect()
        };
        for key in keys {
            if let Some(other) = seen.insert((sync, key.clone()), &s.object_name) {
                return Err(StepError::problem(format!(
                    "secrets {other} and {} both sync key {key:?} into Secret {sync}",
                    s.object_name
                ))
                .with_hint("sync one of them into another Secret, or rename the key"));
            }
        }
    }
    Ok(())
}

fn count(changes: &[Change]) -> (usize, usize, usize) {
    let (mut c, mut u, mut n) = (0, 0, 0);
    for change in changes {
        match change.action {
            crate::plan::Action::Create => c += 1,
            crate::plan::Action::Update | crate::plan::Action::Replace => u += 1,
            crate::plan::Action::Unchanged | crate::plan::Action::Adopt => n += 1,
            _ => {}
        }
    }
    (c, u, n)
}

/// One team's plan: the role, then (at once) its association and its objects, then, when
/// the team asks for it, the sample mount.
fn team_graph<'a>(t: &'a Target, team: &Team, w: Workload, plan: WorkloadPlan) -> Vec<Step<'a>> {
    let WorkloadPlan {
        role,
        association,
        objects,
        sample,
        sample_spec,
        ..
    } = plan;
    let mut steps = vec![
        Step::apply("iam-role", &[], role),
        Step::apply("association", &["iam-role"], association),
        Step::apply("workload", &["iam-role"], objects),
    ];
    if team.verify && !t.is_offline() {
        let (change, probe) = probe::sample_probe(
            t,
            sample,
            sample_spec,
            w.service_account,
            Some(Duration::from_secs(300)),
            probe::as_notes(),
        );
        steps.push(Step::check(
            "verify",
            &["association", "workload"],
            StepOutcome::with(vec![change]),
            vec![probe],
        ));
    }
    steps
}

/// Plans and applies one team (reads and writes retried on the one schedule, below); the
/// controller reconciles a TeamSecrets object with it too.
pub async fn onboard_team(exec: &Executor<'_>, t: &Target, team: &Team, image: &str) -> TeamResult {
    let started = Instant::now();
    let mut result = TeamResult {
        name: team.name.clone(),
        namespace: team.namespace.clone(),
        service_account: team.service_account.name().to_string(),
        status: "failed",
        created: 0,
        updated: 0,
        unchanged: 0,
        verified: Vec::new(),
        error: None,
        hints: Vec::new(),
        changes: Vec::new(),
        seconds: 0.0,
        failed_step: None,
        role_arn: String::new(),
    };
    let mut failed_step = "plan";
    let outcome = async {
        // Reads only: under a rate limit the team waits its turn like its writes do.
        let (w, notes) = exec.paced_read(|| team_workload(t, team, image)).await?;
        result.hints.extend(notes);
        let plan = exec
            .paced_read(|| async { workload::plan(&w, t, false).await.map_err(|(_, e)| e) })
            .await?;
        result.role_arn = plan.role_arn.clone();
        for o in [&plan.role, &plan.association, &plan.objects] {
            result.changes.extend(o.changes.iter().cloned());
        }
        let (target, abac, namespace) = (
            w.target_role_arn.clone(),
            w.abac,
            w.service_account.namespace.clone(),
        );
        let (reports, error) = exec.run_graph(team_graph(t, team, w, plan), &()).await;
        if let Some((step, e)) = error {
            failed_step = step;
            return Err(e);
        }
        result.verified = reports
            .iter()
            .filter(|r| r.name == "verify")
            .filter_map(|r| r.outcome())
            .flat_map(|o| o.notes.clone())
            .collect();
        Ok::<_, StepError>((target, abac, namespace))
    }
    .await;
    match outcome {
        Ok((target, abac, namespace)) => {
            result.status = if exec.dry_run() { "planned" } else { "done" };
            if target.is_some() {
                result
                    .hints
                    .push(target_trust_hint(t, team, &result.role_arn));
            }
            if abac {
                result.hints.push(format!(
                    "abac: tag each secret of team {} with kubernetes-namespace={} and eks-cluster-name={} (aws secretsmanager tag-resource --secret-id ID --tags Key=kubernetes-namespace,Value={} Key=eks-cluster-name,Value={})",
                    team.name, namespace, t.name(), namespace, t.name()
                ));
            }
        }
        Err(e) => {
            let mut text = e.to_string();
            if let Some(hint) = e.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            result.error = Some(text);
            result.failed_step = Some(failed_step);
        }
    }
    let (c, u, n) = count(&result.changes);
    (result.created, result.updated, result.unchanged) = (c, u, n);
    result.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    result
}

/// Teams in the cluster (SecretProviderClasses labelled with a team) that the file lacks.
async fn orphans(
    t: &Target,
    wanted: &BTreeSet<String>,
) -> Result<Vec<(String, String, String)>, StepError> {
    Ok(onboarded(t)
        .await?
        .into_iter()
        .filter(|(team, _, _)| !wanted.contains(team))
        .collect())
}

/// Every onboarded team on the cluster: (team, namespace, service account).
pub async fn onboarded(t: &Target) -> Result<Vec<(String, String, String)>, StepError> {
    let Some(kube) = t.kube() else {
        return Ok(Vec::new());
    };
    let gvk = GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass");
    let api: Api<DynamicObject> = Api::all_with(
        kube.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasses"),
    );
    let params =
        ListParams::default().labels(&format!("{LABEL_MANAGED_BY}=bootstrap,{LABEL_TEAM}"));
    let list = match api.list(&params).await {
        Ok(list) => list,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
        Err(source) => {
            return Err(crate::kube::KubeError::Api {
                action: "list",
                resource: "the teams' SecretProviderClasses".into(),
                source,
            }
            .into());
        }
    };
    let mut found = Vec::new();
    for spc in list.items {
        // Labelled for another cluster (manifests carried here by GitOps): not this one's.
        if !crate::resources::discover::labelled_ours(spc.metadata.labels.as_ref(), t.name()) {
            continue;
        }
        // A TeamSecrets object's team: the controller owns it (its finalizer deletes it).
        if spc
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(LABEL_OWNER))
        {
            continue;
        }
        let team = spc
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_TEAM))
            .cloned()
            .unwrap_or_default();
        let sa = spc
            .metadata
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix("bootstrap-"))
            .unwrap_or_default()
            .to_string();
        found.push((team, spc.metadata.namespace.unwrap_or_default(), sa));
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The deletion of an orphaned team: its SecretProviderClass, its ServiceAccount (when
/// bootstrap made it), its association and its role — owned things only.
pub async fn plan_prune(t: &Target, ns: &str, sa: &str) -> Result<Vec<Change>, StepError> {
    let mut changes = Vec::new();
    let Some(crate::target::Live { aws, kube }) = t.live() else {
        return Ok(changes);
    };
    let spc = crate::plan::ObjectRef::new(
        "secrets-store.csi.x-k8s.io/v1",
        "SecretProviderClass",
        Some(ns),
        &format!("bootstrap-{sa}"),
    );
    changes.push(objects::plan_delete(&spc));
    let sa_ref = crate::plan::ObjectRef::new("v1", "ServiceAccount", Some(ns), sa);
    if let Some(live) = crate::kube::apply::get(kube, &sa_ref.stub()).await?
        && crate::kube::apply::is_ours(&live)
    {
        changes.push(objects::plan_delete(&sa_ref));
    }
    let live_association = association::observe(aws, t.name(), ns, sa).await?;
    if let Some(live) = &live_association
        && let Some(change) = association::plan_delete(t.name(), live)
    {
        changes.push(change);
    }
    // The team's role: the one its association names (an earlier release's name) or the one
    // named for it — deleted only when bootstrap made it for this team (tags, trust, or the
    // association for a role that claims nothing).
    let mut names = vec![role::role_name(t.name(), ns, sa)];
    if let Some(name) = live_association
        .as_ref()
        .and_then(|a| workload::associated_role_name(&a.role_arn, &t.account))
        && !names.iter().any(|n| n.as_str() == name)
    {
        names.push(name.to_string());
    }
    for name in names {
        if let Some(live) = role::observe(aws, &name, t.name(), true).await?
            && role_identity::serves(&live, ns, sa, live_association.as_ref()).is_ok()
            && let Some(change) = role::plan_delete(&live)
        {
            changes.push(change);
        }
    }
    Ok(changes)
}

/// The platform `onboard` makes sure of: `up`'s defaults, with its provider image.
pub fn default_platform(s: &OnboardSettings) -> Platform {
    let values = crate::render::provider::ProviderValues {
        image: s.provider_image.clone(),
        ..Default::default()
    };
    Platform {
        driver: Default::default(),
        provider: ProviderChoice::Rust(values),
        image_check: s.image_check,
    }
}

/// `onboard` installs the platform where it is missing and never reconfigures what is there:
/// `up` owns the platform's settings (rotation, sync, provider values), which onboard's
/// defaults would otherwise reset. An update becomes `unchanged`, keeping only its waits.
fn install_only(mut outcome: StepOutcome) -> StepOutcome {
    for change in &mut outcome.changes {
        if change.action == plan::Action::Update {
            let waits: Vec<_> = change
                .ops
                .iter()
                .filter(|op| !op.writes())
                .cloned()
                .collect();
            *change = Change::new(
                plan::Action::Unchanged,
                std::mem::take(&mut change.resource),
            )
            .note(
                "kept as configured: onboard installs the platform only where it is missing; \
                     `bootstrap up` changes its settings",
            )
            .ops(waits);
        }
    }
    outcome
}

/// Runs `onboard` on a target.
pub async fn run_on(
    s: &OnboardSettings,
    t: &Target,
    interpreter: Option<&dyn Interpreter>,
    progress: &dyn Progress,
    status: &(dyn Fn(&TeamResult) + Sync),
) -> OnboardReport {
    let started = Instant::now();
    let exec = Executor::new(s.dry_run, interpreter, started + s.timeout);
    let (platform_steps, platform_error) =
        match platform::plan_all(&default_platform(s), t, s.dry_run).await {
            Ok(PlatformPlan {
                agent,
                driver,
                provider,
            }) => {
                let steps = vec![
                    Step::apply("agent-addon", &[], agent),
                    Step::apply("csi-driver", &[], install_only(driver)),
                    Step::apply("provider", &["csi-driver"], install_only(provider)),
                ];
                exec.run_graph(steps, progress).await
            }
            Err((step, e)) => (
                vec![crate::plan::StepReport::new(
                    step,
                    crate::plan::StepStatus::Failed(e.to_string()),
                    Duration::ZERO,
                )],
                Some((step, e)),
            ),
        };
    let mut teams = Vec::new();
    if platform_error.is_none() {
        let image = crate::commands::up::SAMPLE_IMAGE;
        let mut stream = futures::stream::iter(s.teams.iter())
            .map(|team| onboard_team(&exec, t, team, image))
            .buffer_unordered(s.concurrency.max(1));
        while let Some(result) = stream.next().await {
            status(&result);
            teams.push(result);
        }
    }
    teams.sort_by(|a, b| a.name.cmp(&b.name));
    let wanted: BTreeSet<String> = s.teams.iter().map(|t| t.name.clone()).collect();
    let mut orphaned = Vec::new();
    let mut pruned_deletes = 0;
    if platform_error.is_none() {
        match orphans(t, &wanted).await {
            Ok(found) => {
                for (team, ns, sa) in found {
                    let mut pruned = false;
                    if s.prune {
                        match plan_prune(t, &ns, &sa).await {
                            Ok(changes) => {
                                let deletes = changes.len();
                                let prune = Step::apply("prune", &[], StepOutcome::with(changes));
                                let (_, error) = exec.run_graph(vec![prune], &()).await;
                                pruned = error.is_none() && !exec.dry_run();
                                if error.is_none() {
                                    pruned_deletes += deletes;
                                }
                            }
                            Err(e) => tracing::warn!("cannot prune team {team}: {e}"),
                        }
                    }
                    orphaned.push(Orphan {
                        team,
                        namespace: ns,
                        service_account: sa,
                        pruned,
                    });
                }
            }
            Err(e) => tracing::warn!("cannot look for orphaned teams: {e}"),
        }
    }
    let mut changes = plan::Report::count(&platform_steps);
    changes.deleted += pruned_deletes;
    let mut totals = Totals {
        teams: teams.len(),
        ..Totals::default()
    };
    for r in &teams {
        if r.error.is_some() {
            totals.failed += 1;
        } else {
            totals.succeeded += 1;
        }
        for change in &r.changes {
            changes.add(change);
        }
    }
    OnboardReport {
        cluster: t.name().to_string(),
        region: t.region.clone(),
        dry_run: exec.dry_run(),
        platform: platform_steps,
        teams,
        orphaned,
        changes,
        totals,
        seconds: (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    }
}

/// Connects, preflights and runs `onboard`.
pub async fn run(
    s: &OnboardSettings,
    printer: &crate::ui::Printer,
) -> Result<OnboardReport, StepError> {
    let (aws, note) = super::connect(&s.target, s.dry_run).await?;
    if let Some(note) = note {
        printer.status(&format!("note: {note}"));
    }
    let progress = printer.progress();
    let json = printer.json;
    let printer = *printer;
    let status = move |r: &TeamResult| {
        if json {
            return;
        }
        printer.status(&match &r.error {
            None => format!(
                "  {} team {} ({}/{}): {} created, {} updated, {} unchanged ({:.1}s)",
                if r.status == "planned" { "·" } else { "✓" },
                r.name,
                r.namespace,
                r.service_account,
                r.created,
                r.updated,
                r.unchanged,
                r.seconds
            ),
            Some(e) => format!(
                "  ✗ team {} ({}/{}): {e}",
                r.name, r.namespace, r.service_account
            ),
        });
    };
    let Some(aws) = aws else {
        let t = Target::offline(&s.target.cluster, s.target.region.as_deref());
        return Ok(run_on(s, &t, None, &progress, &status).await);
    };
    let (t, _) = target::preflight(aws, &s.target.cluster).await?;
    let backends = crate::interp::Backends::of(&t)?;
    Ok(run_on(s, &t, Some(&backends), &progress, &status).await)
}

/// The summary table of a report.
pub fn table(report: &OnboardReport) -> String {
    let mut out = String::from(
        "TEAM  NAMESPACE/SERVICEACCOUNT  STATUS  CREATED  UPDATED  UNCHANGED  SECONDS\n",
    );
    for r in &report.teams {
        out.push_str(&format!(
            "{}  {}/{}  {}  {}  {}  {}  {:.1}\n",
            r.name,
            r.namespace,
            r.service_account,
            r.status,
            r.created,
            r.updated,
            r.unchanged,
            r.seconds
        ));
        if let Some(e) = &r.error {
            out.push_str(&format!("    error: {e}\n"));
        }
        for h in &r.hints {
            out.push_str(&format!("    hint: {h}\n"));
        }
    }
    for o in &report.orphaned {
        let what = if o.pruned {
            "deleted (--prune)"
        } else {
            "not in the file; pass --prune to delete it"
        };
        let (team, ns, sa) = (&o.team, &o.namespace, &o.service_account);
        out.push_str(&format!("orphaned team {team} ({ns}/{sa}): {what}\n"));
    }
    let t = &report.totals;
    let (created, updated, unchanged) = report.teams.iter().fold((0, 0, 0), |(c, u, n), r| {
        (c + r.created, u + r.updated, n + r.unchanged)
    });
    out.push_str(&format!(
        "\n{} team(s): {} succeeded, {} failed; {} created, {} updated, {} unchanged in {:.1}s{}\n",
        t.teams,
        t.succeeded,
        t.failed,
        created,
        updated,
        unchanged,
        report.seconds,
        if report.dry_run {
            " (dry run: no changes were applied)"
        } else {
            ""
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Op};

    #[test]
    fn onboard_never_reconfigures_the_platform_it_finds() {
        let wait = Op::WaitDaemonSet {
            namespace: "kube-system".into(),
            name: "csi-secrets-store".into(),
        };
        let outcome = StepOutcome::with(vec![
            Change::new(Action::Create, "CSIDriver/secrets-store.csi.k8s.io").op(Op::CreateAddon {
                cluster: "c".into(),
                addon: "a".into(),
                version: "v".into(),
            }),
            Change::new(Action::Update, "DaemonSet/kube-system/csi-secrets-store")
                .op(Op::CreateAddon {
                    cluster: "c".into(),
                    addon: "a".into(),
                    version: "v".into(),
                })
                .op(wait.clone()),
        ]);
        let kept = install_only(outcome);
        assert_eq!(
            kept.changes[0].action,
            Action::Create,
            "what is missing is installed"
        );
        assert_eq!(kept.changes[1].action, Action::Unchanged);
        assert_eq!(kept.changes[1].ops, vec![wait], "only the wait survives");
        assert!(
            kept.changes[1]
                .note
                .as_deref()
                .unwrap_or_default()
                .contains("bootstrap up")
        );
    }
}
