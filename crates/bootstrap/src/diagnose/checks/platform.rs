//! Platform rules: the Pod Identity agent, the Secrets Store CSI Driver, the AWS provider on
//! every driver node, and the nodes where nothing can mount.

use serde_json::{Value, json};

use super::{Check, list, shell_json};
use crate::diagnose::facts::{
    AGENT_DAEMONSET, AddonFacts, Component, DaemonSetFacts, NodeFacts, Snapshot,
};
use crate::render::csi_driver::{AWS_TOKEN_AUDIENCES, DRIVER_NAME, DRIVER_VERSION};
use bootstrap_common::names::{AGENT_ADDON, PROVIDER_ADDON};

/// The ClusterRole the driver needs to sync `secretObjects` into Kubernetes Secrets.
pub const SYNC_ROLE: &str = "secretprovidersyncing-role";
/// The agent configuration that binds only the IPv4 link-local address.
pub const IPV4_ONLY_ARGS: &str = r#"{"agent":{"additionalArgs":{"-b":"169.254.170.23"}}}"#;

fn daemonsets(s: &Snapshot, c: Component) -> Vec<&DaemonSetFacts> {
    s.daemonsets
        .as_ref()
        .map(|list| list.iter().filter(|d| d.component == c).collect())
        .unwrap_or_default()
}

fn up(s: &Snapshot) -> String {
    format!("bootstrap up --cluster {}", s.cluster)
}

/// Nodes of `nodes` without a ready pod of `ds`.
fn missing_on<'a>(nodes: &'a [NodeFacts], ds: &DaemonSetFacts) -> Vec<&'a str> {
    let ready = ds.ready_nodes();
    nodes
        .iter()
        .filter(|n| !ready.contains(&n.name.as_str()))
        .map(|n| n.name.as_str())
        .collect()
}

fn names(items: &[&str]) -> String {
    list(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

/// Whether the add-on configuration binds the agent to 169.254.170.23 only.
pub fn binds_ipv4_only(configuration: &str) -> bool {
    let parsed: Option<Value> = serde_json::from_str(configuration)
        .ok()
        .or_else(|| serde_saphyr::from_str(configuration).ok());
    match parsed {
        Some(v) => {
            v.pointer("/agent/additionalArgs/-b")
                .and_then(Value::as_str)
                == Some("169.254.170.23")
        }
        None => false,
    }
}

fn addon_status(name: &str, a: &AddonFacts, cluster: &str) -> Check {
    let subject = format!("EKS add-on {name}");
    let saw = format!("{}, version {}", a.status, a.version);
    match a.status.as_str() {
        "ACTIVE" => Check::pass("agent.addon", subject, saw),
        "CREATING" | "UPDATING" => Check::warn("agent.addon", subject, format!("{saw}: not ready yet"))
            .fix(format!("aws eks wait addon-active --cluster-name {cluster} --addon-name {name}")),
        _ => Check::fail("agent.addon", subject, saw).fix(format!(
            "aws eks describe-addon --cluster-name {cluster} --addon-name {name} --query addon.health"
        )),
    }
}

/// The agent: the add-on ACTIVE (or built into Auto Mode), its DaemonSet ready on every Linux
/// EC2 node, and the IPv4-only binding IPv6-disabled nodes need.
pub fn agent(s: &Snapshot) -> Vec<Check> {
    let subject = format!("EKS add-on {AGENT_ADDON}");
    let mut checks = Vec::new();
    let addon = match (&s.agent_addon, s.auto_mode) {
        (_, true) => {
            checks.push(Check::pass(
                "agent.addon",
                "Pod Identity agent",
                "EKS Auto Mode: the agent is built into the nodes (no add-on needed)",
            ));
            None
        }
        (Err(why), false) => {
            checks.push(Check::unread("agent.addon", subject, why));
            None
        }
        (Ok(None), false) => {
            checks.push(
                Check::fail(
                    "agent.addon",
                    subject,
                    "not installed: no pod can get Pod Identity credentials",
                )
                .fix(format!(
                    "aws eks create-addon --cluster-name {} --addon-name {AGENT_ADDON} (or {})",
                    s.cluster,
                    up(s)
                )),
            );
            None
        }
        (Ok(Some(a)), false) => {
            checks.push(addon_status(AGENT_ADDON, a, &s.cluster));
            Some(a)
        }
    };
    let ds_subject = format!("DaemonSet kube-system/{AGENT_DAEMONSET}");
    let nodes: Vec<NodeFacts> = match &s.nodes {
        Ok(nodes) => nodes.iter().filter(|n| n.linux_ec2()).cloned().collect(),
        Err(why) => {
            checks.push(Check::unread("agent.daemonset", ds_subject, why));
            return checks;
        }
    };
    if s.auto_mode && nodes.is_empty() {
        return checks;
    }
    let mut not_ready = Vec::new();
    match (&s.daemonsets, daemonsets(s, Component::Agent).first()) {
        (Err(why), _) => checks.push(Check::unread("agent.daemonset", &ds_subject, why)),
        (Ok(_), None) => checks.push(
            Check::fail("agent.daemonset", &ds_subject, "not found: the agent runs on no node")
                .fix(format!(
                    "aws eks update-addon --cluster-name {} --addon-name {AGENT_ADDON} --resolve-conflicts OVERWRITE",
                    s.cluster
                )),
        ),
        (Ok(_), Some(ds)) => {
            not_ready = missing_on(&nodes, ds);
            if not_ready.is_empty() {
                checks.push(Check::pass(
                    "agent.daemonset",
                    &ds_subject,
                    format!("ready on all {} Linux EC2 node(s)", nodes.len()),
                ));
            } else {
                checks.push(
                    Check::fail(
                        "agent.daemonset",
                        &ds_subject,
                        format!(
                            "not ready on {} of {} Linux EC2 node(s): {}; pods there get no Pod Identity credentials",
                            not_ready.len(),
                            nodes.len(),
                            names(&not_ready)
                        ),
                    )
                    .fix(format!(
                        "kubectl -n kube-system get pods -l app.kubernetes.io/name={AGENT_DAEMONSET} -o wide --field-selector spec.nodeName={}",
                        not_ready[0]
                    )),
                );
            }
        }
    }
    if let Some(a) = addon {
        checks.push(ipv6(s, a, &not_ready));
    }
    checks
}

fn ipv6(s: &Snapshot, a: &AddonFacts, not_ready: &[&str]) -> Check {
    let subject = format!("EKS add-on {AGENT_ADDON} configuration");
    if a.configuration.as_deref().is_some_and(binds_ipv4_only) {
        return Check::pass(
            "agent.ipv6",
            subject,
            "configurationValues bind the agent to 169.254.170.23 only (-b): it starts on IPv6-disabled nodes",
        );
    }
    let config = match a.configuration.as_deref() {
        Some(c) if !c.trim().is_empty() => "configurationValues do not set -b 169.254.170.23",
        _ => "no configurationValues (the agent binds 169.254.170.23 and fd00:ec2::23)",
    };
    let unobservable =
        "whether a node has IPv6 disabled is not visible through the EKS or Kubernetes APIs";
    if not_ready.is_empty() {
        return Check::pass(
            "agent.ipv6",
            subject,
            format!(
                "{config}; the agent is ready on every node, so no node lacks the IPv6 address ({unobservable})"
            ),
        );
    }
    Check::warn(
        "agent.ipv6",
        subject,
        format!(
            "{config}, and the agent is not ready on {}; if those nodes have IPv6 disabled, the agent cannot start there ({unobservable})",
            names(not_ready)
        ),
    )
    .fix(format!(
        "aws eks update-addon --cluster-name {} --addon-name {AGENT_ADDON} --configuration-values '{IPV4_ONLY_ARGS}'",
        s.cluster
    ))
}

/// Compares `vX.Y.Z` tags; `None` when either is not a version.
fn older(tag: &str, than: &str) -> Option<bool> {
    let parse = |t: &str| -> Option<Vec<u32>> {
        t.trim_start_matches('v')
            .split(['.', '-'])
            .take(3)
            .map(|p| p.parse().ok())
            .collect()
    };
    Some(parse(tag)? < parse(than)?)
}

/// The driver: its CSIDriver and DaemonSet, version, both token audiences, republish when
/// rotation is on, and the sync RBAC when a class syncs Secrets.
pub fn driver(s: &Snapshot) -> Vec<Check> {
    let mut checks = Vec::new();
    let csi_subject = format!("CSIDriver {DRIVER_NAME}");
    let csidriver = match &s.csidriver {
        Err(why) => {
            checks.push(Check::unread("driver.installed", &csi_subject, why));
            None
        }
        Ok(None) => {
            checks.push(
                Check::fail("driver.installed", &csi_subject, "not found: the Secrets Store CSI Driver is not installed, no pod can mount a SecretProviderClass")
                    .fix(up(s)),
            );
            None
        }
        Ok(Some(d)) => Some(d),
    };
    let drivers = daemonsets(s, Component::Driver);
    if let Err(why) = &s.daemonsets {
        checks.push(Check::unread(
            "driver.installed",
            "the driver's DaemonSet",
            why,
        ));
    } else if drivers.is_empty() {
        checks.push(
            Check::fail(
                "driver.installed",
                "the driver's DaemonSet",
                "no DaemonSet runs the secrets-store driver (--nodeid, --provider-volume)",
            )
            .fix(up(s)),
        );
    }
    for ds in &drivers {
        let subject = format!("DaemonSet {}", ds.reference());
        let linux: Vec<NodeFacts> = s
            .nodes
            .as_ref()
            .map(|n| {
                n.iter()
                    .filter(|n| !n.windows() && !n.fargate())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let absent = missing_on(&linux, ds);
        let version = ds.version.clone().unwrap_or_else(|| "unknown".into());
        let saw = format!(
            "image tag {version}, ready on {} node(s){}",
            ds.ready_nodes().len(),
            if csidriver.is_some() {
                format!(", with CSIDriver {DRIVER_NAME}")
            } else {
                String::new()
            }
        );
        if absent.is_empty() {
            checks.push(Check::pass("driver.installed", &subject, saw));
        } else {
            checks.push(
                Check::warn(
                    "driver.installed",
                    &subject,
                    format!(
                        "{saw}; not ready on {}: pods there cannot mount",
                        names(&absent)
                    ),
                )
                .fix(format!(
                    "kubectl -n {} describe daemonset {}",
                    ds.namespace, ds.name
                )),
            );
        }
        match older(&version, DRIVER_VERSION) {
            Some(true) => checks.push(
                Check::warn("driver.version", &subject, format!("{version} is older than {DRIVER_VERSION}, which bootstrap installs and tests"))
                    .fix(up(s)),
            ),
            _ => checks.push(Check::pass("driver.version", &subject, format!("version {version}"))),
        }
    }
    if let Some(d) = csidriver {
        let missing: Vec<&str> = AWS_TOKEN_AUDIENCES
            .iter()
            .copied()
            .filter(|a| !d.audiences.iter().any(|x| x == a))
            .collect();
        let listed = if d.audiences.is_empty() {
            "no audience".to_string()
        } else {
            d.audiences.join(", ")
        };
        if missing.is_empty() {
            checks.push(Check::pass(
                "driver.token-audiences",
                &csi_subject,
                format!("tokenRequests: {listed}"),
            ));
        } else {
            let why = missing
                .iter()
                .map(|a| match *a {
                    "pods.eks.amazonaws.com" => "no Pod Identity token reaches the provider",
                    _ => "no IRSA token reaches the provider",
                })
                .collect::<Vec<_>>()
                .join("; ");
            let patch = json!({"spec": {"tokenRequests": AWS_TOKEN_AUDIENCES.iter().map(|a| json!({"audience": a})).collect::<Vec<_>>()}});
            let fix = if d.owned {
                up(s)
            } else {
                format!(
                    "kubectl patch csidriver {DRIVER_NAME} --type=merge -p {}",
                    shell_json(&patch)
                )
            };
            checks.push(
                Check::fail(
                    "driver.token-audiences",
                    &csi_subject,
                    format!(
                        "tokenRequests: {listed}; missing {}: {why}",
                        missing.join(" and ")
                    ),
                )
                .fix(fix),
            );
        }
        checks.extend(super::rotation::checks(&s.cluster, &drivers, d));
    }
    checks.push(secret_sync(s));
    checks
}

fn secret_sync(s: &Snapshot) -> Check {
    let subject = format!("ClusterRole {SYNC_ROLE}");
    let syncing: Vec<String> = match &s.spcs {
        Ok(spcs) => spcs
            .iter()
            .filter(|c| c.secret_objects > 0)
            .filter(|c| s.namespace.as_ref().is_none_or(|ns| &c.namespace == ns))
            .map(|c| c.reference())
            .collect(),
        Err(why) => return Check::unread("driver.secret-sync", subject, why),
    };
    if syncing.is_empty() {
        return Check::pass(
            "driver.secret-sync",
            subject,
            "no SecretProviderClass syncs Kubernetes Secrets (secretObjects): not needed",
        );
    }
    match &s.sync_role {
        Err(why) => Check::unread("driver.secret-sync", subject, why),
        Ok(true) => Check::pass(
            "driver.secret-sync",
            subject,
            format!("present; used by {}", list(&syncing)),
        ),
        Ok(false) => Check::fail(
            "driver.secret-sync",
            subject,
            format!(
                "missing, but {} declare secretObjects: the driver cannot create their Secrets",
                list(&syncing)
            ),
        )
        .fix(format!("{} --sync-secrets", up(s))),
    }
}

fn kind_name(c: Component) -> &'static str {
    match c {
        Component::OurProvider => "bootstrap's Rust provider",
        Component::UpstreamProvider => "the upstream provider",
        Component::AddonProvider => "the EKS add-on's provider",
        _ => "a provider",
    }
}

/// The provider: exactly one installation, and on every node where the driver runs a ready
/// provider pod whose socket directory is one the driver searches.
pub fn provider(s: &Snapshot) -> Vec<Check> {
    let subject = "AWS provider";
    let ds: Vec<&DaemonSetFacts> = match &s.daemonsets {
        Ok(list) => list.iter().filter(|d| d.component.is_provider()).collect(),
        Err(why) => return vec![Check::unread("provider.installed", subject, why)],
    };
    let addon = match &s.provider_addon {
        Ok(a) => a.as_ref(),
        Err(why) => {
            return vec![Check::unread(
                "provider.installed",
                subject,
                &format!("EKS add-on {PROVIDER_ADDON}: {why}"),
            )];
        }
    };
    let mut installs: Vec<String> = ds
        .iter()
        .filter(|d| d.component != Component::AddonProvider || addon.is_none())
        .map(|d| format!("DaemonSet {} ({})", d.reference(), kind_name(d.component)))
        .collect();
    if let Some(a) = addon {
        installs.push(format!(
            "EKS add-on {PROVIDER_ADDON} ({}, version {})",
            a.status, a.version
        ));
    }
    let mut checks = Vec::new();
    match installs.len() {
        0 => {
            checks.push(
                Check::fail("provider.installed", subject, format!(
                    "none: no DaemonSet {} or {} and no EKS add-on {PROVIDER_ADDON}; every mount fails with \"provider not found\"",
                    crate::render::provider::PROVIDER_NAME,
                    crate::render::provider_upstream::UPSTREAM_NAME
                ))
                .fix(up(s)),
            );
            return checks;
        }
        1 => checks.push(Check::pass(
            "provider.installed",
            subject,
            format!("one: {}", installs[0]),
        )),
        _ => {
            let remove = ds
                .iter()
                .find(|d| d.component != Component::AddonProvider)
                .map(|d| format!("kubectl -n {} delete daemonset {}", d.namespace, d.name))
                .unwrap_or_else(|| {
                    format!(
                        "aws eks delete-addon --cluster-name {} --addon-name {PROVIDER_ADDON}",
                        s.cluster
                    )
                });
            checks.push(
                Check::fail("provider.installed", subject, format!(
                    "installed {} times: {}; all serve aws.sock in the same directory, so mounts reach whichever bound last",
                    installs.len(),
                    list(&installs)
                ))
                .fix(format!("keep one: {remove}")),
            );
        }
    }
    checks.extend(provider_nodes(s, &ds));
    checks
}

fn provider_nodes(s: &Snapshot, providers: &[&DaemonSetFacts]) -> Vec<Check> {
    let mut checks = Vec::new();
    for driver in daemonsets(s, Component::Driver) {
        let subject = format!("driver nodes of DaemonSet {}", driver.reference());
        // Pods left on a deleted node (until pod GC removes them) run nowhere.
        let existing: Option<Vec<&str>> = s
            .nodes
            .as_ref()
            .ok()
            .map(|n| n.iter().map(|n| n.name.as_str()).collect());
        let driver_nodes: Vec<&str> = driver
            .ready_nodes()
            .into_iter()
            .filter(|n| existing.as_ref().is_none_or(|e| e.contains(n)))
            .collect();
        if providers.is_empty() {
            checks.push(Check::warn(
                "provider.nodes",
                subject,
                "the provider's DaemonSet was not found, so its pods could not be matched to the driver's nodes",
            ));
            continue;
        }
        let mut without = Vec::new();
        let mut wrong_dir = Vec::new();
        for node in &driver_nodes {
            let here: Vec<&&DaemonSetFacts> = providers
                .iter()
                .filter(|p| p.ready_nodes().contains(node))
                .collect();
            if here.is_empty() {
                without.push(*node);
            } else if !here
                .iter()
                .any(|p| p.socket_dirs.iter().any(|d| driver.socket_dirs.contains(d)))
            {
                wrong_dir.push(*node);
            }
        }
        let first = providers[0];
        if !without.is_empty() {
            checks.push(
                Check::fail(
                    "provider.nodes",
                    &subject,
                    format!(
                        "the driver runs on {} with no ready AWS provider pod: mounts there fail with \"provider not found\"",
                        names(&without)
                    ),
                )
                .fix(format!(
                    "kubectl -n {} describe daemonset {} (compare its nodeSelector, affinity and tolerations with the labels and taints of {})",
                    first.namespace, first.name, without[0]
                )),
            );
        }
        if !wrong_dir.is_empty() {
            let provider_dirs: Vec<String> = providers
                .iter()
                .flat_map(|p| p.socket_dirs.clone())
                .collect();
            checks.push(
                Check::fail(
                    "provider.nodes",
                    &subject,
                    format!(
                        "on {} the provider creates aws.sock in {} but the driver looks in {}: mounts fail with \"provider not found\"",
                        names(&wrong_dir),
                        list(&provider_dirs),
                        list(&driver.socket_dirs)
                    ),
                )
                .fix(format!(
                    "give the provider --provider-volume={} (bootstrap: provider.providersDir in --values, then {})",
                    driver.socket_dirs.first().map(String::as_str).unwrap_or("/var/run/secrets-store-csi-providers"),
                    up(s)
                )),
            );
        }
        if without.is_empty() && wrong_dir.is_empty() {
            checks.push(Check::pass(
                "provider.nodes",
                &subject,
                format!(
                    "a ready provider pod with its socket in {} on each of the {} driver node(s)",
                    list(&first.socket_dirs),
                    driver_nodes.len()
                ),
            ));
        }
    }
    checks
}

/// Fargate and Windows nodes, and the namespaces whose pods cannot mount there.
pub fn nodes(s: &Snapshot) -> Vec<Check> {
    let subject = "nodes";
    let nodes = match &s.nodes {
        Ok(n) => n,
        Err(why) => return vec![Check::unread("nodes.compute", subject, why)],
    };
    let fargate: Vec<&str> = nodes
        .iter()
        .filter(|n| n.fargate())
        .map(|n| n.name.as_str())
        .collect();
    let windows: Vec<&str> = nodes
        .iter()
        .filter(|n| n.windows())
        .map(|n| n.name.as_str())
        .collect();
    if fargate.is_empty() && windows.is_empty() {
        return vec![Check::pass(
            "nodes.compute",
            subject,
            format!("{} node(s), none on Fargate or Windows", nodes.len()),
        )];
    }
    let pods = s.pods.as_ref().map(Vec::as_slice).unwrap_or_default();
    let stranded: Vec<String> = pods
        .iter()
        .filter(|p| {
            p.node
                .as_deref()
                .is_some_and(|n| fargate.contains(&n) || windows.contains(&n))
        })
        .map(|p| {
            format!(
                "{}/{} on {}",
                p.namespace,
                p.name,
                p.node.as_deref().unwrap_or("?")
            )
        })
        .collect();
    let namespaces_of = |on: &[&str]| -> Vec<String> {
        let mut ns: Vec<String> = pods
            .iter()
            .filter(|p| p.node.as_deref().is_some_and(|n| on.contains(&n)))
            .map(|p| p.namespace.clone())
            .collect();
        ns.sort();
        ns.dedup();
        ns
    };
    let mut parts = Vec::new();
    if !fargate.is_empty() {
        let mut ns = s.fargate_namespaces.clone().unwrap_or_default();
        ns.extend(namespaces_of(&fargate));
        ns.sort();
        ns.dedup();
        let which = whose_pods(&ns, "scheduled there");
        parts.push(format!(
            "Fargate node(s) {}: {which} cannot mount SecretProviderClass volumes (no DaemonSet, so no driver or provider, runs on Fargate)",
            names(&fargate)
        ));
    }
    if !windows.is_empty() {
        let which = whose_pods(&namespaces_of(&windows), "there");
        parts.push(format!(
            "Windows node(s) {}: {which} cannot mount through the AWS provider (it runs on Linux only)",
            names(&windows)
        ));
    }
    let saw = parts.join("; ");
    let fix = "run pods that mount secrets on Linux EC2 nodes: nodeSelector kubernetes.io/os: linux, and keep their namespaces out of Fargate profiles";
    if stranded.is_empty() {
        vec![Check::warn("nodes.compute", subject, saw).fix(fix)]
    } else {
        vec![
            Check::fail(
                "nodes.compute",
                subject,
                format!("{saw}; mounting there now: {}", list(&stranded)),
            )
            .fix(fix),
        ]
    }
}

/// Which pods a node problem strands: those of the namespaces `ns` (`place` says where),
/// or, with none known, any pod scheduled there.
fn whose_pods(ns: &[String], place: &str) -> String {
    if ns.is_empty() {
        "pods scheduled there".to_string()
    } else {
        format!("pods of namespace(s) {} {place}", list(ns))
    }
}

#[cfg(test)]
#[path = "platform_tests.rs"]
mod tests;
