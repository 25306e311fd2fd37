//! Drop-in parity with upstream 3.1.1: what it accepts, we accept (with a warning where the
//! input is probably a mistake) — key case, unknown preferredAddressType, empty objects,
//! pinned SSM versions, any gRPC `:authority` — and the per-pod credential cache.

mod provider_support;

use aws_csi_provider::auth::CacheScope;
use aws_csi_provider::mount::MountConfig;
use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::mock;
use provider_support::fixtures::*;
use provider_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Two unpinned secrets the mocked BatchGetSecretValue answers.
const TWO: &str = "- {objectName: api, objectType: secretsmanager}\n- {objectName: prod/db, objectType: secretsmanager}";

#[tokio::test]
async fn object_keys_match_case_insensitively_with_a_warning() {
    let (_agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let objects = "- ObjectName: api\n  OBJECTTYPE: secretsmanager\n  objectalias: key\n- {objectName: prod/db, objectType: secretsmanager, colour: blue}";
    let resp = mount_ok(&mut h, objects, "upstream mounts this, so do we").await;
    let files: Vec<&str> = resp.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["key", "prod_db"]);
    let logs = h.logs.text();
    assert!(
        logs.contains("\"OBJECTTYPE\" read as \"objectType\""),
        "{logs}"
    );
    assert!(logs.contains("unknown key \"colour\" ignored"), "{logs}");
    assert_no_secret_leak(&h, &[]);
}

#[tokio::test]
async fn unknown_preferred_address_type_falls_back_to_auto() {
    let (agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let attrs = attrs_with(&[("preferredAddressType", "ipv5")], TWO, &both_tokens());
    let resp = mount(&mut h, attrs).await.expect("mounts with auto");
    assert_eq!(resp.files.len(), 2);
    assert_eq!(agent.requests(), 1);
    let logs = h.logs.text();
    assert!(
        logs.contains("preferredAddressType \"ipv5\" is not one of auto, ipv4, ipv6: using auto"),
        "{logs}"
    );
}

#[tokio::test]
async fn empty_or_absent_objects_mount_zero_files() {
    let (agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    for objects in [Some(""), Some("[]"), None] {
        let mut params = vec![("usePodIdentity", "true"), ("region", "us-east-1")];
        if let Some(o) = objects {
            params.push(("objects", o));
        }
        let resp = mount(&mut h, attributes(&params, Some(&both_tokens())))
            .await
            .expect("zero files, like upstream");
        assert!(resp.files.is_empty() && resp.object_version.is_empty());
    }
    // Nothing to fetch: no credentials were asked for.
    assert_eq!(agent.requests(), 0);
    assert!(
        h.logs
            .text()
            .contains("lists no objects: mounting zero files")
    );
}

#[tokio::test]
async fn pinned_ssm_version_fetches_name_colon_version() {
    let mut aws = FakeAws::default();
    aws.ssm.insert(
        "us-east-1".into(),
        vec![
            mock!(aws_sdk_ssm::Client::get_parameters)
                .match_requests(|r| r.names() == ["/app/flag:2", "/app/url"])
                .then_output(|| {
                    // No Selector in the reply (as moto answers): the version must decide.
                    GetParametersOutput::builder()
                        .parameters(
                            Parameter::builder()
                                .name("/app/url")
                                .value("u")
                                .version(7)
                                .build(),
                        )
                        .parameters(
                            Parameter::builder()
                                .name("/app/flag")
                                .value("s3cr3t-v2")
                                .version(2)
                                .build(),
                        )
                        .build()
                }),
        ],
    );
    let (_agent, mut h) = with_agent(aws, MountConfig::default()).await;
    let objects = "- {objectName: /app/flag, objectType: ssmparameter, objectVersion: 2, objectAlias: flag}\n- {objectName: /app/url, objectType: ssmparameter}";
    let resp = mount_ok(&mut h, objects, "pinned version found").await;
    let files = files_of(&resp);
    assert_eq!(
        files,
        [("flag", b"s3cr3t-v2".as_slice()), ("_app_url", b"u")]
    );
    assert_eq!(resp.object_version[0].version, "2");
}

fn pod_attrs(pod: &str, uid: &str) -> String {
    let mut m: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&pod_identity_attrs(TWO)).unwrap_or_default();
    m.insert("csi.storage.k8s.io/pod.name".into(), pod.into());
    m.insert("csi.storage.k8s.io/pod.uid".into(), uid.into());
    serde_json::Value::Object(m).to_string()
}

#[tokio::test]
async fn credentials_are_cached_per_pod_by_default() {
    let (agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    for (pod, uid) in [
        ("web-0", "u0"),
        ("web-0", "u0"),
        ("web-1", "u1"),
        ("web-0", "u2"),
    ] {
        mount(&mut h, pod_attrs(pod, uid)).await.expect("mount");
    }
    // web-0 twice (a remount) → one session; web-1, and web-0 recreated (new uid) → new ones.
    assert_eq!(agent.requests(), 3);

    let config = MountConfig {
        credential_scope: CacheScope::ServiceAccount,
        ..MountConfig::default()
    };
    let (agent, mut h) = with_agent(fake_aws(), config).await;
    for (pod, uid) in [("web-0", "u0"), ("web-1", "u1"), ("web-2", "u2")] {
        mount(&mut h, pod_attrs(pod, uid)).await.expect("mount");
    }
    assert_eq!(agent.requests(), 1);
}

/// One `Version` call over raw HTTP/2 with the given `:authority`; Ok(status) or the reset.
async fn raw_version(socket: &std::path::Path, authority: &str) -> Result<String, String> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }
    let headers: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/v1alpha1.CSIDriverProvider/Version"),
        (b":authority", authority.as_bytes()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ];
    let block = fluke_hpack::Encoder::new().encode(headers);
    let message = b"\x0a\x08v1alpha1";
    let mut grpc = vec![0u8];
    grpc.extend((message.len() as u32).to_be_bytes());
    grpc.extend(message);
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x1, 0x4, 1, &block));
    out.extend(frame(0x0, 0x1, 1, &grpc));
    let mut s = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut decoder = fluke_hpack::Decoder::new();
    let exchange = async {
        loop {
            let mut head = [0u8; 9];
            s.read_exact(&mut head).await.map_err(|e| e.to_string())?;
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload)
                .await
                .map_err(|e| e.to_string())?;
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
            match head[3] {
                0x4 if head[4] & 0x1 == 0 => {
                    s.write_all(&frame(0x4, 0x1, 0, &[]))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                0x1 if stream == 1 => {
                    let hs = decoder.decode(&payload).map_err(|e| format!("{e:?}"))?;
                    let status = hs
                        .iter()
                        .find(|(n, _)| n == b":status")
                        .map(|(_, v)| v.clone());
                    return Ok(String::from_utf8_lossy(&status.unwrap_or_default()).into_owned());
                }
                0x3 if stream == 1 => return Err(format!("RST_STREAM {payload:?}")),
                0x7 => return Err(format!("GOAWAY {payload:?}")),
                _ => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer in 5 s".to_string())?
}

#[tokio::test]
async fn grpc_clients_may_send_any_authority() {
    let (_agent, h) = with_agent(fake_aws(), MountConfig::default()).await;
    let socket = h.dir.path().join("aws.sock");
    // Python's grpc (percent-encoded socket path), grpc-java (raw path), the Go driver.
    let percent = socket.display().to_string().replace('/', "%2F");
    let raw = socket.display().to_string();
    for authority in [percent.as_str(), raw.as_str(), "localhost", "unix:/x", ""] {
        assert_eq!(
            raw_version(&socket, authority).await.as_deref(),
            Ok("200"),
            "authority {authority:?}"
        );
    }
}

/// Python's own grpc, if the environment's virtualenv has it: no authority override.
#[tokio::test]
async fn python_grpc_over_the_socket() {
    let python = std::env::var("BOOTSTRAP_ENV_PYTHON")
        .ok()
        .filter(|p| !p.is_empty());
    let Some(python) = python else {
        assert!(
            std::env::var("BOOTSTRAP_REQUIRE_ENV").as_deref() != Ok("1"),
            "BOOTSTRAP_REQUIRE_ENV=1 but BOOTSTRAP_ENV_PYTHON is unset"
        );
        eprintln!("skipped: BOOTSTRAP_ENV_PYTHON (with grpcio) is not set");
        return;
    };
    let (_agent, h) = with_agent(fake_aws(), MountConfig::default()).await;
    let socket = h.dir.path().join("aws.sock");
    let script = r#"
import sys, grpc
ch = grpc.insecure_channel("unix:" + sys.argv[1])
call = ch.unary_unary("/v1alpha1.CSIDriverProvider/Version")
reply = call(b"\x0a\x08v1alpha1", timeout=10)
print("ok" if b"aws-csi-provider" in reply else "bad reply")
"#;
    let out = tokio::process::Command::new(&python)
        .args(["-c", script])
        .arg(&socket)
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "ok",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
