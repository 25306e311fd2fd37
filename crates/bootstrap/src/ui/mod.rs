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
pub use table::write_change;

use crate::plan::Report;

/// Removes `documents` from every change (an object with an `action`) that writes nothing: a
/// no-op run's report names what it checked without repeating every manifest it rendered.
fn drop_unwritten_documents(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let writes = map
                .get("action")
                .and_then(|a| a.as_str())
                .map(|a| matches!(a, "create" | "update" | "replace" | "delete"));
            if writes == Some(false) {
                map.remove("documents");
            }
            map.values_mut().for_each(drop_unwritten_documents);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_unwritten_documents),
        _ => {}
    }
}

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
    /// JSON keeps the documents of changes that write nothing (`--show-manifests`).
    pub show_manifests: bool,
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
            show_manifests: false,
        }
    }

    pub fn with_show_manifests(mut self, show: bool) -> Self {
        self.show_manifests = show;
        self
    }

    /// `value` as pretty JSON: the documents only of changes that write, unless asked for all.
    fn json_text(&self, value: &impl serde::Serialize) -> String {
        let mut value = match serde_json::to_value(value) {
            Ok(v) => v,
            Err(e) => return format!("{{\"error\":\"{e}\"}}"),
        };
        if !self.show_manifests {
            drop_unwritten_documents(&mut value);
        }
        serde_json::to_string_pretty(&value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
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
        println!("{}", self.json_text(value));
    }

    /// Final text output on stdout (a result table, a plan, a reference to paste).
    pub fn text(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{text}");
    }

    /// A question on stderr, printed even in quiet mode (the answer is awaited).
    pub fn ask(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{text}");
        let _ = err.flush();
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
            self.json_text(report)
        } else if report.dry_run {
            table::plan_tree(report, self.verbose > 0 || !self.quiet)
        } else {
            table::result_table(report)
        };
        let _ = writeln!(out, "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Change, StepOutcome};

    #[test]
    fn json_keeps_documents_of_writes_only_unless_asked() {
        let doc = serde_json::json!({"kind": "CustomResourceDefinition"});
        let outcome = StepOutcome::with(vec![
            Change::new(Action::Unchanged, "crd").document(doc.clone()),
            Change::new(Action::Create, "ns").document(doc.clone()),
        ]);
        let printer = Printer::new(true, 0, true, true);
        let text = printer.json_text(&outcome);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert!(v["changes"][0].get("documents").is_none(), "{v:#}");
        assert_eq!(v["changes"][1]["documents"][0], doc);
        let all = printer.with_show_manifests(true).json_text(&outcome);
        let v: serde_json::Value = serde_json::from_str(&all).expect("json");
        assert_eq!(v["changes"][0]["documents"][0], doc);
    }
}
