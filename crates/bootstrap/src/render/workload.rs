//! A workload's Kubernetes objects: namespace, ServiceAccount, SecretProviderClass, sample pod.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::engine::{RenderError, render_all, templates};
use super::names;
use crate::service_account::ServiceAccountRef;

const TEMPLATES: [(&str, &str); 3] =
    templates!("workload": "namespace", "serviceaccount", "secretproviderclass");
const SAMPLE_POD: (&str, &str) = (
    "workload/sample-pod.yaml.tera",
    include_str!("../../templates/workload/sample-pod.yaml.tera"),
);

/// One entry of the SecretProviderClass `objects` parameter. The keys after `jmesPath` are
/// our provider's (upstream ignores them); each is written only when it is not the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpcObject {
    /// The exact ARN, or (with `matchPrefix`) the name prefix.
    pub object_name: String,
    /// `secretsmanager` or `ssmparameter`.
    pub object_type: String,
    /// The file name in the mount (with `matchPrefix`: the directory of the files; none puts
    /// them at the mount's root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_permission: Option<String>,
    #[serde(rename = "jmesPath", skip_serializing_if = "Vec::is_empty")]
    pub jmes_path: Vec<JmesEntry>,
    /// `"true"`: every secret whose name starts with `objectName`, one file each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_prefix: Option<String>,
    /// `"false"`: only a prefix's direct children.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recursive: Option<String>,
    /// `"true"`: every top-level key of the JSON secret as a file of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_keys: Option<String>,
    /// `"true"`: a missing secret is skipped (any other error still fails the mount).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<String>,
}

/// A flag as the provider's object keys spell it: `Some("true")` when set, else absent.
pub fn flag(on: bool) -> Option<String> {
    on.then(|| "true".to_string())
}

/// One `secretObjects` entry: a Kubernetes Secret the driver keeps in sync with mounted files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncedSecret {
    pub secret_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Vec<SyncedKey>,
}

/// One key of a synced Secret: the mounted file it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncedKey {
    /// The file's name in the mount (an alias, a jmesPath or allKeys file).
    pub object_name: String,
    /// The key in the Secret.
    pub key: String,
}

/// Whether `key` may be a Secret's data key (`[-._a-zA-Z0-9]+`, at most 253).
pub fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// One `jmesPath` entry: a JSON key of the secret written as its own file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JmesEntry {
    /// The JMESPath expression (the result must be a string).
    pub path: String,
    /// The file it is written to.
    pub object_alias: String,
    /// Four octal digits, e.g. "0400".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_permission: Option<String>,
}

/// What the workload templates need.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadValues {
    pub service_account: ServiceAccountRef,
    pub region: String,
    pub objects: Vec<SpcObject>,
    /// The SecretProviderClass's `failoverRegion` parameter.
    pub failover_region: Option<String>,
    /// `secretObjects`: Kubernetes Secrets synced from mounted files.
    pub secret_objects: Vec<SyncedSecret>,
    pub sample_image: String,
    pub labels: BTreeMap<String, String>,
}

impl WorkloadValues {
    /// The SecretProviderClass's name.
    pub fn spc_name(&self) -> String {
        format!("bootstrap-{}", self.service_account.name)
    }

    /// The verification pod's name.
    pub fn sample_pod_name(&self) -> String {
        let name = format!("bootstrap-verify-{}", self.service_account.name);
        name.chars()
            .take(63)
            .collect::<String>()
            .trim_end_matches(['-', '.'])
            .to_string()
    }

    fn validate(&self) -> Result<(), RenderError> {
        let problem = names::label_problem("namespace", &self.service_account.namespace)
            .or_else(|| names::subdomain_problem("ServiceAccount", &self.service_account.name))
            .or_else(|| {
                self.objects
                    .is_empty()
                    .then(|| "the SecretProviderClass needs at least one object".into())
            })
            .or_else(|| self.secret_objects_problem());
        match problem {
            Some(problem) => Err(RenderError::InvalidValues {
                renderer: "workload",
                problem,
            }),
            None => Ok(()),
        }
    }

    fn secret_objects_problem(&self) -> Option<String> {
        let mut names = std::collections::BTreeSet::new();
        for s in &self.secret_objects {
            if let Some(p) = names::subdomain_problem("synced Secret", &s.secret_name) {
                return Some(p);
            }
            if !names.insert(&s.secret_name) {
                return Some(format!("Secret {} is listed twice", s.secret_name));
            }
            let mut keys = std::collections::BTreeSet::new();
            for d in &s.data {
                if !is_secret_key(&d.key) {
                    return Some(format!(
                        "Secret {}: {:?} is not a valid key (letters, digits, '-', '.', '_')",
                        s.secret_name, d.key
                    ));
                }
                if !keys.insert(&d.key) {
                    return Some(format!("Secret {}: key {:?} twice", s.secret_name, d.key));
                }
            }
        }
        None
    }

    fn context(&self) -> Result<tera::Context, RenderError> {
        let objects_yaml =
            serde_saphyr::to_string(&self.objects).map_err(|e| RenderError::InvalidValues {
                renderer: "workload",
                problem: format!("objects cannot be written as YAML: {e}"),
            })?;
        let labels = super::base_labels("bootstrap-workload", &self.labels);
        let mut pod_labels = labels.clone();
        pod_labels.insert("app.kubernetes.io/component".into(), "verify".into());
        let mut ctx = tera::Context::new();
        ctx.insert("namespace", &self.service_account.namespace);
        ctx.insert("service_account", &self.service_account.name);
        ctx.insert("spc_name", &self.spc_name());
        ctx.insert("pod_name", &self.sample_pod_name());
        ctx.insert("region", &self.region);
        ctx.insert("objects_yaml", &objects_yaml);
        ctx.insert("failover_region", &self.failover_region);
        ctx.insert("secret_objects", &self.secret_objects);
        ctx.insert("image", &self.sample_image);
        ctx.insert("labels", &labels);
        ctx.insert("pod_labels", &pod_labels);
        Ok(ctx)
    }
}

/// A file alias for a secret ARN: the name part, `/` turned into `_`, without the random
/// suffix Secrets Manager appends.
pub fn alias_for(arn: &str) -> String {
    let name = if let Some((_, rest)) = arn.split_once(":secret:") {
        match rest.rsplit_once('-') {
            Some((base, suffix))
                if suffix.len() == 6
                    && (suffix.chars().all(|c| c.is_ascii_alphanumeric())
                        || suffix == "??????") =>
            {
                base
            }
            _ => rest,
        }
    } else if let Some((_, rest)) = arn.split_once(":parameter/") {
        rest
    } else {
        arn
    };
    name.trim_matches('/').replace('/', "_")
}

/// Namespace, ServiceAccount and SecretProviderClass, in apply order.
pub fn render(values: &WorkloadValues) -> Result<Vec<Value>, RenderError> {
    values.validate()?;
    render_all(&TEMPLATES, &values.context()?)
}

/// The verification pod.
pub fn render_sample_pod(values: &WorkloadValues) -> Result<Value, RenderError> {
    values.validate()?;
    render_all(&[SAMPLE_POD], &values.context()?)?
        .pop()
        .ok_or(RenderError::NotAnObject {
            template: SAMPLE_POD.0.into(),
            index: 0,
        })
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;
