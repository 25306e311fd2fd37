//! `--output-dir`: writes every manifest of a plan as numbered YAML files (for GitOps).

use std::path::{Path, PathBuf};

use crate::plan::{Action, Report};
use crate::render::object_ref;

/// Writes each Kubernetes manifest of the report to `dir` (whatever its action: the whole
/// install, not only what changes); returns the files written.
pub fn write_manifests(report: &Report, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let documents = report
        .steps
        .iter()
        .filter_map(|s| s.outcome().map(|o| (s.name, o)))
        .flat_map(|(step, o)| {
            // Check-only documents (the verification pod) are not part of the install.
            o.changes
                .iter()
                .filter(|c| c.action != Action::Check)
                .flat_map(move |c| c.documents.iter().map(move |d| (step, d)))
        })
        .filter(|(_, d)| d.get("apiVersion").is_some() && d.get("kind").is_some());
    for (i, (step, doc)) in documents.enumerate() {
        let slug: String = object_ref(doc)
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{:02}-{step}-{slug}.yaml", i + 1));
        let yaml = serde_saphyr::to_string(doc).map_err(std::io::Error::other)?;
        std::fs::write(&path, yaml)?;
        written.push(path);
    }
    Ok(written)
}
