//! `bootstrap down`: discover what bootstrap owns on the cluster, plan its deletion (owned
//! things only, reverse dependency order, foreign objects kept), confirm, and run the plan
//! step by step, waiting for each deletion to finish.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::DownSettings;
use crate::error::StepError;
use crate::plan::{
    Changes, Executor, Interpreter, Progress, Report, Step, StepOutcome, StepReport, StepStatus,
};
use crate::resources::discover::{self, Inventory};
use crate::resources::teardown::{self, Scope, Teardown};
use crate::target::Target;

/// What `down --output json` prints.
#[derive(Debug, Serialize)]
pub struct DownReport {
    #[serde(flatten)]
    pub report: Report,
    /// Resources deleted (or, in a dry run, to delete).
    pub deleted: Vec<String>,
    /// Resources left in place, each with the reason.
    pub kept: Vec<Kept>,
}

#[derive(Debug, Serialize)]
pub struct Kept {
    pub resource: String,
    pub reason: String,
}

pub fn scope(s: &DownSettings) -> Scope {
    Scope {
        namespace: s.namespace.clone(),
        workloads_only: s.workloads_only,
        force: s.force,
    }
}

/// A teardown as a plan: its steps in order, each waiting for the one before; the changes of
/// one step are independent (namespaces, roles, ...), at most 16 at once.
pub fn graph<'a>(teardown: &Teardown) -> Vec<Step<'a>> {
    let mut previous: Option<&'static str> = None;
    teardown
        .steps
        .iter()
        .map(|(name, changes)| {
            let deps: Vec<&'static str> = previous.into_iter().collect();
            previous = Some(name);
            Step::apply(name, &deps, StepOutcome::with(changes.clone())).parallel(16)
        })
        .collect()
}

/// Builds the report of a teardown run.
pub fn report(
    t: &Target,
    teardown: &Teardown,
    steps: Vec<StepReport>,
    dry_run: bool,
    seconds: f64,
    error: Option<String>,
) -> DownReport {
    let deleted = steps
        .iter()
        .filter_map(StepReport::outcome)
        .flat_map(|o| o.changes.iter().map(|c| c.resource.clone()))
        .collect();
    let kept = teardown
        .kept
        .iter()
        .map(|k| Kept {
            resource: k.resource.clone(),
            reason: k.note.clone().unwrap_or_default(),
        })
        .collect();
    let mut changes: Changes = Report::count(&steps);
    changes.kept = teardown.kept.len();
    let mut steps = steps;
    steps.push(StepReport::new(
        "kept",
        StepStatus::Done(StepOutcome::with(teardown.kept.clone())),
        Duration::ZERO,
    ));
    DownReport {
        report: Report {
            cluster: t.name().to_string(),
            region: t.region.clone(),
            dry_run,
            offline: false,
            changes,
            steps,
            verified: false,
            seconds,
            error,
        },
        deleted,
        kept,
    }
}

/// Discovers, plans and (unless dry) deletes. `confirm` is asked before any write.
pub async fn run_on(
    s: &DownSettings,
    t: &Target,
    interpreter: &dyn Interpreter,
    progress: &dyn Progress,
    confirm: &dyn Fn(&Teardown) -> bool,
) -> Result<(DownReport, Option<(&'static str, StepError)>), StepError> {
    let started = Instant::now();
    let Some(crate::target::Live { aws, kube }) = t.live() else {
        return Err(StepError::problem("down needs AWS and cluster access"));
    };
    if let Some(team) = &s.team {
        let mut changes = Vec::new();
        for (_, ns, sa) in crate::commands::onboard::onboarded(t)
            .await?
            .into_iter()
            .filter(|(name, _, _)| name == team)
        {
            changes.extend(crate::commands::onboard::plan_prune(t, &ns, &sa).await?);
        }
        if changes.is_empty() {
            return Err(StepError::problem(format!(
                "no team {team} was onboarded on cluster {}",
                t.name()
            ))
            .with_hint("the team name is the `name` of its entry in the teams file"));
        }
        let plan = Teardown {
            steps: vec![("team", changes)],
            kept: Vec::new(),
        };
        return confirmed_run(s, t, &plan, interpreter, progress, confirm, started).await;
    }
    progress.started("discover");
    let found = discover::discover(aws, kube, t.name(), &t.account, s.namespace.as_deref()).await;
    let inventory: Inventory = crate::plan::failed_on_err(progress, "discover", started, found)?;
    progress.finished(
        "discover",
        &StepStatus::Done(StepOutcome::default()),
        started.elapsed(),
    );
    refuse_with_team_requests(&inventory, s, t.name())?;
    let plan = teardown::plan(&inventory, t.name(), &scope(s));
    confirmed_run(s, t, &plan, interpreter, progress, confirm, started).await
}

/// TeamSecrets objects are teams' requests: the controller's finalizer on each deletes what it
/// made. While one exists in scope, `down` deletes nothing: the controller would remake what
/// `down` deletes, or (gone) leave the objects stuck with their finalizer; and the CRD's
/// deletion would delete the requests themselves, which bootstrap did not create.
fn refuse_with_team_requests(
    inventory: &Inventory,
    s: &DownSettings,
    cluster: &str,
) -> Result<(), StepError> {
    let in_scope: Vec<String> = inventory
        .team_requests
        .iter()
        .filter(|(ns, _)| s.namespace.as_deref().is_none_or(|want| want == ns))
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect();
    if in_scope.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = in_scope.iter().take(10).map(String::as_str).collect();
    let more = in_scope.len().saturating_sub(shown.len());
    Err(StepError::problem(format!(
        "down deleted nothing: {} TeamSecrets object(s) on cluster {cluster} still ask the controller for their secrets: {}{}",
        in_scope.len(),
        shown.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    ))
    .with_hint(
        "delete them first (`kubectl delete teamsecrets --all -n NAMESPACE`; the controller removes what each made), then run down again",
    ))
}

/// Asks (unless dry, or nothing is to be deleted), then runs the teardown and reports it.
async fn confirmed_run(
    s: &DownSettings,
    t: &Target,
    plan: &Teardown,
    interpreter: &dyn Interpreter,
    progress: &dyn Progress,
    confirm: &dyn Fn(&Teardown) -> bool,
    started: Instant,
) -> Result<(DownReport, Option<(&'static str, StepError)>), StepError> {
    let writes = plan.steps.iter().any(|(_, changes)| !changes.is_empty());
    if !s.dry_run && writes && !confirm(plan) {
        return Err(
            StepError::problem("down was not confirmed: nothing was deleted")
                .with_hint("answer y, or pass --yes to skip the question"),
        );
    }
    let exec = Executor::new(s.dry_run, Some(interpreter), started + s.timeout);
    let (steps, error) = exec.run_graph(graph(plan), progress).await;
    let seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    let text = error.as_ref().map(|(n, e)| format!("{n}: {e}"));
    Ok((report(t, plan, steps, exec.dry_run(), seconds, text), error))
}

/// Asks on the terminal; refuses when stdin is not one (and `--yes` was not given).
pub fn ask(printer: &crate::ui::Printer, plan: &Teardown) -> bool {
    let count: usize = plan.steps.iter().map(|(_, c)| c.len()).sum();
    if !std::io::stdin().is_terminal() {
        printer.ask(&format!(
            "refusing to delete {count} resource(s) without confirmation: stdin is not a terminal (pass --yes)\n"
        ));
        return false;
    }
    let mut question = format!("bootstrap down will delete {count} resource(s) it created:\n");
    for (_, changes) in &plan.steps {
        for c in changes {
            question.push_str(&format!("  - {}\n", c.resource));
        }
    }
    question.push_str("Proceed? [y/N] ");
    printer.ask(&question);
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// Connects, preflights and runs `down`.
pub async fn run(
    s: &DownSettings,
    printer: &crate::ui::Printer,
) -> Result<(DownReport, Option<(&'static str, StepError)>), StepError> {
    let (t, backends) = super::connect_cluster(&s.target, "down").await?;
    let progress = printer.progress();
    let yes = s.yes;
    run_on(s, &t, &backends, &progress, &|plan| {
        yes || ask(printer, plan)
    })
    .await
}
