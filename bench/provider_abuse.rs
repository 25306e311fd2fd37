//! Abuse cases against the real `aws-csi-provider` binary, one fresh process per case, over
//! its unix socket like the driver: what happened, peak RSS (`VmHWM`), whether the process
//! survived and whether the next normal mount on the node still works. Prints the markdown
//! table of bench/RESULTS.md. Needs nothing else: a fake Pod Identity agent and a Secrets
//! Manager stand-in (plain HTTP, `AWS_ENDPOINT_URL`) run in this process.
//!
//!     cargo build -p aws-csi-provider --bin aws-csi-provider
//!     cargo run -p aws-csi-provider --example provider_abuse -- target/debug/aws-csi-provider
//!
//! No secret value is printed (the values are filler).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_csi_provider::proto::MountRequest;
use aws_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tokio::io::AsyncWriteExt;
use tonic::transport::Channel;

// The provider's test harness: the fake agent, the socket client, the binary's launch.
#[path = "../crates/aws-csi-provider/tests/provider_support/mod.rs"]
mod provider_support;

use provider_support::process::{spawn, status_kib};
use provider_support::{connect, start_agent_with};

const GOOD_TOKEN: &str = "abuse-bench-token";
const MIB: f64 = 1024.0 * 1024.0;

/// Serves `answer(path, headers, body) -> (status, content type, body)` over HTTP/1.1.
async fn serve<F>(answer: F) -> String
where
    F: Fn(&str, &http::HeaderMap, &[u8]) -> (u16, &'static str, Vec<u8>) + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let answer = answer.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let (status, ctype, out) =
                                answer(parts.uri.path(), &parts.headers, &body);
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(out)));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status)
                                .unwrap_or(hyper::StatusCode::OK);
                            resp.headers_mut()
                                .insert("content-type", http::HeaderValue::from_static(ctype));
                            Ok::<_, Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}

/// The secret value of `name`: `huge` is 5 MiB, `big*` 256 KiB, the rest a small JSON.
fn value_of(name: &str) -> String {
    if name == "huge" {
        "x".repeat(5 << 20)
    } else if name.starts_with("big") {
        "x".repeat(256 << 10)
    } else {
        r#"{"user":"app","pass":"filler"}"#.to_string()
    }
}

fn entry(name: &str) -> serde_json::Value {
    serde_json::json!({
        "ARN": format!("arn:aws:secretsmanager:us-east-1:111122223333:secret:{name}-AbCdEf"),
        "Name": name, "SecretString": value_of(name), "VersionId": "v1",
    })
}

/// Secrets Manager: GetSecretValue and BatchGetSecretValue of any name; calls are counted.
async fn secrets_manager(calls: Arc<AtomicUsize>) -> String {
    serve(move |_, headers, body| {
        calls.fetch_add(1, Ordering::Relaxed);
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let out = match target {
            "secretsmanager.GetSecretValue" => entry(req["SecretId"].as_str().unwrap_or("")),
            "secretsmanager.BatchGetSecretValue" => {
                let ids = req["SecretIdList"].as_array().cloned().unwrap_or_default();
                let values: Vec<_> = ids
                    .iter()
                    .map(|i| entry(i.as_str().unwrap_or("")))
                    .collect();
                serde_json::json!({"SecretValues": values, "Errors": []})
            }
            _ => {
                return (
                    400,
                    "application/x-amz-json-1.1",
                    br#"{"__type":"UnknownOperationException"}"#.to_vec(),
                );
            }
        };
        (
            200,
            "application/x-amz-json-1.1",
            out.to_string().into_bytes(),
        )
    })
    .await
}

async fn client(socket: &Path) -> CsiDriverProviderClient<Channel> {
    connect(socket.to_path_buf())
        .await
        .max_decoding_message_size(16 << 20)
}

/// A mount request of pod `pod` with `objects` and a Pod Identity `token`.
fn request(pod: &str, objects: &str, token: &str) -> MountRequest {
    let tokens = format!(
        r#"{{"pods.eks.amazonaws.com":{{"token":"{token}","expirationTimestamp":"2099-01-01T00:00:00Z"}}}}"#
    );
    let attrs: HashMap<&str, &str> = HashMap::from([
        ("csi.storage.k8s.io/pod.name", pod),
        ("csi.storage.k8s.io/pod.namespace", "tenant"),
        ("csi.storage.k8s.io/pod.uid", pod),
        ("csi.storage.k8s.io/serviceAccount.name", "app"),
        ("csi.storage.k8s.io/serviceAccount.tokens", tokens.as_str()),
        ("usePodIdentity", "true"),
        ("region", "us-east-1"),
        ("objects", objects),
    ]);
    MountRequest {
        attributes: serde_json::to_string(&attrs).unwrap_or_default(),
        secrets: "{}".into(),
        target_path: format!("/var/lib/kubelet/pods/{pod}/volumes/kubernetes.io~csi/secrets/mount"),
        permission: "\"420\"".into(),
        current_object_version: vec![],
    }
}

const NORMAL: &str = "- {objectName: db, objectType: secretsmanager, objectAlias: db, jmesPath: [{path: user, objectAlias: user}]}\n- {objectName: api, objectType: secretsmanager}\n";

struct Provider {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Provider {
    async fn start(binary: &str, agent: &str, aws: &str, extra: &[String]) -> Provider {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = [
            ("AWS_ENDPOINT_URL", aws),
            ("AWS_REGION", "us-east-1"),
            ("RUST_LOG", "warn"),
        ];
        let (child, socket) = spawn(binary, dir.path(), agent, &env, extra, Stdio::null()).await;
        Provider {
            child,
            socket,
            _dir: dir,
        }
    }

    fn peak_mib(&self) -> String {
        match status_kib(self.child.id(), "VmHWM:") {
            0 => "-".into(),
            kib => format!("{:.1}", kib as f64 / 1024.0),
        }
    }

    /// Alive, and a normal mount of a new pod works.
    async fn next_mount_works(&mut self) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("no: the provider exited ({status})");
        }
        let Ok(mut c) = tokio::time::timeout(Duration::from_secs(5), client(&self.socket)).await
        else {
            return "no: socket unreachable".into();
        };
        match c.mount(request("next", NORMAL, GOOD_TOKEN)).await {
            Ok(r) if r.get_ref().files.len() == 3 => "yes".into(),
            Ok(_) => "no: wrong files".into(),
            Err(e) => format!("no: {:?}", e.code()),
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gRPC outcome in a table cell: code and the first words of the message.
fn outcome(
    r: Result<tonic::Response<aws_csi_provider::proto::MountResponse>, tonic::Status>,
    elapsed: Duration,
) -> String {
    let ms = elapsed.as_millis();
    match r {
        Ok(r) => {
            let bytes: usize = r.get_ref().files.iter().map(|f| f.contents.len()).sum();
            format!(
                "mounted {} files, {:.1} MiB ({ms} ms)",
                r.get_ref().files.len(),
                bytes as f64 / MIB
            )
        }
        Err(s) => {
            let mut msg: String = s.message().chars().take(150).collect();
            msg = msg.replace('|', "\\|").replace('\n', " ");
            format!("{:?}: {msg} ({ms} ms)", s.code())
        }
    }
}

/// An HTTP/2 header block of ~200 KB that decodes to ~200 MB: a 4 KB literal indexed into the
/// dynamic table, then 50,000 one-byte references to it, in HEADERS + CONTINUATION frames.
fn hpack_bomb() -> Vec<u8> {
    let mut block = vec![0x40, 5];
    block.extend_from_slice(b"x-big");
    block.extend_from_slice(&[0x7f, 0xa1, 0x1e]); // 4000 = 127 + 3873 (7-bit prefix integer)
    block.extend(std::iter::repeat_n(b'a', 4000));
    block.extend(std::iter::repeat_n(0x80 | 62, 50_000));
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
    for (k, chunk) in chunks.iter().enumerate() {
        let kind = if k == 0 { 1 } else { 9 }; // HEADERS, then CONTINUATION
        let flags = if k + 1 == chunks.len() { 0x4 } else { 0 }; // END_HEADERS on the last
        let len = chunk.len();
        out.extend_from_slice(&[
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ]);
        out.extend_from_slice(chunk);
    }
    out
}

async fn case(
    binary: &str,
    agent: &str,
    aws: (&str, &AtomicUsize),
    extra: &[String],
    name: &str,
) -> (String, String, String, String) {
    let (aws, aws_calls) = aws;
    let mut p = Provider::start(binary, agent, aws, extra).await;
    let mut c = client(&p.socket).await;
    let calls_before = aws_calls.load(Ordering::Relaxed);
    let t = Instant::now();
    let what = match name {
        "baseline: one normal mount" => outcome(
            c.mount(request("p0", NORMAL, GOOD_TOKEN)).await,
            t.elapsed(),
        ),
        "deep jmesPath (100,000 `!`)" => {
            let objects = format!(
                "- {{objectName: db, objectType: secretsmanager, jmesPath: [{{path: '{}a', objectAlias: x}}]}}",
                "!".repeat(100_000)
            );
            outcome(
                c.mount(request("p0", &objects, GOOD_TOKEN)).await,
                t.elapsed(),
            )
        }
        "20,000-object SPC" => {
            let objects: String = (0..20_000)
                .map(|i| format!("- {{objectName: s{i}, objectType: secretsmanager}}\n"))
                .collect();
            outcome(
                c.mount(request("p0", &objects, GOOD_TOKEN)).await,
                t.elapsed(),
            )
        }
        "same secret under 5,000 aliases" => {
            let objects: String = (0..5_000)
                .map(|i| {
                    format!(
                        "- {{objectName: big0, objectType: secretsmanager, objectAlias: a{i}}}\n"
                    )
                })
                .collect();
            outcome(
                c.mount(request("p0", &objects, GOOD_TOKEN)).await,
                t.elapsed(),
            )
        }
        "same secret under 900 aliases" => {
            let objects: String = (0..900)
                .map(|i| {
                    format!(
                        "- {{objectName: big0, objectType: secretsmanager, objectAlias: a{i}}}\n"
                    )
                })
                .collect();
            outcome(
                c.mount(request("p0", &objects, GOOD_TOKEN)).await,
                t.elapsed(),
            )
        }
        "one 5 MiB secret" => outcome(
            c.mount(request(
                "p0",
                "- {objectName: huge, objectType: secretsmanager}",
                GOOD_TOKEN,
            ))
            .await,
            t.elapsed(),
        ),
        "40 secrets of 256 KiB (10 MiB)" => {
            let objects: String = (0..40).map(|i| format!("- {{objectName: big{i}, objectType: secretsmanager, objectVersionLabel: AWSCURRENT}}\n")).collect();
            outcome(
                c.mount(request("p0", &objects, GOOD_TOKEN)).await,
                t.elapsed(),
            )
        }
        "200 concurrent mounts, 3 × 256 KiB each" => {
            let objects: String = (0..3)
                .map(|i| format!("- {{objectName: big{i}, objectType: secretsmanager}}\n"))
                .collect();
            let results = futures::future::join_all((0..200).map(|k| {
                let mut c = c.clone();
                let req = request(&format!("pod{k}"), &objects, GOOD_TOKEN);
                async move { c.mount(req).await }
            }))
            .await;
            let ok = results.iter().filter(|r| r.is_ok()).count();
            let mut errors: HashMap<String, usize> = HashMap::new();
            for r in results.iter().filter_map(|r| r.as_ref().err()) {
                *errors.entry(format!("{:?}", r.code())).or_default() += 1;
            }
            format!(
                "{ok} mounted, failed: {errors:?} ({} ms)",
                t.elapsed().as_millis()
            )
        }
        "forged token for a cached pod" => {
            let first = c.mount(request("victim", NORMAL, GOOD_TOKEN)).await.is_ok();
            let r = c.mount(request("victim", NORMAL, "forged")).await;
            format!(
                "victim mounted: {first}; forged: {}",
                outcome(r, t.elapsed())
            )
        }
        "HPACK bomb: 200 KB of headers decoding to 200 MB" => {
            let mut raw = tokio::net::UnixStream::connect(&p.socket)
                .await
                .expect("connect");
            let _ = raw.write_all(&hpack_bomb()).await;
            let mut buf = vec![0u8; 1 << 16];
            let mut read = 0;
            let closed = loop {
                use tokio::io::AsyncReadExt;
                match tokio::time::timeout(Duration::from_secs(3), raw.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break true,
                    Ok(Ok(n)) => read += n,
                    Err(_) => break false,
                }
            };
            format!("connection closed by the provider: {closed} ({read} bytes answered)")
        }
        _ => unreachable!(),
    };
    let what = format!(
        "{what}; AWS calls: {}",
        aws_calls.load(Ordering::Relaxed) - calls_before
    );
    let peak = p.peak_mib();
    let next = p.next_mount_works().await;
    (name.to_string(), what, peak, next)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .unwrap_or_else(|| "target/debug/aws-csi-provider".into());
    let extra: Vec<String> = args.collect();
    let aws_calls = Arc::new(AtomicUsize::new(0));
    // The Pod Identity agent: GOOD_TOKEN gets credentials, anything else a 403.
    let agent_url = start_agent_with(GOOD_TOKEN, "ASIABENCH", "bench", "bench")
        .await
        .url;
    let aws_url = secrets_manager(aws_calls.clone()).await;
    println!("binary: {binary} {}", extra.join(" "));
    println!();
    println!("| Input | What happened | Peak RSS MiB | Next mount works |");
    println!("|---|---|---|---|");
    for name in [
        "baseline: one normal mount",
        "deep jmesPath (100,000 `!`)",
        "20,000-object SPC",
        "same secret under 5,000 aliases",
        "same secret under 900 aliases",
        "one 5 MiB secret",
        "40 secrets of 256 KiB (10 MiB)",
        "200 concurrent mounts, 3 × 256 KiB each",
        "forged token for a cached pod",
        "HPACK bomb: 200 KB of headers decoding to 200 MB",
    ] {
        if let Ok(only) = std::env::var("ABUSE_CASES")
            && !name.contains(only.as_str())
        {
            continue;
        }
        let (input, what, peak, next) =
            case(&binary, &agent_url, (&aws_url, &aws_calls), &extra, name).await;
        println!("| {input} | {what} | {peak} | {next} |");
    }
}
