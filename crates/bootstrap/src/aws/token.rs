//! The EKS cluster token: `k8s-aws-v1.` + base64url of a presigned STS GetCallerIdentity URL
//! that signs the header `x-k8s-aws-id: <cluster>` (what `aws eks get-token` makes).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("failed to load AWS credentials for the EKS token of cluster {cluster}")]
    Credentials {
        cluster: String,
        #[source]
        source: aws_credential_types::provider::error::CredentialsError,
    },
    #[error("failed to sign the EKS token of cluster {cluster}")]
    Sign {
        cluster: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The STS endpoint the token is presigned for: `AWS_ENDPOINT_URL_STS`/`AWS_ENDPOINT_URL`
/// when set (local stand-ins), else the regional STS endpoint.
pub fn sts_endpoint(region: &str) -> String {
    ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
        .map(|v| v.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"))
}

/// Makes a token from the configuration's credentials.
pub async fn eks_token(
    config: &aws_config::SdkConfig,
    region: &str,
    cluster: &str,
) -> Result<String, TokenError> {
    let credentials = match config.credentials_provider() {
        Some(p) => p.provide_credentials().await,
        None => {
            Err(aws_credential_types::provider::error::CredentialsError::not_loaded_no_source())
        }
    }
    .map_err(|source| TokenError::Credentials {
        cluster: cluster.into(),
        source,
    })?;
    presign(
        &credentials,
        region,
        cluster,
        &sts_endpoint(region),
        SystemTime::now(),
    )
}

/// Presigns GetCallerIdentity for `cluster` and encodes it as a token.
pub fn presign(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    endpoint: &str,
    now: SystemTime,
) -> Result<String, TokenError> {
    let sign_err = |source: Box<dyn std::error::Error + Send + Sync>| TokenError::Sign {
        cluster: cluster.into(),
        source,
    };
    let url = format!("{endpoint}/?Action=GetCallerIdentity&Version=2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| sign_err(Box::new(e)))?
        .into();
    let headers = [("x-k8s-aws-id", cluster)];
    let request = SignableRequest::new(
        "GET",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| sign_err(Box::new(e)))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| sign_err(Box::new(e)))?
        .into_parts();
    let mut signed = url;
    for (name, value) in instructions.params() {
        signed.push('&');
        signed.push_str(&encode(name));
        signed.push('=');
        signed.push_str(&encode(value));
    }
    Ok(format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed)
    ))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_a_presigned_get_caller_identity_url() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let token = presign(
            &creds,
            "us-east-1",
            "demo",
            "https://sts.us-east-1.amazonaws.com",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .expect("signs");
        let encoded = token.strip_prefix("k8s-aws-v1.").expect("prefix");
        assert!(!encoded.contains('='), "no padding");
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .expect("base64url"),
        )
        .expect("utf8");
        assert!(url.starts_with(
            "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ));
        assert!(url.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256"));
        assert!(url.contains("X-Amz-Expires=60"));
        assert!(
            url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
            "{url}"
        );
        assert!(
            url.contains(
                "X-Amz-Credential=AKIDEXAMPLE%2F20231114%2Fus-east-1%2Fsts%2Faws4_request"
            )
        );
        assert!(!url.contains("secret"));
    }
}
