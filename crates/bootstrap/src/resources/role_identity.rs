//! Which IAM role is a workload's: an injective name for new roles, and the rules that find a
//! role by its tags, its trust and the Pod Identity association that names it — never by its
//! name alone — so that roles made by earlier releases (other names) keep being used.

use serde_json::Value;
use sha2::Digest;

use super::association::LiveAssociation;
use super::role::LiveRole;
use crate::error::StepError;
use crate::service_account::ServiceAccountRef;

/// IAM's limit on role names.
const MAX_NAME: usize = 64;
/// Hex characters of SHA-256 kept in a shortened name (80 bits).
const HASH_HEX: usize = 20;
/// Marks a shortened name; never produced by the readable form (IAM allows it in names).
const HASH_MARK: char = '@';

/// `bootstrap-<cluster>.<namespace>.<service account>` — readable and injective: EKS cluster
/// names and namespaces cannot contain `.`, so the first two dots split the triple back.
/// IAM compares names case-insensitively, so the readable form is used only for lowercase
/// triples of those alphabets that fit in 64 characters; any other triple is named
/// `<readable prefix>@<20 hex of SHA-256 of the length-prefixed triple>`, which no readable
/// name contains (`@`).
pub fn role_name(cluster: &str, namespace: &str, service_account: &str) -> String {
    let readable = format!("bootstrap-{cluster}.{namespace}.{service_account}");
    let label = |s: &str, dots: bool| {
        !s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.')
            })
    };
    let cluster_ok = !cluster.is_empty()
        && cluster
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if cluster_ok
        && label(namespace, false)
        && label(service_account, true)
        && readable.len() <= MAX_NAME
    {
        return readable;
    }
    let mut hasher = sha2::Sha256::new();
    for part in [cluster, namespace, service_account] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(HASH_HEX)
        .collect();
    let prefix: String = readable
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c if c.is_ascii_alphanumeric() || "-_.".contains(c) => c,
            _ => '-',
        })
        .take(MAX_NAME - HASH_HEX - 1)
        .collect();
    format!("{prefix}{HASH_MARK}{hex}")
}

/// The name the releases before this one gave a role (`bootstrap-<cluster>-<ns>-<sa>`, not
/// injective). Only for messages and tests: roles are never recognised by it.
pub fn legacy_role_name(cluster: &str, namespace: &str, service_account: &str) -> String {
    let full = format!("bootstrap-{cluster}-{namespace}-{service_account}");
    let clean = bootstrap_common::names::iam_name_chars(&full, '-');
    if clean.len() <= MAX_NAME {
        return clean;
    }
    let hash = full.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{}-{hash:08x}", &clean[..55])
}

/// Where a role's claim to serve a workload comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimSource {
    /// The `bootstrap.podid/namespace` and `bootstrap.podid/service-account` tags (this release).
    Tags,
    /// The session-tag conditions of its trust (roles of earlier releases).
    Trust,
}

impl std::fmt::Display for ClaimSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClaimSource::Tags => "tags",
            ClaimSource::Trust => "trust policy",
        })
    }
}

/// The workload a role says it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub service_account: ServiceAccountRef,
    pub source: ClaimSource,
}

/// What the role says it serves: its tags first; without them, the one namespace and service
/// account its trust's session-tag conditions name; `None` when neither says (a trust
/// without conditions, or naming several).
pub fn claim(live: &LiveRole) -> Option<Claim> {
    if let Some(tagged) = &live.tagged_for {
        return Some(Claim {
            service_account: tagged.clone(),
            source: ClaimSource::Tags,
        });
    }
    let trust = live.trust.as_ref()?;
    let namespace = only_condition(trust, "aws:RequestTag/kubernetes-namespace")?;
    let service_account = only_condition(trust, "aws:RequestTag/kubernetes-service-account")?;
    Some(Claim {
        service_account: ServiceAccountRef::new(namespace, service_account),
        source: ClaimSource::Trust,
    })
}

/// The single value every `StringEquals` condition on `key` in the document names.
fn only_condition(doc: &Value, key: &str) -> Option<String> {
    let statements = match doc.get("Statement")? {
        Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    let mut found: Option<String> = None;
    for st in &statements {
        let Some(v) = st
            .pointer("/Condition/StringEquals")
            .and_then(|c| c.get(key))
        else {
            continue;
        };
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Array(list) if list.len() == 1 => list[0].as_str()?.to_string(),
            _ => return None,
        };
        match &found {
            Some(f) if *f != v => return None,
            _ => found = Some(v),
        }
    }
    found
}

/// Whether an owned role may be taken as the role of `namespace/service_account`, given the
/// association of that service account (if any): its claim must name the workload, or, for a
/// role of an earlier release that claims nothing, the workload's own association must name
/// it. `Err` carries what it claims instead.
pub fn serves(
    live: &LiveRole,
    namespace: &str,
    service_account: &str,
    association: Option<&LiveAssociation>,
) -> Result<(), String> {
    match claim(live) {
        Some(c) if c.service_account.is(namespace, service_account) => Ok(()),
        Some(c) => Err(format!("made for {} (its {})", c.service_account, c.source)),
        None if association.is_some_and(|a| a.role_arn == live.arn) => Ok(()),
        None => Err("its tags and trust policy name no namespace and service account".into()),
    }
}

/// The role a workload uses, and what was observed of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    pub name: String,
    pub live: Option<LiveRole>,
}

/// Chooses the role of `namespace/service_account`:
/// - the association names a role bootstrap made for this cluster (an earlier release's name)
///   that serves this workload: that role, as it is (no new role, no association update);
///   one made for another workload is a conflict (`force`: a new role, and the association
///   is pointed at it);
/// - otherwise the role named [`role_name`]: created when absent, adopted as is when not
///   bootstrap's, a conflict when bootstrap made it for another workload.
pub fn choose(
    cluster: &str,
    namespace: &str,
    service_account: &str,
    force: bool,
    at_name: Option<LiveRole>,
    association: Option<&LiveAssociation>,
    associated: Option<LiveRole>,
) -> Result<Chosen, StepError> {
    let name = role_name(cluster, namespace, service_account);
    if let Some(other) = associated.filter(|r| r.owned && r.name != name) {
        match serves(&other, namespace, service_account, association) {
            Ok(()) => {
                return Ok(Chosen {
                    name: other.name.clone(),
                    live: Some(other),
                });
            }
            Err(why) if !force => {
                return Err(StepError::problem(format!(
                    "the Pod Identity association of {namespace}/{service_account} names IAM role {}, which bootstrap {why}",
                    other.name
                ))
                .with_hint(format!(
                    "pass --force to give {namespace}/{service_account} its own role {name} (the association is pointed at it), or fix the association"
                )));
            }
            Err(_) => {}
        }
    }
    if let Some(live) = at_name.as_ref().filter(|r| r.owned)
        && let Err(why) = serves(live, namespace, service_account, association)
    {
        return Err(StepError::problem(format!(
            "IAM role {name} exists and bootstrap {why}, not for {namespace}/{service_account}: refusing to rewrite it"
        ))
        .with_hint("delete or retag that role if it is stale (bootstrap down), then re-run"));
    }
    Ok(Chosen {
        name,
        live: at_name,
    })
}

#[cfg(test)]
#[path = "role_identity_tests.rs"]
mod tests;
