//! Where the controller's roles live and what bounds them: an IAM path and a permissions boundary.

/// Where a confined role lives and what bounds it: the controller makes every role under its
/// own path and with the permissions boundary `up --controller` made, and its own policy lets
/// it create roles only so (a compromised controller cannot mint a role wider than the
/// boundary).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Confinement {
    /// `/…/`, e.g. `/bootstrap-controller/`.
    pub path: String,
    /// The managed policy's ARN.
    #[serde(rename = "permissionsBoundary")]
    pub boundary: String,
}

impl Confinement {
    /// Checks the path and the boundary's ARN as IAM would, before any call.
    pub fn new(path: &str, boundary: &str) -> Result<Self, String> {
        let path_ok = path.len() <= 512
            && path.starts_with('/')
            && path.ends_with('/')
            && path.bytes().all(|b| (0x21..=0x7e).contains(&b))
            && !path.contains("//");
        if !path_ok {
            return Err(format!(
                "role path {path:?} is not an IAM path: it must start and end with '/', have no empty segment, and use printable ASCII only (e.g. /bootstrap-controller/)"
            ));
        }
        let arn_ok = boundary.starts_with("arn:aws")
            && boundary.split(':').nth(2) == Some("iam")
            && boundary
                .split(':')
                .nth(5)
                .is_some_and(|r| r.starts_with("policy/"));
        if !arn_ok {
            return Err(format!(
                "permissions boundary {boundary:?} is not a managed policy ARN (arn:aws:iam::ACCOUNT:policy/NAME)"
            ));
        }
        Ok(Self {
            path: path.to_string(),
            boundary: boundary.to_string(),
        })
    }
}
