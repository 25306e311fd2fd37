//! A workload's secrets: as the user names them ([`SecretRef`], parsed once, from a flag or the
//! teams file), each resolved to its exact ARN (and KMS key), read-only; the demo secret,
//! created (and owned) when asked; and the objects a SecretProviderClass names, for doctor.
//! Values are never read or printed.

use super::facts::problem;
use super::{ResolvedSecret, owned};
use crate::aws::{Clients, ErrorKind, classify};
use crate::diagnose::facts::{ObjectKey, Seen};
use crate::diagnose::spc::{self, ObjectKind};
use crate::error::StepError;
use crate::plan::{Action, Change, Op};

/// Where a secret lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SecretKind {
    SecretsManager,
    SsmParameter,
}

/// A secret the workload reads, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretRef {
    pub kind: SecretKind,
    /// The name or the full ARN.
    pub id: String,
}

impl SecretRef {
    /// Parses `NAME`, `ssm:NAME`, or a Secrets Manager / SSM parameter ARN.
    pub fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim();
        if input.is_empty() {
            return Err("a secret name must not be empty".into());
        }
        if let Some(name) = input.strip_prefix("ssm:") {
            if name.is_empty() {
                return Err("ssm: needs a parameter name".into());
            }
            return Ok(Self {
                kind: SecretKind::SsmParameter,
                id: name.into(),
            });
        }
        if input.starts_with("arn:") {
            let parts: Vec<&str> = input.splitn(6, ':').collect();
            let kind = match parts.get(2) {
                Some(&"secretsmanager")
                    if parts.get(5).is_some_and(|r| r.starts_with("secret:")) =>
                {
                    SecretKind::SecretsManager
                }
                Some(&"ssm") if parts.get(5).is_some_and(|r| r.starts_with("parameter/")) => {
                    SecretKind::SsmParameter
                }
                _ => {
                    return Err(format!(
                        "{input:?} is not a Secrets Manager secret or SSM parameter ARN"
                    ));
                }
            };
            return Ok(Self {
                kind,
                id: input.into(),
            });
        }
        if input.contains("..") || input.chars().any(char::is_whitespace) {
            return Err(format!("{input:?} is not a valid secret name"));
        }
        Ok(Self {
            kind: SecretKind::SecretsManager,
            id: input.into(),
        })
    }
}

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

/// How a secret names its customer KMS key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyName {
    /// A key ARN, or a key id made into one: what IAM evaluates `kms:Decrypt` against.
    Key(String),
    /// An alias (name or ARN): IAM ignores alias ARNs in `Resource`, so it must be resolved.
    Alias(String),
    /// An AWS managed key (`alias/aws/...`): its key policy already allows the service.
    AwsManaged,
}

/// Classifies a KMS key id, key ARN, alias name or alias ARN.
fn key_name(region: &str, account: &str, key: &str) -> KeyName {
    let alias = key
        .strip_prefix("arn:")
        .map_or(key.starts_with("alias/"), |_| {
            key.splitn(6, ':')
                .nth(5)
                .is_some_and(|r| r.starts_with("alias/"))
        });
    if key.contains("alias/aws/") {
        KeyName::AwsManaged
    } else if alias {
        KeyName::Alias(key.to_string())
    } else if key.starts_with("arn:") {
        KeyName::Key(key.to_string())
    } else {
        KeyName::Key(format!("arn:aws:kms:{region}:{account}:key/{key}"))
    }
}

/// The key ARN of the customer key `key` names, or `None` for an AWS managed key. An alias is
/// resolved with `kms:DescribeKey` (metadata only).
async fn kms_key_arn(
    aws: &Clients,
    region: &str,
    account: &str,
    secret: &str,
    key: &str,
) -> Result<Option<String>, StepError> {
    let alias = match key_name(region, account, key) {
        KeyName::AwsManaged => return Ok(None),
        KeyName::Key(arn) => return Ok(Some(arn)),
        KeyName::Alias(alias) => alias,
    };
    let out = aws
        .kms
        .describe_key()
        .key_id(&alias)
        .send()
        .await
        .map_err(|e| {
            StepError::from(classify(
                "describe",
                format!("KMS key {alias} of {secret}"),
                e,
            ))
        })?;
    match out.key_metadata().and_then(|m| m.arn()) {
        Some(arn) => Ok(Some(arn.to_string())),
        None => Err(StepError::problem(format!(
            "KMS answered DescribeKey for {alias} (the key of {secret}) without a key ARN"
        ))
        .with_hint("name the secret's key by its key ARN, or run again")),
    }
}

/// The parameter name an `ssm:` reference or SSM parameter ARN stands for.
fn parameter_name(id: &str) -> String {
    match id.split_once(":parameter/") {
        Some((_, rest)) if rest.contains('/') => format!("/{rest}"),
        Some((_, rest)) => rest.to_string(),
        None => id.to_string(),
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
            let kms_key_arn = match out.kms_key_id() {
                Some(key) => kms_key_arn(aws, region, account, &secret.id, key).await?,
                None => None,
            };
            Ok(ResolvedSecret {
                kind: SecretKind::SecretsManager,
                object_name: arn.clone(),
                arn,
                kms_key_arn,
                alias: None,
                file_permission: None,
                jmes_path: Vec::new(),
            })
        }
        SecretKind::SsmParameter => {
            // Metadata only: GetParameter would read (and decrypt) the value.
            let name = parameter_name(&secret.id);
            let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Name")
                .option("Equals")
                .values(&name)
                .build()
                .map_err(|e| {
                    StepError::problem(format!(
                        "failed to build the DescribeParameters filter for SSM parameter {name}: {e}"
                    ))
                })?;
            let out = aws
                .ssm
                .describe_parameters()
                .parameter_filters(filter)
                .send()
                .await
                .map_err(|e| classify("describe", format!("SSM parameter {}", secret.id), e))?;
            let Some(found) = out
                .parameters()
                .iter()
                .find(|p| p.name() == Some(name.as_str()))
            else {
                return Err(not_found("SSM parameter"));
            };
            let arn = found
                .arn()
                .map(str::to_string)
                .unwrap_or_else(|| offline_arn(region, account, secret));
            let kms_key_arn = match found.key_id() {
                Some(key) => kms_key_arn(aws, region, account, &secret.id, key).await?,
                None => None,
            };
            Ok(ResolvedSecret {
                kind: SecretKind::SsmParameter,
                object_name: arn.clone(),
                arn,
                kms_key_arn,
                alias: None,
                file_permission: None,
                jmes_path: Vec::new(),
            })
        }
    }
}

/// The ARN of an object a SecretProviderClass names, in the class's region (metadata only:
/// DescribeSecret, DescribeParameters); `Ok(None)` when it does not exist.
pub async fn object_arn(aws: &Clients, account: &str, key: &ObjectKey) -> Seen<Option<String>> {
    let (region, kind, name) = key;
    let config = aws
        .config
        .to_builder()
        .region(aws_config::Region::new(region.clone()))
        .build();
    match kind {
        ObjectKind::SecretsManager => {
            let client = if region == &aws.region {
                aws.secrets.clone()
            } else {
                aws_sdk_secretsmanager::Client::new(&config)
            };
            match client.describe_secret().secret_id(name).send().await {
                Ok(out) => Ok(Some(out.arn().unwrap_or(name).to_string())),
                Err(e) => {
                    let err = classify("describe", format!("secret {name} in {region}"), e);
                    if err.is(ErrorKind::NotFound) {
                        Ok(None)
                    } else {
                        Err(problem(&err))
                    }
                }
            }
        }
        ObjectKind::SsmParameter => {
            let client = if region == &aws.region {
                aws.ssm.clone()
            } else {
                aws_sdk_ssm::Client::new(&config)
            };
            let bare = name
                .rsplit_once(":parameter")
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|| name.clone());
            let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Name")
                .option("Equals")
                .values(&bare)
                .build()
                .map_err(|e| {
                    format!("failed to build the DescribeParameters filter for {name}: {e}")
                })?;
            let out = client
                .describe_parameters()
                .parameter_filters(filter)
                .send()
                .await
                .map_err(|e| {
                    problem(&classify(
                        "describe",
                        format!("parameter {name} in {region}"),
                        e,
                    ))
                })?;
            Ok(out.parameters().first().map(|p| {
                p.arn()
                    .map(str::to_string)
                    .unwrap_or_else(|| spc::parameter_arn(region, account, &bare))
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_refs() {
        let sm = SecretRef::parse("prod/db").expect("name");
        assert_eq!(sm.kind, SecretKind::SecretsManager);
        let ssm = SecretRef::parse("ssm:/app/key").expect("ssm");
        assert_eq!(
            (ssm.kind, ssm.id.as_str()),
            (SecretKind::SsmParameter, "/app/key")
        );
        let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/app/key";
        assert_eq!(
            SecretRef::parse(arn).expect("arn").kind,
            SecretKind::SsmParameter
        );
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf";
        assert_eq!(
            SecretRef::parse(arn).expect("arn").kind,
            SecretKind::SecretsManager
        );
        for bad in ["", "arn:aws:s3:::bucket", "a b", "../x", "ssm:"] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn key_names_are_classified_and_aliases_left_for_kms() {
        let arn = "arn:aws:kms:us-west-2:1:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(key_name("us-west-2", "1", arn), KeyName::Key(arn.into()));
        assert_eq!(
            key_name("us-west-2", "1", "1234abcd-12ab-34cd-56ef-1234567890ab"),
            KeyName::Key(arn.into())
        );
        for alias in ["alias/app", "arn:aws:kms:us-west-2:1:alias/app"] {
            assert_eq!(
                key_name("us-west-2", "1", alias),
                KeyName::Alias(alias.into())
            );
        }
        for managed in [
            "alias/aws/secretsmanager",
            "arn:aws:kms:us-west-2:1:alias/aws/ssm",
        ] {
            assert_eq!(key_name("us-west-2", "1", managed), KeyName::AwsManaged);
        }
    }

    #[test]
    fn parameter_names_come_from_names_or_arns() {
        assert_eq!(parameter_name("/app/db"), "/app/db");
        assert_eq!(parameter_name("plain"), "plain");
        assert_eq!(
            parameter_name("arn:aws:ssm:us-west-2:1:parameter/app/db"),
            "/app/db"
        );
        assert_eq!(
            parameter_name("arn:aws:ssm:us-west-2:1:parameter/plain"),
            "plain"
        );
    }
}

#[cfg(test)]
#[path = "secrets_mock_tests.rs"]
mod mock_tests;
