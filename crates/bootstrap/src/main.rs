//! The `bootstrap` command-line entry point (thin: parse, resolve, run).

use std::process::ExitCode;

use anyhow::Context;
use bootstrap::cli::{Cli, Command, OutputFormat, UpArgs};
use bootstrap::config::resolve_up;
use bootstrap::steps::{StepError, up};
use bootstrap::ui::{Printer, render_error, write_manifests};
use clap::{CommandFactory, Parser};

/// Bad input (flags, values): exit 2, like clap's own usage errors.
const EXIT_USER: u8 = 2;
/// A step failed or verification did not pass.
const EXIT_FAILED: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "bootstrap",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Up(ref args) => {
            let printer = Printer::new(
                cli.quiet,
                cli.verbose,
                cli.no_progress,
                args.output == OutputFormat::Json,
            );
            let runtime =
                match tokio::runtime::Runtime::new().context("failed to start the async runtime") {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprint!("{}", render_error(e.as_ref(), None));
                        return ExitCode::from(EXIT_FAILED);
                    }
                };
            runtime.block_on(run_up(args, printer))
        }
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        // The credential chain logs each provider it tried; our own errors say what matters.
        0 => "warn,aws_config=error",
        1 => "info,aws=warn,kube=warn,hyper=warn",
        _ => "debug,hyper=info,rustls=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BOOTSTRAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run_up(args: &UpArgs, printer: Printer) -> ExitCode {
    let settings = match resolve_up(args) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{}", render_error(&e, None));
            return ExitCode::from(EXIT_USER);
        }
    };
    let output_dir = settings.output_dir.clone();
    let (env, offline_note) = match up::connect(settings).await {
        Ok(found) => found,
        Err(e) => return fail(&e),
    };
    if let Some(note) = offline_note {
        printer.status(&format!("note: {note}"));
    }
    let progress = printer.progress();
    let (report, error) = up::run(&env, &progress).await;
    printer.report(&report);
    if let (Some(dir), None) = (&output_dir, &error) {
        match write_manifests(&report, dir)
            .with_context(|| format!("failed to write manifests to {}", dir.display()))
        {
            Ok(files) => printer.status(&format!(
                "wrote {} manifests to {}",
                files.len(),
                dir.display()
            )),
            Err(e) => {
                eprint!("{}", render_error(e.as_ref(), None));
                return ExitCode::from(EXIT_FAILED);
            }
        }
    }
    if let Some((step, e)) = error {
        eprintln!("step {step} failed");
        return fail(&e);
    }
    if report.dry_run || report.verified {
        ExitCode::SUCCESS
    } else {
        eprint!(
            "{}",
            render_error(&StepError::problem("verification did not pass"), None)
        );
        ExitCode::from(EXIT_FAILED)
    }
}

fn fail(e: &StepError) -> ExitCode {
    eprint!("{}", render_error(e, e.hint().as_deref()));
    ExitCode::from(EXIT_FAILED)
}
