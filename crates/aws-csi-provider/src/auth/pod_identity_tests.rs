//! Unit tests of the Pod Identity agent client: the reply parser, and the HTTP client against
//! a raw TCP agent (header, retries, timeouts, errors without the token).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[test]
fn parses_agent_reply() {
    let body = br#"{"AccessKeyId":"AKIA","SecretAccessKey":"sk","Token":"st","AccountId":"1","Expiration":"2030-01-01T00:00:00Z"}"#;
    let c = parse_reply(body).expect("parses");
    assert_eq!(c.access_key_id(), "AKIA");
    assert!(c.expiry().is_some());
    assert!(parse_reply(b"{}").is_err());
    let bad = br#"{"AccessKeyId":"a","SecretAccessKey":"sk","Token":"t","Expiration":"soon"}"#;
    let msg = parse_reply(bad).expect_err("bad time");
    assert!(!msg.contains("sk"));
}

#[test]
fn excerpt_scrubs_token() {
    let t = SecretString::new("tok-abc".into());
    assert_eq!(excerpt(b"bad token tok-abc", &t), "bad token <token>");
}

#[test]
fn endpoint_choice() {
    let a = PodIdentityAgent::new(Duration::from_secs(1), None).expect("client");
    assert_eq!(a.endpoints(AddressType::Auto), vec![AGENT_IPV4, AGENT_IPV6]);
    assert_eq!(a.endpoints(AddressType::Ipv6), vec![AGENT_IPV6]);
    let b =
        PodIdentityAgent::new(Duration::from_secs(1), Some("http://x/y".into())).expect("client");
    assert_eq!(b.endpoints(AddressType::Ipv4), vec!["http://x/y"]);
}

const TOKEN: &str = "pod-token-DO-NOT-LOG";
const REPLY: &str = r#"{"AccessKeyId":"AKIA","SecretAccessKey":"sk-DO-NOT-LOG","Token":"st","Expiration":"2030-01-01T00:00:00Z"}"#;

/// A raw HTTP/1.1 agent: reads one request head per connection, hands it to `answer`, and
/// writes what it returns (`None`: keep the connection open and never answer).
async fn agent(answer: fn(&str) -> Option<String>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/v1/credentials",
        listener.local_addr().expect("addr")
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                match answer(&String::from_utf8_lossy(&head)) {
                    Some(reply) => {
                        let _ = conn.write_all(reply.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (url, hits)
}

fn http(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn token() -> SecretString {
    SecretString::new(TOKEN.into())
}

fn client(url: &str, timeout: Duration, attempts: u32) -> PodIdentityAgent {
    PodIdentityAgent::new(timeout, Some(url.to_string()))
        .expect("client")
        .with_retries(attempts, Duration::from_millis(10))
}

#[tokio::test]
async fn sends_the_token_as_authorization_and_parses_the_reply() {
    let (url, hits) = agent(|head| {
        let lower = head.to_ascii_lowercase();
        let ok = head.starts_with("GET /v1/credentials HTTP/1.1\r\n")
            && lower.contains(&format!(
                "authorization: {}\r\n",
                TOKEN.to_ascii_lowercase()
            ));
        Some(if ok {
            http("200 OK", REPLY)
        } else {
            http("400 Bad Request", "no token")
        })
    })
    .await;
    let creds = client(&url, Duration::from_secs(2), 1)
        .fetch(&token(), AddressType::Auto)
        .await
        .expect("credentials");
    assert_eq!(creds.access_key_id(), "AKIA");
    assert_eq!(creds.session_token(), Some("st"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_silent_agent_times_out_on_every_attempt() {
    let (url, hits) = agent(|_| None).await;
    let started = std::time::Instant::now();
    let err = client(&url, Duration::from_millis(200), 2)
        .fetch(&token(), AddressType::Auto)
        .await
        .expect_err("times out");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.starts_with("the Pod Identity agent did not answer after 2 attempts: GET "),
        "{err}"
    );
    assert!(err.contains(": timed out; hint: "), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_closed_port_is_a_connection_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/v1/credentials",
        listener.local_addr().expect("addr")
    );
    drop(listener);
    let err = client(&url, Duration::from_secs(2), 1)
        .fetch(&token(), AddressType::Auto)
        .await
        .expect_err("refused");
    assert!(err.contains(": connection failed ("), "{err}");
}

#[tokio::test]
async fn server_errors_are_retried_and_scrubbed() {
    let (url, hits) =
        agent(|_| Some(http("500 Internal Server Error", &format!("boom {TOKEN}")))).await;
    let err = client(&url, Duration::from_secs(2), 3)
        .fetch(&token(), AddressType::Auto)
        .await
        .expect_err("500");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(
        err.contains("answered 500 Internal Server Error: boom <token>"),
        "{err}"
    );
    assert!(!err.contains(TOKEN), "{err}");
}

#[tokio::test]
async fn a_refused_token_is_fatal_and_scrubbed() {
    let (url, hits) = agent(|_| Some(http("403 Forbidden", &format!("denied {TOKEN}")))).await;
    let err = client(&url, Duration::from_secs(2), 3)
        .fetch(&token(), AddressType::Auto)
        .await
        .expect_err("403");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "not retried");
    assert!(
        err.starts_with(
            "the Pod Identity agent refused the token (403 Forbidden): denied <token>; hint: "
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_reply_is_fatal_without_the_credentials() {
    let (url, _) = agent(|_| {
        Some(http(
            "200 OK",
            &REPLY.replace("2030-01-01T00:00:00Z", "soon"),
        ))
    })
    .await;
    let err = client(&url, Duration::from_secs(2), 1)
        .fetch(&token(), AddressType::Auto)
        .await
        .expect_err("bad expiry");
    assert!(err.contains("Expiration \"soon\""), "{err}");
    assert!(
        !err.contains("sk-DO-NOT-LOG") && !err.contains(TOKEN),
        "{err}"
    );
}

#[test]
fn an_override_must_be_plain_http() {
    for bad in [
        "https://127.0.0.1/v1/credentials",
        "not a url",
        "/v1/credentials",
    ] {
        let err = PodIdentityAgent::new(Duration::from_secs(1), Some(bad.into()))
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("--pod-identity-endpoint "), "{bad}: {err}");
    }
}
