use super::*;
use crate::diagnose::checks::Status;
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

/// A cluster as `bootstrap up` leaves it: two nodes, everything ready.
fn healthy() -> Snapshot {
    let mut s = Snapshot::new("demo", "us-west-2", "111122223333");
    let nodes = ["n1", "n2"];
    s.nodes = Ok(nodes.iter().map(|n| node(n)).collect());
    s.agent_addon = Ok(Some(AddonFacts {
        status: "ACTIVE".into(),
        version: "v1.3.10-eksbuild.2".into(),
        configuration: None,
    }));
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

fn find<'a>(checks: &'a [Check], name: &str) -> Vec<&'a Check> {
    checks.iter().filter(|c| c.check == name).collect()
}

fn only<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    let found = find(checks, name);
    assert_eq!(found.len(), 1, "one {name} check in {checks:#?}");
    found[0]
}

#[test]
fn a_healthy_platform_passes_every_check() {
    let s = healthy();
    let checks: Vec<Check> = [agent(&s), driver(&s), provider(&s), nodes(&s)].concat();
    let bad: Vec<&Check> = checks.iter().filter(|c| c.status != Status::Pass).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    for name in [
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
    ] {
        only(&checks, name);
    }
}

#[test]
fn the_agent_add_on_missing_failing_or_built_in() {
    let mut s = healthy();
    s.agent_addon = Ok(None);
    let c = agent(&s);
    let addon = only(&c, "agent.addon");
    assert_eq!(addon.status, Status::Fail);
    assert!(addon.fix.as_deref().is_some_and(|f| f.starts_with(
        "aws eks create-addon --cluster-name demo --addon-name eks-pod-identity-agent"
    )));
    s.agent_addon = Ok(Some(AddonFacts {
        status: "DEGRADED".into(),
        version: "v1".into(),
        configuration: None,
    }));
    assert_eq!(only(&agent(&s), "agent.addon").status, Status::Fail);
    s.agent_addon = Err("AccessDenied".into());
    let unread = only(&agent(&s), "agent.addon").clone();
    assert_eq!(unread.status, Status::Warn);
    assert!(unread.saw.contains("AccessDenied"));
    // Auto Mode: built in, whatever the add-on says.
    s.auto_mode = true;
    s.nodes = Ok(vec![NodeFacts {
        compute_type: Some("auto".into()),
        ..node("a1")
    }]);
    let c = agent(&s);
    assert_eq!(c.len(), 1, "{c:#?}");
    assert_eq!(c[0].status, Status::Pass);
    assert!(c[0].saw.contains("Auto Mode"));
}

#[test]
fn an_agent_missing_on_a_node_fails_and_points_at_ipv6_when_unconfigured() {
    let mut s = healthy();
    if let Ok(list) = s.daemonsets.as_mut() {
        list[0].pods[1].ready = false;
    }
    let c = agent(&s);
    let ds = only(&c, "agent.daemonset");
    assert_eq!(ds.status, Status::Fail);
    assert!(
        ds.saw.contains("not ready on 1 of 2") && ds.saw.contains("n2"),
        "{}",
        ds.saw
    );
    let v6 = only(&c, "agent.ipv6");
    assert_eq!(v6.status, Status::Warn);
    assert!(v6.saw.contains("not visible"), "{}", v6.saw);
    assert!(
        v6.fix
            .as_deref()
            .is_some_and(|f| f.contains(r#"{"agent":{"additionalArgs":{"-b":"169.254.170.23"}}}"#))
    );
    // Configured: the IPv6 check passes (the DaemonSet still fails).
    if let Ok(Some(a)) = s.agent_addon.as_mut() {
        a.configuration = Some(r#"{"agent": {"additionalArgs": {"-b": "169.254.170.23"}}}"#.into());
    }
    assert_eq!(only(&agent(&s), "agent.ipv6").status, Status::Pass);
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
    let aud = only(&c, "driver.token-audiences");
    assert_eq!(aud.status, Status::Fail);
    assert!(
        aud.saw.contains("missing pods.eks.amazonaws.com"),
        "{}",
        aud.saw
    );
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

    if let Ok(list) = s.daemonsets.as_mut() {
        list[1].args = vec!["--enable-secret-rotation=true".into()];
    }
    let rot = only(&driver(&s), "driver.rotation").clone();
    assert_eq!(rot.status, Status::Warn);
    assert_eq!(
        rot.fix.as_deref(),
        Some("bootstrap up --cluster demo --rotation 2m"),
        "bootstrap's CSIDriver: up again, with the driver's (default) interval"
    );

    s.spcs = Ok(vec![SpcFacts {
        namespace: "ns".into(),
        name: "sync".into(),
        provider: "aws".into(),
        secret_objects: 1,
        ..SpcFacts::default()
    }]);
    let sync = only(&driver(&s), "driver.secret-sync").clone();
    assert_eq!(sync.status, Status::Fail);
    assert!(sync.saw.contains("ns/sync"));
    assert_eq!(
        sync.fix.as_deref(),
        Some("bootstrap up --cluster demo --sync-secrets")
    );
    s.sync_role = Ok(true);
    assert_eq!(only(&driver(&s), "driver.secret-sync").status, Status::Pass);

    s.csidriver = Ok(None);
    if let Ok(list) = s.daemonsets.as_mut() {
        list.retain(|d| d.component != Component::Driver);
    }
    let c = driver(&s);
    let installed = find(&c, "driver.installed");
    assert_eq!(installed.len(), 2);
    assert!(installed.iter().all(|c| c.status == Status::Fail));
}

#[test]
fn an_old_driver_is_a_warning() {
    let mut s = healthy();
    if let Ok(list) = s.daemonsets.as_mut() {
        list[1].version = Some("v1.4.1".into());
    }
    assert_eq!(only(&driver(&s), "driver.version").status, Status::Warn);
    assert_eq!(older("v1.10.0", "v1.6.0"), Some(false));
    assert_eq!(older("latest", "v1.6.0"), None);
}

#[test]
fn the_provider_must_be_installed_once() {
    let mut s = healthy();
    s.provider_addon = Ok(Some(AddonFacts {
        status: "ACTIVE".into(),
        version: "v2.1.1-eksbuild.1".into(),
        configuration: None,
    }));
    let c = provider(&s);
    let twice = only(&c, "provider.installed");
    assert_eq!(twice.status, Status::Fail);
    assert!(twice.saw.contains("installed 2 times"), "{}", twice.saw);
    assert_eq!(
        twice.fix.as_deref(),
        Some("keep one: kubectl -n kube-system delete daemonset aws-csi-provider")
    );

    if let Ok(list) = s.daemonsets.as_mut() {
        list.push(ds(
            "csi-secrets-store-provider-aws",
            "kube-system",
            Component::UpstreamProvider,
            &["n1", "n2"],
            &[DIR],
        ));
    }
    assert!(
        only(&provider(&s), "provider.installed")
            .saw
            .contains("installed 3 times")
    );

    // The add-on's own DaemonSet counts as the add-on, not a second install.
    s.provider_addon = Ok(Some(AddonFacts::default()));
    if let Ok(list) = s.daemonsets.as_mut() {
        list.retain(|d| !d.component.is_provider());
        list.push(ds(
            "secrets-store-csi-driver-provider-aws",
            "kube-system",
            Component::AddonProvider,
            &["n1", "n2"],
            &[DIR],
        ));
    }
    assert_eq!(
        only(&provider(&s), "provider.installed").status,
        Status::Pass
    );

    s.provider_addon = Ok(None);
    if let Ok(list) = s.daemonsets.as_mut() {
        list.retain(|d| !d.component.is_provider());
    }
    let none = provider(&s);
    assert_eq!(none.len(), 1);
    assert_eq!(none[0].status, Status::Fail);
    assert!(none[0].saw.contains("provider not found"));
}

#[test]
fn every_driver_node_needs_a_provider_pod_in_the_same_directory() {
    let mut s = healthy();
    if let Ok(list) = s.daemonsets.as_mut() {
        list[1].pods.push(PodOnNode {
            name: "d-n3".into(),
            node: Some("n3".into()),
            ready: true,
        });
    }
    assert_eq!(
        only(&provider(&s), "provider.nodes").status,
        Status::Pass,
        "a pod left on a deleted node runs nowhere"
    );
    if let Ok(n) = s.nodes.as_mut() {
        n.push(node("n3"));
    }
    let c = provider(&s);
    let nodes = only(&c, "provider.nodes");
    assert_eq!(nodes.status, Status::Fail);
    assert!(
        nodes
            .saw
            .contains("runs on n3 with no ready AWS provider pod"),
        "{}",
        nodes.saw
    );
    assert!(
        nodes
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("describe daemonset aws-csi-provider") && f.contains("n3"))
    );

    let mut s = healthy();
    if let Ok(list) = s.daemonsets.as_mut() {
        list[2].socket_dirs = vec!["/run/elsewhere".into()];
    }
    let wrong = only(&provider(&s), "provider.nodes").clone();
    assert_eq!(wrong.status, Status::Fail);
    assert!(
        wrong.saw.contains("creates aws.sock in /run/elsewhere"),
        "{}",
        wrong.saw
    );
    assert!(
        wrong
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("--provider-volume=/var/run/secrets-store-csi-providers"))
    );
}

#[test]
fn fargate_and_windows_nodes_are_named_with_their_namespaces() {
    let mut s = healthy();
    if let Ok(n) = s.nodes.as_mut() {
        n.push(NodeFacts {
            compute_type: Some("fargate".into()),
            ..node("fargate-ip-1")
        });
        n.push(NodeFacts {
            os: "windows".into(),
            ..node("win-1")
        });
    }
    s.fargate_namespaces = Ok(vec!["serverless".into()]);
    let c = nodes(&s);
    assert_eq!(c[0].status, Status::Warn);
    assert!(
        c[0].saw.contains("Fargate node(s) fargate-ip-1") && c[0].saw.contains("serverless"),
        "{}",
        c[0].saw
    );
    assert!(c[0].saw.contains("Windows node(s) win-1"), "{}", c[0].saw);
    s.pods = Ok(vec![WorkloadPod {
        namespace: "web".into(),
        name: "app".into(),
        service_account: "sa".into(),
        spcs: vec!["db".into()],
        node: Some("win-1".into()),
    }]);
    let c = nodes(&s);
    assert_eq!(c[0].status, Status::Fail);
    assert!(c[0].saw.contains("web/app on win-1"), "{}", c[0].saw);
    // The agent only counts Linux EC2 nodes.
    assert_eq!(only(&agent(&s), "agent.daemonset").status, Status::Pass);
}
