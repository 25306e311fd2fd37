//! The `bootstrap` command-line entry point (thin: parse, resolve settings, dispatch).

use std::process::ExitCode;

use anyhow::Context;
use bootstrap::cli::{
    Cli, Command, DoctorArgs, DownArgs, ImageCommand, MigrateArgs, OnboardArgs, OutputFormat,
    UpArgs,
};
use bootstrap::commands::{self, ExitStatus};
use bootstrap::config::{
    resolve_doctor, resolve_down, resolve_migrate, resolve_onboard, resolve_up,
};
use bootstrap::error::StepError;
use bootstrap::ui::{Printer, render_error, write_manifests};
use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A controller is a service: what it reconciles is its output (info by default).
    let log_level = match &cli.command {
        Command::Controller(_) => cli.verbose.max(1),
        _ => cli.verbose,
    };
    bootstrap::ui::logging::init(log_level);
    let printer = |json: bool| {
        Printer::new(cli.quiet, cli.verbose, cli.no_progress, json)
            .with_show_manifests(cli.show_manifests)
    };
    let status =
        match &cli.command {
            Command::Completions { shell } => {
                clap_complete::generate(
                    *shell,
                    &mut Cli::command(),
                    "bootstrap",
                    &mut std::io::stdout(),
                );
                ExitStatus::Success
            }
            Command::Up(args) => {
                let p = printer(args.output == OutputFormat::Json).with_dry_run(args.dry_run);
                block_on(&p, up(args, &p))
            }
            Command::Onboard(args) => {
                let p = printer(args.output == OutputFormat::Json).with_dry_run(args.dry_run);
                if args.print_schema {
                    p.json_value(&bootstrap::teams::schema());
                    ExitStatus::Success
                } else if args.emit_manifests {
                    let path = args.file.clone().unwrap_or_default();
                    match bootstrap::teams::load(&path) {
                        Ok(file) => {
                            let items: Vec<_> = file
                                .teams
                                .iter()
                                .map(|t| commands::controller::crd::from_team(&t.value))
                                .collect();
                            p.json_value(&serde_json::json!({
                                "apiVersion": "v1", "kind": "List", "items": items,
                            }));
                            ExitStatus::Success
                        }
                        Err(e) => commands::user_error(&p, &e),
                    }
                } else {
                    block_on(&p, onboard(args, &p))
                }
            }
            Command::Migrate(args) => {
                let p = printer(args.output == OutputFormat::Json).with_dry_run(!args.approve);
                block_on(&p, migrate(args, &p))
            }
            Command::Down(args) => {
                let p = printer(args.output == OutputFormat::Json).with_dry_run(args.dry_run);
                block_on(&p, down(args, &p))
            }
            Command::Image(args) => match &args.command {
                ImageCommand::Push(a) => {
                    let p = printer(a.output == OutputFormat::Json);
                    block_on(&p, commands::image::push(a, &p))
                }
                ImageCommand::Inspect(a) => {
                    let p = printer(a.output == OutputFormat::Json);
                    block_on(&p, commands::image::inspect(a, &p))
                }
            },
            Command::Controller(args) => {
                let p = printer(false);
                if args.print_crds {
                    // One List: `kubectl apply -f -` takes it as it is.
                    p.json_value(&serde_json::json!({
                        "apiVersion": "v1",
                        "kind": "List",
                        "items": commands::controller::crd::crds(),
                    }));
                    ExitStatus::Success
                } else if args.print_rbac {
                    let ns = &args.lease_namespace;
                    p.json_value(&serde_json::json!({
                        "apiVersion": "v1",
                        "kind": "List",
                        "items": commands::controller::rbac::objects(ns, ns, &args.lease_name),
                    }));
                    ExitStatus::Success
                } else if args.print_iam_policy {
                    match bootstrap::config::resolve_controller(args) {
                        Err(e) => commands::user_error(&p, &e),
                        Ok(s) => match s.confinement.as_ref().map(|c| {
                            commands::controller::iam::controller_policy(&s.target.cluster, c)
                        }) {
                            Some(Ok(doc)) => {
                                p.json_value(&doc);
                                ExitStatus::Success
                            }
                            Some(Err(e)) => {
                                p.error(&format!("error: {e}"));
                                ExitStatus::UserError
                            }
                            None => {
                                p.error("error: --print-iam-policy needs --permissions-boundary");
                                ExitStatus::UserError
                            }
                        },
                    }
                } else {
                    match bootstrap::config::resolve_controller(args) {
                        Ok(s) => block_on(&p, commands::controller::run(s, p)),
                        Err(e) => commands::user_error(&p, &e),
                    }
                }
            }
            Command::Doctor(args) => {
                let p = printer(args.output == OutputFormat::Json);
                block_on(&p, doctor(args, &p))
            }
        };
    status.into()
}

fn block_on(printer: &Printer, work: impl std::future::Future<Output = ExitStatus>) -> ExitStatus {
    match tokio::runtime::Runtime::new().context("failed to start the async runtime") {
        Ok(rt) => rt.block_on(work),
        Err(e) => {
            printer.error(&render_error(e.as_ref(), None));
            ExitStatus::Failure
        }
    }
}

async fn up(args: &UpArgs, printer: &Printer) -> ExitStatus {
    let settings = match resolve_up(args) {
        Ok(s) => s,
        Err(e) => return commands::user_error(printer, &e),
    };
    let run = match commands::up::run(&settings, printer).await {
        Ok(run) => run,
        Err(e) => return commands::fail(printer, &e),
    };
    printer.report(&run.report);
    if let (Some(dir), None) = (&settings.output_dir, &run.error) {
        match write_manifests(&run.report, dir)
            .with_context(|| format!("failed to write manifests to {}", dir.display()))
        {
            Ok(files) => printer.status(&format!(
                "wrote {} manifests to {}",
                files.len(),
                dir.display()
            )),
            Err(e) => {
                printer.error(&render_error(e.as_ref(), None));
                return ExitStatus::Failure;
            }
        }
    }
    if let Some((step, e)) = run.error {
        printer.error(&format!("step {step} failed\n"));
        return commands::fail(printer, &e);
    }
    if run.report.dry_run || run.report.verified {
        ExitStatus::Success
    } else {
        commands::fail(printer, &StepError::problem("verification did not pass"))
    }
}

async fn down(args: &DownArgs, printer: &Printer) -> ExitStatus {
    let settings = match resolve_down(args) {
        Ok(s) => s,
        Err(e) => return commands::user_error(printer, &e),
    };
    let (report, error) = match commands::down::run(&settings, printer).await {
        Ok(found) => found,
        Err(e) => return commands::fail(printer, &e),
    };
    if printer.json {
        printer.json_value(&report);
    } else {
        printer.report(&report.report);
    }
    match error {
        Some((step, e)) => {
            printer.error(&format!("step {step} failed\n"));
            commands::fail(printer, &e)
        }
        None => ExitStatus::Success,
    }
}

/// Prints a command's report: as JSON, or as its text rendering.
fn print<R: serde::Serialize>(printer: &Printer, report: &R, text: fn(&R) -> String) {
    if printer.json {
        printer.json_value(report);
    } else {
        printer.text(&text(report));
    }
}

fn success_if(ok: bool) -> ExitStatus {
    if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

/// A reporting command: its settings (refused: exit 2), its run (failed: exit 1), then its
/// report printed and the exit status the report says.
async fn reporting<S, E, R>(
    printer: &Printer,
    settings: Result<S, E>,
    run: impl AsyncFnOnce(&S) -> Result<R, StepError>,
    text: fn(&R) -> String,
    status: fn(&R) -> ExitStatus,
) -> ExitStatus
where
    E: std::error::Error + 'static,
    R: serde::Serialize,
{
    let settings = match settings {
        Ok(s) => s,
        Err(e) => return commands::user_error(printer, &e),
    };
    match run(&settings).await {
        Ok(report) => {
            print(printer, &report, text);
            status(&report)
        }
        Err(e) => commands::fail(printer, &e),
    }
}

async fn onboard(args: &OnboardArgs, printer: &Printer) -> ExitStatus {
    let run = async |s: &_| commands::onboard::run(s, printer).await;
    let ok = |r: &commands::onboard::OnboardReport| success_if(r.succeeded());
    let text = commands::onboard::table;
    reporting(printer, resolve_onboard(args), run, text, ok).await
}

async fn migrate(args: &MigrateArgs, printer: &Printer) -> ExitStatus {
    let run = async |s: &_| commands::migrate::run(s).await;
    let ok = |r: &commands::migrate::MigrateReport| success_if(r.succeeded());
    let text = commands::migrate::text;
    reporting(printer, resolve_migrate(args), run, text, ok).await
}

async fn doctor(args: &DoctorArgs, printer: &Printer) -> ExitStatus {
    let run = async |s: &_| commands::doctor::run(s, printer).await;
    let text = commands::doctor::text;
    reporting(
        printer,
        resolve_doctor(args),
        run,
        text,
        commands::doctor::exit_status,
    )
    .await
}
