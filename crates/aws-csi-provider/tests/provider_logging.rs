//! No log level prints a request or response body: the real SDK clients of the provider
//! (its `SdkFactory`, the default HTTPS client, plain HTTP here) call a stand-in for STS and
//! Secrets Manager under the daemon's own subscriber at `RUST_LOG=trace`, and the web identity
//! token, the session's keys and the secret value never reach the captured log, while trace
//! lines do (before, fmt's default INFO cap made `RUST_LOG=debug`/`trace` print nothing below
//! info). With this SDK (aws-smithy-runtime 1.16) the orchestrator prints bodies as `BoxBody`
//! and redacts `x-amz-security-token`; the clamp of `daemon::body_clamp` keeps the SDK's
//! targets at `debug` so that a version that prints more cannot leak either.

mod provider_support;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_csi_provider::auth::irsa;
use aws_csi_provider::clients::{AwsFactory, SdkFactory, base_config};
use aws_csi_provider::daemon::{LogFormat, subscriber};
use aws_csi_provider::fetch::{NoObserver, Target, secrets_manager};
use aws_csi_provider::secret::SecretString;
use provider_support::Logs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WEB_IDENTITY_TOKEN: &str = "MARKER-web-identity-token";
const SECRET_KEY: &str = "MARKER-secret-access-key";
const SESSION_TOKEN: &str = "MARKER-session-token";
const SECRET_VALUE: &str = "MARKER-secret-value";

/// A one-request-per-connection HTTP/1.1 stand-in: STS (query protocol, XML) and Secrets
/// Manager (JSON); it checks that the token did arrive in STS's body.
async fn stand_in() -> (String, Arc<Mutex<bool>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let token_seen = Arc::new(Mutex::new(false));
    let seen = token_seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if req.len() < end + 4 + length {
                        continue;
                    }
                    let (content_type, body) = if text.contains("AssumeRoleWithWebIdentity") {
                        if let Ok(mut s) = seen.lock() {
                            *s = text.contains(WEB_IDENTITY_TOKEN);
                        }
                        (
                            "text/xml",
                            format!(
                                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>{SECRET_KEY}</SecretAccessKey><SessionToken>{SESSION_TOKEN}</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
                            ),
                        )
                    } else {
                        (
                            "application/x-amz-json-1.1",
                            format!(
                                r#"{{"ARN":"arn:aws:secretsmanager:us-east-1:111122223333:secret:app-AbCdEf","Name":"app","SecretString":"{SECRET_VALUE}","VersionId":"v1"}}"#
                            ),
                        )
                    };
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                    return;
                }
            });
        }
    });
    (url, token_seen)
}

async fn calls_at_trace(format: LogFormat) -> String {
    let logs = Logs::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(subscriber(
        format,
        Some("trace"),
        move || writer.clone(),
        false,
    ));
    tracing::trace!(target: "probe", "trace is on");
    let (url, token_seen) = stand_in().await;
    let base =
        base_config(|name| (name == "AWS_ENDPOINT_URL").then(|| url.clone())).expect("base config");
    let factory = SdkFactory::new(base);
    let token = SecretString::new(WEB_IDENTITY_TOKEN.to_string());
    let creds = irsa::assume_role(
        &factory.sts("us-east-1"),
        "arn:aws:iam::111122223333:role/app",
        &token,
        "demo/web-0",
    )
    .await
    .expect("AssumeRoleWithWebIdentity");
    assert_eq!(creds.secret_access_key(), SECRET_KEY);
    assert_eq!(token_seen.lock().map(|s| *s).ok(), Some(true));
    let creds = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        creds.session_token().map(str::to_string),
        Some(SystemTime::now() + std::time::Duration::from_secs(3600)),
        "test",
    );
    let sm = factory.secrets_manager("us-east-1", &creds);
    let target = Target {
        name: "app",
        version: None,
        label: None,
    };
    let fetched = secrets_manager::get_one(&sm, &target, &NoObserver)
        .await
        .expect("GetSecretValue");
    assert_eq!(fetched.value.expose(), SECRET_VALUE.as_bytes());
    logs.text()
}

fn assert_no_body(log: &str) {
    // Trace logging was on: the SDK's own debug and trace lines are there.
    assert!(log.contains("aws_smithy_runtime"), "no SDK lines:\n{log}");
    assert!(log.contains("trace is on"), "no trace lines:\n{log}");
    for marker in [
        WEB_IDENTITY_TOKEN,
        SECRET_KEY,
        SESSION_TOKEN,
        SECRET_VALUE,
        "MARKER",
    ] {
        assert!(
            !log.contains(marker),
            "the log at RUST_LOG=trace holds {marker}"
        );
    }
}

#[tokio::test]
async fn trace_logging_prints_no_body_or_token_as_text() {
    assert_no_body(&calls_at_trace(LogFormat::Text).await);
}

#[tokio::test]
async fn trace_logging_prints_no_body_or_token_as_json() {
    assert_no_body(&calls_at_trace(LogFormat::Json).await);
}
