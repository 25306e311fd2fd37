//! The workload's secrets: resolve each to its exact ARN (and KMS key), and create the demo
//! secret when asked. Never reads or prints a value.

use super::{Env, ResolvedSecret, StepError, tagged_ours};
use crate::aws::{ErrorKind, classify};
use crate::config::{SecretKind, SecretRef};
use crate::plan::{Action, Change, StepOutcome};

/// The demo secret's name for a cluster.
pub fn demo_secret_name(cluster: &str) -> String {
    format!("bootstrap/{cluster}/demo")
}

pub async fn run(env: &Env) -> Result<StepOutcome, StepError> {
    let mut changes = Vec::new();
    let mut resolved = Vec::new();
    // The user's secrets are checked first: a missing one fails before anything is created.
    for secret in &env.settings.secrets {
        let found = resolve(env, secret).await?;
        changes.push(Change::new(Action::Check, format!("secret {}", found.arn)));
        resolved.push(found);
    }
    if env.settings.create_demo_secret {
        let (change, secret) = demo_secret(env).await?;
        changes.insert(0, change);
        resolved.insert(0, secret);
    }
    let _ = env.facts.secrets.set(resolved);
    Ok(StepOutcome::with(changes))
}

fn offline_arn(env: &Env, secret: &SecretRef) -> String {
    if secret.id.starts_with("arn:") {
        return secret.id.clone();
    }
    match secret.kind {
        SecretKind::SecretsManager => format!(
            "arn:aws:secretsmanager:{}:{}:secret:{}-??????",
            env.region,
            env.account(),
            secret.id
        ),
        SecretKind::SsmParameter => {
            format!(
                "arn:aws:ssm:{}:{}:parameter/{}",
                env.region,
                env.account(),
                secret.id.trim_start_matches('/')
            )
        }
    }
}

/// Finds a secret's ARN and customer KMS key.
async fn resolve(env: &Env, secret: &SecretRef) -> Result<ResolvedSecret, StepError> {
    if let Some(region) = secret
        .id
        .split(':')
        .nth(3)
        .filter(|_| secret.id.starts_with("arn:"))
        && region != env.region
        && env.region != super::OFFLINE_REGION
    {
        return Err(StepError::problem(format!(
            "secret {} is in region {region}, but the cluster is in {}",
            secret.id, env.region
        ))
        .with_hint("replicate the secret to the cluster's region and pass that ARN"));
    }
    let Some(aws) = &env.aws else {
        return Ok(ResolvedSecret {
            kind: secret.kind.clone(),
            arn: offline_arn(env, secret),
            kms_key_arn: None,
        });
    };
    let not_found = |what: &str| {
        StepError::problem(format!(
            "{what} {} was not found in region {}",
            secret.id, env.region
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
            let kms_key_arn = out
                .kms_key_id()
                .filter(|k| !k.contains("alias/aws/"))
                .map(|k| kms_arn(env, k));
            Ok(ResolvedSecret {
                kind: SecretKind::SecretsManager,
                arn,
                kms_key_arn,
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
                .unwrap_or_else(|| offline_arn(env, secret));
            Ok(ResolvedSecret {
                kind: SecretKind::SsmParameter,
                arn,
                kms_key_arn: None,
            })
        }
    }
}

/// A KMS key id, alias or ARN as a key ARN for the policy.
fn kms_arn(env: &Env, key: &str) -> String {
    if key.starts_with("arn:") {
        key.to_string()
    } else if key.starts_with("alias/") {
        format!("arn:aws:kms:{}:{}:{key}", env.region, env.account())
    } else {
        format!("arn:aws:kms:{}:{}:key/{key}", env.region, env.account())
    }
}

/// Creates (or finds) the demo secret. Its value is random and never printed.
async fn demo_secret(env: &Env) -> Result<(Change, ResolvedSecret), StepError> {
    let name = demo_secret_name(&env.settings.cluster);
    let resource = format!("secret {name}");
    let create_call = format!(
        "secretsmanager:CreateSecret Name={name} SecretString=<generated, never shown> tags=bootstrap.podid/*"
    );
    let Some(aws) = &env.aws else {
        let secret = SecretRef {
            kind: SecretKind::SecretsManager,
            id: name.clone(),
        };
        let arn = offline_arn(env, &secret);
        return Ok((
            Change::new(Action::Create, resource).call(create_call),
            ResolvedSecret {
                kind: SecretKind::SecretsManager,
                arn,
                kms_key_arn: None,
            },
        ));
    };
    match aws.secrets.describe_secret().secret_id(&name).send().await {
        Ok(out) => {
            let ours = tagged_ours(
                out.tags()
                    .iter()
                    .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
            );
            let action = if ours {
                Action::Unchanged
            } else {
                Action::Adopt
            };
            let arn = out.arn().unwrap_or(&name).to_string();
            Ok((
                Change::new(action, resource),
                ResolvedSecret {
                    kind: SecretKind::SecretsManager,
                    arn,
                    kms_key_arn: None,
                },
            ))
        }
        Err(e) => {
            let err = classify("describe", resource.clone(), e);
            if !err.is(ErrorKind::NotFound) {
                return Err(err.into());
            }
            let change = Change::new(Action::Create, resource.clone()).call(create_call);
            if env.dry_run() {
                let secret = SecretRef {
                    kind: SecretKind::SecretsManager,
                    id: name.clone(),
                };
                return Ok((
                    change,
                    ResolvedSecret {
                        kind: SecretKind::SecretsManager,
                        arn: offline_arn(env, &secret),
                        kms_key_arn: None,
                    },
                ));
            }
            let mut create = aws
                .secrets
                .create_secret()
                .name(&name)
                .description("Demo secret created by bootstrap up; safe to delete")
                .secret_string(demo_value());
            for (k, v) in env.tags() {
                create = create.tags(
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build(),
                );
            }
            let out = create
                .send()
                .await
                .map_err(|e| classify("create", resource, e))?;
            let arn = out.arn().unwrap_or(&name).to_string();
            Ok((
                change,
                ResolvedSecret {
                    kind: SecretKind::SecretsManager,
                    arn,
                    kms_key_arn: None,
                },
            ))
        }
    }
}

/// A random-enough demo value (not a credential of anything).
fn demo_value() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!(
        "{{\"username\":\"demo\",\"password\":\"{:016x}\"}}",
        h.finish()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_values_are_json_and_differ() {
        let a: serde_json::Value = serde_json::from_str(&demo_value()).expect("json");
        assert_eq!(a["username"], "demo");
        assert_ne!(demo_value(), demo_value());
        assert_eq!(demo_secret_name("c"), "bootstrap/c/demo");
    }
}
