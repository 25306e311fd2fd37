//! The workload's IAM role: a deterministic name, trust exactly `pods.eks.amazonaws.com`
//! (AssumeRole + TagSession), an inline least-privilege policy on the exact secret ARNs.

use serde_json::Value;

use super::{Env, StepError, tagged_ours};
use crate::aws::policy::{self, Grants};
use crate::aws::{ErrorKind, classify};
use crate::config::SecretKind;
use crate::plan::{Action, Change, StepOutcome};

/// The inline policy's name on the role.
pub const POLICY_NAME: &str = "bootstrap-read-secrets";

/// `bootstrap-<cluster>-<namespace>-<sa>`, shortened to ≤ 64 characters with a stable hash
/// of the full name when needed; only characters IAM allows.
pub fn role_name(cluster: &str, namespace: &str, service_account: &str) -> String {
    let full = format!("bootstrap-{cluster}-{namespace}-{service_account}");
    let clean: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.len() <= 64 {
        return clean;
    }
    let hash = fnv1a(full.as_bytes());
    format!("{}-{hash:08x}", &clean[..55])
}

/// The role's IAM description: what it is for, and that bootstrap manages it.
pub fn role_description(cluster: &str, namespace: &str, service_account: &str) -> String {
    format!(
        "EKS Pod Identity role for {namespace}/{service_account} on cluster {cluster} (managed by bootstrap)"
    )
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The grants for the resolved secrets.
pub fn grants(env: &Env) -> Grants {
    let secrets = env.facts.secrets.get().cloned().unwrap_or_default();
    Grants {
        secret_arns: secrets
            .iter()
            .filter(|s| s.kind == SecretKind::SecretsManager)
            .map(|s| s.arn.clone())
            .collect(),
        parameter_arns: secrets
            .iter()
            .filter(|s| s.kind == SecretKind::SsmParameter)
            .map(|s| s.arn.clone())
            .collect(),
        kms_key_arns: secrets
            .iter()
            .filter_map(|s| s.kms_key_arn.clone())
            .collect(),
        region: env.region.clone(),
    }
}

pub async fn run(env: &Env) -> Result<StepOutcome, StepError> {
    let s = &env.settings;
    let name = role_name(&s.cluster, &s.namespace, &s.service_account);
    let description = role_description(&s.cluster, &s.namespace, &s.service_account);
    let trust = policy::pod_identity_trust();
    let inline = policy::read_secrets_policy(&grants(env));
    let resource = format!("IAM role {name}");
    let arn_guess = format!("arn:aws:iam::{}:role/{name}", env.account());
    let create = Change::new(Action::Create, resource.clone())
        .call(format!(
            "iam:CreateRole RoleName={name} Description=\"{description}\" tags=bootstrap.podid/managed-by,bootstrap.podid/cluster"
        ))
        .document(serde_json::json!({"AssumeRolePolicyDocument": trust}))
        .call(format!(
            "iam:PutRolePolicy RoleName={name} PolicyName={POLICY_NAME}"
        ))
        .document(serde_json::json!({"PolicyDocument": inline}));
    let Some(aws) = &env.aws else {
        let _ = env.facts.role_arn.set(arn_guess);
        return Ok(StepOutcome::with(vec![create]));
    };
    let role = match aws.iam.get_role().role_name(&name).send().await {
        Ok(out) => out.role().cloned(),
        Err(e) => {
            let err = classify("read", resource.clone(), e);
            if !err.is(ErrorKind::NotFound) {
                return Err(err.into());
            }
            None
        }
    };
    let Some(role) = role else {
        let arn = if env.dry_run() {
            arn_guess
        } else {
            create_role(env, &name, &description, &trust, &inline).await?
        };
        let _ = env.facts.role_arn.set(arn);
        return Ok(StepOutcome::with(vec![create]));
    };
    let _ = env.facts.role_arn.set(role.arn().to_string());
    if !tagged_ours(role.tags().iter().map(|t| (t.key(), t.value()))) {
        return Ok(StepOutcome::with(vec![Change::new(Action::Adopt, resource).note(
            "exists, not made by bootstrap: left as is (make sure it trusts pods.eks.amazonaws.com and can read the secrets)",
        )]));
    }
    let live_trust = role
        .assume_role_policy_document()
        .and_then(policy::decode_document);
    let live_inline = match aws
        .iam
        .get_role_policy()
        .role_name(&name)
        .policy_name(POLICY_NAME)
        .send()
        .await
    {
        Ok(out) => policy::decode_document(out.policy_document()),
        Err(e) => {
            let err = classify("read the inline policy of", resource.clone(), e);
            if !err.is(ErrorKind::NotFound) {
                return Err(err.into());
            }
            None
        }
    };
    let mut change = Change::new(Action::Update, resource.clone());
    let description_ok = role.description() == Some(description.as_str());
    let trust_ok = live_trust
        .as_ref()
        .is_some_and(|t| policy::same_policy(t, &trust));
    let inline_ok = live_inline
        .as_ref()
        .is_some_and(|p| policy::same_policy(p, &inline));
    if !trust_ok {
        change = change
            .call(format!("iam:UpdateAssumeRolePolicy RoleName={name}"))
            .document(trust.clone());
    }
    if !inline_ok {
        change = change
            .call(format!(
                "iam:PutRolePolicy RoleName={name} PolicyName={POLICY_NAME}"
            ))
            .document(inline.clone());
    }
    if !description_ok {
        change = change.call(format!(
            "iam:UpdateRoleDescription RoleName={name} Description=\"{description}\""
        ));
    }
    if trust_ok && inline_ok && description_ok {
        return Ok(StepOutcome::with(vec![Change::new(
            Action::Unchanged,
            resource,
        )]));
    }
    if !env.dry_run() {
        if !trust_ok {
            aws.iam
                .update_assume_role_policy()
                .role_name(&name)
                .policy_document(trust.to_string())
                .send()
                .await
                .map_err(|e| classify("update the trust policy of", resource.clone(), e))?;
        }
        if !inline_ok {
            put_policy(env, &name, &inline).await?;
        }
        if !description_ok {
            aws.iam
                .update_role_description()
                .role_name(&name)
                .description(&description)
                .send()
                .await
                .map_err(|e| classify("update the description of", resource.clone(), e))?;
        }
    }
    Ok(StepOutcome::with(vec![change]))
}

async fn create_role(
    env: &Env,
    name: &str,
    description: &str,
    trust: &Value,
    inline: &Value,
) -> Result<String, StepError> {
    let Some(aws) = &env.aws else {
        return Err(StepError::problem("no AWS access"));
    };
    let mut create = aws
        .iam
        .create_role()
        .role_name(name)
        .description(description)
        .assume_role_policy_document(trust.to_string());
    for (k, v) in env.tags() {
        create = create.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| StepError::caused_by("failed to build an IAM tag", e))?,
        );
    }
    let out = create
        .send()
        .await
        .map_err(|e| classify("create", format!("IAM role {name}"), e))?;
    let arn = out.role().map(|r| r.arn().to_string()).unwrap_or_default();
    put_policy(env, name, inline).await?;
    Ok(arn)
}

async fn put_policy(env: &Env, name: &str, inline: &Value) -> Result<(), StepError> {
    let Some(aws) = &env.aws else { return Ok(()) };
    aws.iam
        .put_role_policy()
        .role_name(name)
        .policy_name(POLICY_NAME)
        .policy_document(inline.to_string())
        .send()
        .await
        .map_err(|e| classify("put the inline policy on", format!("IAM role {name}"), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn role_names_are_always_valid_for_iam(cluster in ".{0,120}", ns in "[a-z0-9-]{1,63}", sa in "[a-z0-9.-]{1,100}") {
            let name = role_name(&cluster, &ns, &sa);
            proptest::prop_assert!(name.len() <= 64);
            proptest::prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)));
            proptest::prop_assert_eq!(name.clone(), role_name(&cluster, &ns, &sa));
        }
    }

    #[test]
    fn role_names_are_deterministic_and_short() {
        assert_eq!(
            role_name("demo", "bootstrap-demo", "demo-app"),
            "bootstrap-demo-bootstrap-demo-demo-app"
        );
        let long = role_name(&"c".repeat(60), "namespace-that-is-long", "sa");
        assert_eq!(long.len(), 64);
        assert_eq!(
            long,
            role_name(&"c".repeat(60), "namespace-that-is-long", "sa")
        );
        assert_ne!(
            long,
            role_name(&"c".repeat(60), "namespace-that-is-long", "sb")
        );
        assert!(
            role_name("c", "ns", "a.b")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        );
    }

    #[test]
    fn the_description_names_the_workload_and_the_cluster() {
        let d = role_description("demo", "bootstrap-demo", "demo-app");
        assert_eq!(
            d,
            "EKS Pod Identity role for bootstrap-demo/demo-app on cluster demo (managed by bootstrap)"
        );
        // IAM allows at most 1000 characters from a limited set in a description.
        let long = role_description(&"c".repeat(100), &"n".repeat(63), &"s".repeat(253));
        assert!(long.len() <= 1000);
        assert!(long.chars().all(|c| (' '..='~').contains(&c)));
    }
}
