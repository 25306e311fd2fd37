//! A local HTTP server standing in for the apiserver or an AWS endpoint in unit tests: answers
//! each request with what the test's handler returns and records the paths and bearer tokens
//! it saw.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// (status, body) for a request path.
pub type Handler = Arc<dyn Fn(&str) -> (u16, Vec<u8>) + Send + Sync>;

/// (path, Authorization header) of every request, in order.
pub type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

pub struct TestServer {
    pub url: String,
    pub seen: Seen,
}

pub async fn serve(handler: impl Fn(&str) -> (u16, Vec<u8>) + Send + Sync + 'static) -> TestServer {
    let handler: Handler = Arc::new(handler);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let path = req.uri().path().to_string();
                    record
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((path.clone(), auth));
                    let (status, body) = handler(&path);
                    let response = Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .expect("response");
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestServer { url, seen }
}
