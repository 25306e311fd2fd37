//! Component tests of observe/apply against a mocked API server (tower-test): the requests
//! bootstrap sends and how it reads the answers.

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use super::apply::{self, ObjectState};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Reply = tower_test::mock::SendResponse<Response<Body>>;

fn client() -> (kube::Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

fn respond(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

/// The JSON body of a request the client sent.
async fn json_body(request: Request<Body>) -> Value {
    let body = request.into_body().collect_bytes().await.expect("body");
    serde_json::from_slice(&body).expect("json body")
}

/// Where the ServiceAccount of [`service_account`] lives.
const SA_PATH: &str = "/api/v1/namespaces/team/serviceaccounts/app";

/// The next request the client sends, asserted to be a `method` on the ServiceAccount.
async fn next_request(handle: &mut Handle, method: http::Method) -> (Request<Body>, Reply) {
    let (request, send) = handle.next_request().await.expect("a request");
    assert_eq!(request.method(), method);
    assert_eq!(request.uri().path(), SA_PATH);
    (request, send)
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

fn service_account() -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": "app", "namespace": "team", "labels": {"app.kubernetes.io/managed-by": "bootstrap"}}})
}

#[tokio::test]
async fn observes_absent_same_and_foreign_objects() {
    let (client, mut handle) = client();
    let desired = service_account();
    let server = tokio::spawn(async move {
        let answers = [
            (404, not_found()),
            (
                200,
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "team", "uid": "u", "resourceVersion": "1", "labels": {"app.kubernetes.io/managed-by": "bootstrap"}}}),
            ),
            (
                200,
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "team", "uid": "u", "resourceVersion": "1"}}),
            ),
        ];
        for (status, body) in answers {
            let (_, send) = next_request(&mut handle, http::Method::GET).await;
            send.send_response(respond(status, &body));
        }
    });
    assert_eq!(
        apply::observe(&client, &desired).await.expect("absent"),
        ObjectState::Absent
    );
    assert_eq!(
        apply::observe(&client, &desired).await.expect("same"),
        ObjectState::Same { ours: true }
    );
    assert_eq!(
        apply::observe(&client, &desired).await.expect("foreign"),
        ObjectState::Differs { ours: false }
    );
    server.await.expect("server");
}

#[tokio::test]
async fn applies_server_side_with_the_bootstrap_field_manager() {
    let (client, mut handle) = client();
    let server = tokio::spawn(async move {
        let (request, send) = next_request(&mut handle, http::Method::PATCH).await;
        let query = request.uri().query().unwrap_or_default().to_string();
        assert!(
            query.contains("fieldManager=bootstrap") && query.contains("force=true"),
            "{query}"
        );
        assert_eq!(
            request
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(json_body(request).await, service_account());
        send.send_response(respond(200, &service_account()));
    });
    apply::apply(&client, &service_account())
        .await
        .expect("applied");
    server.await.expect("server");
}

/// A client with bootstrap's retry policy over the mock (3 attempts, millisecond delays).
fn retrying_client() -> (kube::Client, Handle) {
    use std::time::Duration;
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let policy = super::retry::Transient::new(bootstrap_common::Backoff {
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        budget: Duration::from_millis(3),
    });
    let service = tower::ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(policy))
        .service(service);
    (kube::Client::new(service, "default"), handle)
}

fn internal_error() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcdserver: leader changed"})
}

#[tokio::test]
async fn an_apply_answered_500_is_sent_again_whole() {
    let (client, mut handle) = retrying_client();
    let server = tokio::spawn(async move {
        for status in [500, 200] {
            let (request, send) = next_request(&mut handle, http::Method::PATCH).await;
            assert_eq!(
                json_body(request).await,
                service_account(),
                "the retry carries the same body"
            );
            let answer = if status == 500 {
                internal_error()
            } else {
                service_account()
            };
            send.send_response(respond(status, &answer));
        }
    });
    apply::apply(&client, &service_account())
        .await
        .expect("applied on the second attempt");
    server.await.expect("server");
}

#[tokio::test]
async fn a_500_past_the_budget_fails_naming_the_object() {
    let (client, mut handle) = retrying_client();
    let desired = service_account();
    let server = tokio::spawn(async move {
        let mut seen = 0;
        while let Some((_, send)) = handle.next_request().await {
            seen += 1;
            send.send_response(respond(500, &internal_error()));
        }
        seen
    });
    let err = apply::apply(&client, &desired).await.expect_err("fails");
    assert_eq!(err.status(), Some(500));
    assert!(err.to_string().contains("team/app"), "{err}");
    drop(client);
    assert_eq!(server.await.expect("server"), 3, "three attempts, no more");
}
