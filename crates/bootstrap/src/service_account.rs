//! A Kubernetes service account named by its namespace and name: whom a workload's role,
//! association and objects serve. One value, so the two names travel together and cannot be
//! swapped at a call site.

use std::fmt;

use serde::Serialize;

/// `namespace/name` of a service account. Flattened into a report it writes `namespace` and
/// `serviceAccount`, the keys the reports had before this type.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServiceAccountRef {
    pub namespace: String,
    #[serde(rename = "serviceAccount")]
    pub name: String,
}

impl ServiceAccountRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Whether this is `namespace/name`.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }
}

impl fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_it_writes_the_reports_keys_and_displays_as_a_path() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Report {
            #[serde(flatten)]
            service_account: ServiceAccountRef,
            role_arn: &'static str,
        }
        let sa = ServiceAccountRef::new("team-a", "app");
        let json = serde_json::to_string(&Report {
            service_account: sa.clone(),
            role_arn: "arn",
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"namespace":"team-a","serviceAccount":"app","roleArn":"arn"}"#
        );
        assert_eq!(sa.to_string(), "team-a/app");
        assert!(sa.is("team-a", "app"));
        assert!(!sa.is("app", "team-a"), "the names are not interchangeable");
    }
}
