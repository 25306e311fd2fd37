//! Whether a namespace's TeamSecrets request fits an administrator's SecretAllowance: pure, fail
//! closed. Every secret, prefix, target role, ABAC and failover region of the request must be
//! allowed by one allowance that names the namespace; without any allowance nothing is.

use super::crd::SecretAllowanceSpec;
use crate::resources::secrets::SecretKind;
use crate::teams::Team;

/// Checks a team (of `namespace`) against the allowances; `Err` lists every refusal.
pub fn check(
    allowances: &[SecretAllowanceSpec],
    namespace: &str,
    team: &Team,
) -> Result<(), Vec<String>> {
    let mine: Vec<&SecretAllowanceSpec> = allowances
        .iter()
        .filter(|a| {
            a.namespaces
                .iter()
                .any(|p| matches(p, namespace, namespace))
        })
        .collect();
    if mine.is_empty() {
        return Err(vec![format!(
            "no SecretAllowance names namespace {namespace}: an administrator must allow it first"
        )]);
    }
    let fits = |allowed: &dyn Fn(&SecretAllowanceSpec) -> bool| mine.iter().any(|a| allowed(a));
    let mut refused = Vec::new();
    for spec in team.secret_specs() {
        let Some(secret) = spec.secret() else {
            refused.push(format!("secret {} was not validated", spec.label()));
            continue;
        };
        let prefix = spec.prefix.is_some();
        let ok = fits(&|a: &SecretAllowanceSpec| {
            let patterns = match secret.kind {
                SecretKind::SecretsManager => &a.secrets,
                SecretKind::SsmParameter => &a.ssm_parameters,
            };
            patterns.iter().any(|p| {
                if prefix {
                    covers_prefix(p, &secret.id, namespace)
                } else {
                    matches(p, &secret.id, namespace)
                }
            })
        });
        if !ok {
            let what = match (&secret.kind, prefix) {
                (SecretKind::SecretsManager, false) => "secret",
                (SecretKind::SecretsManager, true) => "secret prefix",
                (SecretKind::SsmParameter, false) => "SSM parameter",
                (SecretKind::SsmParameter, true) => "SSM path",
            };
            refused.push(format!(
                "{what} {} is not allowed for namespace {namespace}",
                secret.id
            ));
        }
    }
    if let Some(target) = &team.target_role_arn
        && !fits(&|a| {
            a.target_role_arns
                .iter()
                .any(|p| matches(p, target, namespace))
        })
    {
        refused.push(format!(
            "target role {target} is not allowed for namespace {namespace}"
        ));
    }
    if team.abac && !fits(&|a| a.abac) {
        refused.push(format!("abac is not allowed for namespace {namespace}"));
    }
    if let Some(region) = &team.failover_region
        && !fits(&|a| a.failover_regions.iter().any(|r| r == region))
    {
        refused.push(format!(
            "failoverRegion {region} is not allowed for namespace {namespace}"
        ));
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused)
    }
}

/// A pattern (`{namespace}` replaced) against a value: equal, or a prefix when it ends in `*`.
/// A `*` anywhere else is a literal character: no pattern matches more than it says.
fn matches(pattern: &str, value: &str, namespace: &str) -> bool {
    let pattern = pattern.replace("{namespace}", namespace);
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

/// A requested prefix is covered only by a `*` pattern whose prefix it extends: `teams/a/x/` is
/// within `teams/a/*`, `teams/` is not (it would read more than the pattern allows).
fn covers_prefix(pattern: &str, requested: &str, namespace: &str) -> bool {
    let pattern = pattern.replace("{namespace}", namespace);
    pattern
        .strip_suffix('*')
        .is_some_and(|p| requested.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn team(ns: &str, yaml_secrets: &str, extra: &str) -> Team {
        let text = format!(
            "teams:\n  - name: t\n    namespace: {ns}\n    serviceAccount: app\n    secrets: {yaml_secrets}\n{extra}"
        );
        crate::teams::parse(Path::new("t.yaml"), &text)
            .expect("valid team")
            .teams
            .remove(0)
            .value
    }

    /// [`check`] of a team in namespace `team-a` reading `yaml_secrets`.
    fn team_a(allowances: &[SecretAllowanceSpec], yaml_secrets: &str) -> Result<(), Vec<String>> {
        check(allowances, "team-a", &team("team-a", yaml_secrets, ""))
    }

    fn allowance(json: serde_json::Value) -> SecretAllowanceSpec {
        serde_json::from_value(json).expect("allowance")
    }

    fn per_namespace() -> SecretAllowanceSpec {
        allowance(serde_json::json!({
            "namespaces": ["team-*"],
            "secrets": ["teams/{namespace}/*", "shared/ca"],
            "ssmParameters": ["/teams/{namespace}/*"],
        }))
    }

    #[test]
    fn without_any_allowance_nothing_is_allowed() {
        let t = team("team-a", "[teams/team-a/db]", "");
        let err = check(&[], "team-a", &t).expect_err("closed");
        assert!(err[0].contains("no SecretAllowance"), "{err:?}");
        let other = allowance(serde_json::json!({"namespaces": ["payments"], "secrets": ["*"]}));
        assert!(
            check(&[other], "team-a", &t).is_err(),
            "another namespace's allowance"
        );
    }

    #[test]
    fn a_namespace_reads_its_own_path_and_not_a_neighbours() {
        let a = [per_namespace()];
        assert!(team_a(&a, "[teams/team-a/db, shared/ca, 'ssm:/teams/team-a/x']").is_ok());
        let err = team_a(
            &a,
            "[teams/team-b/db, 'ssm:/teams/team-b/x', shared/ca-other]",
        )
        .expect_err("neighbour's secrets");
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(err[0].contains("teams/team-b/db"));
        // `team-ab` is not `team-a`: the placeholder is the namespace, whole.
        assert!(team_a(&a, "[teams/team-ab/db]").is_err());
    }

    #[test]
    fn a_prefix_request_must_sit_inside_an_allowed_prefix() {
        let a = [per_namespace()];
        assert!(team_a(&a, "[{prefix: teams/team-a/app/}]").is_ok());
        assert!(team_a(&a, "[{prefix: teams/}]").is_err(), "wider");
        let exact = [allowance(
            serde_json::json!({"namespaces": ["team-a"], "secrets": ["teams/team-a/db"]}),
        )];
        assert!(
            team_a(&exact, "[{prefix: teams/team-a/db}]").is_err(),
            "an exact name allows no prefix (it would match teams/team-a/db-other too)"
        );
    }

    #[test]
    fn an_arn_request_is_matched_as_written_and_a_star_inside_is_literal() {
        let a = [per_namespace()];
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:teams/team-a/db-AbCdEf";
        assert!(
            team_a(&a, &format!("['{arn}']")).is_err(),
            "names do not match ARNs (another account's ARN must not pass as a name)"
        );
        let by_arn = [allowance(serde_json::json!({"namespaces": ["team-a"],
            "secrets": ["arn:aws:secretsmanager:us-east-1:111122223333:secret:teams/team-a/*"]}))];
        assert!(team_a(&by_arn, &format!("['{arn}']")).is_ok());
        let literal = [allowance(
            serde_json::json!({"namespaces": ["team-a"], "secrets": ["teams/*/db"]}),
        )];
        assert!(team_a(&literal, "[teams/team-b/db]").is_err());
    }

    #[test]
    fn abac_target_roles_and_failover_need_their_own_allowance() {
        let a = [per_namespace()];
        let t = team(
            "team-a",
            "[teams/team-a/db]",
            "    abac: true\n    targetRoleArn: arn:aws:iam::444455556666:role/reader\n    failoverRegion: us-west-2\n",
        );
        let err = check(&a, "team-a", &t).expect_err("none allowed");
        assert_eq!(err.len(), 3, "{err:?}");
        let mut wide = per_namespace();
        wide.abac = true;
        wide.target_role_arns = vec!["arn:aws:iam::444455556666:role/*".into()];
        wide.failover_regions = vec!["us-west-2".into()];
        assert!(check(&[wide], "team-a", &t).is_ok());
    }
}
