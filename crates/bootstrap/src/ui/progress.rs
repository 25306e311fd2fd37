//! Live step progress: spinners on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Printer;
use crate::plan::{Progress, StepStatus};

/// Reports step starts and ends as the graph runs.
pub struct StepProgress {
    printer: Printer,
    multi: MultiProgress,
    bars: Mutex<HashMap<&'static str, ProgressBar>>,
}

impl StepProgress {
    pub fn new(printer: Printer) -> Self {
        Self {
            printer,
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

fn summary(status: &StepStatus, dry_run: bool) -> String {
    match status {
        StepStatus::Done(o) if dry_run => o.summary_action().would().to_string(),
        StepStatus::Done(o) => o.summary_action().as_str().to_string(),
        StepStatus::Failed(_) => "failed".into(),
        StepStatus::Skipped => "skipped".into(),
    }
}

impl Progress for StepProgress {
    fn started(&self, step: &'static str) {
        if self.printer.quiet {
            return;
        }
        if !self.printer.bars {
            if self.printer.verbose > 0 {
                eprintln!("  … {step}");
            }
            return;
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message(step.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(step, bar);
        }
    }

    fn finished(&self, step: &'static str, status: &StepStatus, elapsed: Duration) {
        if self.printer.quiet {
            return;
        }
        let mark = match status {
            StepStatus::Done(_) if self.printer.dry_run => "·",
            StepStatus::Done(_) => "✓",
            _ => "✗",
        };
        let line = format!(
            "{mark} {step}: {} ({:.1}s)",
            summary(status, self.printer.dry_run),
            elapsed.as_secs_f64()
        );
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(step));
        match bar {
            Some(bar) => {
                if let Ok(style) = ProgressStyle::with_template("{msg}") {
                    bar.set_style(style);
                }
                bar.finish_with_message(line);
            }
            None => eprintln!("{line}"),
        }
    }
}
