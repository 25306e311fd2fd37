//! Parsing of `MountRequest.attributes`: SPC parameters merged with the pod's volume attributes.

use std::collections::HashMap;

use serde::Deserialize;

use super::error::MountError;
pub use bootstrap_common::names::{IRSA_AUDIENCE, POD_IDENTITY_AUDIENCE};
use bootstrap_common::secret::SecretString;

pub const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
pub const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
pub const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
pub const SERVICE_ACCOUNT: &str = "csi.storage.k8s.io/serviceAccount.name";
pub const TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";

/// The values `strconv.ParseBool` accepts, in the order Go documents them.
pub const ACCEPTED_BOOLS: &str = "1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False";

/// How the provider reaches the Pod Identity agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressType {
    /// IPv4 first, then IPv6.
    #[default]
    Auto,
    Ipv4,
    Ipv6,
}

/// The pod a mount is for, as the driver names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// [`POD_NAME`]; empty when the driver does not send it.
    pub name: String,
    /// [`POD_NAMESPACE`].
    pub namespace: String,
    /// [`POD_UID`]; empty when the driver does not send it.
    pub uid: String,
    /// [`SERVICE_ACCOUNT`]: the pod's service account, in its namespace.
    pub service_account: String,
}

impl Pod {
    /// `namespace/service-account`: whose credentials the mount uses.
    pub fn account(&self) -> String {
        format!("{}/{}", self.namespace, self.service_account)
    }
}

/// `namespace/name` of the pod, for logs and errors.
impl std::fmt::Display for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The parsed attributes of one mount request.
#[derive(Debug)]
pub struct MountAttributes {
    pub pod: Pod,
    /// Name of the SecretProviderClass when the caller passes it (the driver does not).
    pub spc_name: Option<String>,
    pub region: Option<String>,
    pub failover_region: Option<String>,
    /// Raw `pathTranslation` parameter; interpreted with the objects.
    pub path_translation: Option<String>,
    pub objects: String,
    pub use_pod_identity: bool,
    pub address_type: AddressType,
    tokens: Option<String>,
}

#[derive(Deserialize)]
struct TokenEntry {
    token: String,
}

impl MountAttributes {
    /// Parses the attributes JSON. Never panics; every failure names the offending key.
    pub fn parse(json: &str) -> Result<Self, MountError> {
        let mut map: HashMap<String, String> =
            serde_json::from_str(json).map_err(|e| MountError::Attributes {
                reason: format!(
                    "not a JSON object of strings (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            })?;
        let mut take = |key: &str| map.remove(key).filter(|v| !v.is_empty());
        let pod_name = take(POD_NAME).unwrap_or_default();
        const FROM_DRIVER: &str = "the Secrets Store CSI driver sets it; check that the CSIDriver has podInfoOnMount: true";
        let pod_namespace = take(POD_NAMESPACE).ok_or(MountError::MissingAttribute {
            key: POD_NAMESPACE,
            hint: FROM_DRIVER,
        })?;
        let service_account = take(SERVICE_ACCOUNT).ok_or(MountError::MissingAttribute {
            key: SERVICE_ACCOUNT,
            hint: FROM_DRIVER,
        })?;
        let use_pod_identity = match take("usePodIdentity") {
            None => false,
            Some(v) => parse_go_bool(&v).ok_or(MountError::UsePodIdentity { value: v })?,
        };
        let address_type = match take("preferredAddressType") {
            None => AddressType::Auto,
            Some(v) => parse_address_type(&v),
        };
        let region = take("region");
        let failover_region = take("failoverRegion");
        if failover_region.is_some() && failover_region == region {
            return Err(MountError::SameFailoverRegion {
                region: region.unwrap_or_default(),
            });
        }
        let pod = Pod {
            name: pod_name,
            namespace: pod_namespace,
            uid: take(POD_UID).unwrap_or_default(),
            service_account,
        };
        Ok(Self {
            pod,
            spc_name: take("secretProviderClass"),
            path_translation: take("pathTranslation"),
            // Absent means none, as upstream: parse_objects warns about an empty list.
            objects: take("objects").unwrap_or_default(),
            tokens: take(TOKENS),
            region,
            failover_region,
            use_pod_identity,
            address_type,
        })
    }

    /// The service-account token for `audience`, with a hint when the driver did not send it.
    pub fn token(&self, audience: &'static str) -> Result<SecretString, MountError> {
        let missing = || MountError::MissingToken { audience };
        let raw = self.tokens.as_deref().ok_or_else(missing)?;
        let mut tokens: HashMap<String, TokenEntry> =
            serde_json::from_str(raw).map_err(|_| MountError::Attributes {
                reason: format!(
                    "{TOKENS} is not a JSON map of audience to {{token, expirationTimestamp}}"
                ),
            })?;
        let entry = tokens.remove(audience).ok_or_else(missing)?;
        // Wipe the tokens we do not use before the map is dropped.
        for (_, other) in tokens {
            drop(SecretString::new(other.token));
        }
        if entry.token.is_empty() {
            return Err(missing());
        }
        Ok(SecretString::new(entry.token))
    }
}

/// `preferredAddressType` as upstream reads it: `auto`, `ipv4`, `ipv6` in any case; anything
/// else falls back to `auto`, with a warning since it is probably a typo.
pub fn parse_address_type(value: &str) -> AddressType {
    match value.to_lowercase().as_str() {
        "auto" => AddressType::Auto,
        "ipv4" => AddressType::Ipv4,
        "ipv6" => AddressType::Ipv6,
        _ => {
            tracing::warn!(
                value = %value.escape_debug(),
                "preferredAddressType {value:?} is not one of auto, ipv4, ipv6: using auto (IPv4, then IPv6), as the upstream provider does; hint: fix or remove the parameter"
            );
            AddressType::Auto
        }
    }
}

/// Go's `strconv.ParseBool`, exactly: no trimming, no other spellings.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `MountRequest.permission` (JSON of a decimal file mode, e.g. `"420"` or `420`).
pub fn parse_permission(json: &str) -> Result<u32, MountError> {
    let trimmed = json.trim();
    if trimmed.is_empty() {
        return Ok(0o644);
    }
    let value: serde_json::Value =
        serde_json::from_str(trimmed).map_err(|_| MountError::Attributes {
            reason: format!("permission {trimmed:?} is not JSON"),
        })?;
    let mode = match &value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    match mode {
        Some(m) if m <= 0o7777 => Ok(m as u32),
        _ => Err(MountError::Attributes {
            reason: format!("permission {trimmed:?} is not a file mode"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Map<String, serde_json::Value> {
        let v = serde_json::json!({
            POD_NAME: "web-0", POD_NAMESPACE: "demo", SERVICE_ACCOUNT: "web",
            "objects": "- objectName: x\n  objectType: secretsmanager\n",
            TOKENS: r#"{"pods.eks.amazonaws.com":{"token":"tok-pi","expirationTimestamp":"x"}}"#,
        });
        v.as_object().cloned().unwrap_or_default()
    }

    fn parse_with(key: &str, value: &str) -> Result<MountAttributes, MountError> {
        let mut m = base();
        m.insert(key.into(), value.into());
        MountAttributes::parse(&serde_json::Value::Object(m).to_string())
    }

    #[test]
    fn go_bool_set_is_exact() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false));
        }
        for bad in ["yes", "tRUE", " true", "2", "on", "y"] {
            assert_eq!(parse_go_bool(bad), None);
        }
    }

    #[test]
    fn empty_use_pod_identity_means_irsa() {
        let a = parse_with("usePodIdentity", "").expect("parses");
        assert!(!a.use_pod_identity);
        let a = parse_with("usePodIdentity", "True").expect("parses");
        assert!(a.use_pod_identity);
    }

    #[test]
    fn invalid_use_pod_identity_quotes_value_and_lists_accepted() {
        let err = parse_with("usePodIdentity", "yes").expect_err("rejects");
        let msg = err.to_string();
        assert!(msg.contains("\"yes\""), "{msg}");
        assert!(msg.contains("TRUE") && msg.contains("False"), "{msg}");
    }

    #[test]
    fn address_type_and_regions() {
        assert_eq!(
            parse_with("preferredAddressType", "IPv6")
                .expect("ok")
                .address_type,
            AddressType::Ipv6
        );
        // Unknown values fall back to auto, like upstream (with a warning).
        assert_eq!(
            parse_with("preferredAddressType", "ipv5")
                .expect("accepted")
                .address_type,
            AddressType::Auto
        );
        assert_eq!(parse_address_type("IPV4"), AddressType::Ipv4);
        let mut m = base();
        m.insert("region".into(), "us-east-1".into());
        m.insert("failoverRegion".into(), "us-east-1".into());
        let err = MountAttributes::parse(&serde_json::Value::Object(m).to_string());
        assert!(matches!(err, Err(MountError::SameFailoverRegion { .. })));
    }

    #[test]
    fn tokens_and_missing_audience_hint() {
        let a = parse_with("region", "us-east-1").expect("ok");
        assert_eq!(
            a.token(POD_IDENTITY_AUDIENCE).expect("tok").expose(),
            "tok-pi"
        );
        let msg = a.token(IRSA_AUDIENCE).expect_err("missing").to_string();
        assert!(
            msg.contains("tokenRequests") && msg.contains(IRSA_AUDIENCE),
            "{msg}"
        );
    }

    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        for bad in ["", "[]", "{", "{\"a\":1}", "null"] {
            assert!(MountAttributes::parse(bad).is_err(), "{bad}");
        }
        let mut m = base();
        m.remove(SERVICE_ACCOUNT);
        let err = MountAttributes::parse(&serde_json::Value::Object(m).to_string());
        assert!(matches!(err, Err(MountError::MissingAttribute { .. })));
    }

    #[test]
    fn permission_parsing() {
        assert_eq!(parse_permission("\"420\"").ok(), Some(420));
        assert_eq!(parse_permission("420").ok(), Some(420));
        assert_eq!(parse_permission("").ok(), Some(0o644));
        assert!(parse_permission("\"rw\"").is_err());
        assert!(parse_permission("99999").is_err());
    }
}
