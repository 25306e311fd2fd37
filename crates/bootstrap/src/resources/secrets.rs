//! A workload's secrets: as the user names them ([`SecretRef`], parsed once, from a flag or the
//! teams file), each resolved to its exact ARN (and KMS key), read-only; the demo secret,
//! created (and owned) when asked; and the objects a SecretProviderClass names, for doctor.
//! Values are never printed or kept: the one read of a value ([`json_key_names`], for a synced
//! `allKeys` secret) keeps the top-level key names of the JSON and drops the rest at once.

use super::facts::problem;
use super::{ResolvedSecret, owned};
use crate::aws::{Clients, ErrorKind, classify};
use crate::diagnose::facts::{ObjectKey, Seen};
use crate::diagnose::spc::{self, ObjectKind};
use crate::error::StepError;
use crate::plan::{Action, Change, Op};

/// Where a secret lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

/// AWS's longest Secrets Manager secret name.
pub const MAX_SECRET_NAME: usize = 512;
/// AWS's longest SSM parameter name (with its path).
pub const MAX_PARAMETER_NAME: usize = 1011;
/// The longest ARN IAM takes.
pub const MAX_ARN: usize = 2048;

/// An input as an error quotes it: whole when short, else its start and its length (a
/// megabyte of input is never echoed back).
pub fn quoted(input: &str) -> String {
    if input.len() <= 100 {
        return format!("{input:?}");
    }
    let cut = (0..=80)
        .rev()
        .find(|i| input.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{:?}… ({} characters)", &input[..cut], input.len())
}

/// Why `name` is no name of that kind (too long, or a character AWS does not allow: Secrets
/// Manager `A-Za-z0-9/_+=.@-`, SSM `A-Za-z0-9/_.-`), or `None`.
fn name_problem(kind: SecretKind, name: &str) -> Option<String> {
    let (max, extra, what) = match kind {
        SecretKind::SecretsManager => (MAX_SECRET_NAME, "/_+=.@-", "a Secrets Manager secret name"),
        SecretKind::SsmParameter => (MAX_PARAMETER_NAME, "/_.-", "an SSM parameter name"),
    };
    if name.len() > max {
        return Some(format!(
            "{} is not {what}: longer than AWS's {max} characters",
            quoted(name)
        ));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(*c)))
        .map(|c| {
            format!(
                "{} is not {what}: {c:?} is not allowed in one",
                quoted(name)
            )
        })
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
            if let Some(problem) = name_problem(SecretKind::SsmParameter, name) {
                return Err(problem);
            }
            return Ok(Self {
                kind: SecretKind::SsmParameter,
                id: name.into(),
            });
        }
        if input.starts_with("arn:") {
            if input.len() > MAX_ARN {
                return Err(format!(
                    "{} is no ARN: longer than {MAX_ARN} characters",
                    quoted(input)
                ));
            }
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
                        "{} is not a Secrets Manager secret or SSM parameter ARN",
                        quoted(input)
                    ));
                }
            };
            return Ok(Self {
                kind,
                id: input.into(),
            });
        }
        if input.contains("..") {
            return Err(format!("{} is not a valid secret name", quoted(input)));
        }
        if let Some(problem) = name_problem(SecretKind::SecretsManager, input) {
            return Err(problem);
        }
        Ok(Self {
            kind: SecretKind::SecretsManager,
            id: input.into(),
        })
    }
}

impl SecretRef {
    /// Parses a prefix: `NAME-PREFIX` (Secrets Manager) or `ssm:/PATH` (SSM). A prefix is a
    /// name, never an ARN, and never holds `*` or `?` (they would widen the IAM pattern).
    pub fn parse_prefix(input: &str) -> Result<Self, String> {
        let raw = input.trim();
        let (kind, id) = match raw.strip_prefix("ssm:") {
            Some(path) => (SecretKind::SsmParameter, path),
            None => (SecretKind::SecretsManager, raw),
        };
        if id.is_empty() {
            return Err("a prefix must not be empty".into());
        }
        if id.starts_with("arn:") {
            return Err(format!(
                "prefix {raw:?} is an ARN; a prefix is a name (\"teams/payments/\" or \"ssm:/teams/payments/\")"
            ));
        }
        if id.chars().all(|c| c == '/') {
            return Err(format!(
                "prefix {raw:?} would match every secret of the account; name a path under it"
            ));
        }
        if id.contains(['*', '?']) {
            return Err(format!(
                "prefix {raw:?} holds a wildcard ('*' or '?'); a prefix matches by itself"
            ));
        }
        if id.contains("..") || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{} is not a valid prefix", quoted(raw)));
        }
        if let Some(problem) = name_problem(kind, id) {
            return Err(format!("prefix: {problem}"));
        }
        if kind == SecretKind::SsmParameter && !id.starts_with('/') {
            return Err(format!(
                "SSM prefix {raw:?} must be a path starting with '/' (GetParametersByPath)"
            ));
        }
        Ok(Self {
            kind,
            id: id.into(),
        })
    }
}

/// What the teams file asks of a secret beyond reading one exact name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretExtras {
    /// The object is a prefix: `object_name` is the prefix, `arn` its ARN pattern (SSM: the
    /// path's ARN; the policy adds `path/*`).
    pub prefix: bool,
    /// A prefix's direct children only (`recursive: false`).
    pub direct_children_only: bool,
    /// Every top-level key of the JSON secret as a file.
    pub all_keys: bool,
    /// Missing is not an error.
    pub optional: bool,
    /// An optional secret that did not exist when resolved (its ARN is derived).
    pub missing: bool,
    /// The Kubernetes Secret its files are synced into.
    pub sync: Option<String>,
    /// `allKeys` + `sync`: the JSON's top-level key names, read once (never a value).
    pub keys: Vec<String>,
    /// The same secret in the failover region: its ARN (or ARN pattern) and customer key.
    pub replica_arn: Option<String>,
    pub replica_kms_key_arn: Option<String>,
    /// A prefix: the customer keys of what it matches now (either region).
    pub prefix_kms_key_arns: Vec<String>,
}

/// The customer keys of what a prefix matches now, in `aws`'s region (metadata only:
/// ListSecrets with a name filter, DescribeParameters under the path). A secret added later
/// under another key is covered by the next run.
pub async fn prefix_kms_keys(
    aws: &Clients,
    account: &str,
    prefix: &SecretRef,
    recursive: bool,
) -> Result<Vec<String>, StepError> {
    let region = aws.region.as_str();
    let mut keys = Vec::new();
    match prefix.kind {
        SecretKind::SecretsManager => {
            let filter = aws_sdk_secretsmanager::types::Filter::builder()
                .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                .values(&prefix.id)
                .build();
            let mut pages = aws
                .secrets
                .list_secrets()
                .filters(filter)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    classify(
                        "list",
                        format!("secrets under {} in {region}", prefix.id),
                        e,
                    )
                })?;
                for s in page.secret_list() {
                    // AWS's name filter ignores case; the IAM pattern does not.
                    if let (Some(name), Some(key)) = (s.name(), s.kms_key_id())
                        && name.starts_with(&prefix.id)
                        && let Some(arn) = kms_key_arn(aws, region, account, name, key).await?
                    {
                        keys.push(arn);
                    }
                }
            }
        }
        SecretKind::SsmParameter => {
            let path = format!("/{}", prefix.id.trim_matches('/'));
            let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Path")
                .option(if recursive { "Recursive" } else { "OneLevel" })
                .values(&path)
                .build()
                .map_err(|e| {
                    StepError::problem(format!(
                        "failed to build the DescribeParameters filter for SSM path {path}: {e}"
                    ))
                })?;
            let mut pages = aws
                .ssm
                .describe_parameters()
                .parameter_filters(filter)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    classify(
                        "describe",
                        format!("SSM parameters under {path} in {region}"),
                        e,
                    )
                })?;
                for p in page.parameters() {
                    if let (Some(name), Some(key)) = (p.name(), p.key_id())
                        && let Some(arn) = kms_key_arn(aws, region, account, name, key).await?
                    {
                        keys.push(arn);
                    }
                }
            }
        }
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// The ARN a prefix grants: Secrets Manager `secret:PREFIX*`; SSM the path's parameter ARN
/// (without a trailing `/`; the policy adds `path/*`).
pub fn prefix_arn(region: &str, account: &str, prefix: &SecretRef) -> String {
    match prefix.kind {
        SecretKind::SecretsManager => {
            format!(
                "arn:aws:secretsmanager:{region}:{account}:secret:{}*",
                prefix.id
            )
        }
        SecretKind::SsmParameter => format!(
            "arn:aws:ssm:{region}:{account}:parameter/{}",
            prefix.id.trim_matches('/')
        ),
    }
}

/// An ARN moved to another region (a replica's ARN keeps its name and suffix).
pub fn in_region(arn: &str, region: &str) -> String {
    let mut parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" {
        parts[3] = region;
        parts.join(":")
    } else {
        arn.to_string()
    }
}

/// The top-level key names of a JSON secret (`GetSecretValue`, read-only). The value is parsed
/// without keeping any value of it and dropped before this returns; no error carries it.
pub async fn json_key_names(aws: &Clients, id: &str) -> Result<Vec<String>, StepError> {
    let out = aws
        .secrets
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| classify("read the key names of", format!("secret {id}"), e))?;
    let keys = out.secret_string().map(key_names);
    drop(out);
    match keys {
        Some(Some(keys)) => Ok(keys),
        _ => Err(StepError::problem(format!(
            "secret {id} is not a JSON object (allKeys with sync needs one to name its keys)"
        ))
        .with_hint("store the secret as a JSON object, or sync named files instead of allKeys")),
    }
}

/// The top-level keys of a JSON object, its values skipped unread; `None` if it is not one.
fn key_names(text: &str) -> Option<Vec<String>> {
    let map: std::collections::BTreeMap<String, serde::de::IgnoredAny> =
        serde_json::from_str(text).ok()?;
    Some(map.into_keys().collect())
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
    let arn = format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-??????");
    ResolvedSecret::plain(SecretKind::SecretsManager, name, arn, None)
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
    resolve_maybe(aws, region, account, offline_region, secret, false).await
}

/// As [`resolve`]; an `optional` secret that does not exist resolves to its derived ARN (the
/// name with AWS's `-??????` suffix as a wildcard), so the policy is ready when it appears.
pub async fn resolve_maybe(
    aws: Option<&Clients>,
    region: &str,
    account: &str,
    offline_region: bool,
    secret: &SecretRef,
    optional: bool,
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
        return Ok(ResolvedSecret::plain(secret.kind, arn.clone(), arn, None));
    };
    let not_found = |what: &str| {
        if optional {
            // The provider looks it up by name (an ARN would need its random suffix).
            let mut missing = ResolvedSecret::plain(
                secret.kind,
                secret.id.clone(),
                offline_arn(region, account, secret),
                None,
            );
            missing.extras.missing = true;
            return Ok(missing);
        }
        Err(StepError::problem(format!(
            "{what} {} was not found in region {region}",
            secret.id
        ))
        .with_hint(
            "check the name and --region; pass --create-demo-secret to let bootstrap create one",
        ))
    };
    let (arn, key_id) = match secret.kind {
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
                    return if err.is(ErrorKind::NotFound) {
                        not_found("Secrets Manager secret")
                    } else {
                        Err(err.into())
                    };
                }
            };
            let arn = out.arn().unwrap_or(&secret.id).to_string();
            (arn, out.kms_key_id().map(str::to_string))
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
                return not_found("SSM parameter");
            };
            let arn = found
                .arn()
                .map(str::to_string)
                .unwrap_or_else(|| offline_arn(region, account, secret));
            (arn, found.key_id().map(str::to_string))
        }
    };
    let kms_key_arn = match key_id {
        Some(key) => kms_key_arn(aws, region, account, &secret.id, &key).await?,
        None => None,
    };
    Ok(ResolvedSecret::plain(
        secret.kind,
        arn.clone(),
        arn,
        kms_key_arn,
    ))
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
    fn names_aws_cannot_hold_are_refused_and_never_echoed_whole() {
        let long = "a".repeat(MAX_SECRET_NAME + 1);
        let e = SecretRef::parse(&long).unwrap_err();
        assert!(e.contains("513 characters") && e.len() < 300, "{e}");
        assert!(SecretRef::parse(&"a".repeat(MAX_SECRET_NAME)).is_ok());
        let e = SecretRef::parse(&format!("ssm:/{}", "p".repeat(MAX_PARAMETER_NAME))).unwrap_err();
        assert!(e.contains("SSM parameter name"), "{e}");
        let huge = format!(
            "arn:aws:secretsmanager:us-west-2:1:secret:{}",
            "x".repeat(1 << 20)
        );
        let e = SecretRef::parse(&huge).unwrap_err();
        assert!(e.len() < 300, "{} bytes", e.len());
        // Characters AWS allows in no name: a wildcard would widen the IAM pattern.
        for bad in ["team/*", "team/db?", "a;b", "tab\there", "ssm:/a*"] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
        for good in ["team-a/db_password+v2=x@y.z", "ssm:/team-a/db.url_v2"] {
            assert!(SecretRef::parse(good).is_ok(), "{good}");
        }
        let e = SecretRef::parse_prefix(&"a/".repeat(400)).unwrap_err();
        assert!(e.starts_with("prefix:") && e.len() < 300, "{e}");
    }

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
