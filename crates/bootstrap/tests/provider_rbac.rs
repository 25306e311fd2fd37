//! The provider's RBAC as `bootstrap up --dry-run --output-dir` writes it, for `--provider rust`
//! and `--provider upstream`: no Role or ClusterRole bound to the provider's service account
//! grants `create` on `serviceaccounts/token`, not even through a wildcard (upstream's own
//! check since 3.0: tokens come from the CSIDriver's `tokenRequests`), and neither does any
//! other role bootstrap renders.

mod common;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use common::cli::offline;

/// Every object of an offline `up --dry-run --output-dir` with `extra` flags.
fn rendered(extra: &[&str], values: Option<&str>) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("manifests");
    let values_file = dir.path().join("values.yaml");
    let mut args = vec![
        "up",
        "--cluster",
        "demo",
        "--dry-run",
        "-q",
        "--rotation",
        "--sync-secrets",
        "--output-dir",
        out_dir.to_str().expect("utf8"),
    ];
    if let Some(text) = values {
        std::fs::write(&values_file, text).expect("values");
        args.extend(["--values", values_file.to_str().expect("utf8")]);
    }
    args.extend(extra);
    let out = offline(&args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut docs = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("manifests written")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let many: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        docs.extend(many.into_iter().filter(|d| !d.is_null()));
    }
    docs
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether one policy rule lets its holder create service-account tokens (the `token`
/// subresource of `serviceaccounts` in the core group), wildcards included.
fn grants_token_create(rule: &Value) -> bool {
    let groups = strings(&rule["apiGroups"]);
    let resources = strings(&rule["resources"]);
    let verbs = strings(&rule["verbs"]);
    groups.iter().any(|g| g.is_empty() || *g == "*")
        && resources.iter().any(|r| {
            matches!(
                *r,
                "*" | "serviceaccounts/token" | "serviceaccounts/*" | "*/token"
            )
        })
        && verbs.iter().any(|v| *v == "create" || *v == "*")
}

fn id(kind: &str, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// The roles bound to the service account of the provider DaemonSet `ds_name`; panics when a
/// binding names a role that is not in `docs` (it could not be checked) or none is bound.
fn provider_roles<'a>(docs: &'a [Value], ds_name: &str) -> Vec<&'a Value> {
    let ds = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet" && d["metadata"]["name"] == ds_name)
        .unwrap_or_else(|| panic!("no DaemonSet {ds_name}"));
    let ns = ds["metadata"]["namespace"].as_str().expect("namespace");
    let sa = ds["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .expect("the provider runs as a named service account");
    let mut wanted = BTreeSet::new();
    for b in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding")
    {
        let binding_ns = b["metadata"]["namespace"].as_str();
        let subjects = b["subjects"].as_array().cloned().unwrap_or_default();
        let ours = subjects.iter().any(|s| {
            s["kind"] == "ServiceAccount"
                && s["name"] == sa
                && s["namespace"].as_str().or(binding_ns) == Some(ns)
        });
        if !ours {
            continue;
        }
        let kind = b["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let name = b["roleRef"]["name"].as_str().expect("roleRef.name");
        let role_ns = (kind == "Role").then_some(binding_ns).flatten();
        wanted.insert(id(kind, role_ns, name));
    }
    assert!(!wanted.is_empty(), "no role is bound to {ns}/{sa}");
    wanted
        .iter()
        .map(|w| {
            docs.iter()
                .find(|d| {
                    let kind = d["kind"].as_str().unwrap_or_default();
                    id(
                        kind,
                        d["metadata"]["namespace"].as_str(),
                        d["metadata"]["name"].as_str().unwrap_or_default(),
                    ) == *w
                })
                .unwrap_or_else(|| {
                    panic!("{ns}/{sa} is bound to {w}, which bootstrap does not render")
                })
        })
        .collect()
}

/// The roles in `roles` that let their holder create tokens, or are aggregated (their rules
/// come from elsewhere, so they cannot be proven safe).
fn offenders(roles: &[&Value]) -> Vec<String> {
    roles
        .iter()
        .filter(|r| {
            !r["aggregationRule"].is_null()
                || r["rules"]
                    .as_array()
                    .is_some_and(|rules| rules.iter().any(grants_token_create))
        })
        .map(|r| {
            format!(
                "{} {}",
                r["kind"].as_str().unwrap_or("?"),
                r["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn all_roles(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        .collect()
}

#[test]
fn neither_provider_can_create_service_account_tokens() {
    let cases: [(&str, &[&str], Option<&str>); 3] = [
        ("aws-csi-provider", &["--provider", "rust"], None),
        (
            "aws-csi-provider",
            &["--provider", "rust"],
            Some("provider:\n  regionFromNode: true\n"),
        ),
        (
            bootstrap::render::provider_upstream::UPSTREAM_NAME,
            &["--provider", "upstream"],
            None,
        ),
    ];
    for (ds, flags, values) in cases {
        let docs = rendered(flags, values);
        let roles = provider_roles(&docs, ds);
        let bad = offenders(&roles);
        assert!(bad.is_empty(), "{flags:?}: {bad:?} grant token create");
        // Nothing else bootstrap renders (the driver's roles included) may either.
        let bad = offenders(&all_roles(&docs));
        assert!(bad.is_empty(), "{flags:?}: {bad:?} grant token create");
    }
}

#[test]
fn the_check_catches_a_grant_and_every_wildcard_that_implies_it() {
    let rule =
        |g: &str, r: &str, v: &str| json!({"apiGroups": [g], "resources": [r], "verbs": [v]});
    // Every group, resource and verb that covers the grant, in every combination.
    for group in ["", "*"] {
        for resource in ["serviceaccounts/token", "serviceaccounts/*", "*/token", "*"] {
            for verb in ["create", "*"] {
                let caught = rule(group, resource, verb);
                assert!(grants_token_create(&caught), "{caught}");
            }
        }
    }
    let named = json!({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"], "resourceNames": ["one"]});
    assert!(grants_token_create(&named), "{named}");
    for fine in [
        rule("", "serviceaccounts", "get"),
        rule("", "serviceaccounts", "create"),
        rule("", "serviceaccounts/token", "get"),
        rule("apps", "serviceaccounts/token", "create"),
        rule("", "pods", "*"),
        json!({"nonResourceURLs": ["*"], "verbs": ["*"]}),
    ] {
        assert!(!grants_token_create(&fine), "{fine}");
    }

    // Planted in what bootstrap renders, a grant is found through the binding.
    let mut docs = rendered(&["--provider", "rust"], None);
    let role = docs
        .iter_mut()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "aws-csi-provider")
        .expect("the provider's ClusterRole");
    role["rules"]
        .as_array_mut()
        .expect("rules")
        .push(rule("", "serviceaccounts/*", "create"));
    assert_eq!(
        offenders(&provider_roles(&docs, "aws-csi-provider")),
        ["ClusterRole aws-csi-provider"]
    );
    // An aggregated role cannot be proven safe.
    let role = docs
        .iter_mut()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "aws-csi-provider")
        .expect("the provider's ClusterRole");
    role["rules"] = json!([]);
    role["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]});
    assert_eq!(
        offenders(&provider_roles(&docs, "aws-csi-provider")),
        ["ClusterRole aws-csi-provider"]
    );
}
