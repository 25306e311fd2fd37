//! Workload rules: every SecretProviderClass of provider `aws`, and the service accounts whose
//! pods mount them (association or IRSA annotation, the role, its trust, its policies against
//! every object).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Check, list, shell_json};
use crate::aws::policy::{TrustScope, pod_identity_statement};
use crate::diagnose::facts::{AssociationFacts, RoleFacts, Snapshot, SpcFacts};
use crate::diagnose::iam::{self, Assumer, Decision};
use crate::diagnose::spc::{self, ClassObject, Identity, ObjectKind};
use crate::render::csi_driver::AWS_TOKEN_AUDIENCES;
use bootstrap_common::names::IRSA_ROLE_ANNOTATION;

/// A service account and the aws classes its pods mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub namespace: String,
    pub service_account: String,
    pub spcs: Vec<String>,
    /// No pod mounts the class: the service account comes from bootstrap's naming
    /// (`bootstrap-<service account>`) of a class it made.
    pub inferred: bool,
}

/// The classes of provider `aws` doctor looks at (`--namespace` only, when given).
pub fn aws_classes(s: &Snapshot) -> Vec<&SpcFacts> {
    s.spcs
        .as_ref()
        .map(|list| {
            list.iter()
                .filter(|c| c.provider == "aws")
                .filter(|c| s.namespace.as_ref().is_none_or(|ns| &c.namespace == ns))
                .collect()
        })
        .unwrap_or_default()
}

/// The service accounts the aws classes serve: those of the pods mounting them, and, for a
/// class bootstrap made that no pod mounts, the service account its name is for.
pub fn served(s: &Snapshot) -> Vec<Served> {
    let classes = aws_classes(s);
    let is_class =
        |ns: &str, name: &str| classes.iter().any(|c| c.namespace == ns && c.name == name);
    let mut by_sa: BTreeMap<(String, String), (Vec<String>, bool)> = BTreeMap::new();
    for pod in s.pods.as_ref().map(Vec::as_slice).unwrap_or_default() {
        for name in &pod.spcs {
            if is_class(&pod.namespace, name) {
                let entry = by_sa
                    .entry((pod.namespace.clone(), pod.service_account.clone()))
                    .or_default();
                if !entry.0.contains(name) {
                    entry.0.push(name.clone());
                }
            }
        }
    }
    for class in &classes {
        let mounted = by_sa
            .iter()
            .any(|((ns, _), (spcs, _))| ns == &class.namespace && spcs.contains(&class.name));
        if let (false, true, Some(sa)) =
            (mounted, class.owned, class.name.strip_prefix("bootstrap-"))
        {
            let entry = by_sa
                .entry((class.namespace.clone(), sa.to_string()))
                .or_insert((Vec::new(), true));
            entry.0.push(class.name.clone());
        }
    }
    by_sa
        .into_iter()
        .map(|((namespace, service_account), (spcs, inferred))| Served {
            namespace,
            service_account,
            spcs,
            inferred,
        })
        .collect()
}

/// The region a class reads from: its `region` parameter, else the cluster's.
pub fn region_of(s: &Snapshot, class: &SpcFacts) -> String {
    class
        .parameter("region")
        .filter(|r| !r.is_empty())
        .unwrap_or(&s.region)
        .to_string()
}

/// The class's objects, parsed.
pub fn objects_of(class: &SpcFacts) -> Result<Vec<ClassObject>, String> {
    match class.parameter("objects") {
        Some(yaml) => spc::parse_objects(yaml, class.parameter("region")),
        None => Err("it has no objects parameter".into()),
    }
}

/// The ARN of an object: looked up (Secrets Manager) or computed (SSM); `Err` when it was not
/// found or could not be looked up.
pub fn object_arn(s: &Snapshot, region: &str, o: &ClassObject) -> Result<String, String> {
    match s.objects.get(&(region.to_string(), o.kind, o.name.clone())) {
        Some(Ok(Some(arn))) => Ok(arn.clone()),
        Some(Ok(None)) => Err(format!("{} was not found in {region}", o.name)),
        Some(Err(why)) => Err(format!("{} could not be looked up: {why}", o.name)),
        None => match (o.arn(), o.kind) {
            (Some(arn), _) => Ok(arn.to_string()),
            (None, ObjectKind::SsmParameter) => Ok(spc::parameter_arn(region, &s.account, &o.name)),
            (None, ObjectKind::SecretsManager) => Err(format!("{} was not looked up", o.name)),
        },
    }
}

pub(super) fn patch_spc(class: &SpcFacts, parameter: &str, value: &str) -> String {
    let patch = json!({"spec": {"parameters": {parameter: value}}});
    format!(
        "kubectl -n {} patch secretproviderclass {} --type=merge -p {}",
        class.namespace,
        class.name,
        shell_json(&patch)
    )
}

/// Per class: `usePodIdentity`, `objects` (parsed, and found), `region`.
pub fn classes(s: &Snapshot) -> Vec<Check> {
    if let Err(why) = &s.spcs {
        return vec![Check::unread(
            "spc.use-pod-identity",
            "SecretProviderClasses",
            why,
        )];
    }
    let served = served(s);
    let mut checks = Vec::new();
    for class in aws_classes(s) {
        let subject = format!("SecretProviderClass {}", class.reference());
        let users: Vec<String> = served
            .iter()
            .filter(|w| w.namespace == class.namespace && w.spcs.contains(&class.name))
            .map(|w| w.service_account.clone())
            .collect();
        let used = if users.is_empty() {
            "; no pod mounts it".to_string()
        } else {
            format!("; serves service account(s) {}", list(&users))
        };
        let migrate = format!(
            "bootstrap migrate --cluster {} --namespace {}",
            s.cluster, class.namespace
        );
        checks.push(match spc::identity(class.parameter("usePodIdentity")) {
            Identity::PodIdentity => Check::pass(
                "spc.use-pod-identity",
                &subject,
                format!("usePodIdentity {:?}: Pod Identity{used}", class.parameter("usePodIdentity").unwrap_or_default()),
            ),
            Identity::Irsa(None) => Check::warn("spc.use-pod-identity", &subject, format!("usePodIdentity is not set: uses IRSA{used}")).fix(migrate),
            Identity::Irsa(Some(v)) => Check::warn("spc.use-pod-identity", &subject, format!("usePodIdentity {v:?}: uses IRSA{used}")).fix(migrate),
            Identity::Invalid(v) => Check::fail(
                "spc.use-pod-identity",
                &subject,
                format!(
                    "usePodIdentity {v:?} is not a boolean (Go's strconv.ParseBool accepts 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False): every mount of this class fails{used}"
                ),
            )
            .fix(patch_spc(class, "usePodIdentity", "true")),
        });
        let region = region_of(s, class);
        checks.push(match objects_of(class) {
            Err(why) => Check::fail("spc.objects", &subject, format!("{why}: every mount of this class fails"))
                .fix(format!("kubectl -n {} edit secretproviderclass {} (fix spec.parameters.objects)", class.namespace, class.name)),
            Ok(objects) => {
                let mut missing = Vec::new();
                let mut unknown = Vec::new();
                for o in &objects {
                    match s.objects.get(&(region.clone(), o.kind, o.name.clone())) {
                        Some(Ok(None)) => missing.push(o),
                        Some(Err(why)) => unknown.push(format!("{} ({why})", o.name)),
                        _ => {}
                    }
                }
                let named: Vec<String> = objects.iter().map(|o| format!("{} {}", o.kind.as_str(), o.name)).collect();
                if let Some(first) = missing.first() {
                    let lookup = match first.kind {
                        ObjectKind::SecretsManager => format!("aws secretsmanager describe-secret --region {region} --secret-id {}", first.name),
                        ObjectKind::SsmParameter => format!(
                            "aws ssm describe-parameters --region {region} --parameter-filters Key=Name,Values={}",
                            first.name
                        ),
                    };
                    Check::fail(
                        "spc.objects",
                        &subject,
                        format!(
                            "{} not found in {region}: mounts fail with \"not found\"",
                            list(&missing.iter().map(|o| format!("{} {}", o.kind.as_str(), o.name)).collect::<Vec<_>>())
                        ),
                    )
                    .fix(format!("check the name and the region ({lookup})"))
                } else if !unknown.is_empty() {
                    Check::warn("spc.objects", &subject, format!("{} parse; not looked up: {}", list(&named), list(&unknown)))
                } else {
                    Check::pass("spc.objects", &subject, format!("{} object(s), each found in {region}: {}", objects.len(), list(&named)))
                }
            }
        });
        checks.push(match class.parameter("region").filter(|r| !r.is_empty()) {
            Some(r) => Check::pass("spc.region", &subject, format!("region {r}")),
            None => Check::warn(
                "spc.region",
                &subject,
                "no region parameter: the provider falls back to its AWS_REGION, then to the node's topology.kubernetes.io/region label",
            )
            .fix(patch_spc(class, "region", &s.region)),
        });
    }
    checks
}

pub(super) fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn role_account(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

/// What a service account's pods authenticate with, for the role checks.
struct Identified<'a> {
    served: &'a Served,
    pod_identity: bool,
    /// The role assumed first (association or annotation).
    role_arn: String,
    /// The role whose policies read the objects (the target role, when set).
    reading_arn: String,
}

/// Per served service account: the association or annotation its classes expect, then its
/// role's existence, trust and policies.
pub fn service_accounts(s: &Snapshot) -> Vec<Check> {
    let classes = aws_classes(s);
    let mut checks = Vec::new();
    for w in served(s) {
        let key = (w.namespace.clone(), w.service_account.clone());
        let sa = s.service_accounts.get(&key).cloned().unwrap_or(Ok(None));
        if w.inferred && matches!(sa, Ok(None)) {
            continue;
        }
        let subject = format!("service account {}/{}", w.namespace, w.service_account);
        let mine: Vec<&SpcFacts> = classes
            .iter()
            .copied()
            .filter(|c| c.namespace == w.namespace && w.spcs.contains(&c.name))
            .collect();
        let (mut pi, mut irsa) = (Vec::new(), Vec::new());
        for c in &mine {
            match spc::identity(c.parameter("usePodIdentity")) {
                Identity::PodIdentity => pi.push(c.name.clone()),
                Identity::Irsa(_) => irsa.push(c.name.clone()),
                Identity::Invalid(_) => {}
            }
        }
        let annotation = match &sa {
            Ok(Some(f)) => f.role_arn.clone(),
            _ => None,
        };
        if let Ok(None) = sa {
            checks.push(
                Check::fail(
                    "sa.exists",
                    &subject,
                    format!(
                        "does not exist, but pods mounting {} name it",
                        list(&w.spcs)
                    ),
                )
                .fix(format!(
                    "kubectl -n {} create serviceaccount {}",
                    w.namespace, w.service_account
                )),
            );
            continue;
        }
        let mut identified = Vec::new();
        if !pi.is_empty() {
            match s.associations.get(&key) {
                None | Some(Err(_)) => {
                    let why = match s.associations.get(&key) {
                        Some(Err(why)) => why.clone(),
                        _ => "not read".into(),
                    };
                    checks.push(Check::unread("sa.association", &subject, &why));
                }
                Some(Ok(None)) => {
                    let role = annotation
                        .clone()
                        .or_else(|| bootstrap_role(s, &w))
                        .unwrap_or_else(|| "<ROLE_ARN>".into());
                    checks.push(
                        Check::fail(
                            "sa.association",
                            &subject,
                            format!(
                                "no Pod Identity association on cluster {}, but {} use(s) Pod Identity: the agent refuses its token",
                                s.cluster,
                                list(&pi)
                            ),
                        )
                        .fix(format!(
                            "aws eks create-pod-identity-association --cluster-name {} --namespace {} --service-account {} --role-arn {role}",
                            s.cluster, w.namespace, w.service_account
                        )),
                    );
                }
                Some(Ok(Some(AssociationFacts {
                    role_arn,
                    target_role_arn,
                }))) => {
                    let target = target_role_arn
                        .as_ref()
                        .map(|t| format!(", target role {t}"))
                        .unwrap_or_default();
                    checks.push(Check::pass(
                        "sa.association",
                        &subject,
                        format!("Pod Identity association with role {role_arn}{target}"),
                    ));
                    identified.push(Identified {
                        served: &w,
                        pod_identity: true,
                        role_arn: role_arn.clone(),
                        reading_arn: target_role_arn.clone().unwrap_or_else(|| role_arn.clone()),
                    });
                }
            }
        }
        if !irsa.is_empty() {
            match (&sa, &annotation) {
                (Err(why), _) => checks.push(Check::unread("sa.irsa-annotation", &subject, why)),
                (_, Some(arn)) => {
                    checks.push(Check::pass("sa.irsa-annotation", &subject, format!("{IRSA_ROLE_ANNOTATION}: {arn} (for {})", list(&irsa))));
                    identified.push(Identified {
                        served: &w,
                        pod_identity: false,
                        role_arn: arn.clone(),
                        reading_arn: arn.clone(),
                    });
                }
                (_, None) => checks.push(
                    Check::fail(
                        "sa.irsa-annotation",
                        &subject,
                        format!(
                            "no {IRSA_ROLE_ANNOTATION} annotation, but {} use(s) IRSA: mounts fail with \"An IAM role must be associated with service account\"",
                            list(&irsa)
                        ),
                    )
                    .fix(format!(
                        "kubectl -n {} annotate serviceaccount {} {IRSA_ROLE_ANNOTATION}=<ROLE_ARN>, or move to Pod Identity: bootstrap migrate --cluster {} --namespace {}",
                        w.namespace, w.service_account, s.cluster, w.namespace
                    )),
                ),
            }
        }
        for id in identified {
            let objects: Vec<(String, ClassObject)> = mine
                .iter()
                .filter(|c| {
                    let is_pi =
                        spc::identity(c.parameter("usePodIdentity")) == Identity::PodIdentity;
                    is_pi == id.pod_identity
                })
                .flat_map(|c| {
                    let region = region_of(s, c);
                    objects_of(c)
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |o| (region.clone(), o))
                })
                .collect();
            checks.extend(role_checks(s, &subject, &id, &objects));
        }
    }
    checks
}

/// The role bootstrap would have made for this workload, when it exists.
fn bootstrap_role(s: &Snapshot, w: &Served) -> Option<String> {
    let arn = s
        .bootstrap_roles
        .get(&(w.namespace.clone(), w.service_account.clone()))?;
    matches!(s.roles.get(arn), Some(Ok(Some(_)))).then(|| arn.clone())
}

fn with_statement(trust: Option<&Value>, statement: Value) -> Value {
    let mut statements: Vec<Value> = match trust.and_then(|t| t.get("Statement")) {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    statements.push(statement);
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn role_checks(
    s: &Snapshot,
    subject: &str,
    id: &Identified<'_>,
    objects: &[(String, ClassObject)],
) -> Vec<Check> {
    let mut checks = Vec::new();
    let w = id.served;
    let who = Assumer {
        scope: TrustScope {
            account: &s.account,
            cluster: &s.cluster,
            cluster_arn: &s.cluster_arn,
            namespace: &w.namespace,
            service_account: &w.service_account,
        },
        oidc_issuer: s.oidc_issuer.as_deref(),
    };
    let role = match lookup_role(s, subject, &id.role_arn) {
        Ok(role) => role,
        Err(check) => return vec![*check],
    };
    let trust_check = match (&role.trust, id.pod_identity) {
        (None, _) => Check::unread(
            "sa.trust",
            subject,
            &format!(
                "the trust policy of role {} could not be decoded",
                role.name
            ),
        ),
        (Some(trust), true) => match iam::pod_identity_trust(trust, &who) {
            Ok(saw) => Check::pass("sa.trust", subject, format!("role {} {saw}", role.name)),
            Err(problem) => {
                let statement = pod_identity_statement(&who.scope);
                Check::fail(
                    "sa.trust",
                    subject,
                    format!("role {}: {problem}", role.name),
                )
                .fix(format!(
                    "aws iam update-assume-role-policy --role-name {} --policy-document {}",
                    role.name,
                    shell_json(&with_statement(Some(trust), statement))
                ))
            }
        },
        (Some(trust), false) => match iam::irsa_trust(trust, &who) {
            Ok(saw) => Check::pass("sa.trust", subject, format!("role {} {saw}", role.name)),
            Err(problem) => {
                let check = Check::fail(
                    "sa.trust",
                    subject,
                    format!("role {}: {problem}", role.name),
                );
                match &s.oidc_issuer {
                    Some(issuer) => {
                        let host = issuer.trim_start_matches("https://").trim_end_matches('/');
                        let statement = json!({"Effect": "Allow",
                            "Principal": {"Federated": format!("arn:aws:iam::{}:oidc-provider/{host}", s.account)},
                            "Action": "sts:AssumeRoleWithWebIdentity",
                            "Condition": {"StringEquals": {
                                format!("{host}:sub"): format!("system:serviceaccount:{}:{}", w.namespace, w.service_account),
                                format!("{host}:aud"): AWS_TOKEN_AUDIENCES[0]}}});
                        check.fix(format!(
                            "aws iam update-assume-role-policy --role-name {} --policy-document {}",
                            role.name,
                            shell_json(&with_statement(Some(trust), statement))
                        ))
                    }
                    None => check.fix(format!(
                        "bootstrap migrate --cluster {} --namespace {}",
                        s.cluster, w.namespace
                    )),
                }
            }
        },
    };
    checks.push(trust_check);
    let reading = if id.reading_arn == id.role_arn {
        role
    } else {
        match lookup_role(s, subject, &id.reading_arn) {
            Ok(r) => r,
            Err(check) => {
                checks.push(*check);
                return checks;
            }
        }
    };
    checks.push(policy_check(s, subject, reading, objects));
    checks
}

fn lookup_role<'a>(s: &'a Snapshot, subject: &str, arn: &str) -> Result<&'a RoleFacts, Box<Check>> {
    if role_account(arn) != s.account {
        return Err(Box::new(Check::warn(
            "sa.role",
            subject,
            format!(
                "role {arn} is in account {}, not {}: its trust and policies were not read",
                role_account(arn),
                s.account
            ),
        )));
    }
    match s.roles.get(arn) {
        Some(Ok(Some(role))) => Ok(role),
        Some(Ok(None)) => Err(Box::new(
            Check::fail("sa.role", subject, format!("role {arn} does not exist: credentials cannot be issued"))
                .fix(format!("aws iam get-role --role-name {} (create it, or point the association or annotation at an existing role)", role_name(arn))),
        )),
        Some(Err(why)) => Err(Box::new(Check::unread("sa.role", subject, &format!("role {arn}: {why}")))),
        None => Err(Box::new(Check::unread("sa.role", subject, &format!("role {arn} was not read")))),
    }
}

fn policy_check(
    s: &Snapshot,
    subject: &str,
    role: &RoleFacts,
    objects: &[(String, ClassObject)],
) -> Check {
    let mut allowed = Vec::new();
    let mut refused: Vec<(ObjectKind, String, String)> = Vec::new();
    let mut skipped = Vec::new();
    let mut conditional = false;
    let mut denies: Vec<String> = Vec::new();
    for (region, o) in objects {
        let arn = match object_arn(s, region, o) {
            Ok(arn) => arn,
            Err(why) => {
                skipped.push(why);
                continue;
            }
        };
        let e = iam::evaluate(&role.policies, o.kind.action(), &arn);
        conditional |= e.allow_conditional;
        denies.extend(e.conditional_denies);
        match e.decision {
            Decision::Allowed { by } => allowed.push(format!("{arn} (by {by})")),
            Decision::Denied { by } => refused.push((o.kind, arn, format!("denied by {by}"))),
            Decision::NotAllowed => refused.push((o.kind, arn, "no Allow matches".into())),
        }
    }
    denies.sort();
    denies.dedup();
    let mut notes = vec!["conditions were not evaluated".to_string()];
    if conditional {
        notes.push("an Allow that matched has conditions, assumed to hold".into());
    }
    if !denies.is_empty() {
        notes.push(format!(
            "Deny statements with conditions assumed not to apply: {}",
            list(&denies)
        ));
    }
    if !skipped.is_empty() {
        notes.push(format!("not evaluated: {}", list(&skipped)));
    }
    if !role.unread.is_empty() {
        notes.push(format!("policies not readable: {}", list(&role.unread)));
    }
    notes.push("permission boundaries, SCPs and resource policies were not read".into());
    let notes = notes.join("; ");
    if refused.is_empty() {
        let status_saw = format!(
            "role {} allows reading all {} object(s) of its classes ({} policy document(s) evaluated): {}; {notes}",
            role.name,
            allowed.len(),
            role.policies.len(),
            list(&allowed)
        );
        return if skipped.is_empty() {
            Check::pass("sa.policy", subject, status_saw)
        } else {
            Check::warn("sa.policy", subject, status_saw)
        };
    }
    let mut statements = Vec::new();
    for kind in [ObjectKind::SecretsManager, ObjectKind::SsmParameter] {
        let arns: Vec<&str> = refused
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, a, _)| a.as_str())
            .collect();
        if arns.is_empty() {
            continue;
        }
        let actions = match kind {
            ObjectKind::SecretsManager => json!([
                "secretsmanager:GetSecretValue",
                "secretsmanager:DescribeSecret"
            ]),
            ObjectKind::SsmParameter => json!(["ssm:GetParameters"]),
        };
        statements.push(json!({"Effect": "Allow", "Action": actions, "Resource": arns}));
    }
    let document = json!({"Version": "2012-10-17", "Statement": statements});
    let any_denied = refused.iter().any(|(_, _, why)| why.starts_with("denied"));
    let mut fix = format!(
        "aws iam put-role-policy --role-name {} --policy-name doctor-read-secrets --policy-document {}",
        role.name,
        shell_json(&document)
    );
    if any_denied {
        fix = format!("remove or narrow the Deny named above, then: {fix}");
    }
    Check::fail(
        "sa.policy",
        subject,
        format!(
            "role {} does not allow {}: mounts fail with access denied; {notes}",
            role.name,
            list(
                &refused
                    .iter()
                    .map(|(k, a, why)| format!("{} on {a} ({why})", k.action()))
                    .collect::<Vec<_>>()
            )
        ),
    )
    .fix(fix)
}

#[cfg(test)]
#[path = "workloads_tests.rs"]
mod tests;
