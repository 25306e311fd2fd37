//! All user-facing output: printer, progress, tables and JSON.
//!
//! Command code prints only through [`Printer`]; it never touches indicatif directly.

mod errors;
mod files;
pub mod logging;
mod progress;
mod table;

use std::io::{IsTerminal, Write};

pub use errors::render_error;
pub use files::write_manifests;
pub use progress::StepProgress;

use crate::plan::Report;

/// How much to print, and where progress goes.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub quiet: bool,
    pub verbose: u8,
    /// Draw live progress bars (stderr is a terminal and not `--no-progress`).
    pub bars: bool,
    /// Print JSON on stdout instead of text.
    pub json: bool,
    /// A dry run: progress says what would happen, never a check mark.
    pub dry_run: bool,
}

impl Printer {
    pub fn new(quiet: bool, verbose: u8, no_progress: bool, json: bool) -> Self {
        let bars = !no_progress && !quiet && std::io::stderr().is_terminal();
        Self {
            quiet,
            verbose,
            bars,
            json,
            dry_run: false,
        }
    }

    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// An error report on stderr (always printed).
    pub fn error(&self, text: &str) {
        eprint!("{text}");
    }

    /// Any serializable value as pretty JSON on stdout.
    pub fn json_value(&self, value: &impl serde::Serialize) {
        let text = serde_json::to_string_pretty(value)
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        println!("{text}");
    }

    /// A status line on stderr (not in quiet mode).
    pub fn status(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// A progress sink for the step graph.
    pub fn progress(&self) -> StepProgress {
        StepProgress::new(*self)
    }

    /// The final output on stdout: the plan (dry run) or the result table, or JSON.
    pub fn report(&self, report: &Report) {
        let mut out = std::io::stdout().lock();
        let text = if self.json {
            serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        } else if report.dry_run {
            table::plan_tree(report, self.verbose > 0 || !self.quiet)
        } else {
            table::result_table(report)
        };
        let _ = writeln!(out, "{text}");
    }
}
