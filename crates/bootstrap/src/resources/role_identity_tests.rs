//! Unit tests of role naming (injective, valid for IAM) and of which role a workload uses.

use super::*;
use crate::service_account::ServiceAccountRef;
use proptest::prelude::*;

fn valid_for_iam(name: &str) -> bool {
    name.len() <= 64
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// A triple as Kubernetes and EKS allow it (plus some they do not: uppercase, long).
fn triple() -> impl Strategy<Value = (String, String, String)> {
    (
        prop_oneof!["[a-z0-9][a-z0-9_-]{0,12}", "[A-Za-z0-9][A-Za-z0-9_-]{0,99}"],
        prop_oneof!["[a-z0-9-]{1,8}", "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"],
        prop_oneof!["[a-z0-9.-]{1,8}", "[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?"],
    )
}

proptest! {
    #[test]
    fn role_names_are_valid_for_iam_and_stable(cluster in ".{0,120}", ns in ".{0,70}", sa in ".{0,260}") {
        let name = role_name(&cluster, &ns, &sa);
        prop_assert!(valid_for_iam(&name), "{name}");
        prop_assert_eq!(name, role_name(&cluster, &ns, &sa));
    }

    /// Distinct triples get distinct names, compared as IAM does (case-insensitively).
    #[test]
    fn distinct_triples_get_distinct_names(a in triple(), b in triple()) {
        prop_assume!(a != b);
        let (x, y) = (role_name(&a.0, &a.1, &a.2), role_name(&b.0, &b.1, &b.2));
        prop_assert_ne!(x.to_ascii_lowercase(), y.to_ascii_lowercase(), "{:?} {:?}", a, b);
    }

    /// The joins that collided before: moving a `-` (or a `.`) between the parts.
    #[test]
    fn moving_a_separator_between_parts_changes_the_name(
        c in "[a-z0-9]{1,6}", n in "[a-z0-9]{1,6}", s in "[a-z0-9]{1,6}", t in "[a-z0-9]{1,6}"
    ) {
        let joined = role_name(&c, &format!("{n}-{s}"), &t);
        prop_assert_ne!(&joined, &role_name(&c, &n, &format!("{s}-{t}")));
        prop_assert_ne!(&joined, &role_name(&format!("{c}-{n}"), &s, &t));
        prop_assert_ne!(
            role_name(&c, &n, &format!("{s}.{t}")),
            role_name(&c, &format!("{n}.{s}"), &t)
        );
    }
}

#[test]
fn the_issues_colliding_pair_gets_two_names() {
    // Both were `bootstrap-c-team-a-app` before.
    assert_eq!(
        legacy_role_name("c", "team", "a-app"),
        legacy_role_name("c", "team-a", "app")
    );
    assert_eq!(role_name("c", "team", "a-app"), "bootstrap-c.team.a-app");
    assert_eq!(role_name("c", "team-a", "app"), "bootstrap-c.team-a.app");
    assert_eq!(
        role_name("demo", "ns", "sa.with.dots"),
        "bootstrap-demo.ns.sa.with.dots"
    );
}

#[test]
fn long_and_uppercase_triples_are_hashed_and_marked() {
    let long = role_name("c", &"n".repeat(63), "sa");
    assert_eq!(long.len(), 64);
    assert!(long.starts_with("bootstrap-c.nnnn"), "{long}");
    let (prefix, hex) = long.split_once('@').expect("hash mark");
    assert_eq!(hex.len(), 20);
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!prefix.contains('@'));
    // Only the last character differs: the hash tells them apart.
    assert_ne!(long, role_name("c", &"n".repeat(63), "sb"));
    // IAM names ignore case: clusters `Demo` and `demo` must not share a role.
    let upper = role_name("Demo", "ns", "sa");
    assert!(upper.contains('@'), "{upper}");
    assert_ne!(
        upper.to_ascii_lowercase(),
        role_name("demo", "ns", "sa").to_ascii_lowercase()
    );
}

fn owned(name: &str) -> LiveRole {
    LiveRole {
        name: name.into(),
        arn: format!("arn:aws:iam::1:role/{name}"),
        owned: true,
        ..LiveRole::default()
    }
}

fn scoped_trust(ns: &str, sa: &str) -> Value {
    crate::aws::policy::pod_identity_trust(&crate::aws::policy::TrustScope {
        account: "1",
        cluster: "c",
        cluster_arn: "arn:aws:eks:r:1:cluster/c",
        namespace: ns,
        service_account: sa,
    })
}

fn association(ns: &str, sa: &str, role_arn: &str) -> LiveAssociation {
    LiveAssociation {
        id: "a-1".into(),
        namespace: ns.into(),
        service_account: sa.into(),
        role_arn: role_arn.into(),
        target_role_arn: None,
        owned: true,
    }
}

/// A role of the previous release named for `ns/sa` whose trust names `trusted` (namespace,
/// service account), and the association of `ns/sa` that names it.
fn legacy_associated(ns: &str, sa: &str, trusted: (&str, &str)) -> (LiveRole, LiveAssociation) {
    let live = LiveRole {
        trust: Some(scoped_trust(trusted.0, trusted.1)),
        ..owned(&legacy_role_name("c", ns, sa))
    };
    let a = association(ns, sa, &live.arn);
    (live, a)
}

/// A role bootstrap made whose tags claim it for `other/x`.
fn tagged_for_another(name: &str) -> LiveRole {
    LiveRole {
        tagged_for: Some(ServiceAccountRef::new("other", "x")),
        ..owned(name)
    }
}

/// [`choose`] on cluster `c`, with no role at the new name and the role association `a` names.
fn choose_associated(
    ns: &str,
    sa: &str,
    force: bool,
    a: &LiveAssociation,
    associated: LiveRole,
) -> Result<Chosen, StepError> {
    choose("c", ns, sa, force, None, Some(a), Some(associated))
}

#[test]
fn claims_come_from_tags_then_from_the_trust() {
    let mut r = owned("x");
    assert_eq!(claim(&r), None);
    r.trust = Some(scoped_trust("team", "a-app"));
    let c = claim(&r).expect("trust claim");
    assert!(c.service_account.is("team", "a-app"));
    assert_eq!(c.source, ClaimSource::Trust);
    r.tagged_for = Some(ServiceAccountRef::new("team-a", "app"));
    let c = claim(&r).expect("tag claim");
    assert!(
        c.service_account.is("team-a", "app"),
        "tags win over the trust"
    );
    assert_eq!(c.source, ClaimSource::Tags);
    // A trust naming two workloads names none.
    let mut two = scoped_trust("a", "x");
    let second = scoped_trust("b", "x")["Statement"][0].clone();
    two["Statement"]
        .as_array_mut()
        .expect("statements")
        .push(second);
    let r = LiveRole {
        trust: Some(two),
        ..owned("y")
    };
    assert_eq!(claim(&r), None);
}

#[test]
fn a_previous_release_role_named_by_the_association_is_kept_as_is() {
    let legacy = legacy_role_name("c", "team", "app");
    let (live, a) = legacy_associated("team", "app", ("team", "app"));
    let chosen = choose_associated("team", "app", false, &a, live.clone()).expect("adopted");
    assert_eq!(chosen.name, legacy);
    // Even a trust from before the session-tag conditions: the association and the tags say.
    let unscoped = LiveRole {
        trust: None,
        ..live
    };
    let chosen = choose_associated("team", "app", false, &a, unscoped).expect("ok");
    assert_eq!(chosen.name, legacy);
}

#[test]
fn a_role_made_for_another_workload_is_a_conflict_never_a_rewrite() {
    // The collision of the previous release: team/a-app's association names the role whose
    // trust team-a/app rewrote.
    let (live, a) = legacy_associated("team", "a-app", ("team-a", "app"));
    let err = choose_associated("team", "a-app", false, &a, live.clone()).expect_err("conflict");
    assert!(err.to_string().contains("team-a/app"), "{err}");
    assert!(err.hint().is_some_and(|h| h.contains("--force")));
    // --force: its own new role (the association plan then points at it).
    let tagged = tagged_for_another(&live.name);
    let forced = choose_associated("team", "a-app", true, &a, live).expect("own role");
    assert_eq!(forced.name, "bootstrap-c.team.a-app");
    // Tags that disagree with the association: refused too.
    assert!(choose_associated("team", "a-app", false, &a, tagged).is_err());
    // A role at the new name that bootstrap made for someone else is never rewritten.
    let at_name = tagged_for_another("bootstrap-c.team.a-app");
    assert!(choose("c", "team", "a-app", true, Some(at_name), None, None).is_err());
    // One that claims nothing and that no association names cannot be proven ours.
    assert!(
        choose(
            "c",
            "team",
            "a-app",
            false,
            Some(owned("bootstrap-c.team.a-app")),
            None,
            None
        )
        .is_err()
    );
}

#[test]
fn no_association_or_a_foreign_role_means_the_new_name() {
    let chosen = choose("c", "ns", "sa", false, None, None, None).expect("new");
    assert_eq!(chosen.name, "bootstrap-c.ns.sa");
    assert!(chosen.live.is_none());
    // The association names someone else's role: ours is planned (the association plan
    // reports the conflict).
    let theirs = LiveRole {
        owned: false,
        ..owned("theirs")
    };
    let a = association("ns", "sa", &theirs.arn);
    let chosen = choose_associated("ns", "sa", false, &a, theirs).expect("new");
    assert_eq!(chosen.name, "bootstrap-c.ns.sa");
}
