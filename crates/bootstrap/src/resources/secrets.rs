//! A workload's secrets: each resolved to its exact ARN (and KMS key), read-only; and the demo
//! secret, created (and owned) when asked. Values are never read or printed.

use super::{ResolvedSecret, owned};
use crate::aws::{Clients, ErrorKind, classify};
use crate::config::{SecretKind, SecretRef};
use crate::error::StepError;
use crate::plan::{Action, Change, Op};

/// The demo secret's name for a cluster.
pub fn demo_secret_name(cluster: &str) -> String {
    format!("bootstrap/{cluster}/demo")
}

/// The demo secret, as its policy grants and its SecretProviderClass names it. The ARN ends in
/// AWS's random six-character suffix as a wildcard, so the plan is the same before and after
/// the secret exists.
pub fn demo_secret(region: &str, account: &str, cluster: &str) -> ResolvedSecret {
    let name = demo_secret_name(cluster);
    ResolvedSecret {
        kind: SecretKind::SecretsManager,
        arn: format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-??????"),
        object_name: name,
        kms_key_arn: None,
        alias: None,
        file_permission: None,
        jmes_path: Vec::new(),
    }
}

/// Whether the demo secret exists, and whether bootstrap made it for this cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoState {
    Absent,
    Present { owned: bool },
}

pub async fn observe_demo(aws: Option<&Clients>, cluster: &str) -> Result<DemoState, StepError> {
    let Some(aws) = aws else {
        return Ok(DemoState::Absent);
    };
    let name = demo_secret_name(cluster);
    match aws.secrets.describe_secret().secret_id(&name).send().await {
        Ok(out) => Ok(DemoState::Present {
            owned: owned(
                out.tags()
                    .iter()
                    .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
                cluster,
            ),
        }),
        Err(e) => {
            let err = classify("describe", format!("secret {name}"), e);
            if err.is(ErrorKind::NotFound) {
                Ok(DemoState::Absent)
            } else {
                Err(err.into())
            }
        }
    }
}

pub fn plan_demo(cluster: &str, observed: DemoState) -> Change {
    let name = demo_secret_name(cluster);
    let resource = format!("secret {name}");
    match observed {
        DemoState::Absent => {
            Change::new(Action::Create, resource).op(Op::CreateDemoSecret { name })
        }
        DemoState::Present { owned: true } => Change::new(Action::Unchanged, resource),
        DemoState::Present { owned: false } => Change::new(Action::Adopt, resource)
            .note("exists, not made by bootstrap for this cluster; used as is"),
    }
}

/// Deletes the demo secret at once (no recovery window), only when bootstrap made it.
pub fn plan_delete_demo(name: &str) -> Change {
    Change::new(Action::Delete, format!("secret {name}")).op(Op::DeleteSecret {
        name: name.to_string(),
    })
}

fn offline_arn(region: &str, account: &str, secret: &SecretRef) -> String {
    if secret.id.starts_with("arn:") {
        return secret.id.clone();
    }
    match secret.kind {
        SecretKind::SecretsManager => format!(
            "arn:aws:secretsmanager:{region}:{account}:secret:{}-??????",
            secret.id
        ),
        SecretKind::SsmParameter => format!(
            "arn:aws:ssm:{region}:{account}:parameter/{}",
            secret.id.trim_start_matches('/')
        ),
    }
}

/// A KMS key id, alias or ARN as a key ARN for the policy.
fn kms_arn(region: &str, account: &str, key: &str) -> String {
    if key.starts_with("arn:") {
        key.to_string()
    } else if key.starts_with("alias/") {
        format!("arn:aws:kms:{region}:{account}:{key}")
    } else {
        format!("arn:aws:kms:{region}:{account}:key/{key}")
    }
}

/// Finds a secret's ARN and customer KMS key (read-only). Offline, the ARN is derived.
pub async fn resolve(
    aws: Option<&Clients>,
    region: &str,
    account: &str,
    offline_region: bool,
    secret: &SecretRef,
) -> Result<ResolvedSecret, StepError> {
    if let Some(arn_region) = secret
        .id
        .split(':')
        .nth(3)
        .filter(|_| secret.id.starts_with("arn:"))
        && arn_region != region
        && !offline_region
    {
        return Err(StepError::problem(format!(
            "secret {} is in region {arn_region}, but the cluster is in {region}",
            secret.id
        ))
        .with_hint("replicate the secret to the cluster's region and pass that ARN"));
    }
    let Some(aws) = aws else {
        let arn = offline_arn(region, account, secret);
        return Ok(ResolvedSecret {
            kind: secret.kind.clone(),
            object_name: arn.clone(),
            arn,
            kms_key_arn: None,
            alias: None,
            file_permission: None,
            jmes_path: Vec::new(),
        });
    };
    let not_found = |what: &str| {
        StepError::problem(format!(
            "{what} {} was not found in region {region}",
            secret.id
        ))
        .with_hint(
            "check the name and --region; pass --create-demo-secret to let bootstrap create one",
        )
    };
    match secret.kind {
        SecretKind::SecretsManager => {
            let out = match aws
                .secrets
                .describe_secret()
                .secret_id(&secret.id)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    let err = classify("describe", format!("secret {}", secret.id), e);
                    return Err(if err.is(ErrorKind::NotFound) {
                        not_found("Secrets Manager secret")
                    } else {
                        err.into()
                    });
                }
            };
            let arn = out.arn().unwrap_or(&secret.id).to_string();
            Ok(ResolvedSecret {
                kind: SecretKind::SecretsManager,
                object_name: arn.clone(),
                arn,
                kms_key_arn: out
                    .kms_key_id()
                    .filter(|k| !k.contains("alias/aws/"))
                    .map(|k| kms_arn(region, account, k)),
                alias: None,
                file_permission: None,
                jmes_path: Vec::new(),
            })
        }
        SecretKind::SsmParameter => {
            let out = match aws.ssm.get_parameter().name(&secret.id).send().await {
                Ok(out) => out,
                Err(e) => {
                    let err = classify("read", format!("SSM parameter {}", secret.id), e);
                    return Err(if err.is(ErrorKind::NotFound) {
                        not_found("SSM parameter")
                    } else {
                        err.into()
                    });
                }
            };
            let arn = out
                .parameter()
                .and_then(|p| p.arn())
                .map(str::to_string)
                .unwrap_or_else(|| offline_arn(region, account, secret));
            Ok(ResolvedSecret {
                kind: SecretKind::SsmParameter,
                object_name: arn.clone(),
                arn,
                kms_key_arn: None,
                alias: None,
                file_permission: None,
                jmes_path: Vec::new(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_secret_plan_is_the_same_before_and_after_it_exists() {
        let d = demo_secret("us-west-2", "123", "c");
        assert_eq!(d.object_name, "bootstrap/c/demo");
        assert_eq!(
            d.arn,
            "arn:aws:secretsmanager:us-west-2:123:secret:bootstrap/c/demo-??????"
        );
        assert_eq!(plan_demo("c", DemoState::Absent).action, Action::Create);
        assert_eq!(
            plan_demo("c", DemoState::Present { owned: true }).action,
            Action::Unchanged
        );
        assert_eq!(
            plan_demo("c", DemoState::Present { owned: false }).action,
            Action::Adopt
        );
    }

    #[tokio::test]
    async fn offline_secrets_get_derived_arns_and_a_foreign_region_is_refused() {
        let s = SecretRef::parse("ssm:/app/db").expect("parses");
        let r = resolve(None, "eu-west-1", "1", false, &s)
            .await
            .expect("offline");
        assert_eq!(r.arn, "arn:aws:ssm:eu-west-1:1:parameter/app/db");
        let other =
            SecretRef::parse("arn:aws:secretsmanager:us-east-1:1:secret:x-abcdef").expect("arn");
        assert!(
            resolve(None, "eu-west-1", "1", false, &other)
                .await
                .is_err()
        );
    }
}
