//! Text renderings of a report: the dry-run plan tree and the final result table.

use std::fmt::Write;

use crate::plan::{Change, Report, StepStatus};
use crate::render::object_ref;

/// One change as a plan prints it: the verb and the resource, then its calls and its note.
pub fn write_change(out: &mut String, verb: &str, change: &Change) {
    let _ = writeln!(out, "  {verb:<13} {}", change.resource);
    for call in &change.calls {
        let _ = writeln!(out, "      → {call}");
    }
    if let Some(note) = &change.note {
        let _ = writeln!(out, "      ({note})");
    }
}

/// The plan as a tree: step → resource → calls, then every document.
pub fn plan_tree(report: &Report, show_documents: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan for EKS cluster {} in {}{}:",
        report.cluster,
        report.region,
        if report.offline {
            " (offline: an empty account is assumed)"
        } else {
            ""
        }
    );
    let mut documents = Vec::new();
    for step in &report.steps {
        match &step.status {
            StepStatus::Done(outcome) => {
                let _ = writeln!(out, "\n{}", step.name);
                for note in &outcome.notes {
                    let _ = writeln!(out, "  · {note}");
                }
                for change in &outcome.changes {
                    write_change(&mut out, change.action.would(), change);
                    if change.action.writes() {
                        documents.extend(
                            change
                                .documents
                                .iter()
                                .map(|d| (step.name, &change.resource, d)),
                        );
                    }
                }
            }
            StepStatus::Failed(e) => {
                let _ = writeln!(out, "\n{}\n  failed: {e}", step.name);
            }
            StepStatus::Skipped => {
                let _ = writeln!(out, "\n{}\n  skipped", step.name);
            }
        }
    }
    let c = report.changes;
    if c.deleted > 0 || c.kept > 0 {
        let _ = writeln!(out, "\n{} to delete, {} to keep.", c.deleted, c.kept);
    } else {
        let _ = writeln!(
            out,
            "\n{} to create, {} to update, {} unchanged.",
            c.created, c.updated, c.unchanged
        );
    }
    if show_documents && !documents.is_empty() {
        let _ = writeln!(out, "\nDocuments ({}):", documents.len());
        for (step, resource, doc) in documents {
            let title = if doc.get("kind").is_some() {
                object_ref(doc)
            } else {
                resource.clone()
            };
            let body = serde_saphyr::to_string(doc).unwrap_or_else(|_| doc.to_string());
            let _ = write!(out, "---\n# {step}: {title}\n{body}");
        }
    }
    let _ = writeln!(out, "\nDry run: no changes were applied.");
    out
}

/// The result table: step, action, resource, seconds; then the totals.
pub fn result_table(report: &Report) -> String {
    let mut rows = vec![[
        "STEP".to_string(),
        "ACTION".into(),
        "RESOURCE".into(),
        "SECONDS".into(),
    ]];
    for step in &report.steps {
        let seconds = format!("{:.1}", step.seconds);
        match &step.status {
            StepStatus::Done(outcome) if !outcome.changes.is_empty() => {
                for (i, c) in outcome.changes.iter().enumerate() {
                    let name = if i == 0 {
                        step.name.to_string()
                    } else {
                        String::new()
                    };
                    let secs = if i == 0 {
                        seconds.clone()
                    } else {
                        String::new()
                    };
                    rows.push([name, c.action.as_str().into(), c.resource.clone(), secs]);
                }
            }
            StepStatus::Done(_) => {
                rows.push([step.name.into(), "check".into(), String::new(), seconds])
            }
            StepStatus::Failed(_) => {
                rows.push([step.name.into(), "FAILED".into(), String::new(), seconds])
            }
            StepStatus::Skipped => {
                rows.push([step.name.into(), "skipped".into(), String::new(), seconds])
            }
        }
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    }
    let notes: Vec<String> = report
        .steps
        .iter()
        .filter_map(|s| s.outcome().map(|o| (s.name, o)))
        .flat_map(|(name, o)| {
            let change_notes = o
                .changes
                .iter()
                .filter(|c| !c.action.writes())
                .filter_map(|c| c.note.as_ref().map(|n| format!("{}: {n}", c.resource)));
            o.notes
                .iter()
                .cloned()
                .chain(change_notes)
                .map(move |n| format!("  · {name}: {n}"))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out, "\n{}", notes.join("\n"));
    }
    let c = report.changes;
    if c.deleted > 0 || c.kept > 0 || c.created + c.updated + c.unchanged == 0 {
        let _ = writeln!(
            out,
            "\n{} deleted, {} kept in {:.1}s",
            c.deleted, c.kept, report.seconds
        );
        return out;
    }
    let _ = writeln!(
        out,
        "\n{} created, {} updated, {} unchanged in {:.1}s; verified: {}",
        c.created,
        c.updated,
        c.unchanged,
        report.seconds,
        if report.verified { "yes" } else { "no" }
    );
    out
}
