use std::time::Duration;

use super::*;
use crate::cluster::config::{Auth, Config};
use crate::test_server::serve;

fn config(url: &str, auth: Auth) -> Config {
    Config {
        server: url.to_string(),
        roots: Vec::new(),
        client_cert: None,
        auth,
    }
}

#[derive(serde::Deserialize)]
struct Named {
    name: String,
}

#[tokio::test]
async fn gets_json_with_the_bearer_token() {
    let server = serve(|_| (200, br#"{"name":"web","extra":[1,2]}"#.to_vec())).await;
    let client = KubeClient::new(config(
        &server.url,
        Auth::Token(SecretString::new("t0k".into())),
    ))
    .expect("client");
    let got: Named = client
        .get("/api/v1/namespaces/demo/serviceaccounts/web")
        .await
        .expect("get");
    assert_eq!(got.name, "web");
    let seen = server.seen.lock().expect("seen").clone();
    assert_eq!(
        seen,
        [(
            "/api/v1/namespaces/demo/serviceaccounts/web".to_string(),
            Some("Bearer t0k".to_string())
        )]
    );
}

#[tokio::test]
async fn statuses_name_the_url_and_the_apiservers_message() {
    let server = serve(|path| match path {
        "/missing" => (
            404,
            br#"{"kind":"Status","message":"serviceaccounts \"x\" not found","code":404}"#.to_vec(),
        ),
        _ => (
            403,
            br#"{"kind":"Status","message":"forbidden: cannot get nodes","code":403}"#.to_vec(),
        ),
    })
    .await;
    let client = KubeClient::new(config(&server.url, Auth::None)).expect("client");
    let e = client.get::<Named>("/missing").await.err().expect("404");
    assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(
        e.to_string(),
        format!(
            "GET {}/missing: 404 Not Found: serviceaccounts \"x\" not found",
            server.url
        )
    );
    let e = client.get::<Named>("/denied").await.err().expect("403");
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
    assert!(
        e.to_string()
            .contains("403 Forbidden: forbidden: cannot get nodes"),
        "{e}"
    );
    // No bearer configured: none sent.
    assert!(
        server
            .seen
            .lock()
            .expect("seen")
            .iter()
            .all(|(_, a)| a.is_none())
    );
}

#[tokio::test]
async fn refuses_an_oversized_body() {
    let server = serve(|_| (200, vec![b' '; 4096])).await;
    let client = KubeClient::new(config(&server.url, Auth::None))
        .expect("client")
        .with_limits(Duration::from_secs(5), 1024);
    let e = client.get::<Named>("/big").await.err().expect("too large");
    assert!(matches!(e, KubeError::TooLarge { limit: 1024, .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!("GET {}/big: response larger than 1024 bytes", server.url)
    );
}

#[tokio::test]
async fn times_out() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let client = KubeClient::new(config(&url, Auth::None))
        .expect("client")
        .with_limits(Duration::from_millis(200), MAX_BODY);
    let e = client.get::<Named>("/slow").await.err().expect("timeout");
    assert!(matches!(e, KubeError::Timeout { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("GET {url}/slow: no answer within")),
        "{e}"
    );
}

#[tokio::test]
async fn a_refused_connection_names_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let client = KubeClient::new(config(&url, Auth::None)).expect("client");
    let e = client.get::<Named>("/x").await.err().expect("refused");
    assert!(matches!(e, KubeError::Transport { .. }), "{e}");
    assert!(e.to_string().starts_with(&format!("GET {url}/x: ")), "{e}");
}

#[tokio::test]
async fn rereads_a_rotated_token_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "first\n").expect("write");
    let server = serve(|_| (200, br#"{"name":"n"}"#.to_vec())).await;
    let client =
        KubeClient::new(config(&server.url, Auth::TokenFile(token.clone()))).expect("client");
    client.get::<Named>("/a").await.expect("get");
    client.get::<Named>("/b").await.expect("get");
    // Rotated as kubelet does: a new file renamed over the old one.
    let next = dir.path().join("token.new");
    std::fs::write(&next, "second-token").expect("write");
    std::fs::rename(&next, &token).expect("rename");
    client.get::<Named>("/c").await.expect("get");
    let auths: Vec<_> = server
        .seen
        .lock()
        .expect("seen")
        .iter()
        .map(|(_, a)| a.clone())
        .collect();
    assert_eq!(
        auths,
        [
            Some("Bearer first"),
            Some("Bearer first"),
            Some("Bearer second-token")
        ]
        .map(|a| a.map(str::to_string))
    );
    // A token file that disappears is an error naming it, not a request without a token.
    std::fs::remove_file(&token).expect("remove");
    let e = client.get::<Named>("/d").await.err().expect("no token");
    assert!(
        e.to_string()
            .starts_with(&format!("read token {}", token.display())),
        "{e}"
    );
    assert_eq!(server.seen.lock().expect("seen").len(), 3);
}

#[tokio::test]
async fn undecodable_json_is_an_error() {
    let server = serve(|_| (200, b"<html>".to_vec())).await;
    let client = KubeClient::new(config(&server.url, Auth::None)).expect("client");
    let e = client.get::<Named>("/x").await.err().expect("decode");
    assert!(matches!(e, KubeError::Decode { .. }), "{e}");
}
