//! The crate's architecture as a test: the graph of top-level modules (`aws`, `commands`,
//! `resources`, …) drawn from the `crate::` paths of the product's code has no cycle, and
//! `diagnose` makes no AWS or Kubernetes call. Test code (`*_tests.rs` files and the inline
//! `mod tests` at the end of a file) is left out: a test may compose the layers above the
//! module it tests.
//!
//! `MODULE_GRAPH_SRC` points the checks at another source tree (e.g. an older commit's
//! `crates/bootstrap/src`, to see them fail on it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `from` → `to` → where (`file:line`).
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn source_root() -> PathBuf {
    std::env::var_os("MODULE_GRAPH_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the source directory")
        .map(|e| e.expect("read a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules: `src/x.rs` and `src/x/` (not the crate roots).
fn top_level_modules(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root)
        .expect("read src")
        .map(|e| e.expect("read an entry").path())
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_string();
            let module = p.is_dir() || p.extension().is_some_and(|e| e == "rs");
            (module && !stem.ends_with("_tests") && stem != "lib" && stem != "main").then_some(stem)
        })
        .collect()
}

/// The product's lines of a file, numbered from 1: comments blanked, and nothing from an
/// inline `#[cfg(test)] mod … {` on.
fn product_lines(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]" {
            let next = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.starts_with("#["))
                .unwrap_or_default();
            if next.starts_with("mod ") && next.ends_with('{') {
                break;
            }
        }
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        kept.push((i + 1, code.to_string()));
    }
    kept
}

/// The first segment of each path after a `crate::` in `code` (`crate::{a::X, b}` gives both).
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `bootstrap_crate::…`, not this crate
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Items of the group: split at the commas of depth 0.
            let mut depth = 0usize;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        item.push(c);
                    }
                    '}' if depth == 0 => break,
                    '}' => {
                        depth -= 1;
                        item.push(c);
                    }
                    ',' if depth == 0 => {
                        found.push(ident(&item));
                        item.clear();
                    }
                    c => item.push(c),
                }
            }
            found.push(ident(&item));
        } else {
            found.push(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

fn graph(root: &Path) -> Graph {
    let modules = top_level_modules(root);
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut g = Graph::new();
    for file in files {
        let rel = file.strip_prefix(root).expect("under src");
        let Some(first) = rel.iter().next().and_then(|s| s.to_str()) else {
            continue;
        };
        let from = first.trim_end_matches(".rs").to_string();
        let name = rel.file_name().and_then(|s| s.to_str()).unwrap_or_default();
        if !modules.contains(&from) || name.ends_with("_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        // A `use crate::{…}` over several lines is read whole, under its first line.
        let mut pending: Option<(usize, String)> = None;
        for (number, code) in product_lines(&text) {
            let (first, statement) = match pending.take() {
                Some((first, mut so_far)) => {
                    so_far.push_str(&code);
                    (first, so_far)
                }
                None => (number, code),
            };
            if statement.matches('{').count() > statement.matches('}').count()
                && statement.contains("crate::{")
            {
                pending = Some((first, statement));
                continue;
            }
            for to in crate_paths(&statement) {
                if to != from && modules.contains(&to) {
                    g.entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_default()
                        .push(format!("{}:{first}", rel.display()));
                }
            }
        }
    }
    g
}

/// Every cycle of the graph, each once, as its modules in order (first repeated at the end).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    fn walk(
        g: &Graph,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle: Vec<String> = path[at..].to_vec();
            // One spelling per cycle: start at its smallest module.
            let min = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, n)| n.as_str())
                .map_or(0, |(i, _)| i);
            cycle.rotate_left(min);
            cycle.push(cycle[0].clone());
            found.insert(cycle);
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_string());
        for next in g.get(node).into_iter().flat_map(BTreeMap::keys) {
            walk(g, next, path, done, found);
        }
        path.pop();
    }
    let mut found = BTreeSet::new();
    let mut done = BTreeSet::new();
    for node in g.keys() {
        walk(g, node, &mut Vec::new(), &mut done, &mut found);
        done.insert(node.clone());
    }
    found.into_iter().collect()
}

fn describe(g: &Graph, cycle: &[String]) -> String {
    cycle
        .windows(2)
        .map(|pair| {
            let at = &g[&pair[0]][&pair[1]];
            format!("{} -> {} ({})", pair[0], pair[1], at.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n    ")
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let root = source_root();
    let g = graph(&root);
    assert!(
        g.contains_key("commands") && g.contains_key("resources"),
        "no imports read from {}: {g:?}",
        root.display()
    );
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "import cycles between the top-level modules of {}:\n  {}",
        root.display(),
        found
            .iter()
            .map(|c| format!("{}:\n    {}", c.join(" -> "), describe(&g, c)))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

#[test]
fn diagnose_makes_no_aws_or_kubernetes_call() {
    let root = source_root().join("diagnose");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let network = [
        "aws_sdk_",
        "aws::Clients",
        "kube::Client",
        "kube::Api",
        "Api<",
        ".send()",
        ".await",
    ];
    let mut calls = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        for (number, code) in product_lines(&text) {
            if let Some(word) = network.iter().find(|w| code.contains(*w)) {
                calls.push(format!("{}:{number}: {word}", file.display()));
            }
        }
    }
    assert!(
        calls.is_empty(),
        "diagnose must be pure (facts in, findings out):\n{}",
        calls.join("\n")
    );
}

#[test]
fn the_checks_see_cycles_and_grouped_imports() {
    assert_eq!(
        crate_paths("use crate::{aws::Clients, plan::{Op, Change}, self};"),
        ["aws", "plan"]
    );
    assert_eq!(
        crate_paths("let x = crate::render::names::is_dns_label(crate::kube::X);"),
        ["render", "kube"]
    );
    assert!(crate_paths("use bootstrap_crate::x;").is_empty());
    let edge = |a: &str, b: &str| (a.to_string(), b.to_string());
    let mut g = Graph::new();
    for (a, b) in [
        edge("cli", "config"),
        edge("config", "teams"),
        edge("teams", "config"),
        edge("commands", "config"),
    ] {
        g.entry(a).or_default().insert(b, vec!["x.rs:1".into()]);
    }
    assert_eq!(cycles(&g), [["config", "teams", "config"]]);
    g.get_mut("teams").expect("teams").clear();
    assert!(cycles(&g).is_empty());
    let lines = product_lines(
        "use crate::a; // crate::b\n/// crate::c\n#[cfg(test)]\nmod tests {\nuse crate::d;\n}\n",
    );
    let code: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(code, ["use crate::a; ", ""]);
}
