//! No level of `BOOTSTRAP_LOG` prints a request body or a credential: a CreateSecret sent
//! through the real SDK stack to a local HTTP server, with the SDK's own `LOG_SIGNABLE_BODY`
//! switch on and `BOOTSTRAP_LOG=trace`, logs neither the secret's value nor the session token,
//! while the same run without bootstrap's ceiling does (so the capture works and the test can
//! fail). One test in its own process: it sets an environment variable.

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::instrument::WithSubscriber;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};

use bootstrap::ui::logging::filter;

const VALUE: &str = "VALUE-MARKER-5f0c1a";
const SESSION_TOKEN: &str = "SESSION-TOKEN-MARKER-77ab";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A server answering every request with an empty JSON object.
async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\n\
                          content-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Sends one CreateSecret with [`VALUE`] under a subscriber filtered by `filter`; returns
/// what was logged.
async fn create_secret_logged<F>(filter: F) -> String
where
    F: tracing_subscriber::layer::Filter<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let endpoint = server().await;
    let captured = Captured::default();
    let subscriber: tracing::Dispatch = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(captured.clone())
                .with_ansi(false)
                .with_filter(filter),
        )
        .into();
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret-key",
            Some(SESSION_TOKEN.into()),
            None,
            "test",
        ))
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let probe = async { tracing::trace!(target: "bootstrap::probe", "trace is on") };
    probe.with_subscriber(subscriber.clone()).await;
    let result = client
        .create_secret()
        .name("bootstrap/c/demo")
        .secret_string(VALUE)
        .send()
        .with_subscriber(subscriber)
        .await;
    assert!(result.is_ok(), "the local server answers CreateSecret");
    String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned()
}

/// Whether `logged` holds `marker` as text or as the decimal byte list `Debug` prints for a
/// byte slice (how the SDK's signer prints a body with `LOG_SIGNABLE_BODY=true`).
fn leaks(logged: &str, marker: &str) -> bool {
    let bytes: Vec<String> = marker.bytes().map(|b| b.to_string()).collect();
    logged.contains(marker) || logged.contains(&bytes.join(", "))
}

#[tokio::test]
async fn trace_logging_prints_no_body_and_no_token() {
    // SAFETY: the only test of this binary sets it before any other thread reads the
    // environment; the SDK's signer reads it at each signing.
    unsafe { std::env::set_var("LOG_SIGNABLE_BODY", "true") };

    let logged = create_secret_logged(EnvFilter::new("trace")).await;
    assert!(
        leaks(&logged, VALUE),
        "without the ceiling the signer prints the body (the capture sees what leaks)"
    );

    let logged = create_secret_logged(filter(0, Some("trace"))).await;
    assert!(
        logged.contains("trace is on"),
        "bootstrap's own targets still log at trace"
    );
    assert!(!leaks(&logged, VALUE), "a secret value was logged");
    assert!(!leaks(&logged, SESSION_TOKEN), "a session token was logged");
    assert!(
        !leaks(&logged, "secret-key"),
        "a secret access key was logged"
    );
}
