//! IRSA: the service account's role ARN, assumed with STS AssumeRoleWithWebIdentity.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_smithy_types::error::display::DisplayErrorContext;

use bootstrap_common::names::iam_name_chars;
use bootstrap_common::secret::SecretString;

/// The service-account annotation naming the IAM role.
pub const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// Assumes `role_arn` with the pod's `sts.amazonaws.com` token.
pub async fn assume_role(
    sts: &aws_sdk_sts::Client,
    role_arn: &str,
    token: &SecretString,
    pod_ref: &str,
) -> Result<Credentials, String> {
    let out = sts
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name(session_name(pod_ref))
        .web_identity_token(token.expose())
        .send()
        .await
        .map_err(|e| {
            // STS errors carry codes and messages, never the token.
            let text = DisplayErrorContext(&e).to_string();
            let text = if text.contains(token.expose()) {
                text.replace(token.expose(), "<token>")
            } else {
                text
            };
            format!(
                "STS AssumeRoleWithWebIdentity for {role_arn} failed: {text}; hint: the role's trust policy must allow the cluster's OIDC provider and this service account"
            )
        })?;
    let c = out
        .credentials()
        .ok_or_else(|| "STS AssumeRoleWithWebIdentity returned no credentials".to_string())?;
    let expiry = SystemTime::try_from(*c.expiration()).ok();
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        expiry,
        "irsa",
    ))
}

/// A session name STS accepts (`[\w+=,.@-]{2,64}`), derived from the pod.
pub fn session_name(pod_ref: &str) -> String {
    let mut name = format!("aws-csi-provider.{}", iam_name_chars(pod_ref, '.'));
    name.truncate(64);
    name
}

/// The error for a service account without the annotation, in upstream's words plus a hint.
pub fn missing_role(namespace: &str, service_account: &str) -> String {
    format!(
        "an IAM role must be associated with service account {namespace}/{service_account}; hint: annotate it with {ROLE_ANNOTATION}, or set usePodIdentity: \"true\" in the SecretProviderClass to use EKS Pod Identity"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_valid() {
        let n = session_name("demo/web-0");
        assert_eq!(n, "aws-csi-provider.demo.web-0");
        assert!(session_name(&"x".repeat(200)).len() <= 64);
    }
}
