//! Role selection of `down` with mock inventories: by tags, trust and association, never by a
//! name prefix; a role an association that stays still names is kept.

use crate::aws::policy::{TrustScope, pod_identity_trust};
use crate::resources::association::LiveAssociation;
use crate::resources::discover::Inventory;
use crate::resources::role::LiveRole;
use crate::resources::teardown::{Scope, Teardown, plan};
use crate::service_account::ServiceAccountRef;

fn arn(name: &str) -> String {
    format!("arn:aws:iam::1:role/{name}")
}

/// A role an earlier release made: old name, tagged managed-by + cluster, trust scoped.
fn legacy(name: &str, ns: &str, sa: &str) -> LiveRole {
    LiveRole {
        name: name.into(),
        arn: arn(name),
        owned: true,
        trust: Some(pod_identity_trust(&TrustScope {
            account: "1",
            cluster: "c",
            cluster_arn: "arn:aws:eks:r:1:cluster/c",
            namespace: ns,
            service_account: sa,
        })),
        inline_names: vec!["bootstrap-read-secrets".into()],
        ..LiveRole::default()
    }
}

fn assoc(ns: &str, sa: &str, role: &str, owned: bool) -> LiveAssociation {
    LiveAssociation {
        id: format!("a-{ns}-{sa}"),
        namespace: ns.into(),
        service_account: sa.into(),
        role_arn: arn(role),
        target_role_arn: None,
        owned,
    }
}

fn roles_deleted(t: &Teardown) -> Vec<String> {
    t.steps
        .iter()
        .filter(|(n, _)| *n == "iam-roles")
        .flat_map(|(_, c)| c.iter().map(|c| c.resource.clone()))
        .collect()
}

fn kept(t: &Teardown) -> String {
    t.kept
        .iter()
        .map(|k| format!("{}: {}", k.resource, k.note.clone().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn for_namespace(ns: &str) -> Scope {
    Scope {
        namespace: Some(ns.into()),
        ..Scope::default()
    }
}

#[test]
fn down_of_namespace_team_leaves_team_a_s_role() {
    // Earlier releases' names: team's role is a prefix of team-a's.
    let inv = Inventory {
        roles: vec![
            legacy("bootstrap-c-team-app", "team", "app"),
            legacy("bootstrap-c-team-a-app", "team-a", "app"),
        ],
        associations: vec![
            assoc("team", "app", "bootstrap-c-team-app", true),
            assoc("team-a", "app", "bootstrap-c-team-a-app", true),
        ],
        ..Inventory::default()
    };
    let t = plan(&inv, "c", &for_namespace("team"));
    assert_eq!(roles_deleted(&t), ["IAM role bootstrap-c-team-app"]);
    let t = plan(&inv, "c", &for_namespace("team-a"));
    assert_eq!(roles_deleted(&t), ["IAM role bootstrap-c-team-a-app"]);
}

#[test]
fn new_roles_are_selected_by_their_namespace_tag() {
    let tagged = |name: &str, ns: &str, sa: &str| LiveRole {
        tagged_for: Some(ServiceAccountRef::new(ns, sa)),
        trust: None,
        ..legacy(name, ns, sa)
    };
    let inv = Inventory {
        roles: vec![
            tagged("bootstrap-c.team.a-app", "team", "a-app"),
            tagged("bootstrap-c.team-a.app", "team-a", "app"),
        ],
        // The associations are already gone (an interrupted down): the tags still say.
        ..Inventory::default()
    };
    let t = plan(&inv, "c", &for_namespace("team"));
    assert_eq!(roles_deleted(&t), ["IAM role bootstrap-c.team.a-app"]);
    assert!(t.kept.is_empty(), "{}", kept(&t));
}

#[test]
fn a_role_claimed_by_another_namespace_is_kept_even_when_this_one_names_it() {
    // The collision of the previous release: both associations name one role, whose trust
    // the last writer (team-a/app) set.
    let shared = "bootstrap-c-team-a-app";
    let inv = Inventory {
        roles: vec![legacy(shared, "team-a", "app")],
        associations: vec![
            assoc("team", "a-app", shared, true),
            assoc("team-a", "app", shared, true),
        ],
        ..Inventory::default()
    };
    let t = plan(&inv, "c", &for_namespace("team"));
    assert!(roles_deleted(&t).is_empty());
    assert!(kept(&t).contains("made for team-a/app"), "{}", kept(&t));
    // team-a's own down: team's association still names it, so it stays too.
    let t = plan(&inv, "c", &for_namespace("team-a"));
    assert!(roles_deleted(&t).is_empty());
    assert!(kept(&t).contains("team/a-app"), "{}", kept(&t));
    // A full down deletes both associations, then the role.
    let t = plan(&inv, "c", &Scope::default());
    assert_eq!(roles_deleted(&t), [format!("IAM role {shared}")]);
}

#[test]
fn a_role_an_association_bootstrap_did_not_make_names_stays_unless_forced() {
    let inv = Inventory {
        roles: vec![legacy("bootstrap-c-ns-sa", "ns", "sa")],
        associations: vec![assoc("ns", "sa", "bootstrap-c-ns-sa", false)],
        ..Inventory::default()
    };
    let t = plan(&inv, "c", &Scope::default());
    assert!(roles_deleted(&t).is_empty());
    assert!(kept(&t).contains("ns/sa"), "{}", kept(&t));
    let forced = Scope {
        force: true,
        ..Scope::default()
    };
    assert_eq!(roles_deleted(&plan(&inv, "c", &forced)).len(), 1);
}

#[test]
fn a_legacy_role_that_claims_nothing_goes_by_its_association_or_stays() {
    let unscoped = LiveRole {
        trust: None,
        ..legacy("bootstrap-c-ns-sa", "ns", "sa")
    };
    let with_assoc = Inventory {
        roles: vec![unscoped.clone()],
        associations: vec![assoc("ns", "sa", "bootstrap-c-ns-sa", true)],
        ..Inventory::default()
    };
    assert_eq!(
        roles_deleted(&plan(&with_assoc, "c", &for_namespace("ns"))).len(),
        1
    );
    let alone = Inventory {
        roles: vec![unscoped],
        ..Inventory::default()
    };
    let t = plan(&alone, "c", &for_namespace("ns"));
    assert!(roles_deleted(&t).is_empty());
    assert!(kept(&t).contains("cannot tell"), "{}", kept(&t));
    assert_eq!(
        roles_deleted(&plan(&alone, "c", &Scope::default())).len(),
        1
    );
}
