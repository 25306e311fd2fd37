//! IAM documents bootstrap writes: the Pod Identity trust policy and least-privilege policies.

use serde_json::{Value, json};

/// The principal EKS Pod Identity assumes roles as.
pub use bootstrap_common::names::POD_IDENTITY_PRINCIPAL;

/// Who a workload's role is for: only its own cluster, namespace and service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustScope<'a> {
    pub account: &'a str,
    pub cluster: &'a str,
    /// The cluster's ARN (DescribeCluster's, or computed offline): a same-named cluster in
    /// another region or account has another one.
    pub cluster_arn: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
}

/// Trust `pods.eks.amazonaws.com` with `sts:AssumeRole` and `sts:TagSession`, only under the
/// session tags Pod Identity sets for this workload and only from this account (the EKS user
/// guide's recommendation: without the conditions any association in the account that names
/// the role could use it).
pub fn pod_identity_trust(scope: &TrustScope<'_>) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [pod_identity_statement(scope)]
    })
}

/// The one trust statement for Pod Identity (also added to IRSA roles by `migrate`). The
/// cluster is pinned by name and by ARN (Pod Identity sets both session tags).
pub fn pod_identity_statement(scope: &TrustScope<'_>) -> Value {
    json!({
        "Sid": "EksPodIdentity",
        "Effect": "Allow",
        "Principal": {"Service": POD_IDENTITY_PRINCIPAL},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {
            "aws:SourceAccount": scope.account,
            "aws:RequestTag/eks-cluster-name": scope.cluster,
            "aws:RequestTag/eks-cluster-arn": scope.cluster_arn,
            "aws:RequestTag/kubernetes-namespace": scope.namespace,
            "aws:RequestTag/kubernetes-service-account": scope.service_account,
        }}
    })
}

/// What a workload's role may read: exact ARNs, and the ARN patterns of prefixes the teams
/// file names (never wider than the prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub secret_arns: Vec<String>,
    pub parameter_arns: Vec<String>,
    /// Customer-managed KMS keys protecting any of them (in either region).
    pub kms_key_arns: Vec<String>,
    /// The region, for the `kms:ViaService` condition.
    pub region: String,
    /// Secrets Manager prefixes as ARN patterns (`...:secret:teams/payments/*`).
    pub secret_prefixes: Vec<String>,
    /// SSM paths: each path's parameter ARN and `path/*`.
    pub parameter_paths: Vec<String>,
    /// The failover region: its services may decrypt too.
    pub failover_region: Option<String>,
}

/// The inline policy: GetSecretValue/DescribeSecret on the secrets, GetParameters on the
/// parameters, and kms:Decrypt through those services when a customer key is used. A prefix
/// adds GetSecretValue/DescribeSecret on its ARN pattern and ListSecrets (filters need it;
/// AWS authorizes it only on "*"); an SSM path adds GetParametersByPath/GetParameters/
/// GetParameter on the path and `path/*`.
pub fn read_secrets_policy(grants: &Grants) -> Value {
    let mut statements = Vec::new();
    if !grants.secret_arns.is_empty() {
        statements.push(allow(
            "ReadSecrets",
            READ_SECRET,
            json!(sorted(&grants.secret_arns)),
        ));
    }
    if !grants.secret_prefixes.is_empty() {
        statements.push(allow(
            "ReadSecretsUnderPrefixes",
            READ_SECRET,
            json!(sorted(&grants.secret_prefixes)),
        ));
        // A list action: IAM authorizes it only on "*". It returns names and metadata, never
        // a value (each value still needs GetSecretValue on the pattern above).
        statements.push(allow(
            "ListSecretsForPrefixes",
            &["secretsmanager:ListSecrets"],
            json!("*"),
        ));
    }
    if !grants.secret_arns.is_empty() || !grants.secret_prefixes.is_empty() {
        statements.push(batch_read_secrets());
    }
    if !grants.parameter_arns.is_empty() {
        statements.push(allow(
            "ReadParameters",
            &["ssm:GetParameters"],
            json!(sorted(&grants.parameter_arns)),
        ));
    }
    if !grants.parameter_paths.is_empty() {
        statements.push(allow(
            "ReadParametersUnderPaths",
            &[
                "ssm:GetParametersByPath",
                "ssm:GetParameters",
                "ssm:GetParameter",
            ],
            json!(sorted(&grants.parameter_paths)),
        ));
    }
    if !grants.kms_key_arns.is_empty() {
        let regions = std::iter::once(&grants.region).chain(&grants.failover_region);
        let mut services = Vec::new();
        for region in regions {
            if !grants.secret_arns.is_empty() || !grants.secret_prefixes.is_empty() {
                services.push(format!("secretsmanager.{region}.amazonaws.com"));
            }
            if !grants.parameter_arns.is_empty() || !grants.parameter_paths.is_empty() {
                services.push(format!("ssm.{region}.amazonaws.com"));
            }
        }
        let mut decrypt = allow(
            "DecryptViaService",
            &["kms:Decrypt"],
            json!(sorted(&grants.kms_key_arns)),
        );
        decrypt["Condition"] = json!({"StringEquals": {"kms:ViaService": services}});
        statements.push(decrypt);
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The ABAC variant: read any secret of this account and region tagged with the reading
/// pod's namespace and cluster, matched against the session tags Pod Identity sets. Listed
/// SSM parameters and KMS keys are still granted by ARN.
pub fn read_secrets_by_tag_policy(grants: &Grants, account: &str) -> Value {
    let mut policy = read_secrets_policy(&Grants {
        secret_arns: Vec::new(),
        ..grants.clone()
    });
    let resource = |region: &str| format!("arn:aws:secretsmanager:{region}:{account}:secret:*");
    let resources = match &grants.failover_region {
        None => json!(resource(&grants.region)),
        Some(other) => json!([resource(&grants.region), resource(other)]),
    };
    let mut abac = allow("ReadSecretsTaggedForThisWorkload", READ_SECRET, resources);
    abac["Condition"] = json!({"StringEquals": {
        "secretsmanager:ResourceTag/kubernetes-namespace": "${aws:PrincipalTag/kubernetes-namespace}",
        "secretsmanager:ResourceTag/eks-cluster-name": "${aws:PrincipalTag/eks-cluster-name}",
    }});
    if let Some(statements) = policy["Statement"].as_array_mut() {
        statements.insert(0, batch_read_secrets());
        statements.insert(0, abac);
    }
    policy
}

/// The actions that read one secret's value and metadata.
const READ_SECRET: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
];

/// A statement allowing `actions` on `resource`.
fn allow(sid: &str, actions: &[&str], resource: Value) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource})
}

/// AWS authorizes BatchGetSecretValue only on "*"; it reads nothing by itself (each returned
/// secret still needs GetSecretValue), and lets the provider fetch up to 20 secrets per call.
fn batch_read_secrets() -> Value {
    allow(
        "BatchReadSecrets",
        &["secretsmanager:BatchGetSecretValue"],
        json!("*"),
    )
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    items.dedup();
    items
}

/// IAM's limit on the inline policies of one role, in characters (whitespace not counted).
pub const MAX_INLINE_CHARS: usize = 10_240;

/// Why an inline policy cannot be put on a role (IAM would answer LimitExceeded after the
/// role was made), or `None`.
pub fn inline_size_problem(document: &Value) -> Option<String> {
    let size = document.to_string().len();
    (size > MAX_INLINE_CHARS).then(|| {
        format!(
            "its read policy would be {size} characters, over IAM's limit of {MAX_INLINE_CHARS} for a role's inline policies"
        )
    })
}

/// Whether two policy documents mean the same (IAM returns them URL-encoded and reformatted;
/// callers decode first). Compares parsed JSON, treating a one-item list as its item.
pub fn same_policy(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

/// Whether a document as read from IAM (`None`: absent or unreadable) already says `desired`.
pub fn already(live: Option<&Value>, desired: &Value) -> bool {
    live.is_some_and(|l| same_policy(l, desired))
}

fn normalize(v: &Value) -> Value {
    match v {
        Value::Array(items) if items.len() == 1 => normalize(&items[0]),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalize).collect();
            items.sort_by_key(|i| i.to_string());
            Value::Array(items)
        }
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

/// Decodes a policy document as IAM returns it (URL-encoded JSON).
pub fn decode_document(raw: &str) -> Option<Value> {
    let decoded = percent_decode(raw)?;
    serde_json::from_str(&decoded).ok()
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_over_iams_inline_limit_is_refused_before_any_call() {
        let arns: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "arn:aws:secretsmanager:us-west-2:123456789012:secret:team/secret-{i}-AbCdEf"
                )
            })
            .collect();
        let big = read_secrets_policy(&Grants {
            region: "us-west-2".into(),
            secret_arns: arns[..].to_vec(),
            ..Grants::default()
        });
        let why = inline_size_problem(&big).expect("too big");
        assert!(why.contains("10240"), "{why}");
        let small = read_secrets_policy(&Grants {
            region: "us-west-2".into(),
            secret_arns: arns[..20].to_vec(),
            ..Grants::default()
        });
        assert_eq!(inline_size_problem(&small), None);
    }

    const SCOPE: TrustScope<'static> = TrustScope {
        account: "123456789012",
        cluster: "demo",
        cluster_arn: "arn:aws:eks:us-west-2:123456789012:cluster/demo",
        namespace: "team-a",
        service_account: "app",
    };

    #[test]
    fn trust_is_pod_identity_for_this_workload_only() {
        let trust = pod_identity_trust(&SCOPE);
        let st = &trust["Statement"][0];
        assert_eq!(trust["Statement"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            st["Principal"],
            json!({"Service": "pods.eks.amazonaws.com"})
        );
        assert_eq!(st["Action"], json!(["sts:AssumeRole", "sts:TagSession"]));
        let cond = &st["Condition"]["StringEquals"];
        assert_eq!(cond["aws:SourceAccount"], "123456789012");
        assert_eq!(cond["aws:RequestTag/eks-cluster-name"], "demo");
        assert_eq!(
            cond["aws:RequestTag/eks-cluster-arn"],
            "arn:aws:eks:us-west-2:123456789012:cluster/demo",
            "a same-named cluster in another region or account does not pass"
        );
        assert_eq!(cond.as_object().map(|c| c.len()), Some(5), "{cond}");
        assert_eq!(cond["aws:RequestTag/kubernetes-namespace"], "team-a");
        assert_eq!(cond["aws:RequestTag/kubernetes-service-account"], "app");
    }

    #[test]
    fn policy_grants_reads_only_on_exact_arns() {
        let grants = Grants {
            secret_arns: vec!["arn:s2".into(), "arn:s1".into(), "arn:s1".into()],
            parameter_arns: vec![],
            kms_key_arns: vec!["arn:key".into()],
            region: "eu-west-1".into(),
            ..Default::default()
        };
        let p = read_secrets_policy(&grants);
        let st = p["Statement"].as_array().expect("statements");
        assert_eq!(st.len(), 3);
        assert_eq!(st[0]["Resource"], json!(["arn:s1", "arn:s2"]));
        assert_eq!(
            st[1]["Action"],
            json!(["secretsmanager:BatchGetSecretValue"])
        );
        assert_eq!(
            st[2]["Condition"]["StringEquals"]["kms:ViaService"],
            json!(["secretsmanager.eu-west-1.amazonaws.com"])
        );
        // The only "*" is the batch action, which reads nothing by itself.
        for statement in st {
            if statement["Resource"] == "*" {
                assert_eq!(
                    statement["Action"],
                    json!(["secretsmanager:BatchGetSecretValue"])
                );
            }
        }
    }

    #[test]
    fn an_abac_team_with_a_failover_region_reads_tagged_secrets_in_both_regions_only() {
        let one = read_secrets_by_tag_policy(
            &Grants {
                region: "eu-west-1".into(),
                ..Default::default()
            },
            "1",
        );
        assert_eq!(
            one["Statement"][0]["Resource"], "arn:aws:secretsmanager:eu-west-1:1:secret:*",
            "unchanged without a failover region"
        );
        let both = read_secrets_by_tag_policy(
            &Grants {
                region: "eu-west-1".into(),
                failover_region: Some("eu-central-1".into()),
                ..Default::default()
            },
            "1",
        );
        let st = &both["Statement"][0];
        assert_eq!(
            st["Resource"],
            json!([
                "arn:aws:secretsmanager:eu-west-1:1:secret:*",
                "arn:aws:secretsmanager:eu-central-1:1:secret:*"
            ])
        );
        assert_eq!(st["Condition"], one["Statement"][0]["Condition"]);
    }

    #[test]
    fn compares_policies_as_iam_returns_them() {
        let ours = pod_identity_trust(&SCOPE);
        let encoded = ours
            .to_string()
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22");
        let back = decode_document(&encoded).expect("decodes");
        assert!(same_policy(&ours, &back));
        let mut single = ours.clone();
        single["Statement"][0]["Action"] = json!(["sts:TagSession", "sts:AssumeRole"]);
        assert!(same_policy(&ours, &single));
        single["Statement"][0]["Action"] = json!("sts:AssumeRole");
        assert!(!same_policy(&ours, &single));
        assert!(
            already(Some(&back), &ours),
            "read back, it is already there"
        );
        assert!(
            !already(Some(&single), &ours),
            "a different document is not"
        );
        assert!(!already(None, &ours), "an absent or unreadable one is not");
    }
}
