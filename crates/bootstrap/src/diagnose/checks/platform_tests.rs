use super::*;
use crate::diagnose::checks::Status::{Fail, Pass, Warn};
use crate::diagnose::checks::test_support::{
    all_pass_once, assert_fix, assert_saw, expect, find, fix, only,
};
use crate::diagnose::facts::{CsiDriverFacts, PodOnNode, SpcFacts, WorkloadPod};

const DIR: &str = "/var/run/secrets-store-csi-providers";

fn node(name: &str) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        os: "linux".into(),
        compute_type: None,
    }
}

fn ds(name: &str, ns: &str, component: Component, nodes: &[&str], dirs: &[&str]) -> DaemonSetFacts {
    DaemonSetFacts {
        namespace: ns.into(),
        name: name.into(),
        component,
        version: (component == Component::Driver).then(|| "v1.6.0".into()),
        args: Vec::new(),
        socket_dirs: dirs.iter().map(|d| d.to_string()).collect(),
        pods: nodes
            .iter()
            .map(|n| PodOnNode {
                name: format!("{name}-{n}"),
                node: Some(n.to_string()),
                ready: true,
            })
            .collect(),
    }
}

fn addon(status: &str, version: &str) -> AddonFacts {
    AddonFacts {
        status: status.into(),
        version: version.into(),
        configuration: None,
    }
}

/// The DaemonSets read, which every test here has read.
fn daemonsets(s: &mut Snapshot) -> &mut Vec<DaemonSetFacts> {
    s.daemonsets.as_mut().expect("the DaemonSets were read")
}

/// The nodes read, which every test here has read.
fn nodes_of(s: &mut Snapshot) -> &mut Vec<NodeFacts> {
    s.nodes.as_mut().expect("the nodes were read")
}

/// A cluster as `bootstrap up` leaves it: two nodes, everything ready.
fn healthy() -> Snapshot {
    let mut s = Snapshot::new("demo", "us-west-2", "111122223333");
    let nodes = ["n1", "n2"];
    s.nodes = Ok(nodes.iter().map(|n| node(n)).collect());
    s.agent_addon = Ok(Some(addon("ACTIVE", "v1.3.10-eksbuild.2")));
    s.daemonsets = Ok(vec![
        ds(
            AGENT_DAEMONSET,
            "kube-system",
            Component::Agent,
            &nodes,
            &[],
        ),
        ds(
            "secrets-store-csi-driver",
            "kube-system",
            Component::Driver,
            &nodes,
            &[DIR, "/etc/kubernetes/secrets-store-csi-providers"],
        ),
        ds(
            "aws-csi-provider",
            "kube-system",
            Component::OurProvider,
            &nodes,
            &[DIR],
        ),
    ]);
    s.csidriver = Ok(Some(CsiDriverFacts {
        audiences: vec!["sts.amazonaws.com".into(), "pods.eks.amazonaws.com".into()],
        requires_republish: false,
        owned: true,
    }));
    s
}

#[test]
fn a_healthy_platform_passes_every_check() {
    let s = healthy();
    let checks: Vec<Check> = [agent(&s), driver(&s), provider(&s), nodes(&s)].concat();
    all_pass_once(
        &checks,
        &[
            "agent.addon",
            "agent.daemonset",
            "agent.ipv6",
            "driver.installed",
            "driver.version",
            "driver.token-audiences",
            "driver.rotation",
            "driver.secret-sync",
            "provider.installed",
            "provider.nodes",
            "nodes.compute",
        ],
    );
}

#[test]
fn the_agent_add_on_missing_failing_or_built_in() {
    let mut s = healthy();
    s.agent_addon = Ok(None);
    let c = agent(&s);
    let missing = expect(&c, "agent.addon", Fail);
    assert!(fix(missing).starts_with(
        "aws eks create-addon --cluster-name demo --addon-name eks-pod-identity-agent"
    ));
    s.agent_addon = Ok(Some(addon("DEGRADED", "v1")));
    expect(&agent(&s), "agent.addon", Fail);
    s.agent_addon = Err("AccessDenied".into());
    assert_saw(expect(&agent(&s), "agent.addon", Warn), &["AccessDenied"]);
    // Auto Mode: built in, whatever the add-on says.
    s.auto_mode = true;
    s.nodes = Ok(vec![NodeFacts {
        compute_type: Some("auto".into()),
        ..node("a1")
    }]);
    let c = agent(&s);
    assert_eq!(c.len(), 1, "{c:#?}");
    assert_eq!(c[0].status, Pass);
    assert!(c[0].saw.contains("Auto Mode"));
}

#[test]
fn an_agent_missing_on_a_node_fails_and_points_at_ipv6_when_unconfigured() {
    let mut s = healthy();
    daemonsets(&mut s)[0].pods[1].ready = false;
    let c = agent(&s);
    assert_saw(
        expect(&c, "agent.daemonset", Fail),
        &["not ready on 1 of 2", "n2"],
    );
    let v6 = expect(&c, "agent.ipv6", Warn);
    assert_saw(v6, &["not visible"]);
    assert_fix(
        v6,
        &[r#"{"agent":{"additionalArgs":{"-b":"169.254.170.23"}}}"#],
    );
    // Configured: the IPv6 check passes (the DaemonSet still fails).
    if let Ok(Some(a)) = s.agent_addon.as_mut() {
        a.configuration = Some(r#"{"agent": {"additionalArgs": {"-b": "169.254.170.23"}}}"#.into());
    }
    expect(&agent(&s), "agent.ipv6", Pass);
    assert!(binds_ipv4_only(
        "agent:\n  additionalArgs:\n    -b: 169.254.170.23\n"
    ));
    assert!(!binds_ipv4_only(
        r#"{"agent":{"additionalArgs":{"-b":"0.0.0.0"}}}"#
    ));
}

#[test]
fn the_driver_needs_both_audiences_republish_with_rotation_and_sync_rbac() {
    let mut s = healthy();
    if let Ok(Some(d)) = s.csidriver.as_mut() {
        d.audiences = vec!["sts.amazonaws.com".into()];
        d.owned = false;
    }
    let c = driver(&s);
    let aud = expect(&c, "driver.token-audiences", Fail);
    assert_saw(aud, &["missing pods.eks.amazonaws.com"]);
    assert_eq!(
        aud.fix.as_deref(),
        Some(
            r#"kubectl patch csidriver secrets-store.csi.k8s.io --type=merge -p '{"spec":{"tokenRequests":[{"audience":"sts.amazonaws.com"},{"audience":"pods.eks.amazonaws.com"}]}}'"#
        )
    );
    if let Ok(Some(d)) = s.csidriver.as_mut() {
        d.owned = true;
    }
    assert_eq!(
        only(&driver(&s), "driver.token-audiences").fix.as_deref(),
        Some("bootstrap up --cluster demo")
    );

    daemonsets(&mut s)[1].args = vec!["--enable-secret-rotation=true".into()];
    let c = driver(&s);
    assert_eq!(
        fix(expect(&c, "driver.rotation", Warn)),
        "bootstrap up --cluster demo --rotation 2m",
        "bootstrap's CSIDriver: up again, with the driver's (default) interval"
    );

    s.spcs = Ok(vec![SpcFacts {
        namespace: "ns".into(),
        name: "sync".into(),
        provider: "aws".into(),
        secret_objects: 1,
        ..SpcFacts::default()
    }]);
    let c = driver(&s);
    let sync = expect(&c, "driver.secret-sync", Fail);
    assert_saw(sync, &["ns/sync"]);
    assert_eq!(fix(sync), "bootstrap up --cluster demo --sync-secrets");
    s.sync_role = Ok(true);
    expect(&driver(&s), "driver.secret-sync", Pass);

    s.csidriver = Ok(None);
    daemonsets(&mut s).retain(|d| d.component != Component::Driver);
    let c = driver(&s);
    let installed = find(&c, "driver.installed");
    assert_eq!(installed.len(), 2);
    assert!(installed.iter().all(|c| c.status == Fail));
}

#[test]
fn an_old_driver_is_a_warning() {
    let mut s = healthy();
    daemonsets(&mut s)[1].version = Some("v1.4.1".into());
    expect(&driver(&s), "driver.version", Warn);
    assert_eq!(older("v1.10.0", "v1.6.0"), Some(false));
    assert_eq!(older("latest", "v1.6.0"), None);
}

#[test]
fn the_provider_must_be_installed_once() {
    let mut s = healthy();
    s.provider_addon = Ok(Some(addon("ACTIVE", "v2.1.1-eksbuild.1")));
    let c = provider(&s);
    let twice = expect(&c, "provider.installed", Fail);
    assert_saw(twice, &["installed 2 times"]);
    assert_eq!(
        fix(twice),
        "keep one: kubectl -n kube-system delete daemonset aws-csi-provider"
    );

    daemonsets(&mut s).push(ds(
        "csi-secrets-store-provider-aws",
        "kube-system",
        Component::UpstreamProvider,
        &["n1", "n2"],
        &[DIR],
    ));
    let c = provider(&s);
    assert!(
        only(&c, "provider.installed")
            .saw
            .contains("installed 3 times")
    );

    // The add-on's own DaemonSet counts as the add-on, not a second install.
    s.provider_addon = Ok(Some(AddonFacts::default()));
    let list = daemonsets(&mut s);
    list.retain(|d| !d.component.is_provider());
    list.push(ds(
        "secrets-store-csi-driver-provider-aws",
        "kube-system",
        Component::AddonProvider,
        &["n1", "n2"],
        &[DIR],
    ));
    expect(&provider(&s), "provider.installed", Pass);

    s.provider_addon = Ok(None);
    daemonsets(&mut s).retain(|d| !d.component.is_provider());
    let none = provider(&s);
    assert_eq!(none.len(), 1);
    assert_eq!(none[0].status, Fail);
    assert!(none[0].saw.contains("provider not found"));
}

#[test]
fn every_driver_node_needs_a_provider_pod_in_the_same_directory() {
    let mut s = healthy();
    daemonsets(&mut s)[1].pods.push(PodOnNode {
        name: "d-n3".into(),
        node: Some("n3".into()),
        ready: true,
    });
    // A pod left on a deleted node runs nowhere.
    expect(&provider(&s), "provider.nodes", Pass);
    nodes_of(&mut s).push(node("n3"));
    let c = provider(&s);
    let missing = expect(&c, "provider.nodes", Fail);
    assert_saw(missing, &["runs on n3 with no ready AWS provider pod"]);
    assert_fix(missing, &["describe daemonset aws-csi-provider", "n3"]);

    let mut s = healthy();
    daemonsets(&mut s)[2].socket_dirs = vec!["/run/elsewhere".into()];
    let c = provider(&s);
    let wrong = expect(&c, "provider.nodes", Fail);
    assert_saw(wrong, &["creates aws.sock in /run/elsewhere"]);
    assert_fix(
        wrong,
        &["--provider-volume=/var/run/secrets-store-csi-providers"],
    );
}

#[test]
fn fargate_and_windows_nodes_are_named_with_their_namespaces() {
    let mut s = healthy();
    nodes_of(&mut s).extend([
        NodeFacts {
            compute_type: Some("fargate".into()),
            ..node("fargate-ip-1")
        },
        NodeFacts {
            os: "windows".into(),
            ..node("win-1")
        },
    ]);
    s.fargate_namespaces = Ok(vec!["serverless".into()]);
    assert_saw(
        expect(&nodes(&s), "nodes.compute", Warn),
        &[
            "Fargate node(s) fargate-ip-1",
            "serverless",
            "Windows node(s) win-1",
        ],
    );
    s.pods = Ok(vec![WorkloadPod {
        namespace: "web".into(),
        name: "app".into(),
        service_account: "sa".into(),
        spcs: vec!["db".into()],
        node: Some("win-1".into()),
    }]);
    assert_saw(
        expect(&nodes(&s), "nodes.compute", Fail),
        &["web/app on win-1"],
    );
    // The agent only counts Linux EC2 nodes.
    expect(&agent(&s), "agent.daemonset", Pass);
}
