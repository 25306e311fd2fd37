//! Which of bootstrap's IAM roles `down` deletes: with `--namespace`, the roles whose tags (or,
//! for roles of earlier releases, trust or association) say they serve that namespace — never
//! by a name prefix; and never a role an association that stays still names.

use super::discover::Inventory;
use super::role::{self, LiveRole};
use super::role_identity;
use super::teardown::Scope;
use crate::plan::{Action, Change};

fn keep(r: &LiveRole, why: String) -> Change {
    Change::new(Action::Keep, format!("IAM role {}", r.name)).note(why)
}

/// The deletions of owned roles in scope, and the roles kept with the reason.
pub fn plan(inv: &Inventory, scope: &Scope) -> (Vec<Change>, Vec<Change>) {
    let in_scope = |ns: &str| scope.namespace.as_deref().is_none_or(|want| want == ns);
    let (mut deletes, mut kept) = (Vec::new(), Vec::new());
    let scoped = scope.workloads_only || scope.namespace.is_some();
    for r in inv.roles.iter().filter(|r| r.owned) {
        let serves_controller = r
            .tagged_for
            .as_ref()
            .is_some_and(|t| super::controller::is_controller(&t.namespace, &t.name));
        if scoped && serves_controller {
            if in_scope(super::controller::NAMESPACE) {
                kept.push(keep(
                    r,
                    "the controller's own role (platform kept: --workloads-only or --namespace)"
                        .into(),
                ));
            }
            continue;
        }
        let named_by: Vec<_> = inv
            .associations
            .iter()
            .filter(|a| a.role_arn == r.arn)
            .collect();
        if let Some(ns) = &scope.namespace {
            let here = named_by.iter().find(|a| &a.namespace == ns);
            match role_identity::claim(r) {
                Some(c) if &c.service_account.namespace == ns => {}
                Some(c) => {
                    if let Some(a) = here {
                        kept.push(keep(
                            r,
                            format!(
                                "made for {} (its {}), though the association of {}/{} names it: left for `down --namespace {}`",
                                c.service_account, c.source, a.namespace, a.service_account, c.service_account.namespace
                            ),
                        ));
                    }
                    continue;
                }
                None if here.is_some() => {}
                None if named_by.is_empty() => {
                    kept.push(keep(
                        r,
                        "cannot tell which namespace it serves (no namespace tag, no association names it, its trust names none): a full `bootstrap down` deletes it".into(),
                    ));
                    continue;
                }
                None => continue,
            }
        }
        let staying: Vec<String> = named_by
            .iter()
            .filter(|a| !(a.owned && in_scope(&a.namespace)))
            .map(|a| format!("{}/{}", a.namespace, a.service_account))
            .collect();
        if !staying.is_empty() && !scope.force {
            kept.push(keep(
                r,
                format!(
                    "still named by Pod Identity association(s) this run keeps: {} (pass --force to delete it anyway)",
                    staying.join(", ")
                ),
            ));
            continue;
        }
        deletes.extend(role::plan_delete(r));
    }
    (deletes, kept)
}

#[cfg(test)]
#[path = "teardown_roles_tests.rs"]
mod tests;
