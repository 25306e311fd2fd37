//! A SecretProviderClass of provider `aws` read the way the AWS provider reads it:
//! `usePodIdentity` with Go's `strconv.ParseBool`, the `objects` YAML, the region. Pure.

use serde_json::Value;

/// How the provider will authenticate the pods of a SecretProviderClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `usePodIdentity` parses as true.
    PodIdentity,
    /// IRSA: `usePodIdentity` missing or empty (`None`), or parsing as false (the value).
    Irsa(Option<String>),
    /// Not a Go boolean: every mount of this class fails.
    Invalid(String),
}

/// Go's `strconv.ParseBool`, exactly: no trimming, no other spellings.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// What `usePodIdentity` (absent: `None`) makes the provider do; empty means IRSA, as upstream.
pub fn identity(use_pod_identity: Option<&str>) -> Identity {
    match use_pod_identity {
        None | Some("") => Identity::Irsa(None),
        Some(v) => match parse_go_bool(v) {
            Some(true) => Identity::PodIdentity,
            Some(false) => Identity::Irsa(Some(v.to_string())),
            None => Identity::Invalid(v.to_string()),
        },
    }
}

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    SecretsManager,
    SsmParameter,
}

impl ObjectKind {
    /// The read the provider makes for it.
    pub fn action(self) -> &'static str {
        match self {
            ObjectKind::SecretsManager => "secretsmanager:GetSecretValue",
            ObjectKind::SsmParameter => "ssm:GetParameters",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::SecretsManager => "secretsmanager",
            ObjectKind::SsmParameter => "ssmparameter",
        }
    }
}

/// One entry of `objects`: a name or a full ARN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClassObject {
    pub name: String,
    pub kind: ObjectKind,
}

impl ClassObject {
    /// The object's ARN when its name is one.
    pub fn arn(&self) -> Option<&str> {
        self.name.starts_with("arn:").then_some(self.name.as_str())
    }
}

/// The ARN of an SSM parameter by name (deterministic, no call needed).
pub fn parameter_arn(region: &str, account: &str, name: &str) -> String {
    format!(
        "arn:aws:ssm:{region}:{account}:parameter/{}",
        name.trim_start_matches('/')
    )
}

/// Parses `objects` as the provider does: a YAML list of maps, each with `objectName`, and an
/// `objectType` (`secretsmanager` | `ssmparameter`) unless the name is an ARN, whose service
/// (and region, when `region` is given) must agree.
pub fn parse_objects(yaml: &str, region: Option<&str>) -> Result<Vec<ClassObject>, String> {
    let raw: Value = serde_saphyr::from_str(yaml)
        .map_err(|e| format!("objects is not YAML: {}", first_line(&e.to_string())))?;
    let Value::Array(items) = raw else {
        return Err("objects is not a YAML list".into());
    };
    if items.is_empty() {
        return Err("objects lists no objects".into());
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_object(i + 1, item, region))
        .collect()
}

fn parse_object(index: usize, item: &Value, region: Option<&str>) -> Result<ClassObject, String> {
    let Value::Object(map) = item else {
        return Err(format!("object #{index} is not a map"));
    };
    let scalar = |key: &str| match map.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    };
    let name = scalar("objectName")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("object #{index}: objectName must be specified"))?;
    if name.contains("../") {
        return Err(format!("object {name:?}: the name must not contain ../"));
    }
    let declared = match scalar("objectType").as_deref() {
        None | Some("") => None,
        Some("secretsmanager") => Some(ObjectKind::SecretsManager),
        Some("ssmparameter") => Some(ObjectKind::SsmParameter),
        Some(other) => {
            return Err(format!(
                "object {name:?}: objectType {other:?} is not secretsmanager or ssmparameter"
            ));
        }
    };
    if !name.starts_with("arn:") {
        let kind = declared.ok_or_else(|| {
            format!("object {name:?}: objectType must be set when objectName is not a full ARN")
        })?;
        return Ok(ClassObject { name, kind });
    }
    let parts: Vec<&str> = name.splitn(6, ':').collect();
    let kind = match (parts.get(2), parts.get(5)) {
        (Some(&"secretsmanager"), Some(r)) if r.starts_with("secret:") => {
            ObjectKind::SecretsManager
        }
        (Some(&"ssm"), Some(r)) if r.starts_with("parameter/") => ObjectKind::SsmParameter,
        _ => {
            return Err(format!(
                "object {name:?}: not a Secrets Manager secret or SSM parameter ARN"
            ));
        }
    };
    if declared.is_some_and(|d| d != kind) {
        return Err(format!(
            "object {name:?}: objectType does not match the ARN"
        ));
    }
    if let (Some(region), Some(arn_region)) = (region, parts.get(3))
        && !region.is_empty()
        && arn_region != &region
    {
        return Err(format!(
            "object {name:?}: the ARN's region {arn_region} is not the class's region {region}"
        ));
    }
    Ok(ClassObject { name, kind })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_pod_identity_follows_go_parse_bool() {
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(identity(Some(v)), Identity::PodIdentity, "{v}");
        }
        for v in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(identity(Some(v)), Identity::Irsa(Some(v.into())), "{v}");
        }
        assert_eq!(identity(None), Identity::Irsa(None));
        assert_eq!(identity(Some("")), Identity::Irsa(None));
        for v in ["yes", "tRUE", " true", "on", "y"] {
            assert_eq!(identity(Some(v)), Identity::Invalid(v.into()), "{v}");
        }
    }

    #[test]
    fn objects_parse_like_the_provider() {
        let ok = "- objectName: db\n  objectType: secretsmanager\n- objectName: arn:aws:ssm:us-west-2:1:parameter/a/b\n";
        let objects = parse_objects(ok, Some("us-west-2")).expect("parses");
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].kind, ObjectKind::SecretsManager);
        assert_eq!(objects[0].arn(), None);
        assert_eq!(objects[1].kind, ObjectKind::SsmParameter);
        assert!(objects[1].arn().is_some());

        let bad = [
            ("objectName: x", "not a YAML list"),
            ("[]", "no objects"),
            (
                "- objectType: secretsmanager",
                "objectName must be specified",
            ),
            ("- objectName: db", "objectType must be set"),
            (
                "- objectName: db\n  objectType: vault",
                "not secretsmanager",
            ),
            (
                "- objectName: arn:aws:secretsmanager:eu-west-1:1:secret:x",
                "region eu-west-1",
            ),
            (
                "- objectName: arn:aws:ssm:us-west-2:1:parameter/x\n  objectType: secretsmanager",
                "does not match",
            ),
            ("- [unclosed", "not YAML"),
        ];
        for (yaml, want) in bad {
            let err = parse_objects(yaml, Some("us-west-2")).expect_err(yaml);
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn parameter_arns_drop_the_leading_slash() {
        assert_eq!(
            parameter_arn("r", "1", "/app/db"),
            "arn:aws:ssm:r:1:parameter/app/db"
        );
        assert_eq!(
            parameter_arn("r", "1", "db"),
            "arn:aws:ssm:r:1:parameter/db"
        );
    }
}
