//! Every object in examples/gitops passes the apiserver's strict validation (a server-side dry
//! run, `fieldValidation=Strict`: nothing is stored) against the CRD of its kind — ours as
//! `controller --print-crds` prints them, and Argo CD's and Flux's own, as those projects ship
//! them in their Go modules at the versions tests/env/versions.sh pins
//! (`tests/env/build.sh gitops-crds` copies them into the environment's cache) — and the same
//! object with one field misspelt is refused, naming the field.

use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

use crate::common;

const MANAGER: &str = "gitops-example-check";

/// The upstream CRDs of the Argo CD and Flux kinds in examples/gitops, from the directory
/// `tests/env/build.sh gitops-crds` prints (a warm cache makes it a no-op; a cold one fetches
/// the modules from the Go module proxy in seconds).
pub fn upstream_crds() -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/env/build.sh");
    let out = Command::new("bash")
        .args([script, "gitops-crds"])
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/env/build.sh gitops-crds");
    assert!(
        out.status.success(),
        "tests/env/build.sh gitops-crds failed"
    );
    let stdout = String::from_utf8(out.stdout).expect("a path");
    let dir = stdout.lines().last().expect("the CRDs' directory").trim();
    let mut crds = Vec::new();
    for file in yaml_files(std::path::Path::new(dir)) {
        for doc in documents(&file) {
            if doc["kind"] == "CustomResourceDefinition" {
                crds.push(doc);
            }
        }
    }
    assert!(crds.len() >= 3, "the upstream CRDs in {dir}");
    crds
}

/// Applies `crds` (registered with `cleanup` first, so that they go when the test ends, passed
/// or not) and waits until each is Established. A copy an earlier run's cleanup left
/// terminating is waited out first, so the CRD applied is a live one.
pub async fn install(kube: &kube::Client, cleanup: &mut common::cleanup::Cleanup, crds: &[Value]) {
    let api: Api<CustomResourceDefinition> = Api::all(kube.clone());
    for crd in crds {
        let name = crd["metadata"]["name"]
            .as_str()
            .expect("CRD name")
            .to_string();
        cleanup.cluster_objects.push((
            "apiextensions.k8s.io/v1".into(),
            "CustomResourceDefinition".into(),
            "customresourcedefinitions".into(),
            name.clone(),
        ));
        common::eventually(&format!("{name} not terminating"), 60, || async {
            match api.get_opt(&name).await {
                Ok(Some(c)) if c.metadata.deletion_timestamp.is_some() => None,
                Ok(_) => Some(()),
                Err(_) => None,
            }
        })
        .await;
    }
    common::apply_all(kube, MANAGER, crds).await;
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().expect("CRD name");
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established after 60s"))
        .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
    }
}

/// Strict dry-run applies every object of every YAML file under examples/gitops, each in `ns`
/// (its `metadata.namespace` rewritten: argocd and flux-system need not exist), resolving its
/// kind through `crds` — an object of a kind no CRD there defines fails the test. Then the same
/// object with one field misspelt must be refused with the field named. Returns how many
/// objects were tried.
pub async fn are_valid(kube: &kube::Client, ns: &str, crds: &[Value]) -> usize {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/gitops");
    let params = PatchParams::apply(MANAGER).dry_run().validation_strict();
    let mut tried = 0;
    for file in yaml_files(std::path::Path::new(dir)) {
        let shown = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        for mut doc in documents(&file) {
            let kind = doc["kind"].as_str().expect("kind").to_string();
            let name = doc["metadata"]["name"].as_str().expect("name").to_string();
            let (ar, namespaced) = resource_of(&doc, crds)
                .unwrap_or_else(|| panic!("{shown}: no CRD here defines {kind}"));
            let api: Api<DynamicObject> = if namespaced {
                doc["metadata"]["namespace"] = json!(ns);
                Api::namespaced_with(kube.clone(), ns, &ar)
            } else {
                Api::all_with(kube.clone(), &ar)
            };
            api.patch(&name, &params, &Patch::Apply(&doc))
                .await
                .unwrap_or_else(|e| panic!("{shown}: {kind} {name} refused: {e}"));
            let (path, misspelt) = misspell(&mut doc)
                .unwrap_or_else(|| panic!("{shown}: {kind} {name} has no spec field to misspell"));
            let refused = api
                .patch(&name, &params, &Patch::Apply(&doc))
                .await
                .expect_err(&format!(
                    "{shown}: {kind} {name} with {path} misspelt accepted"
                ));
            let why = refused.to_string();
            assert!(
                why.contains(&misspelt),
                "{shown}: {kind} {name} with {path} misspelt refused without naming it: {why}"
            );
            eprintln!(
                "gitops example {shown}: {kind} {name} accepted by a strict dry run against {}; \
                 with {path} misspelt {misspelt:?}, refused: {why}",
                ar.api_version
            );
            tried += 1;
        }
    }
    tried
}

/// The YAML files under `dir`, recursively, in a stable order.
fn yaml_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn documents(file: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The resource of `obj`'s kind as one of `crds` serves it at `obj`'s version, and whether it
/// is namespaced.
fn resource_of(obj: &Value, crds: &[Value]) -> Option<(ApiResource, bool)> {
    let (group, version) = obj["apiVersion"].as_str()?.split_once('/')?;
    let kind = obj["kind"].as_str()?;
    let crd = crds.iter().find(|c| {
        c["spec"]["group"] == group
            && c["spec"]["names"]["kind"] == kind
            && c["spec"]["versions"].as_array().is_some_and(|vs| {
                vs.iter()
                    .any(|v| v["name"] == version && v["served"] == true)
            })
    })?;
    let plural = crd["spec"]["names"]["plural"].as_str()?;
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Some((
        ApiResource::from_gvk_with_plural(&gvk, plural),
        crd["spec"]["scope"] == "Namespaced",
    ))
}

/// Misspells one field of `obj` as people do, two letters swapped: the last key of `spec`,
/// followed down through nested objects to the last key of the innermost one (so that what
/// is misspelt is a field a schema declares, not a free-form map key, in these examples).
/// Returns the field's path and its misspelt name.
fn misspell(obj: &mut Value) -> Option<(String, String)> {
    let mut path = String::from("spec");
    let mut at = obj.get_mut("spec")?.as_object_mut()?;
    loop {
        let key = at.keys().next_back()?.clone();
        if at[&key].as_object().is_some_and(|o| !o.is_empty()) {
            path = format!("{path}.{key}");
            at = at.get_mut(&key)?.as_object_mut()?;
            continue;
        }
        let mut chars: Vec<char> = key.chars().collect();
        let n = chars.len();
        if n < 3 || chars[n - 3] == chars[n - 2] {
            return None;
        }
        chars.swap(n - 3, n - 2);
        let misspelt: String = chars.into_iter().collect();
        let value = at.remove(&key)?;
        at.insert(misspelt.clone(), value);
        return Some((format!("{path}.{key}"), misspelt));
    }
}
