//! Component tests of the image check against an in-process fake registry (hyper, plain HTTP
//! on 127.0.0.1): the anonymous bearer-token flow (a `WWW-Authenticate: Bearer` challenge,
//! the token endpoint with the pull scope, then `Authorization: Bearer`), basic auth from a
//! Docker config file, OCI indexes and Docker single manifests (platform from the config
//! blob), a missing architecture, a missing image, a denied pull and an unreachable registry.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use sha2::Digest;

use super::*;

/// What the fake registry saw of a request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path_and_query: String,
    authorization: Option<String>,
}

type Handler = dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync;

/// Serves `handler` on 127.0.0.1 (an ephemeral port); returns `127.0.0.1:PORT` and the log.
async fn serve(handler: Arc<Handler>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen_log = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let log = seen_log.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = Seen {
                            method: req.method().to_string(),
                            path_and_query: req
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            authorization: req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .map(String::from),
                        };
                        log.lock().unwrap().push(seen.clone());
                        let response = handler(&seen);
                        async move { Ok::<_, Infallible>(response) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, log)
}

fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(StatusCode::from_u16(status).unwrap());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).unwrap()
}

fn sha(bytes: &[u8]) -> String {
    let hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
  {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1,"platform":{"os":"linux","architecture":"amd64"}},
  {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
  {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":1,"platform":{"os":"unknown","architecture":"unknown"}}]}"#;

fn archs(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn no_docker_config() -> Credentials {
    Credentials::default().without_docker_config()
}

/// `ADDR/team/app:TAG`, the image the fake registries serve (or not).
fn app_image(addr: &str, tag: &str) -> ImageRef {
    ImageRef::parse(&format!("{addr}/team/app:{tag}")).unwrap()
}

/// The image check of `image` for the `required` architectures, with no Docker config file.
async fn check_anonymously(image: &ImageRef, required: &[&str]) -> Result<ImageReport, ImageError> {
    check(image, &archs(required), &no_docker_config()).await
}

/// A registry that wants a bearer token from its own token endpoint, like Docker Hub.
async fn bearer_registry(token_status: u16) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let addr_cell: Arc<Mutex<String>> = Arc::default();
    let cell = addr_cell.clone();
    let handler: Arc<Handler> = Arc::new(move |seen: &Seen| {
        let addr = cell.lock().unwrap().clone();
        let challenge = format!(r#"Bearer realm="http://{addr}/token",service="fake-registry""#);
        let path = seen.path_and_query.as_str();
        if path.starts_with("/token") {
            return if token_status == 200 {
                reply(
                    200,
                    &[("content-type", "application/json")],
                    r#"{"token":"tok-123"}"#,
                )
            } else {
                reply(token_status, &[], "no such user")
            };
        }
        if seen.authorization.as_deref() != Some("Bearer tok-123") {
            return reply(
                401,
                &[
                    ("www-authenticate", challenge.as_str()),
                    ("content-type", "application/json"),
                ],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
        }
        match path {
            "/v2/team/app/manifests/1" => reply(
                200,
                &[("content-type", "application/vnd.oci.image.index.v1+json")],
                INDEX,
            ),
            _ => reply(
                404,
                &[("content-type", "application/json")],
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            ),
        }
    });
    let (addr, log) = serve(handler).await;
    *addr_cell.lock().unwrap() = addr.clone();
    (addr, log)
}

#[tokio::test]
async fn anonymous_bearer_flow_reads_an_oci_index() {
    let (addr, log) = bearer_registry(200).await;
    let report = check_anonymously(&app_image(&addr, "1"), &["amd64", "arm64"])
        .await
        .unwrap();
    assert_eq!(report.linux_architectures(), archs(&["amd64", "arm64"]));
    assert_eq!(report.media_type, "application/vnd.oci.image.index.v1+json");
    assert_eq!(report.digest, sha(INDEX.as_bytes()));
    assert_eq!(report.auth, AuthSource::Anonymous);
    assert_eq!(
        report.pinned(),
        format!("{addr}/team/app:1@{}", report.digest)
    );
    assert!(
        report
            .platforms
            .iter()
            .any(|p| p.to_string() == "linux/arm64/v8"),
        "{:?}",
        report.platforms
    );
    let log = log.lock().unwrap();
    let token = log
        .iter()
        .find(|s| s.path_and_query.starts_with("/token"))
        .expect("the token endpoint was asked");
    assert!(
        token
            .path_and_query
            .contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{token:?}"
    );
    assert!(
        token.path_and_query.contains("service=fake-registry"),
        "{token:?}"
    );
    assert_eq!(token.authorization, None, "anonymous: no credentials sent");
}

#[tokio::test]
async fn a_missing_architecture_is_named() {
    let (addr, _) = bearer_registry(200).await;
    let err = check_anonymously(&app_image(&addr, "1"), &["amd64", "s390x"])
        .await
        .unwrap_err();
    let ImageError::MissingArchitectures {
        missing, offered, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(missing, &archs(&["s390x"]));
    assert_eq!(offered, &archs(&["amd64", "arm64"]));
    assert!(
        err.to_string()
            .contains(&format!("{addr}/team/app:1 has no linux/s390x"))
    );
}

#[tokio::test]
async fn a_missing_image_is_not_found_with_a_push_hint() {
    let (addr, _) = bearer_registry(200).await;
    let image = app_image(&addr, "2");
    let err = inspect(&image, &no_docker_config()).await.unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("ManifestUnknown"), "{err}");
    assert!(err.hint().unwrap().contains("bootstrap image push --to"));
}

#[tokio::test]
async fn a_refused_token_is_a_denied_pull() {
    let (addr, _) = bearer_registry(401).await;
    let image = app_image(&addr, "1");
    let err = inspect(&image, &no_docker_config()).await.unwrap_err();
    let ImageError::Denied {
        auth, operation, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (auth, *operation),
        (&AuthSource::Anonymous, Operation::Pull)
    );
    assert!(
        err.hint()
            .unwrap()
            .contains(&format!("docker login {addr}"))
    );
}

#[tokio::test]
async fn basic_auth_from_the_docker_config_and_a_docker_v2_manifest() {
    let config = br#"{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = sha(config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{config_digest}"}},"layers":[]}}"#,
        config.len()
    );
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("me:pw")
    );
    let blob_path = format!("/v2/team/app/blobs/{config_digest}");
    let handler: Arc<Handler> = Arc::new(move |seen: &Seen| {
        if seen.authorization.as_deref() != Some(expected.as_str()) {
            return reply(401, &[("www-authenticate", r#"Basic realm="fake""#)], "");
        }
        if seen.path_and_query == "/v2/team/app/manifests/1" {
            reply(
                200,
                &[(
                    "content-type",
                    "application/vnd.docker.distribution.manifest.v2+json",
                )],
                manifest.clone(),
            )
        } else if seen.path_and_query == blob_path {
            reply(200, &[], Bytes::from_static(config))
        } else {
            reply(404, &[], "")
        }
    });
    let (addr, log) = serve(handler).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"auths":{{"http://{addr}":{{"auth":"{}"}}}}}}"#,
            base64::engine::general_purpose::STANDARD.encode("me:pw")
        ),
    )
    .unwrap();
    let image = app_image(&addr, "1");
    let creds = Credentials::default().with_docker_config(&path);
    let report = check(&image, &archs(&["arm64"]), &creds).await.unwrap();
    assert_eq!(report.linux_architectures(), archs(&["arm64"]));
    assert_eq!(report.auth, AuthSource::DockerConfig { path: path.clone() });
    let err = check(&image, &archs(&["amd64"]), &creds).await.unwrap_err();
    assert!(err.to_string().contains("has no linux/amd64"), "{err}");
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|s| s.method == "GET" && s.path_and_query == "/v2/team/app/manifests/1")
    );

    // Without the config file the same registry denies the pull, and says how to log in.
    let err = inspect(&image, &no_docker_config()).await.unwrap_err();
    assert!(matches!(err, ImageError::Denied { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_registry_says_so() {
    // A port nothing listens on: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let image = ImageRef::parse(&format!("127.0.0.1:{port}/team/app:1")).unwrap();
    let err = inspect(&image, &no_docker_config()).await.unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("cannot reach registry 127.0.0.1:{port}"))
    );
}
